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
import stat
import subprocess
import sys
import tarfile
import tempfile
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import daytonad_serve as ds  # noqa: E402

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


class ObjstoreTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="dt-objstore-")
        cls.data = os.path.join(cls.dir, "data")
        cls.objects = os.path.join(cls.data, "objects")
        cls.port = ds.free_port()
        cls.key_a = "dtk_objstore_a_" + os.urandom(12).hex()
        cls.log = open(os.path.join(cls.dir, "log"), "wb")
        cls.proc = None
        try:
            cls.start()
            cls.key_b = ds.create_org(DAYTONAD, cls.data, "team-b")
        except BaseException:
            cls.tearDownClass()  # unittest skips it when setUpClass fails
            raise

    @classmethod
    def start(cls):
        cls.proc = ds.start(DAYTONAD, cls.data, cls.port, cls.key_a, cls.log)

    @classmethod
    def stop(cls):
        ds.stop(cls.proc)

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
