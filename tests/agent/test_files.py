# SPDX-License-Identifier: Apache-2.0
"""The agent's file endpoints over its socket: every operation, streaming multipart uploads as
the SDK sends them (chunked, files[i].path before files[i].file), multipart downloads as busboy
parses them (exact filenames, filename* for non-ASCII, error parts), raw download/upload-v2."""
import hashlib
import json
import os
import re
import sys
import unittest
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import agentclient as ac  # noqa: E402

BOUNDARY = "--------------------------" + "0123456789abcdef01234567"


def form_data(files):
    """A multipart body the way node's form-data lays it out: (path, bytes) pairs."""
    out = []
    for i, (path, data) in enumerate(files):
        out.append(("--%s\r\nContent-Disposition: form-data; name=\"files[%d].path\"\r\n\r\n%s\r\n"
                    % (BOUNDARY, i, path)).encode())
        out.append(("--%s\r\nContent-Disposition: form-data; name=\"files[%d].file\"; "
                    "filename=\"%s\"\r\nContent-Type: application/octet-stream\r\n\r\n"
                    % (BOUNDARY, i, os.path.basename(path))).encode())
        out.append(data)
        out.append(b"\r\n")
    out.append(("--%s--\r\n" % BOUNDARY).encode())
    return out


def read(path):
    with open(path, "rb") as f:
        return f.read()


def parse_multipart(resp):
    ctype = resp.headers["content-type"]
    m = re.fullmatch(r"multipart/form-data; boundary=(\S+)", ctype)
    assert m, ctype
    b = b"--" + m.group(1).encode()
    segs = (b"\r\n" + resp.body).split(b"\r\n" + b)
    assert segs[0] == b"" and segs[-1] == b"--\r\n", (segs[0][:100], segs[-1][:100])
    parts = []
    for seg in segs[1:-1]:
        assert seg.startswith(b"\r\n")
        head, data = seg[2:].split(b"\r\n\r\n", 1)
        headers = {}
        for line in head.decode().split("\r\n"):
            k, v = line.split(":", 1)
            headers[k.strip().lower()] = v.strip()
        parts.append((headers, data))
    return parts


def disposition(headers):
    d = headers["content-disposition"]
    name = re.search(r'name="([^"]*)"', d).group(1)
    m = re.search(r"filename\*=UTF-8''([^;]+)", d)
    if m:
        fn = urllib.parse.unquote(m.group(1))
    else:
        fn = re.search(r'filename="((?:[^"\\]|\\.)*)"', d).group(1)
        fn = re.sub(r"\\(.)", r"\1", fn)
    return name, fn


class FilesTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.agent = ac.Agent()
        cls.w = cls.agent.workdir

    @classmethod
    def tearDownClass(cls):
        cls.agent.close()

    def q(self, route, **kw):
        return route + "?" + ac.qs(kw)

    def test_basic_ops(self):
        a = self.agent
        r = a.post(self.q("/files/folder", path="d1/sub", mode="750"))
        self.assertEqual(r.status, 200, r)
        self.assertEqual(os.stat(os.path.join(self.w, "d1/sub")).st_mode & 0o777, 0o750)
        with open(os.path.join(self.w, "d1/a.txt"), "w") as f:
            f.write("hello\nworld hello\n")
        r = a.get(self.q("/files", path="d1"))
        names = sorted(e["name"] for e in r.json())
        self.assertEqual(names, ["a.txt", "sub"])
        info = a.get(self.q("/files/info", path="d1/a.txt")).json()
        self.assertEqual(info["size"], 18)
        self.assertEqual(info["mode"], "-rw-r--r--")
        self.assertFalse(info["isDir"])
        self.assertEqual(a.get(self.q("/files/info", path="nope")).json()["code"], "FILE_NOT_FOUND")
        self.assertEqual(a.get(self.q("/files/info", path="nope")).status, 404)
        found = a.get(self.q("/files/find", path="d1", pattern="hello")).json()
        self.assertEqual(sorted((f["line"], f["content"]) for f in found),
                         [(1, "hello"), (2, "world hello")])
        self.assertEqual(a.get(self.q("/files/search", path="d1", pattern="*.txt")).json()["files"],
                         [os.path.join(self.w, "d1/a.txt")])
        r = a.post("/files/replace", {"files": [os.path.join(self.w, "d1/a.txt")], "pattern": "hello",
                                      "newValue": "bye"})
        self.assertEqual(r.json()[0]["success"], True)
        self.assertEqual(read(os.path.join(self.w, "d1/a.txt")).decode(), "bye\nworld bye\n")
        r = a.post(self.q("/files/permissions", path="d1/a.txt", mode="600"))
        self.assertEqual(r.status, 200, r)
        self.assertEqual(os.stat(os.path.join(self.w, "d1/a.txt")).st_mode & 0o777, 0o600)
        r = a.post(self.q("/files/move", source="d1/a.txt", destination="d1/b.txt"))
        self.assertEqual(r.status, 200, r)
        self.assertTrue(os.path.exists(os.path.join(self.w, "d1/b.txt")))
        self.assertEqual(a.delete(self.q("/files", path="d1")).status, 409)
        self.assertEqual(a.delete(self.q("/files", path="d1", recursive="true")).status, 200)
        self.assertFalse(os.path.exists(os.path.join(self.w, "d1")))
        self.assertEqual(a.get("/files/info").status, 400)

    def upload(self, body_parts, headers=None, chunked=True):
        conn = ac.UnixHTTPConnection(self.agent.sock, timeout=120)
        hdrs = {"Content-Type": "multipart/form-data; boundary=" + BOUNDARY}
        hdrs.update(headers or {})
        if chunked:
            conn.request("POST", "/files/bulk-upload", body=iter(body_parts), headers=hdrs,
                         encode_chunked=True)
        else:
            conn.request("POST", "/files/bulk-upload", body=b"".join(body_parts), headers=hdrs)
        r = conn.getresponse()
        data = r.read()
        conn.close()
        return r.status, data

    def test_bulk_upload_and_download(self):
        files = [("up/one.txt", b"hello world"), (os.path.join(self.w, "up/deep/two.bin"),
                                                  bytes(range(256)) * 100),
                 ("up/empty", b""), ("up/ünï cødé.txt", "ü".encode() * 10)]
        status, data = self.upload(form_data(files))
        self.assertEqual(status, 200, data)
        for p, content in files:
            full = p if p.startswith("/") else os.path.join(self.w, p)
            with open(full, "rb") as f:
                self.assertEqual(f.read(), content, p)
        # overwrite keeps nothing of the old content
        status, _ = self.upload(form_data([("up/one.txt", b"x")]), chunked=False)
        self.assertEqual(status, 200)
        self.assertEqual(read(os.path.join(self.w, "up/one.txt")), b"x")

        req = [p for p, _ in files] + ["up/missing.txt", "up"]
        r = self.agent.post("/files/bulk-download", {"paths": req},
                            headers={"Accept": "multipart/form-data"})
        self.assertEqual(r.status, 200)
        parts = parse_multipart(r)
        got = {}
        for headers, body in parts:
            name, fn = disposition(headers)
            got[fn] = (name, body, headers)
        self.assertEqual(sorted(got), sorted(req))
        self.assertEqual(got["up/one.txt"][1], b"x")
        self.assertEqual(got["up/empty"][1], b"")
        self.assertEqual(got["up/ünï cødé.txt"][1], "ü".encode() * 10)
        self.assertIn("filename*=UTF-8''", got["up/ünï cødé.txt"][2]["content-disposition"])
        self.assertEqual(got[files[1][0]][1], files[1][1])
        self.assertEqual(got[files[1][0]][2]["content-length"], str(len(files[1][1])))
        err = got["up/missing.txt"]
        self.assertEqual(err[0], "error")
        self.assertEqual(json.loads(err[1])["code"], "FILE_NOT_FOUND")
        self.assertEqual(json.loads(err[1])["statusCode"], 404)
        self.assertEqual(json.loads(err[1])["source"], "DAYTONA_DAEMON")
        self.assertEqual(got["up"][0], "error")

    def test_bad_uploads_leave_nothing(self):
        target = os.path.join(self.w, "keep.txt")
        with open(target, "wb") as f:
            f.write(b"precious")
        body = form_data([("keep.txt", b"A" * 100000)])
        truncated = b"".join(body)[:-5000]
        status, data = self.upload([truncated], chunked=False)
        self.assertEqual(status, 400, data)
        self.assertEqual(read(target), b"precious")
        self.assertEqual([n for n in os.listdir(self.w) if n.startswith(".dt-upload")], [])
        # file part without its path
        bad = ("--%s\r\nContent-Disposition: form-data; name=\"files[0].file\"; filename=\"x\"\r\n\r\n"
               "data\r\n--%s--\r\n" % (BOUNDARY, BOUNDARY)).encode()
        status, data = self.upload([bad], chunked=False)
        self.assertEqual(status, 400, data)
        status, data = self.upload([b"garbage"], headers={"Content-Type": "text/plain"}, chunked=False)
        self.assertEqual(status, 400)

    def test_large_streaming(self):
        size = 64 << 20
        block = os.urandom(1 << 20)
        h = hashlib.sha256()

        def gen():
            yield ("--%s\r\nContent-Disposition: form-data; name=\"files[0].path\"\r\n\r\nbig.bin\r\n"
                   "--%s\r\nContent-Disposition: form-data; name=\"files[0].file\"; filename=\"big.bin\"\r\n"
                   "Content-Type: application/octet-stream\r\n\r\n" % (BOUNDARY, BOUNDARY)).encode()
            for _ in range(size // len(block)):
                h.update(block)
                yield block
            yield ("\r\n--%s--\r\n" % BOUNDARY).encode()

        status, data = self.upload(gen())
        self.assertEqual(status, 200, data)
        want = h.hexdigest()
        with open(os.path.join(self.w, "big.bin"), "rb") as f:
            self.assertEqual(hashlib.sha256(f.read()).hexdigest(), want)
        r = self.agent.get(self.q("/files/download", path="big.bin"), timeout=120)
        self.assertEqual(r.status, 200)
        self.assertEqual(int(r.headers["content-length"]), size)
        self.assertEqual(hashlib.sha256(r.body).hexdigest(), want)
        r = self.agent.post("/files/bulk-download", {"paths": ["big.bin"]}, timeout=120)
        parts = parse_multipart(r)
        self.assertEqual(len(parts), 1)
        self.assertEqual(hashlib.sha256(parts[0][1]).hexdigest(), want)

    def test_upload_v2(self):
        conn = ac.UnixHTTPConnection(self.agent.sock)
        conn.request("POST", "/files/upload-v2?path=v2/raw.txt", body=b"raw body",
                     headers={"Content-Type": "application/octet-stream"})
        r = conn.getresponse()
        out = json.loads(r.read())
        self.assertEqual(r.status, 200)
        self.assertEqual(out["name"], "raw.txt")
        self.assertEqual(read(os.path.join(self.w, "v2/raw.txt")), b"raw body")
        body = ("--%s\r\nContent-Disposition: form-data; name=\"file\"; filename=\"f\"\r\n\r\n"
                "multi body\r\n--%s--\r\n" % (BOUNDARY, BOUNDARY)).encode()
        conn.request("POST", "/files/upload-v2?path=v2/multi.txt", body=body,
                     headers={"Content-Type": "multipart/form-data; boundary=" + BOUNDARY})
        r = conn.getresponse()
        r.read()
        self.assertEqual(r.status, 200)
        self.assertEqual(read(os.path.join(self.w, "v2/multi.txt")), b"multi body")
        conn.close()


if __name__ == "__main__":
    unittest.main()
