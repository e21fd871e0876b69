// SPDX-License-Identifier: Apache-2.0
// Sandbox lifecycle through the official SDK: create with labels/env/resources/intervals, get by
// id and by name, list with a label filter and cursor pagination, stop/start keeping files,
// archive and start again, resize, setLabels, the interval setters, delete, and the error classes
// (missing sandbox, bad API key, invalid requests). Run by tests/sdk/run-sdk-tests against a real `daytonad serve`.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { client, deleteAll, dispose, rejectsWith, sdk, uniq } from './sdk.mjs';

const T = { timeout: 90_000 };
const run = uniq('t01');

async function collect(iter) {
  const out = [];
  for await (const sb of iter) out.push(sb);
  return out;
}

describe('sandbox lifecycle', () => {
  let daytona;
  let a; // the sandbox with everything set at create
  let b;
  let c; // deleted by its test
  const mine = [];

  before(async () => {
    daytona = client();
    [a, b, c] = await Promise.all([
      daytona.create({
        name: `${run}-a`,
        labels: { suite: run, role: 'a' },
        envVars: { FOO: 'bar baz', EMPTY: '' },
        resources: { cpu: 2, memory: 2, disk: 4 },
        autoStopInterval: 30,
        autoArchiveInterval: 120,
        autoDeleteInterval: -1,
      }),
      daytona.create({ labels: { suite: run, role: 'b' } }),
      daytona.create({ name: `${run}-c`, labels: { suite: run, role: 'c' } }),
    ]);
    mine.push(a, b, c);
  }, { timeout: 120_000 });

  after(async () => {
    await deleteAll(daytona, mine);
    await dispose(daytona);
  }, { timeout: 120_000 });

  it('create returns a started sandbox carrying what was asked for', T, async () => {
    assert.equal(typeof a.id, 'string');
    assert.ok(a.id.length > 0);
    assert.equal(a.state, 'started');
    assert.equal(a.name, `${run}-a`);
    assert.equal(a.labels.suite, run);
    assert.equal(a.labels.role, 'a');
    assert.equal(a.labels['code-toolbox-language'], 'python');
    assert.equal(a.env?.FOO, 'bar baz');
    assert.equal(a.cpu, 2);
    assert.equal(a.memory, 2);
    assert.equal(a.disk, 4);
    assert.equal(a.autoStopInterval, 30);
    assert.equal(a.autoArchiveInterval, 120);
    assert.equal(a.autoDeleteInterval, -1);
    assert.equal(typeof a.toolboxProxyUrl, 'string');
    assert.match(a.toolboxProxyUrl, /^http:\/\//);
    assert.equal(typeof a.organizationId, 'string');
    assert.ok(!Number.isNaN(new Date(a.createdAt).getTime()), `createdAt ${a.createdAt}`);
    // Defaults for a plain create: 1 vCPU, 1 GiB, 3 GiB, the default user.
    assert.equal(b.state, 'started');
    assert.equal(b.cpu, 1);
    assert.equal(b.memory, 1);
    assert.equal(b.disk, 3);
    assert.equal(typeof b.name, 'string');
    assert.ok(b.name.length > 0, 'an unnamed sandbox still gets a name');
    assert.notEqual(a.id, b.id);
    // The env reaches processes in the sandbox.
    const r = await a.process.executeCommand('printf "%s|%s" "$FOO" "${EMPTY-unset}"');
    assert.equal(r.exitCode, 0);
    assert.equal(r.result, 'bar baz|');
  });

  it('get by id and by name', T, async () => {
    const byId = await daytona.get(a.id);
    assert.equal(byId.id, a.id);
    assert.equal(byId.name, a.name);
    assert.equal(byId.state, 'started');
    assert.deepEqual(byId.labels, a.labels);
    assert.equal(byId.env?.FOO, 'bar baz');
    const byName = await daytona.get(`${run}-a`);
    assert.equal(byName.id, a.id);
    // The Sandbox from get() drives the toolbox like the one from create().
    const r = await byName.process.executeCommand('echo hi');
    assert.equal(r.result.trim(), 'hi');
  });

  it('list filters by labels and follows the pagination cursor', T, async () => {
    const all = await collect(daytona.list({ labels: { suite: run }, limit: 1 }));
    assert.deepEqual(all.map((s) => s.id).sort(), [a.id, b.id, c.id].sort());
    for (const s of all) {
      assert.equal(s.labels.suite, run);
      assert.equal(typeof s.toolboxProxyUrl, 'string');
    }
    const onlyA = await collect(daytona.list({ labels: { suite: run, role: 'a' } }));
    assert.deepEqual(onlyA.map((s) => s.id), [a.id]);
    const none = await collect(daytona.list({ labels: { suite: run, role: 'nobody' } }));
    assert.equal(none.length, 0);
    const started = await collect(daytona.list({ labels: { suite: run }, states: ['started'] }));
    assert.equal(started.length, 3);
    const stopped = await collect(daytona.list({ labels: { suite: run }, states: ['stopped'] }));
    assert.equal(stopped.length, 0);

    // On the wire, limit=1 must really page: one item and a cursor (the SDK followed it above).
    const q = new URLSearchParams({ limit: '1', labels: JSON.stringify({ suite: run }) });
    const res = await fetch(`${process.env.DAYTONA_API_URL}/sandbox?${q}`, {
      headers: { Authorization: `Bearer ${process.env.DAYTONA_API_KEY}` },
    });
    assert.equal(res.status, 200);
    const page = await res.json();
    assert.equal(page.items.length, 1);
    assert.ok(page.nextCursor, 'a first page of 1 out of 3 has a nextCursor');
    assert.equal(page.items[0].env, undefined, 'list items are not full records');
  });

  it('stop and start keep the files', T, async () => {
    const w = await b.process.executeCommand('echo kept-across-restart > keep.txt && pwd');
    assert.equal(w.exitCode, 0);
    const dir = w.result.trim();
    await daytona.stop(b);
    assert.equal(b.state, 'stopped');
    assert.equal((await daytona.get(b.id)).state, 'stopped');
    // The toolbox refuses a stopped sandbox with an error (not a hang, not a 2xx).
    await rejectsWith(b.process.executeCommand('true'), sdk.DaytonaError, 'exec on a stopped sandbox');
    await daytona.start(b);
    assert.equal(b.state, 'started');
    const r = await b.process.executeCommand(`cat ${dir}/keep.txt`);
    assert.equal(r.exitCode, 0);
    assert.equal(r.result.trim(), 'kept-across-restart');
  });

  it('archive a stopped sandbox, then start it again with its files', T, async () => {
    await b.process.executeCommand('echo archived > archived.txt');
    // Archiving a started sandbox is refused with a clear error: stop it first.
    await rejectsWith(b.archive(), sdk.DaytonaError, 'archive a started sandbox');
    await daytona.stop(b);
    await b.archive();
    assert.equal(b.state, 'archived');
    assert.equal((await daytona.get(b.id)).state, 'archived');
    await daytona.start(b);
    assert.equal(b.state, 'started');
    const r = await b.process.executeCommand('cat archived.txt');
    assert.equal(r.result.trim(), 'archived');
  });

  it('setLabels replaces the labels', T, async () => {
    const labels = await a.setLabels({ suite: run, role: 'a', extra: 'x y/z' });
    assert.equal(labels.extra, 'x y/z');
    assert.equal(a.labels.extra, 'x y/z');
    const got = await daytona.get(a.id);
    assert.equal(got.labels.extra, 'x y/z');
    assert.equal(got.labels.role, 'a');
    // daytonad keeps code-toolbox-language when a replace omits it (contract §5.1), so a
    // Sandbox from a later get() can still codeRun.
    assert.equal(got.labels['code-toolbox-language'], 'python');
    const filtered = await collect(daytona.list({ labels: { extra: 'x y/z', suite: run } }));
    assert.deepEqual(filtered.map((s) => s.id), [a.id]);
    await a.setLabels({ suite: run, role: 'a' });
    assert.equal((await daytona.get(a.id)).labels.extra, undefined);
  });

  it('resize a running sandbox: its limits and what it sees follow', T, async () => {
    assert.equal((await a.process.executeCommand('nproc')).result.trim(), '2');
    await a.resize({ cpu: 1, memory: 1, disk: 5 });
    assert.equal(a.cpu, 1);
    assert.equal(a.memory, 1);
    assert.equal(a.disk, 5);
    const fresh = await daytona.get(a.id);
    assert.equal(fresh.cpu, 1);
    assert.equal(fresh.state, 'started');
    assert.equal((await a.process.executeCommand('nproc')).result.trim(), '1');
    const mem = await a.process.executeCommand("awk '/MemTotal/ {print $2}' /proc/meminfo");
    assert.equal(Number(mem.result.trim()), 1024 * 1024, mem.result);
    // The disk only grows; out-of-range values are refused before anything changes.
    await rejectsWith(a.resize({ disk: 4 }), sdk.DaytonaError, 'shrink the disk');
    await rejectsWith(a.resize({ cpu: 64 }), sdk.DaytonaError, 'too many CPUs');
  });

  it('auto-stop, auto-archive and auto-delete intervals', T, async () => {
    await a.setAutostopInterval(0);
    await a.setAutoArchiveInterval(60);
    await a.setAutoDeleteInterval(90);
    await a.refreshData();
    assert.equal(a.autoStopInterval, 0);
    assert.equal(a.autoArchiveInterval, 60);
    assert.equal(a.autoDeleteInterval, 90);
    await a.setAutoDeleteInterval(-1);
    await a.setAutostopInterval(15);
    const got = await daytona.get(a.id);
    assert.equal(got.autoDeleteInterval, -1);
    assert.equal(got.autoStopInterval, 15);
    assert.equal(got.state, 'started');
    // The SDK checks these locally, before any request.
    await rejectsWith(a.setAutostopInterval(-1), sdk.DaytonaInvalidArgumentError, 'autostop -1');
    await rejectsWith(a.setAutoArchiveInterval(1.5), sdk.DaytonaInvalidArgumentError, 'autoarchive 1.5');
  });

  it('delete, then the sandbox is gone', T, async () => {
    await daytona.delete(c, 60, true);
    mine.splice(mine.indexOf(c), 1);
    assert.equal(c.state, 'destroyed');
    try {
      const g = await daytona.get(c.id);
      assert.equal(g.state, 'destroyed');
    } catch (e) {
      assert.ok(e instanceof sdk.DaytonaNotFoundError, `get after delete: ${e}`);
    }
    const left = await collect(daytona.list({ labels: { suite: run } }));
    assert.ok(!left.some((s) => s.id === c.id), 'a deleted sandbox is not listed');
    // Its name is free again.
    await rejectsWith(daytona.get(`${run}-c`), sdk.DaytonaNotFoundError, 'get by the deleted name');
  });

  it('errors: missing sandbox, bad requests', T, async () => {
    await rejectsWith(daytona.get(uniq('no-such-sandbox')), sdk.DaytonaNotFoundError, 'get missing');
    await rejectsWith(daytona.get('00000000-0000-4000-8000-000000000000'), sdk.DaytonaNotFoundError,
      'get missing uuid');
    // A name already taken: a 4xx (409 expected), nothing created.
    const dup = await rejectsWith(daytona.create({ name: `${run}-a`, labels: { suite: run } }),
      sdk.DaytonaError, 'duplicate name');
    assert.ok(dup.statusCode >= 400 && dup.statusCode < 500, `duplicate name: status ${dup.statusCode}`);
    // Resources above the limits (4 vCPU, 8 GiB, 10 GiB): a 4xx, nothing created.
    const big = await rejectsWith(daytona.create({ labels: { suite: run }, resources: { cpu: 64 } }),
      sdk.DaytonaError, 'cpu 64');
    assert.ok(big.statusCode >= 400 && big.statusCode < 500, `cpu 64: status ${big.statusCode}`);
    const left = await collect(daytona.list({ labels: { suite: run } }));
    assert.deepEqual(left.map((s) => s.id).sort(), [a.id, b.id].sort());
    // Local validation: no request at all.
    await rejectsWith(daytona.create({ language: 'cobol' }), sdk.DaytonaInvalidArgumentError, 'language');
  });

  it('a bad API key is refused with DaytonaAuthenticationError', T, async () => {
    const bad = new sdk.Daytona({ apiKey: 'dtk_not_a_valid_key', apiUrl: process.env.DAYTONA_API_URL });
    try {
      await rejectsWith(bad.get(a.id), sdk.DaytonaAuthenticationError, 'get with a bad key');
      await rejectsWith(bad.list().next(), sdk.DaytonaAuthenticationError, 'list with a bad key');
      await rejectsWith(bad.create({ labels: { suite: run } }), sdk.DaytonaAuthenticationError,
        'create with a bad key');
    } finally {
      await dispose(bad);
    }
    // The toolbox checks the key too: a Sandbox object built with a good key, used with a bad
    // one, is refused (401) rather than served.
    const res = await fetch(`${a.toolboxProxyUrl.replace(/\/$/, '')}/${a.id}/process/execute`, {
      method: 'POST',
      headers: { Authorization: 'Bearer dtk_not_a_valid_key', 'Content-Type': 'application/json' },
      body: JSON.stringify({ command: 'echo no' }),
    });
    assert.equal(res.status, 401);
    // Nothing was created with the bad key.
    const left = await collect(daytona.list({ labels: { suite: run } }));
    assert.deepEqual(left.map((s) => s.id).sort(), [a.id, b.id].sort());
  });
});
