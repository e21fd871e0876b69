# SPDX-License-Identifier: Apache-2.0
"""The git routes of daytona-agent (contract 3.10) against the real git binary: each test drives
the agent over its unix socket and checks the repository with git itself. The agent's user gets
a private home through --passwd-root, so global config and credentials never touch the host's."""
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from agentclient import Agent  # noqa: E402

GIT = shutil.which("git")


def alive(pid):
    """Whether PID runs (a zombie is dead)."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(") ", 1)[1][0] != "Z"
    except (FileNotFoundError, ProcessLookupError):
        return False


def q(**kw):
    return urllib.parse.urlencode(kw)


@unittest.skipUnless(GIT, "git is not installed")
class GitApiTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="dt-git-api-")
        cls.home = os.path.join(cls.tmp, "home")
        os.makedirs(cls.home)
        os.makedirs(os.path.join(cls.tmp, "etc"))
        uid, gid = os.getuid(), os.getgid()
        with open(os.path.join(cls.tmp, "etc", "passwd"), "w") as f:
            f.write("tester:x:%d:%d:tester:%s:/bin/sh\n" % (uid, gid, cls.home))
        with open(os.path.join(cls.tmp, "etc", "group"), "w") as f:
            f.write("tester:x:%d:\n" % gid)
        env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
        env["HOME"] = cls.home
        cls.env = dict(env, GIT_CONFIG_NOSYSTEM="1")
        cls.agent = Agent(args=["--passwd-root", cls.tmp], env=env)
        r = cls.agent.get("/user-home-dir")
        assert r.json()["dir"] == cls.home, r
        # An identity for everything the tests commit directly with git.
        cls.agent.post("/git/config/user", {"name": "Base", "email": "base@example.com",
                                            "scope": "global"})

    @classmethod
    def tearDownClass(cls):
        cls.agent.close()
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def setUp(self):
        self.dir = tempfile.mkdtemp(dir=self.tmp, prefix="t-")

    def git(self, cwd, *args):
        return subprocess.run([GIT, "-C", cwd, *args], env=self.env, check=True,
                              capture_output=True, text=True).stdout.strip()

    def write(self, path, text):
        with open(path, "w") as f:
            f.write(text)

    def read(self, path):
        with open(path) as f:
            return f.read()

    def ok(self, r):
        self.assertEqual(r.status, 200, r)
        return r.json()

    def err(self, r, status, code=None):
        self.assertEqual(r.status, status, r)
        j = r.json()
        self.assertEqual(j["source"], "DAYTONA_DAEMON", j)
        self.assertIsInstance(j["message"], str)
        if code:
            self.assertEqual(j["code"], code, j)
        return j

    def new_repo(self, name="repo"):
        path = os.path.join(self.dir, name)
        self.ok(self.agent.post("/git/init", {"path": path, "initial_branch": "main"}))
        return path

    def commit_file(self, repo, name, text, msg):
        self.write(os.path.join(repo, name), text)
        self.ok(self.agent.post("/git/add", {"path": repo, "files": [name]}))
        return self.ok(self.agent.post("/git/commit", {"path": repo, "message": msg,
                                                       "author": "Ann", "email": "ann@x.org"}))

    def status(self, repo):
        j = self.ok(self.agent.get("/git/status?" + q(path=repo)))
        return j, {f["name"]: (f["staging"], f["worktree"]) for f in j["fileStatus"]}

    # ---- tests ----

    def test_init_status_add_commit_history(self):
        repo = self.new_repo()
        self.assertTrue(os.path.isdir(os.path.join(repo, ".git")))
        self.assertEqual(self.git(repo, "symbolic-ref", "--short", "HEAD"), "main")

        self.write(os.path.join(repo, "a.txt"), "one\n")
        j, files = self.status(repo)
        self.assertEqual(j["currentBranch"], "main")
        self.assertEqual(files["a.txt"][1], "Untracked")

        self.ok(self.agent.post("/git/add", {"path": repo, "files": ["a.txt"]}))
        _, files = self.status(repo)
        self.assertEqual(files["a.txt"][0], "Added")

        c = self.ok(self.agent.post("/git/commit", {"path": repo, "message": "first\n\nbody",
                                                    "author": "Ann", "email": "ann@x.org"}))
        self.assertEqual(c["hash"], self.git(repo, "rev-parse", "HEAD"))
        self.assertEqual(self.git(repo, "log", "-1", "--format=%an <%ae>"), "Ann <ann@x.org>")
        _, files = self.status(repo)
        self.assertEqual(files, {})

        self.write(os.path.join(repo, "a.txt"), "two\n")
        _, files = self.status(repo)
        self.assertEqual(files["a.txt"], ("Unmodified", "Modified"))

        c2 = self.commit_file(repo, "b.txt", "b\n", "second")
        h = self.ok(self.agent.get("/git/history?" + q(path=repo)))
        self.assertEqual([e["hash"] for e in h], [c2["hash"], c["hash"]])
        self.assertEqual(h[1]["author"], "Ann")
        self.assertEqual(h[1]["email"], "ann@x.org")
        self.assertTrue(h[1]["message"].startswith("first"))
        self.assertRegex(h[1]["timestamp"], r"^\d{4}-\d\d-\d\dT")

        # relative paths resolve against the work dir
        rel = os.path.relpath(repo, self.agent.workdir)
        self.ok(self.agent.get("/git/status?" + q(path=rel)))

    def test_branches(self):
        repo = self.new_repo()
        self.commit_file(repo, "a.txt", "a\n", "init")
        # creating a branch also checks it out (Daytona's behaviour)
        self.ok(self.agent.post("/git/branches", {"path": repo, "name": "feature"}))
        b = self.ok(self.agent.get("/git/branches?" + q(path=repo)))
        self.assertEqual(sorted(b["branches"]), ["feature", "main"])
        self.assertEqual(b["current"], "feature")
        self.ok(self.agent.post("/git/checkout", {"path": repo, "branch": "main"}))
        self.assertEqual(self.ok(self.agent.get("/git/branches?" + q(path=repo)))["current"],
                         "main")

        self.err(self.agent.post("/git/branches", {"path": repo, "name": "feature"}), 409,
                 "GIT_BRANCH_EXISTS")

        self.ok(self.agent.post("/git/checkout", {"path": repo, "branch": "feature"}))
        self.assertEqual(self.ok(self.agent.get("/git/branches?" + q(path=repo)))["current"],
                         "feature")
        self.ok(self.agent.post("/git/checkout", {"path": repo, "branch": "main"}))

        self.ok(self.agent.delete("/git/branches", {"path": repo, "name": "feature"}))
        b = self.ok(self.agent.get("/git/branches?" + q(path=repo)))
        self.assertEqual(b["branches"], ["main"])

        j = self.err(self.agent.post("/git/checkout", {"path": repo, "branch": "nope"}), 404)
        self.assertEqual(j["code"], "GIT_BRANCH_NOT_FOUND")

    def test_clone_push_pull(self):
        # a bare origin with two commits on main and a branch "dev"
        seed = self.new_repo("seed")
        self.commit_file(seed, "a.txt", "1\n", "c1")
        self.commit_file(seed, "a.txt", "2\n", "c2")
        self.git(seed, "branch", "dev")
        bare = os.path.join(self.dir, "origin.git")
        self.ok(self.agent.post("/git/init", {"path": bare, "bare": True,
                                              "initial_branch": "main"}))
        self.git(seed, "push", bare, "main", "dev")
        url = "file://" + bare

        a = os.path.join(self.dir, "a")
        self.ok(self.agent.post("/git/clone", {"url": url, "path": a, "branch": "dev",
                                               "depth": 1}))
        self.assertEqual(self.git(a, "symbolic-ref", "--short", "HEAD"), "dev")
        self.assertEqual(self.git(a, "rev-list", "--count", "HEAD"), "1")

        b = os.path.join(self.dir, "b")
        self.ok(self.agent.post("/git/clone", {"url": url, "path": b}))
        c = os.path.join(self.dir, "c")
        self.ok(self.agent.post("/git/clone", {"url": url, "path": c}))

        # remotes
        r = self.ok(self.agent.get("/git/remotes?" + q(path=b)))
        self.assertIn({"name": "origin", "url": url}, r["remotes"])
        self.ok(self.agent.post("/git/remotes", {"path": b, "name": "mirror", "url": url}))
        r = self.ok(self.agent.get("/git/remotes?" + q(path=b)))
        self.assertEqual(sorted(x["name"] for x in r["remotes"]), ["mirror", "origin"])

        # push from b, pull into c
        pushed = self.commit_file(b, "b.txt", "b\n", "from b")["hash"]
        self.ok(self.agent.post("/git/push", {"path": b}))
        self.assertEqual(self.git(bare, "rev-parse", "main"), pushed)
        self.ok(self.agent.post("/git/pull", {"path": c}))
        self.assertEqual(self.git(c, "rev-parse", "HEAD"), pushed)
        s, _ = self.status(c)
        self.assertEqual((s["ahead"], s["behind"]), (0, 0))

        # a new branch with set_upstream
        self.ok(self.agent.post("/git/branches", {"path": c, "name": "topic"}))
        self.ok(self.agent.post("/git/push", {"path": c, "branch": "topic", "remote": "origin",
                                              "set_upstream": True}))
        self.assertEqual(self.git(c, "rev-parse", "--abbrev-ref", "topic@{upstream}"),
                         "origin/topic")

        # d diverges from origin: its push is rejected
        d = os.path.join(self.dir, "d")
        self.git(self.dir, "clone", "-q", url, d)
        self.git(d, "reset", "-q", "--hard", "HEAD~1")
        self.commit_file(d, "d.txt", "d\n", "from d")
        self.err(self.agent.post("/git/push", {"path": d}), 409, "GIT_PUSH_REJECTED")

        # clone into an existing non-empty directory fails without a 2xx
        r = self.agent.post("/git/clone", {"url": url, "path": b})
        self.assertGreaterEqual(r.status, 400, r)

    def test_reset_restore(self):
        repo = self.new_repo()
        first = self.commit_file(repo, "a.txt", "1\n", "c1")["hash"]
        self.commit_file(repo, "a.txt", "2\n", "c2")
        af = os.path.join(repo, "a.txt")

        # restore the worktree
        self.write(af, "dirty\n")
        self.ok(self.agent.post("/git/restore", {"path": repo, "files": ["a.txt"]}))
        self.assertEqual(self.read(af), "2\n")

        # unstage with restore --staged: the change stays in the worktree
        self.write(af, "staged\n")
        self.ok(self.agent.post("/git/add", {"path": repo, "files": ["a.txt"]}))
        self.ok(self.agent.post("/git/restore", {"path": repo, "files": ["a.txt"],
                                                 "staged": True}))
        _, files = self.status(repo)
        self.assertEqual(files["a.txt"], ("Unmodified", "Modified"))

        # reset files (mixed) unstages, hard reset to a target moves HEAD and the tree
        self.ok(self.agent.post("/git/add", {"path": repo, "files": ["a.txt"]}))
        self.ok(self.agent.post("/git/reset", {"path": repo, "files": ["a.txt"]}))
        _, files = self.status(repo)
        self.assertEqual(files["a.txt"], ("Unmodified", "Modified"))
        self.ok(self.agent.post("/git/reset", {"path": repo, "mode": "hard", "target": first}))
        self.assertEqual(self.git(repo, "rev-parse", "HEAD"), first)
        self.assertEqual(self.read(af), "1\n")

    def test_config(self):
        repo = self.new_repo()
        self.ok(self.agent.post("/git/config", {"key": "dt.test", "value": "v1",
                                                "scope": "global"}))
        self.assertIn("test = v1", self.read(os.path.join(self.home, ".gitconfig")))
        self.assertEqual(self.ok(self.agent.get("/git/config?" + q(key="dt.test",
                                                                   scope="global"))),
                         {"value": "v1"})
        self.assertEqual(self.ok(self.agent.get("/git/config?" + q(key="dt.absent",
                                                                   scope="global"))), {})

        self.ok(self.agent.post("/git/config", {"key": "dt.local", "value": "lv",
                                                "scope": "local", "path": repo}))
        self.assertEqual(self.git(repo, "config", "--local", "dt.local"), "lv")
        self.assertEqual(self.ok(self.agent.get("/git/config?" + q(key="dt.local", scope="local",
                                                                   path=repo)))["value"], "lv")

        self.ok(self.agent.post("/git/config/user", {"name": "Loc", "email": "loc@x.org",
                                                     "scope": "local", "path": repo}))
        self.assertEqual(self.git(repo, "config", "--local", "user.email"), "loc@x.org")
        self.err(self.agent.post("/git/config", {"key": "dt.x", "value": "v", "scope": "wrong"}),
                 400)

    def test_credentials(self):
        cred = os.path.join(self.home, ".git-credentials")
        self.ok(self.agent.post("/git/credentials", {"username": "bob", "password": "s3cr:t",
                                                     "host": "git.example.com"}))
        self.assertIn("https://bob:s3cr%3at@git.example.com",
                      self.read(cred).lower())
        self.assertEqual(self.git(self.home, "config", "--global", "credential.helper"), "store")

    def test_errors(self):
        plain = os.path.join(self.dir, "plain")
        os.makedirs(plain)
        j = self.err(self.agent.get("/git/status?" + q(path=plain)), 404, "GIT_REPO_NOT_FOUND")
        self.assertEqual(j["statusCode"], 404)
        self.err(self.agent.get("/git/status?" + q(path=os.path.join(self.dir, "missing"))), 404,
                 "GIT_REPO_NOT_FOUND")

        # bad bodies
        self.err(self.agent.post("/git/init", b"not json",
                                 headers={"Content-Type": "application/json"}), 400)
        self.err(self.agent.post("/git/init", [1, 2]), 400)
        self.err(self.agent.post("/git/init", {}), 400, "BAD_REQUEST")
        self.err(self.agent.post("/git/add", {"path": plain}), 400)
        self.err(self.agent.post("/git/add", {"path": plain, "files": "x"}), 400)
        self.err(self.agent.post("/git/commit", {"path": plain}), 400)
        self.err(self.agent.post("/git/clone", {"url": "--upload-pack=touch /tmp/x",
                                                "path": plain}), 400)
        self.err(self.agent.post("/git/clone", {"url": "file:///x", "path": plain,
                                                "depth": "deep"}), 400)
        self.err(self.agent.post("/git/branches", {"path": plain, "name": "-D"}), 400)
        self.err(self.agent.delete("/git/branches", {"path": plain}), 400)
        self.err(self.agent.delete("/git/branches"), 400)
        self.err(self.agent.get("/git/config?" + q(scope="global")), 400)
        self.err(self.agent.get("/git/status"), 400, "BAD_REQUEST")
        self.assertEqual(self.agent.request("PUT", "/git/clone", {}).status, 405)

    def test_disconnect_cancels(self):
        # a status that hangs (an fsmonitor hook that sleeps) and a client that goes away: the
        # agent kills the step and keeps serving
        repo = self.new_repo()
        self.commit_file(repo, "a.txt", "a\n", "init")
        pidfile = os.path.join(self.dir, "hook.pid")
        hook = os.path.join(self.dir, "hook.sh")
        self.write(hook, "#!/bin/sh\necho $$ > %s\nexec sleep 60\n" % pidfile)
        os.chmod(hook, 0o755)
        self.git(repo, "config", "core.fsmonitor", hook)
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(self.agent.sock)
        s.sendall(b"GET /git/status?" + q(path=repo).encode() + b" HTTP/1.1\r\nHost: x\r\n\r\n")
        deadline = time.time() + 10
        while not (os.path.exists(pidfile) and os.path.getsize(pidfile)) and time.time() < deadline:
            time.sleep(0.05)
        pid = int(self.read(pidfile))
        s.close()
        deadline = time.time() + 10
        while alive(pid) and time.time() < deadline:
            time.sleep(0.05)
        self.assertFalse(alive(pid), "the hook still runs after the client left")
        self.git(repo, "config", "--unset", "core.fsmonitor")
        self.ok(self.agent.get("/git/status?" + q(path=repo)))

    def test_git_not_installed(self):
        empty = os.path.join(self.dir, "empty-bin")
        os.makedirs(empty)
        env = dict(self.env, PATH=empty)
        env.pop("GIT_CONFIG_NOSYSTEM")
        with Agent(args=["--passwd-root", self.tmp], env=env) as agent:
            r = agent.get("/git/status?" + q(path=self.dir))
            self.assertEqual(r.status, 500, r)
            self.assertIn("git is not installed", r.json()["message"])


if __name__ == "__main__":
    unittest.main(verbosity=2)
