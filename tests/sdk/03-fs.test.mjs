// SPDX-License-Identifier: Apache-2.0
// File system through the official SDK: upload/download of a binary buffer and of a 50 MiB file
// byte for byte (buffer and local-path sources, buffer and local-path destinations), several files
// at once with a missing one, odd names, and listFiles, getFileDetails, createFolder, moveFiles,
// deleteFile, findFiles, searchFiles, replaceInFiles, setFilePermissions.
// Run by tests/sdk/run-sdk-tests.

import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { client, deleteAll, dispose, rejectsWith, sdk, sha256, uniq } from './sdk.mjs';

const T = { timeout: 60_000 };
const run = uniq('t03');
const MiB = 1024 * 1024;

describe('file system', () => {
  let daytona;
  let sb;
  let home;
  let base;
  let local;
  const mine = [];

  async function sh(cmd) {
    const r = await sb.process.executeCommand(cmd);
    assert.equal(r.exitCode, 0, `${cmd}: ${r.result}`);
    return r.result;
  }

  before(async () => {
    local = fs.mkdtempSync(path.join(os.tmpdir(), 'dt-sdk-fs-'));
    daytona = client();
    sb = await daytona.create({ labels: { suite: run } });
    mine.push(sb);
    home = await sb.getUserHomeDir();
    base = `${home}/fs-${run}`;
  }, { timeout: 120_000 });

  after(async () => {
    await deleteAll(daytona, mine);
    await dispose(daytona);
    if (local) fs.rmSync(local, { recursive: true, force: true });
  }, { timeout: 120_000 });

  it('a binary buffer goes up and comes back byte for byte', T, async () => {
    const all = Buffer.alloc(256);
    for (let i = 0; i < 256; i++) all[i] = i;
    // Every byte value, CRLFs, what looks like multipart boundaries, and random bytes.
    const buf = Buffer.concat([all, Buffer.from('\r\n--boundary\r\n\r\n'), crypto.randomBytes(200_000), all]);
    const p = `${base}/bin/nested/data.bin`; // parents are created
    await sb.fs.uploadFile(buf, p);
    const back = await sb.fs.downloadFile(p);
    assert.ok(Buffer.isBuffer(back));
    assert.equal(back.length, buf.length);
    assert.ok(back.equals(buf), 'downloaded bytes differ');
    assert.equal((await sh(`sha256sum '${p}'`)).split(' ')[0], sha256(buf));
    // Overwrite with a shorter file, and an empty one.
    await sb.fs.uploadFile(Buffer.from('short'), p);
    assert.equal((await sb.fs.downloadFile(p)).toString(), 'short');
    await sb.fs.uploadFile(Buffer.alloc(0), `${base}/empty`);
    assert.equal((await sb.fs.downloadFile(`${base}/empty`)).length, 0);
  });

  it('a 50 MiB file, byte for byte, both ways', { timeout: 120_000 }, async () => {
    const big = crypto.randomBytes(50 * MiB);
    const digest = sha256(big);
    const p = `${base}/big.bin`;
    // From a Buffer: a chunked request body.
    await sb.fs.uploadFile(big, p);
    assert.equal((await sh(`stat -c %s '${p}'`)).trim(), String(big.length));
    assert.equal((await sh(`sha256sum '${p}'`)).split(' ')[0], digest);
    const back = await sb.fs.downloadFile(p, 300);
    assert.equal(back.length, big.length);
    assert.equal(sha256(back), digest);
    // To a local file.
    const dst = path.join(local, 'big.out');
    await sb.fs.downloadFile(p, dst, 300);
    assert.equal(fs.statSync(dst).size, big.length);
    assert.equal(sha256(fs.readFileSync(dst)), digest);
    // From a local path: a request with a Content-Length.
    const src = path.join(local, 'big.in');
    fs.writeFileSync(src, big);
    await sb.fs.uploadFile(src, `${base}/big2.bin`, 300);
    assert.equal((await sh(`sha256sum '${base}/big2.bin'`)).split(' ')[0], digest);
    await sb.fs.deleteFile(`${base}/big2.bin`);
  });

  it('several files at once, odd names, a missing file', T, async () => {
    const odd = `${base}/dir with space/ünïcödé + plus&amp.txt`;
    await sb.fs.uploadFiles([
      { source: Buffer.from('one'), destination: `${base}/m/one.txt` },
      { source: Buffer.from('two'), destination: `${base}/m/two.txt` },
      { source: Buffer.from('odd'), destination: odd },
    ]);
    const res = await sb.fs.downloadFiles([
      { source: `${base}/m/one.txt` },
      { source: odd },
      { source: `${base}/m/missing.txt` },
      { source: `${base}/m/two.txt`, destination: path.join(local, 'two.txt') },
    ]);
    assert.equal(res.length, 4);
    const by = Object.fromEntries(res.map((r) => [r.source, r]));
    assert.equal(by[`${base}/m/one.txt`].result.toString(), 'one');
    assert.equal(by[odd].result.toString(), 'odd');
    assert.ok(by[`${base}/m/missing.txt`].error, 'a missing file carries an error');
    assert.equal(fs.readFileSync(path.join(local, 'two.txt'), 'utf8'), 'two');
    await rejectsWith(sb.fs.downloadFile(`${base}/m/missing.txt`), sdk.DaytonaNotFoundError,
      'download of a missing file');
    // Relative paths resolve against the work dir.
    const wd = await sb.getWorkDir();
    await sb.fs.uploadFile(Buffer.from('rel'), `rel-${run}.txt`);
    assert.equal((await sb.fs.downloadFile(`${wd}/rel-${run}.txt`)).toString(), 'rel');
    assert.equal((await sb.fs.downloadFile(`rel-${run}.txt`)).toString(), 'rel');
    await sb.fs.deleteFile(`rel-${run}.txt`);
  });

  it('listFiles, getFileDetails, createFolder', T, async () => {
    const d = `${base}/ls`;
    await sb.fs.createFolder(d, '755');
    await sb.fs.uploadFile(Buffer.from('12345'), `${d}/five.txt`);
    await sb.fs.createFolder(`${d}/sub`, '750');
    assert.equal((await sh(`stat -c %a '${d}/sub'`)).trim(), '750');
    const list = await sb.fs.listFiles(d);
    assert.deepEqual(list.map((f) => f.name).sort(), ['five.txt', 'sub']);
    const five = list.find((f) => f.name === 'five.txt');
    assert.equal(five.isDir, false);
    assert.equal(five.size, 5);
    assert.equal(list.find((f) => f.name === 'sub').isDir, true);
    const info = await sb.fs.getFileDetails(`${d}/five.txt`);
    assert.equal(info.name, 'five.txt');
    assert.equal(info.size, 5);
    assert.equal(info.isDir, false);
    assert.match(info.mode, /^-[rwx-]{9}$/);
    assert.match(info.permissions, /^0[0-7]{3}$/);
    assert.equal(typeof info.owner, 'string');
    assert.ok(!Number.isNaN(new Date(info.modTime).getTime()), `modTime ${info.modTime}`);
    const dinfo = await sb.fs.getFileDetails(`${d}/sub`);
    assert.equal(dinfo.isDir, true);
    assert.equal(dinfo.permissions, '0750');
    await rejectsWith(sb.fs.getFileDetails(`${d}/nope`), sdk.DaytonaNotFoundError, 'details of a missing file');
    await rejectsWith(sb.fs.listFiles(`${d}/nope`), sdk.DaytonaNotFoundError, 'list of a missing dir');
  });

  it('moveFiles and deleteFile', T, async () => {
    const d = `${base}/mv`;
    await sb.fs.uploadFile(Buffer.from('moving'), `${d}/a.txt`);
    await sb.fs.moveFiles(`${d}/a.txt`, `${d}/b.txt`);
    await rejectsWith(sb.fs.getFileDetails(`${d}/a.txt`), sdk.DaytonaNotFoundError, 'moved away');
    assert.equal((await sb.fs.downloadFile(`${d}/b.txt`)).toString(), 'moving');
    await sb.fs.createFolder(`${d}/sub`, '755');
    await sb.fs.moveFiles(`${d}/sub`, `${d}/sub2`);
    assert.equal((await sb.fs.getFileDetails(`${d}/sub2`)).isDir, true);
    await sb.fs.deleteFile(`${d}/b.txt`);
    await rejectsWith(sb.fs.getFileDetails(`${d}/b.txt`), sdk.DaytonaNotFoundError, 'deleted');
    // A non-empty directory needs recursive.
    await sb.fs.uploadFile(Buffer.from('x'), `${d}/sub2/x`);
    const e = await rejectsWith(sb.fs.deleteFile(`${d}/sub2`), sdk.DaytonaError, 'non-recursive delete');
    assert.ok(e.statusCode >= 400 && e.statusCode < 500, `status ${e.statusCode}`);
    await sb.fs.deleteFile(`${d}/sub2`, true);
    await rejectsWith(sb.fs.getFileDetails(`${d}/sub2`), sdk.DaytonaNotFoundError, 'deleted dir');
  });

  it('findFiles, searchFiles, replaceInFiles', T, async () => {
    const d = `${base}/find`;
    await sb.fs.uploadFiles([
      { source: Buffer.from('hello\nworld hello\n'), destination: `${d}/a.txt` },
      { source: Buffer.from('nothing here\n'), destination: `${d}/b.txt` },
      { source: Buffer.from('hello from ts\n'), destination: `${d}/deep/c.ts` },
    ]);
    const found = await sb.fs.findFiles(d, 'hello');
    const hits = found.map((m) => `${m.file}:${m.line}:${m.content}`).sort();
    assert.deepEqual(hits, [`${d}/a.txt:1:hello`, `${d}/a.txt:2:world hello`, `${d}/deep/c.ts:1:hello from ts`]);
    const txt = await sb.fs.searchFiles(d, '*.txt');
    assert.deepEqual(txt.files.sort(), [`${d}/a.txt`, `${d}/b.txt`]);
    const ts = await sb.fs.searchFiles(d, '*.ts');
    assert.deepEqual(ts.files, [`${d}/deep/c.ts`]);
    const rep = await sb.fs.replaceInFiles([`${d}/a.txt`, `${d}/deep/c.ts`], 'hello', 'bye');
    assert.equal(rep.length, 2);
    for (const r of rep) assert.equal(r.success, true, JSON.stringify(r));
    assert.equal((await sb.fs.downloadFile(`${d}/a.txt`)).toString(), 'bye\nworld bye\n');
    assert.equal((await sb.fs.downloadFile(`${d}/deep/c.ts`)).toString(), 'bye from ts\n');
    const miss = await sb.fs.replaceInFiles([`${d}/missing.txt`], 'a', 'b');
    assert.equal(miss.length, 1);
    assert.equal(miss[0].success, false);
  });

  it('signed download and upload URLs work without an API key, and rotate', T, async () => {
    const p = `${base}/signed.txt`;
    await sb.fs.uploadFile(Buffer.from('signed content'), p);
    const dl = await sb.downloadUrl(p, 60);
    let r = await fetch(dl);
    assert.equal(r.status, 200);
    assert.equal(await r.text(), 'signed content');
    const tampered = dl.replace('signed.txt', 'other.txt');
    r = await fetch(tampered);
    assert.equal(r.status, 401);
    const up = await sb.uploadUrl(`${base}/via-url.txt`, 60);
    const form = new FormData();
    form.append('file', new Blob([Buffer.from('uploaded by url')]), 'x');
    r = await fetch(up, { method: 'POST', body: form });
    assert.equal(r.status, 200, await r.text());
    assert.equal((await sb.fs.downloadFile(`${base}/via-url.txt`)).toString(), 'uploaded by url');
    await sb.rotateSigningKey();
    r = await fetch(dl);
    assert.equal(r.status, 401);
  });

  it('setFilePermissions', T, async () => {
    const p = `${base}/perm.sh`;
    await sb.fs.uploadFile(Buffer.from('#!/bin/sh\necho perm-ok\n'), p);
    await sb.fs.setFilePermissions(p, { mode: '755' });
    assert.equal((await sh(`stat -c %a '${p}'`)).trim(), '755');
    assert.equal((await sh(p)).trim(), 'perm-ok');
    await sb.fs.setFilePermissions(p, { mode: '600' });
    assert.equal((await sb.fs.getFileDetails(p)).permissions, '0600');
    const user = (await sh('id -un')).trim();
    await sb.fs.setFilePermissions(p, { owner: user, group: user });
    assert.equal((await sh(`stat -c %U:%G '${p}'`)).trim(), `${user}:${user}`);
  });
});
