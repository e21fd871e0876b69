/* SPDX-License-Identifier: Apache-2.0 */
/* Sandbox networking through netlink (libnl-route-3) and libnftables, with no helper processes.
 *
 * Mode "none": the sandbox's network namespace has only loopback, brought up here.
 * Mode "bridge": a host bridge (default "dt0", 10.88.0.1/16) with NAT to the host's uplink; each
 * sandbox gets a veth pair: host end "dtv<slot>" enslaved to the bridge as an *isolated* port
 * (IFLA_BRPORT_ISOLATED: sandboxes cannot talk to each other at layer 2), sandbox end "eth0" with
 * address subnet+2+slot, default route via the bridge address. Sandboxes are IPv4-only.
 * nftables table "inet daytona" (created idempotently by dt_net_host_setup):
 *   - postrouting: masquerade traffic from the subnet that leaves through another interface;
 *   - input: from the bridge, only established/related traffic reaches the host (no host
 *     services, including those on 127.0.0.1 and on the host's other addresses); the rest is
 *     rejected (ICMP admin-prohibited) so clients fail at once instead of hanging;
 *   - forward: per-sandbox policy hook: a verdict map keyed by the sandbox address jumps to the
 *     chain "sb-<slot>" when the sandbox has a policy (block-all or a CIDR allow-list);
 *     established/related and everything else from the subnet is accepted; nothing new is
 *     forwarded *to* the bridge (no sandbox-to-sandbox hairpin through the gateway).
 * and table "bridge daytona" (same name, family bridge): frames from our ports must carry the
 * port's own IPv4 source address (ARP and IP), everything else (IPv6, VLAN tags, spoofed
 * sources) is dropped, so the address-keyed policy cannot be dodged with a forged address.
 * docs/design/network.md has the full rule set and the failure modes.
 * Inside-namespace configuration is done from the calling thread: it switches its own network
 * namespace with setns() only long enough to open a netlink socket there (allowed in a
 * multi-threaded process: the net namespace is per thread).
 * None of this is async-signal-safe; all of it may run on the event loop thread. */
#ifndef DT_RUNTIME_NET_H
#define DT_RUNTIME_NET_H

#include <net/if.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dt/error.h"

struct dt_net_host {
    char bridge[IFNAMSIZ]; /* "dt0" */
    uint32_t subnet;       /* host byte order, e.g. 10.88.0.0 */
    unsigned prefix;       /* e.g. 16 */
    char table[32];        /* nftables table name (families inet and bridge), e.g. "daytona" */
    char veth_prefix[8];   /* host-side veth names are <veth_prefix><slot>, e.g. "dtv" */
};

/* dt0, 10.88.0.0/16, table "daytona", veth prefix "dtv". Tests use other values so that they
 * never touch a running daytonad's network. */
void dt_net_host_init_default(struct dt_net_host *h);

/* Idempotently create the bridge (address subnet+1, up), enable IPv4 forwarding, and install the
 * nftables tables. Safe to call at every start: an existing bridge is reused, the base chains are
 * replaced in one transaction, and per-sandbox policy chains of live sandboxes are kept.
 * -EINVAL for a malformed H, -EEXIST when h->bridge exists and is not a bridge. */
int dt_net_host_setup(const struct dt_net_host *h, struct dt_error **err);
/* Remove the bridge and both nftables tables (tests, uninstall). Missing pieces are fine. Veths
 * still attached to the bridge stay until dt_net_detach(). */
int dt_net_host_teardown(const struct dt_net_host *h, struct dt_error **err);

#define DT_NET_MAX_ALLOW 64
struct dt_net_policy {
    bool block_all; /* no egress at all, except to ALLOW */
    size_t n_allow; /* when > 0 (or block_all), egress only to these CIDRs */
    struct {
        uint32_t addr; /* host byte order */
        unsigned prefix;
    } allow[DT_NET_MAX_ALLOW];
};
/* Parse "a.b.c.d/n" (or a bare address, meaning /32) into one allow entry; -EINVAL if bad.
 * Host bits are cleared ("10.1.2.3/8" gives 10.0.0.0/8). */
int dt_net_parse_cidr(const char *s, uint32_t *ret_addr, unsigned *ret_prefix);

struct dt_net_attachment {
    uint32_t slot;
    uint32_t address; /* host byte order */
    uint32_t gateway; /* host byte order */
    unsigned prefix;
    char host_ifname[IFNAMSIZ]; /* "<veth_prefix><slot>", e.g. "dtv7" */
};

/* The sandbox address of SLOT: subnet + 2 + slot. -ERANGE when it does not fit the subnet. */
int dt_net_address_for_slot(const struct dt_net_host *h, uint32_t slot, uint32_t *ret);

/* Bridge mode: connect the network namespace NETNS_FD (an fd of /proc/<pid>/ns/net) as SLOT:
 * veth pair, address, lo and eth0 up, default route, and POLICY (NULL = allow all egress).
 * The policy is in place before the host end of the veth comes up. NETNS_FD is borrowed.
 * On failure removes what it created. *ret (may be NULL) describes the attachment.
 * -EEXIST when the slot's veth already exists (slot in use, or left over: dt_net_detach it),
 * -ERANGE when the slot does not fit the subnet, -ENAMETOOLONG when the veth name would not fit.
 * Uses one netlink socket per network namespace and one nftables context; no processes. */
int dt_net_attach(const struct dt_net_host *h, uint32_t slot, int netns_fd,
                  const struct dt_net_policy *policy, struct dt_net_attachment *ret,
                  struct dt_error **err);
/* Remove SLOT's veth pair and policy rules. Idempotent: what is missing is fine (also a missing
 * table). Deleting a live link costs ~15 ms in the kernel (netdev unregistration waits for RCU);
 * once the sandbox's namespace is gone the kernel has usually removed the pair already. */
int dt_net_detach(const struct dt_net_host *h, uint32_t slot, struct dt_error **err);

/* Mode none: bring "lo" up inside NETNS_FD (borrowed). */
int dt_net_loopback_up(int netns_fd, struct dt_error **err);

/* Text for a sandbox's /etc/resolv.conf: the host's nameservers from HOST_RESOLV_CONF (NULL means
 * /etc/resolv.conf) that a sandbox can reach (IPv4 only; loopback and 0.0.0.0 skipped; when no
 * usable one is left, those of /run/systemd/resolve/resolv.conf), at most 3, plus the
 * search/domain/options lines. With no usable nameserver at all the text is a comment line (and
 * the search/options lines). A missing or unreadable file counts as empty.
 * Returns a new string; free() it. */
char *dt_net_resolv_conf(const char *host_resolv_conf);
/* The same with an explicit fallback file (NULL: none); for tests. */
char *dt_net_resolv_conf_from(const char *host_resolv_conf, const char *fallback_resolv_conf);

/* Format a host-order IPv4 address into BUF (at least 16 bytes); returns BUF. */
char *dt_net_format_ip4(uint32_t addr, char *buf);

#endif
