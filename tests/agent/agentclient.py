# SPDX-License-Identifier: Apache-2.0
"""Test client for daytona-agent: starts the agent binary on a private unix socket and speaks
HTTP/1.1 and WebSocket to it with the standard library only (the tests must run on a fresh
machine without pip)."""
import base64
import http.client
import json
import os
import re
import shutil
import socket
import struct
import subprocess
import tempfile
import time
import urllib.parse


class UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path, timeout=60):
        super().__init__("localhost", timeout=timeout)
        self.unix_path = path

    def connect(self):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(self.timeout)
        s.connect(self.unix_path)
        self.sock = s


class Response:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers
        self.body = body

    def json(self):
        return json.loads(self.body) if self.body else None

    def __repr__(self):
        return "<Response %d %r>" % (self.status, self.body[:300])


def qs(params):
    return urllib.parse.urlencode({k: v for k, v in params.items() if v is not None})


class Agent:
    """An agent process on the host. ARGS are extra command-line options."""

    def __init__(self, args=(), env=None, workdir=None):
        binary = os.environ.get("DT_AGENT") or os.path.join(
            os.environ.get("DT_BUILD_DIR", "build"), "bin", "daytona-agent")
        self.dir = tempfile.mkdtemp(prefix="dt-agent-test-")
        self.sock = os.path.join(self.dir, "agent.sock")
        self.workdir = workdir or os.path.join(self.dir, "work")
        os.makedirs(self.workdir, exist_ok=True)
        cmd = [binary, "--socket", self.sock, "--workdir", self.workdir,
               "--state-dir", os.path.join(self.dir, "state"), *args]
        self.log = open(os.path.join(self.dir, "agent.log"), "wb")
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=self.log,
                                     stderr=subprocess.STDOUT, env=env)
        deadline = time.time() + 10
        while not os.path.exists(self.sock):
            if self.proc.poll() is not None or time.time() > deadline:
                raise RuntimeError("agent did not start: " + self.logtext())
            time.sleep(0.01)
        self.conn = None

    def logtext(self):
        with open(os.path.join(self.dir, "agent.log"), "rb") as f:
            return f.read().decode(errors="replace")

    def close(self):
        if self.conn:
            self.conn.close()
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # ---- HTTP ----

    def request(self, method, path, body=None, headers=None, timeout=60):
        """One request on a kept-alive connection (re-opened when the agent closed it)."""
        hdrs = {"Authorization": "Bearer test"}
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
            hdrs["Content-Type"] = "application/json"
        hdrs.update(headers or {})
        for attempt in (0, 1):
            if self.conn is None:
                self.conn = UnixHTTPConnection(self.sock, timeout=timeout)
            try:
                self.conn.timeout = timeout
                if self.conn.sock:
                    self.conn.sock.settimeout(timeout)
                self.conn.request(method, path, body=body, headers=hdrs)
                r = self.conn.getresponse()
                data = r.read()
                if r.getheader("Connection", "").lower() == "close":
                    self.conn.close()
                    self.conn = None
                return Response(r.status, dict((k.lower(), v) for k, v in r.getheaders()), data)
            except (ConnectionError, http.client.RemoteDisconnected, BrokenPipeError):
                self.conn.close()
                self.conn = None
                if attempt:
                    raise

    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def post(self, path, body=None, **kw):
        return self.request("POST", path, body=body, **kw)

    def delete(self, path, body=None, **kw):
        return self.request("DELETE", path, body=body, **kw)

    # ---- WebSocket ----

    def websocket(self, path, protocols=None, headers=None, timeout=30):
        return WebSocket(self.sock, path, protocols, headers, timeout)


class WebSocketError(Exception):
    pass


class WebSocket:
    """A minimal RFC 6455 client: masked frames out, messages (op, bytes) in."""

    def __init__(self, sock_path, path, protocols=None, headers=None, timeout=30):
        self.s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.s.settimeout(timeout)
        self.s.connect(sock_path)
        key = base64.b64encode(os.urandom(16)).decode()
        lines = ["GET %s HTTP/1.1" % path, "Host: localhost", "Upgrade: websocket",
                 "Connection: Upgrade", "Sec-WebSocket-Key: " + key, "Sec-WebSocket-Version: 13",
                 "Authorization: Bearer test"]
        if protocols:
            lines.append("Sec-WebSocket-Protocol: " + ", ".join(protocols))
        for k, v in (headers or {}).items():
            lines.append("%s: %s" % (k, v))
        self.s.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        buf = b""
        while b"\r\n\r\n" not in buf:
            chunk = self.s.recv(4096)
            if not chunk:
                raise WebSocketError("connection closed during handshake: %r" % buf)
            buf += chunk
        head, self.buf = buf.split(b"\r\n\r\n", 1)
        lines = head.decode().split("\r\n")
        self.status = int(lines[0].split()[1])
        self.headers = {}
        for l in lines[1:]:
            k, v = l.split(":", 1)
            self.headers[k.strip().lower()] = v.strip()
        self.response_body = self.buf
        self.close_code = None
        self.close_reason = None
        if self.status != 101:
            raise WebSocketError("upgrade refused: %d %r" % (self.status, buf))

    def _read(self, n):
        while len(self.buf) < n:
            chunk = self.s.recv(65536)
            if not chunk:
                raise EOFError("connection closed")
            self.buf += chunk
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def send(self, data, op=None):
        if isinstance(data, str):
            data = data.encode()
            op = op or 1
        op = op or 2
        mask = os.urandom(4)
        n = len(data)
        if n < 126:
            hdr = struct.pack("!BB", 0x80 | op, 0x80 | n)
        elif n < 65536:
            hdr = struct.pack("!BBH", 0x80 | op, 0x80 | 126, n)
        else:
            hdr = struct.pack("!BBQ", 0x80 | op, 0x80 | 127, n)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(data))
        self.s.sendall(hdr + mask + masked)

    def recv(self):
        """Next message as (opcode, bytes); ('close', code) at the close frame. Answers pings."""
        msg = b""
        msg_op = None
        while True:
            b0, b1 = self._read(2)
            op = b0 & 0x0F
            fin = b0 & 0x80
            if b1 & 0x80:
                raise WebSocketError("server frames must not be masked")
            n = b1 & 0x7F
            if n == 126:
                n = struct.unpack("!H", self._read(2))[0]
            elif n == 127:
                n = struct.unpack("!Q", self._read(8))[0]
            payload = self._read(n)
            if op == 8:
                self.close_code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else 1005
                self.close_reason = payload[2:].decode(errors="replace")
                try:
                    self.s.sendall(struct.pack("!BB", 0x88, 0x80 | 2) + b"\0\0\0\0" +
                                   struct.pack("!H", self.close_code if self.close_code != 1005 else 1000))
                except OSError:
                    pass
                return ("close", self.close_code)
            if op == 9:
                mask = os.urandom(4)
                self.s.sendall(struct.pack("!BB", 0x8A, 0x80 | len(payload)) + mask +
                               bytes(b ^ mask[i % 4] for i, b in enumerate(payload)))
                continue
            if op == 10:
                continue
            if op in (1, 2):
                msg_op = op
            msg += payload
            if fin:
                return (msg_op, msg)

    def recv_all(self):
        """Messages until the close frame: (list of (op, bytes), close code)."""
        out = []
        while True:
            m = self.recv()
            if m[0] == "close":
                return out, m[1]
            out.append(m)

    def close(self, code=1000):
        try:
            self.s.sendall(struct.pack("!BB", 0x88, 0x80 | 2) + b"\0\0\0\0" + struct.pack("!H", code))
        except OSError:
            pass
        self.s.close()


def demux(messages):
    """Split a log stream with 01 01 01 / 02 02 02 markers into (stdout, stderr) bytes; bytes
    before the first marker are dropped, as the SDK does."""
    data = b"".join(m[1] for m in messages)
    parts = re.split(b"(\x01\x01\x01|\x02\x02\x02)", data)
    out, err = [], []
    cur = None
    for p in parts:
        if p == b"\x01\x01\x01":
            cur = out
        elif p == b"\x02\x02\x02":
            cur = err
        elif cur is not None:
            cur.append(p)
    return b"".join(out), b"".join(err)
