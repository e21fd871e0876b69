# SPDX-License-Identifier: Apache-2.0
"""One-shot execution and the info endpoints of the agent over its socket: execute (exit codes,
cwd, env, timeout, merged stderr, binary output), code-run in python (argv, env, charts with
matplotlib), javascript and typescript, /env, /system/metrics, /port, and error shapes."""
import os
import socket
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import agentclient as ac  # noqa: E402

# Debian's python3 (with python3-matplotlib from install-deps) before any other on PATH.
ENV = dict(os.environ, PATH="/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")


def has_matplotlib():
    import subprocess
    return subprocess.run(["/usr/bin/python3", "-c", "import matplotlib"], env=ENV,
                          capture_output=True).returncode == 0


class ProcessTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.a = ac.Agent(env=ENV)

    @classmethod
    def tearDownClass(cls):
        cls.a.close()

    def execute(self, **body):
        return self.a.post("/process/execute", body, timeout=60)

    def test_execute(self):
        r = self.execute(command="echo out; echo err >&2; exit 7")
        self.assertEqual(r.status, 200)
        self.assertEqual(r.json(), {"exitCode": 7, "result": "out\nerr\n"})
        os.makedirs(os.path.join(self.a.workdir, "sub"), exist_ok=True)
        r = self.execute(command="pwd; echo $GREETING", cwd="sub", envs={"GREETING": "hi there"})
        self.assertEqual(r.json()["result"], os.path.join(self.a.workdir, "sub") + "\nhi there\n")
        r = self.execute(command="printf '\\377ok'")
        self.assertEqual(r.json()["result"], "\ufffdok")
        r = self.execute(command="seq 1 200000")
        self.assertEqual(len(r.json()["result"].split()), 200000)

    def test_execute_errors(self):
        r = self.execute(command="sleep 10", timeout=1)
        self.assertEqual(r.status, 408)
        self.assertEqual(r.json()["code"], "PROCESS_EXECUTION_TIMEOUT")
        self.assertEqual(r.json()["source"], "DAYTONA_DAEMON")
        self.assertEqual(self.execute(command="").status, 400)
        self.assertEqual(self.execute(command="true", cwd="/no/such/dir").status, 400)
        self.assertEqual(self.execute(command="true", envs={"A=B": "x"}).status, 400)
        self.assertEqual(self.execute(command="true", timeout="5").status, 400)
        r = self.a.post("/process/execute", b"{not json", headers={"Content-Type": "application/json"})
        self.assertEqual(r.status, 400)
        self.assertIsInstance(r.json()["message"], str)
        r = self.a.post("/process/execute", b"x" * (9 << 20))
        self.assertEqual(r.status, 413)
        self.assertEqual(self.a.get("/process/execute").status, 405)
        self.assertEqual(self.a.get("/no/such/route").status, 404)
        r = self.a.get("/computeruse/mouse/position")
        self.assertEqual(r.status, 501)
        self.assertIn("computer use", r.json()["message"])

    def test_client_gone_kills_the_command(self):
        marker = os.path.join(self.a.workdir, "killed-marker")
        s = socket.socket(socket.AF_UNIX)
        s.connect(self.a.sock)
        body = b'{"command":"sleep 3; touch %s"}' % marker.encode()
        s.sendall(b"POST /process/execute HTTP/1.1\r\nHost: a\r\nContent-Length: %d\r\n\r\n%s"
                  % (len(body), body))
        import time
        time.sleep(0.5)
        s.close()
        time.sleep(3.5)
        self.assertFalse(os.path.exists(marker))

    def test_code_run(self):
        r = self.a.post("/process/code-run", {"code": "import sys, os\nprint(sys.argv[1:], os.environ['X'])\n"
                                                      "sys.exit(3)",
                                              "language": "python", "argv": ["a", "b c"],
                                              "envs": {"X": "y"}}, timeout=60)
        self.assertEqual(r.json(), {"exitCode": 3, "result": "['a', 'b c'] y\n",
                                    "artifacts": {"charts": []}})
        r = self.a.post("/process/code-run", {"code": "raise ValueError('boom')", "language": "python"})
        self.assertEqual(r.json()["exitCode"], 1)
        self.assertIn("ValueError: boom", r.json()["result"])
        r = self.a.post("/process/code-run", {"code": "console.log(process.argv.slice(2).join('+'))",
                                              "language": "javascript", "argv": ["1", "2"]})
        self.assertEqual(r.json()["result"], "1+2\n")
        r = self.a.post("/process/code-run", {"code": "const n: number = 6 * 7; console.log(n)",
                                              "language": "typescript"}, timeout=120)
        if r.status == 200:
            self.assertEqual(r.json()["result"].strip(), "42")
        else:
            self.assertEqual(r.status, 400)
            self.assertIn("TypeScript", r.json()["message"])
        r = self.a.post("/process/code-run", {"code": "1", "language": "cobol"})
        self.assertEqual(r.status, 400)

    @unittest.skipUnless(has_matplotlib(), "python3-matplotlib is not installed")
    def test_charts(self):
        code = ("import matplotlib.pyplot as plt\n"
                "plt.plot([1, 2, 3], [4, 5, 6], label='up')\n"
                "plt.title('T')\nplt.xlabel('x')\nplt.show()\n"
                "plt.bar(['a', 'b'], [3, 5])\nplt.show()\n")
        r = self.a.post("/process/code-run", {"code": code, "language": "python"}, timeout=120)
        charts = r.json()["artifacts"]["charts"]
        self.assertEqual([c["type"] for c in charts], ["line", "bar"], r)
        self.assertEqual(charts[0]["title"], "T")
        self.assertEqual(charts[0]["elements"][0]["points"], [[1, 4], [2, 5], [3, 6]])
        self.assertTrue(charts[0]["png"])

    def test_info(self):
        self.assertEqual(self.a.get("/version").json()["version"].count("."), 2)
        self.assertEqual(self.a.get("/work-dir").json()["dir"], self.a.workdir)
        r = self.a.post("/env", {"set": {"NEW_VAR": "v1"}, "unset": ["NEW_VAR_NONE"]})
        self.assertEqual(r.status, 200)
        self.assertEqual(self.execute(command="echo $NEW_VAR").json()["result"], "v1\n")
        self.a.post("/env", {"unset": ["NEW_VAR"]})
        self.assertEqual(self.execute(command="echo \"[$NEW_VAR]\"").json()["result"], "[]\n")
        self.assertEqual(self.a.post("/env", {"set": {"A": 1}}).status, 400)
        m = self.a.get("/system/metrics").json()
        for k in ("cpuCount", "cpuUsedPct", "memTotal", "memUsed", "diskTotal", "diskUsed", "timestamp"):
            self.assertIn(k, m)
        self.assertGreater(m["memTotal"], 0)
        lsock = socket.socket()
        lsock.bind(("127.0.0.1", 0))
        lsock.listen()
        port = lsock.getsockname()[1]
        try:
            self.assertIn(port, self.a.get("/port").json()["ports"])
            self.assertTrue(self.a.get("/port/%d/in-use" % port).json()["isInUse"])
        finally:
            lsock.close()
        self.assertFalse(self.a.get("/port/%d/in-use" % port).json()["isInUse"])
        self.assertEqual(self.a.get("/port/99999/in-use").status, 400)


if __name__ == "__main__":
    unittest.main()
