# SPDX-License-Identifier: Apache-2.0
# PTY endpoints of daytona-agent (contract 3.7): create-connect with the exit-control
# subprotocol, keystrokes in and terminal output out, resize, reattach, envs from the
# subprotocol token, the exited frame, and the REST side. DT_AGENT = the agent binary.

import base64
import json
import os
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from agentclient import Agent  # noqa: E402

EXIT = "X-Daytona-Pty-Exit-Control"


def envs_token(envs):
    raw = base64.urlsafe_b64encode(json.dumps(envs).encode()).decode().rstrip("=")
    return "X-Daytona-Pty-Envs~" + raw


class Term:
    """An attached socket: collects terminal output until a pattern shows up."""

    def __init__(self, ws):
        self.ws = ws
        self.out = b""
        self.control = []

    def until(self, needle, timeout=10):
        deadline = time.time() + timeout
        self.ws.s.settimeout(timeout)
        while needle not in self.out:
            if time.time() > deadline:
                raise AssertionError("%r not in %r" % (needle, self.out[-2000:]))
            op, data = self.ws.recv()
            if op == "close":
                raise AssertionError("closed (%r) before %r; got %r" % (data, needle, self.out))
            if op == 1 and data.startswith(b"{"):
                self.control.append(json.loads(data))
            else:
                self.out += data
        return self.out

    def type(self, s):
        self.ws.send(s.encode(), op=2)


class PtyTest(unittest.TestCase):
    def setUp(self):
        self.a = Agent()

    def tearDown(self):
        self.a.close()

    def connect(self, path, protocols=(EXIT,)):
        ws = self.a.websocket(path, protocols=list(protocols))
        op, data = ws.recv()
        self.assertEqual((op, json.loads(data)), (1, {"type": "control", "status": "connected"}))
        return Term(ws)

    def test_create_connect_echo_resize_reconnect(self):
        t = self.connect("/process/pty/create-connect?id=p1&cols=100&rows=30")
        self.assertEqual(t.ws.headers.get("sec-websocket-protocol"), EXIT)
        t.type("stty size; echo h''i\n")
        t.until(b"30 100")
        t.until(b"hi")
        info = self.a.get("/process/pty/p1").json()
        self.assertEqual((info["id"], info["cols"], info["rows"], info["active"]),
                         ("p1", 100, 30, True))
        self.assertEqual(info["cwd"], self.a.workdir)
        self.assertIn("createdAt", info)
        r = self.a.post("/process/pty/p1/resize", {"cols": 120, "rows": 40})
        self.assertEqual(r.status, 200, r)
        self.assertEqual((r.json()["cols"], r.json()["rows"]), (120, 40))
        t.type("stty size\n")
        t.until(b"40 120")
        # Detach; the shell lives on and keeps its state.
        t.type("export MARK=k''ept\n")
        time.sleep(0.3)
        t.ws.close()
        time.sleep(0.2)
        self.assertTrue(self.a.get("/process/pty/p1").json()["active"])
        t2 = self.connect("/process/pty/p1/connect")
        t2.type("echo $MARK-again\n")
        t2.until(b"kept-again")
        t2.type("exit 3\n")
        msgs, code = [], None
        while True:
            m = t2.ws.recv()
            if m[0] == "close":
                code = m[1]
                break
            msgs.append(m)
        t2.ws.close()
        self.assertEqual(code, 1000)
        ctl = [json.loads(d) for op, d in msgs if op == 1 and d.startswith(b"{")]
        self.assertEqual(ctl[-1], {"type": "control", "status": "exited", "exitCode": 3})

    def test_envs_token(self):
        t = self.connect("/process/pty/create-connect?id=p2&cols=80&rows=24",
                         protocols=(envs_token({"FOO": "bar baz", "X": "1"}), EXIT))
        self.assertEqual(t.ws.headers.get("sec-websocket-protocol"), EXIT)
        t.type("echo \"[$FOO|$X|$TERM]\"\n")
        t.until(b"[bar baz|1|xterm-256color]")
        info = self.a.get("/process/pty/p2").json()
        self.assertEqual(info["envs"], {"FOO": "bar baz", "X": "1"})
        t.ws.close()

    def test_rest_and_errors(self):
        r = self.a.post("/process/pty", {"id": "p3", "cols": 90, "rows": 20, "lazyStart": True,
                                         "envs": {"A": "b"}})
        self.assertEqual(r.status // 100, 2, r)
        self.assertEqual(r.json(), {"sessionId": "p3"})
        info = self.a.get("/process/pty/p3").json()
        self.assertEqual((info["lazyStart"], info["active"]), (True, False))
        self.assertEqual(self.a.post("/process/pty", {"id": "p3"}).status, 409)
        lst = self.a.get("/process/pty").json()
        self.assertEqual([s["id"] for s in lst["sessions"]], ["p3"])
        # Connecting starts a lazy PTY.
        t = self.connect("/process/pty/p3/connect")
        t.type("echo \"v=$A\"\n")
        t.until(b"v=b")
        self.assertTrue(self.a.get("/process/pty/p3").json()["active"])
        d = self.a.delete("/process/pty/p3")
        self.assertEqual(d.status, 200, d)
        while True:
            m = t.ws.recv()
            if m[0] == "close":
                self.assertEqual(m[1], 1000)
                break
        t.ws.close()
        self.assertEqual(self.a.get("/process/pty/p3").status, 404)
        self.assertEqual(self.a.get("/process/pty/p3").json()["code"], "PROCESS_NOT_FOUND")
        self.assertEqual(self.a.delete("/process/pty/p3").status, 404)
        self.assertEqual(self.a.get("/process/pty").json(), {"sessions": []})
        # Unknown id on connect: error control frame, then close.
        ws = self.a.websocket("/process/pty/nope/connect", protocols=[EXIT])
        op, data = ws.recv()
        j = json.loads(data)
        self.assertEqual((j["type"], j["status"]), ("control", "error"))
        self.assertIn("nope", j["error"])
        self.assertEqual(ws.recv()[0], "close")
        ws.close()
        self.assertEqual(self.a.post("/process/pty/nope/resize", {"cols": 1, "rows": 1}).status,
                         404)


if __name__ == "__main__":
    unittest.main()
