#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
# Test fixture for itest-registry: runs three real CNCF registries (docker-registry) on loopback
# sharing one storage dir -- plain http, htpasswd over TLS, and token auth with a tiny JWT token
# server -- pushes an OCI image built here with skopeo, prints one JSON line describing it all,
# then waits for EOF on stdin and tears everything down. Exits 77 when a tool is missing.
import base64
import ctypes
import hashlib
import http.server
import io
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
import urllib.parse

USER, PASSWORD = "alice", "s3cret-pw"
SERVICE, ISSUER = "test-registry", "test-issuer"


def skip(why):
    print("SKIP: " + why, file=sys.stderr)
    sys.exit(77)


for tool in ("docker-registry", "skopeo", "htpasswd", "openssl"):
    if not shutil.which(tool):
        skip(tool + " is not installed (apt-get install docker-registry skopeo apache2-utils)")
try:
    import jwt  # python3-jwt
except ImportError:
    skip("python3-jwt is not installed")

libc = ctypes.CDLL(None, use_errno=True)


def die_with_parent():
    libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG: never outlive the fixture


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def sha(b):
    return "sha256:" + hashlib.sha256(b).hexdigest()


def make_layer(files, gz):
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as t:
        for name, data in files:
            ti = tarfile.TarInfo(name)
            ti.size, ti.mode, ti.mtime = len(data), 0o644, 0
            t.addfile(ti, io.BytesIO(data))
    plain = raw.getvalue()
    if not gz:
        return plain, plain
    import gzip
    return gzip.compress(plain, mtime=0), plain


def build_layout(d):
    os.makedirs(d + "/blobs/sha256")

    def put(b):
        with open(d + "/blobs/sha256/" + sha(b)[7:], "wb") as f:
            f.write(b)
        return sha(b)

    l1, l1_plain = make_layer([("hello.txt", b"hello from the registry test\n")], gz=True)
    # A bigger layer (incompressible, so it stays big) for many write callbacks.
    import random
    big = random.Random(1).randbytes(3 * 1024 * 1024)
    l2, l2_plain = make_layer([("big.bin", big)], gz=True)
    cfg = json.dumps({
        "architecture": "amd64", "os": "linux", "config": {"Cmd": ["/bin/sh"]},
        "rootfs": {"type": "layers", "diff_ids": [sha(l1_plain), sha(l2_plain)]},
    }, sort_keys=True).encode()
    man = json.dumps({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": put(cfg), "size": len(cfg)},
        "layers": [
            {"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
             "digest": put(l1), "size": len(l1)},
            {"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
             "digest": put(l2), "size": len(l2)},
        ],
    }, sort_keys=True).encode()
    md = put(man)
    with open(d + "/index.json", "w") as f:
        json.dump({"schemaVersion": 2, "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": md,
            "size": len(man), "annotations": {"org.opencontainers.image.ref.name": "v1"}}]}, f)
    with open(d + "/oci-layout", "w") as f:
        json.dump({"imageLayoutVersion": "1.0.0"}, f)
    blob = lambda dg, b: {"digest": dg, "size": len(b), "path": d + "/blobs/sha256/" + dg[7:]}
    return {"manifest": blob(md, man), "config": blob(sha(cfg), cfg),
            "layers": [blob(sha(l1), l1), blob(sha(l2), l2)]}


class TokenHandler(http.server.BaseHTTPRequestHandler):
    key = None
    x5c = None
    issued = 0

    def log_message(self, *a):
        pass

    # Not a registry: a fake one for what a real registry will not do on demand.
    flaky = {}
    leaked = 0
    port = 0
    blob = b""

    def fake_registry(self, u):
        basic = "Basic " + base64.b64encode((USER + ":" + PASSWORD).encode()).decode()
        if u.path.startswith("/v2/flaky/manifests/"):
            # "twice": 503 twice then a manifest; "always": 503; "limited": 429.
            ref = u.path.rsplit("/", 1)[1]
            n = TokenHandler.flaky[ref] = TokenHandler.flaky.get(ref, 0) + 1
            if ref == "twice" and n > 2:
                b = b'{"schemaVersion":2}'
                self.send_response(200)
                self.send_header("Content-Type", "application/vnd.oci.image.manifest.v1+json")
                self.send_header("Content-Length", str(len(b)))
                self.end_headers()
                return self.wfile.write(b)
            code, c = (429, "TOOMANYREQUESTS") if ref == "limited" else (503, "UNAVAILABLE")
            return self.reply(code, {"errors": [{"code": c, "message": "try later"}]},
                              {"Retry-After": "0"})
        if u.path.startswith("/v2/redir/blobs/"):
            # Blob storage elsewhere: credentials must not follow the redirect.
            if self.headers.get("Authorization") != basic:
                return self.reply(401, {"errors": [{"code": "UNAUTHORIZED", "message": "auth"}]},
                                  {"WWW-Authenticate": 'Basic realm="redir"'})
            self.send_response(307)
            self.send_header("Location", "http://localhost:%d/storage/x?sig=1" % TokenHandler.port)
            self.send_header("Content-Length", "0")
            return self.end_headers()
        if u.path.startswith("/storage/"):
            if "Authorization" in self.headers:
                TokenHandler.leaked += 1
            self.send_response(200)
            self.send_header("Content-Length", str(len(TokenHandler.blob)))
            self.end_headers()
            return self.wfile.write(TokenHandler.blob)
        return self.reply(404, {"errors": [{"code": "NAME_UNKNOWN", "message": "no"}]})

    def do_GET(self):
        u = urllib.parse.urlparse(self.path)
        if u.path == "/count":
            return self.reply(200, {"issued": TokenHandler.issued, "leaked": TokenHandler.leaked,
                                    "flaky_always": TokenHandler.flaky.get("always", 0)})
        if u.path != "/token":
            return self.fake_registry(u)
        q = urllib.parse.parse_qs(u.query)
        want = "Basic " + base64.b64encode((USER + ":" + PASSWORD).encode()).decode()
        if self.headers.get("Authorization") != want:
            return self.reply(401, {"details": "bad credentials"},
                              {"WWW-Authenticate": 'Basic realm="token"'})
        access = []
        for s in q.get("scope", []):
            typ, name, actions = s.split(":", 2) if s.count(":") >= 2 else ("", "", "")
            access.append({"type": typ, "name": name, "actions": actions.split(",")})
        now = int(time.time())
        tok = jwt.encode({"iss": ISSUER, "sub": USER, "aud": q.get("service", [""])[0],
                          "exp": now + 300, "nbf": now - 10, "iat": now,
                          "jti": os.urandom(8).hex(), "access": access},
                         TokenHandler.key, algorithm="RS256", headers={"x5c": TokenHandler.x5c})
        TokenHandler.issued += 1
        # Docker Hub sends both; use only access_token to exercise the fallback.
        self.reply(200, {"access_token": tok, "expires_in": 300})

    def reply(self, code, obj, hdrs=None):
        b = json.dumps(obj).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(b)))
        for k, v in (hdrs or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(b)


def wait_port(port, proc, what):
    for _ in range(200):
        if proc.poll() is not None:
            raise RuntimeError(what + " exited with " + str(proc.returncode))
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(what + " did not start")


def main():
    work = tempfile.mkdtemp(prefix="dt-registry-")
    procs, server = [], None

    def cleanup(*_):
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        if server:
            server.shutdown()
        shutil.rmtree(work, ignore_errors=True)

    signal.signal(signal.SIGTERM, lambda *a: (cleanup(), os._exit(1)))
    try:
        info = build_layout(work + "/layout")
        crt, key = work + "/cert.pem", work + "/key.pem"
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                        "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                        "-keyout", key, "-out", crt], check=True, capture_output=True)
        htp = subprocess.run(["htpasswd", "-Bbn", USER, PASSWORD], check=True,
                             capture_output=True).stdout
        with open(work + "/htpasswd", "wb") as f:
            f.write(htp)
        from cryptography import x509
        from cryptography.hazmat.primitives import serialization
        with open(crt, "rb") as f:
            cert = x509.load_pem_x509_certificate(f.read())
        TokenHandler.x5c = [base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode()]
        with open(key, "rb") as f:
            TokenHandler.key = f.read()

        with open(info["config"]["path"], "rb") as f:
            TokenHandler.blob = f.read()
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), TokenHandler)
        tport = TokenHandler.port = server.server_address[1]
        threading.Thread(target=server.serve_forever, daemon=True).start()

        storage = work + "/storage"
        ports = {}
        for name, extra in (
            ("plain", {}),
            ("basic", {"http": {"tls": {"certificate": crt, "key": key}},
                       "auth": {"htpasswd": {"realm": "basic-realm", "path": work + "/htpasswd"}}}),
            ("token", {"auth": {"token": {"realm": "http://127.0.0.1:%d/token" % tport,
                                          "service": SERVICE, "issuer": ISSUER,
                                          "rootcertbundle": crt}}}),
        ):
            port = free_port()
            cfg = {"version": 0.1, "log": {"level": "error", "accesslog": {"disabled": True}},
                   "storage": {"filesystem": {"rootdirectory": storage}},
                   "http": {"addr": "127.0.0.1:%d" % port, "secret": "not-secret"}}
            cfg["http"].update(extra.get("http", {}))
            if "auth" in extra:
                cfg["auth"] = extra["auth"]
            path = "%s/%s.yml" % (work, name)
            with open(path, "w") as f:
                json.dump(cfg, f)  # JSON is YAML
            p = subprocess.Popen(["docker-registry", "serve", path], stdin=subprocess.DEVNULL,
                                 stdout=subprocess.DEVNULL, stderr=open(work + "/" + name + ".log", "w"),
                                 preexec_fn=die_with_parent)
            procs.append(p)
            ports[name] = port
        for name, p in zip(ports, procs):
            wait_port(ports[name], p, "docker-registry " + name)

        env = dict(os.environ, HOME=work, XDG_RUNTIME_DIR=work)
        subprocess.run(["skopeo", "--insecure-policy", "copy", "--quiet",
                        "--dest-tls-verify=false", "--digestfile", work + "/digest",
                        "oci:%s/layout:v1" % work,
                        "docker://127.0.0.1:%d/test/img:v1" % ports["plain"]],
                       check=True, capture_output=True, env=env)
        with open(work + "/digest") as f:
            info["pushed_digest"] = f.read().strip()
        info.update({"plain": "127.0.0.1:%d" % ports["plain"],
                     "basic": "127.0.0.1:%d" % ports["basic"],
                     "token": "127.0.0.1:%d" % ports["token"],
                     "token_server": "127.0.0.1:%d" % tport,
                     "ca_file": crt, "user": USER, "password": PASSWORD, "repo": "test/img",
                     "tag": "v1"})
        print(json.dumps(info), flush=True)
        sys.stdin.read()  # until the test closes its end (or dies)
    except subprocess.CalledProcessError as e:
        print("fixture: %s failed: %s" % (e.cmd[0], e.stderr.decode(errors="replace")),
              file=sys.stderr)
        cleanup()
        return 1
    except Exception as e:
        print("fixture: %s" % e, file=sys.stderr)
        for n in ("plain", "basic", "token"):
            try:
                with open("%s/%s.log" % (work, n)) as f:
                    sys.stderr.write(f.read()[-2000:])
            except OSError:
                pass
        cleanup()
        return 1
    cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
