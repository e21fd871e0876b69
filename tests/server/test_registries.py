# SPDX-License-Identifier: Apache-2.0
"""Docker registries through daytonad serve's /api/docker-registry: CRUD in the SDK's
DockerRegistry shape, the password never returned and never stored in clear (the SQLite file and
its WAL are grepped), another organization's key sees nothing, and bad input gets clear 400s.
The second organization comes from `daytonad org create`."""
import http.client
import json
import os
import shutil
import stat
import sys
import tempfile
import unittest

DAYTONAD = os.environ.get("DT_DAYTONAD", "build/bin/daytonad")
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import daytonad_serve as ds  # noqa: E402

if os.geteuid() != 0 or not os.access(DAYTONAD, os.X_OK):
    print("skipped: needs root and daytonad (DT_DAYTONAD)")
    sys.exit(77)

DTO_KEYS = {"id", "name", "url", "username", "project", "registryType", "createdAt", "updatedAt"}


class RegistriesTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="dt-registries-")
        cls.data = os.path.join(cls.dir, "data")
        cls.port = ds.free_port()
        cls.key_a = "dtk_reg_a_" + os.urandom(12).hex()
        cls.log = open(os.path.join(cls.dir, "log"), "wb")
        cls.proc = None
        try:
            cls.proc = ds.start(DAYTONAD, cls.data, cls.port, cls.key_a, cls.log)
            cls.key_b = ds.create_org(DAYTONAD, cls.data, "team-b")
        except BaseException:
            cls.tearDownClass()
            raise

    @classmethod
    def tearDownClass(cls):
        ds.stop(cls.proc)
        cls.log.close()
        shutil.rmtree(cls.dir, ignore_errors=True)

    @classmethod
    def call(cls, method, path, key, body=None, raw=None):
        conn = http.client.HTTPConnection("127.0.0.1", cls.port, timeout=30)
        headers = {"Content-Type": "application/json"}
        if key:
            headers["Authorization"] = "Bearer " + key
        data = raw if raw is not None else (json.dumps(body) if body is not None else None)
        conn.request(method, path, body=data, headers=headers)
        r = conn.getresponse()
        text = r.read().decode()
        conn.close()
        try:
            return r.status, json.loads(text) if text else None
        except ValueError:
            return r.status, text

    def create(self, key, **body):
        return self.call("POST", "/api/docker-registry", key, body)

    def check_dto(self, reg):
        self.assertEqual(set(reg.keys()), DTO_KEYS, reg)
        self.assertNotIn("password", json.dumps(reg))

    def test_crud(self):
        pw = "pw-crud-" + os.urandom(8).hex()
        st, reg = self.create(self.key_a, name="crud", url="https://Registry.Example.com:5000/",
                              username="alice", password=pw, project="team")
        self.assertEqual(st, 200, reg)
        self.check_dto(reg)
        self.assertEqual(reg["url"], "registry.example.com:5000")
        self.assertEqual(reg["registryType"], "organization")
        self.assertEqual(reg["project"], "team")
        self.assertNotIn(pw, json.dumps(reg))
        rid = reg["id"]

        st, got = self.call("GET", "/api/docker-registry/" + rid, self.key_a)
        self.assertEqual(st, 200, got)
        self.assertEqual(got, reg)
        st, lst = self.call("GET", "/api/docker-registry", self.key_a)
        self.assertEqual(st, 200)
        self.assertIn(rid, [r["id"] for r in lst])
        for r in lst:
            self.check_dto(r)

        # Same name again: 409; PATCH without password keeps it, with one changes it.
        st, err = self.create(self.key_a, name="crud", url="ghcr.io", username="u", password="p")
        self.assertEqual(st, 409, err)
        st, up = self.call("PATCH", "/api/docker-registry/" + rid, self.key_a,
                           {"name": "crud2", "url": "http://127.0.0.1:5001", "username": "bob"})
        self.assertEqual(st, 200, up)
        self.check_dto(up)
        self.assertEqual((up["name"], up["url"], up["username"], up["project"]),
                         ("crud2", "127.0.0.1:5001", "bob", "team"))
        st, up = self.call("PATCH", "/api/docker-registry/" + rid, self.key_a,
                           {"name": "crud2", "url": "127.0.0.1:5001", "username": "bob",
                            "password": "new-" + pw})
        self.assertEqual(st, 200, up)
        self.assertNotIn(pw, json.dumps(up))

        st, d = self.call("POST", "/api/docker-registry/%s/set-default" % rid, self.key_a)
        self.assertEqual(st, 200, d)
        self.check_dto(d)

        st, _ = self.call("DELETE", "/api/docker-registry/" + rid, self.key_a)
        self.assertEqual(st, 200)
        for method in ("GET", "DELETE", "PATCH"):
            st, err = self.call(method, "/api/docker-registry/" + rid, self.key_a,
                                {"name": "x"} if method == "PATCH" else None)
            self.assertEqual(st, 404, (method, err))
        st, _ = self.call("POST", "/api/docker-registry/%s/set-default" % rid, self.key_a)
        self.assertEqual(st, 404)

    def test_other_org(self):
        st, reg = self.create(self.key_a, name="private", url="docker.io", username="a",
                              password="pw-private")
        self.assertEqual(st, 200, reg)
        rid = reg["id"]
        st, lst = self.call("GET", "/api/docker-registry", self.key_b)
        self.assertEqual(st, 200)
        self.assertEqual([r for r in lst if r["id"] == rid or r["name"] == "private"], [])
        for method, path in (("GET", rid), ("GET", "private"), ("DELETE", rid),
                             ("PATCH", rid), ("POST", rid + "/set-default")):
            st, err = self.call(method, "/api/docker-registry/" + path, self.key_b,
                                {"username": "evil"} if method == "PATCH" else None)
            self.assertEqual(st, 404, (method, path, err))
        # The same name is free in the other organization.
        st, reg_b = self.create(self.key_b, name="private", url="docker.io", username="b",
                                password="pw-b")
        self.assertEqual(st, 200, reg_b)
        st, got = self.call("GET", "/api/docker-registry/" + rid, self.key_a)
        self.assertEqual((st, got["username"]), (200, "a"))
        st, _ = self.call("GET", "/api/docker-registry", None)
        self.assertEqual(st, 401)

    def test_bad_input(self):
        ok = {"name": "bad", "url": "ghcr.io", "username": "u", "password": "p"}
        cases = [
            ({}, "required"),
            (dict(ok, url="https://ghcr.io/v2/library"), "path"),
            (dict(ok, url="ftp://ghcr.io"), "url"),
            (dict(ok, url="ghcr.io:99999"), "port"),
            (dict(ok, url=""), "url"),
            (dict(ok, name=""), "name"),
            (dict(ok, name="a/b"), "name"),
            (dict(ok, username=""), "username"),
            (dict(ok, password=""), "password"),
            (dict(ok, password="x" * 1025), "password"),
            (dict(ok, username="x" * 1025), "username"),
            (dict(ok, password="line1\nline2"), "control"),
            (dict(ok, username=7), "string"),
            (dict(ok, project=["x"]), "string"),
        ]
        for body, word in cases:
            st, err = self.create(self.key_a, **body)
            self.assertEqual(st, 400, (body if len(json.dumps(body)) < 200 else word, err))
            self.assertIn(word, json.dumps(err).lower(), err)
        st, err = self.call("POST", "/api/docker-registry", self.key_a, raw="[1]")
        self.assertEqual(st, 400, err)
        st, err = self.call("POST", "/api/docker-registry", self.key_a, raw="{not json")
        self.assertEqual(st, 400, err)
        # Exactly 1 KiB is fine.
        st, reg = self.create(self.key_a, **dict(ok, password="y" * 1024, username="z" * 1024))
        self.assertEqual(st, 200, reg)
        st, err = self.call("PATCH", "/api/docker-registry/" + reg["id"], self.key_a,
                            {"url": "not a host"})
        self.assertEqual(st, 400, err)
        self.call("DELETE", "/api/docker-registry/" + reg["id"], self.key_a)

    def test_zz_not_in_clear(self):
        secret = "pw-clear-" + os.urandom(12).hex()
        st, reg = self.create(self.key_a, name="clear", url="quay.io", username="c",
                              password=secret)
        self.assertEqual(st, 200, reg)
        blob = b""
        for f in ("daytona.db", "daytona.db-wal"):
            p = os.path.join(self.data, f)
            if os.path.exists(p):
                with open(p, "rb") as fh:
                    blob += fh.read()
        self.assertIn(b"quay.io", blob)  # the row is there ...
        self.assertNotIn(secret.encode(), blob)  # ... but not the password
        self.assertIn(b"v1:", blob)
        key = os.path.join(self.data, "registry-key")
        st_ = os.stat(key)
        self.assertEqual(stat.S_IMODE(st_.st_mode), 0o600)
        self.assertEqual(st_.st_size, 32)


if __name__ == "__main__":
    unittest.main(verbosity=2)
