# Shared helpers for the daytonad shell tests (sourced). Tests print TAP-ish lines and exit
# non-zero on the first failure; 77 means skipped.
set -u

fail() { echo "not ok - $*" >&2; exit 1; }
ok() { echo "ok - $*"; }
skip() { echo "SKIP: $*" >&2; exit 77; }

[ "$(id -u)" = 0 ] || skip "needs root"
: "${DT_DAYTONAD:?DT_DAYTONAD must point at build/bin/daytonad}"
: "${DT_PROBE:?DT_PROBE must point at the static probe}"
[ -x /bin/busybox ] || skip "busybox-static is not installed"

TMP=$(mktemp -d /tmp/dt-test.XXXXXX)
export DAYTONA_RUN_STATE_DIR="$TMP/state"
cleanup() { rm -rf --one-file-system "$TMP"; }
trap cleanup EXIT

# make_rootfs DIR: busybox + probe + passwd with root and daytona.
make_rootfs() {
    d=$1
    mkdir -p "$d/bin" "$d/etc" "$d/tmp" "$d/root" "$d/home/daytona" "$d/proc" "$d/sys" "$d/dev"
    chmod 1777 "$d/tmp"
    cp /bin/busybox "$d/bin/busybox"
    for a in sh cat echo ls id hostname sleep true false mkdir rm stat head wc grep ip env touch \
             dd seq yes df sync ps kill nproc; do
        ln -sf busybox "$d/bin/$a"
    done
    cp "$DT_PROBE" "$d/probe"
    printf 'root:x:0:0:root:/root:/bin/sh\ndaytona:x:1000:1000::/home/daytona:/bin/sh\n' > "$d/etc/passwd"
    printf 'root:x:0:\ntty:x:5:\ndaytona:x:1000:\n' > "$d/etc/group"
    chown 1000:1000 "$d/home/daytona"
}

ROOTFS="$TMP/rootfs"
make_rootfs "$ROOTFS"

run() { "$DT_DAYTONAD" run "$@"; }

# expect_eq WHAT GOT WANT
expect_eq() { [ "$2" = "$3" ] || fail "$1: got '$2', want '$3'"; ok "$1"; }
expect_match() { printf '%s' "$2" | grep -Eq -- "$3" || fail "$1: '$2' does not match '$3'"; ok "$1"; }

# host_state: a fingerprint of what a sandbox could leak on the host.
host_state() {
    {
        echo "mounts $(wc -l < /proc/self/mountinfo)"
        echo "links $(ls /sys/class/net | grep -c '^dtv' || true)"
        echo "loops $(cat /sys/block/loop*/loop/backing_file 2>/dev/null | wc -l)"
        echo "state $(ls "$DAYTONA_RUN_STATE_DIR" 2>/dev/null | grep -vc '^slots$' || true)"
        for c in memory pids freezer cpu; do
            echo "cg-$c $(find /sys/fs/cgroup/$c -maxdepth 6 -type d -path '*daytona*' -name 'run-*' 2>/dev/null | wc -l)"
        done
        echo "sandbox-procs $(ps -eo uid= | awk '$1 >= 16777216' | wc -l)"
        echo "daytonad-procs $(pgrep -c -f 'daytonad run' || true)"
    }
}
