/* SPDX-License-Identifier: Apache-2.0 */
/* File-system operations of the toolbox API (/files/...), as plain synchronous functions the
 * agent's HTTP handlers call: list, info, mkdir, delete, move, chmod/chown, content search,
 * name search, replace, and the open/commit halves of upload and download. No event loop, no
 * logging. Semantics follow Daytona's daemon (apps/daemon/pkg/toolbox/fs) unless noted. */
#ifndef DT_AGENT_FS_H
#define DT_AGENT_FS_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/stat.h>
#include <sys/types.h>

#include "dt/error.h"

/* Hard limits on what one request may make us produce or read. */
#define DT_FS_LIST_MAX          100000u     /* FileInfo entries per list call, else -E2BIG */
#define DT_FS_WALK_MAX_ENTRIES  2000000u    /* entries visited by one find/search walk */
#define DT_FS_WALK_MAX_DEPTH    256u        /* directory nesting followed by any walk */
#define DT_FS_FIND_MAX_RESULTS  10000u      /* matches returned by find (then truncated) */
#define DT_FS_FIND_MAX_FILE     (16u << 20) /* larger files are skipped by find */
#define DT_FS_FIND_MAX_LINE     (64u << 10) /* "content" of a match is cut to this many bytes */
#define DT_FS_SEARCH_MAX_RESULTS 100000u    /* paths returned by search (then truncated) */
#define DT_FS_REPLACE_MAX_FILE  (64u << 20) /* larger files fail in replace (-EFBIG) */
#define DT_FS_REPLACE_MAX_FILES 10000u      /* entries of "files" in one replace request */
#define DT_FS_MODE_STR_MAX      24          /* buffer for dt_fs_mode_string() */
#define DT_FS_TIME_STR_MAX      64          /* buffer for dt_fs_time_go() / dt_fs_time_iso() */

/* Who we act for. Strings are borrowed and must outlive every call that gets the context. */
struct dt_fs_ctx {
    const char *root;    /* where etc/passwd and etc/group live: "" or "/" = the real root */
    const char *workdir; /* absolute; relative request paths are joined to it */
    uid_t uid;           /* owner given to new files and directories (the sandbox user); */
    gid_t gid;           /* (uid_t) -1 / (gid_t) -1 = leave as created (the agent's ids) */
    bool owner_names;    /* FileInfo owner/group: false = decimal ids, as Daytona's daemon sends;
                          * true = user/group names from ROOT when they resolve, else the id */
    unsigned list_max;   /* 0 = DT_FS_LIST_MAX (tests lower it) */
};

/* Turn a request path into the path we operate on, a new string in *ret (free()). Absolute paths
 * are kept, relative ones are joined to c->workdir. Duplicate slashes, "." components and a
 * trailing slash are removed; ".." is kept and left to the kernel (it means what it means on
 * disk, through symlinks). Returns 0, -EINVAL for an empty path, an embedded NUL (pass LEN =
 * the byte length; LEN = (size_t) -1 means strlen) or a relative path with no workdir,
 * -ENAMETOOLONG beyond PATH_MAX. */
int dt_fs_resolve(const struct dt_fs_ctx *c, const char *path, size_t len, char **ret,
                  struct dt_error **err);

/* Go's os.FileMode.String() of a stat mode into BUF (DT_FS_MODE_STR_MAX): type letters from
 * "dalTLDpSugct?" then rwxrwxrwx, "-" when no letter applies: "-rw-r--r--", "drwxr-xr-x",
 * "Lrwxrwxrwx", "prw-r--r--", "urwxr-xr-x" (setuid), "dtrwxrwxrwx" (sticky dir), "Dcrw-rw-rw-"
 * (char device), "Srwxr-xr-x" (socket). Returns BUF. */
char *dt_fs_mode_string(mode_t mode, char *buf);

/* Times as Daytona sends them, in UTC. dt_fs_time_go(): Go's time.Time.String() ("modTime"),
 * "2025-01-02 03:04:05.123456789 +0000 UTC"; dt_fs_time_iso(): RFC 3339 with nanoseconds as Go
 * marshals a time.Time ("modifiedAt"), "2025-01-02T03:04:05.123456789Z". In both, trailing zeros
 * of the fraction are dropped, and the dot too when it is zero. BUF is DT_FS_TIME_STR_MAX bytes.
 * Return BUF. */
char *dt_fs_time_go(const struct timespec *ts, char *buf);
char *dt_fs_time_iso(const struct timespec *ts, char *buf);

/* A new FileInfo object (caller owns the reference) for the file at PATH (already resolved)
 * whose stat data is ST: {name, path, isDir, size, mode, permissions, owner, group, modTime,
 * modifiedAt}. name = the last component of PATH ("/" for "/"); permissions = "%04o" of the
 * 0777 bits (Go's Mode().Perm(): setuid/sticky show only in "mode"). Strings that are not
 * UTF-8 get U+FFFD for each bad byte, as Go's JSON encoder does. Never fails. */
json_t *dt_fs_info_json(const struct dt_fs_ctx *c, const char *path, const struct stat *st);

/* GET /files/info: FileInfo of PATH, following symlinks like Daytona's os.Stat; a dangling
 * symlink is described by the link itself ("Lrwxrwxrwx") rather than failing. *ret: new
 * reference. -ENOENT/-EACCES/... with *err naming the path. */
int dt_fs_info(const struct dt_fs_ctx *c, const char *path, json_t **ret, struct dt_error **err);

/* GET /files: a new JSON array of FileInfo in *ret. DEPTH 1 = the entries of directory PATH;
 * DEPTH n also lists n-1 levels below (each FileInfo's "path" says where; order: a directory's
 * entry, then its content, names sorted bytewise). A PATH that is a symlink to a directory is
 * listed; symlinks met below are reported (their target's FileInfo, like Daytona) but never
 * descended, nor are other file systems' directories skipped (mount points are listed). Entries
 * that vanish while listing are skipped. Returns -EINVAL for DEPTH 0, -ENOTDIR when PATH is
 * not a directory, -E2BIG when more than c->list_max (DT_FS_LIST_MAX) entries would result. */
int dt_fs_list(const struct dt_fs_ctx *c, const char *path, unsigned depth, json_t **ret,
               struct dt_error **err);

/* Parse an octal mode string ("755", "0644", "4755"): 1-5 octal digits, at most 07777.
 * Returns 0 or -EINVAL. */
int dt_fs_parse_mode(const char *s, mode_t *ret);

/* POST /files/folder: mkdir -p. MODE is an octal string (NULL or "" = "755") applied exactly
 * (no umask) to the last directory when we create it; missing parents get 0755. Every
 * directory created is chowned to c->uid/c->gid. An existing directory is success and is left
 * untouched. -EINVAL for a bad mode, -ENOTDIR when a component is not a directory, -EEXIST when
 * PATH exists and is not a directory. */
int dt_fs_mkdir(const struct dt_fs_ctx *c, const char *path, const char *mode,
                struct dt_error **err);

/* DELETE /files: remove PATH. Without RECURSIVE, a file, symlink or empty directory is removed
 * and a non-empty directory fails with -ENOTEMPTY ("directory not empty: X; pass
 * recursive=true"). With RECURSIVE, a directory tree is removed without ever following a
 * symlink and without entering other file systems (a mount point inside fails with -EBUSY after
 * everything else went). A symlink PATH removes the link, never its target. "/" and paths whose
 * last component is "." or ".." are refused (-EINVAL); a missing PATH is -ENOENT. */
int dt_fs_delete(const struct dt_fs_ctx *c, const char *path, bool recursive,
                 struct dt_error **err);

/* POST /files/move: rename SRC (a symlink is moved as a link) to DST, which must not exist
 * (-EEXIST, as Daytona answers 409 "destination already exists"; no "move into directory"
 * like mv). DST's parent must exist (-ENOENT). Across file systems (EXDEV) the tree is copied
 * (regular files, directories, symlinks, fifos/devices; mode, owner and times kept), then SRC
 * removed; a failed copy removes what it made. */
int dt_fs_move(const struct dt_fs_ctx *c, const char *src, const char *dst,
               struct dt_error **err);

/* POST /files/permissions: chmod/chown PATH (following symlinks, like Daytona). OWNER and GROUP
 * are names (looked up in c->root) or decimal ids; MODE an octal string. NULL or "" = leave
 * alone. Everything is validated before anything is applied: an unknown user or group, or a bad
 * mode, is -EINVAL and changes nothing. */
int dt_fs_set_permissions(const struct dt_fs_ctx *c, const char *path, const char *owner,
                          const char *group, const char *mode, struct dt_error **err);

/* GET /files/find: grep PATTERN (a literal substring, as Daytona's strings.Contains; not a
 * regex) in the regular files under PATH (or in PATH itself when it is a file), recursively,
 * symlinks not followed. A new JSON array in *ret of {file, line (from 1), content (the line
 * without its newline, cut to DT_FS_FIND_MAX_LINE)}, one per matching line, files in walk order.
 * Skipped: files whose first 512 bytes hold a NUL (binary, as Daytona), files over
 * DT_FS_FIND_MAX_FILE, unreadable files and directories. Stops after DT_FS_FIND_MAX_RESULTS
 * matches or DT_FS_WALK_MAX_ENTRIES entries and then sets *truncated (may be NULL). -EINVAL for
 * an empty pattern, -ENOENT etc. for PATH itself. */
int dt_fs_find(const struct dt_fs_ctx *c, const char *path, const char *pattern, json_t **ret,
               bool *truncated, struct dt_error **err);

/* GET /files/search: files AND directories under directory PATH (recursive, symlinks not
 * followed, PATH itself excluded) whose name matches the glob PATTERN. A new object
 * {"files": [paths]} in *ret, walk order. Matching, as Daytona (old and new daemon) does:
 * - a PATTERN without "/" and without "**" matches the entry's name at any depth ("*.ts" finds
 *   every .ts file; the SDK documents this);
 * - otherwise it matches the path relative to PATH, where "**" spans any number of directories
 *   (e.g. "src/", "**", "/", "*.go" written together; or "**" "/" "button.tsx").
 * Both support * ? [...] (fnmatch, "*" does not cross "/", dot files are not special) and
 * {a,b} alternatives (up to 64 expansions). Truncation as for find. -EINVAL for an empty or
 * over-long pattern, -ENOTDIR when PATH is not a directory. */
int dt_fs_search(const struct dt_fs_ctx *c, const char *path, const char *pattern,
                 json_t **ret, bool *truncated, struct dt_error **err);

/* POST /files/replace: BODY is the request {files: [string], pattern: string (not empty),
 * newValue: string or null (= "")} (borrowed). Replaces every literal occurrence of pattern in
 * each file and writes it back atomically (temp file next to it + rename, keeping mode and
 * owner; a file without an occurrence is not rewritten). *ret: new array of
 * {file, success, error?} in request order, file as given in the request. Per-file failures go
 * in the array; the return value is -EINVAL (with *err) only for a malformed BODY. */
int dt_fs_replace(const struct dt_fs_ctx *c, const json_t *body, json_t **ret,
                  struct dt_error **err);

/* Upload: dt_fs_create_begin() resolves PATH, creates missing parents (0755, owned by
 * c->uid/gid) and opens a temp file next to the target, O_WRONLY|O_CLOEXEC, into u->fd. A new
 * file gets mode 0644 and c->uid/gid; an existing target keeps its mode and owner. A symlink
 * target is written through (its final target is replaced). The caller writes to u->fd, then
 * calls exactly one of dt_fs_create_commit() (renames the temp file over the target: readers see
 * the old or the new content, never a mix, and a failed upload never destroys the old file) or
 * dt_fs_create_abort() (unlinks the temp file). Both release everything in U; abort accepts a
 * zeroed or already-finished U. -EISDIR when the target is a directory. */
struct dt_fs_upload {
    int fd;        /* write the content here; owned by U */
    int dirfd;     /* the target's parent directory */
    char *path;    /* resolved target path (for messages and responses) */
    char *name;    /* target's last component */
    char *tmpname; /* temp file's name in dirfd */
};
int dt_fs_create_begin(const struct dt_fs_ctx *c, const char *path, struct dt_fs_upload *u,
                       struct dt_error **err);
int dt_fs_create_commit(struct dt_fs_upload *u, struct dt_error **err);
void dt_fs_create_abort(struct dt_fs_upload *u);

/* Download: open PATH (following symlinks) for reading. *ret_fd: O_RDONLY|O_CLOEXEC, owned by
 * the caller; *ret_st its fstat (for Content-Length). -EISDIR for a directory, -EINVAL for
 * anything but a regular file (a fifo or device would block or never end). */
int dt_fs_open_read(const struct dt_fs_ctx *c, const char *path, int *ret_fd,
                    struct stat *ret_st, struct dt_error **err);

#endif
