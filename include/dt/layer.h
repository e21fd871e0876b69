/* SPDX-License-Identifier: Apache-2.0 */
/* The OCI layer extractor: streams one layer blob (tar, plain or gzip/zstd compressed) from an fd
 * into an empty directory laid out as an overlayfs lower layer, hashing while it reads. */
#ifndef DT_LAYER_H
#define DT_LAYER_H

#include <stdint.h>

#include "dt/error.h"

#define DT_LAYER_DEFAULT_MAX_BYTES   (UINT64_C(64) << 30) /* 64 GiB of file content */
#define DT_LAYER_DEFAULT_MAX_ENTRIES UINT64_C(1000000)
#define DT_LAYER_MAX_PATH            4096 /* bytes of a normalised entry path */
#define DT_LAYER_MAX_NAME            255  /* bytes of one path component */

struct dt_layer_opts {
    uint64_t max_bytes;   /* total size of regular files; 0 = DT_LAYER_DEFAULT_MAX_BYTES */
    uint64_t max_entries; /* tar entries (headers); 0 = DT_LAYER_DEFAULT_MAX_ENTRIES */
    /* Called from time to time (every read of the fd) with the raw bytes read so far; may be
     * NULL. Must not call back into the extractor. */
    void (*progress)(uint64_t compressed_bytes, void *userdata);
    void *userdata;
};

struct dt_layer_result {
    char digest[72];  /* "sha256:<hex>" of every byte read from fd (the blob as stored) */
    char diff_id[72]; /* "sha256:<hex>" of the uncompressed stream, incl. padding after the tar */
    uint64_t compressed_bytes; /* bytes read from fd */
    uint64_t tar_bytes;        /* bytes of the uncompressed stream */
    uint64_t unpacked_bytes;   /* sum of regular file sizes */
    uint64_t entries;          /* tar entries processed (whiteouts and skipped ones included) */
    uint64_t skipped_devices;  /* char/block devices (other than whiteouts) and sockets */
};

/* Read the layer blob from FD until EOF (blocking; FD is not closed) and unpack it below DIRFD,
 * which should be an empty directory opened O_RDONLY|O_DIRECTORY. Compression (gzip, zstd, none)
 * is detected from the bytes. Entry paths are normalised ("/etc/x", "./etc/x" -> etc/x); ".."
 * may not climb out; nothing is ever created or modified outside DIRFD: parents are resolved
 * without following any symlink, and hard links must point at a regular file of this layer.
 * OCI whiteouts become overlayfs ones (".wh.NAME" -> char device 0/0 NAME, ".wh..wh..opq" ->
 * xattr trusted.overlay.opaque=y). Numeric uid/gid (0..65535), modes (incl. setuid), mtimes and
 * the xattrs user.* and security.capability are kept; other xattrs are dropped. Device nodes and
 * sockets are skipped and counted; FIFOs are created. Needs root (CAP_CHOWN, CAP_MKNOD,
 * CAP_SYS_ADMIN for trusted.*).
 * Returns 0 and fills RES (may be NULL), or -errno with *err set: -EFBIG (max_bytes), -E2BIG
 * (max_entries, path or name too long), -EINVAL (bad/corrupt/truncated stream, unsafe entry),
 * -ELOOP (a symlink in the way), or the failing syscall's errno. On error DIRFD's contents are
 * undefined and the CALLER must remove them; RES is filled only on success. */
int dt_layer_unpack(int fd, int dirfd, const struct dt_layer_opts *opts,
                    struct dt_layer_result *res, struct dt_error **err);

#endif
