# SPDX-License-Identifier: Apache-2.0
# Tests of the LSP endpoints of daytona-agent (contract 3.11) against a real agent binary and a
# real pylsp (python3-pylsp). Stdlib only. Skipped (77) when pylsp is not installed.
# Run: DT_AGENT=build/bin/daytona-agent python3 tests/agent/test_lsp.py

import os
import shutil
import signal
import subprocess
import sys
import time
import unittest
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from agentclient import Agent  # noqa: E402

# Debian's pylsp (python3-pylsp) and python3 before any other on PATH.
ENV = dict(os.environ, PATH="/usr/sbin:/usr/bin:/sbin:/bin:/usr/local/sbin:/usr/local/bin")

if not shutil.which("pylsp", path=ENV["PATH"]):
    print("pylsp is not installed: skipped")
    sys.exit(77)

MODULE = '''\
import os


class Greeter:
    def __init__(self, name):
        self.name = name

    def greet(self):
        return "hello " + self.name


def make_greeter(name):
    return Greeter(name)


def unique_helper_function():
    return 42
'''


def q(**kw):
    return "?" + urllib.parse.urlencode(kw)


class LspTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.a = Agent(env=ENV)
        cls.project = os.path.join(cls.a.workdir, "proj")
        os.makedirs(cls.project)
        cls.mod = os.path.join(cls.project, "mod.py")
        with open(cls.mod, "w") as f:
            f.write(MODULE)
        cls.comp = os.path.join(cls.project, "comp.py")
        with open(cls.comp, "w") as f:
            f.write("import os\nos.pa")

    @classmethod
    def tearDownClass(cls):
        cls.a.close()

    def body(self, **kw):
        return dict(languageId="python", pathToProject=self.project, **kw)

    def start(self):
        r = self.a.post("/lsp/start", self.body(), timeout=60)
        self.assertEqual(r.status, 200, r)

    def stop(self):
        r = self.a.post("/lsp/stop", self.body())
        self.assertEqual(r.status, 200, r)

    def assert_not_initialized(self, r):
        self.assertEqual(r.status, 400, r)
        self.assertEqual(r.json()["code"], "LSP_SERVER_NOT_INITIALIZED", r)
        self.assertEqual(r.json()["source"], "DAYTONA_DAEMON", r)

    def server_pids(self):
        """pids of pylsp processes that are children of the agent."""
        out = subprocess.run(["ps", "-o", "pid=,args=", "--ppid", str(self.a.proc.pid)],
                             capture_output=True, text=True).stdout
        return [int(l.split()[0]) for l in out.splitlines() if "pylsp" in l]

    def test_1_before_start(self):
        for r in (
            self.a.post("/lsp/did-open", self.body(uri="file://" + self.mod)),
            self.a.get("/lsp/document-symbols" + q(languageId="python",
                                                   pathToProject=self.project,
                                                   uri="file://" + self.mod)),
            self.a.get("/lsp/workspacesymbols" + q(languageId="python",
                                                   pathToProject=self.project, query="x")),
            self.a.post("/lsp/completions", self.body(uri="file://" + self.mod,
                                                      position={"line": 0, "character": 0})),
            self.a.post("/lsp/stop", self.body()),
        ):
            self.assert_not_initialized(r)
        r = self.a.post("/lsp/start", {"languageId": "cobol", "pathToProject": self.project})
        self.assertEqual(r.status, 400, r)

    def test_2_session(self):
        self.start()
        self.start()  # already started: fine
        uri = "file://" + self.mod
        r = self.a.post("/lsp/did-open", self.body(uri=uri))
        self.assertEqual(r.status, 200, r)

        r = self.a.get("/lsp/document-symbols" + q(languageId="python",
                                                   pathToProject=self.project, uri=uri))
        self.assertEqual(r.status, 200, r)
        syms = {s["name"]: s for s in r.json()}
        for name in ("Greeter", "make_greeter", "unique_helper_function"):
            self.assertIn(name, syms, r)
        g = syms["Greeter"]
        self.assertEqual(g["kind"], 5, g)  # Class
        self.assertEqual(g["location"]["uri"], uri)
        self.assertEqual(g["location"]["range"]["start"]["line"], 3, g)
        self.assertEqual(syms["make_greeter"]["kind"], 12)  # Function
        self.assertEqual(syms["make_greeter"]["location"]["range"]["start"]["line"], 11)

        r = self.a.get("/lsp/workspacesymbols" + q(languageId="python",
                                                   pathToProject=self.project,
                                                   query="unique_helper"))
        self.assertEqual(r.status, 200, r)
        names = [s["name"] for s in r.json()]
        self.assertIn("unique_helper_function", names, r)
        self.assertNotIn("Greeter", names, r)

        # Relative path to the work dir, as the contract says.
        curi = "file://proj/comp.py"
        r = self.a.post("/lsp/did-open", self.body(uri=curi))
        self.assertEqual(r.status, 200, r)
        r = self.a.post("/lsp/completions", self.body(uri=curi,
                                                      position={"line": 1, "character": 5}),
                        timeout=60)
        self.assertEqual(r.status, 200, r)
        res = r.json()
        self.assertIsInstance(res["isIncomplete"], bool)
        labels = [i["label"] for i in res["items"]]
        self.assertIn("path", labels, r)
        for i in res["items"]:
            if "documentation" in i:
                self.assertIsInstance(i["documentation"], str)

        r = self.a.post("/lsp/completions", self.body(uri=curi, position={"line": "x"}))
        self.assertEqual(r.status, 400, r)
        r = self.a.post("/lsp/did-open", self.body(uri="file://" + self.project + "/none.py"))
        self.assertEqual(r.status, 404, r)

        for u in (uri, curi):
            r = self.a.post("/lsp/did-close", self.body(uri=u))
            self.assertEqual(r.status, 200, r)
        self.stop()
        r = self.a.get("/lsp/document-symbols" + q(languageId="python",
                                                   pathToProject=self.project, uri=uri))
        self.assert_not_initialized(r)
        # The stopped server goes away.
        deadline = time.time() + 5
        while self.server_pids() and time.time() < deadline:
            time.sleep(0.1)
        self.assertEqual(self.server_pids(), [])

    def test_3_server_killed(self):
        self.start()
        pids = self.server_pids()
        self.assertEqual(len(pids), 1, pids)
        os.kill(pids[0], signal.SIGKILL)
        deadline = time.time() + 5
        while True:
            t0 = time.time()
            r = self.a.get("/lsp/workspacesymbols" + q(languageId="python",
                                                       pathToProject=self.project, query="x"),
                           timeout=10)
            self.assertLess(time.time() - t0, 5)
            if r.status != 200 or time.time() > deadline:
                break
            time.sleep(0.05)
        self.assert_not_initialized(r)
        self.assertIn("exited", r.json()["message"], r)
        self.assertIn("pylsp", r.json()["message"], r)
        # And it can be started again, and stopped.
        self.start()
        self.stop()
        self.assertEqual(self.a.get("/version").status, 200)

    def test_4_missing_server(self):
        if shutil.which("typescript-language-server", path=ENV["PATH"]):
            self.skipTest("typescript-language-server is installed")
        r = self.a.post("/lsp/start", {"languageId": "typescript",
                                       "pathToProject": self.project})
        self.assertEqual(r.status, 503, r)
        self.assertEqual(r.json()["code"], "LSP_SERVER_NOT_AVAILABLE", r)
        self.assertIn("typescript-language-server", r.json()["message"])


if __name__ == "__main__":
    unittest.main()
