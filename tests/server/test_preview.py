# SPDX-License-Identifier: Apache-2.0
"""Preview URLs in daytonad serve: a web server in a sandbox reached through
/preview/{sandboxId}/{port}/ (and the Host form {port}-{sandboxId}.{domain}) with the preview
token, a signed URL until it expires or is revoked, a public sandbox without a token, the
errors (401, 403, 404, 409, 502), a WebSocket tunnel, and a 50 MiB download that daytonad does
not buffer (its RSS stays small while the client does not read)."""
import base64
import http.client
import json
import os
import shutil
import socket
import sys
import tempfile
import time
import unittest

DAYTONAD = os.environ.get("DT_DAYTONAD", "build/bin/daytonad")
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import daytonad_serve as ds  # noqa: E402

if os.geteuid() != 0 or not os.access(DAYTONAD, os.X_OK):
    print("skipped: needs root and daytonad (DT_DAYTONAD)")
    sys.exit(77)

# Runs in the sandbox: answers a WebSocket handshake (RFC 6455 accept key), then echoes every
# byte back. The tunnel is byte for byte, so the test's frames come back unchanged.
WS_SERVER = r"""
import base64, hashlib, socket, threading
def serve(c):
    data = b""
    while b"\r\n\r\n" not in data:
        d = c.recv(4096)
        if not d:
            return
        data += d
    head, rest = data.split(b"\r\n\r\n", 1)
    key = [l.split(b":", 1)[1].strip() for l in head.split(b"\r\n") if l.lower().startswith(b"sec-websocket-key:")][0]
    acc = base64.b64encode(hashlib.sha1(key + b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11").digest())
    c.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
              b"Sec-WebSocket-Accept: " + acc + b"\r\n\r\n" + rest)
    while True:
        d = c.recv(65536)
        if not d:
            break
        c.sendall(d)
    c.close()
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", 8081))
s.listen(8)
while True:
    c, _ = s.accept()
    threading.Thread(target=serve, args=(c,), daemon=True).start()
"""


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


class PreviewTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="dt-preview-")
        cls.data = os.path.join(cls.dir, "data")
        cls.port = ds.free_port()
        cls.key = "dtk_preview_" + os.urandom(12).hex()
        cls.log = open(os.path.join(cls.dir, "log"), "wb")
        cls.proc = None
        cls.sid = None
        try:
            cls.proc = ds.start(DAYTONAD, cls.data, cls.port, cls.key, cls.log)
            st, data = cls.call("POST", "/api/sandbox", {"env": {}, "labels": {}})
            assert st == 200, data
            cls.sid = json.loads(data)["id"]
            deadline = time.time() + 60
            while json.loads(cls.call("GET", "/api/sandbox/" + cls.sid)[1])["state"] != "started":
                if time.time() > deadline:
                    raise RuntimeError("sandbox did not start")
                time.sleep(0.1)
            ws = base64.b64encode(WS_SERVER.encode()).decode()
            cls.execute("mkdir -p /tmp/www && cd /tmp/www && echo hello-preview > hello.txt && "
                        "head -c 52428800 /dev/zero > big && echo %s | base64 -d > /tmp/ws.py && "
                        "(setsid python3 -m http.server 8080 --bind 0.0.0.0 >/tmp/http.log 2>&1 &) && "
                        "(setsid python3 /tmp/ws.py >/tmp/ws.log 2>&1 &)" % ws)
        except BaseException:
            cls.tearDownClass()
            raise

    @classmethod
    def tearDownClass(cls):
        if cls.sid:
            try:
                cls.call("DELETE", "/api/sandbox/" + cls.sid)
            except OSError:
                pass
        ds.stop(cls.proc)
        cls.log.close()
        shutil.rmtree(cls.dir, ignore_errors=True)

    @classmethod
    def call(cls, method, path, body=None, headers=None, key=True):
        conn = http.client.HTTPConnection("127.0.0.1", cls.port, timeout=60)
        h = {"Content-Type": "application/json"} if body is not None else {}
        if key:
            h["Authorization"] = "Bearer " + cls.key
        h.update(headers or {})
        conn.request(method, path, body=json.dumps(body) if body is not None else None, headers=h)
        r = conn.getresponse()
        data = r.read()
        conn.close()
        return r.status, data

    @classmethod
    def execute(cls, command):
        st, data = cls.call("POST", "/toolbox/%s/process/execute" % cls.sid,
                            {"command": command, "timeout": 30})
        assert st == 200, data
        out = json.loads(data)
        assert out["exitCode"] == 0, out
        return out["result"]

    def preview_link(self, port):
        st, data = self.call("GET", "/api/sandbox/%s/ports/%d/preview-url" % (self.sid, port))
        self.assertEqual(st, 200, data)
        link = json.loads(data)
        self.assertEqual(link["sandboxId"], self.sid)
        self.assertEqual(link["url"], "http://127.0.0.1:%d/preview/%s/%d" % (self.port, self.sid, port))
        return link

    def get(self, url_path, token=None, headers=None):
        h = dict(headers or {})
        if token:
            h["x-daytona-preview-token"] = token
        return self.call("GET", url_path, headers=h, key=False)

    def wait_listening(self, path, token):
        deadline = time.time() + 20
        while True:
            st, data = self.get(path, token)
            if st != 502 or time.time() > deadline:
                return st, data
            time.sleep(0.1)

    def test_1_token(self):
        link = self.preview_link(8080)
        path = "/preview/%s/8080/" % self.sid
        st, data = self.wait_listening(path, link["token"])
        self.assertEqual(st, 200, data)
        self.assertIn(b"hello.txt", data)  # the directory listing
        st, data = self.get(path + "hello.txt", link["token"])
        self.assertEqual((st, data), (200, b"hello-preview\n"))
        # Without the trailing slash: a redirect to it (relative links need it).
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        conn.request("GET", "/preview/%s/8080?a=1" % self.sid)
        r = conn.getresponse()
        r.read()
        self.assertEqual(r.status, 308)
        self.assertEqual(r.getheader("Location"), "/preview/%s/8080/?a=1" % self.sid)
        conn.close()
        # The Host form, for wildcard DNS.
        st, data = self.call("GET", "/hello.txt", key=False,
                             headers={"Host": "8080-%s.preview.example.com" % self.sid,
                                      "x-daytona-preview-token": link["token"]})
        self.assertEqual((st, data), (200, b"hello-preview\n"))
        # Errors.
        self.assertEqual(self.get(path)[0], 401)
        self.assertEqual(self.get(path, "x" * 32)[0], 403)
        other = self.preview_link(8081)["token"]
        self.assertNotEqual(other, link["token"])
        self.assertEqual(self.get(path, other)[0], 403)  # a token is per port
        self.assertEqual(self.get("/preview/00000000-0000-0000-0000-000000000000/8080/",
                                  link["token"])[0], 404)
        self.assertEqual(self.get("/preview/%s/0/" % self.sid, link["token"])[0], 400)
        self.assertEqual(self.call("GET", "/api/sandbox/%s/ports/70000/preview-url" % self.sid)[0], 400)
        # Nothing listens on 8082: 502 with a message naming the port.
        st, data = self.get("/preview/%s/8082/" % self.sid, self.preview_link(8082)["token"])
        self.assertEqual(st, 502, data)
        self.assertIn(b"8082", data)

    def test_2_public(self):
        path = "/preview/%s/8080/hello.txt" % self.sid
        self.wait_listening(path, self.preview_link(8080)["token"])
        self.assertEqual(self.call("POST", "/api/sandbox/%s/public/true" % self.sid)[0], 200)
        try:
            self.assertEqual(self.get(path), (200, b"hello-preview\n"))
        finally:
            self.assertEqual(self.call("POST", "/api/sandbox/%s/public/false" % self.sid)[0], 200)
        self.assertEqual(self.get(path)[0], 401)

    def test_3_signed(self):
        self.wait_listening("/preview/%s/8080/" % self.sid, self.preview_link(8080)["token"])
        st, data = self.call("GET", "/api/sandbox/%s/ports/8080/signed-preview-url?expiresInSeconds=2"
                             % self.sid)
        self.assertEqual(st, 200, data)
        sig = json.loads(data)
        self.assertEqual((sig["sandboxId"], sig["port"]), (self.sid, 8080))
        prefix = "http://127.0.0.1:%d" % self.port
        self.assertTrue(sig["url"].startswith(prefix) and sig["token"] in sig["url"], sig)
        path = sig["url"][len(prefix):] + "/hello.txt"
        self.assertEqual(self.get(path), (200, b"hello-preview\n"))
        # Bound to its port; tampering breaks it.
        self.assertEqual(self.get(path.replace("/8080/", "/8081/"))[0], 403)
        t = sig["token"]
        bad = t[:10] + ("a" if t[10] != "a" else "b") + t[11:]
        self.assertEqual(self.get(path.replace(t, bad))[0], 403)
        time.sleep(3.1)
        self.assertEqual(self.get(path)[0], 403)  # expired
        # Revoked before expiry.
        st, data = self.call("GET", "/api/sandbox/%s/ports/8080/signed-preview-url" % self.sid)
        sig = json.loads(data)
        path = sig["url"][len(prefix):] + "/hello.txt"
        self.assertEqual(self.get(path)[0], 200)
        st, data = self.call("POST", "/api/sandbox/%s/ports/8080/signed-preview-url/%s/expire"
                             % (self.sid, sig["token"]))
        self.assertEqual(st, 200, data)
        self.assertEqual(self.get(path)[0], 403)
        self.assertEqual(self.call("GET", "/api/sandbox/%s/ports/8080/signed-preview-url?"
                                   "expiresInSeconds=86401" % self.sid)[0], 400)

    def test_4_websocket(self):
        token = self.preview_link(8081)["token"]
        deadline = time.time() + 20
        while True:
            s = socket.create_connection(("127.0.0.1", self.port), timeout=10)
            s.sendall(("GET /preview/%s/8081/ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                       "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                       "Sec-WebSocket-Version: 13\r\nx-daytona-preview-token: %s\r\n\r\n"
                       % (self.sid, token)).encode())
            head = b""
            while b"\r\n\r\n" not in head:
                d = s.recv(4096)
                if not d:
                    break
                head += d
            if head.startswith(b"HTTP/1.1 101") or time.time() > deadline:
                break
            s.close()
            time.sleep(0.1)
        self.assertTrue(head.startswith(b"HTTP/1.1 101"), head)
        self.assertIn(b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo=", head)
        frame = b"\x81\x85\x01\x02\x03\x04" + bytes(c ^ k for c, k in zip(b"hello", b"\x01\x02\x03\x04\x01"))
        s.sendall(frame)
        got = head.split(b"\r\n\r\n", 1)[1]
        while len(got) < len(frame):
            got += s.recv(4096)
        self.assertEqual(got, frame)  # echoed byte for byte through the tunnel
        s.close()

    def test_5_big_download(self):
        token = self.preview_link(8080)["token"]
        self.wait_listening("/preview/%s/8080/" % self.sid, token)
        before = rss_kib(self.proc.pid)
        s = socket.create_connection(("127.0.0.1", self.port), timeout=30)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        s.sendall(("GET /preview/%s/8080/big HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                   "x-daytona-preview-token: %s\r\n\r\n" % (self.sid, token)).encode())
        time.sleep(1.5)  # not reading: without backpressure daytonad would queue 50 MiB now
        grown = rss_kib(self.proc.pid) - before
        total = 0
        data = b""
        while b"\r\n\r\n" not in data:
            data += s.recv(65536)
        head, body = data.split(b"\r\n\r\n", 1)
        self.assertTrue(head.startswith(b"HTTP/1.1 200"), head)
        total = len(body)
        while True:
            d = s.recv(1 << 20)
            if not d:
                break
            total += len(d)
        s.close()
        self.assertEqual(total, 50 << 20)
        self.assertLess(grown, 16 * 1024, "daytonad grew %d KiB while the client did not read" % grown)

    def test_6_stopped(self):
        token = self.preview_link(8080)["token"]
        st, data = self.call("POST", "/api/sandbox/%s/stop" % self.sid)
        self.assertEqual(st, 200, data)
        st, data = self.get("/preview/%s/8080/" % self.sid, token)
        self.assertEqual(st, 409, data)


if __name__ == "__main__":
    unittest.main()
