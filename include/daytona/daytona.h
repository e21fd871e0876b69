/* SPDX-License-Identifier: Apache-2.0 */
/* libdaytona: a C client for the Daytona REST API (a `daytonad serve` or Daytona itself). It
 * mirrors the TypeScript SDK: client configuration, sandboxes, files, processes, sessions,
 * PTYs, snapshots and volumes. This header is the manual.
 *
 * Conventions, valid for every function below unless it says otherwise:
 *
 * - Errors. Functions return 0 (or a documented non-negative value) on success and a negative
 *   errno-style code on failure. When ERR is not NULL and *ERR is NULL, a failure also stores a
 *   new `daytona_error` in *ERR that the caller frees with daytona_error_free(); an error that is
 *   already there is kept (the first error wins). ERR may be NULL. HTTP statuses map to codes:
 *   400/422 -EINVAL, 401/403 -EACCES, 404 -ENOENT, 408/504 -ETIMEDOUT, 409 -EBUSY, 410 -ESRCH,
 *   413 -EFBIG, 429/503 -EAGAIN, 501 -EOPNOTSUPP, other statuses -EIO. Transport failures:
 *   -ECONNREFUSED, -ETIMEDOUT (client-side timeout), -ECONNRESET, -EPROTO (a response we cannot
 *   understand), -EHOSTUNREACH (name resolution or routing). The error carries the HTTP status
 *   and the server's `code`, `source` and `message` (body.message, else body.error, else the raw
 *   body, one line, truncated).
 *
 * - Blocking. Every call that talks to the server blocks the calling thread until the answer
 *   arrives or the client's request timeout expires. The exceptions are documented (waits poll
 *   with their own timeout; log follows block until the server closes the stream; the PTY can
 *   be driven from the caller's own poll loop).
 *
 * - Threads. A client is thread-compatible: use one client per thread (or lock around it). No
 *   global state beyond curl_global_init(), which the first daytona_client_new() runs once.
 *   Callbacks run on the calling thread, inside the call that takes them.
 *
 * - Ownership. Strings passed in are borrowed for the duration of the call. Results are newly
 *   allocated and owned by the caller, who frees them with the matching *_free() function; each
 *   free function accepts NULL. Returned `const char *` are borrowed, with the lifetime stated.
 *   Out-parameters are written only on success.
 *
 * - Sandboxes in toolbox calls (files, process, sessions, PTY): SANDBOX is the id or the name.
 *   The client resolves it once with GET /sandbox/{idOrName} (which also gives the toolbox proxy
 *   URL) and caches the answer for later calls; daytona_client_forget() drops the cache. The
 *   sandbox must be started.
 *
 * - String lists (`const char *const *`) are NULL-terminated arrays; NULL means empty.
 *   Key/value lists (env, labels) are "KEY=VALUE" strings split at the first '='.
 *
 * - Timeouts in seconds follow the SDK: for waits, 0 means no limit and a negative value means
 *   "do not wait". */
#ifndef DAYTONA_DAYTONA_H
#define DAYTONA_DAYTONA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define DAYTONA_VERSION "0.1.0"
#define DAYTONA_DEFAULT_API_URL "https://app.daytona.io/api"

/* The library version, DAYTONA_VERSION as compiled into the library. Static storage. */
const char *daytona_version(void);

/* ======================================================================================== */
/* Errors                                                                                     */
/* ======================================================================================== */

typedef struct daytona_error {
    int code;          /* positive errno, as returned negated */
    int http_status;   /* HTTP status of the failed response, or 0 when there was none */
    char *server_code; /* the body's "code" (else "error_code"), e.g. "NOT_FOUND"; or NULL */
    char *source;      /* the body's "source", e.g. "DAYTONA_DAEMON"; or NULL */
    char *message;     /* one line, never NULL: what failed, then the server's message */
} daytona_error;

/* Free an error; accepts NULL. */
void daytona_error_free(daytona_error *e);

/* ======================================================================================== */
/* Client and configuration                                                                   */
/* ======================================================================================== */

typedef struct daytona_client daytona_client;

/* Explicit settings. Zero-initialise, then set what you want; NULL/0 fields are filled from the
 * environment and then from the CLI's configuration file (see below), field by field:
 *   api_key:  explicit > $DAYTONA_API_KEY > the profile's apiKey          (required)
 *   api_url:  explicit > $DAYTONA_API_URL > the profile's apiUrl > DAYTONA_DEFAULT_API_URL
 *   target:   explicit > $DAYTONA_TARGET  > the profile's target         (optional)
 * The profile is PROFILE when set, else the file's activeProfile. A trailing '/' of the URL is
 * removed. */
struct daytona_config {
    const char *api_key;
    const char *api_url;           /* e.g. "http://127.0.0.1:3000/api" */
    const char *target;            /* region; sent as "target" on create */
    const char *organization_id;   /* sent as X-Daytona-Organization-ID when set */
    const char *profile;           /* profile of the config file to use; NULL = active one */
    const char *config_path;       /* config file; NULL = daytona_config_file_default_path() */
    bool ignore_env;               /* do not read DAYTONA_* variables */
    bool ignore_config_file;       /* do not read the config file */
    long request_timeout_ms;       /* per HTTP request; 0 = none (the SDK's default is 24 h) */
    long connect_timeout_ms;       /* TCP connect; 0 = 10 s */
    const char *user_agent;        /* NULL = "libdaytona/VERSION" */
};

/* Create a client from CFG (may be NULL: everything from env and the config file). Blocking only
 * for reading the config file; no request is sent. Returns 0 and *RET (free with
 * daytona_client_free()), -ENOKEY when no API key was found anywhere, -EINVAL for a malformed
 * URL or config file (*ERR names it), -ENOMEM. */
int daytona_client_new(const struct daytona_config *cfg, daytona_client **ret, daytona_error **err);

/* Free the client, its connection and caches; accepts NULL. Every PTY opened with it must have
 * been closed before. */
void daytona_client_free(daytona_client *c);

/* The effective settings. Borrowed, valid until daytona_client_free(). Target may be NULL. */
const char *daytona_client_api_url(const daytona_client *c);
const char *daytona_client_api_key(const daytona_client *c);
const char *daytona_client_target(const daytona_client *c);

/* Drop the cached sandbox id/toolbox URL resolutions (see the conventions above). */
void daytona_client_forget(daytona_client *c);

/* Raw escape hatch for endpoints without a wrapper: send METHOD ("GET", "POST", ...) to
 * api_url + PATH (PATH starts with '/' and carries its own query, already encoded) with the
 * JSON text BODY (NULL = no body). On a 2xx answer returns 0, stores the status in *STATUS and
 * the body (NUL-terminated, possibly "") in *RESPONSE (free()); both may be NULL. Non-2xx
 * answers fail as described in the conventions. Blocking. */
int daytona_request(daytona_client *c, const char *method, const char *path, const char *body,
                    long *status, char **response, daytona_error **err);

/* ---- The CLI's configuration file --------------------------------------------------------
 * $XDG_CONFIG_HOME/daytona/config.json (XDG_CONFIG_HOME defaults to ~/.config):
 *   {"activeProfile": "default",
 *    "profiles": {"default": {"apiUrl": "...", "apiKey": "...", "target": "..."}}}
 * Unknown keys are kept when the file is saved again. Saved with mode 0600, atomically (a temp
 * file in the same directory, fsync, rename); the directory is created 0700 when missing. */

typedef struct daytona_config_file daytona_config_file;

/* A profile as stored. Borrowed from its file object; valid until the next change to that object
 * or daytona_config_file_free(). Missing fields are NULL. */
struct daytona_profile {
    const char *name;
    const char *api_url;
    const char *api_key;
    const char *target;
};

/* The default path ($XDG_CONFIG_HOME or $HOME/.config, + "/daytona/config.json"). Returns 0 and a
 * new string in *RET (free()), or -ENOENT when neither variable is set. */
int daytona_config_file_default_path(char **ret, daytona_error **err);

/* Load PATH (NULL = the default path). A missing file is not an error: it gives an empty
 * object with no profiles. Returns 0 and *RET (free with daytona_config_file_free()), -EINVAL
 * when the file is not valid JSON or has the wrong shape, -errno when it cannot be read. */
int daytona_config_file_load(const char *path, daytona_config_file **ret, daytona_error **err);

/* Write the object back to the path it was loaded from (0600, atomic, see above). */
int daytona_config_file_save(daytona_config_file *cf, daytona_error **err);

void daytona_config_file_free(daytona_config_file *cf);

/* The path this object loads from and saves to. Borrowed, valid until free. */
const char *daytona_config_file_path(const daytona_config_file *cf);

/* Name of the active profile, or NULL when none is set. Borrowed (see struct daytona_profile). */
const char *daytona_config_file_active(const daytona_config_file *cf);

/* Number of profiles, and the I-th one (0 <= I < count, in the file's order). */
size_t daytona_config_file_n_profiles(const daytona_config_file *cf);
int daytona_config_file_profile_at(const daytona_config_file *cf, size_t i,
                                   struct daytona_profile *ret);

/* Look up profile NAME (NULL = the active one). Returns 0 and fills *RET, or -ENOENT. */
int daytona_config_file_get(const daytona_config_file *cf, const char *name,
                            struct daytona_profile *ret);

/* Create profile NAME or update it: each non-NULL of API_URL, API_KEY, TARGET replaces the stored
 * value; an empty string "" removes that field. When there was no active profile, NAME becomes
 * active. Returns 0 or -EINVAL (empty NAME). In memory only: call daytona_config_file_save(). */
int daytona_config_file_set_profile(daytona_config_file *cf, const char *name, const char *api_url,
                                    const char *api_key, const char *target, daytona_error **err);

/* Make NAME the active profile. Returns 0 or -ENOENT when there is no such profile. */
int daytona_config_file_set_active(daytona_config_file *cf, const char *name, daytona_error **err);

/* Remove profile NAME. If it was active, no profile is active afterwards. Returns 0 or -ENOENT. */
int daytona_config_file_remove_profile(daytona_config_file *cf, const char *name,
                                       daytona_error **err);

/* ======================================================================================== */
/* Sandboxes (control plane, contract §2)                                                     */
/* ======================================================================================== */

struct daytona_kv {
    char *key;
    char *value;
};

/* A sandbox record. Strings are NULL when the server did not send them; numbers are 0. */
struct daytona_sandbox {
    char *id;
    char *name;
    char *organization_id;
    char *state;            /* "started", "stopped", "creating", ... (contract §2.5) */
    char *desired_state;
    char *error_reason;
    char *toolbox_proxy_url;
    char *user;
    char *snapshot;
    char *target;
    char *created_at, *updated_at, *last_activity_at; /* ISO-8601 strings */
    bool is_public;
    double cpu, gpu, memory, disk;                     /* memory and disk in GiB */
    long auto_stop_interval, auto_archive_interval, auto_delete_interval; /* minutes */
    struct daytona_kv *labels;
    size_t n_labels;
    struct daytona_kv *env;                            /* only in full records (get/create) */
    size_t n_env;
    char *json;             /* the whole record as the server sent it, compact JSON text */
};

void daytona_sandbox_free(struct daytona_sandbox *sb);

/* The value of label KEY, or NULL. Borrowed from SB. */
const char *daytona_sandbox_label(const struct daytona_sandbox *sb, const char *key);

struct daytona_volume_mount {
    const char *volume_id;  /* the volume's id (daytona_volume_get() resolves a name) */
    const char *mount_path; /* absolute path inside the sandbox */
    const char *subpath;    /* optional */
};

/* Every field of POST /sandbox (contract §2.3). Zero-initialise; unset fields are not sent. */
struct daytona_create_params {
    const char *name;
    const char *snapshot;            /* snapshot name or id */
    const char *image;               /* sent as buildInfo.dockerfileContent "FROM <image>\n" */
    const char *dockerfile;          /* full Dockerfile text (instead of image) */
    const char *user;
    const char *language;            /* code-toolbox-language label; NULL = "python" */
    const char *const *env;          /* "K=V" */
    const char *const *labels;       /* "K=V" */
    const char *const *secrets;      /* "ENV_NAME=secretName" */
    bool is_public;
    const char *target;              /* NULL = the client's target */
    double cpu, gpu, memory, disk;   /* 0 = server default; memory and disk in GiB */
    const char *const *gpu_type;
    bool spot;
    bool has_auto_stop, has_auto_pause, has_auto_archive, has_auto_delete, has_ttl;
    long auto_stop_interval;         /* minutes, 0 = never */
    long auto_pause_interval;
    long auto_archive_interval;      /* minutes, 0 = the maximum */
    long auto_delete_interval;       /* minutes, negative = disabled, 0 = when stopped */
    long ttl_minutes;
    bool ephemeral;                  /* forces autoDeleteInterval = 0 */
    const struct daytona_volume_mount *volumes;
    size_t n_volumes;
    bool kvm;
    bool network_block_all;
    const char *network_allow_list;  /* comma-separated CIDRs */
    const char *domain_allow_list;
    const char *outbound_proxy_url;
    const char *otel_endpoint_override;
    const char *linked_sandbox;
    const char *extra_json;          /* a JSON object merged into the body last (escape hatch) */
    /* buildInfo.contextHashes (with dockerfile): from daytona_dockerfile_prepare(). */
    const char *const *context_hashes;
};

/* Create a sandbox. WAIT_TIMEOUT_S < 0 returns the server's first answer (often "creating");
 * otherwise waits for "started" like daytona_sandbox_wait() (0 = no limit). Returns 0 and *RET
 * (may be NULL when not wanted), -EINVAL for contradictory parameters (image and snapshot;
 * image and dockerfile) before any request, -ETIMEDOUT, -EIO when the sandbox ends in "error" or
 * "build_failed" (the message has errorReason); otherwise as the conventions say. Blocking. */
int daytona_sandbox_create(daytona_client *c, const struct daytona_create_params *p,
                           int wait_timeout_s, struct daytona_sandbox **ret, daytona_error **err);

/* GET /sandbox/{idOrName}. Returns 0 and *RET, -ENOENT when there is no such sandbox. */
int daytona_sandbox_get(daytona_client *c, const char *id_or_name, struct daytona_sandbox **ret,
                        daytona_error **err);

/* GET /sandbox, one page. Zero-initialise; unset fields are not sent. */
struct daytona_list_params {
    const char *cursor;           /* NULL = first page; then daytona_sandbox_list.next_cursor */
    int limit;                    /* 0 = server default */
    const char *const *labels;    /* "K=V", all must match */
    const char *const *states;
    const char *id_prefix;
    const char *name_prefix;
    const char *sort;             /* name|cpu|memoryGib|diskGib|lastActivityAt|createdAt */
    const char *order;            /* asc|desc */
};

struct daytona_sandbox_list {
    struct daytona_sandbox **items; /* list items: no env (contract §2.2) */
    size_t n;
    char *next_cursor;              /* NULL when this was the last page */
};

/* One page. Returns 0 and *RET (free with daytona_sandbox_list_free()). */
int daytona_sandbox_list(daytona_client *c, const struct daytona_list_params *p,
                         struct daytona_sandbox_list **ret, daytona_error **err);

/* Every page, following next_cursor from P->cursor until it is empty (at most 10000 pages, then
 * -ELOOP: a server that repeats its cursor). Items are concatenated; next_cursor is NULL. */
int daytona_sandbox_list_all(daytona_client *c, const struct daytona_list_params *p,
                             struct daytona_sandbox_list **ret, daytona_error **err);

void daytona_sandbox_list_free(struct daytona_sandbox_list *l);

/* Start a stopped or archived sandbox and, unless WAIT_TIMEOUT_S < 0, wait for "started". */
int daytona_sandbox_start(daytona_client *c, const char *id_or_name, int wait_timeout_s,
                          daytona_error **err);

/* Stop (FORCE: kill rather than terminate gracefully) and, unless WAIT_TIMEOUT_S < 0, wait for
 * "stopped" or "destroyed" (an ephemeral sandbox is deleted when stopped). */
int daytona_sandbox_stop(daytona_client *c, const char *id_or_name, bool force,
                         int wait_timeout_s, daytona_error **err);

/* Delete and, unless WAIT_TIMEOUT_S < 0, wait until it is "destroyed" or gone (404). */
int daytona_sandbox_delete(daytona_client *c, const char *id_or_name, int wait_timeout_s,
                           daytona_error **err);

/* Archive a stopped sandbox (POST /sandbox/{id}/archive). Does not wait. */
int daytona_sandbox_archive(daytona_client *c, const char *id_or_name, daytona_error **err);

/* Replace the labels with LABELS ("K=V"). */
int daytona_sandbox_set_labels(daytona_client *c, const char *id_or_name,
                               const char *const *labels, daytona_error **err);

enum daytona_interval {
    DAYTONA_AUTO_STOP,    /* POST /sandbox/{id}/autostop/{n} */
    DAYTONA_AUTO_PAUSE,   /* .../autopause/{n} */
    DAYTONA_AUTO_ARCHIVE, /* .../autoarchive/{n} */
    DAYTONA_AUTO_DELETE,  /* .../autodelete/{n}, n may be negative (disabled) */
    DAYTONA_TTL,          /* .../ttl/{n} */
};

/* Set one interval, in minutes. */
int daytona_sandbox_set_interval(daytona_client *c, const char *id_or_name,
                                 enum daytona_interval which, long minutes, daytona_error **err);

/* Make the sandbox's previews public or private (POST /sandbox/{id}/public/{bool}). */
int daytona_sandbox_set_public(daytona_client *c, const char *id_or_name, bool is_public,
                               daytona_error **err);

/* Poll GET /sandbox/{id} (at once, then every POLL interval: 100 ms growing to 1 s) until its
 * state is one of STATES (NULL-terminated, non-empty). TIMEOUT_S 0 = no limit. A state "error" or
 * "build_failed" not in STATES fails with -EIO and errorReason in the message. A 404 counts as
 * "destroyed" (success when STATES holds "destroyed", then *RET is set to NULL; otherwise
 * -ENOENT). Other failed GETs fail the wait. Returns 0 and *RET (the last record; RET may be
 * NULL), or -ETIMEDOUT. Blocking (sleeps between polls). */
int daytona_sandbox_wait(daytona_client *c, const char *id_or_name, const char *const *states,
                         int timeout_s, struct daytona_sandbox **ret, daytona_error **err);

/* The toolbox base URL of the sandbox: "{toolboxProxyUrl}/{id}" without a trailing '/', from the
 * (cached) record or GET /sandbox/{id}/toolbox-proxy-url. Returns 0 and a new string (free()). */
int daytona_sandbox_toolbox_url(daytona_client *c, const char *id_or_name, char **ret,
                                daytona_error **err);

/* A preview URL for PORT. EXPIRES_S > 0 asks for a signed URL valid that long
 * (GET .../signed-preview-url?expiresInSeconds=); 0 asks GET .../preview-url. Returns 0, *URL
 * and *TOKEN (new strings, free(); TOKEN may be NULL, and *TOKEN may be NULL when absent). */
int daytona_sandbox_preview_url(daytona_client *c, const char *id_or_name, int port,
                                int expires_s, char **url, char **token, daytona_error **err);

/* ======================================================================================== */
/* Files (toolbox, contract §3.4). Paths may be relative to the sandbox's working directory.  */
/* ======================================================================================== */

/* Progress of a transfer: bytes so far, and the total or -1 when unknown. Return non-zero to
 * abort the transfer (it then fails with -ECANCELED). */
typedef int (*daytona_progress_cb)(uint64_t done, int64_t total, void *userdata);

/* Upload everything readable from FD (until EOF, from its current offset) to REMOTE_PATH,
 * creating parent directories and replacing an existing file. Streams: memory use does not
 * depend on the file's size (a multipart POST /files/bulk-upload built on the fly; chunked when
 * FD is not a regular file). FD stays open and owned by the caller. PROGRESS may be NULL.
 * Returns 0, -errno from read(), or as the conventions say. Blocking. */
int daytona_fs_upload_fd(daytona_client *c, const char *sandbox, int fd, const char *remote_path,
                         daytona_progress_cb progress, void *userdata, daytona_error **err);

/* Same from the local file LOCAL_PATH. */
int daytona_fs_upload_file(daytona_client *c, const char *sandbox, const char *local_path,
                           const char *remote_path, daytona_error **err);

/* Same from memory (DATA, LEN bytes; borrowed). */
int daytona_fs_upload_buffer(daytona_client *c, const char *sandbox, const void *data, size_t len,
                             const char *remote_path, daytona_error **err);

/* Download REMOTE_PATH (GET /files/download?path=) and write its bytes to FD as they arrive
 * (FD stays open and owned by the caller; nothing is buffered beyond one network chunk). On
 * failure part of the file may have been written. Stores the byte count in *SIZE (may be NULL).
 * Returns 0, -ENOENT when the file does not exist, -EPROTO when the stream ended early (the
 * length announced was not reached), -errno from write(), or as the conventions say. */
int daytona_fs_download_fd(daytona_client *c, const char *sandbox, const char *remote_path, int fd,
                           uint64_t *size, daytona_progress_cb progress, void *userdata,
                           daytona_error **err);

/* Download into the local file LOCAL_PATH: written to a temporary file next to it and renamed
 * into place only when complete (mode 0644 minus umask). */
int daytona_fs_download_file(daytona_client *c, const char *sandbox, const char *remote_path,
                             const char *local_path, daytona_error **err);

/* Download into memory, at most MAX bytes (-EFBIG beyond). *DATA is NUL-terminated (free()). */
int daytona_fs_download_buffer(daytona_client *c, const char *sandbox, const char *remote_path,
                               size_t max, char **data, size_t *len, daytona_error **err);

struct daytona_file_info {
    char *name;
    char *path;          /* may be NULL */
    bool is_dir;
    uint64_t size;
    char *mode;          /* "-rw-r--r--" */
    char *permissions;   /* "0644" */
    char *owner, *group;
    char *mod_time;
};

void daytona_file_info_free(struct daytona_file_info *fi);
/* Free an array of N infos as returned by daytona_fs_list(). */
void daytona_file_infos_free(struct daytona_file_info *v, size_t n);

/* List directory PATH. Returns 0, *RET (array, free with daytona_file_infos_free()) and *N. */
int daytona_fs_list(daytona_client *c, const char *sandbox, const char *path,
                    struct daytona_file_info **ret, size_t *n, daytona_error **err);

/* Details of PATH. Returns 0 and *RET (free with daytona_file_info_free()), or -ENOENT. */
int daytona_fs_info(daytona_client *c, const char *sandbox, const char *path,
                    struct daytona_file_info **ret, daytona_error **err);

/* Create directory PATH with MODE, an octal string such as "755" (NULL = "755"). */
int daytona_fs_mkdir(daytona_client *c, const char *sandbox, const char *path, const char *mode,
                     daytona_error **err);

/* Delete PATH; a directory needs RECURSIVE. */
int daytona_fs_delete(daytona_client *c, const char *sandbox, const char *path, bool recursive,
                      daytona_error **err);

/* Move or rename SOURCE to DESTINATION. */
int daytona_fs_move(daytona_client *c, const char *sandbox, const char *source,
                    const char *destination, daytona_error **err);

/* Change owner, group and/or mode (octal string) of PATH; NULL fields are left alone. */
int daytona_fs_set_permissions(daytona_client *c, const char *sandbox, const char *path,
                               const char *owner, const char *group, const char *mode,
                               daytona_error **err);

struct daytona_match {
    char *file;
    long line;
    char *content;
};

void daytona_matches_free(struct daytona_match *v, size_t n);

/* Grep file contents under PATH for PATTERN (GET /files/find). *RET array + *N. */
int daytona_fs_find(daytona_client *c, const char *sandbox, const char *path, const char *pattern,
                    struct daytona_match **ret, size_t *n, daytona_error **err);

/* Glob file names under PATH (e.g. "*.c"; GET /files/search). *RET is a NULL-terminated string
 * array, free with daytona_strv_free(). */
int daytona_fs_search(daytona_client *c, const char *sandbox, const char *path,
                      const char *pattern, char ***ret, daytona_error **err);

struct daytona_replace_result {
    char *file;
    bool success;
    char *error; /* NULL on success */
};

void daytona_replace_results_free(struct daytona_replace_result *v, size_t n);

/* Replace PATTERN with NEW_VALUE in FILES (POST /files/replace). *RET array + *N. */
int daytona_fs_replace(daytona_client *c, const char *sandbox, const char *const *files,
                       const char *pattern, const char *new_value,
                       struct daytona_replace_result **ret, size_t *n, daytona_error **err);

/* Free a NULL-terminated string array and its strings; accepts NULL. */
void daytona_strv_free(char **v);

/* ======================================================================================== */
/* Process: one-shot execution (contract §3.5)                                               */
/* ======================================================================================== */

struct daytona_exec_result {
    int exit_code;
    char *output;      /* stdout (and possibly stderr) as one NUL-terminated string */
    size_t output_len; /* bytes in output (it may contain NUL bytes) */
};

/* Free the members of R (not R itself) and zero it; accepts a zeroed result. */
void daytona_exec_result_done(struct daytona_exec_result *r);

/* Run the shell command COMMAND (sh -c semantics) in CWD (NULL = working directory) with extra
 * ENV ("K=V"). TIMEOUT_S > 0 limits it on the server (-ETIMEDOUT when exceeded), 0 means no
 * limit, negative leaves the server's default. A non-zero exit status is a success of this call:
 * it is in RET->exit_code. Returns 0 and fills *RET. Blocking until the command ends. */
int daytona_process_exec(daytona_client *c, const char *sandbox, const char *command,
                         const char *cwd, const char *const *env, int timeout_s,
                         struct daytona_exec_result *ret, daytona_error **err);

/* Run CODE as a script (POST /process/code-run) in LANGUAGE ("python", "typescript",
 * "javascript"; NULL = the sandbox's code-toolbox-language label, else "python") with ARGV and
 * ENV. Timeout and result as daytona_process_exec(). */
int daytona_process_code_run(daytona_client *c, const char *sandbox, const char *code,
                             const char *language, const char *const *argv,
                             const char *const *env, int timeout_s,
                             struct daytona_exec_result *ret, daytona_error **err);

/* ======================================================================================== */
/* Sessions: long-lived shells (contract §3.6)                                               */
/* ======================================================================================== */

struct daytona_command {
    char *id;
    char *command;
    bool has_exit_code; /* false while the command runs */
    int exit_code;
};

void daytona_command_free(struct daytona_command *cmd);

struct daytona_session {
    char *session_id;
    struct daytona_command *commands; /* array of n_commands (members owned) */
    size_t n_commands;
};

void daytona_session_free(struct daytona_session *s);
/* Free an array of N sessions as returned by daytona_session_list(). */
void daytona_sessions_free(struct daytona_session *v, size_t n);

/* Create session SESSION_ID (chosen by the caller). -EBUSY when it exists. */
int daytona_session_create(daytona_client *c, const char *sandbox, const char *session_id,
                           daytona_error **err);

/* Delete it, killing its shell. -ENOENT when there is no such session. */
int daytona_session_delete(daytona_client *c, const char *sandbox, const char *session_id,
                           daytona_error **err);

/* Session and its commands. Returns 0 and *RET (free with daytona_session_free()). */
int daytona_session_get(daytona_client *c, const char *sandbox, const char *session_id,
                        struct daytona_session **ret, daytona_error **err);

/* All sessions. Returns 0, *RET (array, free with daytona_sessions_free()) and *N. */
int daytona_session_list(daytona_client *c, const char *sandbox, struct daytona_session **ret,
                         size_t *n, daytona_error **err);

struct daytona_session_exec_result {
    char *cmd_id;
    bool has_exit_code; /* false for an async command */
    int exit_code;
    char *output;       /* interleaved stdout+stderr; NULL for async */
    char *std_out;      /* NULL for async */
    char *std_err;      /* NULL for async */
};

void daytona_session_exec_result_done(struct daytona_session_exec_result *r);

/* Run COMMAND in the session's shell (cd and export persist). RUN_ASYNC: return at once with the
 * cmd_id only; otherwise block until the command ends. TIMEOUT_S > 0 bounds the HTTP request
 * (client side) for a synchronous command. Returns 0 and fills *RET. */
int daytona_session_exec(daytona_client *c, const char *sandbox, const char *session_id,
                         const char *command, bool run_async, int timeout_s,
                         struct daytona_session_exec_result *ret, daytona_error **err);

/* State of one command. Returns 0 and *RET (free with daytona_command_free()). */
int daytona_session_command_get(daytona_client *c, const char *sandbox, const char *session_id,
                                const char *cmd_id, struct daytona_command **ret,
                                daytona_error **err);

/* The logs so far (JSON form). *STD_OUT and *STD_ERR are new strings (free(); either pointer
 * may be NULL when not wanted). */
int daytona_session_command_logs(daytona_client *c, const char *sandbox, const char *session_id,
                                 const char *cmd_id, char **std_out, char **std_err,
                                 daytona_error **err);

/* Called with a piece of output (not NUL-terminated; may split lines and UTF-8 sequences).
 * Return 0 to go on, or a negative errno to stop: the call then returns that value. */
typedef int (*daytona_output_cb)(const char *data, size_t len, void *userdata);

/* Follow a command's logs over the WebSocket .../logs?follow=true (contract §3.6.1): the output
 * so far, then live output, demultiplexed into ON_STDOUT and ON_STDERR (either may be NULL),
 * until the server closes the stream when the command has exited. Blocking. Returns 0 when the
 * stream ended normally (then use daytona_session_command_get() for the exit code), the
 * callback's negative value, -EPROTO for a broken stream (the message says why),
 * -EOPNOTSUPP for an https/wss URL (not supported yet), or as the conventions say. */
int daytona_session_command_follow(daytona_client *c, const char *sandbox, const char *session_id,
                                   const char *cmd_id, daytona_output_cb on_stdout,
                                   daytona_output_cb on_stderr, void *userdata,
                                   daytona_error **err);

/* Send DATA (text) to the command's stdin. -ESRCH when the command has completed. */
int daytona_session_command_input(daytona_client *c, const char *sandbox, const char *session_id,
                                  const char *cmd_id, const char *data, daytona_error **err);

/* ======================================================================================== */
/* PTY: interactive terminals over WebSocket (contract §3.7)                                  */
/* ======================================================================================== */

typedef struct daytona_pty daytona_pty;

struct daytona_pty_params {
    const char *id;             /* NULL = a generated "pty-<random>" */
    const char *cwd;            /* NULL = working directory */
    const char *const *env;     /* "K=V" */
    unsigned cols, rows;        /* 0 = 80x24 */
};

/* Called with terminal output (raw bytes). */
typedef void (*daytona_pty_output_cb)(const void *data, size_t len, void *userdata);

/* Create a PTY and attach to it (WebSocket /process/pty/create-connect, subprotocol
 * X-Daytona-Pty-Exit-Control). Blocks until the server's "connected" control message (at most
 * 10 s: -ETIMEDOUT). Returns 0 and *RET (close with daytona_pty_close()). The PTY keeps a
 * pointer to C, which must outlive it and must not be used by another thread meanwhile. Output
 * is delivered by daytona_pty_step()/daytona_pty_wait() to the callback given there.
 * -EOPNOTSUPP for https toolbox URLs (wss is not supported yet). */
int daytona_pty_create(daytona_client *c, const char *sandbox, const struct daytona_pty_params *p,
                       daytona_pty **ret, daytona_error **err);

/* Attach to the existing PTY PTY_ID (WebSocket /process/pty/{id}/connect). As create. */
int daytona_pty_connect(daytona_client *c, const char *sandbox, const char *pty_id,
                        daytona_pty **ret, daytona_error **err);

/* The PTY's id. Borrowed, valid until daytona_pty_close(). */
const char *daytona_pty_id(const daytona_pty *pty);

/* The connected socket, non-blocking, for the caller's poll loop (POLLIN). Owned by the PTY: do
 * not read, write or close it. */
int daytona_pty_fd(const daytona_pty *pty);

/* Whether bytes are already buffered inside the PTY object, so daytona_pty_step() must be called
 * without waiting for the fd (true possibly right after create/connect). */
bool daytona_pty_pending(const daytona_pty *pty);

/* Read what the socket has (never blocks on reading), decode frames, pass output to ON_OUTPUT
 * (may be NULL), answer pings. Returns 1 while the PTY runs, 0 once it has exited (then see
 * daytona_pty_exit_code(); further calls return 0), -ECONNRESET when the connection dropped
 * without an exit message, -EPROTO for a protocol error. Call it when daytona_pty_fd() is
 * readable or daytona_pty_pending() is true. */
int daytona_pty_step(daytona_pty *pty, daytona_pty_output_cb on_output, void *userdata,
                     daytona_error **err);

/* Loop on poll() + daytona_pty_step() until the PTY exits or TIMEOUT_MS passes (-1 = forever;
 * then -ETIMEDOUT). Returns 0 on exit. Blocking. */
int daytona_pty_wait(daytona_pty *pty, daytona_pty_output_cb on_output, void *userdata,
                     int timeout_ms, daytona_error **err);

/* Send keystrokes (one binary frame). Blocks until written (the socket is non-blocking; this
 * waits for POLLOUT as needed). -EPIPE after the connection has closed. */
int daytona_pty_write(daytona_pty *pty, const void *data, size_t len, daytona_error **err);

/* Resize the terminal (REST POST /process/pty/{id}/resize through the PTY's client). Blocking. */
int daytona_pty_resize(daytona_pty *pty, unsigned cols, unsigned rows, daytona_error **err);

/* After daytona_pty_step() returned 0: the exit code (0 and *CODE), or -EAGAIN while running.
 * *REASON (may be NULL) gets a borrowed exitReason string or NULL, valid until close. */
int daytona_pty_exit_code(const daytona_pty *pty, int *code, const char **reason);

/* Kill the PTY on the server (DELETE /process/pty/{id}) through its client. Blocking. */
int daytona_pty_kill(daytona_pty *pty, daytona_error **err);

/* Detach: send a close frame, close the socket and free; accepts NULL. The PTY process keeps
 * running on the server unless it exited or was killed (reattach with daytona_pty_connect()). */
void daytona_pty_close(daytona_pty *pty);

/* ======================================================================================== */
/* Snapshots (contract §2.7)                                                                  */
/* ======================================================================================== */

struct daytona_snapshot {
    char *id;
    char *name;
    char *image_name;
    char *state;          /* building, pending, pulling, active, error, build_failed, ... */
    char *error_reason;
    char *created_at, *updated_at, *last_used_at;
    bool general;
    double cpu, gpu, mem, disk;
    double size;          /* GiB as the server reports it; 0 when null */
    char **entrypoint;    /* NULL-terminated, or NULL */
    char *json;           /* the whole record, compact JSON text */
};

void daytona_snapshot_free(struct daytona_snapshot *s);

struct daytona_snapshot_params {
    const char *name;                /* required */
    const char *image;               /* imageName */
    const char *dockerfile;          /* buildInfo.dockerfileContent (instead of image) */
    const char *const *entrypoint;
    double cpu, gpu, memory, disk;   /* 0 = server default */
    const char *target;              /* regionId; NULL = the client's target */
    /* buildInfo.contextHashes (with dockerfile): from daytona_dockerfile_prepare(). */
    const char *const *context_hashes;
};

/* POST /snapshots. WAIT_TIMEOUT_S < 0 returns at once; otherwise polls GET /snapshots/{name}
 * every second until "active" (0), or "error"/"build_failed" (-EIO, errorReason in the message),
 * or the timeout (-ETIMEDOUT; 0 = no limit). Returns 0 and *RET (may be NULL). */
int daytona_snapshot_create(daytona_client *c, const struct daytona_snapshot_params *p,
                            int wait_timeout_s, struct daytona_snapshot **ret,
                            daytona_error **err);

/* GET /snapshots/{idOrName}. -ENOENT when missing. */
int daytona_snapshot_get(daytona_client *c, const char *id_or_name, struct daytona_snapshot **ret,
                         daytona_error **err);

struct daytona_snapshot_list {
    struct daytona_snapshot **items;
    size_t n;
    long total, page, total_pages;
};

void daytona_snapshot_list_free(struct daytona_snapshot_list *l);

/* GET /snapshots?page&limit (1-based; 0 = server default). */
int daytona_snapshot_list(daytona_client *c, int page, int limit,
                          struct daytona_snapshot_list **ret, daytona_error **err);

/* DELETE /snapshots/{id}; a name is resolved to its id first. */
int daytona_snapshot_delete(daytona_client *c, const char *id_or_name, daytona_error **err);

/* POST /snapshots/{id}/activate; a name is resolved first. *RET may be NULL. */
int daytona_snapshot_activate(daytona_client *c, const char *id_or_name,
                              struct daytona_snapshot **ret, daytona_error **err);

/* Stream the build log: GET /snapshots/{id}/build-logs-url, then GET {url}?follow=true, passing
 * each chunk to ON_LOG until the server closes the stream. Blocking. */
int daytona_snapshot_follow_logs(daytona_client *c, const char *id_or_name,
                                 daytona_output_cb on_log, void *userdata, daytona_error **err);

/* ======================================================================================== */
/* Volumes (contract §2.10)                                                                   */
/* ======================================================================================== */

struct daytona_volume {
    char *id;
    char *name;
    char *organization_id;
    char *state;          /* creating, ready, pending_create, ..., error */
    char *error_reason;
    char *created_at, *updated_at, *last_used_at;
    char *json;
};

void daytona_volume_free(struct daytona_volume *v);
/* Free an array of N volume pointers as returned by daytona_volume_list(). */
void daytona_volumes_free(struct daytona_volume **v, size_t n);

/* POST /volumes {name[, size]}. SIZE_GB 0 = server default (not sent). */
int daytona_volume_create(daytona_client *c, const char *name, unsigned size_gb,
                          struct daytona_volume **ret, daytona_error **err);

/* GET /volumes/by-name/{name}. -ENOENT when missing. */
int daytona_volume_get(daytona_client *c, const char *name, struct daytona_volume **ret,
                       daytona_error **err);

/* GET /volumes. *RET array of N pointers (free with daytona_volumes_free()). */
int daytona_volume_list(daytona_client *c, struct daytona_volume ***ret, size_t *n,
                        daytona_error **err);

/* DELETE /volumes/{id}; a name is resolved to its id first. */
int daytona_volume_delete(daytona_client *c, const char *id_or_name, daytona_error **err);

/* Stream the build log of a sandbox created from an image or Dockerfile: GET
 * /sandbox/{idOrName}/build-logs-url, then GET {url}?follow=true, passing each chunk to ON_LOG
 * until the server closes the stream (the build ended). No overall time limit. Blocking. */
int daytona_sandbox_follow_build_logs(daytona_client *c, const char *id_or_name,
                                      daytona_output_cb on_log, void *userdata,
                                      daytona_error **err);

/* ======================================================================================== */
/* Image build contexts (contract §2.8)                                                       */
/* ======================================================================================== */

/* Upload LOCAL_PATH (a file or a directory, relative to the cwd or absolute) as one build context
 * the way the SDK's ObjectStorage.upload() does for Image.addLocalFile()/addLocalDir(): the
 * context hash is the MD5 of the absolute path followed by the file's content (for a directory:
 * each regular file's path relative to it and its content, in strcmp order, and the relative
 * path of each directory that holds neither files nor directories). RET_HASH gets those 32
 * lowercase hex digits and a NUL. Gets push credentials (GET /object-storage/push-access), asks
 * the S3 service whether {organizationId}/{hash}/ exists (ListObjectsV2) and, only if not,
 * writes an uncompressed tar holding the path under its absolute name without the leading '/'
 * (directories recursively, symlinks as symlinks, devices/fifos/sockets left out, owner 0:0) to
 * an unlinked temporary file in $TMPDIR (or /tmp) and PUTs it as {hash}/context.tar with AWS
 * SigV4. Memory use does not grow with the context's size; one upload is at most 5 GiB (-EFBIG).
 * Returns 0, -ENOENT/-EACCES for the local path, -EAGAIN when a file changed while it was being
 * archived, or an HTTP error (S3 errors carry the status). BLOCKING, no overall time limit for
 * the PUT (the connect timeout applies). */
int daytona_context_upload(daytona_client *c, const char *local_path, char ret_hash[33],
                           daytona_error **err);

/* Prepare DOCKERFILE (its text) for a build with local context: every COPY/ADD source (not
 * --from=..., not heredocs, not ADD URLs) is resolved against CONTEXT_DIR (absolute sources stay
 * absolute, globs are expanded with glob(3)), each match is uploaded with
 * daytona_context_upload(), and the instruction is rewritten to name the absolute path, which is
 * where the builder finds it once every context tar is unpacked at the build context's root
 * (contract §2.8). Continuation lines of a rewritten instruction are joined; all other lines are
 * kept verbatim. *RET_DOCKERFILE (free()) is the new text, *RET_HASHES a NULL-terminated list of
 * distinct context hashes (daytona_strv_free(); empty when nothing is copied) for
 * context_hashes in daytona_create_params / daytona_snapshot_params. -ENOENT names a missing
 * source, -ENOTDIR a CONTEXT_DIR that is not a directory. BLOCKING (uploads). */
int daytona_dockerfile_prepare(daytona_client *c, const char *dockerfile, const char *context_dir,
                               char **ret_dockerfile, char ***ret_hashes, daytona_error **err);

#ifdef __cplusplus
}
#endif

#endif
