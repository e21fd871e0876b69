/* SPDX-License-Identifier: Apache-2.0 */
/* Fuzz the OCI layer extractor: each input is unpacked as a layer blob (via a memfd) into a
 * fresh directory, with a sibling directory that must stay empty (the escape oracle). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dt/error.h"
#include "dt/fd-util.h"
#include "dt/fs-util.h"
#include "dt/layer.h"
#include "dt/macros.h"
#include "dt/banned.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int memfd = -1;

static const char *
tmp_base(void)
{
    struct stat st;
    return stat("/dev/shm", &st) == 0 && S_ISDIR(st.st_mode) ? "/dev/shm" : "/tmp";
}

static void
check_empty(const char *path)
{
    DIR *d = opendir(path);
    if (!d)
        abort();
    struct dirent *de;
    while ((de = readdir(d)))
        if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0) {
            fprintf(stderr, "layer escaped: %s/%s\n", path, de->d_name);
            abort();
        }
    closedir(d);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (memfd < 0) {
        memfd = memfd_create("fuzz-layer", MFD_CLOEXEC);
        if (memfd < 0)
            abort();
    }
    if (ftruncate(memfd, 0) < 0 || lseek(memfd, 0, SEEK_SET) < 0 ||
        write_all(memfd, data, size) < 0 || lseek(memfd, 0, SEEK_SET) < 0)
        abort();

    char tmp[128], root[160], outside[160];
    snprintf(tmp, sizeof(tmp), "%s/fuzz-layer-XXXXXX", tmp_base());
    if (!mkdtemp(tmp))
        abort();
    snprintf(root, sizeof(root), "%s/root", tmp);
    snprintf(outside, sizeof(outside), "%s/outside", tmp);
    if (mkdir(root, 0755) < 0 || mkdir(outside, 0755) < 0)
        abort();
    int dirfd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dirfd < 0)
        abort();

    struct dt_layer_opts opts = { .max_bytes = 4u << 20, .max_entries = 2000 };
    struct dt_layer_result res;
    struct dt_error *err = NULL;
    int r = dt_layer_unpack(memfd, dirfd, &opts, &res, &err);
    if (r < 0) {
        if (!err || !err->message || err->code != -r)
            abort();
    } else {
        if (err || strncmp(res.digest, "sha256:", 7) != 0 || strlen(res.diff_id) != 71 ||
            res.compressed_bytes != size || res.unpacked_bytes > opts.max_bytes)
            abort();
    }
    dt_error_free(err);
    close(dirfd);

    check_empty(outside);
    if (rm_rf_at(AT_FDCWD, tmp) < 0)
        abort();
    return 0;
}
