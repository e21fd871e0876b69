/* SPDX-License-Identifier: Apache-2.0 */
/* Shared test helpers on top of cmocka: skipping (exit 77), temporary directories, a busybox
 * root filesystem with the static probe inside, and running a command to capture its output. */
#ifndef DT_TESTLIB_H
#define DT_TESTLIB_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
/* cmocka needs the three headers above first. */
#include <cmocka.h>
#include <stdbool.h>

#define DT_TEST_SKIP 77

/* Exit with 77 (CTest's "skipped") printing WHY, unless running as root. */
void dt_test_require_root(void);
/* Exit with 77 printing WHY. */
_Noreturn void dt_test_skip(const char *why);

/* Create a fresh temporary directory under /tmp; returns a malloc'ed path. Aborts on failure. */
char *dt_test_mkdtemp(const char *prefix);
/* rm -rf PATH (best effort, does not cross mount points). */
void dt_test_rm_rf(const char *path);

/* Build a root filesystem at a new temp dir: busybox (static) with its applets linked, the probe
 * at /probe, /etc/passwd with root and daytona (uid 1000), /etc/group, /tmp. Returns the path
 * (malloc'ed). Skips the test if busybox-static or the probe is missing. */
char *dt_test_make_rootfs(void);

/* Run ARGV (argv[0] is a path) with stdin from /dev/null; capture stdout into *out (malloc'ed,
 * NUL-terminated) when OUT is not NULL. Returns the raw wait status, or -errno. */
int dt_test_run(char *const argv[], char **out);

/* The content of DIR/FILE without trailing newlines (malloc'ed), or NULL when unreadable. */
char *dt_test_read_trimmed(const char *dir, const char *file);

/* Count lines in /proc/self/mountinfo, entries in a directory etc. for leak checks. */
int dt_test_count_lines(const char *path);
int dt_test_count_dir(const char *path);

#endif
