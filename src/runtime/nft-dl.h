/* SPDX-License-Identifier: Apache-2.0 */
/* libnftables, loaded on first use with dlopen(): it drags in six shared libraries (libnftnl,
 * libmnl, libxtables, libgmp, libjansson) whose loading every `daytonad run` would otherwise pay,
 * though only the bridge network mode needs them. Include after <nftables/libnftables.h>; the
 * names below then resolve to the lazy versions. If the library cannot be loaded,
 * dt_nft_ctx_new() returns NULL with errno set to ELIBACC. */
#ifndef DT_RUNTIME_NFT_DL_H
#define DT_RUNTIME_NFT_DL_H

#include <nftables/libnftables.h>

struct nft_ctx *dt_nft_ctx_new(uint32_t flags);
void dt_nft_ctx_free(struct nft_ctx *ctx);
int dt_nft_ctx_buffer_output(struct nft_ctx *ctx);
int dt_nft_ctx_buffer_error(struct nft_ctx *ctx);
const char *dt_nft_ctx_get_output_buffer(struct nft_ctx *ctx);
const char *dt_nft_ctx_get_error_buffer(struct nft_ctx *ctx);
int dt_nft_run_cmd_from_buffer(struct nft_ctx *ctx, const char *buf);

#define nft_ctx_new               dt_nft_ctx_new
#define nft_ctx_free              dt_nft_ctx_free
#define nft_ctx_buffer_output     dt_nft_ctx_buffer_output
#define nft_ctx_buffer_error      dt_nft_ctx_buffer_error
#define nft_ctx_get_output_buffer dt_nft_ctx_get_output_buffer
#define nft_ctx_get_error_buffer  dt_nft_ctx_get_error_buffer
#define nft_run_cmd_from_buffer   dt_nft_run_cmd_from_buffer

#endif
