# SPDX-License-Identifier: Apache-2.0
"""Crash safety of `daytonad serve` (issue 5): `kill -9` of the server at any moment, then a
restart on the same data dir, loses no sandbox and no file; running sandboxes and their agents'
sessions are re-adopted; half-done transitions are finished or rolled back; nothing leaks.

Drives the server over raw HTTP (standard library only), with real sandboxes: needs root.
Environment: DT_DAYTONAD the daytonad binary [<source>/build/bin/daytonad] (daytona-agent must
sit next to it); DT_CRASH_KEEP=1 keeps the work dir (data dir and server logs).
Exit status 77: skipped (not root, or the binaries are missing)."""

import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE = os.path.dirname(os.path.dirname(HERE))
DAYTONAD = os.path.abspath(os.environ.get("DT_DAYTONAD") or
                           os.path.join(SOURCE, "build", "bin", "daytonad"))
AGENT = os.path.join(os.path.dirname(DAYTONAD), "daytona-agent")

HEALTH_TIMEOUT = 60      # a start may build the default root filesystem
REQUEST_TIMEOUT = 60     # one API or toolbox request
LOG_TAIL = 12000
UUID_RE = re.compile(r"^[0-9a-fA-F-]{8,64}$")
TRANSITIONAL = ("creating", "starting", "stopping", "destroying", "restoring", "pending_build",
                "building_snapshot", "pulling_snapshot")


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path, timeout=10):
        super().__init__("localhost", timeout=timeout)
        self.unix_path = path

    def connect(self):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(self.timeout)
        try:
            s.connect(self.unix_path)
        except OSError:
            s.close()
            raise
        self.sock = s


def agent_version(sock_path, timeout=5):
    """GET /version straight on an agent's unix socket: (status, body) or raises OSError."""
    c = UnixHTTPConnection(sock_path, timeout=timeout)
    try:
        c.request("GET", "/version")
        r = c.getresponse()
        return r.status, r.read()
    finally:
        c.close()


def process_alive(pid):
    try:
        with open("/proc/%d/stat" % pid, "rb") as f:
            st = f.read()
    except OSError:
        return False
    return st[st.rindex(b")") + 2:st.rindex(b")") + 3] != b"Z"


def processes_in_cgroups_of(ids):
    """{pid: cgroup line} of every process whose cgroup path has a /daytona/<id> component."""
    if not ids:
        return {}
    pat = re.compile(r"/daytona/(%s)(/|$)" % "|".join(re.escape(i) for i in ids))
    out = {}
    for d in os.listdir("/proc"):
        # Zombies hold nothing; a re-adopted init killed by daytonad is reaped by our pid 1.
        if not d.isdigit() or not process_alive(int(d)):
            continue
        try:
            with open("/proc/%s/cgroup" % d, encoding="utf-8", errors="replace") as f:
                for line in f:
                    if pat.search(line.strip()):
                        out[int(d)] = line.strip()
                        break
        except OSError:
            pass
    return out


def processes_in_sessions(sids):
    """Live processes whose session id is one of SIDS (the servers we started: each runs in a
    session of its own, so anything it forked and left behind shows up here)."""
    out = []
    if not sids:
        return out
    for d in os.listdir("/proc"):
        if not d.isdigit() or int(d) in sids:
            continue
        try:
            with open("/proc/%s/stat" % d, "rb") as f:
                st = f.read()
        except OSError:
            continue
        fields = st[st.rindex(b")") + 2:].split()
        if fields[0] != b"Z" and int(fields[3]) in sids:
            out.append(int(d))
    return out


def cgroup_dirs_of(ids):
    """Cgroup directories .../daytona/<id> under /sys/fs/cgroup/<controller>/... for IDS."""
    found = []
    if not ids:
        return found
    for ctrl in sorted(os.listdir("/sys/fs/cgroup")):
        top = os.path.join("/sys/fs/cgroup", ctrl)
        # "daytona" sits at most a few levels down (e.g. memory/process_api/<hash>/daytona).
        for root, dirs, _ in os.walk(top):
            depth = root[len(top):].count("/")
            if os.path.basename(root) == "daytona":
                for i in ids:
                    if os.path.isdir(os.path.join(root, i)):
                        found.append(os.path.join(root, i))
                dirs[:] = []
            elif depth >= 3:
                dirs[:] = []
    return found


def mounts_below(path):
    path = os.path.realpath(path)
    out = []
    try:
        with open("/proc/self/mountinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                mp = re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), line.split()[4])
                if mp == path or mp.startswith(path + "/"):
                    out.append(mp)
    except OSError:
        pass
    return out


class Server:
    """One `daytonad serve` process on DATA (a fresh port each time)."""

    def __init__(self, workdir, data, key, n):
        self.port = free_port()
        self.key = key
        self.logpath = os.path.join(workdir, "daytonad-%d.log" % n)
        self.log = open(self.logpath, "wb")
        env = dict(os.environ, DAYTONA_ADMIN_API_KEY=key)
        # No warm pool: its hidden sandboxes would look like orphans to the leak checks.
        self.argv = [DAYTONAD, "serve", "--listen", "127.0.0.1:%d" % self.port, "--data-dir", data,
                     "--warm-pool", "0", "--default-snapshot", "host"]
        # A session of its own: what it forks and leaves behind is recognisable by its sid.
        self.proc = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=self.log,
                                     stderr=subprocess.STDOUT, env=env, cwd=workdir,
                                     start_new_session=True)
        self.pid = self.proc.pid

    def running(self):
        return self.proc.poll() is None

    def wait_healthy(self):
        deadline = time.monotonic() + HEALTH_TIMEOUT
        last = "no answer"
        while time.monotonic() < deadline:
            if not self.running():
                return "daytonad exited with status %s before answering" % self.proc.returncode
            try:
                c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
                c.request("GET", "/api/health")
                r = c.getresponse()
                r.read()
                c.close()
                if r.status == 200:
                    return None
                last = "HTTP %d" % r.status
            except OSError as e:
                last = str(e)
            time.sleep(0.05)
        return "GET /api/health did not answer 200 within %d s (last: %s)" % (HEALTH_TIMEOUT, last)

    def request(self, method, path, body=None, timeout=REQUEST_TIMEOUT):
        """(status, parsed JSON or raw bytes). Raises OSError when the server does not answer."""
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        headers = {"Authorization": "Bearer " + self.key, "Accept": "application/json"}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        try:
            c.request(method, path, body=data, headers=headers)
            r = c.getresponse()
            raw = r.read()
        finally:
            c.close()
        try:
            return r.status, json.loads(raw) if raw else None
        except ValueError:
            return r.status, raw

    def kill9(self):
        """kill -9 of the server process alone (not its group: sandboxes must survive it)."""
        if self.running():
            os.kill(self.pid, signal.SIGKILL)
        self.proc.wait(30)
        self.log.close()

    def stop(self):
        """SIGTERM; SIGKILL after 30 s. Returns the exit status, None when it had to be killed."""
        if self.running():
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.kill(self.pid, signal.SIGKILL)
                self.proc.wait(30)
                self.log.close()
                return None
        self.log.close()
        return self.proc.returncode

    def logtext(self):
        try:
            with open(self.logpath, "rb") as f:
                text = f.read().decode(errors="replace")
        except OSError:
            return ""
        if len(text) > LOG_TAIL:
            text = "[... cut ...]\n" + text[-LOG_TAIL:]
        return text


class CrashTest(unittest.TestCase):
    maxDiff = None
    def setUp(self):
        self.workdir = tempfile.mkdtemp(prefix="dt-crash-test-")
        self.data = os.path.join(self.workdir, "data")
        self.key = "dtk_crash_" + os.urandom(20).hex()
        self.servers = []
        self.server = None
        self.ids = set()  # every sandbox id seen (API, data dir): the leak checks look for them
        self.history = {}  # id -> the states the API listed it in, in order (for messages)

    # ---- helpers ------------------------------------------------------------------------------

    def start_server(self):
        self.server = Server(self.workdir, self.data, self.key, len(self.servers))
        self.servers.append(self.server)
        problem = self.server.wait_healthy()
        if problem:
            self.fail("daytonad serve did not start: %s\n%s" % (problem, self.server.logtext()))
        return self.server

    def api(self, method, path, body=None, timeout=REQUEST_TIMEOUT):
        try:
            return self.server.request(method, "/api" + path, body, timeout)
        except OSError as e:
            self.fail("%s /api%s: no answer from daytonad (%s)" % (method, path, e))

    def toolbox(self, sid, method, path, body=None, timeout=REQUEST_TIMEOUT):
        try:
            return self.server.request(method, "/toolbox/%s%s" % (sid, path), body, timeout)
        except OSError as e:
            self.fail("%s /toolbox/%s%s: no answer from daytonad (%s)" % (method, sid, path, e))

    def create(self):
        st, sb = self.api("POST", "/sandbox", {"env": {}, "labels": {"t": "crash"}})
        self.assertEqual(st, 200, "create: HTTP %d %r" % (st, sb))
        self.ids.add(sb["id"])
        self.assertEqual(sb.get("state"), "started", "create answered %r" % sb)
        return sb["id"]

    def state(self, sid):
        st, sb = self.api("GET", "/sandbox/" + sid)
        self.assertEqual(st, 200, "GET sandbox %s: HTTP %d %r" % (sid, st, sb))
        return sb.get("state")

    def execute(self, sid, command, what):
        st, r = self.toolbox(sid, "POST", "/process/execute", {"command": command})
        self.assertEqual(st, 200, "%s: toolbox execute in %s: HTTP %d %r" % (what, sid, st, r))
        self.assertEqual(r.get("exitCode"), 0, "%s: %r" % (what, r))
        return r.get("result")

    def list_all(self):
        st, body = self.api("GET", "/sandbox")
        self.assertEqual(st, 200, "list: HTTP %d %r" % (st, body))
        items = body.get("items") if isinstance(body, dict) else body
        for it in items or []:
            self.ids.add(it["id"])
            self.history.setdefault(it["id"], []).append(it.get("state"))
        return items or []

    def note_disk_ids(self):
        for sub in ("sandboxes", "runtime"):
            try:
                for name in os.listdir(os.path.join(self.data, sub)):
                    if UUID_RE.match(name):
                        self.ids.add(name)
            except OSError:
                pass

    def seen(self, sid):
        return "(states listed after restarts: %s)" % (
            ", ".join(map(str, self.history[sid])) if sid in self.history else "never listed")

    def agent_sock(self, sid):
        return os.path.join(self.data, "sandboxes", sid, "agent.sock")

    def dump_logs(self):
        for s in self.servers:
            print("---- %s ----\n%s" % (s.logpath, s.logtext()), file=sys.stderr)
        for sid in sorted(self.ids):
            p = os.path.join(self.data, "sandboxes", sid, "agent.log")
            if os.path.exists(p):
                with open(p, "rb") as f:
                    print("---- %s ----\n%s" % (p, f.read()[-4000:].decode(errors="replace")),
                          file=sys.stderr)

    def run_checked(self, body):
        try:
            body()
        except BaseException:
            self.dump_logs()
            raise

    def delete_all(self):
        """Delete every sandbox the server lists and wait until each is gone. Returns problems."""
        problems = []
        try:
            items = self.server.request("GET", "/api/sandbox")[1]
        except OSError as e:
            return ["cannot list sandboxes: %s" % e]
        items = items.get("items") if isinstance(items, dict) else items
        ids = [it["id"] for it in items or [] if isinstance(it, dict) and it.get("id")]
        self.ids.update(ids)
        for sid in ids:
            try:
                st, r = self.server.request("DELETE", "/api/sandbox/" + sid)
                if st not in (200, 204, 404):
                    problems.append("DELETE %s: HTTP %d %r %s" % (sid, st, r, self.seen(sid)))
            except OSError as e:
                problems.append("DELETE %s: %s" % (sid, e))
        deadline = time.monotonic() + 60
        pending = list(ids)
        while pending and time.monotonic() < deadline:
            still = []
            for sid in pending:
                try:
                    st, r = self.server.request("GET", "/api/sandbox/" + sid, timeout=10)
                except OSError:
                    still.append(sid)
                    continue
                if st == 200 and isinstance(r, dict) and r.get("state") != "destroyed":
                    still.append(sid)
            pending = still
            if pending:
                time.sleep(0.2)
        if pending:
            problems.append("not destroyed after 60 s: %s" % " ".join(pending))
        return problems

    def leaks(self):
        """What is left of our sandboxes on the host (call with every server stopped)."""
        self.note_disk_ids()
        out = []
        sdir = os.path.join(self.data, "sandboxes")
        left = sorted(os.listdir(sdir)) if os.path.isdir(sdir) else []
        if left:
            out.append("%s is not empty: %s" % (sdir, " ".join(left)))
        for sid in sorted(self.ids):
            if os.path.exists(self.agent_sock(sid)):
                out.append("agent socket %s still exists %s" % (self.agent_sock(sid),
                                                                 self.seen(sid)))
            if os.path.exists(os.path.join(self.data, "runtime", sid)):
                out.append("runtime state %s/runtime/%s still exists %s"
                           % (self.data, sid, self.seen(sid)))
        procs = processes_in_cgroups_of(sorted(self.ids))
        if procs:
            out.append("sandbox processes still run: " +
                       "; ".join("pid %d (%s)" % kv for kv in sorted(procs.items())))
        strays = processes_in_sessions({s.pid for s in self.servers})
        if strays:
            out.append("processes forked by daytonad left behind: %s" % strays)
        cg = cgroup_dirs_of(sorted(self.ids))
        if cg:
            out.append("cgroups left: " + " ".join(cg))
        return out

    def tearDown(self):
        problems = []
        try:
            if self.server is None or not self.server.running():
                # The last one was killed (or failed): one more start to delete through the API.
                if self.servers:
                    self.server = Server(self.workdir, self.data, self.key, len(self.servers))
                    self.servers.append(self.server)
                    p = self.server.wait_healthy()
                    if p:
                        problems.append("cleanup server did not start: " + p)
            if self.server is not None and self.server.running():
                problems += ["cleanup: " + p for p in self.delete_all()]
        finally:
            for s in self.servers:
                if s.running():
                    s.stop()
            # Last resort, never expected: kill what still runs in our sandboxes' cgroups (ids
            # that are ours: found through our API or our data dir).
            self.note_disk_ids()
            procs = processes_in_cgroups_of(sorted(self.ids))
            for pid in procs:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            if procs:
                problems.append("had to SIGKILL sandbox processes: %s" % sorted(procs))
            for pid in processes_in_sessions({s.pid for s in self.servers}):
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            if os.environ.get("DT_CRASH_KEEP") == "1":
                print("kept %s" % self.workdir, file=sys.stderr)
            else:
                m = mounts_below(self.workdir)
                if m:
                    problems.append("not removing %s, mounted below it: %s" % (self.workdir, m))
                else:
                    shutil.rmtree(self.workdir, ignore_errors=True)
        if problems:
            print("tearDown: " + "\n  ".join(problems), file=sys.stderr)

    def final_leak_check(self):
        """Delete everything through the API, stop the server, and require nothing left."""
        problems = self.delete_all()
        self.assertEqual(problems, [], "deleting every sandbox through the API")
        st = self.server.stop()
        self.assertIn(st, (0, -signal.SIGTERM), "daytonad exit status on SIGTERM: %r" % st)
        deadline = time.monotonic() + 5  # cgroup removal may trail the reaping of zombies
        while self.leaks() and time.monotonic() < deadline:
            time.sleep(0.2)
        self.assertEqual(self.leaks(), [], "left behind after deleting every sandbox")

    # ---- the tests ----------------------------------------------------------------------------

    def test_restart_readopts(self):
        """Two sandboxes (one running an async session command, one stopped), kill -9, restart:
        both are back as they were, files and the session included."""
        self.run_checked(self._restart_readopts)

    def _restart_readopts(self):
        self.start_server()
        a = self.create()
        b = self.create()
        for sid in (a, b):
            self.execute(sid, "echo data > /home/daytona/f", "writing the file")
        st, r = self.api("POST", "/sandbox/%s/stop?force=false" % b)
        self.assertEqual(st, 200, "stop: HTTP %d %r" % (st, r))
        self.assertEqual(self.state(b), "stopped")
        st, r = self.toolbox(a, "POST", "/process/session", {"sessionId": "s"})
        self.assertIn(st, (200, 201), "create session: HTTP %d %r" % (st, r))
        st, r = self.toolbox(a, "POST", "/process/session/s/exec",
                             {"command": "for i in $(seq 1 30); do echo $i; sleep 0.1; done",
                              "runAsync": True})
        self.assertEqual(st, 200, "session exec: HTTP %d %r" % (st, r))
        cmd = r["cmdId"]
        time.sleep(0.3)  # a few lines out; the command is still running when we kill

        # kill -9: the sandboxes do not depend on daytonad.
        self.server.kill9()
        procs = processes_in_cgroups_of([a])
        self.assertTrue(procs, "sandbox %s has no process left after kill -9 of daytonad" % a)
        try:
            status, ver = agent_version(self.agent_sock(a))
        except OSError as e:
            self.fail("the agent of %s does not answer on %s after kill -9 of daytonad: %s"
                      % (a, self.agent_sock(a), e))
        self.assertEqual(status, 200, "agent /version: %r" % ver)
        c = UnixHTTPConnection(self.agent_sock(a), timeout=5)
        c.request("GET", "/process/session/s/command/" + cmd)
        r = c.getresponse()
        body = json.loads(r.read())
        c.close()
        self.assertNotIn("exitCode", body, "the session command ended before the kill: the test "
                                           "did not kill daytonad while it ran")
        self.assertFalse(processes_in_cgroups_of([b]), "stopped sandbox %s has processes" % b)

        # Restart on the same data dir.
        self.start_server()
        self.assertEqual(self.state(a), "started", "running sandbox after the restart")
        self.assertEqual(self.state(b), "stopped", "stopped sandbox after the restart")
        st, ver = self.toolbox(a, "GET", "/version", timeout=10)
        self.assertEqual(st, 200, "the re-adopted sandbox's agent through the toolbox proxy: "
                                  "HTTP %d %r" % (st, ver))
        self.assertEqual(self.execute(a, "cat /home/daytona/f", "file after restart"), "data\n")
        st, r = self.toolbox(a, "GET", "/process/session/s")
        self.assertEqual(st, 200, "the session after the restart: HTTP %d %r" % (st, r))
        deadline = time.monotonic() + 20
        while True:
            st, r = self.toolbox(a, "GET", "/process/session/s/command/" + cmd, timeout=10)
            self.assertEqual(st, 200, "the session command after the restart: HTTP %d %r"
                             % (st, r))
            if "exitCode" in r and r["exitCode"] is not None:
                break
            self.assertLess(time.monotonic(), deadline, "the session command did not finish")
            time.sleep(0.1)
        self.assertEqual(r["exitCode"], 0, r)
        st, logs = self.toolbox(a, "GET", "/process/session/s/command/%s/logs" % cmd)
        self.assertEqual(st, 200, "logs: HTTP %d %r" % (st, logs))
        text = logs.get("stdout", logs.get("output")) if isinstance(logs, dict) else \
            logs.decode(errors="replace")
        self.assertEqual(text.split(), [str(i) for i in range(1, 31)],
                         "the command's output across the restart: %r" % text)

        # The stopped one starts with its file.
        st, r = self.api("POST", "/sandbox/%s/start" % b)
        self.assertEqual(st, 200, "start after the restart: HTTP %d %r" % (st, r))
        self.assertEqual(self.state(b), "started")
        self.assertEqual(self.execute(b, "cat /home/daytona/f", "file of the stopped sandbox"),
                         "data\n")
        self.final_leak_check()

    def test_kill_during_create(self):
        """kill -9 right after a create request was sent (0-30 ms), restart: no sandbox stays in
        a transitional state, started means the agent answers, and deleting everything leaves
        nothing behind."""
        self.run_checked(self._kill_during_create)

    def _kill_during_create(self):
        self.start_server()
        keep = self.create()  # also builds the default rootfs: later creates are the fast path
        self.execute(keep, "echo data > /home/daytona/f", "writing the file")
        for delay in (0.0, 0.003, 0.008, 0.015, 0.03):
            c = http.client.HTTPConnection("127.0.0.1", self.server.port, timeout=10)
            body = json.dumps({"env": {}, "labels": {"t": "crash"}}).encode()
            c.request("POST", "/api/sandbox", body=body,
                      headers={"Authorization": "Bearer " + self.key,
                               "Content-Type": "application/json"})
            time.sleep(delay)
            self.server.kill9()
            c.close()
            self.note_disk_ids()
            self.start_server()
            items = self.list_all()
            self.note_disk_ids()
            seen = {it["id"]: it.get("state") for it in items}
            bad = {i: s for i, s in seen.items() if s in TRANSITIONAL}
            self.assertEqual(bad, {}, "after kill -9 %d ms into a create and a restart, "
                                      "sandboxes stuck in a transitional state" % (delay * 1000))
            self.assertEqual(seen.get(keep), "started", "the sandbox created before: %r" % seen)
            for sid, state in seen.items():
                self.assertIn(state, ("started", "error"), "sandbox %s" % sid)
                if state == "started":
                    st, ver = self.toolbox(sid, "GET", "/version", timeout=10)
                    self.assertEqual(st, 200, "sandbox %s is started after the restart (kill "
                                     "%d ms into a create) but its agent does not answer "
                                     "through the toolbox: HTTP %d %r"
                                     % (sid, delay * 1000, st, ver))
            # Every sandbox on disk is one the API knows (else it could never be deleted).
            sdir = os.path.join(self.data, "sandboxes")
            orphans = sorted(set(os.listdir(sdir)) - set(seen)) if os.path.isdir(sdir) else []
            self.assertEqual(orphans, [], "sandbox dirs the API does not list (kill %d ms into "
                                          "a create)" % (delay * 1000))
        self.assertEqual(self.execute(keep, "cat /home/daytona/f", "file after the restarts"),
                         "data\n")
        self.final_leak_check()


def main():
    if os.geteuid() != 0:
        print("skipped: needs root (daytonad serve runs sandboxes)", file=sys.stderr)
        return 77
    for b in (DAYTONAD, AGENT):
        if not os.access(b, os.X_OK):
            print("skipped: %s is missing (build it, or set DT_DAYTONAD)" % b, file=sys.stderr)
            return 77
    prog = unittest.main(exit=False, verbosity=2)
    return 0 if prog.result.wasSuccessful() else 1


if __name__ == "__main__":
    sys.exit(main())
