# SPDX-License-Identifier: Apache-2.0
"""Organization isolation in daytonad serve: a key of one organization can neither see nor touch
another organization's sandboxes, through the REST API, the toolbox proxy or Socket.IO events.
The second organization comes from `daytonad org create` (the API has no org management)."""
import http.client
import json
import os
import shutil
import sys
import tempfile
import unittest

DAYTONAD = os.environ.get("DT_DAYTONAD", "build/bin/daytonad")
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import daytonad_serve as ds  # noqa: E402

if os.geteuid() != 0 or not os.access(DAYTONAD, os.X_OK):
    print("skipped: needs root and daytonad (DT_DAYTONAD)")
    sys.exit(77)


class OrgsTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="dt-orgs-")
        cls.data = os.path.join(cls.dir, "data")
        cls.port = ds.free_port()
        cls.key_a = "dtk_orgs_a_" + os.urandom(12).hex()
        cls.log = open(os.path.join(cls.dir, "log"), "wb")
        cls.proc = ds.start(DAYTONAD, cls.data, cls.port, cls.key_a, cls.log)
        cls.key_b = ds.create_org(DAYTONAD, cls.data, "team-b")
        cls.created = []

    @classmethod
    def tearDownClass(cls):
        for sid in cls.created:
            try:
                cls.call("DELETE", "/api/sandbox/" + sid, cls.key_a)
            except OSError:
                pass
        ds.stop(cls.proc)
        cls.log.close()
        shutil.rmtree(cls.dir, ignore_errors=True)

    @classmethod
    def call(cls, method, path, key, body=None):
        conn = http.client.HTTPConnection("127.0.0.1", cls.port, timeout=60)
        headers = {"Content-Type": "application/json"}
        if key:
            headers["Authorization"] = "Bearer " + key
        conn.request(method, path, body=json.dumps(body) if body is not None else None,
                     headers=headers)
        r = conn.getresponse()
        data = r.read()
        conn.close()
        return r.status, data

    def test_isolation(self):
        st, data = self.call("POST", "/api/sandbox", self.key_a,
                             {"name": "shared-name", "env": {}, "labels": {"team": "a"}})
        self.assertEqual(st, 200, data)
        sa = json.loads(data)
        self.created.append(sa["id"])
        # B sees nothing of A: by id, by name, in lists, through the toolbox.
        for path in ("/api/sandbox/" + sa["id"], "/api/sandbox/shared-name"):
            self.assertEqual(self.call("GET", path, self.key_b)[0], 404)
        st, data = self.call("GET", "/api/sandbox", self.key_b)
        self.assertEqual(json.loads(data)["items"], [])
        st, data = self.call("POST", "/toolbox/%s/process/execute" % sa["id"], self.key_b,
                             {"command": "echo leak"})
        self.assertEqual(st, 404, data)
        for method, path in (("POST", "/api/sandbox/%s/stop?force=true"), ("DELETE", "/api/sandbox/%s"),
                             ("GET", "/api/sandbox/%s/signing-key")):
            self.assertEqual(self.call(method, path % sa["id"], self.key_b)[0], 404)
        # Names are per organization: B may use the same one.
        st, data = self.call("POST", "/api/sandbox", self.key_b,
                             {"name": "shared-name", "env": {}, "labels": {}})
        self.assertEqual(st, 200, data)
        sb = json.loads(data)
        self.created.append(sb["id"])
        self.assertNotEqual(sb["organizationId"], sa["organizationId"])
        st, data = self.call("DELETE", "/api/sandbox/" + sb["id"], self.key_b)
        self.assertEqual(st, 200, data)
        # A's sandbox still runs and answers A.
        st, data = self.call("POST", "/toolbox/%s/process/execute" % sa["id"], self.key_a,
                             {"command": "echo ok"})
        self.assertEqual(json.loads(data)["result"], "ok\n")
        self.assertEqual(self.call("GET", "/api/sandbox", "dtk_not_a_key_0123456789")[0], 401)


if __name__ == "__main__":
    unittest.main()
