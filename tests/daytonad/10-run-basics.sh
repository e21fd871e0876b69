#!/bin/bash
# daytonad run: isolation properties seen from inside, exit codes, bad input, no leftovers.
. "$(dirname "$0")/lib.sh"

before=$(host_state)

out=$(run --hostname box1 "$ROOTFS" -- /probe hostname); expect_eq "hostname" "$out" "box1"
out=$(run "$ROOTFS" -- /probe pid); expect_eq "init is pid 1" "$out" "1"
out=$(run "$ROOTFS" -- /probe id); expect_eq "root inside" "$out" "uid=0 gid=0 euid=0"
out=$(run "$ROOTFS" -- /bin/cat /proc/self/uid_map | tr -s ' ')
expect_match "root maps to an unprivileged host uid" "$out" "^ ?0 [1-9][0-9]{6,} 65536$"
out=$(run "$ROOTFS" -- /probe stat /etc/passwd); expect_match "image files owned by root inside" "$out" "^uid=0 gid=0"
out=$(run "$ROOTFS" -- /probe stat /home/daytona); expect_match "image ownership shifted, not squashed" "$out" "^uid=1000 gid=1000"
out=$(run --user daytona "$ROOTFS" -- /probe id); expect_eq "--user by name" "$out" "uid=1000 gid=1000 euid=1000"
out=$(run --user 1234:5678 "$ROOTFS" -- /probe id); expect_eq "--user uid:gid" "$out" "uid=1234 gid=5678 euid=1234"
out=$(run --user daytona "$ROOTFS" -- /bin/sh -c 'echo $HOME; pwd'); expect_eq "user's home" "$out" "/home/daytona
/home/daytona"
out=$(run -e FOO=bar --cwd /tmp "$ROOTFS" -- /bin/sh -c 'echo $FOO; pwd'); expect_eq "env and cwd" "$out" "bar
/tmp"

# /proc, /sys, /dev
# Which of Docker's masked paths exist depends on the kernel's configuration: check those the host has.
for f in kcore keys timer_list sched_debug latency_stats; do
    [ -e /proc/$f ] || continue
    out=$(run "$ROOTFS" -- /bin/sh -c "wc -c < /proc/$f"); expect_eq "/proc/$f is masked" "$out" "0"
done
for d in acpi scsi asound; do
    [ -d /proc/$d ] || continue
    out=$(run "$ROOTFS" -- /bin/sh -c "ls -A /proc/$d | wc -l; touch /proc/$d/x 2>&1 | grep -c Read-only")
    expect_eq "/proc/$d is an empty read-only directory" "$(echo $out)" "0 1"
done
out=$(run "$ROOTFS" -- /probe write /proc/sys/kernel/hostname x); expect_eq "/proc/sys read-only" "$out" "error EROFS"
if [ -e /proc/sysrq-trigger ]; then
    out=$(run "$ROOTFS" -- /probe write /proc/sysrq-trigger x); expect_eq "/proc/sysrq-trigger read-only" "$out" "error EROFS"
fi
out=$(run "$ROOTFS" -- /probe write /sys/kernel/x x); expect_match "/sys read-only" "$out" "error (EROFS|EACCES|ENOENT)"
out=$(run "$ROOTFS" -- /bin/sh -c 'ls /dev | sort | tr "\n" " "')
expect_eq "minimal /dev" "$out" "core fd full mqueue null ptmx pts random shm stderr stdin stdout tty urandom zero "
out=$(run "$ROOTFS" -- /bin/sh -c 'echo hi > /dev/null && head -c 4 /dev/zero | wc -c'); expect_eq "/dev nodes work" "$out" "4"
out=$(run --hostname h2 "$ROOTFS" -- /bin/sh -c 'cat /etc/hostname; grep -c h2 /etc/hosts; test -f /etc/resolv.conf && echo r')
expect_eq "generated /etc files" "$(echo $out)" "h2 1 r"

# Security
out=$(run "$ROOTFS" -- /probe caps)
expect_match "docker's default capabilities" "$out" "CapEff:	00000000a80425fb"
expect_match "bounding set reduced" "$out" "CapBnd:	00000000a80425fb"
expect_match "no_new_privs" "$out" "NoNewPrivs:	1"
expect_match "seccomp filter" "$out" "Seccomp:	2"
for sc in keyctl add_key bpf perf_event_open unshare mount kexec_load open_by_handle_at init_module setns; do
    out=$(run "$ROOTFS" -- /probe seccomp $sc); expect_eq "seccomp denies $sc" "$out" "EPERM"
done
out=$(run "$ROOTFS" -- /probe seccomp clone3); expect_eq "clone3 -> ENOSYS (libc falls back)" "$out" "ENOSYS"
out=$(run "$ROOTFS" -- /probe seccomp getpid); expect_eq "ordinary syscalls work" "$out" "ok"
out=$(run --user daytona "$ROOTFS" -- /probe caps); expect_match "no capabilities for a user" "$out" "CapEff:	0000000000000000"
out=$(exec 7</dev/null 8</dev/null; run "$ROOTFS" -- /probe fds | tr '\n' ' '); expect_eq "no inherited fds" "$out" "0 1 2 "

# Exit codes and signals
run "$ROOTFS" -- /probe exit 7; expect_eq "exit status passed through" "$?" "7"
run "$ROOTFS" -- /bin/sh -c '/probe signal 15; exit $?'; expect_eq "signal status through a shell" "$?" "143"
# An init dies of a signal only from outside (the kernel shields a pid namespace's init from its
# own); SIGKILL it from the host and expect 128+9.
"$DT_DAYTONAD" run "$ROOTFS" -- /probe sleep 30 & runpid=$!
for i in $(seq 50); do init=$(pgrep -P $runpid) && break; sleep 0.1; done
kill -9 "$init"; wait $runpid; expect_eq "init killed by signal -> 128+N" "$?" "137"
# SIGTERM to daytonad run is passed on to the init, which may handle it.
"$DT_DAYTONAD" run "$ROOTFS" -- /probe sigterm-handler > "$TMP/sig.out" & runpid=$!
for i in $(seq 50); do grep -q ready "$TMP/sig.out" && break; sleep 0.1; done
kill -TERM $runpid; wait $runpid; expect_eq "SIGTERM forwarded to the init" "$?" "42"
out=$(echo piped | run "$ROOTFS" -- /bin/cat); expect_eq "stdin passed through" "$out" "piped"

# Bind mounts
vol="$TMP/vol"; mkdir -p "$vol"; chmod 1777 "$vol"; echo host > "$vol/f"
out=$(run --bind "$vol:/data" "$ROOTFS" -- /bin/sh -c 'cat /data/f; echo inside > /data/g')
expect_eq "bind mount readable" "$out" "host"
expect_eq "bind mount writable" "$(cat "$vol/g")" "inside"
[ "$(stat -c %u "$vol/g")" -ge 16777216 ] || fail "a file written to a bind is owned by host uid $(stat -c %u "$vol/g")"
ok "the sandbox writes to binds as its unprivileged host uid"
# Regression: binds were idmapped, so the sandbox's root made host-root setuid files in them.
run --bind "$vol:/data" "$ROOTFS" -- /bin/sh -c 'cp /bin/busybox /data/bb; chmod 4755 /data/bb' 2>/dev/null
[ "$(stat -c %u "$vol/bb")" != 0 ] || fail "sandbox root created a host-root-owned file in a bind"
ok "no host-root setuid files from inside"
out=$(run --bind "$vol:/data" "$ROOTFS" -- /bin/sh -c 'grep " /data " /proc/self/mounts')
expect_match "binds are nosuid and nodev" "$out" "nosuid,nodev"
out=$(run --bind "$vol:/data:ro" "$ROOTFS" -- /probe write /data/h x); expect_eq "read-only bind" "$out" "error EROFS"

# Writes go to a throwaway layer, never into ROOTFS
run "$ROOTFS" -- /probe write /etc/newfile x >/dev/null
[ ! -e "$ROOTFS/etc/newfile" ] || fail "write leaked into the lower layer"; ok "lower layer untouched"

# Bad input: one line, status 125, nothing left behind
for args in "--memory lots $ROOTFS -- /bin/true" "--cpus 0 $ROOTFS -- /bin/true" "--cpus 999 $ROOTFS -- /bin/true" \
            "--bogus $ROOTFS -- /bin/true" "/nonexistent -- /bin/true" "--network wifi $ROOTFS -- /bin/true" \
            "--memory 1K $ROOTFS -- /bin/true" "--user nosuchuser $ROOTFS -- /bin/true" "$ROOTFS" \
            "--bind /nonexistent:/x $ROOTFS -- /bin/true" "--hostname bad_host! $ROOTFS -- /bin/true" \
            "$ROOTFS -- /nonexistent-cmd"; do
    err=$(run $args 2>&1 >/dev/null); st=$?
    [ "$st" = 125 ] || [ "$st" = 127 ] || fail "bad input '$args': status $st, want 125"
    [ "$(printf '%s\n' "$err" | wc -l)" = 1 ] || fail "bad input '$args': want one line, got: $err"
    case "$err" in daytonad:*) ;; *) fail "bad input '$args': message '$err'";; esac
done
ok "bad input rejected with one line and status 125"
err=$(run "$ROOTFS" -- /nonexistent-cmd 2>&1); st=$?
expect_eq "missing command status" "$st" "125"
expect_match "missing command message" "$err" "execute '/nonexistent-cmd': No such file"

after=$(host_state)
expect_eq "nothing left behind" "$after" "$before"
