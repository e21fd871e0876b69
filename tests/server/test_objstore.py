# SPDX-License-Identifier: Apache-2.0
"""daytonad serve's S3 subset for image build contexts (src/server/objstore.c): push-access
credentials per organization, then objstore-client.mjs drives /s3 with the real
@aws-sdk/client-s3 + lib-storage bundled with @daytonaio/sdk (ListObjectsV2, PutObject,
multipart, Get/Head, SigV4 failures, other organizations' prefixes, hostile keys, the SDK's own
ObjectStorage.upload()). Then: the bytes on disk, no temporary files left, and credentials that
survive a restart (they are derived from DATA_DIR/objstore-secret, not stored)."""
import http.client
import json
import os
import shutil
import socket
import stat
import subprocess
import sys
import tarfile
import tempfile
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE = os.path.dirname(os.path.dirname(HERE))
DAYTONAD = os.path.abspath(os.environ.get("DT_DAYTONAD", os.path.join(SOURCE, "build", "bin",
                                                                       "daytonad")))
NODE = shutil.which("node")


def sdk_modules():
    if os.environ.get("DT_SDK_MODULES"):
        return os.path.abspath(os.environ["DT_SDK_MODULES"])
    build = os.path.dirname(os.path.dirname(DAYTONAD))
    for c in (os.path.join(build, "node", "sdk", "node_modules"),
              os.path.join(SOURCE, "build", "node", "sdk", "node_modules")):
        if os.path.isdir(os.path.join(c, "@aws-sdk", "client-s3")):
            return c
    return None


MODULES = sdk_modules()
if os.geteuid() != 0 or not os.access(DAYTONAD, os.X_OK):
    print("skipped: needs root and daytonad (DT_DAYTONAD)")
    sys.exit(77)
if not NODE or not MODULES:
    print("skipped: needs node and @daytonaio/sdk's node_modules (scripts/npm-deps-sdk)")
    sys.exit(77)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class ObjstoreTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="dt-objstore-")
        cls.data = os.path.join(cls.dir, "data")
        cls.objects = os.path.join(cls.data, "objects")
        cls.port = free_port()
        cls.key_a = "dtk_objstore_a_" + os.urandom(12).hex()
        cls.log = open(os.path.join(cls.dir, "log"), "wb")
        cls.proc = None
        try:
            cls.start()
            out = subprocess.run([DAYTONAD, "org", "create", "team-b", "--data-dir", cls.data],
                                 capture_output=True, text=True, timeout=30)
            assert out.returncode == 0, out.stderr
            cls.key_b = [l.split(": ", 1)[1] for l in out.stdout.splitlines()
                         if l.startswith("API key: ")][0]
        except BaseException:
            cls.tearDownClass()  # unittest skips it when setUpClass fails
            raise

    @classmethod
    def start(cls):
        cls.proc = subprocess.Popen(
            [DAYTONAD, "serve", "--listen", "127.0.0.1:%d" % cls.port, "--data-dir", cls.data,
             "--warm-pool", "0", "--default-snapshot", "host"],
            env=dict(os.environ, DAYTONA_ADMIN_API_KEY=cls.key_a), stdout=cls.log,
            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        deadline = time.time() + 30
        while True:
            try:
                if cls.call("GET", "/api/health", None)[0] == 200:
                    return
            except OSError:
                pass
            if time.time() > deadline or cls.proc.poll() is not None:
                cls.log.flush()
                with open(os.path.join(cls.dir, "log"), encoding="utf-8", errors="replace") as f:
                    raise RuntimeError("daytonad serve did not start:\n" + f.read()[-2000:])
            time.sleep(0.05)

    @classmethod
    def stop(cls):
        cls.proc.terminate()
        cls.proc.wait(30)

    @classmethod
    def tearDownClass(cls):
        if cls.proc and cls.proc.poll() is None:
            cls.stop()
        cls.log.close()
        shutil.rmtree(cls.dir, ignore_errors=True)

    @classmethod
    def call(cls, method, path, key):
        conn = http.client.HTTPConnection("127.0.0.1", cls.port, timeout=60)
        headers = {"Authorization": "Bearer " + key} if key else {}
        conn.request(method, path, headers=headers)
        r = conn.getresponse()
        data = r.read()
        conn.close()
        return r.status, data

    def push_access(self, key):
        st, data = self.call("GET", "/api/object-storage/push-access", key)
        self.assertEqual(st, 200, data)
        acc = json.loads(data)
        for f in ("accessKey", "secret", "sessionToken", "storageUrl", "organizationId", "bucket",
                  "region"):
            self.assertTrue(isinstance(acc.get(f), str) and acc[f], f)
        self.assertEqual(acc["storageUrl"], "http://127.0.0.1:%d/s3" % self.port)
        return acc

    def test_s3(self):
        self.assertEqual(self.call("GET", "/api/object-storage/push-access", None)[0], 401)
        a, b = self.push_access(self.key_a), self.push_access(self.key_b)
        self.assertNotEqual(a["organizationId"], b["organizationId"])
        self.assertNotEqual(a["secret"], b["secret"])
        out = subprocess.run(
            [NODE, os.path.join(HERE, "objstore-client.mjs"), MODULES, self.objects,
             json.dumps(a), json.dumps(b)],
            capture_output=True, text=True, timeout=240, env=dict(os.environ, NODE_NO_WARNINGS="1"))
        sys.stdout.write(out.stdout)
        self.assertEqual(out.returncode, 0, out.stdout + out.stderr)
        self.assertIn("ok sdk-object-storage-upload", out.stdout)

        # The context tar the SDK uploaded: where the builder looks, holding the context under
        # its absolute path without the leading '/'.
        line = [l for l in out.stdout.splitlines() if l.startswith("context ")][0]
        _, org, digest, archive = line.split(" ", 3)
        tar = os.path.join(self.objects, a["bucket"], org, digest, "context.tar")
        with tarfile.open(tar) as t:
            names = t.getnames()
        self.assertIn(archive + "/requirements.txt", names)
        self.assertIn(archive + "/sub/data.bin", names)

        # Nothing half-written left behind; the secret is private.
        self.assertEqual(os.listdir(os.path.join(self.objects, ".tmp")), [])
        self.assertEqual(os.listdir(os.path.join(self.objects, ".uploads")), [])
        st = os.stat(os.path.join(self.data, "objstore-secret"))
        self.assertEqual(stat.S_IMODE(st.st_mode), 0o600)
        self.assertEqual(st.st_size, 32)

        # Credentials are derived, not stored: the same after a restart; objects stay.
        self.stop()
        self.start()
        self.assertEqual(self.push_access(self.key_a), a)
        self.assertTrue(os.path.isfile(tar))


if __name__ == "__main__":
    unittest.main()
