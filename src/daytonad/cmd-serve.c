/* SPDX-License-Identifier: Apache-2.0 */
/* `daytonad serve [--listen ADDR:PORT] [--data-dir DIR]`: run the control plane until SIGTERM or
 * SIGINT. Sandboxes keep running when it stops; the next start re-adopts them. */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

#include "daytonad.h"
#include "dt/error.h"
#include "dt/parse-util.h"
#include "dt/xalloc.h"
#include "server/server.h"
#include "dt/banned.h"

static void
serve_usage(FILE *f)
{
    fprintf(f, "Usage: daytonad serve [--listen ADDR:PORT] [--data-dir DIR] [--public-url URL]\n"
               "                      [--warm-pool N] [--default-snapshot debian|host]\n"
               "                      [--insecure-registry HOST:PORT]...\n"
               "\n"
               "Serve the Daytona API at http://ADDR:PORT/api (default 127.0.0.1:3000), keeping\n"
               "state in DIR (default /var/lib/daytona). On first start an admin API key is taken\n"
               "from $DAYTONA_ADMIN_API_KEY or generated, saved in DIR/admin-api-key and printed.\n"
               "Point the SDK at it with DAYTONA_API_URL=http://ADDR:PORT/api and\n"
               "DAYTONA_API_KEY=<the key>. --warm-pool N keeps N started default sandboxes ready\n"
               "for plain creates (default 2; 0 disables). --default-snapshot debian (the default)\n"
               "builds the default snapshot from Debian packages at first start (a few minutes,\n"
               "once; progress in the log); host uses a built-in root filesystem whose /usr is\n"
               "this machine's (instant; for tests). --insecure-registry lets snapshots pull\n"
               "from a registry over plain HTTP (loopback registries always may).\n");
}

static void
on_signal(uv_signal_t *h, int signum)
{
    uv_stop(h->loop);
}

static void
close_walk(uv_handle_t *h, void *arg)
{
    if (!uv_is_closing(h))
        uv_close(h, NULL);
}

/* "ADDR:PORT", "[v6]:PORT" or ":PORT" into a malloc'ed address and a port. */
static int
parse_listen(const char *s, char **addr, uint16_t *port, struct dt_error **err)
{
    const char *colon = strrchr(s, ':');
    uint32_t p;

    if (!colon || parse_u32(colon + 1, &p) < 0 || p > 65535)
        return dt_error_set(err, EINVAL, "invalid --listen '%s': expected ADDR:PORT", s);
    if (s[0] == '[' && colon > s && colon[-1] == ']')
        *addr = xstrndup(s + 1, (size_t) (colon - s - 2));
    else
        *addr = colon == s ? xstrdup("127.0.0.1") : xstrndup(s, (size_t) (colon - s));
    *port = (uint16_t) p;
    return 0;
}

int
cmd_serve(int argc, char **argv)
{
    static const struct option opts[] = {
        { "listen", required_argument, NULL, 'l' },
        { "data-dir", required_argument, NULL, 'd' },
        { "public-url", required_argument, NULL, 'u' },
        { "warm-pool", required_argument, NULL, 'w' },
        { "default-snapshot", required_argument, NULL, 's' },
        { "insecure-registry", required_argument, NULL, 'i' },
        { "help", no_argument, NULL, 'h' },
        {},
    };
    struct dt_server_config cfg = { .port = 3000, .data_dir = "/var/lib/daytona", .warm_pool = -1,
                                    .default_snapshot = "debian" };
    _cleanup_strv_free_ char **insecure = NULL;
    _cleanup_error_ struct dt_error *err = NULL;
    _cleanup_free_ char *addr = NULL;
    struct dt_server *srv = NULL;
    uv_signal_t sigterm, sigint;
    uv_loop_t loop;
    int c, r;

    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'l':
            free(addr);
            addr = NULL;
            if (parse_listen(optarg, &addr, &cfg.port, &err) < 0) {
                fprintf(stderr, "daytonad: %s\n", err->message);
                return 2;
            }
            break;
        case 'd':
            cfg.data_dir = optarg;
            break;
        case 'u':
            cfg.public_url = optarg;
            break;
        case 'w': {
            uint32_t n;
            if (parse_u32(optarg, &n) < 0 || n > 64) {
                fprintf(stderr, "daytonad: invalid --warm-pool '%s' (0..64)\n", optarg);
                return 2;
            }
            cfg.warm_pool = (int) n;
            break;
        }
        case 's':
            if (strcmp(optarg, "debian") != 0 && strcmp(optarg, "host") != 0) {
                fprintf(stderr, "daytonad: invalid --default-snapshot '%s' (debian or host)\n",
                        optarg);
                return 2;
            }
            cfg.default_snapshot = optarg;
            break;
        case 'i':
            if (!*optarg || strchr(optarg, '/')) {
                fprintf(stderr, "daytonad: invalid --insecure-registry '%s' (HOST[:PORT])\n",
                        optarg);
                return 2;
            }
            strv_push(&insecure, optarg);
            cfg.insecure_registries = insecure;
            break;
        case 'h':
            serve_usage(stdout);
            return 0;
        default:
            serve_usage(stderr);
            return 2;
        }
    }
    cfg.listen_addr = addr ? addr : "127.0.0.1";
    signal(SIGPIPE, SIG_IGN);
    uv_loop_init(&loop);
    r = dt_server_new(&loop, &cfg, &srv, &err);
    if (r < 0) {
        fprintf(stderr, "daytonad: %s\n", err ? err->message : strerror(-r));
        uv_walk(&loop, close_walk, NULL);
        uv_run(&loop, UV_RUN_DEFAULT);
        uv_loop_close(&loop);
        return 1;
    }
    printf("daytonad: serving http://%s:%u/api (data in %s)\n", cfg.listen_addr,
           dt_server_port(srv), cfg.data_dir);
    printf("daytonad: to use it with the Daytona SDK or CLI:\n"
           "  export DAYTONA_API_URL=http://%s:%u/api\n", cfg.listen_addr, dt_server_port(srv));
    {
        _cleanup_free_ char *keyfile = xasprintf("%s/admin-api-key", cfg.data_dir);
        if (access(keyfile, R_OK) == 0)
            printf("  export DAYTONA_API_KEY=$(sudo cat %s)\n", keyfile);
        else
            printf("  export DAYTONA_API_KEY=<the key in $DAYTONA_ADMIN_API_KEY at first start>\n");
    }
    fflush(stdout);
    uv_signal_init(&loop, &sigterm);
    uv_signal_start(&sigterm, on_signal, SIGTERM);
    uv_signal_init(&loop, &sigint);
    uv_signal_start(&sigint, on_signal, SIGINT);
    uv_run(&loop, UV_RUN_DEFAULT);
    dt_server_free(srv);
    uv_walk(&loop, close_walk, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    return 0;
}
