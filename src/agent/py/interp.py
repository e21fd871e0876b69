# SPDX-License-Identifier: Apache-2.0
# Stateful Python interpreter worker behind the code-interpreter WebSocket (contract 3.8). The agent
# compiles this file in and runs one worker per context: python3 -u -I -c "<this source>".
#
# Protocol (one JSON object per line, UTF-8, both ways):
#   fd 0 = /dev/null; fds 1, 2 = raw stdout/stderr (only stray output: subprocesses, C extensions);
#   fd 3 = requests from the agent, fd 4 = events to the agent. Both are moved to high
#   close-on-exec fds at start-up, so user code and its children never see them.
#   Request: {"code": "...", "envs": {"K": "V"}?}
#   Events for each request, in this order:
#     {"type":"stdout","text":...} / {"type":"stderr","text":...}  (0 or more; writes to
#         sys.stdout/sys.stderr coalesced for at most 20 ms; each text <= 65536 UTF-8 bytes; a JSON
#         line is therefore at most ~400 KiB even when every character needs a \u escape)
#     {"type":"error","name":"ZeroDivisionError","value":"division by zero","traceback":"..."}
#         (0 or 1; traceback is the formatted traceback without this worker's frames)
#     {"type":"done"} or {"type":"done","interrupted":true}  (exactly 1, always last)
#   A request line that is not a JSON object with a string "code" gets an error event named
#   "ProtocolError" then done.
# Semantics:
#   - State (globals, imports, cwd) persists in one namespace with __name__ == "__main__".
#   - If the last statement is an expression whose value is not None, its repr() and "\n" go to
#     stdout (like a REPL); the value is also stored in the builtin "_".
#   - Compile errors are error events named SyntaxError (or IndentationError...).
#   - envs are applied to os.environ before the cell runs and stay.
#   - SIGINT while a cell runs raises KeyboardInterrupt in it; the worker then sends
#     {"type":"done","interrupted":true} (no error event) and waits for the next request.
#     SIGINT while idle is ignored.
#   - exit()/sys.exit()/raise SystemExit end only the cell; the worker keeps its state. Exit code
#     None or 0 reports nothing; any other code reports an error event named "SystemExit" with
#     value str(code) and an empty traceback.
#   - The worker exits (status 0) when fd 3 reaches EOF, or when fd 4 is closed by the agent.
#   - Output that threads write between cells is sent as stdout/stderr events at once, outside any
#     request; the agent may drop it. Top-level await is not supported.
#   - -I drops '' and PYTHONPATH from sys.path and the user site-packages; the worker puts them
#     back (as a plain "python3" would have them) after its own imports are done.

import ast
import json
import linecache
import os
import signal
import sys
import threading
import time
import traceback

_CHUNK = 65536
_LINGER = 0.02


def _dup_high(fd):
    try:
        new = os.dup(fd)
    except OSError:
        return -1
    try:
        import fcntl
        high = fcntl.fcntl(new, fcntl.F_DUPFD_CLOEXEC, 100)
        os.close(new)
        new = high
    except (ImportError, OSError):
        os.set_inheritable(new, False)
    os.close(fd)
    return new


def _clean_text(s):
    # Lone surrogates (from surrogateescape decoding) cannot be encoded as JSON UTF-8: turn them
    # back into bytes, and invalid bytes into U+FFFD.
    try:
        return s.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    except UnicodeError:
        return s.encode("utf-8", "replace").decode("utf-8", "replace")


def _split_utf8(s):
    b = s.encode("utf-8")
    out = []
    while len(b) > _CHUNK:
        cut = _CHUNK
        while cut > 0 and (b[cut] & 0xC0) == 0x80:
            cut -= 1
        out.append(b[:cut].decode("utf-8"))
        b = b[cut:]
    if b:
        out.append(b.decode("utf-8"))
    return out


class _State:
    def __init__(self):
        self.running = False
        self.in_emit = 0
        self.deferred = False


_st = _State()


class _Guard:
    """Marks a section of the main thread that a KeyboardInterrupt must not cut in half (a partial
    event line would corrupt the stream); the SIGINT handler defers the interrupt to its end."""

    def __enter__(self):
        self.main = threading.current_thread() is threading.main_thread()
        if self.main:
            _st.in_emit += 1
        return self

    def __exit__(self, typ, val, tb):
        if not self.main:
            return False
        _st.in_emit -= 1
        if _st.in_emit == 0 and _st.deferred and typ is None:
            _st.deferred = False
            if _st.running:
                raise KeyboardInterrupt
        return False


class _Events:
    """Writes event lines to the agent; shared by the main thread and the flusher thread."""

    def __init__(self, fd):
        self.fd = fd
        self.lock = threading.Lock()

    def emit(self, obj):
        line = (json.dumps(obj, ensure_ascii=False) + "\n").encode("utf-8")
        with _Guard(), self.lock:
            view = memoryview(line)
            while view:
                try:
                    n = os.write(self.fd, view)
                except OSError:
                    os._exit(0)  # the agent is gone
                view = view[n:]


class _Output:
    """Pending text of both streams, flushed by size, on stream switch, by a 20 ms timer and at the
    end of each cell. Only one stream is pending at a time so events keep the write order; send_lock
    is held from taking text until it is sent, so the flusher thread cannot reorder events.
    Lock order: send_lock, then cond."""

    def __init__(self, events):
        self.events = events
        self.send_lock = threading.Lock()
        self.cond = threading.Condition()
        self.kind = None
        self.parts = []
        self.size = 0
        self.since = 0.0
        t = threading.Thread(target=self._run, name="dt-flusher", daemon=True)
        t.start()

    def _take(self):
        if not self.parts:
            return None, None
        kind, text = self.kind, "".join(self.parts)
        self.kind, self.parts, self.size = None, [], 0
        return kind, text

    def _send(self, kind, text):
        if kind is None or not text:
            return
        for piece in _split_utf8(_clean_text(text)):
            self.events.emit({"type": kind, "text": piece})

    def write(self, kind, text):
        with _Guard(), self.send_lock:
            with self.cond:
                prev = (None, None)
                if self.kind is not None and self.kind != kind:
                    prev = self._take()
                if not self.parts:
                    self.since = time.monotonic()
                    self.kind = kind
                    self.cond.notify()
                self.parts.append(text)
                self.size += len(text)
                big = self._take() if self.size >= _CHUNK else (None, None)
            self._send(*prev)
            self._send(*big)

    def flush(self):
        with _Guard(), self.send_lock:
            with self.cond:
                kind, text = self._take()
            self._send(kind, text)

    def _run(self):
        while True:
            with self.cond:
                while not self.parts:
                    self.cond.wait()
                delay = self.since + _LINGER - time.monotonic()
                if delay > 0:
                    self.cond.wait(delay)
                    continue
            with self.send_lock:
                with self.cond:
                    kind, text = self._take()
                self._send(kind, text)


class _Stream:
    """sys.stdout / sys.stderr replacement turning writes into events."""

    def __init__(self, out, kind, fd):
        self._out = out
        self._kind = kind
        self._fd = fd
        self.encoding = "utf-8"
        self.errors = "replace"
        self.newlines = None
        self.closed = False
        self.name = "<%s>" % kind

    def write(self, s):
        if not isinstance(s, str):
            raise TypeError("write() argument must be str, not %s" % type(s).__name__)
        if s:
            self._out.write(self._kind, s)
        return len(s)

    def writelines(self, lines):
        for line in lines:
            self.write(line)

    def flush(self):
        self._out.flush()

    def isatty(self):
        return False

    def fileno(self):
        return self._fd

    def readable(self):
        return False

    def writable(self):
        return True

    def seekable(self):
        return False

    def close(self):
        pass


def _sigint(signum, frame):
    if not _st.running:
        return
    if _st.in_emit:
        _st.deferred = True
        return
    raise KeyboardInterrupt


def _restore_paths():
    # -I removed '' (cwd), PYTHONPATH and the user site: give user code the usual sys.path.
    extra = [""]
    pp = os.environ.get("PYTHONPATH", "")
    extra += [p for p in pp.split(os.pathsep) if p]
    sys.path[0:0] = [p for p in extra if p not in sys.path or p == ""]
    try:
        import site
        user = site.getusersitepackages()
        if user and os.path.isdir(user) and user not in sys.path:
            before = list(sys.path)
            site.addsitedir(user)
            added = [p for p in sys.path if p not in before]
            for p in added:
                sys.path.remove(p)
            pos = len(sys.path)
            for i, p in enumerate(sys.path):
                if p.endswith("-packages"):
                    pos = i
                    break
            sys.path[pos:pos] = added
    except Exception:
        pass


_SELF_FILE = _dup_high.__code__.co_filename


def _strip_tb(tb):
    while tb is not None and tb.tb_frame.f_code.co_filename == _SELF_FILE:
        tb = tb.tb_next
    return tb


class _Worker:
    def __init__(self, req_fd, ev_fd):
        self.req_fd = req_fd
        self.events = _Events(ev_fd)
        self.out = _Output(self.events)
        self.stdout = _Stream(self.out, "stdout", 1)
        self.stderr = _Stream(self.out, "stderr", 2)
        self.ns = {"__name__": "__main__", "__doc__": None, "__package__": None,
                   "__spec__": None, "__loader__": None, "__builtins__": __builtins__}
        self.count = 0
        self.buf = b""

    def read_line(self):
        while True:
            i = self.buf.find(b"\n")
            if i >= 0:
                line, self.buf = self.buf[:i], self.buf[i + 1:]
                return line
            try:
                data = os.read(self.req_fd, 65536)
            except KeyboardInterrupt:
                continue
            if not data:
                if self.buf:
                    line, self.buf = self.buf, b""
                    return line
                return None
            self.buf += data

    def error_event(self, name, value, tb_text):
        try:
            self.out.flush()  # output written before the exception comes first
        except Exception:
            pass
        self.events.emit({"type": "error", "name": name, "value": value, "traceback": tb_text})

    def compile_cell(self, code):
        self.count += 1
        fname = "<cell-%d>" % self.count
        lines = code.splitlines(True)
        if lines and not lines[-1].endswith("\n"):
            lines[-1] += "\n"
        linecache.cache[fname] = (len(code), None, lines, fname)
        tree = ast.parse(code, fname, "exec")
        last = None
        if tree.body and isinstance(tree.body[-1], ast.Expr):
            last = ast.Expression(body=tree.body.pop().value)
        mod = ast.Module(body=tree.body, type_ignores=[])
        body = compile(mod, fname, "exec")
        tail = compile(last, fname, "eval") if last is not None else None
        return body, tail

    def report(self, exc):
        name = type(exc).__name__
        try:
            value = str(exc)
        except Exception:
            value = "<unprintable %s>" % name
        if isinstance(exc, SyntaxError):
            text = "".join(traceback.format_exception_only(type(exc), exc))
        else:
            tb = _strip_tb(exc.__traceback__)
            text = "".join(traceback.format_exception(type(exc), exc, tb))
        self.error_event(name, value, text)

    def run_cell(self, code):
        try:
            body, tail = self.compile_cell(code)
        except (SyntaxError, ValueError, OverflowError) as e:
            self.report(e)
            return False
        exec(body, self.ns)
        if tail is not None:
            value = eval(tail, self.ns)
            if value is not None:
                import builtins
                builtins._ = value
                sys.stdout.write(repr(value) + "\n")
        return False

    def handle(self, line):
        try:
            req = json.loads(line.decode("utf-8", "surrogateescape"))
            if not isinstance(req, dict) or not isinstance(req.get("code"), str):
                raise ValueError("request must be an object with a string \"code\"")
            envs = req.get("envs") or {}
            if not isinstance(envs, dict):
                raise ValueError("\"envs\" must be an object")
        except ValueError as e:
            self.error_event("ProtocolError", str(e), "")
            self.events.emit({"type": "done"})
            return
        interrupted = False
        try:
            for k, v in envs.items():
                if isinstance(k, str) and k and "=" not in k and "\0" not in k:
                    os.environ[k] = v if isinstance(v, str) else json.dumps(v)
            sys.stdout, sys.stderr = self.stdout, self.stderr
            signal.signal(signal.SIGINT, _sigint)
            try:
                _st.running = True
                try:
                    self.run_cell(req["code"])
                finally:
                    _st.running = False
            except KeyboardInterrupt:
                interrupted = True
            except SystemExit as e:
                code = e.code
                if code is not None and code != 0:
                    self.error_event("SystemExit", str(code), "")
            except BaseException as e:
                self.report(e)
        except KeyboardInterrupt:
            # A SIGINT racing with the end of the cell.
            interrupted = True
        _st.running = False
        _st.deferred = False
        sys.stdout, sys.stderr = self.stdout, self.stderr
        try:
            self.out.flush()
        except Exception:
            pass
        self.events.emit({"type": "done", "interrupted": True} if interrupted else {"type": "done"})

    def serve(self):
        while True:
            line = self.read_line()
            if line is None:
                return
            if not line.strip():
                continue
            try:
                self.handle(line)
            except KeyboardInterrupt:
                pass


def _main():
    req_fd = _dup_high(3)
    ev_fd = _dup_high(4)
    if req_fd < 0 or ev_fd < 0:
        sys.stderr.write("interp: fds 3 and 4 must be open\n")
        sys.exit(2)
    signal.signal(signal.SIGINT, _sigint)
    os.environ.setdefault("MPLBACKEND", "Agg")  # no display in a sandbox
    worker = _Worker(req_fd, ev_fd)
    sys.stdout, sys.stderr = worker.stdout, worker.stderr
    _restore_paths()
    worker.serve()
    worker.out.flush()


_main()
