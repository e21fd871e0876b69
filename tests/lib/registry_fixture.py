# SPDX-License-Identifier: Apache-2.0
"""A throw-away CNCF registry on loopback and a tiny OCI image builder, for integration tests.

Usage (import with tests/lib on sys.path; run under /usr/bin/python3):

    from registry_fixture import Registry, busybox_layer, require_tools

    require_tools()                  # exits 77 (skip) when docker-registry or skopeo is missing
    with Registry() as reg:          # `docker-registry serve` on a free 127.0.0.1 port
        img = reg.push_image("test/app", "v1", [
            busybox_layer(),
            {"/etc/hello": b"hi\\n",
             "/opt/run.sh": ("file", b"#!/bin/sh\\necho run\\n", {"mode": 0o755}),
             "/data": ("dir", {"mode": 0o700, "uid": 1000, "gid": 1000}),
             "/lib/rel": ("symlink", "../etc/hello"),
             "/lib/abs": ("symlink", "/etc/hello"),
             "/lib/hard": ("hardlink", "/etc/hello")},
            {"/etc/hello": ("whiteout",),          # delete a file of a lower layer
             "/data": ("opaque",)},                # hide every lower child of /data
        ], config={"Entrypoint": ["/bin/sh"], "Env": ["A=1"]})
        img.digest     # "sha256:..." manifest digest as stored by the registry
        img.diff_ids   # ["sha256:...", ...] one per layer, bottom first (sha256 of each plain tar)
        digest, diff_ids = img          # it is also a 2-tuple
        reg.host                        # "127.0.0.1:PORT" (plain HTTP)
        reg.ref("test/app", "v1")       # "127.0.0.1:PORT/test/app:v1"
        reg.save_archive("test/app", "v1", "/tmp/x.tar")                    # docker save format
        reg.save_archive("test/app", "v1", "/tmp/x.oci.tar", fmt="oci-archive")

Layer dicts map an absolute (or relative) path to:
    bytes                         regular file, mode 0644, owner 0:0
    ("file", bytes[, opts])       regular file with options
    ("dir",[ opts])               directory (0755 unless opts say otherwise)
    ("symlink", target[, opts])   symbolic link (target written verbatim: relative or absolute)
    ("hardlink", target)          hard link to another path OF THE SAME LAYER (leading / ignored)
    ("whiteout",)                 OCI whiteout: entry `DIR/.wh.NAME`
    ("opaque",)                   the directory itself plus `DIR/.wh..wh..opq` (opaque dir)
opts is a dict with any of "mode", "uid", "gid", "mtime". Missing parent directories are added
as 0755 root directories. Entries are written sorted (hard links last) into a gzip-compressed tar
with python's tarfile (deterministic: mtime 0, gzip mtime 0), so the same layer dict always gives
the same digest and diff_id.

`config` (optional) is merged into the image config's "config" object (Env, Entrypoint, Cmd,
User, WorkingDir, Labels, ExposedPorts ...); the default is {"Cmd": ["/bin/sh"], "Env":
["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]}.

busybox_layer() is a layer with Debian's static /bin/busybox, symlinks for the usual applets in
/bin (and /usr/bin/env), /etc/passwd with root and daytona (uid 1000, home /home/daytona),
/etc/group, /home/daytona owned by 1000:1000 and /tmp 1777.

Every process started here gets PR_SET_PDEATHSIG(SIGKILL) so nothing outlives the test; the
registry's storage and all skopeo state live in one temp dir removed by close()/__exit__.
Pushing and saving run skopeo with HOME and XDG_RUNTIME_DIR pointed at that temp dir.
"""
import collections
import ctypes
import gzip
import hashlib
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
import time

__all__ = ["Registry", "PushedImage", "busybox_layer", "require_tools", "BUSYBOX_APPLETS"]

BUSYBOX = "/bin/busybox"  # Debian busybox-static
BUSYBOX_APPLETS = (
    "sh", "ash", "ls", "cat", "echo", "test", "[", "id", "stat", "readlink", "mkdir", "rm",
    "rmdir", "sleep", "wc", "env", "pwd", "true", "false", "touch", "ln", "cp", "mv", "chmod",
    "chown", "grep", "head", "tail", "printf", "find", "sort", "uname", "whoami", "hostname",
    "tr", "cut", "du", "df", "ps", "kill", "seq", "sed", "awk", "tee", "basename", "dirname",
    "realpath", "xargs", "md5sum", "sha256sum", "date", "uniq", "diff", "tar", "gzip", "which",
    "mktemp", "nproc", "yes", "expr", "timeout", "wget", "vi", "more", "less", "clear", "su",
)

PushedImage = collections.namedtuple("PushedImage", ["digest", "diff_ids"])

_libc = ctypes.CDLL(None, use_errno=True)


def _die_with_parent():
    _libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG: never outlive the test


def require_tools():
    """Exit 77 (ctest skip) when a tool the fixture needs is missing."""
    for tool in ("docker-registry", "skopeo"):
        if not shutil.which(tool):
            print("SKIP: %s is not installed (apt-get install docker-registry skopeo)" % tool,
                  file=sys.stderr)
            sys.exit(77)
    if not os.path.exists(BUSYBOX):
        print("SKIP: %s missing (apt-get install busybox-static)" % BUSYBOX, file=sys.stderr)
        sys.exit(77)


def _free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def _sha(b):
    return "sha256:" + hashlib.sha256(b).hexdigest()


def _norm(path):
    p = os.path.normpath("/" + path).lstrip("/")
    if not p or p == ".":
        raise ValueError("bad layer path %r" % path)
    return p


def _split(spec):
    """spec -> (kind, arg, opts)."""
    if isinstance(spec, (bytes, bytearray)):
        return "file", bytes(spec), {}
    if not isinstance(spec, tuple) or not spec:
        raise ValueError("bad layer entry %r" % (spec,))
    kind = spec[0]
    rest = list(spec[1:])
    opts = rest.pop() if rest and isinstance(rest[-1], dict) else {}
    arg = rest[0] if rest else None
    if kind not in ("file", "dir", "symlink", "hardlink", "whiteout", "opaque"):
        raise ValueError("bad layer entry kind %r" % kind)
    if kind in ("file", "symlink", "hardlink") and arg is None:
        raise ValueError("%s needs an argument" % kind)
    return kind, arg, opts


def make_layer_tar(layer):
    """A layer dict -> the uncompressed tar bytes (see the module docstring)."""
    entries = {}  # tar name -> (kind, arg, opts)
    for path, spec in layer.items():
        name = _norm(path)
        kind, arg, opts = _split(spec)
        if kind == "whiteout":
            d, b = os.path.split(name)
            entries[os.path.join(d, ".wh." + b)] = ("file", b"", {})
        elif kind == "opaque":
            entries.setdefault(name, ("dir", None, opts))
            entries[name + "/.wh..wh..opq"] = ("file", b"", {})
        else:
            entries[name] = (kind, arg, opts)
    for name in list(entries):
        d = os.path.dirname(name)
        while d:
            entries.setdefault(d, ("dir", None, {}))
            d = os.path.dirname(d)

    raw = io.BytesIO()
    order = sorted(entries, key=lambda n: (entries[n][0] == "hardlink", n))
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as t:
        for name in order:
            kind, arg, opts = entries[name]
            ti = tarfile.TarInfo(name)
            ti.mtime = opts.get("mtime", 0)
            ti.uid = opts.get("uid", 0)
            ti.gid = opts.get("gid", 0)
            ti.uname = ti.gname = ""
            data = None
            if kind == "file":
                ti.type, ti.mode, ti.size = tarfile.REGTYPE, opts.get("mode", 0o644), len(arg)
                data = io.BytesIO(arg)
            elif kind == "dir":
                ti.type, ti.mode = tarfile.DIRTYPE, opts.get("mode", 0o755)
            elif kind == "symlink":
                ti.type, ti.mode, ti.linkname = tarfile.SYMTYPE, opts.get("mode", 0o777), arg
            elif kind == "hardlink":
                target = _norm(arg)
                if target not in entries or entries[target][0] != "file":
                    raise ValueError("hardlink %s -> %s: target is not a file of this layer"
                                     % (name, arg))
                tk, ta, to = entries[target]
                ti.type, ti.linkname = tarfile.LNKTYPE, target
                ti.mode, ti.uid, ti.gid = to.get("mode", 0o644), to.get("uid", 0), to.get("gid", 0)
            t.addfile(ti, data)
    return raw.getvalue()


def busybox_layer():
    """A layer dict with a static busybox, its applets, passwd/group, /home/daytona and /tmp."""
    with open(BUSYBOX, "rb") as f:
        bb = f.read()
    layer = {
        "/bin": ("dir",),
        "/bin/busybox": ("file", bb, {"mode": 0o755}),
        "/usr/bin/env": ("symlink", "/bin/busybox"),
        "/etc/passwd": (b"root:x:0:0:root:/root:/bin/sh\n"
                        b"daytona:x:1000:1000:daytona:/home/daytona:/bin/sh\n"
                        b"nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"),
        "/etc/group": b"root:x:0:\ndaytona:x:1000:\nnogroup:x:65534:\n",
        "/root": ("dir", {"mode": 0o700}),
        "/home": ("dir",),
        "/home/daytona": ("dir", {"mode": 0o755, "uid": 1000, "gid": 1000}),
        "/tmp": ("dir", {"mode": 0o1777}),
        "/proc": ("dir",), "/sys": ("dir",), "/dev": ("dir",), "/etc": ("dir",),
        "/var/tmp": ("dir", {"mode": 0o1777}),
    }
    for a in BUSYBOX_APPLETS:
        layer["/bin/" + a] = ("symlink", "busybox")
    return layer


class Registry:
    """`docker-registry serve` on 127.0.0.1:free port, storage in a temp dir. Context manager."""

    def __init__(self, workdir=None):
        self.work = tempfile.mkdtemp(prefix="dt-registry-", dir=workdir)
        self.port = _free_port()
        self.host = "127.0.0.1:%d" % self.port
        self.proc = None
        self._env = dict(os.environ, HOME=self.work, XDG_RUNTIME_DIR=self.work)
        self._n = 0

    # -- lifecycle --------------------------------------------------------------------------
    def start(self):
        cfg = {"version": 0.1, "log": {"level": "error", "accesslog": {"disabled": True}},
               "storage": {"filesystem": {"rootdirectory": self.work + "/storage"},
                           "delete": {"enabled": True}},
               "http": {"addr": self.host, "secret": "not-secret"}}
        path = self.work + "/config.yml"
        with open(path, "w") as f:
            json.dump(cfg, f)  # JSON is YAML
        self._log = open(self.work + "/registry.log", "w")
        self.proc = subprocess.Popen(["docker-registry", "serve", path], stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=self._log,
                                     preexec_fn=_die_with_parent)
        for _ in range(400):
            if self.proc.poll() is not None:
                raise RuntimeError("docker-registry exited with %d: %s"
                                   % (self.proc.returncode, self.log()[-2000:]))
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("docker-registry did not start: " + self.log()[-2000:])

    def log(self):
        try:
            with open(self.work + "/registry.log") as f:
                return f.read()
        except OSError:
            return ""

    def close(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.proc = None
        if getattr(self, "_log", None):
            self._log.close()
            self._log = None
        shutil.rmtree(self.work, ignore_errors=True)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.close()
        return False

    # -- images -----------------------------------------------------------------------------
    def ref(self, repo, tag):
        return "%s/%s:%s" % (self.host, repo, tag)

    def _skopeo(self, *args):
        r = subprocess.run(["skopeo", "--insecure-policy", *args], stdin=subprocess.DEVNULL,
                           capture_output=True, env=self._env, preexec_fn=_die_with_parent)
        if r.returncode != 0:
            raise RuntimeError("skopeo %s failed: %s" % (" ".join(args),
                                                          r.stderr.decode(errors="replace")))
        return r

    def build_layout(self, layout, tag, layers, config=None):
        """Write an OCI image layout at `layout` (tag `tag`); returns (manifest digest, diff_ids)."""
        os.makedirs(layout + "/blobs/sha256", exist_ok=True)

        def put(b):
            with open(layout + "/blobs/sha256/" + _sha(b)[7:], "wb") as f:
                f.write(b)
            return _sha(b)

        descs, diff_ids = [], []
        for layer in layers:
            plain = make_layer_tar(layer)
            gz = gzip.compress(plain, compresslevel=6, mtime=0)
            diff_ids.append(_sha(plain))
            descs.append({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                          "digest": put(gz), "size": len(gz)})
        c = {"Cmd": ["/bin/sh"],
             "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]}
        c.update(config or {})
        cfg = json.dumps({"architecture": "amd64", "os": "linux", "config": c,
                          "created": "2026-01-01T00:00:00Z",
                          "rootfs": {"type": "layers", "diff_ids": diff_ids},
                          "history": [{"created_by": "registry_fixture layer %d" % i}
                                      for i in range(len(layers))]},
                         sort_keys=True).encode()
        man = json.dumps({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                       "digest": put(cfg), "size": len(cfg)},
            "layers": descs,
        }, sort_keys=True).encode()
        md = put(man)
        with open(layout + "/index.json", "w") as f:
            json.dump({"schemaVersion": 2, "manifests": [{
                "mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": md,
                "size": len(man), "annotations": {"org.opencontainers.image.ref.name": tag}}]}, f)
        with open(layout + "/oci-layout", "w") as f:
            json.dump({"imageLayoutVersion": "1.0.0"}, f)
        return md, diff_ids

    def push_image(self, repo, tag, layers, config=None):
        """Build the image from layer dicts and push it as HOST/repo:tag -> PushedImage."""
        self._n += 1
        layout = "%s/layout-%d" % (self.work, self._n)
        try:
            _, diff_ids = self.build_layout(layout, tag, layers, config)
            dfile = layout + ".digest"
            self._skopeo("copy", "--quiet", "--dest-tls-verify=false", "--digestfile", dfile,
                         "oci:%s:%s" % (layout, tag), "docker://%s/%s:%s" % (self.host, repo, tag))
            with open(dfile) as f:
                digest = f.read().strip()
        finally:
            shutil.rmtree(layout, ignore_errors=True)
        return PushedImage(digest, diff_ids)

    def save_archive(self, repo, tag, path, fmt="docker-archive"):
        """Copy HOST/repo:tag into a `docker save` (docker-archive) or oci-archive tarball."""
        if fmt == "docker-archive":
            dest = "docker-archive:%s:%s:%s" % (path, repo, tag)
        elif fmt == "oci-archive":
            dest = "oci-archive:%s:%s" % (path, tag)
        else:
            raise ValueError("fmt must be docker-archive or oci-archive")
        if os.path.exists(path):
            os.unlink(path)
        self._skopeo("copy", "--quiet", "--src-tls-verify=false",
                     "docker://%s/%s:%s" % (self.host, repo, tag), dest)
        return path
