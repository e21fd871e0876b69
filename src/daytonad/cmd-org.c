/* SPDX-License-Identifier: Apache-2.0 */
/* `daytonad org create NAME [--data-dir DIR]`: add an organization and its first API key to the
 * store of a (running or stopped) daytonad serve. The API has no organization management yet;
 * this is the operator's way to give another team its own key, whose sandboxes the others
 * cannot see. */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "daytonad.h"
#include "dt/error.h"
#include "dt/store.h"
#include "dt/xalloc.h"
#include "dt/banned.h"

static void
org_usage(FILE *f)
{
    fprintf(f, "Usage: daytonad org create NAME [--data-dir DIR]\n"
               "\n"
               "Create organization NAME in daytonad's store (default /var/lib/daytona) with an\n"
               "API key named \"admin\", and print the key (shown only this once). Sandboxes\n"
               "created with it are invisible to every other organization's keys.\n");
}

int
cmd_org(int argc, char **argv)
{
    static const struct option opts[] = {
        { "data-dir", required_argument, NULL, 'd' },
        { "help", no_argument, NULL, 'h' },
        {},
    };
    _cleanup_error_ struct dt_error *err = NULL;
    const char *data_dir = "/var/lib/daytona";
    struct dt_store *store = NULL;
    struct dt_store_org *org = NULL;
    _cleanup_free_ char *key = NULL;
    int c, r;

    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'd':
            data_dir = optarg;
            break;
        case 'h':
            org_usage(stdout);
            return 0;
        default:
            org_usage(stderr);
            return 2;
        }
    }
    if (optind + 2 != argc || strcmp(argv[optind], "create") != 0) {
        org_usage(stderr);
        return 2;
    }
    if (strcmp(argv[optind + 1], "warm-pool") == 0) {
        fprintf(stderr, "daytonad: 'warm-pool' is reserved (it owns the warm pool's sandboxes)\n");
        return 2;
    }
    r = dt_store_open(data_dir, &store, &err);
    if (r == 0)
        r = dt_store_org_create(store, argv[optind + 1], &org, &err);
    if (r == 0)
        r = dt_store_api_key_create(store, org->id, "admin", NULL, &key, NULL, &err);
    if (r < 0) {
        fprintf(stderr, "daytonad: %s\n", err ? err->message : "cannot create the organization");
        dt_store_org_free(org);
        dt_store_close(store);
        return 1;
    }
    printf("organization %s (%s)\nAPI key: %s\n", org->name, org->id, key);
    dt_store_org_free(org);
    dt_store_close(store);
    return 0;
}
