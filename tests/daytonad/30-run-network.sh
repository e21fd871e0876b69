#!/bin/bash
# daytonad run --network: loopback only by default; bridge mode gives an address, a route and
# NAT, but no way to the host's own services.
. "$(dirname "$0")/lib.sh"

before=$(host_state)

out=$(run "$ROOTFS" -- /bin/sh -c 'ls /sys/class/net | tr "\n" " "')
expect_eq "network none: loopback only" "$out" "lo "
out=$(run "$ROOTFS" -- /bin/sh -c 'cat /sys/class/net/lo/operstate; cat /sys/class/net/lo/flags')
expect_match "loopback is up" "$out" "0x[0-9a-f]*9$"

# A listener on the host, on all addresses: the sandbox must not reach it.
python3 -c '
import socket, sys, time
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", 47123)); s.listen(8); time.sleep(60)' &
listener=$!
trap 'kill $listener 2>/dev/null; cleanup' EXIT
sleep 0.3

out=$(run --network bridge "$ROOTFS" -- /bin/sh -c 'ip -4 -o addr show eth0 | grep -o "inet [0-9.]*"; ip route | grep default')
expect_match "bridge: eth0 has a sandbox address" "$out" "inet 10\.88\.[0-9]+\.[0-9]+"
expect_match "bridge: default route via the bridge" "$out" "default via 10\.88\.0\.1"
out=$(run --network bridge "$ROOTFS" -- /probe connect 10.88.0.1 47123)
expect_match "host services unreachable through the gateway" "$out" "^(ECONNREFUSED|EHOSTUNREACH|timeout|EACCES)$"
hostip=$(ip -4 -o route get 1.1.1.1 2>/dev/null | grep -o 'src [0-9.]*' | cut -d' ' -f2)
if [ -n "$hostip" ]; then
    out=$(run --network bridge "$ROOTFS" -- /probe connect "$hostip" 47123)
    expect_match "host services unreachable on the host's address" "$out" "^(ECONNREFUSED|EHOSTUNREACH|timeout|EACCES)$"
fi
out=$(run "$ROOTFS" -- /probe connect 127.0.0.1 47123)
expect_eq "the sandbox's 127.0.0.1 is its own" "$out" "ECONNREFUSED"
out=$(run --network bridge "$ROOTFS" -- /bin/sh -c 'grep -c nameserver /etc/resolv.conf')
[ "$out" -ge 1 ] || fail "bridge: no nameserver in resolv.conf"; ok "bridge: resolv.conf has nameservers"
out=$(run --network bridge --block-egress "$ROOTFS" -- /probe connect 192.0.2.1 80)
expect_match "block-egress: outbound traffic refused" "$out" "^(EHOSTUNREACH|ECONNREFUSED|EACCES|timeout)$"
err=$(run --block-egress "$ROOTFS" -- /bin/true 2>&1); st=$?
expect_eq "egress rules need bridge mode" "$st" "125"

kill $listener 2>/dev/null; wait $listener 2>/dev/null
after=$(host_state)
expect_eq "nothing left behind" "$after" "$before"
