// SPDX-License-Identifier: Apache-2.0
// Process execution through the official SDK: executeCommand (cwd, env, timeout, non-zero exit),
// codeRun in python, javascript and typescript (the latter only when the image has a runner,
// otherwise a clear error), and sessions: sync and async commands, state kept across commands,
// JSON logs, streamed logs with callbacks, input. Run by tests/sdk/run-sdk-tests.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { client, deleteAll, dispose, rejectsWith, sdk, sleep, uniq, until } from './sdk.mjs';

const T = { timeout: 60_000 };
const run = uniq('t02');

describe('process', () => {
  let daytona;
  let py;
  let js;
  let ts;
  const mine = [];

  before(async () => {
    daytona = client();
    const results = await Promise.allSettled([
      daytona.create({ labels: { suite: run } }),
      daytona.create({ language: 'javascript', labels: { suite: run } }),
      daytona.create({ language: 'typescript', labels: { suite: run } }),
    ]);
    for (const r of results) if (r.status === 'fulfilled') mine.push(r.value);
    for (const r of results) if (r.status === 'rejected') throw r.reason;
    [py, js, ts] = results.map((r) => r.value);
  }, { timeout: 120_000 });

  after(async () => {
    await deleteAll(daytona, mine);
    await dispose(daytona);
  }, { timeout: 120_000 });

  describe('executeCommand', () => {
    it('runs a shell command', T, async () => {
      const r = await py.process.executeCommand('echo hello; echo world');
      assert.equal(r.exitCode, 0);
      assert.equal(r.result, 'hello\nworld\n');
      assert.equal(r.artifacts.stdout, r.result);
    });

    it('honours cwd and env', T, async () => {
      const mk = await py.process.executeCommand('mkdir -p /tmp/wd/sub && echo x > /tmp/wd/sub/f');
      assert.equal(mk.exitCode, 0, mk.result);
      const r = await py.process.executeCommand('pwd; ls', '/tmp/wd/sub');
      assert.equal(r.result, '/tmp/wd/sub\nf\n');
      const e = await py.process.executeCommand('echo "$A-$B"', undefined, { A: '1', B: 'two words' });
      assert.equal(e.result, '1-two words\n');
      // The default working directory is the sandbox's work dir (the home of the default image).
      const wd = await py.getWorkDir();
      const d = await py.process.executeCommand('pwd');
      assert.equal(d.result.trim(), wd);
      assert.equal(await py.getUserHomeDir(), '/home/daytona');
    });

    it('reports a non-zero exit as a result, not an error', T, async () => {
      const r = await py.process.executeCommand('echo before; exit 3');
      assert.equal(r.exitCode, 3);
      assert.equal(r.result.trim(), 'before');
      const nf = await py.process.executeCommand('/no/such/program');
      assert.notEqual(nf.exitCode, 0);
    });

    it('stops a command at its timeout', T, async () => {
      const t0 = Date.now();
      const err = await rejectsWith(py.process.executeCommand('sleep 30', undefined, undefined, 1),
        sdk.DaytonaTimeoutError, 'sleep 30 with timeout 1');
      assert.ok(Date.now() - t0 < 15_000, `took ${Date.now() - t0} ms`);
      assert.ok(err instanceof sdk.DaytonaProcessExecutionTimeoutError || err.statusCode === 408,
        `${err.constructor.name} ${err.statusCode}`);
      // A timeout long enough lets it finish.
      const ok = await py.process.executeCommand('sleep 0.2; echo done', undefined, undefined, 10);
      assert.equal(ok.result.trim(), 'done');
    });
  });

  describe('codeRun', () => {
    it('python, with argv and env', T, async () => {
      const r = await py.process.codeRun(
        'import sys, os\nprint("py", sys.argv[1:], os.environ.get("X"))\n',
        { argv: ['a', 'b c'], env: { X: 'y' } });
      assert.equal(r.exitCode, 0, r.result);
      assert.equal(r.result.trim(), "py ['a', 'b c'] y");
      assert.deepEqual(r.artifacts.charts, []);
      const e = await py.process.codeRun('import sys\nprint("bye")\nsys.exit(4)\n');
      assert.equal(e.exitCode, 4);
      assert.match(e.result, /bye/);
      const x = await py.process.codeRun('1/0\n');
      assert.notEqual(x.exitCode, 0);
      assert.match(x.result, /ZeroDivisionError/);
    });

    it('javascript, with argv and env', T, async () => {
      assert.equal(js.labels['code-toolbox-language'], 'javascript');
      const r = await js.process.codeRun(
        'console.log("js", process.argv.slice(2).join("+"), process.env.X)',
        { argv: ['1', '2'], env: { X: 'y' } });
      assert.equal(r.exitCode, 0, r.result);
      assert.equal(r.result.trim(), 'js 1+2 y');
      const e = await js.process.codeRun('process.exit(6)');
      assert.equal(e.exitCode, 6);
    });

    it('typescript when the image has a runner, else a clear error', T, async () => {
      assert.equal(ts.labels['code-toolbox-language'], 'typescript');
      let r;
      try {
        r = await ts.process.codeRun('const n: number = 40 + 2;\nconsole.log(`ts ${n}`);\n');
      } catch (e) {
        assert.ok(e instanceof sdk.DaytonaError, `${e}`);
        assert.ok(e.statusCode >= 400 && e.statusCode < 500, `status ${e.statusCode}: ${e.message}`);
        assert.match(e.message, /typescript|tsx|ts-node/i);
        return;
      }
      assert.equal(r.exitCode, 0, r.result);
      assert.equal(r.result.trim(), 'ts 42');
    });
  });

  describe('sessions', () => {
    const sid = uniq('sess');

    it('sync commands share one shell', T, async () => {
      await py.process.createSession(sid);
      const a = await py.process.executeSessionCommand(sid, { command: 'export V=42; cd /tmp' });
      assert.equal(a.exitCode, 0);
      assert.equal(typeof a.cmdId, 'string');
      const b = await py.process.executeSessionCommand(sid, { command: 'echo "$V"; pwd' });
      assert.equal(b.exitCode, 0);
      assert.equal(b.stdout, '42\n/tmp\n');
      assert.equal(b.output, '42\n/tmp\n');
      const c = await py.process.executeSessionCommand(sid,
        { command: 'echo out; echo err >&2; (exit 5)' });
      assert.equal(c.exitCode, 5);
      assert.equal(c.stdout, 'out\n');
      assert.equal(c.stderr, 'err\n');
      const cmd = await py.process.getSessionCommand(sid, c.cmdId);
      assert.equal(cmd.id, c.cmdId);
      assert.equal(cmd.exitCode, 5);
      assert.match(cmd.command, /echo out/);
      const logs = await py.process.getSessionCommandLogs(sid, c.cmdId);
      assert.equal(logs.stdout, 'out\n');
      assert.equal(logs.stderr, 'err\n');
      const s = await py.process.getSession(sid);
      assert.equal(s.sessionId, sid);
      assert.ok(s.commands.length >= 3, JSON.stringify(s.commands));
      assert.ok(s.commands.some((x) => x.id === c.cmdId));
      const all = await py.process.listSessions();
      assert.ok(all.some((x) => x.sessionId === sid), JSON.stringify(all));
    });

    it('async command with streamed logs through callbacks', T, async () => {
      const r = await py.process.executeSessionCommand(sid, {
        command: 'for i in 1 2 3; do echo line$i; echo eline$i >&2; sleep 0.3; done',
        runAsync: true,
      });
      assert.equal(typeof r.cmdId, 'string');
      assert.equal(r.exitCode, undefined);
      const running = await py.process.getSessionCommand(sid, r.cmdId);
      assert.equal(running.exitCode, undefined, 'exitCode is absent while the command runs');
      let out = '';
      let err = '';
      const t0 = Date.now();
      await py.process.getSessionCommandLogs(sid, r.cmdId, (c) => { out += c; }, (c) => { err += c; });
      assert.equal(out, 'line1\nline2\nline3\n');
      assert.equal(err, 'eline1\neline2\neline3\n');
      assert.ok(Date.now() - t0 >= 300, 'the stream followed the running command');
      const done = await py.process.getSessionCommand(sid, r.cmdId);
      assert.equal(done.exitCode, 0);
      // Following a finished command replays everything and ends.
      let again = '';
      await py.process.getSessionCommandLogs(sid, r.cmdId, (c) => { again += c; }, () => {});
      assert.equal(again, out);
    });

    it('streams large output (many WebSocket frames)', T, async () => {
      const r = await py.process.executeSessionCommand(sid, { command: 'seq 1 50000', runAsync: true });
      let out = '';
      await py.process.getSessionCommandLogs(sid, r.cmdId, (c) => { out += c; }, () => {});
      const lines = out.split('\n');
      assert.equal(lines.length, 50001);
      assert.equal(lines[0], '1');
      assert.equal(lines[49999], '50000');
    });

    it('input reaches a running command', T, async () => {
      const r = await py.process.executeSessionCommand(sid,
        { command: 'read x; echo "got $x"', runAsync: true });
      await sleep(200);
      await py.process.sendSessionCommandInput(sid, r.cmdId, 'hello\n');
      const done = await until(async () => {
        const c = await py.process.getSessionCommand(sid, r.cmdId);
        return c.exitCode !== undefined ? c : null;
      });
      assert.ok(done, 'the command finished after its input');
      assert.equal(done.exitCode, 0);
      const logs = await py.process.getSessionCommandLogs(sid, r.cmdId);
      assert.match(logs.stdout, /got hello\n$/);
      await rejectsWith(py.process.sendSessionCommandInput(sid, r.cmdId, 'late\n'),
        sdk.DaytonaGoneError, 'input to a finished command');
      // suppressInputEcho keeps the input out of the output.
      const q = await py.process.executeSessionCommand(sid,
        { command: 'read y; echo "got $y"', runAsync: true, suppressInputEcho: true });
      await sleep(200);
      await py.process.sendSessionCommandInput(sid, q.cmdId, 'secret\n');
      await until(async () => (await py.process.getSessionCommand(sid, q.cmdId)).exitCode !== undefined);
      const ql = await py.process.getSessionCommandLogs(sid, q.cmdId);
      assert.equal(ql.stdout, 'got secret\n');
    });

    it('delete a session; a missing one is DaytonaNotFoundError', T, async () => {
      await py.process.deleteSession(sid);
      await rejectsWith(py.process.getSession(sid), sdk.DaytonaNotFoundError, 'deleted session');
      await rejectsWith(py.process.executeSessionCommand(uniq('nosess'), { command: 'true' }),
        sdk.DaytonaNotFoundError, 'exec in a missing session');
      const all = await py.process.listSessions();
      assert.ok(!all.some((x) => x.sessionId === sid));
    });
  });
});
