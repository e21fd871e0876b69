/* SPDX-License-Identifier: Apache-2.0 */
/* Integration test of src/runtime/net.c against the real kernel (root only). It builds its own
 * network: bridge "dtt0" 10.99.0.0/16, tables "daytona_test", veths "dttv<slot>", and an
 * "upstream host" in its own network namespace behind veth "dttu0" (10.98.0.1 on the host,
 * 10.98.0.2 and 10.98.0.3 upstream), so it never touches a running daytonad's network and
 * sends no packet outside namespaces it made. Sandboxes are network namespaces of short-lived
 * children; the test switches its own thread into them to open sockets there. */
#include <arpa/inet.h>
#include <fcntl.h>
#include <net/if.h>
#include <net/route.h>
#include <netinet/in.h>
#include <netinet/ip.h>
#include <netinet/ip_icmp.h>
#include <nftables/libnftables.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "dt/fd-util.h"
#include "dt/xalloc.h"
#include "runtime/net.h"
#include "testlib.h"
#include "dt/banned.h"

#define IP4(a, b, c, d) \
    (((uint32_t) (a) << 24) | ((uint32_t) (b) << 16) | ((uint32_t) (c) << 8) | (uint32_t) (d))

#define GATEWAY    IP4(10, 99, 0, 1)
#define UP_HOST    IP4(10, 98, 0, 1) /* the host's end of the upstream link */
#define UP_ALLOWED IP4(10, 98, 0, 2)
#define UP_OTHER   IP4(10, 98, 0, 3)
#define PORT       18080
#define PORT_UDP   18081
#define SLOW_MS    250 /* wait for traffic that must not get through */

enum {
    SLOT_A = 0,
    SLOT_B = 1,
    SLOT_C = 2,
    SLOT_D = 3,
    SLOT_LOOP = 10
};

static struct dt_net_host H;
static int host_ns = -EBADF;
static pid_t up_pid = -1;
static int up_ns = -EBADF;
static int ns_a = -EBADF, ns_b = -EBADF, ns_c = -EBADF;
static char saved_forward[8];

/* ---- helpers --------------------------------------------------------------------------- */

static int
sh(const char *cmd)
{
    char *argv[] = {"/bin/sh", "-c", (char *) cmd, NULL};
    int st = dt_test_run(argv, NULL);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static int shf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int
shf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    _cleanup_free_ char *cmd = xvasprintf(fmt, ap);
    va_end(ap);
    return sh(cmd);
}

static double
now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double) ts.tv_sec * 1e3 + (double) ts.tv_nsec / 1e6;
}

static void
must_setns(int fd)
{
    if (setns(fd, CLONE_NEWNET) < 0) {
        perror("setns");
        abort(); /* the rest of the run would act in the wrong namespace */
    }
}

/* A fresh network namespace held by a child. With KEEP_PID the child stays (for nsenter) until
 * killed; otherwise it exits at once and our fd keeps the namespace alive. */
static int
netns_new(pid_t *keep_pid)
{
    int ready[2], hold[2];
    char c = 0;
    pid_t pid;

    if (pipe2(ready, O_CLOEXEC) < 0 || pipe2(hold, O_CLOEXEC) < 0)
        abort();
    pid = fork();
    if (pid < 0)
        abort();
    if (pid == 0) {
        (void) prctl(PR_SET_PDEATHSIG, SIGKILL);
        close(ready[0]);
        close(hold[1]);
        if (unshare(CLONE_NEWNET) < 0)
            _exit(1);
        if (write(ready[1], &c, 1) != 1)
            _exit(1);
        /* wait until the parent closes its end */
        while (read(hold[0], &c, 1) > 0)
            ;
        _exit(0);
    }
    close(ready[1]);
    close(hold[0]);
    if (read(ready[0], &c, 1) != 1)
        abort();
    close(ready[0]);

    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/ns/net", (int) pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        abort();
    if (keep_pid) {
        *keep_pid = pid;
        /* the write end stays open (leaked on purpose, CLOEXEC) until the child is killed */
    } else {
        close(hold[1]);
        (void) waitpid(pid, NULL, 0);
    }
    return fd;
}

/* A socket created inside NS (-1: the host); it stays bound to that namespace. */
static int
socket_in(int ns, int type, int proto)
{
    int fd;

    if (ns >= 0)
        must_setns(ns);
    fd = socket(AF_INET, type | SOCK_CLOEXEC, proto);
    if (ns >= 0)
        must_setns(host_ns);
    return fd;
}

static struct sockaddr_in
sin4(uint32_t addr, uint16_t port)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port)};
    sa.sin_addr.s_addr = htonl(addr);
    return sa;
}

static int
listen_in(int ns, int type, uint32_t addr, uint16_t port)
{
    int fd = socket_in(ns, type | SOCK_NONBLOCK, 0);
    int one = 1;
    struct sockaddr_in sa = sin4(addr, port);

    assert_true(fd >= 0);
    (void) setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(fd, (struct sockaddr *) &sa, sizeof(sa)) < 0)
        fail_msg("bind: %s", strerror(errno));
    if (type == SOCK_STREAM)
        assert_int_equal(listen(fd, 16), 0);
    return fd;
}

/* TCP connect from NS (-1: the host) to ADDR:PORT; 0, -ETIMEDOUT, or the connect error. */
static int
connect_from(int ns, uint32_t addr, uint16_t port, int timeout_ms)
{
    int fd = socket_in(ns, SOCK_STREAM | SOCK_NONBLOCK, 0);
    struct sockaddr_in sa = sin4(addr, port);
    struct pollfd p = {.fd = fd, .events = POLLOUT};
    int r, e = 0;
    socklen_t len = sizeof(e);

    assert_true(fd >= 0);
    r = connect(fd, (struct sockaddr *) &sa, sizeof(sa));
    if (r < 0 && errno != EINPROGRESS) {
        r = -errno;
        close(fd);
        return r;
    }
    if (r == 0) {
        close(fd);
        return 0;
    }
    r = poll(&p, 1, timeout_ms);
    if (r == 0) {
        close(fd);
        return -ETIMEDOUT;
    }
    (void) getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &len);
    close(fd);
    return -e;
}

/* Accept one pending connection; returns the peer address or 0 if none is pending. */
static uint32_t
accept_peer(int lfd)
{
    struct sockaddr_in sa;
    socklen_t len = sizeof(sa);
    struct pollfd p = {.fd = lfd, .events = POLLIN};

    if (poll(&p, 1, 200) <= 0)
        return 0;
    int fd = accept4(lfd, (struct sockaddr *) &sa, &len, SOCK_CLOEXEC);
    if (fd < 0)
        return 0;
    close(fd);
    return ntohl(sa.sin_addr.s_addr);
}

/* Send one UDP datagram from NS (optionally from a forged source SPOOF) to ADDR:PORT. */
static void
udp_send_from(int ns, uint32_t spoof, uint32_t addr, uint16_t port)
{
    int fd = socket_in(ns, SOCK_DGRAM, 0);
    struct sockaddr_in sa = sin4(addr, port);
    int one = 1;

    assert_true(fd >= 0);
    if (spoof) {
        struct sockaddr_in src = sin4(spoof, 0);
        /* IP_TRANSPARENT lets the socket use a source address that is not local, as a raw
         * socket could; this is the forgery the bridge table must stop. */
        assert_int_equal(setsockopt(fd, SOL_IP, IP_TRANSPARENT, &one, sizeof(one)), 0);
        assert_int_equal(bind(fd, (struct sockaddr *) &src, sizeof(src)), 0);
    }
    (void) sendto(fd, "x", 1, 0, (struct sockaddr *) &sa, sizeof(sa));
    close(fd);
}

/* Receive one datagram within TIMEOUT_MS; returns the sender or 0. */
static uint32_t
udp_recv(int fd, int timeout_ms)
{
    struct sockaddr_in sa;
    socklen_t len = sizeof(sa);
    struct pollfd p = {.fd = fd, .events = POLLIN};
    char c;

    if (poll(&p, 1, timeout_ms) <= 0)
        return 0;
    if (recvfrom(fd, &c, 1, 0, (struct sockaddr *) &sa, &len) < 0)
        return 0;
    return ntohl(sa.sin_addr.s_addr);
}

static uint16_t
icmp_sum(const void *data, size_t len)
{
    const uint8_t *p = data;
    uint32_t s = 0;
    for (size_t i = 0; i + 1 < len; i += 2)
        s += (uint32_t) (p[i] << 8 | p[i + 1]);
    if (len & 1)
        s += (uint32_t) p[len - 1] << 8;
    while (s >> 16)
        s = (s & 0xffff) + (s >> 16);
    return htons((uint16_t) ~s);
}

/* One ICMP echo from NS to ADDR; true if the matching echo reply arrives in time. */
static bool
ping_from(int ns, uint32_t addr, int timeout_ms)
{
    int fd = socket_in(ns, SOCK_RAW, IPPROTO_ICMP);
    struct sockaddr_in sa = sin4(addr, 0);
    struct icmphdr req = {.type = ICMP_ECHO};
    static uint16_t seq;
    uint16_t id = (uint16_t) (getpid() & 0xffff);
    double deadline = now_ms() + timeout_ms;
    bool ok = false;

    assert_true(fd >= 0);
    req.un.echo.id = htons(id);
    req.un.echo.sequence = htons(++seq);
    req.checksum = icmp_sum(&req, sizeof(req));
    assert_int_equal(sendto(fd, &req, sizeof(req), 0, (struct sockaddr *) &sa, sizeof(sa)),
                     (ssize_t) sizeof(req));
    while (!ok) {
        int left = (int) (deadline - now_ms());
        struct pollfd p = {.fd = fd, .events = POLLIN};
        uint8_t buf[256];
        ssize_t n;

        if (left <= 0 || poll(&p, 1, left) <= 0)
            break;
        n = recv(fd, buf, sizeof(buf), 0);
        if (n < (ssize_t) sizeof(struct iphdr))
            continue;
        size_t hl = (size_t) (buf[0] & 0xf) * 4;
        if ((size_t) n < hl + sizeof(struct icmphdr))
            continue;
        struct icmphdr rep;
        memcpy(&rep, buf + hl, sizeof(rep));
        uint32_t from;
        memcpy(&from, buf + 12, 4);
        if (rep.type == ICMP_ECHOREPLY && ntohs(rep.un.echo.id) == id &&
            ntohs(rep.un.echo.sequence) == seq && ntohl(from) == addr)
            ok = true;
    }
    close(fd);
    return ok;
}

static bool
link_exists(const char *name)
{
    char path[64];
    snprintf(path, sizeof(path), "/sys/class/net/%s", name);
    return access(path, F_OK) == 0;
}

/* Whether the nft command CMD succeeds, with its output in *out when OUT is not NULL. */
static bool
nft_ok(const char *cmd, char **out)
{
    struct nft_ctx *ctx = nft_ctx_new(NFT_CTX_DEFAULT);
    bool ok;

    assert_non_null(ctx);
    nft_ctx_buffer_output(ctx);
    nft_ctx_buffer_error(ctx);
    ok = nft_run_cmd_from_buffer(ctx, cmd) == 0;
    if (out)
        *out = xstrdup(nft_ctx_get_output_buffer(ctx));
    nft_ctx_free(ctx);
    return ok;
}

static bool
chain_exists(uint32_t slot)
{
    _cleanup_free_ char *cmd = xasprintf("list chain inet %s sb-%u", H.table, slot);
    return nft_ok(cmd, NULL);
}

static void
attach_ok(uint32_t slot, int ns, const struct dt_net_policy *pol, struct dt_net_attachment *a)
{
    struct dt_error *e = NULL;
    int r = dt_net_attach(&H, slot, ns, pol, a, &e);
    if (r < 0)
        fail_msg("attach slot %u: %s", slot, e ? e->message : "?");
    dt_error_free(e);
}

static void
detach_ok(uint32_t slot)
{
    struct dt_error *e = NULL;
    int r = dt_net_detach(&H, slot, &e);
    if (r < 0)
        fail_msg("detach slot %u: %s", slot, e ? e->message : "?");
    dt_error_free(e);
}

static int
count_fds(void)
{
    return dt_test_count_dir("/proc/self/fd");
}

/* Remove everything this test may have left behind by an earlier, interrupted run. */
static void
cleanup_all(void)
{
    static const uint32_t slots[] = {SLOT_A, SLOT_B, SLOT_C, SLOT_D, SLOT_LOOP};
    struct dt_error *e = NULL;

    for (size_t i = 0; i < ELEMENTSOF(slots); i++) {
        (void) dt_net_detach(&H, slots[i], &e);
        dt_error_free(e);
        e = NULL;
    }
    (void) dt_net_host_teardown(&H, &e);
    dt_error_free(e);
    if (link_exists("dttu0"))
        (void) sh("ip link del dttu0");
}

/* ---- setup ----------------------------------------------------------------------------- */

static int
group_setup(void **state)
{
    struct dt_error *e = NULL;
    _cleanup_free_ char *fwd = NULL;

    dt_net_host_init_default(&H);
    memcpy(H.bridge, "dtt0", sizeof("dtt0"));
    H.subnet = IP4(10, 99, 0, 0);
    H.prefix = 16;
    memcpy(H.table, "daytona_test", sizeof("daytona_test"));
    memcpy(H.veth_prefix, "dttv", sizeof("dttv"));

    host_ns = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
    assert_true(host_ns >= 0);
    if (read_file_at(AT_FDCWD, "/proc/sys/net/ipv4/ip_forward", 8, &fwd, NULL) >= 0)
        snprintf(saved_forward, sizeof(saved_forward), "%c", fwd[0]);

    cleanup_all();

    if (dt_net_host_setup(&H, &e) < 0) {
        fprintf(stderr, "host setup: %s\n", e->message);
        dt_error_free(e);
        return -1;
    }

    /* The upstream host: its own namespace with two addresses, reached through the host. */
    up_ns = netns_new(&up_pid);
    if (shf("ip link add dttu0 type veth peer name up0 netns %d && "
            "ip addr add 10.98.0.1/24 dev dttu0 && ip link set dttu0 up && "
            "nsenter -t %d -n sh -c 'ip link set lo up && ip addr add 10.98.0.2/24 dev up0 && "
            "ip addr add 10.98.0.3/24 dev up0 && ip link set up0 up'",
            (int) up_pid, (int) up_pid) != 0) {
        fprintf(stderr, "cannot build the upstream host\n");
        return -1;
    }

    ns_a = netns_new(NULL);
    ns_b = netns_new(NULL);
    ns_c = netns_new(NULL);
    return 0;
}

static int
group_teardown(void **state)
{
    cleanup_all();
    if (up_pid > 0) {
        kill(up_pid, SIGKILL);
        (void) waitpid(up_pid, NULL, 0);
    }
    safe_close(up_ns);
    safe_close(ns_a);
    safe_close(ns_b);
    safe_close(ns_c);
    if (saved_forward[0])
        (void) write_string_at(AT_FDCWD, "/proc/sys/net/ipv4/ip_forward", saved_forward);
    safe_close(host_ns);
    return 0;
}

/* After each test: detach the slots a failed test may have left attached, so one failure does
 * not cascade into the next tests. Slot A lives from test_attach_configures_sandbox to
 * test_detach. */
static int
test_teardown_slots(void **state)
{
    static const uint32_t slots[] = {SLOT_B, SLOT_C, SLOT_D, SLOT_LOOP};
    struct dt_error *e = NULL;

    for (size_t i = 0; i < ELEMENTSOF(slots); i++) {
        (void) dt_net_detach(&H, slots[i], &e);
        dt_error_free(e);
        e = NULL;
    }
    return 0;
}

/* ---- tests ----------------------------------------------------------------------------- */

static void
test_host_setup(void **state)
{
    struct dt_error *e = NULL;
    _cleanup_free_ char *out = NULL, *bout = NULL, *fwd = NULL;

    /* idempotent: a second run (daemon restart) succeeds and changes nothing visible */
    assert_int_equal(dt_net_host_setup(&H, &e), 0);
    assert_null(e);

    assert_true(link_exists("dtt0"));
    assert_true(access("/sys/class/net/dtt0/bridge", F_OK) == 0);
    assert_int_equal(read_file_at(AT_FDCWD, "/proc/sys/net/ipv4/ip_forward", 8, &fwd, NULL), 0);
    assert_int_equal(fwd[0], '1');
    assert_int_equal(sh("ip -4 addr show dev dtt0 | grep -q 'inet 10.99.0.1/16'"), 0);
    assert_int_equal(sh("ip link show dev dtt0 | grep -q 'state UP\\|UNKNOWN\\|,UP'"), 0);

    assert_true(nft_ok("list table inet daytona_test", &out));
    assert_non_null(strstr(out, "masquerade"));
    assert_non_null(strstr(out, "ip saddr vmap @sandboxes"));
    assert_non_null(strstr(out, "hook input"));
    assert_true(nft_ok("list table bridge daytona_test", &bout));
    assert_non_null(strstr(bout, "@ports"));

    /* exactly one copy of each base rule after two setups */
    const char *m = strstr(out, "masquerade");
    assert_null(strstr(m + 1, "masquerade"));

    /* a bad configuration is refused before anything is touched */
    struct dt_net_host bad = H;
    memcpy(bad.table, "x\"; flush ruleset", sizeof("x\"; flush ruleset"));
    assert_int_equal(dt_net_host_setup(&bad, &e), -EINVAL);
    assert_non_null(e);
    dt_error_free(e);
    e = NULL;
    bad = H;
    bad.subnet = IP4(10, 99, 0, 1);
    assert_int_equal(dt_net_host_setup(&bad, &e), -EINVAL);
    dt_error_free(e);
}

static void
test_attach_configures_sandbox(void **state)
{
    struct dt_net_attachment a;
    struct ifreq ifr;
    char ip[16];
    int fd;

    attach_ok(SLOT_A, ns_a, NULL, &a);
    assert_int_equal(a.slot, SLOT_A);
    assert_int_equal(a.address, IP4(10, 99, 0, 2));
    assert_int_equal(a.gateway, GATEWAY);
    assert_int_equal(a.prefix, 16);
    assert_string_equal(a.host_ifname, "dttv0");

    /* host end: enslaved to dtt0, isolated, up */
    assert_true(link_exists("dttv0"));
    assert_int_equal(sh("test \"$(basename $(readlink /sys/class/net/dttv0/master))\" = dtt0"), 0);
    _cleanup_free_ char *iso = NULL, *oper = NULL;
    assert_int_equal(read_file_at(AT_FDCWD, "/sys/class/net/dttv0/brport/isolated", 16, &iso, NULL),
                     0);
    assert_int_equal(iso[0], '1');
    assert_int_equal(read_file_at(AT_FDCWD, "/sys/class/net/dttv0/operstate", 16, &oper, NULL), 0);
    assert_string_equal(oper, "up\n");
    /* no eth0 on the host side */
    assert_false(link_exists("eth0") && access("/sys/class/net/eth0/master", F_OK) == 0);

    /* inside: lo and eth0 up, the address, the default route */
    fd = socket_in(ns_a, SOCK_DGRAM, 0);
    assert_true(fd >= 0);
    memset(&ifr, 0, sizeof(ifr));
    memcpy(ifr.ifr_name, "lo", 3);
    assert_int_equal(ioctl(fd, SIOCGIFFLAGS, &ifr), 0);
    assert_true(ifr.ifr_flags & IFF_UP);
    memset(&ifr, 0, sizeof(ifr));
    memcpy(ifr.ifr_name, "eth0", 5);
    assert_int_equal(ioctl(fd, SIOCGIFFLAGS, &ifr), 0);
    assert_true(ifr.ifr_flags & IFF_UP);
    assert_true(ifr.ifr_flags & IFF_RUNNING);
    assert_int_equal(ioctl(fd, SIOCGIFADDR, &ifr), 0);
    struct sockaddr_in got;
    memcpy(&got, &ifr.ifr_addr, sizeof(got));
    assert_string_equal(dt_net_format_ip4(ntohl(got.sin_addr.s_addr), ip), "10.99.0.2");
    assert_int_equal(ioctl(fd, SIOCGIFNETMASK, &ifr), 0);
    memcpy(&got, &ifr.ifr_netmask, sizeof(got));
    assert_int_equal(ntohl(got.sin_addr.s_addr), IP4(255, 255, 0, 0));
    close(fd);

    /* /proc/thread-self/net follows the thread's namespace */
    _cleanup_free_ char *routes = NULL;
    must_setns(ns_a);
    int r = read_file_at(AT_FDCWD, "/proc/thread-self/net/route", 65536, &routes, NULL);
    must_setns(host_ns);
    assert_int_equal(r, 0);
    bool found = false;
    for (char *line = strchr(routes, '\n'); line && line[1]; line = strchr(line + 1, '\n')) {
        char ifn[32];
        unsigned dst, gw;
        if (sscanf(line + 1, "%31s %x %x", ifn, &dst, &gw) == 3 && dst == 0 &&
            strcmp(ifn, "eth0") == 0 && gw == htonl(GATEWAY))
            found = true;
    }
    assert_true(found);

    /* and the route works: the gateway answers ARP and the host's ping gets a reply */
    assert_true(ping_from(-1, IP4(10, 99, 0, 2), 1000));
}

static void
test_host_is_closed_to_sandbox(void **state)
{
    int l_any = listen_in(-1, SOCK_STREAM, 0, PORT);
    int l_gw = listen_in(-1, SOCK_STREAM, GATEWAY, PORT + 1);
    int l_sb = listen_in(ns_a, SOCK_STREAM, 0, PORT);
    int r;

    /* host -> sandbox works, so replies from the sandbox (established) reach the host */
    assert_int_equal(connect_from(-1, IP4(10, 99, 0, 2), PORT, 1000), 0);
    assert_int_equal(accept_peer(l_sb), GATEWAY);
    assert_true(ping_from(-1, IP4(10, 99, 0, 2), 1000));

    /* sandbox -> host services: refused quickly (reject), whatever address they are on */
    r = connect_from(ns_a, GATEWAY, PORT, 1000);
    assert_true(r == -EHOSTUNREACH || r == -ECONNREFUSED || r == -ETIMEDOUT);
    assert_int_not_equal(r, 0);
    r = connect_from(ns_a, GATEWAY, PORT + 1, 1000);
    assert_int_not_equal(r, 0);
    r = connect_from(ns_a, UP_HOST, PORT, 1000); /* another address of the host */
    assert_int_not_equal(r, 0);
    assert_int_equal(accept_peer(l_any), 0);
    assert_int_equal(accept_peer(l_gw), 0);
    assert_false(ping_from(ns_a, GATEWAY, SLOW_MS));

    /* sanity: the same listeners do accept from the host itself */
    assert_int_equal(connect_from(-1, GATEWAY, PORT + 1, 1000), 0);
    assert_int_not_equal(accept_peer(l_gw), 0);

    close(l_any);
    close(l_gw);
    close(l_sb);
}

static void
test_sandboxes_isolated(void **state)
{
    struct dt_net_attachment b;
    int l_b;
    double t0;

    attach_ok(SLOT_B, ns_b, NULL, &b);
    assert_int_equal(b.address, IP4(10, 99, 0, 3));
    l_b = listen_in(ns_b, SOCK_STREAM, 0, PORT);

    /* B is reachable from the host ... */
    assert_int_equal(connect_from(-1, b.address, PORT, 1000), 0);
    assert_int_equal(accept_peer(l_b), GATEWAY);

    /* ... not from A, neither at layer 2 (isolated ports) ... */
    t0 = now_ms();
    assert_int_not_equal(connect_from(ns_a, b.address, PORT, SLOW_MS), 0);
    assert_false(ping_from(ns_a, b.address, SLOW_MS));
    assert_int_equal(accept_peer(l_b), 0);

    /* ... nor routed through the gateway (a host route in A pointing at the bridge). UDP, as
     * it is one-way: B's answer to a TCP SYN could not find its way back anyway. */
    int u_b = listen_in(ns_b, SOCK_DGRAM, 0, PORT_UDP);
    udp_send_from(-1, 0, b.address, PORT_UDP); /* control: B's socket does receive */
    assert_int_equal(udp_recv(u_b, 1000), GATEWAY);
    udp_send_from(ns_a, 0, b.address, PORT_UDP);
    assert_int_equal(udp_recv(u_b, SLOW_MS), 0);
    int fd = socket_in(ns_a, SOCK_DGRAM, 0);
    struct rtentry rt;
    memset(&rt, 0, sizeof(rt));
    struct sockaddr_in dst = sin4(b.address, 0), gw = sin4(GATEWAY, 0), mask = sin4(UINT32_MAX, 0);
    memcpy(&rt.rt_dst, &dst, sizeof(dst));
    memcpy(&rt.rt_gateway, &gw, sizeof(gw));
    memcpy(&rt.rt_genmask, &mask, sizeof(mask));
    rt.rt_flags = RTF_UP | RTF_GATEWAY | RTF_HOST;
    assert_int_equal(ioctl(fd, SIOCADDRT, &rt), 0);
    udp_send_from(ns_a, 0, b.address, PORT_UDP);
    int got = (int) udp_recv(u_b, SLOW_MS);
    int tcp = connect_from(ns_a, b.address, PORT, SLOW_MS);
    assert_int_equal(ioctl(fd, SIOCDELRT, &rt), 0);
    close(fd);
    assert_int_equal(got, 0);
    assert_int_not_equal(tcp, 0);
    assert_int_equal(accept_peer(l_b), 0);
    close(u_b);
    print_message("isolation checks took %.0f ms\n", now_ms() - t0);

    close(l_b);
    detach_ok(SLOT_B);
}

static void
test_policy(void **state)
{
    struct dt_net_policy block = {.block_all = true};
    struct dt_net_policy allow = {.block_all = true, .n_allow = 2};
    int l_up = listen_in(up_ns, SOCK_STREAM, 0, PORT);
    int u_up = listen_in(up_ns, SOCK_DGRAM, 0, PORT_UDP);
    struct dt_net_attachment b, c;
    double t0;
    int r;

    assert_int_equal(
            dt_net_parse_cidr("10.98.0.2/32", &allow.allow[0].addr, &allow.allow[0].prefix), 0);
    assert_int_equal(
            dt_net_parse_cidr("203.0.113.0/24", &allow.allow[1].addr, &allow.allow[1].prefix), 0);

    attach_ok(SLOT_B, ns_b, &block, &b);
    attach_ok(SLOT_C, ns_c, &allow, &c);
    assert_false(chain_exists(SLOT_A));
    assert_true(chain_exists(SLOT_B));
    assert_true(chain_exists(SLOT_C));

    /* A: no policy, both upstream addresses, masqueraded behind the host's address */
    assert_int_equal(connect_from(ns_a, UP_ALLOWED, PORT, 1000), 0);
    assert_int_equal(accept_peer(l_up), UP_HOST);
    assert_int_equal(connect_from(ns_a, UP_OTHER, PORT, 1000), 0);
    assert_int_equal(accept_peer(l_up), UP_HOST);
    assert_true(ping_from(ns_a, UP_OTHER, 1000));
    udp_send_from(ns_a, 0, UP_ALLOWED, PORT_UDP);
    assert_int_equal(udp_recv(u_up, 1000), UP_HOST);

    /* B: block-all, refused at once rather than hanging */
    t0 = now_ms();
    r = connect_from(ns_b, UP_ALLOWED, PORT, 2000);
    assert_int_equal(r, -EHOSTUNREACH);
    assert_true(now_ms() - t0 < 1000);
    assert_int_equal(connect_from(ns_b, UP_OTHER, PORT, 2000), -EHOSTUNREACH);
    assert_false(ping_from(ns_b, UP_OTHER, SLOW_MS));
    udp_send_from(ns_b, 0, UP_ALLOWED, PORT_UDP);
    assert_int_equal(udp_recv(u_up, SLOW_MS), 0);
    assert_int_equal(accept_peer(l_up), 0);

    /* C: only the allow-list */
    assert_int_equal(connect_from(ns_c, UP_ALLOWED, PORT, 1000), 0);
    assert_int_equal(accept_peer(l_up), UP_HOST);
    assert_int_equal(connect_from(ns_c, UP_OTHER, PORT, 2000), -EHOSTUNREACH);
    assert_int_equal(accept_peer(l_up), 0);

    /* established replies still flow into blocked sandboxes: the host can talk to B */
    int l_b = listen_in(ns_b, SOCK_STREAM, 0, PORT);
    assert_int_equal(connect_from(-1, b.address, PORT, 1000), 0);
    assert_int_equal(accept_peer(l_b), GATEWAY);
    close(l_b);

    /* anti-spoofing: B forges A's address (which has no policy) and gets nowhere */
    udp_send_from(ns_b, IP4(10, 99, 0, 2), UP_ALLOWED, PORT_UDP);
    assert_int_equal(udp_recv(u_up, SLOW_MS), 0);
    /* and a forged source outside the subnet is dropped too */
    udp_send_from(ns_b, IP4(10, 98, 0, 99), UP_ALLOWED, PORT_UDP);
    assert_int_equal(udp_recv(u_up, SLOW_MS), 0);
    /* control: the same datagram with A's real address gets through */
    udp_send_from(ns_a, 0, UP_ALLOWED, PORT_UDP);
    assert_int_equal(udp_recv(u_up, 1000), UP_HOST);

    /* re-attaching a slot with a different policy after detach replaces it */
    detach_ok(SLOT_C);
    assert_false(chain_exists(SLOT_C));
    attach_ok(SLOT_C, ns_c, NULL, &c);
    assert_false(chain_exists(SLOT_C));
    assert_int_equal(connect_from(ns_c, UP_OTHER, PORT, 1000), 0);
    assert_int_equal(accept_peer(l_up), UP_HOST);

    detach_ok(SLOT_B);
    detach_ok(SLOT_C);
    close(l_up);
    close(u_up);
}

static void
test_errors(void **state)
{
    struct dt_net_policy block = {.block_all = true};
    struct dt_error *e = NULL;
    int ns_d = netns_new(NULL);
    int r;

    /* a slot in use is refused and the live sandbox keeps its veth and its policy */
    attach_ok(SLOT_D, ns_d, &block, NULL);
    r = dt_net_attach(&H, SLOT_D, ns_c, NULL, NULL, &e);
    assert_int_equal(r, -EEXIST);
    assert_non_null(e);
    assert_non_null(strstr(e->message, "dttv3"));
    dt_error_free(e);
    e = NULL;
    assert_true(link_exists("dttv3"));
    assert_true(chain_exists(SLOT_D));
    assert_int_equal(connect_from(ns_d, UP_OTHER, PORT, 2000), -EHOSTUNREACH);

    /* a namespace that already has an eth0: error, and nothing is left behind */
    r = dt_net_attach(&H, SLOT_B, ns_d, NULL, NULL, &e);
    assert_true(r < 0);
    assert_non_null(e);
    dt_error_free(e);
    e = NULL;
    assert_false(link_exists("dttv1"));
    assert_false(chain_exists(SLOT_B));

    /* out of range, bad fd */
    assert_int_equal(dt_net_attach(&H, 70000, ns_c, NULL, NULL, &e), -ERANGE);
    dt_error_free(e);
    e = NULL;
    assert_int_equal(dt_net_attach(&H, SLOT_B, -1, NULL, NULL, &e), -EBADF);
    dt_error_free(e);
    e = NULL;
    int devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
    r = dt_net_attach(&H, SLOT_B, devnull, NULL, NULL, &e);
    assert_true(r < 0);
    dt_error_free(e);
    e = NULL;
    close(devnull);
    assert_false(link_exists("dttv1"));

    /* detach of a slot never attached is fine, twice */
    detach_ok(SLOT_B);
    detach_ok(SLOT_B);

    detach_ok(SLOT_D);
    assert_false(link_exists("dttv3"));
    assert_false(chain_exists(SLOT_D));
    close(ns_d);
}

static void
test_detach(void **state)
{
    int fd;
    struct ifreq ifr;

    assert_true(link_exists("dttv0"));
    detach_ok(SLOT_A);
    assert_false(link_exists("dttv0"));
    assert_false(chain_exists(SLOT_A));

    /* the sandbox's end went with it */
    fd = socket_in(ns_a, SOCK_DGRAM, 0);
    memset(&ifr, 0, sizeof(ifr));
    memcpy(ifr.ifr_name, "eth0", 5);
    assert_int_equal(ioctl(fd, SIOCGIFINDEX, &ifr), -1);
    assert_int_equal(errno, ENODEV);
    close(fd);

    /* the bridge-table entries are gone too */
    _cleanup_free_ char *out = NULL;
    assert_true(nft_ok("list table bridge daytona_test", &out));
    assert_null(strstr(out, "dttv0"));
}

static void
test_attach_detach_loop(void **state)
{
    struct dt_net_policy allow = {.n_allow = 1, .allow = {{IP4(10, 98, 0, 2), 32}}};
    int ns = netns_new(NULL);
    int links0 = dt_test_count_dir("/sys/class/net");
    int fds0 = count_fds();
    double attach_ms = 0, detach_ms = 0, t;
    const int n = 50;

    int u_up = listen_in(up_ns, SOCK_DGRAM, 0, PORT_UDP);
    int lost_out = 0, lost_in = 0;

    for (int i = 0; i < n; i++) {
        t = now_ms();
        attach_ok(SLOT_LOOP, ns, i % 2 ? &allow : NULL, NULL);
        attach_ms += now_ms() - t;
        /* the very first packet each way must make it: a veth whose carrier change is still
         * pending drops what it is given (see link_sync() in net.c) */
        udp_send_from(ns, 0, UP_ALLOWED, PORT_UDP);
        if (udp_recv(u_up, 300) != UP_HOST)
            lost_out++;
        if (!ping_from(-1, IP4(10, 99, 0, 12), 300))
            lost_in++;
        t = now_ms();
        detach_ok(SLOT_LOOP);
        detach_ms += now_ms() - t;
    }
    print_message("attach %.2f ms, detach %.2f ms on average over %d rounds\n", attach_ms / n,
                  detach_ms / n, n);
    close(u_up);
    assert_int_equal(lost_out, 0);
    assert_int_equal(lost_in, 0);

    assert_int_equal(dt_test_count_dir("/sys/class/net"), links0);
    assert_int_equal(count_fds(), fds0);
    assert_false(link_exists("dttv10"));
    assert_false(chain_exists(SLOT_LOOP));
    _cleanup_free_ char *out = NULL, *bout = NULL;
    assert_true(nft_ok("list table inet daytona_test", &out));
    assert_null(strstr(out, "sb-"));
    assert_null(strstr(out, "10.99.0.12"));
    assert_true(nft_ok("list table bridge daytona_test", &bout));
    assert_null(strstr(bout, "dttv"));
    close(ns);
}

static void
test_loopback_up(void **state)
{
    struct dt_error *e = NULL;
    struct ifreq ifr;
    int ns = netns_new(NULL);
    int fd;

    fd = socket_in(ns, SOCK_DGRAM, 0);
    memset(&ifr, 0, sizeof(ifr));
    memcpy(ifr.ifr_name, "lo", 3);
    assert_int_equal(ioctl(fd, SIOCGIFFLAGS, &ifr), 0);
    assert_false(ifr.ifr_flags & IFF_UP);

    assert_int_equal(dt_net_loopback_up(ns, &e), 0);
    assert_int_equal(ioctl(fd, SIOCGIFFLAGS, &ifr), 0);
    assert_true(ifr.ifr_flags & IFF_UP);
    /* only loopback in there */
    memcpy(ifr.ifr_name, "eth0", 5);
    assert_int_equal(ioctl(fd, SIOCGIFINDEX, &ifr), -1);
    close(fd);

    /* our own thread is back in the host namespace */
    struct stat a, b;
    assert_int_equal(stat("/proc/thread-self/ns/net", &a), 0);
    assert_int_equal(fstat(host_ns, &b), 0);
    assert_int_equal(a.st_ino, b.st_ino);

    assert_int_equal(dt_net_loopback_up(-1, &e), -EBADF);
    dt_error_free(e);
    close(ns);
}

static void
test_teardown(void **state)
{
    struct dt_error *e = NULL;
    int ns = netns_new(NULL);

    /* a sandbox still attached keeps its veth (it is not ours to remove) */
    attach_ok(SLOT_D, ns, NULL, NULL);
    assert_int_equal(dt_net_host_teardown(&H, &e), 0);
    assert_null(e);
    assert_false(link_exists("dtt0"));
    assert_false(nft_ok("list table inet daytona_test", NULL));
    assert_false(nft_ok("list table bridge daytona_test", NULL));
    /* idempotent, and detach without the table is fine */
    assert_int_equal(dt_net_host_teardown(&H, &e), 0);
    detach_ok(SLOT_D);
    assert_false(link_exists("dttv3"));
    /* attach without a host setup fails cleanly */
    assert_true(dt_net_attach(&H, SLOT_D, ns, NULL, NULL, &e) < 0);
    assert_non_null(e);
    assert_non_null(strstr(e->message, "dtt0"));
    dt_error_free(e);
    assert_false(link_exists("dttv3"));
    close(ns);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
            cmocka_unit_test_teardown(test_host_setup, test_teardown_slots),
            cmocka_unit_test_teardown(test_attach_configures_sandbox, test_teardown_slots),
            cmocka_unit_test_teardown(test_host_is_closed_to_sandbox, test_teardown_slots),
            cmocka_unit_test_teardown(test_sandboxes_isolated, test_teardown_slots),
            cmocka_unit_test_teardown(test_policy, test_teardown_slots),
            cmocka_unit_test_teardown(test_errors, test_teardown_slots),
            cmocka_unit_test_teardown(test_detach, test_teardown_slots),
            cmocka_unit_test_teardown(test_attach_detach_loop, test_teardown_slots),
            cmocka_unit_test_teardown(test_loopback_up, test_teardown_slots),
            cmocka_unit_test_teardown(test_teardown, test_teardown_slots),
    };

    dt_test_require_root();
    if (access("/proc/self/ns/net", F_OK) < 0 || unshare(0) < 0)
        dt_test_skip("no network namespaces");
    if (access("/usr/sbin/ip", X_OK) < 0 && access("/sbin/ip", X_OK) < 0 &&
        access("/usr/bin/ip", X_OK) < 0)
        dt_test_skip("needs iproute2 (ip) to build the upstream host");
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
