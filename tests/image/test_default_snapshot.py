#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""The default snapshot, built for real: `daytonad serve` on a fresh data dir builds
`daytona-default` from Debian packages (mmdebstrap, then our builder), and a sandbox created
with no snapshot gets it: the daytona user, python3 with numpy/pandas/matplotlib, node with a
TypeScript runner, git, curl. Slow (several minutes, downloads from the Debian mirror): label
"slow", run by `make test-slow`, not by `make test`. Exit 77 when not root or mmdebstrap is
missing."""
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

DAYTONAD = os.environ.get("DT_DAYTONAD", "build/bin/daytonad")
BUILD_TIMEOUT = int(os.environ.get("DT_DEFAULT_SNAPSHOT_TIMEOUT", "2400"))


def skip(why):
    print("skipped: " + why, file=sys.stderr)
    sys.exit(77)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


class Api:
    def __init__(self, port, key):
        self.base = "http://127.0.0.1:%d" % port
        self.key = key

    def call(self, method, path, body=None, timeout=60):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.base + path, data=data, method=method,
                                     headers={"Authorization": "Bearer " + self.key,
                                              "Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                text = r.read().decode()
                return r.status, json.loads(text) if text else None
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()

    def run(self, sid, command):
        st, res = self.call("POST", "/toolbox/%s/process/execute" % sid,
                            {"command": command, "timeout": 120}, timeout=180)
        assert st == 200, (st, res)
        return res["exitCode"], res["result"]


def main():
    if os.geteuid() != 0:
        skip("needs root (daytonad serve runs sandboxes)")
    if not shutil.which("mmdebstrap"):
        skip("mmdebstrap is not installed")
    data = tempfile.mkdtemp(prefix="dt-default-snapshot-")
    port, key = free_port(), secrets.token_hex(16)
    log = open(os.path.join(data, "serve.log"), "w")
    srv = subprocess.Popen([DAYTONAD, "serve", "--listen", "127.0.0.1:%d" % port, "--data-dir",
                            data + "/d", "--warm-pool", "0"],
                           env=dict(os.environ, DAYTONA_ADMIN_API_KEY=key), stdout=log,
                           stderr=subprocess.STDOUT, start_new_session=True)
    api = Api(port, key)
    sid = None
    ok = False
    try:
        deadline = time.time() + 30
        while True:
            try:
                if api.call("GET", "/api/health")[0] == 200:
                    break
            except OSError:
                pass
            assert time.time() < deadline, "daytonad did not start"
            time.sleep(0.2)
        # The default snapshot is general: every organization sees it.
        t0 = time.time()
        while True:
            st, snap = api.call("GET", "/api/snapshots/daytona-default")
            assert st == 200, (st, snap)
            if snap["state"] not in ("pending", "pulling", "building"):
                break
            assert time.time() - t0 < BUILD_TIMEOUT, "the default snapshot took too long"
            time.sleep(5)
        print("default snapshot: %s after %.0f s, %.2f GB" % (snap["state"], time.time() - t0,
                                                             snap["size"] or 0))
        assert snap["state"] == "active", snap
        assert snap["general"] is True
        st, sb = api.call("POST", "/api/sandbox", {"env": {}, "labels": {}}, timeout=120)
        assert st == 200 and sb["state"] == "started", (st, sb)
        sid = sb["id"]
        assert sb["snapshot"] == snap["id"], sb
        checks = [
            ("id -u; id -un; echo $HOME; pwd", "1000\ndaytona\n/home/daytona\n/home/daytona"),
            ("python3 -c 'import numpy, pandas, matplotlib; print(\"ok\")'", "ok"),
            ("node -e 'console.log(1+1)'", "2"),
            ("echo 'const x: number = 3; console.log(x)' > /tmp/a.ts && ts-node /tmp/a.ts", "3"),
            ("git --version | cut -d' ' -f1", "git"),
            ("curl --version | head -1 | cut -d' ' -f1", "curl"),
            ("pip --version >/dev/null && echo pip", "pip"),
        ]
        for cmd, want in checks:
            code, out = api.run(sid, cmd)
            assert code == 0 and out.strip() == want, (cmd, code, out)
        # The SDK's codeRun path, for the three languages it supports.
        for lang, code_text, want in (("python", "print(6*7)", "42"),
                                      ("javascript", "console.log(6*7)", "42"),
                                      ("typescript", "const n: number = 6*7; console.log(n)",
                                       "42")):
            st, res = api.call("POST", "/toolbox/%s/process/code-run" % sid,
                               {"code": code_text, "language": lang, "timeout": 120},
                               timeout=180)
            assert st == 200 and res["exitCode"] == 0 and res["result"].strip() == want, \
                (lang, st, res)
        ok = True
        print("default snapshot: every check passed")
    finally:
        if sid:
            api.call("DELETE", "/api/sandbox/" + sid)
        os.killpg(srv.pid, 15)
        srv.wait(timeout=30)
        log.close()
        if not ok:
            with open(os.path.join(data, "serve.log")) as f:
                sys.stderr.write(f.read()[-4000:])
            for root, _, files in os.walk(data + "/d/snapshots"):
                for f in files:
                    if f == "build.log":
                        with open(os.path.join(root, f)) as lf:
                            sys.stderr.write(lf.read()[-6000:])
        shutil.rmtree(data, ignore_errors=True)


if __name__ == "__main__":
    main()
