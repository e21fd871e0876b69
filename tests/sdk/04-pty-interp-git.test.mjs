// SPDX-License-Identifier: Apache-2.0
// PTY, code interpreter and git through the official SDK: createPty with env and size, input,
// resize, exit code, reattach with connectPty, kill; interpreter state in the default context and
// in created contexts, errors, env, timeout; git clone of a bare repository made inside the sandbox
// (file:// URL), then status, add, commit, branches, checkout, push.
// Run by tests/sdk/run-sdk-tests.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { client, deleteAll, dispose, rejectsWith, sdk, uniq, until } from './sdk.mjs';

const T = { timeout: 60_000 };
const run = uniq('t04');

describe('pty, interpreter, git', () => {
  let daytona;
  let sb;
  const mine = [];

  async function sh(cmd) {
    const r = await sb.process.executeCommand(cmd);
    assert.equal(r.exitCode, 0, `${cmd}: ${r.result}`);
    return r.result;
  }

  before(async () => {
    daytona = client();
    sb = await daytona.create({ labels: { suite: run } });
    mine.push(sb);
  }, { timeout: 120_000 });

  after(async () => {
    await deleteAll(daytona, mine);
    await dispose(daytona);
  }, { timeout: 120_000 });

  describe('pty', () => {
    it('create with env and size, input, resize, exit code', T, async () => {
      const id = uniq('pty');
      const dec = new TextDecoder();
      let out = '';
      const h = await sb.process.createPty({
        id, cols: 100, rows: 30, envs: { PTYVAR: 'pty value' },
        onData: (d) => { out += dec.decode(d, { stream: true }); },
      });
      try {
        assert.equal(h.sessionId, id);
        assert.ok(h.isConnected());
        await h.sendInput('echo "v=$PTYVAR"; stty size\n');
        assert.ok(await until(() => out.includes('v=pty value') && out.includes('30 100')),
          `pty output: ${JSON.stringify(out)}`);
        const info = await h.resize(120, 40);
        assert.equal(info.cols, 120);
        assert.equal(info.rows, 40);
        await h.sendInput('stty size\n');
        assert.ok(await until(() => out.includes('40 120')), `after resize: ${JSON.stringify(out)}`);
        const got = await sb.process.getPtySessionInfo(id);
        assert.equal(got.id, id);
        assert.equal(got.active, true);
        assert.equal(got.cols, 120);
        const list = await sb.process.listPtySessions();
        assert.ok(list.some((p) => p.id === id), JSON.stringify(list));
        await h.sendInput('exit 7\n');
        const res = await h.wait();
        assert.equal(res.exitCode, 7);
        assert.equal(h.exitCode, 7);
      } finally {
        await h.disconnect();
      }
    });

    it('reattach with connectPty, then kill', T, async () => {
      const id = uniq('pty');
      const dec = new TextDecoder();
      let first = '';
      const h1 = await sb.process.createPty({ id, onData: (d) => { first += dec.decode(d, { stream: true }); } });
      await h1.sendInput('export KEEP=still-here\n');
      await h1.disconnect();
      let out = '';
      const h2 = await sb.process.connectPty(id, { onData: (d) => { out += dec.decode(d, { stream: true }); } });
      try {
        await h2.sendInput('echo "k=$KEEP"\n');
        assert.ok(await until(() => out.includes('k=still-here')), `reattached: ${JSON.stringify(out)}`);
        await h2.kill();
        const res = await h2.wait();
        assert.equal(typeof res.exitCode, 'number');
      } finally {
        await h2.disconnect();
      }
      assert.ok(await until(async () => {
        const list = await sb.process.listPtySessions();
        return !list.some((p) => p.id === id && p.active);
      }), 'a killed PTY is no longer active');
      // Attaching to an unknown PTY fails.
      await rejectsWith(sb.process.connectPty(uniq('nopty'), { onData: () => {} }), sdk.DaytonaError,
        'connect to a missing pty');
    });
  });

  describe('code interpreter', () => {
    it('keeps state in the default context; errors and env', T, async () => {
      const a = await sb.codeInterpreter.runCode('x = 21\nimport sys\n');
      assert.equal(a.error, undefined);
      const chunks = [];
      const b = await sb.codeInterpreter.runCode('print(x * 2)', { onStdout: (m) => { chunks.push(m.output); } });
      assert.equal(b.stdout, '42\n');
      assert.equal(chunks.join(''), '42\n');
      const c = await sb.codeInterpreter.runCode('print("to err", file=sys.stderr)');
      assert.equal(c.stderr, 'to err\n');
      const e = await sb.codeInterpreter.runCode('print("before")\n1/0\n');
      assert.equal(e.stdout, 'before\n');
      assert.ok(e.error, 'the exception is reported');
      assert.equal(e.error.name, 'ZeroDivisionError');
      const v = await sb.codeInterpreter.runCode('import os\nprint(os.environ.get("Q"))', { envs: { Q: 'qv' } });
      assert.equal(v.stdout, 'qv\n');
      // State survived the error.
      assert.equal((await sb.codeInterpreter.runCode('print(x)')).stdout, '21\n');
    });

    it('contexts are separate and can be deleted', T, async () => {
      const ctx = await sb.codeInterpreter.createContext('/tmp');
      assert.equal(typeof ctx.id, 'string');
      assert.equal(ctx.cwd, '/tmp');
      const r = await sb.codeInterpreter.runCode('import os\ny = 5\nprint(os.getcwd())', { context: ctx });
      assert.equal(r.stdout, '/tmp\n');
      assert.equal((await sb.codeInterpreter.runCode('print(y)', { context: ctx })).stdout, '5\n');
      const other = await sb.codeInterpreter.runCode('print(y)');
      assert.equal(other.error?.name, 'NameError', 'the default context does not see y');
      const list = await sb.codeInterpreter.listContexts();
      assert.ok(list.some((c) => c.id === ctx.id), JSON.stringify(list));
      await sb.codeInterpreter.deleteContext(ctx);
      const left = await sb.codeInterpreter.listContexts();
      assert.ok(!left.some((c) => c.id === ctx.id));
    });

    it('a timeout is DaytonaTimeoutError and the interpreter recovers', T, async () => {
      const t0 = Date.now();
      await rejectsWith(sb.codeInterpreter.runCode('import time\ntime.sleep(30)', { timeout: 1 }),
        sdk.DaytonaTimeoutError, 'sleep 30 with timeout 1');
      assert.ok(Date.now() - t0 < 15_000, `took ${Date.now() - t0} ms`);
      assert.equal((await sb.codeInterpreter.runCode('print(1 + 1)')).stdout, '2\n');
    });
  });

  describe('git', () => {
    let repo;
    let bare;

    before(async () => {
      const home = await sb.getUserHomeDir();
      bare = `${home}/origin-${run}.git`;
      repo = `${home}/clone-${run}`;
      // A bare repository with one commit on main, made with git inside the sandbox.
      await sh([
        `git init -q --bare -b main '${bare}'`,
        `git init -q -b main /tmp/seed-${run}`,
        `cd /tmp/seed-${run}`,
        'echo "# seed" > README.md',
        'git add README.md',
        'git -c user.name=Seed -c user.email=seed@example.com commit -q -m seed',
        `git push -q '${bare}' main`,
      ].join(' && '));
    }, { timeout: 60_000 });

    it('clone from a file:// URL, status, add, commit, branches, push', T, async () => {
      await sb.git.clone(`file://${bare}`, repo);
      assert.equal((await sh(`cat '${repo}/README.md'`)), '# seed\n');
      let st = await sb.git.status(repo);
      assert.equal(st.currentBranch, 'main');
      assert.deepEqual(st.fileStatus, []);

      await sb.fs.uploadFile(Buffer.from('new file\n'), `${repo}/new.txt`);
      st = await sb.git.status(repo);
      const untracked = st.fileStatus.find((f) => f.name === 'new.txt');
      assert.ok(untracked, JSON.stringify(st.fileStatus));
      assert.equal(untracked.worktree, 'Untracked');
      await sb.git.add(repo, ['new.txt']);
      st = await sb.git.status(repo);
      assert.equal(st.fileStatus.find((f) => f.name === 'new.txt')?.staging, 'Added');

      const c = await sb.git.commit(repo, 'add new.txt', 'Test Author', 'author@example.com');
      assert.match(c.sha, /^[0-9a-f]{40}$/);
      assert.equal((await sh(`git -C '${repo}' rev-parse HEAD`)).trim(), c.sha);
      assert.equal((await sh(`git -C '${repo}' log -1 --format='%an <%ae> %s'`)).trim(),
        'Test Author <author@example.com> add new.txt');
      st = await sb.git.status(repo);
      assert.deepEqual(st.fileStatus, []);
      assert.equal(st.ahead, 1);

      let br = await sb.git.branches(repo);
      assert.ok(br.branches.includes('main'), JSON.stringify(br));
      await sb.git.createBranch(repo, 'feature');
      br = await sb.git.branches(repo);
      assert.ok(br.branches.includes('feature'), JSON.stringify(br));
      await sb.git.checkoutBranch(repo, 'feature');
      assert.equal((await sb.git.status(repo)).currentBranch, 'feature');
      await sb.git.checkoutBranch(repo, 'main');
      await sb.git.deleteBranch(repo, 'feature');
      br = await sb.git.branches(repo);
      assert.ok(!br.branches.includes('feature'), JSON.stringify(br));

      await sb.git.push(repo);
      assert.equal((await sh(`git --git-dir='${bare}' rev-parse main`)).trim(), c.sha);
      assert.equal((await sb.git.status(repo)).ahead ?? 0, 0);
    });

    it('git errors are DaytonaErrors', T, async () => {
      await rejectsWith(sb.git.clone(`file://${bare}-missing`, `${repo}-2`), sdk.DaytonaError, 'clone missing');
      await rejectsWith(sb.git.status(`/tmp/not-a-repo-${run}`), sdk.DaytonaError, 'status outside a repo');
      await rejectsWith(sb.git.checkoutBranch(repo, 'no-such-branch'), sdk.DaytonaError, 'checkout missing');
    });
  });
});
