#!/bin/bash
# daytonad run: memory, pids, CPU and disk limits are enforced and visible inside.
. "$(dirname "$0")/lib.sh"

before=$(host_state)

err=$(run --memory 32M "$ROOTFS" -- /probe alloc 200 2>&1 >/dev/null); st=$?
expect_eq "memory hog is killed" "$st" "137"
expect_match "OOM kill reported" "$err" "killed by the OOM killer"
out=$(run --memory 64M "$ROOTFS" -- /probe alloc 16); expect_eq "allocation under the limit works" "$out" "allocated 16 MiB"
out=$(run --memory 64M "$ROOTFS" -- /bin/grep MemTotal /proc/meminfo | tr -s ' ')
expect_eq "/proc/meminfo shows the limit" "$out" "MemTotal: 65536 kB"

out=$(run --pids 20 "$ROOTFS" -- /probe forkbomb)
expect_match "fork bomb stops at the pids limit" "$out" "^forked 1[0-9] then EAGAIN$"

out=$(run --cpus 1 "$ROOTFS" -- /probe nproc); expect_eq "nproc shows the CPU limit" "$out" "affinity=1 online=1"
out=$(run --cpus 0.5 "$ROOTFS" -- /probe nproc); expect_eq "fractional CPUs round up" "$out" "affinity=1 online=1"
out=$(run --cpus 0.25 "$ROOTFS" -- /probe spin 2)
pct=${out#cpu_percent=}
[ "$pct" -ge 10 ] && [ "$pct" -le 40 ] || fail "CPU quota 0.25: spinner got $pct% of a CPU"
ok "CPU spinner held to its quota ($pct%)"

if [ -e /dev/loop-control ] && command -v mkfs.ext4 >/dev/null; then
    out=$(run --disk 64M "$ROOTFS" -- /probe fill /big)
    expect_match "disk filler gets ENOSPC" "$out" "then ENOSPC"
    mb=$(echo "$out" | sed -n 's/wrote \([0-9]*\) MiB.*/\1/p')
    [ "$mb" -ge 40 ] && [ "$mb" -le 64 ] || fail "disk quota 64M: wrote $mb MiB"
    ok "quota holds near 64 MiB ($mb MiB)"
fi

after=$(host_state)
expect_eq "nothing left behind" "$after" "$before"
