/* SPDX-License-Identifier: Apache-2.0 */
/* User and group lookups from the image's own /etc/passwd and /etc/group. The agent is a static
 * binary running in images with any (or no) libc, so it never calls getpwnam(): NSS would load
 * shared objects that do not exist in the sandbox. Files are read afresh on each call (they are
 * small and users edit them with adduser); lines that do not parse are skipped. */
#ifndef DT_AGENT_PASSWD_H
#define DT_AGENT_PASSWD_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#define DT_PASSWD_MAX_FILE (4u << 20) /* larger files are refused (-EFBIG) */

struct dt_passwd {
    char *name;
    uid_t uid;
    gid_t gid;
    char *home;  /* "" when the field is empty */
    char *shell; /* "" when the field is empty */
};

/* Free the strings of PW (not PW itself); safe on a zeroed struct. */
void dt_passwd_done(struct dt_passwd *pw);

/* Look up a user in ROOT "/etc/passwd" (ROOT is "" or "/" for the real root; tests pass a temp
 * dir) by NAME, or by UID when NAME is NULL. Returns 0 and fills *ret (free with dt_passwd_done()),
 * -ENOENT when there is no such user or no file (a file that is not a regular one, such as a FIFO,
 * counts as none and is never opened for blocking reads), -EFBIG above DT_PASSWD_MAX_FILE, or
 * another -errno from reading the file. Blocking file I/O: small local files only. */
int dt_passwd_lookup(const char *root, const char *name, uid_t uid, struct dt_passwd *ret);

/* Look up a group in ROOT "/etc/group" by NAME, or by GID when NAME is NULL. On success *ret_gid
 * gets the gid and, when RET_NAME is not NULL, *ret_name a malloc'ed name. -ENOENT as above. */
int dt_group_lookup(const char *root, const char *name, gid_t gid, gid_t *ret_gid, char **ret_name);

/* Supplementary groups of user NAME (whose primary group is GID) from ROOT "/etc/group": fills
 * up to MAX gids into GIDS (GID first, no duplicates, further ones dropped) and returns the count,
 * or -errno (-EINVAL when MAX < 1). A missing /etc/group gives just GID (count 1). */
int dt_group_list(const char *root, const char *name, gid_t gid, gid_t *gids, int max);

/* Parse a user spec for chown-like calls: a name (looked up) or a decimal id. Returns 0, -ENOENT
 * for an unknown name, -EINVAL for an empty or malformed spec. */
int dt_passwd_parse_uid(const char *root, const char *spec, uid_t *ret);
int dt_group_parse_gid(const char *root, const char *spec, gid_t *ret);

/* Internal, exposed for tests and the fuzzer: the same lookups on file contents BUF of LEN bytes
 * (BUF need not be NUL-terminated; NUL bytes inside a line make that line invalid). Same results
 * as the functions above, minus reading the file. */
int dt_passwd_parse_buffer(const char *buf, size_t len, const char *name, uid_t uid,
                           struct dt_passwd *ret);
int dt_group_parse_buffer(const char *buf, size_t len, const char *name, gid_t gid,
                          gid_t *ret_gid, char **ret_name);
int dt_group_list_buffer(const char *buf, size_t len, const char *name, gid_t gid, gid_t *gids,
                         int max);

#endif
