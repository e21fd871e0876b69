/* SPDX-License-Identifier: Apache-2.0 */
/* The store's schema as an ordered list of migrations. Written in the SQL that SQLite and
 * PostgreSQL share: TEXT/INTEGER/BIGINT, booleans as INTEGER 0/1, timestamps as BIGINT
 * milliseconds since the epoch (UTC), no AUTOINCREMENT, no SQLite date functions. Never edit a
 * released migration: append a new one. */
#include "dt/store.h"

const char *const dt__store_migrations[] = {
    /* 1: organizations, API keys, sandboxes (+ labels for indexed filtering), snapshots,
     * volumes. */
    "CREATE TABLE organizations ("
    "  id TEXT PRIMARY KEY,"
    "  name TEXT NOT NULL,"
    "  created_at BIGINT NOT NULL);"

    "CREATE TABLE api_keys ("
    "  id TEXT PRIMARY KEY,"
    "  organization_id TEXT NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,"
    "  name TEXT NOT NULL,"
    "  key_hash TEXT NOT NULL UNIQUE,"
    "  key_prefix TEXT NOT NULL,"
    "  created_at BIGINT NOT NULL,"
    "  last_used_at BIGINT NOT NULL DEFAULT 0,"
    "  UNIQUE (organization_id, name));"

    "CREATE TABLE sandboxes ("
    "  id TEXT PRIMARY KEY,"
    "  organization_id TEXT NOT NULL REFERENCES organizations (id),"
    "  name TEXT NOT NULL,"
    "  snapshot TEXT,"
    "  os_user TEXT,"
    "  env TEXT NOT NULL,"
    "  labels TEXT NOT NULL,"
    "  public INTEGER NOT NULL,"
    "  network_block_all INTEGER NOT NULL,"
    "  network_allow_list TEXT,"
    "  target TEXT,"
    "  cpu BIGINT NOT NULL,"
    "  gpu BIGINT NOT NULL,"
    "  memory_gib BIGINT NOT NULL,"
    "  disk_gib BIGINT NOT NULL,"
    "  state TEXT NOT NULL,"
    "  desired_state TEXT NOT NULL,"
    "  error_reason TEXT,"
    "  backup_state TEXT NOT NULL,"
    "  auto_stop_interval BIGINT NOT NULL,"
    "  auto_archive_interval BIGINT NOT NULL,"
    "  auto_delete_interval BIGINT NOT NULL,"
    "  auto_destroy_at BIGINT NOT NULL,"
    "  ephemeral INTEGER NOT NULL,"
    "  volumes TEXT NOT NULL,"
    "  build_info TEXT,"
    "  runner_slot BIGINT NOT NULL,"
    "  runtime_plan TEXT,"
    "  created_at BIGINT NOT NULL,"
    "  updated_at BIGINT NOT NULL,"
    "  last_activity_at BIGINT NOT NULL,"
    "  version BIGINT NOT NULL,"
    "  UNIQUE (organization_id, name));"
    /* GET /sandbox: one org, newest first, keyset pagination on (created_at, id). */
    "CREATE INDEX sandboxes_org_created ON sandboxes (organization_id, created_at, id);"
    /* The engine's auto-stop scan only looks at started sandboxes. */
    "CREATE INDEX sandboxes_state_activity ON sandboxes (state, last_activity_at);"

    /* Labels again, one row per pair, so "all these pairs match" is an indexed query in both
     * databases (SQLite's json_each and PostgreSQL's jsonb operators differ). */
    "CREATE TABLE sandbox_labels ("
    "  sandbox_id TEXT NOT NULL REFERENCES sandboxes (id) ON DELETE CASCADE,"
    "  key TEXT NOT NULL,"
    "  value TEXT NOT NULL,"
    "  PRIMARY KEY (sandbox_id, key));"
    "CREATE INDEX sandbox_labels_kv ON sandbox_labels (key, value);"

    "CREATE TABLE snapshots ("
    "  id TEXT PRIMARY KEY,"
    "  organization_id TEXT NOT NULL REFERENCES organizations (id),"
    "  name TEXT NOT NULL,"
    "  image_name TEXT,"
    "  state TEXT NOT NULL,"
    "  size_bytes BIGINT NOT NULL,"
    "  entrypoint TEXT,"
    "  cpu BIGINT NOT NULL,"
    "  gpu BIGINT NOT NULL,"
    "  memory_gib BIGINT NOT NULL,"
    "  disk_gib BIGINT NOT NULL,"
    "  error_reason TEXT,"
    "  build_info TEXT,"
    "  created_at BIGINT NOT NULL,"
    "  updated_at BIGINT NOT NULL,"
    "  last_used_at BIGINT NOT NULL,"
    "  UNIQUE (organization_id, name));"
    "CREATE INDEX snapshots_org_created ON snapshots (organization_id, created_at, id);"

    "CREATE TABLE volumes ("
    "  id TEXT PRIMARY KEY,"
    "  organization_id TEXT NOT NULL REFERENCES organizations (id),"
    "  name TEXT NOT NULL,"
    "  state TEXT NOT NULL,"
    "  size_bytes BIGINT NOT NULL,"
    "  error_reason TEXT,"
    "  created_at BIGINT NOT NULL,"
    "  updated_at BIGINT NOT NULL,"
    "  last_used_at BIGINT NOT NULL,"
    "  UNIQUE (organization_id, name));"
    "CREATE INDEX volumes_org_created ON volumes (organization_id, created_at, id);",

    /* 2: a snapshot's image (layers and runtime config, JSON) and whether every organization
     * may use it (the default snapshot). */
    "ALTER TABLE snapshots ADD COLUMN image TEXT;"
    "ALTER TABLE snapshots ADD COLUMN general INTEGER NOT NULL DEFAULT 0;",

    /* 3: docker registries an organization pulls from. The password column only ever holds a
     * sealed value ("v1:..." AES-256-GCM, see dt_store_secret_seal()); the key lives outside the
     * database (DATA_DIR/registry-key), so a copy of the database alone reveals nothing. */
    "CREATE TABLE docker_registries ("
    "  id TEXT PRIMARY KEY,"
    "  organization_id TEXT NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,"
    "  name TEXT NOT NULL,"
    "  url TEXT NOT NULL,"
    "  username TEXT NOT NULL,"
    "  password_enc TEXT NOT NULL,"
    "  project TEXT NOT NULL,"
    "  registry_type TEXT NOT NULL,"
    "  is_default INTEGER NOT NULL,"
    "  created_at BIGINT NOT NULL,"
    "  updated_at BIGINT NOT NULL,"
    "  UNIQUE (organization_id, name));"
    /* Credential lookups at pull time go by (organization, host). */
    "CREATE INDEX docker_registries_org_url ON docker_registries (organization_id, url);",
};

const size_t dt__store_n_migrations = ELEMENTSOF(dt__store_migrations);
