# SPDX-License-Identifier: Apache-2.0
# Session endpoints of daytona-agent (contract 3.6): one shell per session, commands in order,
# sync and async exec, logs as JSON and followed over a WebSocket with stream markers, input,
# errors. DT_AGENT = the agent binary.

import json
import os
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from agentclient import Agent, UnixHTTPConnection, demux  # noqa: E402


class SessionTest(unittest.TestCase):
    def setUp(self):
        self.a = Agent()

    def tearDown(self):
        self.a.close()

    def session(self, sid="s1"):
        r = self.a.post("/process/session", {"sessionId": sid})
        self.assertIn(r.status, (200, 201), r)
        return sid

    def exec(self, sid, command, **kw):
        body = {"command": command}
        body.update(kw)
        r = self.a.post("/process/session/%s/exec" % sid, body)
        self.assertEqual(r.status, 200, r)
        return r.json()

    def wait_done(self, sid, cmd_id, timeout=20):
        deadline = time.time() + timeout
        while time.time() < deadline:
            r = self.a.get("/process/session/%s/command/%s" % (sid, cmd_id))
            self.assertEqual(r.status, 200, r)
            if "exitCode" in r.json():
                return r.json()
            time.sleep(0.05)
        self.fail("command did not finish")

    def follow(self, sid, cmd_id, stall=0):
        ws = self.a.websocket("/process/session/%s/command/%s/logs?follow=true" % (sid, cmd_id))
        time.sleep(stall)  # a slow reader: the agent must hold back, then resume on drain
        self.assertNotIn("sec-websocket-protocol", ws.headers)
        msgs, code = ws.recv_all()
        ws.close()
        for m in msgs:
            self.assertLessEqual(len(m[1]), 65536)
        return msgs, code

    def test_state_persists(self):
        sid = self.session()
        os.makedirs(os.path.join(self.a.workdir, "sub"))
        self.exec(sid, "cd sub && export FOO=bar")
        r = self.exec(sid, "pwd; echo $FOO")
        self.assertEqual(r["stdout"], os.path.join(self.a.workdir, "sub") + "\nbar\n")
        self.assertEqual(r["exitCode"], 0)

    def test_sync_exec(self):
        sid = self.session()
        r = self.exec(sid, "echo out1; sleep 0.2; echo err1 >&2; sleep 0.2; echo out2; "
                           "f() { return 3; }; f")
        self.assertEqual(r["stdout"], "out1\nout2\n")
        self.assertEqual(r["stderr"], "err1\n")
        self.assertEqual(r["output"], "out1\nerr1\nout2\n")
        self.assertEqual(r["exitCode"], 3)
        self.assertTrue(r["cmdId"])
        logs = self.a.get("/process/session/%s/command/%s/logs" % (sid, r["cmdId"]))
        self.assertEqual(logs.status, 200)
        self.assertEqual(logs.json(), {"output": "out1\nerr1\nout2\n", "stdout": "out1\nout2\n",
                                       "stderr": "err1\n"})

    def test_async_and_poll(self):
        sid = self.session()
        r = self.exec(sid, "sleep 0.5; echo done; false", runAsync=True)
        self.assertEqual(set(r), {"cmdId"})
        c = self.a.get("/process/session/%s/command/%s" % (sid, r["cmdId"])).json()
        self.assertNotIn("exitCode", c)
        self.assertEqual(c["command"], "sleep 0.5; echo done; false")
        self.assertEqual(c["id"], r["cmdId"])
        # The older "async" flag works too, and commands run in order.
        r2 = self.exec(sid, "echo second", **{"async": True})
        c = self.wait_done(sid, r["cmdId"])
        self.assertEqual(c["exitCode"], 1)
        c2 = self.wait_done(sid, r2["cmdId"])
        self.assertEqual(c2["exitCode"], 0)
        s = self.a.get("/process/session/" + sid).json()
        self.assertEqual(s["sessionId"], sid)
        self.assertEqual([x["id"] for x in s["commands"]], [r["cmdId"], r2["cmdId"]])
        lst = self.a.get("/process/session").json()
        self.assertEqual([x["sessionId"] for x in lst], [sid])

    def test_follow_running(self):
        sid = self.session()
        r = self.exec(sid, "for i in 1 2 3 4 5; do echo out$i; echo err$i >&2; sleep 0.1; done",
                      runAsync=True)
        msgs, code = self.follow(sid, r["cmdId"])
        self.assertEqual(code, 1000)
        out, err = demux(msgs)
        self.assertEqual(out, b"".join(b"out%d\n" % i for i in range(1, 6)))
        self.assertEqual(err, b"".join(b"err%d\n" % i for i in range(1, 6)))
        self.assertEqual(self.wait_done(sid, r["cmdId"])["exitCode"], 0)

    def test_follow_after_completion(self):
        sid = self.session()
        r = self.exec(sid, "echo a; echo b >&2")
        msgs, code = self.follow(sid, r["cmdId"])
        self.assertEqual(code, 1000)
        self.assertEqual(demux(msgs), (b"a\n", b"b\n"))

    def test_follow_big_output(self):
        sid = self.session()
        # ~10 MB interleaved: 5 MB on each stream in 100-byte lines, with distinct contents.
        cmd = ("head -c 5000000 /dev/zero | tr '\\0' 'o' | fold -w 99 & "
               "head -c 5000000 /dev/zero | tr '\\0' 'e' | fold -w 99 >&2; wait")
        r = self.exec(sid, cmd, runAsync=True)
        msgs, code = self.follow(sid, r["cmdId"], stall=1)
        self.assertEqual(code, 1000)
        out, err = demux(msgs)
        # (fold adds no final newline)
        expect_out = (b"o" * 99 + b"\n") * (5000000 // 99) + b"o" * (5000000 % 99)
        expect_err = expect_out.replace(b"o", b"e")
        self.assertEqual(len(out), len(expect_out))
        self.assertEqual(out, expect_out)
        self.assertEqual(err, expect_err)

    def test_input(self):
        sid = self.session()
        r = self.exec(sid, "read x; echo got $x", runAsync=True)
        time.sleep(0.2)
        i = self.a.post("/process/session/%s/command/%s/input" % (sid, r["cmdId"]),
                        {"data": "hello\n"})
        self.assertEqual(i.status, 200, i)
        self.wait_done(sid, r["cmdId"])
        logs = self.a.get("/process/session/%s/command/%s/logs" % (sid, r["cmdId"])).json()
        self.assertEqual(logs["stdout"], "hello\ngot hello\n")
        i = self.a.post("/process/session/%s/command/%s/input" % (sid, r["cmdId"]),
                        {"data": "late\n"})
        self.assertEqual(i.status, 410)
        self.assertEqual(i.json()["code"], "COMMAND_ALREADY_COMPLETED")

    def test_suppress_echo(self):
        sid = self.session()
        r = self.exec(sid, "read x; echo got $x", runAsync=True, suppressInputEcho=True)
        i = self.a.post("/process/session/%s/command/%s/input" % (sid, r["cmdId"]),
                        {"data": "secret\n"})
        self.assertEqual(i.status, 200, i)
        self.wait_done(sid, r["cmdId"])
        logs = self.a.get("/process/session/%s/command/%s/logs" % (sid, r["cmdId"])).json()
        self.assertEqual(logs["stdout"], "got secret\n")

    def test_syntax_error_keeps_session(self):
        sid = self.session()
        self.exec(sid, "export KEEP=1")
        r = self.exec(sid, "if then fi (")
        self.assertNotEqual(r["exitCode"], 0)
        self.assertTrue(r["stderr"])
        r = self.exec(sid, "echo $KEEP")
        self.assertEqual(r["stdout"], "1\n")

    def test_exit_ends_session(self):
        sid = self.session()
        r = self.exec(sid, "exit 7")
        self.assertEqual(r["exitCode"], 7)
        r = self.a.post("/process/session/%s/exec" % sid, {"command": "echo hi"})
        self.assertEqual(r.status, 410, r)
        self.assertEqual(r.json()["code"], "SESSION_ENDED")
        self.assertEqual(r.json()["source"], "DAYTONA_DAEMON")

    def test_errors_and_delete(self):
        for path in ("/process/session/nope", "/process/session/nope/command/x",
                     "/process/session/nope/command/x/logs", "/process/session/entrypoint",
                     "/process/session/entrypoint/logs"):
            r = self.a.get(path)
            self.assertEqual(r.status, 404, path)
            self.assertEqual(r.json()["code"], "PROCESS_NOT_FOUND", path)
        r = self.a.post("/process/session/nope/exec", {"command": "true"})
        self.assertEqual(r.status, 404)
        self.assertEqual(r.json()["code"], "PROCESS_NOT_FOUND")
        sid = self.session()
        r = self.a.post("/process/session", {"sessionId": sid})
        self.assertEqual(r.status, 409)
        r = self.a.post("/process/session", {"sessionId": "a/b"})
        self.assertEqual(r.status, 400)
        r = self.a.get("/process/session/%s/command/nope" % sid)
        self.assertEqual(r.status, 404)
        self.assertEqual(r.json()["code"], "PROCESS_NOT_FOUND")
        r = self.exec(sid, "sleep 30", runAsync=True)
        ws = self.a.websocket("/process/session/%s/command/%s/logs?follow=true" % (sid, r["cmdId"]))
        d = self.a.delete("/process/session/" + sid)
        self.assertEqual(d.status, 200, d)
        msgs, code = ws.recv_all()
        ws.close()
        self.assertEqual(code, 1000)
        self.assertEqual(self.a.get("/process/session/" + sid).status, 404)
        self.assertEqual(self.a.get("/process/session").json(), [])
        self.assertEqual(os.listdir(os.path.join(self.a.dir, "state", "sessions")), [])

    def test_client_gone(self):
        sid = self.session()
        conn = UnixHTTPConnection(self.a.sock, timeout=10)
        conn.request("POST", "/process/session/%s/exec" % sid,
                     body=json.dumps({"command": "sleep 0.3; echo later > marker"}),
                     headers={"Content-Type": "application/json"})
        time.sleep(0.1)
        conn.close()
        r = self.exec(sid, "cat marker")
        self.assertEqual(r["stdout"], "later\n")
        cmds = self.a.get("/process/session/" + sid).json()["commands"]
        self.assertEqual([c.get("exitCode") for c in cmds], [0, 0])

    def test_timeout(self):
        sid = self.session()
        t = time.time()
        r = self.a.post("/process/session/%s/exec" % sid, {"command": "sleep 1; echo x",
                                                            "timeout": 0.2})
        self.assertEqual(r.status, 408, r)
        self.assertEqual(r.json()["code"], "PROCESS_EXECUTION_TIMEOUT")
        self.assertLess(time.time() - t, 1)
        # The command runs on; the next one waits its turn.
        r = self.exec(sid, "echo next")
        self.assertEqual(r["stdout"], "next\n")

    def test_entrypoint(self):
        self.a.close()
        self.a = Agent(args=["--", "sh", "-c", "echo 'entry out'; echo entry err >&2"])
        deadline = time.time() + 10
        while True:
            s = self.a.get("/process/session/entrypoint")
            self.assertEqual(s.status, 200, s)
            if "exitCode" in s.json()["commands"][0] or time.time() > deadline:
                break
            time.sleep(0.05)
        self.assertEqual(s.json()["sessionId"], "entrypoint")
        self.assertEqual(s.json()["commands"][0]["exitCode"], 0)
        logs = self.a.get("/process/session/entrypoint/logs").json()
        self.assertEqual(logs["stdout"], "entry out\n")
        self.assertEqual(logs["stderr"], "entry err\n")
        ws = self.a.websocket("/process/session/entrypoint/logs?follow=true")
        msgs, code = ws.recv_all()
        ws.close()
        self.assertEqual(code, 1000)
        self.assertEqual(demux(msgs), (b"entry out\n", b"entry err\n"))
        self.assertEqual(self.a.get("/process/session").json(), [])


if __name__ == "__main__":
    unittest.main()
