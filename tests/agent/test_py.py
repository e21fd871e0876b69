# SPDX-License-Identifier: Apache-2.0
# Tests of the agent's Python helpers (src/agent/py/interp.py and coderun.py), spawned exactly as
# the agent does: python3 -u -I -c "<source>" with fd 3/4 pipes. DT_SOURCE_DIR = repository root
# (default: two levels up), DT_PYTHON = interpreter (default: sys.executable). Chart tests need
# matplotlib and run with the first of DT_PYTHON, sys.executable, /usr/bin/python3 that has it.

import fcntl
import json
import os
import signal
import subprocess
import sys
import threading
import time
import unittest

SRC = os.environ.get("DT_SOURCE_DIR") or os.path.dirname(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PY = os.environ.get("DT_PYTHON") or sys.executable


def _source(name):
    with open(os.path.join(SRC, "src", "agent", "py", name), encoding="utf-8") as f:
        return f.read()


def _spawn(py, src, argv, child_read, child_write, cwd=None):
    """Starts `py -u -I -c src argv...` with child_read on fd 3 and child_write on fd 4."""
    def pre():
        # Lift both above 3/4 first: either may already sit on the other's target number.
        a = fcntl.fcntl(child_read, fcntl.F_DUPFD, 20)
        b = fcntl.fcntl(child_write, fcntl.F_DUPFD, 20)
        os.dup2(a, 3)
        os.dup2(b, 4)
    return subprocess.Popen([py, "-u", "-I", "-c", src] + list(argv), stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=cwd,
                            preexec_fn=pre, pass_fds=(3, 4))


def _matplotlib_python():
    for py in (os.environ.get("DT_PYTHON"), sys.executable, "/usr/bin/python3"):
        if py and os.path.exists(py):
            r = subprocess.run([py, "-c", "import matplotlib"], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
            if r.returncode == 0:
                return py
    return None


class Interp:
    def __init__(self, cwd=None):
        req_r, self.req_w = os.pipe()
        ev_r, ev_w = os.pipe()
        self.p = _spawn(PY, _source("interp.py"), [], req_r, ev_w, cwd=cwd)
        os.close(req_r)
        os.close(ev_w)
        self.ev = os.fdopen(ev_r, "rb")

    def send(self, code, envs=None):
        req = {"code": code}
        if envs is not None:
            req["envs"] = envs
        os.write(self.req_w, (json.dumps(req) + "\n").encode())

    def events(self):
        out = []
        while True:
            line = self.ev.readline()
            if not line:
                raise AssertionError("worker closed fd 4; events so far: %r" % (out,))
            e = json.loads(line)
            out.append(e)
            if e["type"] == "done":
                return out

    def run(self, code, envs=None):
        self.send(code, envs)
        return self.events()

    def close(self):
        if self.req_w >= 0:
            os.close(self.req_w)
            self.req_w = -1
        try:
            return self.p.wait(10)
        finally:
            if self.p.poll() is None:
                self.p.kill()
                self.p.wait()
            self.ev.close()
            self.p.stdout.close()
            self.p.stderr.close()


def _text(events, kind):
    return "".join(e["text"] for e in events if e["type"] == kind)


class InterpTest(unittest.TestCase):
    def setUp(self):
        self.w = Interp()

    def tearDown(self):
        self.w.close()

    def test_state_and_echo(self):
        ev = self.w.run("x = 20\nimport math")
        self.assertEqual(ev, [{"type": "done"}])
        ev = self.w.run("x += 1\nmath.floor(x * 2)")
        self.assertEqual(ev, [{"type": "stdout", "text": "42\n"}, {"type": "done"}])
        self.assertEqual(self.w.run("None"), [{"type": "done"}])
        self.assertEqual(_text(self.w.run("__name__"), "stdout"), "'__main__'\n")

    def test_streams_and_error(self):
        ev = self.w.run("import sys\nprint('out')\nprint('err', file=sys.stderr)\n"
                        "def f():\n    return 1/0\nf()")
        self.assertEqual([e["type"] for e in ev], ["stdout", "stderr", "error", "done"])
        self.assertEqual(ev[0]["text"], "out\n")
        self.assertEqual(ev[1]["text"], "err\n")
        err = ev[2]
        self.assertEqual(err["name"], "ZeroDivisionError")
        self.assertEqual(err["value"], "division by zero")
        tb = err["traceback"]
        self.assertTrue(tb.startswith("Traceback (most recent call last):\n"), tb)
        self.assertIn("in f", tb)
        self.assertIn("return 1/0", tb)
        self.assertNotIn("<string>", tb)  # the worker's own frames
        self.assertNotIn("exec(", tb)
        self.assertTrue(tb.endswith("ZeroDivisionError: division by zero\n"), tb)

    def test_syntax_error(self):
        ev = self.w.run("def f(:\n  pass")
        self.assertEqual([e["type"] for e in ev], ["error", "done"])
        self.assertEqual(ev[0]["name"], "SyntaxError")
        self.assertIn("def f(:", ev[0]["traceback"])
        self.assertEqual(_text(self.w.run("1+1"), "stdout"), "2\n")

    def test_interrupt(self):
        self.w.run("keep = 'kept'")
        self.w.send("import time\nprint('before')\ntime.sleep(60)\nprint('after')")
        first = json.loads(self.w.ev.readline())
        self.assertEqual(first, {"type": "stdout", "text": "before\n"})
        t0 = time.monotonic()
        self.w.p.send_signal(signal.SIGINT)
        ev = self.w.events()
        self.assertLess(time.monotonic() - t0, 5)
        self.assertEqual(ev[-1], {"type": "done", "interrupted": True})
        self.assertNotIn("after", _text(ev, "stdout"))
        # SIGINT while idle is ignored.
        self.w.p.send_signal(signal.SIGINT)
        time.sleep(0.2)
        self.assertIsNone(self.w.p.poll())
        self.assertEqual(self.w.run("keep"), [{"type": "stdout", "text": "'kept'\n"},
                                              {"type": "done"}])

    def test_envs(self):
        ev = self.w.run("import os\nos.environ['DT_T1']", envs={"DT_T1": "v1"})
        self.assertEqual(_text(ev, "stdout"), "'v1'\n")
        ev = self.w.run("import subprocess\nsubprocess.check_output(['sh', '-c', 'echo $DT_T1'])")
        self.assertEqual(_text(ev, "stdout"), "b'v1\\n'\n")

    def test_large_output(self):
        ev = self.w.run("print('a' * 200000)\nprint('é' * 70000)")
        chunks = [e for e in ev if e["type"] == "stdout"]
        self.assertGreaterEqual(len(chunks), 5)
        for c in chunks:
            self.assertLessEqual(len(c["text"].encode()), 65536)
        self.assertEqual(_text(ev, "stdout"), "a" * 200000 + "\n" + "é" * 70000 + "\n")

    def test_streaming(self):
        self.w.send("import time\nprint('early')\ntime.sleep(1.5)")
        t0 = time.monotonic()
        first = json.loads(self.w.ev.readline())
        self.assertEqual(first["text"], "early\n")
        self.assertLess(time.monotonic() - t0, 1.0)
        self.w.events()

    def test_system_exit_and_cwd(self):
        ev = self.w.run("import os, sys\nos.chdir('/')\nsys.exit(3)")
        self.assertEqual(ev[0]["name"], "SystemExit")
        self.assertEqual(ev[0]["value"], "3")
        self.assertEqual(self.w.run("exit()"), [{"type": "done"}])
        self.assertEqual(_text(self.w.run("os.getcwd()"), "stdout"), "'/'\n")

    def test_stray_fd_output_and_fds_hidden(self):
        # fds 3 and 4 are moved to close-on-exec fds: a child sees only 0-2 (and ls its own 3).
        ev = self.w.run("import os, subprocess\nos.write(1, b'raw')\n"
                        "subprocess.check_output('ls /proc/self/fd', shell=True, close_fds=False)")
        self.assertEqual(ev, [{"type": "stdout", "text": "b'0\\n1\\n2\\n3\\n'\n"},
                              {"type": "done"}])
        self.assertEqual(self.w.p.stdout.read(3), b"raw")

    def test_bad_request_and_eof(self):
        os.write(self.w.req_w, b"not json\n")
        ev = self.w.events()
        self.assertEqual([e["type"] for e in ev], ["error", "done"])
        self.assertEqual(ev[0]["name"], "ProtocolError")
        self.assertEqual(self.w.close(), 0)


class CodeRun:
    def __init__(self, code, argv=(), py=PY, env=None):
        code_r, code_w = os.pipe()
        out_r, out_w = os.pipe()
        self.p = _spawn(py, _source("coderun.py"), argv, code_r, out_w)
        os.close(code_r)
        os.close(out_w)
        os.write(code_w, code.encode())
        os.close(code_w)
        res = []

        def reader():
            with os.fdopen(out_r, "rb") as f:
                res.append(f.read())
        t = threading.Thread(target=reader)
        t.start()
        self.stdout, self.stderr = self.p.communicate(timeout=60)
        t.join()
        self.code = self.p.returncode
        raw = res[0]
        lines = raw.splitlines()
        assert len(lines) == 1, raw[:200]
        self.charts = json.loads(lines[0])["charts"]


class CodeRunTest(unittest.TestCase):
    def test_argv_and_main(self):
        r = CodeRun("import sys\nprint(sys.argv, __name__)\nprint('e', file=sys.stderr)",
                    ["a b", "-x"])
        self.assertEqual(r.code, 0)
        self.assertEqual(r.stdout, b"['-c', 'a b', '-x'] __main__\n")
        self.assertEqual(r.stderr, b"e\n")
        self.assertEqual(r.charts, [])

    def test_exit_codes(self):
        self.assertEqual(CodeRun("import sys; sys.exit(7)").code, 7)
        self.assertEqual(CodeRun("raise SystemExit").code, 0)
        r = CodeRun("import sys; sys.exit('bye')")
        self.assertEqual((r.code, r.stderr), (1, b"bye\n"))

    def test_traceback(self):
        r = CodeRun("def f():\n    raise ValueError('bad')\nf()")
        self.assertEqual(r.code, 1)
        err = r.stderr.decode()
        self.assertEqual(err.count('File "<string>"'), 2, err)  # <module> and f, no wrapper
        self.assertIn("raise ValueError('bad')", err)
        self.assertTrue(err.endswith("ValueError: bad\n"), err)
        r = CodeRun("def f(:")
        self.assertEqual(r.code, 1)
        self.assertIn(b"SyntaxError", r.stderr)


@unittest.skipUnless(_matplotlib_python(), "matplotlib is not installed")
class ChartTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.r = CodeRun("""
import matplotlib.pyplot as plt
plt.plot([1, 2, 3], [4, 5, 6], label='up')
plt.title('Lines'); plt.xlabel('x'); plt.ylabel('y')
plt.show()
plt.figure(); plt.bar(['a', 'b'], [3, 4]); plt.title('Bars')
plt.show()
fig, ax = plt.subplots(); ax.pie([1, 2, 3], labels=['p', 'q', 'r'])
plt.figure(); plt.scatter([1, 2], [3, 4], label='pts')
plt.figure(); plt.boxplot([[1, 2, 3, 4, 5, 100]])
fig, (a1, a2) = plt.subplots(1, 2); a1.plot([1, 2]); a2.bar([1], [2])
print('ok')
""", py=_matplotlib_python())
        by = {}
        for c in cls.r.charts:
            by.setdefault(c["type"], []).append(c)
        cls.by = by

    def test_run(self):
        self.assertEqual((self.r.code, self.r.stdout), (0, b"ok\n"), self.r.stderr[-2000:])
        self.assertEqual([c["type"] for c in self.r.charts],
                         ["line", "bar", "pie", "scatter", "box_and_whisker", "composite_chart"])
        import base64
        for c in self.r.charts:
            self.assertTrue(base64.b64decode(c["png"]).startswith(b"\x89PNG"))

    def test_line(self):
        c = self.by["line"][0]
        self.assertEqual((c["title"], c["x_label"], c["y_label"]), ("Lines", "x", "y"))
        self.assertEqual(c["elements"], [{"label": "up",
                                          "points": [[1.0, 4.0], [2.0, 5.0], [3.0, 6.0]]}])
        self.assertEqual(c["x_scale"], "linear")

    def test_bar(self):
        c = self.by["bar"][0]
        self.assertEqual(c["title"], "Bars")
        self.assertEqual([(e["label"], e["value"]) for e in c["elements"]],
                         [("a", 3.0), ("b", 4.0)])
        self.assertEqual(c["x_tick_labels"], ["a", "b"])

    def test_pie(self):
        els = self.by["pie"][0]["elements"]
        self.assertEqual([e["label"] for e in els], ["p", "q", "r"])
        for e, want in zip(els, (60, 120, 180)):
            self.assertAlmostEqual(e["angle"], want, places=3)
            self.assertEqual(e["radius"], 1.0)

    def test_scatter(self):
        self.assertEqual(self.by["scatter"][0]["elements"],
                         [{"label": "pts", "points": [[1.0, 3.0], [2.0, 4.0]]}])

    def test_box_and_composite(self):
        e = self.by["box_and_whisker"][0]["elements"][0]
        self.assertEqual((e["min"], e["median"], e["max"], e["outliers"]), (1.0, 3.5, 5.0, [100.0]))
        subs = self.by["composite_chart"][0]["elements"]
        self.assertEqual([s["type"] for s in subs], ["line", "bar"])


if __name__ == "__main__":
    unittest.main()
