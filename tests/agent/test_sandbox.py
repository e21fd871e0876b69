# SPDX-License-Identifier: Apache-2.0
"""daytona-agent as PID 1 of a real sandbox (`daytonad run --agent`): the toolbox API over the
socket daytonad hands it, with the runtime's namespaces, cgroups and seccomp in force. The image
is busybox plus the host's /usr bound read-only (python3, git, node come from there)."""
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import agentclient as ac  # noqa: E402

DAYTONAD = os.environ.get("DT_DAYTONAD", "build/bin/daytonad")
BOUNDARY = "----------------------------" + "feedfacecafebeef01234567"


def make_rootfs(d):
    for sub in ("bin", "etc", "tmp", "root", "home/daytona", "proc", "sys", "dev", "usr"):
        os.makedirs(os.path.join(d, sub), exist_ok=True)
    os.chmod(os.path.join(d, "tmp"), 0o1777)
    shutil.copy("/bin/busybox", os.path.join(d, "bin/busybox"))
    for a in ("sh", "cat", "echo", "ls", "id", "sleep", "mkdir", "rm", "env", "ps", "kill", "stty",
              "head", "wc", "seq", "yes", "dd"):
        os.symlink("busybox", os.path.join(d, "bin", a))
    os.symlink("usr/lib", os.path.join(d, "lib"))
    os.symlink("usr/lib64", os.path.join(d, "lib64"))
    with open(os.path.join(d, "etc/passwd"), "w") as f:
        f.write("root:x:0:0:root:/root:/bin/sh\ndaytona:x:1000:1000::/home/daytona:/bin/sh\n")
    with open(os.path.join(d, "etc/group"), "w") as f:
        f.write("root:x:0:\ndaytona:x:1000:\n")
    os.chown(os.path.join(d, "home/daytona"), 1000, 1000)


class SandboxAgent(ac.Agent):
    """An agent started by `daytonad run --agent` in a sandbox."""

    def __init__(self, extra_args=()):
        self.dir = tempfile.mkdtemp(prefix="dt-sandbox-agent-")
        self.sock = os.path.join(self.dir, "agent.sock")
        self.workdir = "/home/daytona"
        rootfs = os.path.join(self.dir, "rootfs")
        make_rootfs(rootfs)
        env = dict(os.environ, DAYTONA_RUN_STATE_DIR=os.path.join(self.dir, "state"))
        if os.environ.get("DT_AGENT"):
            env["DAYTONA_AGENT_BIN"] = os.environ["DT_AGENT"]
        self.log = open(os.path.join(self.dir, "agent.log"), "wb")
        self.proc = subprocess.Popen(
            [DAYTONAD, "run", "--agent", self.sock, "--bind", "/usr:/usr:ro", *extra_args, rootfs],
            stdin=subprocess.DEVNULL, stdout=self.log, stderr=subprocess.STDOUT, env=env)
        self.conn = None
        deadline = time.time() + 15
        while True:
            if self.proc.poll() is not None or time.time() > deadline:
                raise RuntimeError("sandbox did not start: " + self.logtext())
            if os.path.exists(self.sock):
                try:
                    if self.get("/version").status == 200:
                        break
                except OSError:
                    pass
            time.sleep(0.02)

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(20)


def execute(a, cmd, **kw):
    r = a.post("/process/execute", dict(command=cmd, **kw), timeout=120)
    assert r.status == 200, r
    return r.json()


@unittest.skipUnless(os.geteuid() == 0, "needs root")
@unittest.skipUnless(os.path.exists("/bin/busybox"), "needs busybox-static")
class SandboxTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.a = SandboxAgent(["--memory", "768M", "--disk", "1G", "--pids", "256"])

    @classmethod
    def tearDownClass(cls):
        status = cls.a.stop()
        cls.a.close()
        assert status == 0, "agent exit status %r" % status

    def test_identity(self):
        r = execute(self.a, "id -u; cat /proc/1/cmdline | tr '\\0' ' '; echo; kill -9 1; kill -TERM 1;"
                            " sleep 0.2; echo alive")
        out = r["result"].split("\n")
        self.assertEqual(out[0], "1000")
        self.assertTrue(out[1].startswith("daytona-agent"), out)
        self.assertIn("alive", r["result"])
        self.assertEqual(self.a.get("/user-home-dir").json()["dir"], "/home/daytona")
        # Commands run in the sandbox's "workload" cgroup, the agent in its own leaf.
        r = execute(self.a, "grep -c workload /proc/self/cgroup; grep -c workload /proc/1/cgroup")
        counts = r["result"].split()
        self.assertGreater(int(counts[0]), 0, r)
        self.assertEqual(counts[1], "0", r)
        r = self.a.post("/process/code-run", {"code": "import os; print(os.getuid(), os.getcwd())",
                                              "language": "python"}, timeout=60)
        self.assertEqual(r.json()["result"], "1000 /home/daytona\n")

    def test_big_transfer(self):
        size = 200 << 20
        block = os.urandom(1 << 20)
        h = hashlib.sha256()

        def gen():
            yield ("--%s\r\nContent-Disposition: form-data; name=\"files[0].path\"\r\n\r\n"
                   "big.bin\r\n--%s\r\nContent-Disposition: form-data; name=\"files[0].file\"; "
                   "filename=\"big.bin\"\r\nContent-Type: application/octet-stream\r\n\r\n"
                   % (BOUNDARY, BOUNDARY)).encode()
            for _ in range(size >> 20):
                h.update(block)
                yield block
            yield ("\r\n--%s--\r\n" % BOUNDARY).encode()

        conn = ac.UnixHTTPConnection(self.a.sock, timeout=300)
        conn.request("POST", "/files/bulk-upload", body=gen(), encode_chunked=True,
                     headers={"Content-Type": "multipart/form-data; boundary=" + BOUNDARY})
        r = conn.getresponse()
        self.assertEqual(r.status, 200, r.read())
        r.read()
        conn.close()
        info = self.a.get("/files/info?path=big.bin").json()
        self.assertEqual(info["size"], size)
        self.assertEqual(info["owner"], "1000")
        conn = ac.UnixHTTPConnection(self.a.sock, timeout=300)
        conn.request("GET", "/files/download?path=big.bin")
        r = conn.getresponse()
        self.assertEqual(r.status, 200)
        d = hashlib.sha256()
        n = 0
        while True:
            chunk = r.read(1 << 20)
            if not chunk:
                break
            d.update(chunk)
            n += len(chunk)
        conn.close()
        self.assertEqual(n, size)
        self.assertEqual(d.hexdigest(), h.hexdigest())
        self.assertEqual(self.a.delete("/files?path=big.bin").status, 200)

    def test_session_follow_10mb(self):
        self.assertIn(self.a.post("/process/session", {"sessionId": "big"}).status, (200, 201))
        code = ("import sys\n"
                "for i in range(40000):\n"
                "    (sys.stdout if i % 2 == 0 else sys.stderr).write('%07d ' % i + 'x' * 240 + '\\n')\n")
        r = self.a.post("/process/session/big/exec",
                        {"command": "python3 -c \"$(cat <<'EOF'\n" + code + "EOF\n)\"", "runAsync": True})
        self.assertEqual(r.status, 200, r)
        cmd = r.json()["cmdId"]
        ws = self.a.websocket("/process/session/big/command/%s/logs?follow=true" % cmd, timeout=120)
        msgs, close = ws.recv_all()
        ws.close()
        self.assertEqual(close, 1000)
        out, err = ac.demux(msgs)
        want_out = "".join("%07d " % i + "x" * 240 + "\n" for i in range(0, 40000, 2)).encode()
        want_err = "".join("%07d " % i + "x" * 240 + "\n" for i in range(1, 40000, 2)).encode()
        self.assertEqual(len(out) + len(err), len(want_out) + len(want_err))
        self.assertEqual(out, want_out)
        self.assertEqual(err, want_err)
        self.assertLessEqual(max(len(m[1]) for m in msgs), 65536)

    def test_pty(self):
        ws = self.a.websocket("/process/pty/create-connect?id=t1&cols=100&rows=30",
                              protocols=["X-Daytona-Pty-Exit-Control"])
        self.assertEqual(ws.headers.get("sec-websocket-protocol"), "X-Daytona-Pty-Exit-Control")
        op, first = ws.recv()
        self.assertEqual(json.loads(first), {"type": "control", "status": "connected"})
        ws.send(b"stty size; echo done-$((6*7)); exit 3\n", op=2)
        buf = b""
        exited = None
        while True:
            m = ws.recv()
            if m[0] == "close":
                break
            if m[0] == 1:
                try:
                    j = json.loads(m[1])
                    if j.get("status") == "exited":
                        exited = j
                        continue
                except ValueError:
                    pass
            buf += m[1]
        ws.close()
        self.assertIn(b"30 100", buf)
        self.assertIn(b"done-42", buf)
        self.assertEqual(exited["exitCode"], 3)

    def test_oom_is_reported(self):
        r = execute(self.a, "python3 -c 'b = bytearray(2000 << 20); print(len(b))'")
        self.assertEqual(r["exitCode"], 137, r)
        self.assertIn("out-of-memory", r["result"])
        self.assertEqual(self.a.get("/version").status, 200)


if __name__ == "__main__":
    unittest.main()
