# SPDX-License-Identifier: Apache-2.0
"""Starting a real `daytonad serve` for the server's python tests (stdlib only).

    sys.path.insert(0, ".../tests/lib"); import daytonad_serve as ds
    port = ds.free_port()
    proc = ds.start(DAYTONAD, data_dir, port, admin_key, log_file)   # waits for /api/health
    key_b = ds.create_org(DAYTONAD, data_dir, "team-b")             # a second org's API key
    ds.stop(proc)

The server runs with no warm pool and the built-in default root filesystem (fast, no Debian
mirror); start() raises with the tail of the log when it does not come up within 30 s."""
import http.client
import os
import socket
import subprocess
import time


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def _healthy(port):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("GET", "/api/health")
        return conn.getresponse().status == 200
    finally:
        conn.close()


def start(daytonad, data, port, admin_key, log, extra=()):
    """`daytonad serve` on 127.0.0.1:PORT with DATA, stdout/stderr to the open file LOG."""
    proc = subprocess.Popen(
        [daytonad, "serve", "--listen", "127.0.0.1:%d" % port, "--data-dir", data,
         "--warm-pool", "0", "--default-snapshot", "host", *extra],
        env=dict(os.environ, DAYTONA_ADMIN_API_KEY=admin_key), stdout=log,
        stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    deadline = time.time() + 30
    while True:
        try:
            if _healthy(port):
                return proc
        except OSError:
            pass
        if time.time() > deadline or proc.poll() is not None:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            log.flush()
            tail = ""
            if getattr(log, "name", None):
                with open(log.name, encoding="utf-8", errors="replace") as f:
                    tail = f.read()[-2000:]
            raise RuntimeError("daytonad serve did not start:\n" + tail)
        time.sleep(0.05)


def stop(proc):
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def create_org(daytonad, data, name):
    """`daytonad org create NAME`: the new organization's API key."""
    out = subprocess.run([daytonad, "org", "create", name, "--data-dir", data],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    return [l.split(": ", 1)[1] for l in out.stdout.splitlines() if l.startswith("API key: ")][0]
