/* SPDX-License-Identifier: Apache-2.0 */
/* Lazy libnftables: see nft-dl.h. Resolved once; single-threaded use (the event loop thread). */
#include <dlfcn.h>
#include <errno.h>
#include <nftables/libnftables.h>

#include "nft-dl.h"

static struct {
    bool tried;
    struct nft_ctx *(*ctx_new)(uint32_t);
    void (*ctx_free)(struct nft_ctx *);
    int (*buffer_output)(struct nft_ctx *);
    int (*buffer_error)(struct nft_ctx *);
    const char *(*get_output)(struct nft_ctx *);
    const char *(*get_error)(struct nft_ctx *);
    int (*run)(struct nft_ctx *, const char *);
} nft;

static bool
nft_load(void)
{
    if (nft.tried)
        return nft.ctx_new != NULL;
    nft.tried = true;
    void *h = dlopen("libnftables.so.1", RTLD_NOW | RTLD_LOCAL);
    if (!h)
        return false;
    nft.ctx_free = (void (*)(struct nft_ctx *)) dlsym(h, "nft_ctx_free");
    nft.buffer_output = (int (*)(struct nft_ctx *)) dlsym(h, "nft_ctx_buffer_output");
    nft.buffer_error = (int (*)(struct nft_ctx *)) dlsym(h, "nft_ctx_buffer_error");
    nft.get_output = (const char *(*) (struct nft_ctx *) ) dlsym(h, "nft_ctx_get_output_buffer");
    nft.get_error = (const char *(*) (struct nft_ctx *) ) dlsym(h, "nft_ctx_get_error_buffer");
    nft.run = (int (*)(struct nft_ctx *, const char *)) dlsym(h, "nft_run_cmd_from_buffer");
    struct nft_ctx *(*ctx_new)(uint32_t) = (struct nft_ctx * (*) (uint32_t)) dlsym(h, "nft_ctx_new");
    if (!nft.ctx_free || !nft.buffer_output || !nft.buffer_error || !nft.get_output ||
        !nft.get_error || !nft.run)
        return false;
    nft.ctx_new = ctx_new; /* last: it is what says "loaded" */
    return nft.ctx_new != NULL;
}

struct nft_ctx *
dt_nft_ctx_new(uint32_t flags)
{
    if (!nft_load()) {
        errno = ELIBACC;
        return NULL;
    }
    return nft.ctx_new(flags);
}

void
dt_nft_ctx_free(struct nft_ctx *ctx)
{
    if (ctx && nft.ctx_free)
        nft.ctx_free(ctx);
}

int
dt_nft_ctx_buffer_output(struct nft_ctx *ctx)
{
    return nft.buffer_output(ctx);
}

int
dt_nft_ctx_buffer_error(struct nft_ctx *ctx)
{
    return nft.buffer_error(ctx);
}

const char *
dt_nft_ctx_get_output_buffer(struct nft_ctx *ctx)
{
    return nft.get_output(ctx);
}

const char *
dt_nft_ctx_get_error_buffer(struct nft_ctx *ctx)
{
    return nft.get_error(ctx);
}

int
dt_nft_run_cmd_from_buffer(struct nft_ctx *ctx, const char *buf)
{
    return nft.run(ctx, buf);
}
