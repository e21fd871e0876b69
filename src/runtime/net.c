/* SPDX-License-Identifier: Apache-2.0 */
/* Sandbox networking: host bridge, veth pairs, addresses and routes through libnl-route-3, and
 * the nftables rules (NAT, host protection, per-sandbox egress policy) through libnftables.
 * No helper processes are started; see net.h and docs/design/network.md for the design. */
#include "runtime/net.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/if_link.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <netinet/in.h>
#include <netlink/addr.h>
#include <netlink/errno.h>
#include <netlink/msg.h>
#include <netlink/netlink.h>
#include <netlink/route/addr.h>
#include <netlink/route/link.h>
#include <netlink/route/link/bridge.h>
#include <netlink/route/link/veth.h>
#include <netlink/route/route.h>
#include <netlink/socket.h>
#include <nftables/libnftables.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include "dt/error.h"
#include "dt/fd-util.h"
#include "dt/macros.h"
#include "dt/parse-util.h"
#include "dt/xalloc.h"
#include "nft-dl.h"
#include "dt/banned.h"

#define SANDBOX_IFNAME         "eth0"
#define RESOLV_MAX_BYTES       (64 * 1024)
#define RESOLV_MAX_NAMESERVERS 3 /* glibc's MAXNS: later ones are ignored anyway */
#define SYSTEMD_RESOLV_CONF    "/run/systemd/resolve/resolv.conf"

/* ---- small helpers ---------------------------------------------------------------------- */

char *
dt_net_format_ip4(uint32_t addr, char *buf)
{
    (void) snprintf(buf, 16, "%u.%u.%u.%u", (addr >> 24) & 0xffu, (addr >> 16) & 0xffu,
                    (addr >> 8) & 0xffu, addr & 0xffu);
    return buf;
}

static uint32_t
prefix_mask(unsigned prefix)
{
    return prefix == 0 ? 0 : prefix >= 32 ? UINT32_MAX : ~(UINT32_MAX >> prefix);
}

int
dt_net_parse_cidr(const char *s, uint32_t *ret_addr, unsigned *ret_prefix)
{
    char buf[INET_ADDRSTRLEN];
    const char *slash;
    struct in_addr a;
    uint32_t prefix = 32;
    size_t n;
    int r;

    if (!s)
        return -EINVAL;
    slash = strchr(s, '/');
    n = slash ? (size_t) (slash - s) : strlen(s);
    if (n == 0 || n >= sizeof(buf))
        return -EINVAL;
    memcpy(buf, s, n);
    buf[n] = '\0';
    /* inet_pton() takes only the strict dotted quad: no "10.1", no hex, no spaces. */
    if (inet_pton(AF_INET, buf, &a) != 1)
        return -EINVAL;
    if (slash) {
        r = parse_u32(slash + 1, &prefix);
        if (r < 0 || prefix > 32)
            return -EINVAL;
    }

    uint32_t addr = ntohl(a.s_addr) & prefix_mask(prefix);
    if (ret_addr)
        *ret_addr = addr;
    if (ret_prefix)
        *ret_prefix = prefix;
    return 0;
}

void
dt_net_host_init_default(struct dt_net_host *h)
{
    memset(h, 0, sizeof(*h));
    memcpy(h->bridge, "dt0", sizeof("dt0"));
    h->subnet = (10u << 24) | (88u << 16);
    h->prefix = 16;
    memcpy(h->table, "daytona", sizeof("daytona"));
    memcpy(h->veth_prefix, "dtv", sizeof("dtv"));
}

int
dt_net_address_for_slot(const struct dt_net_host *h, uint32_t slot, uint32_t *ret)
{
    if (h->prefix > 30)
        return -ERANGE;
    /* Usable hosts are subnet+1 .. subnet+size-2; +1 is the gateway, the last is broadcast. */
    uint64_t size = UINT64_C(1) << (32 - h->prefix);
    uint64_t off = UINT64_C(2) + slot;
    if (off > size - 2)
        return -ERANGE;
    if (ret)
        *ret = (uint32_t) (h->subnet + off);
    return 0;
}

/* Names end up inside nftables commands between quotes and in netlink messages: allow only a
 * conservative character set so no name can break out of its quotes. */
static bool
name_chars_ok(const char *s, bool allow_dash)
{
    for (; *s; s++) {
        char c = *s;
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || (allow_dash && (c == '-' || c == '.'))))
            return false;
    }
    return true;
}

static int
host_check(const struct dt_net_host *h, struct dt_error **err)
{
    size_t n;

    n = strnlen(h->bridge, sizeof(h->bridge));
    if (n == 0 || n >= sizeof(h->bridge) || !name_chars_ok(h->bridge, true))
        return dt_error_set(err, EINVAL, "invalid bridge name");
    n = strnlen(h->table, sizeof(h->table));
    if (n == 0 || n >= sizeof(h->table) || !name_chars_ok(h->table, false) ||
        !((h->table[0] >= 'a' && h->table[0] <= 'z') || (h->table[0] >= 'A' && h->table[0] <= 'Z')))
        return dt_error_set(err, EINVAL, "invalid nftables table name");
    n = strnlen(h->veth_prefix, sizeof(h->veth_prefix));
    if (n == 0 || n >= sizeof(h->veth_prefix) || !name_chars_ok(h->veth_prefix, true))
        return dt_error_set(err, EINVAL, "invalid veth name prefix");
    if (h->prefix < 8 || h->prefix > 30)
        return dt_error_set(err, EINVAL, "subnet prefix /%u out of range 8..30", h->prefix);
    if (h->subnet & ~prefix_mask(h->prefix)) {
        char a[16];
        return dt_error_set(err, EINVAL, "subnet %s/%u has host bits set",
                            dt_net_format_ip4(h->subnet, a), h->prefix);
    }
    return 0;
}

static int
host_ifname(const struct dt_net_host *h, uint32_t slot, char ret[static IFNAMSIZ],
            struct dt_error **err)
{
    int n = snprintf(ret, IFNAMSIZ, "%s%u", h->veth_prefix, slot);
    if (n < 0 || n >= IFNAMSIZ)
        return dt_error_set(err, ENAMETOOLONG, "veth name '%s%u' too long", h->veth_prefix, slot);
    return 0;
}

/* A growable string for nftables command batches. */
struct cmdbuf {
    char *s;
    size_t len, cap;
};

static void _printf_(2, 3) cmd_add(struct cmdbuf *b, const char *fmt, ...)
{
    va_list ap;
    int n;

    for (;;) {
        size_t room = b->cap - b->len;
        va_start(ap, fmt);
        n = vsnprintf(b->s ? b->s + b->len : NULL, room, fmt, ap);
        va_end(ap);
        DT_ASSERT(n >= 0);
        if ((size_t) n < room)
            break;
        b->cap = b->cap ? b->cap * 2 + (size_t) n : 1024 + (size_t) n;
        b->s = xrealloc(b->s, b->cap);
    }
    b->len += (size_t) n;
}

/* ---- netlink ---------------------------------------------------------------------------- */

/* libnl folds kernel errnos into its own NLE_* codes; map the ones the kernel actually sends
 * back so callers (and the HTTP layer) can tell "exists" from "missing" from "denied". */
static int
nlerr_to_errno(int nlerr)
{
    static const int map[] = {
            [NLE_EXIST] = EEXIST,
            [NLE_NODEV] = ENODEV,
            [NLE_OBJ_NOTFOUND] = ENOENT,
            [NLE_PERM] = EPERM,
            [NLE_NOACCESS] = EACCES,
            [NLE_BUSY] = EBUSY,
            [NLE_NOMEM] = ENOMEM,
            [NLE_INVAL] = EINVAL,
            [NLE_RANGE] = ERANGE,
            [NLE_AGAIN] = EAGAIN,
            [NLE_INTR] = EINTR,
            [NLE_BAD_SOCK] = EBADF,
            [NLE_NOADDR] = EADDRNOTAVAIL,
            [NLE_OPNOTSUPP] = EOPNOTSUPP,
            [NLE_AF_NOSUPPORT] = EAFNOSUPPORT,
            [NLE_PROTO_MISMATCH] = EPROTONOSUPPORT,
            [NLE_MSGSIZE] = EMSGSIZE,
            [NLE_MSG_TRUNC] = ENOBUFS,
            [NLE_NOATTR] = ENODATA,
    };
    unsigned i = (unsigned) (nlerr < 0 ? -nlerr : nlerr);

    return i < ELEMENTSOF(map) && map[i] ? map[i] : EIO;
}

static void
nl_sockp(struct nl_sock **p)
{
    if (*p)
        nl_socket_free(*p);
}
#define _cleanup_nl_sock_ _cleanup_(nl_sockp)

static void
nl_addrp(struct nl_addr **p)
{
    if (*p)
        nl_addr_put(*p);
}
#define _cleanup_nl_addr_ _cleanup_(nl_addrp)

static void
rtnl_linkp(struct rtnl_link **p)
{
    if (*p)
        rtnl_link_put(*p);
}
#define _cleanup_rtnl_link_ _cleanup_(rtnl_linkp)

static void
rtnl_veth_linkp(struct rtnl_link **p)
{
    if (*p)
        rtnl_link_veth_release(*p);
}

static void
rtnl_addrp(struct rtnl_addr **p)
{
    if (*p)
        rtnl_addr_put(*p);
}

static void
rtnl_routep(struct rtnl_route **p)
{
    if (*p)
        rtnl_route_put(*p);
}

/* A NETLINK_ROUTE socket in the caller's current network namespace. libnl opens it with
 * SOCK_CLOEXEC; sequence checking and automatic ACKs stay on (every request waits for the
 * kernel's answer, so errors belong to the request that caused them). */
static int
nl_open(struct nl_sock **ret)
{
    struct nl_sock *sk = nl_socket_alloc();
    int r;

    if (!sk)
        return -ENOMEM;
    r = nl_connect(sk, NETLINK_ROUTE);
    if (r < 0) {
        nl_socket_free(sk);
        return -nlerr_to_errno(r);
    }
    *ret = sk;
    return 0;
}

/* Open a NETLINK_ROUTE socket inside the network namespace NETNS_FD. A netlink socket stays
 * bound to the namespace it was created in, so the calling thread only has to be in there for
 * the socket() call. setns(CLONE_NEWNET) affects the calling thread only, which is why this is
 * fine on a multi-threaded event loop. Switching back must not fail: a thread left in a
 * sandbox's namespace would create host objects inside it, so that is treated as fatal. */
static int
nl_open_in_netns(int netns_fd, struct nl_sock **ret, struct dt_error **err)
{
    _cleanup_close_ int self_fd = -EBADF;
    int r;

    self_fd = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
    if (self_fd < 0)
        return dt_error_errno(err, errno, "open '/proc/thread-self/ns/net'");
    if (setns(netns_fd, CLONE_NEWNET) < 0)
        return dt_error_errno(err, errno, "enter sandbox network namespace");

    r = nl_open(ret);

    if (setns(self_fd, CLONE_NEWNET) < 0)
        DT_BUG("cannot return to the daemon's network namespace");
    if (r < 0)
        return dt_error_errno(err, r, "open netlink socket in sandbox network namespace");
    return 0;
}

/* RTM_NEWLINK on an existing link, addressed by IFNAME (ifi_index 0 makes the kernel look the
 * name up, saving a RTM_GETLINK round trip): set it up and, when ISOLATED, set the bridge port
 * flag IFLA_BRPORT_ISOLATED. libnl 3.7 has no API for that flag; the kernel takes it as bridge
 * slave data (what `ip link set X type bridge_slave isolated on` sends). The kernel applies the
 * slave data before the flags, so the port is isolated before it forwards a single frame. */
static int
link_set_up(struct nl_sock *sk, const char *ifname, bool isolated)
{
    struct ifinfomsg ifi = {
            .ifi_family = AF_UNSPEC,
            .ifi_flags = IFF_UP,
            .ifi_change = IFF_UP,
    };
    struct nl_msg *msg;
    int r;

    msg = nlmsg_alloc_simple(RTM_NEWLINK, NLM_F_REQUEST | NLM_F_ACK);
    if (!msg)
        return -ENOMEM;
    r = nlmsg_append(msg, &ifi, sizeof(ifi), NLMSG_ALIGNTO);
    if (r >= 0)
        r = nla_put_string(msg, IFLA_IFNAME, ifname);
    if (r >= 0 && isolated) {
        struct nlattr *info, *data;

        info = nla_nest_start(msg, IFLA_LINKINFO);
        r = info ? nla_put_string(msg, IFLA_INFO_SLAVE_KIND, "bridge") : -NLE_NOMEM;
        data = r >= 0 ? nla_nest_start(msg, IFLA_INFO_SLAVE_DATA) : NULL;
        if (r >= 0 && !data)
            r = -NLE_NOMEM;
        if (r >= 0)
            r = nla_put_u8(msg, IFLA_BRPORT_ISOLATED, 1);
        if (r >= 0) {
            nla_nest_end(msg, data);
            nla_nest_end(msg, info);
        }
    }
    if (r < 0) {
        nlmsg_free(msg);
        return -nlerr_to_errno(r);
    }
    r = nl_send_sync(sk, msg); /* frees msg */
    return r < 0 ? -nlerr_to_errno(r) : 0;
}

/* RTM_DELLINK by name; 0 when deleted, -ENODEV when there is no such link. */
static int
link_delete(struct nl_sock *sk, const char *ifname)
{
    struct ifinfomsg ifi = {.ifi_family = AF_UNSPEC};
    struct nl_msg *msg;
    int r;

    msg = nlmsg_alloc_simple(RTM_DELLINK, NLM_F_REQUEST | NLM_F_ACK);
    if (!msg)
        return -ENOMEM;
    r = nlmsg_append(msg, &ifi, sizeof(ifi), NLMSG_ALIGNTO);
    if (r >= 0)
        r = nla_put_string(msg, IFLA_IFNAME, ifname);
    if (r < 0) {
        nlmsg_free(msg);
        return -nlerr_to_errno(r);
    }
    r = nl_send_sync(sk, msg);
    return r < 0 ? -nlerr_to_errno(r) : 0;
}

static bool
is_missing(int r)
{
    return r == -ENODEV || r == -ENOENT;
}

static int
link_get(struct nl_sock *sk, const char *ifname, struct rtnl_link **ret)
{
    int r = rtnl_link_get_kernel(sk, 0, ifname, ret);
    return r < 0 ? -nlerr_to_errno(r) : 0;
}

/* Make the kernel finish a pending carrier change of IFNAME now. Carrier changes are applied
 * by the linkwatch worker; until it has run, the device keeps the noop qdisc, which drops every
 * packet it is given. Without this, about one attach in fifteen lost the sandbox's (or the
 * host's) first packet here: a first TCP SYN then waits a whole second for its retransmit.
 * RTM_GETLINK runs linkwatch_sync_dev() for the device it reports on. Best effort. */
static void
link_sync(struct nl_sock *sk, const char *ifname)
{
    _cleanup_rtnl_link_ struct rtnl_link *link = NULL;

    (void) link_get(sk, ifname, &link);
}

static struct nl_addr *
ip4_addr(uint32_t addr, unsigned prefix)
{
    uint32_t be = htonl(addr);
    struct nl_addr *a = nl_addr_build(AF_INET, &be, sizeof(be));
    if (!a)
        abort(); /* out of memory, as xmalloc does */
    nl_addr_set_prefixlen(a, (int) prefix);
    return a;
}

static int
addr_add(struct nl_sock *sk, int ifindex, uint32_t addr, unsigned prefix)
{
    _cleanup_(rtnl_addrp) struct rtnl_addr *ra = NULL;
    _cleanup_nl_addr_ struct nl_addr *local = NULL, *brd = NULL;
    int r;

    ra = rtnl_addr_alloc();
    if (!ra)
        return -ENOMEM;
    local = ip4_addr(addr, prefix);
    brd = ip4_addr(addr | ~prefix_mask(prefix), 32);
    rtnl_addr_set_ifindex(ra, ifindex);
    r = rtnl_addr_set_local(ra, local);
    if (r >= 0)
        r = rtnl_addr_set_broadcast(ra, brd);
    if (r >= 0)
        r = rtnl_addr_add(sk, ra, 0);
    return r < 0 ? -nlerr_to_errno(r) : 0;
}

static int
default_route_add(struct nl_sock *sk, int ifindex, uint32_t gateway)
{
    _cleanup_(rtnl_routep) struct rtnl_route *rt = NULL;
    _cleanup_nl_addr_ struct nl_addr *dst = NULL, *gw = NULL;
    struct rtnl_nexthop *nh;
    int r;

    rt = rtnl_route_alloc();
    nh = rtnl_route_nh_alloc();
    if (!rt || !nh) {
        if (nh)
            rtnl_route_nh_free(nh);
        return -ENOMEM;
    }
    dst = ip4_addr(0, 0);
    gw = ip4_addr(gateway, 32);
    rtnl_route_nh_set_ifindex(nh, ifindex);
    rtnl_route_nh_set_gateway(nh, gw);
    rtnl_route_add_nexthop(rt, nh); /* the route owns NH from here */
    rtnl_route_set_family(rt, AF_INET);
    rtnl_route_set_table(rt, RT_TABLE_MAIN);
    rtnl_route_set_scope(rt, RT_SCOPE_UNIVERSE);
    rtnl_route_set_protocol(rt, RTPROT_STATIC);
    rtnl_route_set_type(rt, RTN_UNICAST);
    r = rtnl_route_set_dst(rt, dst);
    if (r >= 0)
        r = rtnl_route_add(sk, rt, NLM_F_EXCL);
    return r < 0 ? -nlerr_to_errno(r) : 0;
}

/* A stable, locally administered MAC for the bridge. A bridge without an explicitly set
 * address takes the smallest MAC of its ports, so the gateway's MAC would change whenever a
 * sandbox comes or goes and every sandbox's ARP entry for the gateway would go stale.
 * IFLA_ADDRESS at creation marks the address as set (NET_ADDR_SET) and pins it. */
static void
bridge_mac(const char *name, uint8_t mac[static 6])
{
    uint32_t hash = 2166136261u; /* FNV-1a */
    for (const char *p = name; *p; p++)
        hash = (hash ^ (uint8_t) *p) * 16777619u;
    mac[0] = 0x02; /* locally administered, unicast */
    mac[1] = 0x64; /* 'd' */
    mac[2] = 0x74; /* 't' */
    mac[3] = (uint8_t) (hash >> 16);
    mac[4] = (uint8_t) (hash >> 8);
    mac[5] = (uint8_t) hash;
}

static int
bridge_ensure(struct nl_sock *sk, const struct dt_net_host *h, struct dt_error **err)
{
    _cleanup_rtnl_link_ struct rtnl_link *link = NULL;
    int r;

    r = link_get(sk, h->bridge, &link);
    if (r >= 0) {
        const char *type = rtnl_link_get_type(link);
        if (!type || strcmp(type, "bridge") != 0)
            return dt_error_set(err, EEXIST, "link '%s' exists and is not a bridge", h->bridge);
        r = link_set_up(sk, h->bridge, /* isolated= */ false);
        if (r < 0)
            return dt_error_errno(err, r, "set bridge '%s' up", h->bridge);
    } else if (is_missing(r)) {
        _cleanup_nl_addr_ struct nl_addr *mac = NULL;
        uint8_t m[6];

        link = rtnl_link_bridge_alloc();
        if (!link)
            return dt_error_errno(err, ENOMEM, "allocate bridge '%s'", h->bridge);
        bridge_mac(h->bridge, m);
        mac = nl_addr_build(AF_LLC, m, sizeof(m));
        if (!mac)
            return dt_error_errno(err, ENOMEM, "allocate bridge '%s'", h->bridge);
        rtnl_link_set_name(link, h->bridge);
        rtnl_link_set_addr(link, mac);
        rtnl_link_set_flags(link, IFF_UP);
        /* No NLM_F_EXCL: if another setup raced us to it, the kernel just updates the bridge. */
        r = rtnl_link_add(sk, link, NLM_F_CREATE);
        if (r < 0)
            return dt_error_errno(err, nlerr_to_errno(r), "create bridge '%s'", h->bridge);
    } else
        return dt_error_errno(err, r, "look up bridge '%s'", h->bridge);

    rtnl_link_put(TAKE_PTR(link));
    r = link_get(sk, h->bridge, &link);
    if (r < 0)
        return dt_error_errno(err, r, "look up bridge '%s'", h->bridge);

    r = addr_add(sk, rtnl_link_get_ifindex(link), h->subnet + 1, h->prefix);
    if (r < 0 && r != -EEXIST) {
        char a[16];
        return dt_error_errno(err, r, "add address %s/%u to bridge '%s'",
                              dt_net_format_ip4(h->subnet + 1, a), h->prefix, h->bridge);
    }
    return 0;
}

/* ---- nftables --------------------------------------------------------------------------- */

static void
nft_ctxp(struct nft_ctx **p)
{
    if (*p)
        nft_ctx_free(*p);
}
#define _cleanup_nft_ctx_ _cleanup_(nft_ctxp)

/* libnftables 1.0.6 opens its NETLINK_NETFILTER socket inside nft_ctx_new() without
 * SOCK_CLOEXEC and offers no way to reach it. Find it and mark it close-on-exec, so that a
 * process spawned while the context lives does not inherit a socket bound to the host's
 * netfilter. (A fork+exec on another thread in the microseconds between the two calls can still
 * see it; sandboxes are spawned from the loop thread, which is also the one running this.) Any
 * other descriptor found without FD_CLOEXEC is left alone unless it is such a socket. */
static void
nft_fix_cloexec(void)
{
    _cleanup_close_ int dfd = -EBADF;
    DIR *d;
    struct dirent *de;

    dfd = open("/proc/self/fd", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0)
        return;
    d = fdopendir(dfd);
    if (!d)
        return;
    dfd = -EBADF; /* owned by D now */
    while ((de = readdir(d))) {
        uint32_t u;
        int fd, flags, v;
        socklen_t len = sizeof(v);

        if (parse_u32(de->d_name, &u) < 0 || u > INT_MAX)
            continue;
        fd = (int) u;
        if (fd == dirfd(d))
            continue;
        flags = fcntl(fd, F_GETFD);
        if (flags < 0 || (flags & FD_CLOEXEC))
            continue;
        if (getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &v, &len) < 0 || v != AF_NETLINK)
            continue;
        len = sizeof(v);
        if (getsockopt(fd, SOL_SOCKET, SO_PROTOCOL, &v, &len) < 0 || v != NETLINK_NETFILTER)
            continue;
        (void) fcntl(fd, F_SETFD, flags | FD_CLOEXEC);
    }
    closedir(d);
}

static int
nft_open(struct nft_ctx **ret, struct dt_error **err)
{
    struct nft_ctx *ctx = nft_ctx_new(NFT_CTX_DEFAULT);
    if (!ctx)
        return errno == ELIBACC
                       ? dt_error_set(err, ELIBACC, "load libnftables.so.1 (install libnftables1)")
                       : dt_error_set(err, ENOMEM, "create nftables context");
    nft_fix_cloexec();
    /* Library code never prints: keep libnftables' output and errors in memory. */
    if (nft_ctx_buffer_output(ctx) < 0 || nft_ctx_buffer_error(ctx) < 0) {
        nft_ctx_free(ctx);
        return dt_error_set(err, ENOMEM, "create nftables context");
    }
    *ret = ctx;
    return 0;
}

/* libnftables reports failures as text only ("Error: Could not process rule: No such file or
 * directory" followed by the offending command and a caret line). Keep the first line and the
 * command for the message and recover a plausible errno from the text. */
static int
nft_error(struct nft_ctx *ctx, struct dt_error **err, const char *what)
{
    static const struct {
        const char *text;
        int code;
    } codes[] = {
            {"Operation not permitted", EPERM},    {"Permission denied", EACCES},
            {"No such file or directory", ENOENT}, {"File exists", EEXIST},
            {"Device or resource busy", EBUSY},    {"Operation not supported", EOPNOTSUPP},
            {"Cannot allocate memory", ENOMEM},    {"Invalid argument", EINVAL},
    };
    const char *e = nft_ctx_get_error_buffer(ctx);
    const char *nl, *cmd = "", *cmd_end;
    int code = EPROTO, n1, n2 = 0;

    if (!e)
        e = "";
    nl = strchr(e, '\n');
    n1 = (int) (nl ? (size_t) (nl - e) : strlen(e));
    if (nl) {
        cmd = nl + 1;
        cmd_end = strchr(cmd, '\n');
        n2 = (int) (cmd_end ? (size_t) (cmd_end - cmd) : strlen(cmd));
    }
    for (size_t i = 0; i < ELEMENTSOF(codes); i++)
        if (memmem(e, (size_t) n1, codes[i].text, strlen(codes[i].text))) {
            code = codes[i].code;
            break;
        }
    if (n1 == 0)
        return dt_error_set(err, code, "%s: nftables failed", what);
    if (n2 > 0)
        return dt_error_set(err, code, "%s: nftables: %.*s (in '%.*s')", what, n1, e, n2, cmd);
    return dt_error_set(err, code, "%s: nftables: %.*s", what, n1, e);
}

/* Run one batch: libnftables sends all commands of a buffer as a single netlink batch, which
 * the kernel applies atomically (all or nothing). */
static int
nft_run(struct nft_ctx *ctx, const char *cmds, struct dt_error **err, const char *what)
{
    if (nft_run_cmd_from_buffer(ctx, cmds) == 0)
        return 0;
    return nft_error(ctx, err, what);
}

static void
nft_host_rules(struct cmdbuf *b, const struct dt_net_host *h)
{
    const char *t = h->table, *br = h->bridge;
    char net[16];

    dt_net_format_ip4(h->subnet, net);

    /* Base chains are (re)declared and flushed, then filled, all in this one transaction: an
     * upgrade or a changed subnet never leaves a window without rules. The map, the sets and
     * the per-sandbox chains "sb-<slot>" are left alone so live sandboxes keep their policy. */
    cmd_add(b, "add table inet %s\n", t);
    cmd_add(b, "add map inet %s sandboxes { type ipv4_addr : verdict; }\n", t);
    cmd_add(b,
            "add chain inet %s forward { type filter hook forward priority filter; "
            "policy accept; }\n",
            t);
    cmd_add(b,
            "add chain inet %s input { type filter hook input priority filter; "
            "policy accept; }\n",
            t);
    cmd_add(b,
            "add chain inet %s postrouting { type nat hook postrouting priority srcnat; "
            "policy accept; }\n",
            t);
    cmd_add(b, "flush chain inet %s forward\n", t);
    cmd_add(b, "flush chain inet %s input\n", t);
    cmd_add(b, "flush chain inet %s postrouting\n", t);

    /* forward: our chain sees all of the host's forwarded traffic; leave others' alone.
     * An accept here only ends *this* table's verdict, other tables still have their say. */
    cmd_add(b, "add rule inet %s forward iifname != \"%s\" oifname != \"%s\" accept\n", t, br, br);
    cmd_add(b, "add rule inet %s forward ct state established,related accept\n", t);
    /* Nothing new into the sandboxes, which includes sandbox A -> gateway -> sandbox B. */
    cmd_add(b, "add rule inet %s forward oifname \"%s\" drop\n", t, br);
    /* From here on the packet came from the bridge. Sandboxes are IPv4-only. */
    cmd_add(b, "add rule inet %s forward meta nfproto != ipv4 drop\n", t);
    cmd_add(b, "add rule inet %s forward ip saddr != %s/%u drop\n", t, net, h->prefix);
    /* The policy hook: sandboxes with a policy jump to their chain "sb-<slot>". */
    cmd_add(b, "add rule inet %s forward ip saddr vmap @sandboxes\n", t);

    /* input: the host offers no service to sandboxes (the daemon reaches them, not the other
     * way round). Reject rather than drop so that a client in the sandbox fails at once. */
    cmd_add(b, "add rule inet %s input iifname != \"%s\" accept\n", t, br);
    cmd_add(b, "add rule inet %s input ct state established,related accept\n", t);
    cmd_add(b, "add rule inet %s input reject with icmpx admin-prohibited\n", t);

    cmd_add(b, "add rule inet %s postrouting ip saddr %s/%u oifname != \"%s\" masquerade\n", t, net,
            h->prefix, br);

    /* bridge family: anti-spoofing at the ports, so that "ip saddr" in the forward chain
     * really names the sandbox (a sandbox with CAP_NET_RAW could otherwise forge another
     * sandbox's address and escape its own policy, at least for one-way traffic). The
     * prerouting hook of the bridge family sees the frames of all bridges on the host, so the
     * rules apply only to the ports listed in @portnames. */
    cmd_add(b, "add table bridge %s\n", t);
    cmd_add(b, "add set bridge %s portnames { type ifname; }\n", t);
    cmd_add(b, "add set bridge %s ports { type ifname . ipv4_addr; }\n", t);
    cmd_add(b,
            "add chain bridge %s prerouting { type filter hook prerouting priority filter; "
            "policy accept; }\n",
            t);
    cmd_add(b, "flush chain bridge %s prerouting\n", t);
    cmd_add(b, "add rule bridge %s prerouting iifname != @portnames accept\n", t);
    cmd_add(b, "add rule bridge %s prerouting ether type != { ip, arp } drop\n", t);
    cmd_add(b, "add rule bridge %s prerouting ether type ip iifname . ip saddr != @ports drop\n",
            t);
    cmd_add(b,
            "add rule bridge %s prerouting ether type arp iifname . arp saddr ip != @ports "
            "drop\n",
            t);
}

/* Remove the slot's policy chain and map element whether or not they exist. nftables 1.0.6 has
 * no "destroy" command and a "delete" of something missing fails the whole batch, so each
 * object is first added (a no-op when it exists: the element always maps to the same chain)
 * and then deleted, inside the same transaction. The element goes first: it references the
 * chain, and a referenced chain cannot be deleted. */
static void
nft_slot_clear_policy(struct cmdbuf *b, const struct dt_net_host *h, uint32_t slot,
                      const char *addr)
{
    const char *t = h->table;

    cmd_add(b, "add chain inet %s sb-%u\n", t, slot);
    cmd_add(b, "add element inet %s sandboxes { %s : jump sb-%u }\n", t, addr, slot);
    cmd_add(b, "delete element inet %s sandboxes { %s }\n", t, addr);
    cmd_add(b, "flush chain inet %s sb-%u\n", t, slot);
    cmd_add(b, "delete chain inet %s sb-%u\n", t, slot);
}

static void
nft_slot_attach(struct cmdbuf *b, const struct dt_net_host *h, uint32_t slot, const char *addr,
                const char *ifname, const struct dt_net_policy *policy)
{
    const char *t = h->table;

    cmd_add(b, "add element bridge %s portnames { \"%s\" }\n", t, ifname);
    cmd_add(b, "add element bridge %s ports { \"%s\" . %s }\n", t, ifname, addr);

    if (!policy || (!policy->block_all && policy->n_allow == 0)) {
        /* Allow-all: drop whatever a previous occupant of the slot left behind. */
        nft_slot_clear_policy(b, h, slot, addr);
        return;
    }

    cmd_add(b, "add chain inet %s sb-%u\n", t, slot);
    cmd_add(b, "flush chain inet %s sb-%u\n", t, slot);
    for (size_t i = 0; i < policy->n_allow && i < DT_NET_MAX_ALLOW; i++) {
        unsigned p = policy->allow[i].prefix > 32 ? 32 : policy->allow[i].prefix;
        char a[16];

        /* One rule per CIDR: an anonymous set would reject overlapping entries. The chain is
         * only consulted for packets that open a connection (replies are accepted before the
         * map lookup), so a short linear list costs nothing measurable. */
        cmd_add(b, "add rule inet %s sb-%u ip daddr %s/%u accept\n", t, slot,
                dt_net_format_ip4(policy->allow[i].addr & prefix_mask(p), a), p);
    }
    cmd_add(b, "add rule inet %s sb-%u reject with icmpx admin-prohibited\n", t, slot);
    cmd_add(b, "add element inet %s sandboxes { %s : jump sb-%u }\n", t, addr, slot);
}

static void
nft_slot_detach(struct cmdbuf *b, const struct dt_net_host *h, uint32_t slot, const char *addr,
                const char *ifname)
{
    const char *t = h->table;

    nft_slot_clear_policy(b, h, slot, addr);
    cmd_add(b, "add element bridge %s portnames { \"%s\" }\n", t, ifname);
    cmd_add(b, "delete element bridge %s portnames { \"%s\" }\n", t, ifname);
    cmd_add(b, "add element bridge %s ports { \"%s\" . %s }\n", t, ifname, addr);
    cmd_add(b, "delete element bridge %s ports { \"%s\" . %s }\n", t, ifname, addr);
}

/* Whether our inet table exists; used to tell "nothing to clean" from a real failure. */
static bool
nft_have_table(struct nft_ctx *ctx, const struct dt_net_host *h)
{
    _cleanup_free_ char *cmd = xasprintf("list table inet %s\n", h->table);
    bool ok = nft_run_cmd_from_buffer(ctx, cmd) == 0;
    (void) nft_ctx_get_error_buffer(ctx); /* discard */
    (void) nft_ctx_get_output_buffer(ctx);
    return ok;
}

/* ---- host setup and teardown ------------------------------------------------------------ */

int
dt_net_host_setup(const struct dt_net_host *h, struct dt_error **err)
{
    _cleanup_nl_sock_ struct nl_sock *sk = NULL;
    _cleanup_nft_ctx_ struct nft_ctx *ctx = NULL;
    struct cmdbuf b = {0};
    int r;

    r = host_check(h, err);
    if (r < 0)
        return r;

    r = nl_open(&sk);
    if (r < 0)
        return dt_error_errno(err, r, "open netlink socket");
    r = bridge_ensure(sk, h, err);
    if (r < 0)
        return r;

    /* Writing the same value again is a no-op in the kernel, so no need to read it first. */
    r = write_string_at(AT_FDCWD, "/proc/sys/net/ipv4/ip_forward", "1");
    if (r < 0)
        return dt_error_errno(err, r, "enable IPv4 forwarding");

    r = nft_open(&ctx, err);
    if (r < 0)
        return r;
    nft_host_rules(&b, h);
    r = nft_run(ctx, b.s, err, "install nftables rules");
    free(b.s);
    if (r < 0)
        return dt_error_wrap(err, "set up table '%s'", h->table);
    return 0;
}

int
dt_net_host_teardown(const struct dt_net_host *h, struct dt_error **err)
{
    _cleanup_nl_sock_ struct nl_sock *sk = NULL;
    _cleanup_nft_ctx_ struct nft_ctx *ctx = NULL;
    _cleanup_free_ char *cmds = NULL;
    int r;

    r = host_check(h, err);
    if (r < 0)
        return r;

    r = nl_open(&sk);
    if (r < 0)
        return dt_error_errno(err, r, "open netlink socket");
    r = link_delete(sk, h->bridge);
    if (r < 0 && !is_missing(r))
        return dt_error_errno(err, r, "delete bridge '%s'", h->bridge);

    r = nft_open(&ctx, err);
    if (r < 0)
        return r;
    /* add + delete: idempotent in one transaction (see nft_slot_clear_policy). */
    cmds = xasprintf("add table inet %1$s\ndelete table inet %1$s\n"
                     "add table bridge %1$s\ndelete table bridge %1$s\n",
                     h->table);
    r = nft_run(ctx, cmds, err, "delete nftables tables");
    if (r < 0)
        return dt_error_wrap(err, "tear down table '%s'", h->table);
    return 0;
}

/* ---- attach and detach ------------------------------------------------------------------ */

/* Create the veth pair with the sandbox end already in its namespace and the host end enslaved
 * to the bridge, both down. Creating it exclusively doubles as the slot's lock: if the
 * name exists, nothing of the slot is touched. */
static int
veth_create(struct nl_sock *sk, const char *ifname, int bridge_ifindex, int netns_fd,
            struct dt_error **err)
{
    _cleanup_(rtnl_veth_linkp) struct rtnl_link *link = NULL;
    struct rtnl_link *peer;
    int r;

    link = rtnl_link_veth_alloc();
    if (!link)
        return dt_error_errno(err, ENOMEM, "allocate veth '%s'", ifname);
    rtnl_link_set_name(link, ifname);
    rtnl_link_set_master(link, bridge_ifindex);
    peer = rtnl_link_veth_get_peer(link);
    rtnl_link_set_name(peer, SANDBOX_IFNAME);
    rtnl_link_set_ns_fd(peer, netns_fd);
    /* Not IFF_UP here: the kernel opens the peer before the pair is linked and veth_open()
     * then fails with ENOTCONN. eth0 is set up from inside the namespace. */
    rtnl_link_put(peer);

    r = rtnl_link_add(sk, link, NLM_F_CREATE | NLM_F_EXCL);
    if (r < 0) {
        r = nlerr_to_errno(r);
        if (r == EEXIST)
            return dt_error_set(err, EEXIST,
                                "create veth '%s': a link named '%s' or '" SANDBOX_IFNAME
                                "' in the sandbox already exists",
                                ifname, ifname);
        return dt_error_errno(err, r, "create veth '%s'", ifname);
    }
    return 0;
}

/* Inside the sandbox: lo and eth0 up, eth0's address and the default route. */
static int
sandbox_configure(int netns_fd, const struct dt_net_attachment *a, struct dt_error **err)
{
    _cleanup_nl_sock_ struct nl_sock *sk = NULL;
    _cleanup_rtnl_link_ struct rtnl_link *link = NULL;
    char ip[16];
    int r, ifindex;

    r = nl_open_in_netns(netns_fd, &sk, err);
    if (r < 0)
        return r;

    r = link_set_up(sk, "lo", /* isolated= */ false);
    if (r < 0)
        return dt_error_errno(err, r, "set 'lo' up in the sandbox");

    r = link_set_up(sk, SANDBOX_IFNAME, /* isolated= */ false);
    if (r < 0)
        return dt_error_errno(err, r, "set '" SANDBOX_IFNAME "' up in the sandbox");
    /* After the up, so that this lookup also does link_sync()'s job for eth0. */
    r = link_get(sk, SANDBOX_IFNAME, &link);
    if (r < 0)
        return dt_error_errno(err, r, "look up '" SANDBOX_IFNAME "' in the sandbox");
    ifindex = rtnl_link_get_ifindex(link);

    r = addr_add(sk, ifindex, a->address, a->prefix);
    if (r < 0)
        return dt_error_errno(err, r, "add address %s/%u to '" SANDBOX_IFNAME "' in the sandbox",
                              dt_net_format_ip4(a->address, ip), a->prefix);

    r = default_route_add(sk, ifindex, a->gateway);
    if (r < 0)
        return dt_error_errno(err, r, "add default route via %s in the sandbox",
                              dt_net_format_ip4(a->gateway, ip));
    return 0;
}

/* The steps after the veth exists; on failure the caller removes the veth and the slot's
 * nftables state. */
static int
attach_rest(struct nl_sock *sk, struct nft_ctx *ctx, const struct dt_net_host *h, int netns_fd,
            const struct dt_net_policy *policy, const struct dt_net_attachment *a,
            bool *nft_touched, struct dt_error **err)
{
    struct cmdbuf b = {0};
    char addr[16];
    int r;

    /* The policy and the anti-spoofing entry go in before the port can forward anything. */
    dt_net_format_ip4(a->address, addr);
    nft_slot_attach(&b, h, a->slot, addr, a->host_ifname, policy);
    *nft_touched = true;
    r = nft_run(ctx, b.s, err, "install policy");
    free(b.s);
    if (r < 0)
        return dt_error_wrap(err, "set up sandbox slot %u", a->slot);

    r = link_set_up(sk, a->host_ifname, /* isolated= */ true);
    if (r < 0)
        return dt_error_errno(err, r, "set veth '%s' up as an isolated bridge port",
                              a->host_ifname);

    r = sandbox_configure(netns_fd, a, err);
    if (r < 0)
        return r;

    /* eth0 coming up gave carrier to both veth ends (and to the bridge, for its first port);
     * see link_sync(). */
    link_sync(sk, a->host_ifname);
    link_sync(sk, h->bridge);
    return 0;
}

int
dt_net_attach(const struct dt_net_host *h, uint32_t slot, int netns_fd,
              const struct dt_net_policy *policy, struct dt_net_attachment *ret,
              struct dt_error **err)
{
    _cleanup_nl_sock_ struct nl_sock *sk = NULL;
    _cleanup_nft_ctx_ struct nft_ctx *ctx = NULL;
    _cleanup_rtnl_link_ struct rtnl_link *bridge = NULL;
    struct dt_net_attachment a = {.slot = slot, .prefix = h->prefix};
    bool nft_touched = false;
    int r;

    r = host_check(h, err);
    if (r < 0)
        return r;
    if (netns_fd < 0)
        return dt_error_set(err, EBADF, "attach slot %u: no network namespace", slot);
    if (policy && policy->n_allow > DT_NET_MAX_ALLOW)
        return dt_error_set(err, EINVAL, "attach slot %u: more than %d allowed CIDRs", slot,
                            DT_NET_MAX_ALLOW);
    r = dt_net_address_for_slot(h, slot, &a.address);
    if (r < 0)
        return dt_error_set(err, ERANGE, "slot %u does not fit subnet /%u", slot, h->prefix);
    a.gateway = h->subnet + 1;
    r = host_ifname(h, slot, a.host_ifname, err);
    if (r < 0)
        return r;

    r = nl_open(&sk);
    if (r < 0)
        return dt_error_errno(err, r, "open netlink socket");
    r = link_get(sk, h->bridge, &bridge);
    if (r < 0)
        return dt_error_errno(err, r, "look up bridge '%s'", h->bridge);
    r = nft_open(&ctx, err);
    if (r < 0)
        return r;

    r = veth_create(sk, a.host_ifname, rtnl_link_get_ifindex(bridge), netns_fd, err);
    if (r < 0)
        return r;

    r = attach_rest(sk, ctx, h, netns_fd, policy, &a, &nft_touched, err);
    if (r < 0) {
        /* Roll back. Deleting the host end deletes the sandbox end too. */
        (void) link_delete(sk, a.host_ifname);
        if (nft_touched) {
            struct cmdbuf b = {0};
            char addr[16];

            nft_slot_detach(&b, h, slot, dt_net_format_ip4(a.address, addr), a.host_ifname);
            (void) nft_run_cmd_from_buffer(ctx, b.s);
            free(b.s);
        }
        return r;
    }

    if (ret)
        *ret = a;
    return 0;
}

int
dt_net_detach(const struct dt_net_host *h, uint32_t slot, struct dt_error **err)
{
    _cleanup_nl_sock_ struct nl_sock *sk = NULL;
    _cleanup_nft_ctx_ struct nft_ctx *ctx = NULL;
    char ifname[IFNAMSIZ], addr[16];
    struct cmdbuf b = {0};
    uint32_t address;
    int r;

    r = host_check(h, err);
    if (r < 0)
        return r;
    r = dt_net_address_for_slot(h, slot, &address);
    if (r < 0)
        return dt_error_set(err, ERANGE, "slot %u does not fit subnet /%u", slot, h->prefix);
    r = host_ifname(h, slot, ifname, err);
    if (r < 0)
        return r;

    r = nl_open(&sk);
    if (r < 0)
        return dt_error_errno(err, r, "open netlink socket");
    /* The link goes first: once it is gone the sandbox has no path left, so removing the
     * policy afterwards never opens a window. */
    r = link_delete(sk, ifname);
    if (r < 0 && !is_missing(r))
        return dt_error_errno(err, r, "delete veth '%s'", ifname);

    r = nft_open(&ctx, err);
    if (r < 0)
        return r;
    nft_slot_detach(&b, h, slot, dt_net_format_ip4(address, addr), ifname);
    r = nft_run_cmd_from_buffer(ctx, b.s);
    free(b.s);
    if (r != 0) {
        struct dt_error *e = NULL;

        (void) nft_error(ctx, &e, "remove policy");
        /* Without our table (never set up, or torn down) there is nothing to remove. */
        if (!nft_have_table(ctx, h)) {
            dt_error_free(e);
            return 0;
        }
        if (err && !*err)
            *err = e;
        else
            dt_error_free(e);
        return dt_error_wrap(err, "detach sandbox slot %u", slot);
    }
    return 0;
}

int
dt_net_loopback_up(int netns_fd, struct dt_error **err)
{
    _cleanup_nl_sock_ struct nl_sock *sk = NULL;
    int r;

    if (netns_fd < 0)
        return dt_error_set(err, EBADF, "bring up loopback: no network namespace");
    r = nl_open_in_netns(netns_fd, &sk, err);
    if (r < 0)
        return r;
    r = link_set_up(sk, "lo", /* isolated= */ false);
    if (r < 0)
        return dt_error_errno(err, r, "set 'lo' up in the sandbox");
    return 0;
}

/* ---- resolv.conf ------------------------------------------------------------------------ */

/* Whether a nameserver address is usable from a sandbox. Sandboxes have IPv4 only, and
 * loopback (and 0.0.0.0, which glibc takes as "this host") means the sandbox itself. */
static bool
nameserver_usable(const char *s)
{
    struct in_addr a;
    uint32_t v;

    if (inet_pton(AF_INET, s, &a) != 1)
        return false; /* IPv6, scoped or garbage */
    v = ntohl(a.s_addr);
    if ((v >> 24) == 127 || v == 0)
        return false;
    return true;
}

/* Append the usable nameservers of TEXT to OUT (at most RESOLV_MAX_NAMESERVERS in total) and,
 * when OTHER is not NULL, its search/domain/options lines to OTHER. */
static void
resolv_parse(const char *text, struct cmdbuf *out, unsigned *n_ns, struct cmdbuf *other)
{
    const char *p = text;

    while (p && *p) {
        const char *eol = strchr(p, '\n');
        size_t len = eol ? (size_t) (eol - p) : strlen(p);
        const char *next = eol ? eol + 1 : NULL;
        const char *kw, *arg;
        size_t kwlen, arglen;

        /* trim */
        while (len > 0 && (*p == ' ' || *p == '\t')) {
            p++;
            len--;
        }
        while (len > 0 && (p[len - 1] == ' ' || p[len - 1] == '\t' || p[len - 1] == '\r'))
            len--;
        if (len == 0 || *p == '#' || *p == ';') {
            p = next;
            continue;
        }

        kw = p;
        kwlen = strcspn(kw, " \t");
        if (kwlen > len)
            kwlen = len;
        arg = kw + kwlen;
        while (arg < p + len && (*arg == ' ' || *arg == '\t'))
            arg++;
        arglen = strcspn(arg, " \t#;\r\n");
        if (arg + arglen > p + len)
            arglen = (size_t) (p + len - arg);

        if (kwlen == 10 && memcmp(kw, "nameserver", 10) == 0) {
            char addr[INET6_ADDRSTRLEN + 16];

            if (arglen > 0 && arglen < sizeof(addr) && *n_ns < RESOLV_MAX_NAMESERVERS) {
                memcpy(addr, arg, arglen);
                addr[arglen] = '\0';
                if (nameserver_usable(addr)) {
                    cmd_add(out, "nameserver %s\n", addr);
                    (*n_ns)++;
                }
            }
        } else if (other && arglen > 0 &&
                   ((kwlen == 6 && memcmp(kw, "search", 6) == 0) ||
                    (kwlen == 6 && memcmp(kw, "domain", 6) == 0) ||
                    (kwlen == 7 && memcmp(kw, "options", 7) == 0)))
            cmd_add(other, "%.*s\n", (int) len, p);
        p = next;
    }
}

char *
dt_net_resolv_conf_from(const char *host_resolv_conf, const char *fallback_resolv_conf)
{
    _cleanup_free_ char *primary = NULL, *fallback = NULL;
    struct cmdbuf ns = {0}, other = {0}, out = {0};
    unsigned n_ns = 0;

    if (!host_resolv_conf)
        host_resolv_conf = "/etc/resolv.conf";
    /* A missing or unreadable file counts as empty: the sandbox still gets a valid file. */
    if (read_file_at(AT_FDCWD, host_resolv_conf, RESOLV_MAX_BYTES, &primary, NULL) >= 0)
        resolv_parse(primary, &ns, &n_ns, &other);
    /* With systemd-resolved, /etc/resolv.conf names only the stub 127.0.0.53, which a sandbox
     * cannot reach; resolved's own file lists the real upstream servers. No nameserver line
     * at all means "127.0.0.1" to glibc, the same case. */
    if (n_ns == 0 && fallback_resolv_conf &&
        read_file_at(AT_FDCWD, fallback_resolv_conf, RESOLV_MAX_BYTES, &fallback, NULL) >= 0)
        resolv_parse(fallback, &ns, &n_ns, NULL);

    if (n_ns == 0)
        cmd_add(&out, "# no nameserver of the host is reachable from the sandbox\n");
    else
        cmd_add(&out, "%s", ns.s);
    if (other.s)
        cmd_add(&out, "%s", other.s);
    free(ns.s);
    free(other.s);
    return out.s;
}

char *
dt_net_resolv_conf(const char *host_resolv_conf)
{
    return dt_net_resolv_conf_from(host_resolv_conf, SYSTEMD_RESOLV_CONF);
}
