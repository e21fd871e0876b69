/* SPDX-License-Identifier: Apache-2.0 */
/* OCI layer extraction: an outer libarchive reader (raw format + gzip/zstd filters) turns the
 * blob into the uncompressed stream, which feeds an inner tar reader through a read callback;
 * both ends are hashed on the way. Entries are written beneath a directory fd without ever
 * following a symlink, as an overlayfs lower layer. */
#include "dt/layer.h"

#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <openssl/evp.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "dt/fs-util.h"
#include "dt/macros.h"
#include "dt/xalloc.h"
#include "dt/banned.h"

#define READ_CHUNK (128 * 1024)
#define MAX_XATTR_VALUE (64 * 1024)
#define MAX_DIR_PATH_BYTES (128 * 1024 * 1024)

struct dir_time {
    char *path; /* normalised, "" = the layer root */
    struct timespec ts[2];
};

struct unpack {
    int fd;
    int dirfd;
    uint64_t max_bytes, max_entries, max_stream;
    const struct dt_layer_opts *opts;

    struct archive *outer, *inner;
    EVP_MD_CTX *raw_md, *tar_md;
    unsigned char buf[READ_CHUNK];
    bool outer_eof;

    /* The first error met inside a callback: libarchive only sees "-1", so keep ours. */
    int cb_error;
    struct dt_error *cb_err;

    struct dir_time *dirs;
    size_t n_dirs, alloc_dirs, dir_path_bytes;

    struct dt_layer_result res;
};

static int
hash_hex(EVP_MD_CTX *md, char out[72])
{
    unsigned char d[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    if (EVP_DigestFinal_ex(md, d, &n) != 1 || n != 32)
        return -EIO;
    memcpy(out, "sha256:", 7);
    for (unsigned i = 0; i < n; i++)
        snprintf(out + 7 + 2 * i, 3, "%02x", d[i]);
    return 0;
}

/* Outer read callback: raw blob bytes from the fd, hashed into the digest. */
static la_ssize_t
outer_read(struct archive *a, void *userdata, const void **buffer)
{
    struct unpack *u = userdata;
    ssize_t n;
    do
        n = read(u->fd, u->buf, sizeof(u->buf));
    while (n < 0 && errno == EINTR);
    if (n < 0) {
        int e = errno;
        if (!u->cb_error)
            u->cb_error = dt_error_errno(&u->cb_err, e, "layer: reading blob");
        if (a)
            archive_set_error(a, e, "read error");
        return -1;
    }
    if (n > 0) {
        EVP_DigestUpdate(u->raw_md, u->buf, (size_t) n);
        u->res.compressed_bytes += (uint64_t) n;
        if (u->opts && u->opts->progress)
            u->opts->progress(u->res.compressed_bytes, u->opts->userdata);
    }
    *buffer = u->buf;
    return n;
}

/* Inner read callback: uncompressed stream bytes from the outer reader, hashed into diff_id. */
static la_ssize_t
inner_read(struct archive *a, void *userdata, const void **buffer)
{
    struct unpack *u = userdata;
    if (u->outer_eof)
        return 0;
    for (;;) {
        const void *b;
        size_t size;
        la_int64_t off;
        int r = archive_read_data_block(u->outer, &b, &size, &off);
        if (r == ARCHIVE_EOF) {
            u->outer_eof = true;
            return 0;
        }
        if (r < ARCHIVE_WARN) {
            if (!u->cb_error)
                u->cb_error = dt_error_set(&u->cb_err, EINVAL,
                                           "layer: bad or truncated compressed stream: %s",
                                           archive_error_string(u->outer) ?: "unknown error");
            if (a)
                archive_set_error(a, EINVAL, "decompression failed");
            return -1;
        }
        if (size == 0)
            continue;
        u->res.tar_bytes += size;
        if (u->res.tar_bytes > u->max_stream) {
            if (!u->cb_error)
                u->cb_error = dt_error_set(&u->cb_err, EFBIG,
                                           "layer: uncompressed stream larger than %llu bytes",
                                           (unsigned long long) u->max_stream);
            if (a)
                archive_set_error(a, EFBIG, "stream too large");
            return -1;
        }
        EVP_DigestUpdate(u->tar_md, b, size);
        *buffer = b;
        return (la_ssize_t) size;
    }
}

/* Normalise an entry path into OUT (size DT_LAYER_MAX_PATH + 1): no leading "/" or "./", no
 * empty or "." components, ".." folded lexically (safe: nothing is resolved on disk) and
 * refused when it climbs above the root. "" means the layer root. */
static int
normalize_path(const char *in, char *out, const char *what, struct dt_error **err)
{
    size_t len = 0;
    const char *p = in;
    while (*p) {
        while (*p == '/')
            p++;
        if (!*p)
            break;
        const char *e = strchrnul(p, '/');
        size_t n = (size_t) (e - p);
        if (n == 1 && p[0] == '.') {
            /* skip */
        } else if (n == 2 && p[0] == '.' && p[1] == '.') {
            if (len == 0)
                return dt_error_set(err, EINVAL, "layer entry '%s': %s climbs out of the layer",
                                    in, what);
            while (len > 0 && out[len - 1] != '/')
                len--;
            if (len > 0)
                len--; /* the separator */
        } else {
            if (n > DT_LAYER_MAX_NAME)
                return dt_error_set(err, E2BIG,
                                    "layer entry '%.64s...': a name is longer than %d bytes", in,
                                    DT_LAYER_MAX_NAME);
            if (len + (len > 0) + n > DT_LAYER_MAX_PATH)
                return dt_error_set(err, E2BIG, "layer entry '%.64s...': %s longer than %d bytes",
                                    in, what, DT_LAYER_MAX_PATH);
            if (len > 0)
                out[len++] = '/';
            memcpy(out + len, p, n);
            len += n;
        }
        p = e;
    }
    out[len] = 0;
    return 0;
}

static int
openat2_beneath(int dirfd, const char *name, int flags)
{
    struct open_how how = {
        /* No O_NOFOLLOW: with O_DIRECTORY it turns a symlink into ENOTDIR; RESOLVE_NO_SYMLINKS
         * refuses it with ELOOP instead, which is the clearer error. */
        .flags = (uint64_t) (flags | O_CLOEXEC),
        .resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS |
                   RESOLVE_NO_XDEV,
    };
    long r;
    /* EAGAIN: a concurrent rename raced the RESOLVE_BENEATH check; retry a few times. */
    int tries = 0;
    do
        r = syscall(SYS_openat2, dirfd, name, &how, sizeof(how));
    while (r < 0 && errno == EAGAIN && ++tries < 8);
    return r < 0 ? -errno : (int) r;
}

/* Open directory PATH (normalised, "" = root) below DIRFD one component at a time, never
 * following a symlink; with CREATE, missing directories are made (0755, 0:0). Returns an
 * O_RDONLY directory fd. ENTRY names the tar entry for messages. */
static int
open_dir(struct unpack *u, const char *path, bool create, const char *entry,
         struct dt_error **err)
{
    int fd = fcntl(u->dirfd, F_DUPFD_CLOEXEC, 3);
    if (fd < 0)
        return dt_error_errno(err, errno, "layer: dup directory fd");
    char comp[DT_LAYER_MAX_NAME + 1];
    const char *p = path;
    while (*p) {
        const char *e = strchrnul(p, '/');
        size_t n = (size_t) (e - p);
        DT_ASSERT(n > 0 && n <= DT_LAYER_MAX_NAME);
        memcpy(comp, p, n);
        comp[n] = 0;
        int nfd = openat2_beneath(fd, comp, O_RDONLY | O_DIRECTORY);
        if (nfd == -ENOENT && create) {
            if (mkdirat(fd, comp, 0755) < 0 && errno != EEXIST) {
                int r = dt_error_errno(err, errno, "layer entry '%s': creating parent '%.*s'",
                                       entry, (int) (e - path), path);
                safe_close(fd);
                return r;
            }
            /* Explicit owner and mode: the umask must not leak into the image. */
            if (fchownat(fd, comp, 0, 0, AT_SYMLINK_NOFOLLOW) < 0 ||
                fchmodat(fd, comp, 0755, 0) < 0) {
                int r = dt_error_errno(err, errno, "layer entry '%s': setting up parent '%.*s'",
                                       entry, (int) (e - path), path);
                safe_close(fd);
                return r;
            }
            nfd = openat2_beneath(fd, comp, O_RDONLY | O_DIRECTORY);
        }
        safe_close(fd);
        if (nfd < 0) {
            if (nfd == -ELOOP)
                return dt_error_set(err, ELOOP,
                                    "layer entry '%s': '%.*s' is a symlink; refusing to follow "
                                    "it",
                                    entry, (int) (e - path), path);
            return dt_error_errno(err, nfd, "layer entry '%s': opening directory '%.*s'", entry,
                                  (int) (e - path), path);
        }
        fd = nfd;
        p = *e ? e + 1 : e;
    }
    return fd;
}

/* Split normalised PATH into parent (written into PARENT) and the last component. */
static const char *
split_path(const char *path, char *parent)
{
    const char *slash = strrchr(path, '/');
    if (!slash) {
        parent[0] = 0;
        return path;
    }
    memcpy(parent, path, (size_t) (slash - path));
    parent[slash - path] = 0;
    return slash + 1;
}

static bool
xattr_allowed(const char *name)
{
    /* user.* is data; security.capability is how file capabilities ship in images. trusted.*
     * would let an image forge overlay metadata; security.selinux etc. are host policy. */
    return strncmp(name, "user.", 5) == 0 || strcmp(name, "security.capability") == 0;
}

/* Ownership, xattrs, mode, in that order: chown clears setuid/setgid and security.capability,
 * so both must come after it. FD is an open file or directory. */
static int
apply_meta_fd(int fd, struct archive_entry *ae, uid_t uid, gid_t gid, const char *entry,
              struct dt_error **err)
{
    if (fchown(fd, uid, gid) < 0)
        return dt_error_errno(err, errno, "layer entry '%s': chown", entry);
    const char *name;
    const void *value;
    size_t size;
    archive_entry_xattr_reset(ae);
    while (archive_entry_xattr_next(ae, &name, &value, &size) == ARCHIVE_OK) {
        if (!name || !xattr_allowed(name))
            continue;
        if (size > MAX_XATTR_VALUE)
            return dt_error_set(err, E2BIG, "layer entry '%s': xattr %s is too large", entry,
                                name);
        if (fsetxattr(fd, name, value, size, 0) < 0)
            return dt_error_errno(err, errno, "layer entry '%s': setting xattr %s", entry, name);
    }
    if (fchmod(fd, archive_entry_mode(ae) & 07777) < 0)
        return dt_error_errno(err, errno, "layer entry '%s': chmod", entry);
    return 0;
}

static void
entry_times(struct archive_entry *ae, struct timespec ts[2])
{
    ts[0] = (struct timespec) { .tv_nsec = UTIME_OMIT };
    ts[1] = (struct timespec) { .tv_nsec = UTIME_OMIT };
    if (archive_entry_atime_is_set(ae))
        ts[0] = (struct timespec) { archive_entry_atime(ae), archive_entry_atime_nsec(ae) };
    if (archive_entry_mtime_is_set(ae)) {
        ts[1] = (struct timespec) { archive_entry_mtime(ae), archive_entry_mtime_nsec(ae) };
        if (!archive_entry_atime_is_set(ae))
            ts[0] = ts[1];
    }
    for (int i = 0; i < 2; i++)
        if (ts[i].tv_nsec != UTIME_OMIT && (ts[i].tv_nsec < 0 || ts[i].tv_nsec >= 1000000000))
            ts[i].tv_nsec = 0;
}

static int
write_file(struct unpack *u, int pfd, const char *name, struct archive_entry *ae, uid_t uid,
           gid_t gid, const char *entry, struct dt_error **err)
{
    int64_t size = archive_entry_size_is_set(ae) ? archive_entry_size(ae) : 0;
    if (size < 0)
        return dt_error_set(err, EINVAL, "layer entry '%s': negative size", entry);
    if ((uint64_t) size > u->max_bytes - u->res.unpacked_bytes)
        return dt_error_set(err, EFBIG, "layer entry '%s': layer content exceeds %llu bytes",
                            entry, (unsigned long long) u->max_bytes);
    u->res.unpacked_bytes += (uint64_t) size;

    _cleanup_close_ int fd =
            openat(pfd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0)
        return dt_error_errno(err, errno, "layer entry '%s': create", entry);
    int64_t end = 0; /* where the data written so far ends */
    for (;;) {
        const void *b;
        size_t n;
        la_int64_t off;
        int r = archive_read_data_block(u->inner, &b, &n, &off);
        if (r == ARCHIVE_EOF)
            break;
        if (r < ARCHIVE_WARN) {
            if (u->cb_error) /* the real cause, from a callback */
                return 0;
            return dt_error_set(err, EINVAL, "layer entry '%s': reading data: %s", entry,
                                archive_error_string(u->inner) ?: "unknown error");
        }
        /* Sparse entries come as (offset, data) pairs: bound them by the declared size. */
        if (off < 0 || (uint64_t) off > (uint64_t) size || n > (uint64_t) (size - off))
            return dt_error_set(err, EINVAL, "layer entry '%s': data beyond its size", entry);
        const char *c = b;
        while (n > 0) {
            ssize_t w = pwrite(fd, c, n, off);
            if (w < 0) {
                if (errno == EINTR)
                    continue;
                return dt_error_errno(err, errno, "layer entry '%s': write", entry);
            }
            c += w;
            n -= (size_t) w;
            off += w;
        }
        if (off > end)
            end = off;
    }
    /* Only a trailing hole (a sparse entry) needs the size set: one syscall less per file. */
    if (end < size && ftruncate(fd, size) < 0)
        return dt_error_errno(err, errno, "layer entry '%s': truncate", entry);
    int r = apply_meta_fd(fd, ae, uid, gid, entry, err);
    if (r < 0)
        return r;
    struct timespec ts[2];
    entry_times(ae, ts);
    if (futimens(fd, ts) < 0)
        return dt_error_errno(err, errno, "layer entry '%s': setting times", entry);
    return 0;
}

static int
make_dir(struct unpack *u, int pfd, const char *name, const char *path,
         struct archive_entry *ae, uid_t uid, gid_t gid, const char *entry,
         struct dt_error **err)
{
    _cleanup_close_ int fd = -EBADF;
    if (name) {
        if (mkdirat(pfd, name, 0700) < 0 && errno != EEXIST)
            return dt_error_errno(err, errno, "layer entry '%s': mkdir", entry);
        fd = openat2_beneath(pfd, name, O_RDONLY | O_DIRECTORY);
        if (fd < 0)
            return dt_error_errno(err, fd, "layer entry '%s': open directory", entry);
    } else {
        /* The layer root itself ("./"). */
        fd = fcntl(pfd, F_DUPFD_CLOEXEC, 3);
        if (fd < 0)
            return dt_error_errno(err, errno, "layer: dup directory fd");
    }
    int r = apply_meta_fd(fd, ae, uid, gid, entry, err);
    if (r < 0)
        return r;
    /* Directory mtimes change as children are added: set them all at the very end. The list is
     * bounded: 1,000,000 directories with 4 KiB paths would otherwise pin 4 GiB. */
    u->dir_path_bytes += strlen(path) + 1;
    if (u->dir_path_bytes > MAX_DIR_PATH_BYTES)
        return dt_error_set(err, E2BIG, "layer entry '%s': too many directories (paths of more "
                            "than %d MiB in total)", entry, MAX_DIR_PATH_BYTES >> 20);
    if (u->n_dirs == u->alloc_dirs) {
        u->alloc_dirs = u->alloc_dirs ? u->alloc_dirs * 2 : 64;
        u->dirs = xreallocarray(u->dirs, u->alloc_dirs, sizeof(*u->dirs));
    }
    u->dirs[u->n_dirs].path = xstrdup(path);
    entry_times(ae, u->dirs[u->n_dirs].ts);
    u->n_dirs++;
    return 0;
}

static int
make_hardlink(struct unpack *u, int pfd, const char *name, const char *target_raw,
              const char *entry, struct dt_error **err)
{
    char target[DT_LAYER_MAX_PATH + 1], tparent[DT_LAYER_MAX_PATH + 1];
    int r = normalize_path(target_raw, target, "hard link target", err);
    if (r < 0)
        return r;
    if (!target[0])
        return dt_error_set(err, EINVAL, "layer entry '%s': hard link to the layer root",
                            entry);
    const char *tname = split_path(target, tparent);
    _cleanup_close_ int tfd = open_dir(u, tparent, false, entry, err);
    if (tfd < 0)
        return tfd;
    struct stat st;
    if (fstatat(tfd, tname, &st, AT_SYMLINK_NOFOLLOW) < 0)
        return dt_error_errno(err, errno, "layer entry '%s': hard link target '%s'", entry,
                              target);
    /* The layer directory started empty, so whatever is there came from this layer. */
    if (!S_ISREG(st.st_mode))
        return dt_error_set(err, EINVAL,
                            "layer entry '%s': hard link target '%s' is not a regular file",
                            entry, target);
    if (linkat(tfd, tname, pfd, name, 0) < 0)
        return dt_error_errno(err, errno, "layer entry '%s': link to '%s'", entry, target);
    return 0;
}

/* Make room for NAME in PFD: anything there is removed, except that a directory stays when a
 * directory replaces it (its metadata is updated instead). */
static int
clear_name(int pfd, const char *name, bool keep_dir, const char *entry, struct dt_error **err)
{
    struct stat st;
    if (fstatat(pfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
        if (errno == ENOENT)
            return 0;
        return dt_error_errno(err, errno, "layer entry '%s': stat", entry);
    }
    if (keep_dir && S_ISDIR(st.st_mode))
        return 0;
    int r = rm_rf_at(pfd, name);
    if (r < 0)
        return dt_error_errno(err, r, "layer entry '%s': removing the earlier entry", entry);
    return 0;
}

static int
check_ids(struct archive_entry *ae, const char *entry, uid_t *uid, gid_t *gid,
          struct dt_error **err)
{
    int64_t u = archive_entry_uid(ae), g = archive_entry_gid(ae);
    if (u < 0 || u > 65535 || g < 0 || g > 65535)
        return dt_error_set(err, EINVAL,
                            "layer entry '%s': owner %lld:%lld out of range (0..65535)", entry,
                            (long long) u, (long long) g);
    *uid = (uid_t) u;
    *gid = (gid_t) g;
    return 0;
}

static int
unpack_entry(struct unpack *u, struct archive_entry *ae, struct dt_error **err)
{
    const char *raw = archive_entry_pathname(ae);
    if (!raw)
        return dt_error_set(err, EINVAL, "layer: entry %llu has no usable path",
                            (unsigned long long) u->res.entries);
    char path[DT_LAYER_MAX_PATH + 1], parent[DT_LAYER_MAX_PATH + 1];
    int r = normalize_path(raw, path, "path", err);
    if (r < 0)
        return r;
    const char *entry = path[0] ? path : ".";
    const char *hardlink = archive_entry_hardlink(ae);
    mode_t type = archive_entry_filetype(ae);

    uid_t uid = 0;
    gid_t gid = 0;
    r = check_ids(ae, entry, &uid, &gid, err);
    if (r < 0)
        return r;

    if (!path[0]) {
        if (type != AE_IFDIR || hardlink)
            return dt_error_set(err, EINVAL, "layer entry '%s': the layer root must be a "
                                "directory", raw);
        return make_dir(u, u->dirfd, NULL, "", ae, uid, gid, entry, err);
    }

    const char *name = split_path(path, parent);
    if (!hardlink && (type == AE_IFCHR || type == AE_IFBLK || type == AE_IFSOCK) &&
        strncmp(name, ".wh.", 4) != 0) {
        u->res.skipped_devices++;
        return 0;
    }

    _cleanup_close_ int pfd = open_dir(u, parent, true, entry, err);
    if (pfd < 0)
        return pfd;

    if (strncmp(name, ".wh.", 4) == 0) {
        const char *target = name + 4;
        if (strcmp(target, ".wh..opq") == 0) {
            if (fsetxattr(pfd, "trusted.overlay.opaque", "y", 1, 0) < 0)
                return dt_error_errno(err, errno, "layer entry '%s': marking '%s' opaque",
                                      entry, parent[0] ? parent : ".");
            return 0;
        }
        if (!target[0] || strcmp(target, ".") == 0 || strcmp(target, "..") == 0 ||
            strncmp(target, ".wh.", 4) == 0)
            return dt_error_set(err, EINVAL, "layer entry '%s': invalid whiteout", entry);
        r = clear_name(pfd, target, false, entry, err);
        if (r < 0)
            return r;
        if (mknodat(pfd, target, S_IFCHR | 0, makedev(0, 0)) < 0)
            return dt_error_errno(err, errno, "layer entry '%s': creating whiteout", entry);
        return 0;
    }

    if (hardlink) {
        r = clear_name(pfd, name, false, entry, err);
        if (r < 0)
            return r;
        return make_hardlink(u, pfd, name, hardlink, entry, err);
    }

    r = clear_name(pfd, name, type == AE_IFDIR, entry, err);
    if (r < 0)
        return r;

    struct timespec ts[2];
    switch (type) {
    case AE_IFREG:
        return write_file(u, pfd, name, ae, uid, gid, entry, err);
    case AE_IFDIR:
        return make_dir(u, pfd, name, path, ae, uid, gid, entry, err);
    case AE_IFLNK: {
        const char *target = archive_entry_symlink(ae);
        if (!target || !target[0])
            return dt_error_set(err, EINVAL, "layer entry '%s': symlink without target", entry);
        if (strlen(target) > DT_LAYER_MAX_PATH)
            return dt_error_set(err, E2BIG, "layer entry '%s': symlink target too long", entry);
        /* The target is just data: it is resolved inside the sandbox's root at run time. */
        if (symlinkat(target, pfd, name) < 0)
            return dt_error_errno(err, errno, "layer entry '%s': symlink", entry);
        if (fchownat(pfd, name, uid, gid, AT_SYMLINK_NOFOLLOW) < 0)
            return dt_error_errno(err, errno, "layer entry '%s': chown", entry);
        entry_times(ae, ts);
        if (utimensat(pfd, name, ts, AT_SYMLINK_NOFOLLOW) < 0)
            return dt_error_errno(err, errno, "layer entry '%s': setting times", entry);
        return 0;
    }
    case AE_IFIFO:
        if (mknodat(pfd, name, S_IFIFO | 0600, 0) < 0)
            return dt_error_errno(err, errno, "layer entry '%s': mkfifo", entry);
        if (fchownat(pfd, name, uid, gid, AT_SYMLINK_NOFOLLOW) < 0 ||
            fchmodat(pfd, name, archive_entry_mode(ae) & 07777, 0) < 0)
            return dt_error_errno(err, errno, "layer entry '%s': setting owner/mode", entry);
        entry_times(ae, ts);
        if (utimensat(pfd, name, ts, AT_SYMLINK_NOFOLLOW) < 0)
            return dt_error_errno(err, errno, "layer entry '%s': setting times", entry);
        return 0;
    default:
        return dt_error_set(err, EINVAL, "layer entry '%s': unsupported file type 0%o", entry,
                            (unsigned) type);
    }
}

static int
finish_dirs(struct unpack *u, struct dt_error **err)
{
    for (size_t i = 0; i < u->n_dirs; i++) {
        struct dt_error *ignored = NULL;
        _cleanup_close_ int fd = open_dir(u, u->dirs[i].path, false, u->dirs[i].path, &ignored);
        dt_error_free(ignored);
        /* Removed or replaced by a later entry: nothing to do. */
        if (fd == -ENOENT || fd == -ENOTDIR || fd == -ELOOP)
            continue;
        if (fd < 0)
            return dt_error_errno(err, fd, "layer entry '%s': reopening directory",
                                  u->dirs[i].path[0] ? u->dirs[i].path : ".");
        if (futimens(fd, u->dirs[i].ts) < 0)
            return dt_error_errno(err, errno, "layer entry '%s': setting times",
                                  u->dirs[i].path[0] ? u->dirs[i].path : ".");
    }
    return 0;
}

static int
run(struct unpack *u, struct dt_error **err)
{
    struct archive_entry *ae;
    int r;

    u->outer = archive_read_new();
    u->inner = archive_read_new();
    if (!u->outer || !u->inner)
        return dt_error_set(err, ENOMEM, "layer: out of memory");
    /* Only the compressions OCI allows: every extra decoder is attack surface. */
    archive_read_support_filter_gzip(u->outer);
    archive_read_support_filter_zstd(u->outer);
    archive_read_support_format_raw(u->outer);
    archive_read_support_format_empty(u->outer);
    archive_read_support_format_tar(u->inner);

    r = archive_read_open(u->outer, u, NULL, outer_read, NULL);
    if (r != ARCHIVE_OK)
        goto outer_fail;
    r = archive_read_next_header(u->outer, &ae);
    if (r == ARCHIVE_EOF)
        u->outer_eof = true; /* empty input: the inner reader will say so */
    else if (r < ARCHIVE_WARN)
        goto outer_fail;

    r = archive_read_open(u->inner, u, NULL, inner_read, NULL);
    if (r != ARCHIVE_OK)
        goto inner_fail;
    for (;;) {
        r = archive_read_next_header(u->inner, &ae);
        if (r == ARCHIVE_EOF)
            break;
        if (r < ARCHIVE_WARN)
            goto inner_fail;
        if (++u->res.entries > u->max_entries)
            return dt_error_set(err, E2BIG, "layer: more than %llu entries",
                                (unsigned long long) u->max_entries);
        r = unpack_entry(u, ae, err);
        if (u->cb_error)
            goto cb_fail;
        if (r < 0)
            return r;
    }

    /* The tar end marker is not the end of the stream: hash (and bound) any padding after it
     * so the diff_id covers the whole stream, then the rest of the blob for the digest. */
    for (;;) {
        const void *b;
        la_ssize_t n = inner_read(NULL, u, &b);
        if (n < 0)
            goto cb_fail;
        if (n == 0)
            break;
    }
    for (;;) {
        const void *b;
        la_ssize_t n = outer_read(NULL, u, &b);
        if (n < 0)
            goto cb_fail;
        if (n == 0)
            break;
    }
    return finish_dirs(u, err);

outer_fail:
    if (u->cb_error)
        goto cb_fail;
    return dt_error_set(err, EINVAL, "layer: not a gzip, zstd or plain stream: %s",
                        archive_error_string(u->outer) ?: "unknown error");
inner_fail:
    if (u->cb_error)
        goto cb_fail;
    return dt_error_set(err, EINVAL, "layer: bad or truncated tar stream: %s",
                        archive_error_string(u->inner) ?: "unknown error");
cb_fail:
    if (err && *err) /* an entry's own error came first */
        return -(*err)->code;
    r = u->cb_error;
    if (err) {
        *err = u->cb_err;
        u->cb_err = NULL;
    }
    return r;
}

int
dt_layer_unpack(int fd, int dirfd, const struct dt_layer_opts *opts,
                struct dt_layer_result *res, struct dt_error **err)
{
    struct unpack *u = xcalloc(1, sizeof(*u));
    u->fd = fd;
    u->dirfd = dirfd;
    u->opts = opts;
    u->max_bytes = opts && opts->max_bytes ? opts->max_bytes : DT_LAYER_DEFAULT_MAX_BYTES;
    u->max_entries = opts && opts->max_entries ? opts->max_entries
                                               : DT_LAYER_DEFAULT_MAX_ENTRIES;
    /* Bound the uncompressed stream too (a gzip bomb of headers or padding): file content plus
     * generous room for headers (pax headers, long names) of every entry. */
    uint64_t hdrs;
    if (__builtin_mul_overflow(u->max_entries, UINT64_C(16384), &hdrs) ||
        __builtin_add_overflow(u->max_bytes, hdrs, &u->max_stream) ||
        __builtin_add_overflow(u->max_stream, UINT64_C(1) << 20, &u->max_stream))
        u->max_stream = UINT64_MAX;

    int r;
    u->raw_md = EVP_MD_CTX_new();
    u->tar_md = EVP_MD_CTX_new();
    if (!u->raw_md || !u->tar_md || EVP_DigestInit_ex(u->raw_md, EVP_sha256(), NULL) != 1 ||
        EVP_DigestInit_ex(u->tar_md, EVP_sha256(), NULL) != 1) {
        r = dt_error_set(err, ENOMEM, "layer: cannot set up sha256");
        goto out;
    }

    r = run(u, err);
    if (r >= 0 && (hash_hex(u->raw_md, u->res.digest) < 0 ||
                   hash_hex(u->tar_md, u->res.diff_id) < 0))
        r = dt_error_set(err, EIO, "layer: computing sha256 failed");
    if (r >= 0 && res)
        *res = u->res;

out:
    if (u->inner)
        archive_read_free(u->inner);
    if (u->outer)
        archive_read_free(u->outer);
    EVP_MD_CTX_free(u->raw_md);
    EVP_MD_CTX_free(u->tar_md);
    dt_error_free(u->cb_err);
    for (size_t i = 0; i < u->n_dirs; i++)
        free(u->dirs[i].path);
    free(u->dirs);
    free(u);
    return r < 0 ? r : 0;
}
