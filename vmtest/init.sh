#!/bin/busybox sh
# shellcheck shell=dash
# PID 1 of the vmtest guest, run by busybox sh (the tests' /bin/sh is dash). It
# prepares a minimal system, loads the kernel modules listed by run.sh, runs
# every /tests/*.test as root (and those listed in /etc/vmtest/rootless once more
# as uid 65534) and reports each exit status on the console
# behind the run's marker, then turns the VM off.
#
# No "set -e": if PID 1 exits the kernel panics, and a half-prepared system must
# still report its result. Every step reports its own failure instead.

export PATH=/usr/sbin:/usr/bin:/sbin:/bin
# Applet links where no real tool was copied in (existing files are kept).
/bin/busybox --install -s

mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts /dev/shm
mount -t devpts devpts /dev/pts
mount -t tmpfs -o mode=1777 tmpfs /dev/shm
mount -t tmpfs -o mode=0755 tmpfs /run
mount -t tmpfs -o mode=1777 tmpfs /tmp
mount -t cgroup2 cgroup2 /sys/fs/cgroup 2>/dev/null ||
	echo "vmtest: cgroup2 not mounted (tests needing cgroups will fail)"
# Files every Debian system has, which guests' private mounts cover with their own.
[ -e /etc/hosts ] || printf '127.0.0.1\tlocalhost\n' >/etc/hosts
[ -e /etc/resolv.conf ] || : >/etc/resolv.conf
[ -e /etc/hostname ] || echo vmtest >/etc/hostname
# As Debian's netbase has it: without it glibc returns a name's first /etc/hosts line only,
# so a guest listed with an IPv4 and an IPv6 line would resolve to IPv4 alone.
[ -e /etc/host.conf ] || echo 'multi on' >/etc/host.conf
mkdir -p /run/netns

# Kernel chatter (link state, module taint) would interleave with test output on
# the one console; keep only emergencies there. Warnings are shown after the run.
echo 1 >/proc/sys/kernel/printk

MARK="PONTOON-VMTEST $(cat /etc/vmtest/nonce)"
# The marker starts on a fresh line even when a test's output did not end with one.
mark() { printf '\n%s %s\n' "$MARK" "$*"; }
uptime_s() { read -r up _ </proc/uptime; echo "$up"; }
since() { awk -v a="$1" -v b="$(uptime_s)" 'BEGIN { printf "%.2f", b - a }'; }

mark "boot $(uptime_s)"
hostname vmtest
ip link set lo up

kver=$(uname -r)
t0=$(uptime_s)
failed_mods=""
n=0
while read -r mod; do
	[ -n "$mod" ] || continue
	if insmod "/lib/modules/$kver/$mod"; then
		n=$((n + 1))
	else
		failed_mods="$failed_mods ${mod##*/}"
	fi
done </etc/vmtest/modules
echo "vmtest: loaded $n modules in $(since "$t0")s"
if [ -n "$failed_mods" ]; then
	mark "modules-failed$failed_mods"
fi

# Arguments are whitespace-separated words, split without globbing so that
# regexes such as -test.run 'Netem.*' pass intact.
set -f
# shellcheck disable=SC2046 # word splitting is the point
set -- $(cat /etc/vmtest/args 2>/dev/null)
set +f

for bin in /tests/*.test; do
	[ -x "$bin" ] || continue
	name=${bin##*/}
	work=$(mktemp -d "/tmp/$name.XXXXXX")
	echo "=== vmtest: $name $*"
	t0=$(uptime_s)
	(cd "$work" && exec env -i PATH="$PATH" HOME=/root USER=root TMPDIR=/tmp \
		PONTOON_VM=1 "$bin" "$@") </dev/null
	rc=$?
	mark "result $name $rc $(since "$t0")"
	# The same binary again as an ordinary user, where the project's tests build their
	# networks in user namespaces of their own: the stock kernel's rules for those apply.
	# util-linux's setpriv by path: busybox sh would run its own applet, which cannot.
	grep -qx "$name" /etc/vmtest/rootless 2>/dev/null || continue
	work=$(mktemp -d "/tmp/$name.rootless.XXXXXX")
	chown 65534:65534 "$work"
	echo "=== vmtest: $name (uid 65534) $*"
	t0=$(uptime_s)
	(cd "$work" && exec /usr/bin/setpriv --reuid=65534 --regid=65534 --clear-groups \
		env -i PATH="$PATH" HOME="$work" USER=nobody TMPDIR="$work" PONTOON_VM=1 "$bin" "$@") </dev/null
	rc=$?
	mark "result $name(rootless) $rc $(since "$t0")"
done

# Warnings and oopses are hidden from the console while tests run; show them now.
dmesg | grep -E 'WARNING:|BUG:|Oops|Call Trace|general protection' &&
	echo "vmtest: kernel reported problems (above)"

mark "done $(uptime_s)"
# qemu runs with -no-reboot, so a reboot ends the VM without needing ACPI.
reboot -f
