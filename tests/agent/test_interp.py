# SPDX-License-Identifier: Apache-2.0
# Tests of the code-interpreter endpoints of daytona-agent (contract 3.8): contexts over HTTP and
# the execute WebSocket, against a real agent binary (DT_AGENT, or $DT_BUILD_DIR/bin/daytona-agent).
# Stdlib only. Run: DT_AGENT=build/bin/daytona-agent python3 tests/agent/test_interp.py

import json
import os
import shutil
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from agentclient import Agent  # noqa: E402

EXECUTE = "/process/interpreter/execute"
CONTEXT = "/process/interpreter/context"


def run(agent, code, context=None, envs=None, timeout=None, sock_timeout=30):
    """One execute call: returns (frames as dicts, close code, close reason)."""
    ws = agent.websocket(EXECUTE, timeout=sock_timeout)
    req = {"code": code}
    if context:
        req["contextId"] = context
    if envs is not None:
        req["envs"] = envs
    if timeout is not None:
        req["timeout"] = timeout
    ws.send(json.dumps(req))
    msgs, code_ = ws.recv_all()
    reason = ws.close_reason
    ws.close()
    return [json.loads(m[1]) for m in msgs], code_, reason


def stdout(frames):
    return "".join(f["text"] for f in frames if f["type"] == "stdout")


def stderr(frames):
    return "".join(f["text"] for f in frames if f["type"] == "stderr")


def errors(frames):
    return [f for f in frames if f["type"] == "error"]


def have_python():
    return shutil.which("python3") is not None


@unittest.skipUnless(have_python(), "python3 is not installed")
class InterpreterTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.agent = Agent()

    @classmethod
    def tearDownClass(cls):
        cls.agent.close()

    def ok(self, code, **kw):
        frames, close, reason = run(self.agent, code, **kw)
        self.assertEqual(close, 1000, (frames, reason))
        self.assertEqual(frames[-1], {"type": "control", "text": "completed"}, frames)
        return frames

    def new_context(self, body=None):
        r = self.agent.post(CONTEXT, body or {})
        self.assertEqual(r.status, 200, r)
        return r.json()

    def test_default_context_state_and_echo(self):
        frames = self.ok("counter = 41\ncounter += 1\ncounter")
        self.assertEqual(stdout(frames), "42\n")
        frames = self.ok("print('again', counter)\nNone")
        self.assertEqual(stdout(frames), "again 42\n")
        # Same as naming the default context explicitly.
        frames = self.ok("counter", context="default")
        self.assertEqual(stdout(frames), "42\n")

    def test_streams_and_error(self):
        frames = self.ok("import sys\nprint('out')\nsys.stderr.write('err\\n')\n"
                         "import subprocess\nsubprocess.run(['sh', '-c', 'echo raw; echo rawerr >&2'])\n"
                         "1/0")
        self.assertIn("out\n", stdout(frames))
        self.assertIn("raw\n", stdout(frames))
        self.assertIn("err\n", stderr(frames))
        self.assertIn("rawerr\n", stderr(frames))
        errs = errors(frames)
        self.assertEqual(len(errs), 1, frames)
        self.assertEqual(errs[0]["name"], "ZeroDivisionError")
        self.assertEqual(errs[0]["value"], "division by zero")
        self.assertIn("Traceback", errs[0]["traceback"])
        # A syntax error is a cell error too, not a transport error.
        errs = errors(self.ok("def ("))
        self.assertEqual(errs[0]["name"], "SyntaxError")

    def test_envs(self):
        frames = self.ok("import os\nos.environ['DT_INTERP_T']", envs={"DT_INTERP_T": "v1"})
        self.assertEqual(stdout(frames), "'v1'\n")

    def test_created_context_cwd_isolation_list_delete(self):
        sub = os.path.join(self.agent.workdir, "sub")
        os.makedirs(sub, exist_ok=True)
        c1 = self.new_context({"cwd": "sub"})
        self.assertEqual(c1["cwd"], sub)
        self.assertEqual(c1["language"], "python")
        self.assertTrue(c1["id"] and c1["createdAt"])
        c2 = self.new_context()
        self.assertEqual(c2["cwd"], self.agent.workdir)

        self.assertEqual(stdout(self.ok("import os\nos.getcwd()", context=c1["id"])),
                         repr(sub) + "\n")
        self.ok("secret = 'c1'", context=c1["id"])
        self.ok("secret = 'c2'", context=c2["id"])
        self.ok("secret = 'default'")
        self.assertEqual(stdout(self.ok("secret", context=c1["id"])), "'c1'\n")
        self.assertEqual(stdout(self.ok("secret", context=c2["id"])), "'c2'\n")
        self.assertEqual(stdout(self.ok("secret")), "'default'\n")

        ids = [c["id"] for c in self.agent.get(CONTEXT).json()["contexts"]]
        self.assertIn(c1["id"], ids)
        self.assertIn(c2["id"], ids)
        self.assertNotIn("default", ids)

        pid = int(stdout(self.ok("import os\nos.getpid()", context=c1["id"])))
        self.assertEqual(self.agent.delete(CONTEXT + "/" + c1["id"]).status, 200)
        deadline = time.time() + 3
        while os.path.exists("/proc/%d" % pid) and time.time() < deadline:
            time.sleep(0.02)
        self.assertFalse(os.path.exists("/proc/%d" % pid), "worker survived DELETE")
        ids = [c["id"] for c in self.agent.get(CONTEXT).json()["contexts"]]
        self.assertNotIn(c1["id"], ids)

        r = self.agent.delete(CONTEXT + "/" + c1["id"])
        self.assertEqual(r.status, 404)
        self.assertEqual(r.json()["code"], "NOT_FOUND")
        frames, close, reason = run(self.agent, "1", context=c1["id"])
        self.assertEqual(close, 4004)
        self.assertIn(c1["id"], reason)
        self.assertEqual(errors(frames)[0]["name"], "ContextNotFound")
        self.assertEqual(self.agent.delete(CONTEXT + "/" + c2["id"]).status, 200)

    def test_bad_requests(self):
        r = self.agent.post(CONTEXT, {"language": "javascript"})
        self.assertEqual(r.status, 400)
        self.assertIn("python", r.json()["message"])
        r = self.agent.post(CONTEXT, {"cwd": "/nonexistent-dir-xyz"})
        self.assertEqual(r.status, 400)
        self.assertEqual(self.agent.get(EXECUTE).status, 400)
        ws = self.agent.websocket(EXECUTE)
        ws.send("not json")
        frames, close = ws.recv_all()
        ws.close()
        self.assertEqual(close, 1008)

    def test_timeout_keeps_state(self):
        c = self.new_context()
        self.ok("kept = 'yes'", context=c["id"])
        t0 = time.time()
        frames, close, reason = run(self.agent, "import time\nprint('start')\ntime.sleep(30)",
                                    context=c["id"], timeout=0.5)
        self.assertEqual(close, 4008, (frames, reason))
        self.assertEqual(reason, "Execution timed out")
        self.assertLess(time.time() - t0, 5)
        self.assertEqual(stdout(self.ok("kept", context=c["id"])), "'yes'\n")
        self.agent.delete(CONTEXT + "/" + c["id"])

    def test_timeout_sigint_ignored_restarts(self):
        c = self.new_context()
        self.ok("kept = 1", context=c["id"])
        code = ("import signal, time\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\n"
                "while True: time.sleep(0.05)")
        t0 = time.time()
        frames, close, reason = run(self.agent, code, context=c["id"], timeout=0.3)
        self.assertEqual(close, 4008, (frames, reason))
        self.assertGreater(time.time() - t0, 2)
        # SIGKILLed: the context works again with a fresh state.
        errs = errors(self.ok("kept", context=c["id"]))
        self.assertEqual(errs[0]["name"], "NameError")
        self.agent.delete(CONTEXT + "/" + c["id"])

    def test_worker_death(self):
        c = self.new_context()
        frames, close, reason = run(self.agent, "import os\nos._exit(3)", context=c["id"])
        self.assertEqual(close, 1011)
        self.assertEqual(errors(frames)[0]["name"], "WorkerDied")
        self.assertIn("code 3", errors(frames)[0]["value"])
        self.assertEqual(stdout(self.ok("1 + 1", context=c["id"])), "2\n")
        self.agent.delete(CONTEXT + "/" + c["id"])

    def test_queue_and_disconnect(self):
        c = self.new_context()
        results = {}

        def slow():
            results["slow"] = run(self.agent, "import time\ntime.sleep(0.5)\norder = ['slow']",
                                  context=c["id"])

        t = threading.Thread(target=slow)
        t.start()
        time.sleep(0.2)
        frames = self.ok("order.append('fast')\norder", context=c["id"])
        t.join()
        self.assertEqual(results["slow"][1], 1000)
        self.assertEqual(stdout(frames), "['slow', 'fast']\n")

        # A client that goes away mid-cell interrupts it: the context is free again at once.
        ws = self.agent.websocket(EXECUTE)
        ws.send(json.dumps({"code": "import time\ntime.sleep(30)", "contextId": c["id"]}))
        time.sleep(0.3)
        ws.s.close()
        t0 = time.time()
        self.assertEqual(stdout(self.ok("'free'", context=c["id"])), "'free'\n")
        self.assertLess(time.time() - t0, 3)
        self.agent.delete(CONTEXT + "/" + c["id"])


class NoPythonTest(unittest.TestCase):
    def test_python_missing(self):
        empty = os.path.join(os.path.dirname(os.path.abspath(__file__)), "no-such-dir")
        env = dict(os.environ, PATH=empty)
        try:
            agent = Agent(env=env)
        except RuntimeError as e:
            self.skipTest("agent does not start without PATH: %s" % e)
        with agent:
            frames, close, reason = run(agent, "1")
            if close == 1000:
                self.skipTest("the agent finds python3 outside PATH")
            self.assertEqual(close, 1011)
            self.assertIn("python3", reason)
            self.assertEqual(errors(frames)[0]["name"], "InterpreterUnavailable")


if __name__ == "__main__":
    unittest.main()
