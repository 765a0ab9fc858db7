#!/usr/bin/env bash
# Run statically linked Go test binaries as root inside a qemu VM that boots
# Debian's stock kernel (linux-image-amd64), so tests can use kernel features
# this machine's own kernel lacks (netem, prio, bridge-family reject, ...).
#
#   vmtest/run.sh DIR
#
# DIR holds *.test binaries (CGO_ENABLED=0 go test -c -o DIR/x.test ./pkg) and
# optionally DIR/args: extra words for every binary, e.g. "-test.v -test.run Netem"
# (whitespace-separated, no quoting), and optionally DIR/rootless: names of
# binaries (one per line) to run a second time as the unprivileged uid 65534
# (through util-linux's setpriv). Each binary runs as root with env
# PONTOON_VM=1 and cwd a fresh directory on tmpfs. Output is streamed; the last
# line is a summary. Exit status: 0 every binary exited 0; 1 a binary failed, the
# VM crashed or timed out; 2 bad usage or the lane could not be prepared.
#
# Environment:
#   VMTEST_TIMEOUT        seconds before qemu is killed (default 900)
#   VMTEST_BOOT_TIMEOUT   seconds for the guest's init to start (default 120)
#   VMTEST_ACCEL          kvm, tcg or auto (default auto: hardware KVM if usable,
#                         else TCG; a KVM guest that does not boot is retried on TCG)
#   VMTEST_MEM            guest memory in MiB (default 3072: 253 dual-stack guests of a full bridge need it)
#   VMTEST_CPUS           guest vCPUs (default 2)
#   VMTEST_CACHE          kernel cache directory (default vmtest/.cache)
#   VMTEST_KERNEL_PKG     kernel package or meta-package (default linux-image-amd64)
#   VMTEST_KERNEL_REFRESH if set, ask apt for the current kernel version instead
#                         of reusing the one cached for VMTEST_KERNEL_PKG
#   VMTEST_MODULES_EXTRA  more module names to load in the guest
#   VMTEST_TOOLS          host commands copied in with their libraries
#                         (default "ip tc bridge nft iptables bash dash getent nsenter setpriv"; busybox covers
#                         the rest; busybox's own nsenter would run its ip applet, and its setpriv cannot
#                         change uids)
#   VMTEST_KEEP           if set, keep the work directory (initramfs, console log)

set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

timeout_s=${VMTEST_TIMEOUT:-900}
boot_timeout=${VMTEST_BOOT_TIMEOUT:-120}
accel=${VMTEST_ACCEL:-auto}
mem=${VMTEST_MEM:-3072}
cpus=${VMTEST_CPUS:-2}
cache=${VMTEST_CACHE:-$here/.cache}
kernel_pkg=${VMTEST_KERNEL_PKG:-linux-image-amd64}
tools=${VMTEST_TOOLS-ip tc bridge nft iptables bash dash getent nsenter setpriv}

# What the project's tests need from the kernel. Built-in ones (sch_fq_codel in
# Debian's config) are skipped; dependencies are added from modules.dep. The
# *_diag modules back the sock_diag netlink family that partition uses to cut
# established connections. nft_compat with the xt_* matches serves
# iptables-nft rules (netsetup writes iptables' own conntrack match into an
# iptables FORWARD chain; iptables -S needs tcp and comment to list rules).
# br_netfilter is left out on purpose: it would push bridged frames through the
# IP hooks and change what bridge tests observe.
modules=(
	sch_netem sch_htb sch_tbf sch_prio sch_fq_codel sch_ingress cls_u32 act_mirred ifb
	veth bridge 8021q dummy
	nf_tables nf_conntrack nf_nat nft_chain_nat nft_ct nft_nat nft_masq
	nft_reject_inet nft_reject_ipv4 nft_reject_ipv6 nft_numgen nft_limit nft_fib_inet
	nft_reject_bridge nft_meta_bridge
	inet_diag tcp_diag udp_diag
	nft_compat xt_conntrack xt_tcpudp xt_comment
)
# shellcheck disable=SC2206 # a space-separated list by design
modules+=(${VMTEST_MODULES_EXTRA:-})

log() { printf 'vmtest: %s\n' "$*" >&2; }
die() {
	log "$*"
	exit 2
}

if [ $# -ne 1 ] || [ ! -d "$1" ]; then
	die "usage: $0 DIR (DIR holds *.test binaries and optionally args)"
fi
testdir=$(cd "$1" && pwd)
shopt -s nullglob
binaries=("$testdir"/*.test)
shopt -u nullglob
rootless=()
if [ -f "$testdir/rootless" ]; then
	while read -r r; do
		[ -n "$r" ] || continue
		[ -x "$testdir/$r" ] || die "$testdir/rootless names $r, which is not among the binaries"
		rootless+=("$r")
	done <"$testdir/rootless"
fi
if [ ${#rootless[@]} -gt 0 ]; then
	case " $tools " in *" setpriv "*) ;; *) tools="$tools setpriv" ;; esac
fi
[ ${#binaries[@]} -gt 0 ] || die "no *.test binaries in $testdir: build them with CGO_ENABLED=0 go test -c -o $testdir/NAME.test ./pkg"
case $timeout_s in '' | *[!0-9]*) die "VMTEST_TIMEOUT=$timeout_s: want whole seconds, e.g. 900" ;; esac
case $boot_timeout in '' | *[!0-9]*) die "VMTEST_BOOT_TIMEOUT=$boot_timeout: want whole seconds, e.g. 120" ;; esac
case $accel in auto | kvm | tcg) ;; *) die "VMTEST_ACCEL=$accel: want auto, kvm or tcg" ;; esac

# ---- host packages -------------------------------------------------------

apt_install() {
	[ "$(id -u)" -eq 0 ] || die "missing packages $*: install them (apt-get install $*) or run as root"
	log "installing $*"
	local opts=(-y --no-install-recommends -o DPkg::Lock::Timeout=300)
	DEBIAN_FRONTEND=noninteractive apt-get install "${opts[@]}" "$@" >&2 ||
		{ apt-get update >&2 && DEBIAN_FRONTEND=noninteractive apt-get install "${opts[@]}" "$@" >&2; } ||
		die "apt-get install $* failed"
}

installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'ok installed'; }

need=()
command -v qemu-system-x86_64 >/dev/null || need+=(qemu-system-x86)
command -v cpio >/dev/null || need+=(cpio)
# Debian's kernel package ships no modules.dep (its postinst runs depmod), so
# the host's depmod builds it for the extracted tree.
PATH=$PATH:/usr/sbin:/sbin
command -v depmod >/dev/null || need+=(kmod)
installed busybox-static || need+=(busybox-static)
for t in $tools; do
	command -v "$t" >/dev/null && continue
	case $t in
	ip | tc | bridge) need+=(iproute2) ;;
	nft) need+=(nftables) ;;
	iptables | ip6tables) need+=(iptables) ;;
	setpriv | nsenter) need+=(util-linux) ;;
	getent) need+=(libc-bin) ;;
	*) die "VMTEST_TOOLS: $t is not installed on the host and has no known package; install it or drop it" ;;
	esac
done
if [ ${#need[@]} -gt 0 ]; then
	# shellcheck disable=SC2046 # package names have no spaces
	apt_install $(printf '%s\n' "${need[@]}" | sort -u)
fi
busybox=$(dpkg-query -L busybox-static | grep -m1 '/busybox$')

# ---- kernel --------------------------------------------------------------

# kernel_version_pkg prints "PACKAGE VERSION" of the kernel image behind
# $kernel_pkg, following the meta-package to the versioned image package.
kernel_version_pkg() {
	local pkg ver
	pkg=$(apt-cache depends "$kernel_pkg" 2>/dev/null |
		awk '$1 == "Depends:" && $2 ~ /^linux-image-[0-9]/ { print $2; exit }')
	[ -n "$pkg" ] || pkg=$kernel_pkg
	ver=$(apt-cache policy "$pkg" 2>/dev/null | awk '$1 == "Candidate:" { print $2 }')
	[ -n "$ver" ] && [ "$ver" != "(none)" ] || return 1
	echo "$pkg $ver"
}

mkdir -p "$cache"
# Which cached kernel serves $kernel_pkg. Asking apt every run costs over a
# second, and a kernel that changes only when asked keeps runs comparable.
current=$cache/current-$kernel_pkg
kdir=""
if [ -z "${VMTEST_KERNEL_REFRESH:-}" ] && [ -f "$current" ] && [ -f "$cache/$(cat "$current")/kver" ]; then
	kdir=$cache/$(cat "$current")
else
	if ! pv=$(kernel_version_pkg); then
		[ "$(id -u)" -ne 0 ] || apt-get update >&2 || true
		pv=$(kernel_version_pkg) || pv=""
	fi
	if [ -n "$pv" ]; then
		read -r kpkg kversion <<<"$pv"
		kdir=$cache/${kpkg}_${kversion//:/%}
	else
		# No package lists (offline): fall back to the newest kernel already cached.
		kdir=$(find "$cache" -mindepth 1 -maxdepth 1 -name 'linux-image-*' -type d | sort -V | tail -1)
		[ -n "$kdir" ] || die "cannot resolve $kernel_pkg with apt-cache and nothing is cached in $cache"
		log "apt-cache cannot resolve $kernel_pkg; using cached ${kdir##*/}"
	fi
fi

if [ ! -f "$kdir/kver" ]; then
	log "fetching ${kdir##*/} into $cache"
	dl=$(mktemp -d "$cache/.fetch.XXXXXX")
	trap 'rm -rf "$dl"' EXIT
	apt_opts=()
	# apt drops privileges to _apt for downloads, which cannot write a root-owned temp dir.
	[ "$(id -u)" -ne 0 ] || apt_opts=(-o APT::Sandbox::User=root)
	(cd "$dl" && apt-get download "${apt_opts[@]}" "$kpkg=$kversion" >&2) || die "apt-get download $kpkg=$kversion failed"
	dpkg-deb -x "$dl"/*.deb "$dl/root"
	kv=$(ls "$dl/root/lib/modules")
	[ -f "$dl/root/boot/vmlinuz-$kv" ] || die "$kpkg has no /boot/vmlinuz-$kv"
	depmod -b "$dl/root" "$kv"
	mkdir -p "$dl/k"
	mv "$dl/root/boot/vmlinuz-$kv" "$dl/k/vmlinuz"
	mv "$dl/root/boot/config-$kv" "$dl/k/config" 2>/dev/null || true
	mv "$dl/root/lib/modules/$kv" "$dl/k/modules"
	echo "$kv" >"$dl/k/kver"
	# Another run may have finished the same fetch meanwhile; either copy is fine.
	mv -T "$dl/k" "$kdir" 2>/dev/null || true
	rm -rf "$dl"
	trap - EXIT
fi
echo "${kdir##*/}" >"$current"
kver=$(cat "$kdir/kver")
moddir=$kdir/modules

# extract_vmlinux writes the uncompressed kernel ELF inside bzImage $1 to $2.
# Under TCG, the compressed kernel spends about two seconds unpacking itself;
# qemu boots the ELF directly through its PVH entry point instead.
extract_vmlinux() {
	local magic off tool
	for magic in $'\xfd7zXZ:xz' $'\x28\xb5\x2f\xfd:zstd' $'\x1f\x8b\x08:gzip'; do
		tool=${magic##*:}
		command -v "$tool" >/dev/null || continue
		# shellcheck disable=SC2013 # offsets are plain numbers
		for off in $(LC_ALL=C grep -abo "${magic%:*}" "$1" | cut -d: -f1); do
			# The payload is followed by other data, so the decompressor
			# complains about trailing bytes; the ELF check decides.
			tail -c +$((off + 1)) "$1" | "$tool" -dc >"$2" 2>/dev/null || true
			if [ "$(head -c 4 "$2" | od -An -c | tr -d ' ')" = '177ELF' ]; then
				return 0
			fi
		done
	done
	rm -f "$2"
	return 1
}
kernel=$kdir/vmlinuz
if grep -q '^CONFIG_PVH=y' "$kdir/config" 2>/dev/null; then
	if [ ! -f "$kdir/vmlinux" ] && [ ! -f "$kdir/vmlinux.none" ]; then
		if extract_vmlinux "$kdir/vmlinuz" "$kdir/vmlinux.tmp"; then
			mv "$kdir/vmlinux.tmp" "$kdir/vmlinux"
		else
			log "could not unpack $kdir/vmlinuz; booting it compressed"
			: >"$kdir/vmlinux.none"
		fi
	fi
	[ -f "$kdir/vmlinux" ] && kernel=$kdir/vmlinux
fi

# resolve_modules prints the module files (relative to $moddir) needed for the
# given names, each after what it needs: hard dependencies from modules.dep and
# soft ones from modules.softdep (libcrc32c, under nf_tables, fails without a
# crc32c provider). A soft dependency may be an alias: the *_generic provider
# is preferred because it works on any CPU. Built-in modules print nothing.
resolve_modules() {
	awk -v want="$*" '
	function norm(s) {
		sub(/.*\//, "", s); sub(/\.ko(\.(xz|zst|gz))?$/, "", s); gsub(/-/, "_", s)
		return s
	}
	function provider(a,    n) {
		n = a; gsub(/-/, "_", n)
		if (n in path || n in builtin) return n
		if (a in alias) return alias[a]
		return ""
	}
	function visit_soft(list,    d, k, i, n) {
		k = split(list, d, " ")
		for (i = 1; i <= k; i++) {
			n = provider(d[i])
			if (n == "") { print "soft dependency " d[i] " is not shipped" > "/dev/stderr"; continue }
			visit(n)
		}
	}
	function visit(n,    d, k, i) {
		if (n in done || n in builtin) return
		done[n] = 1
		visit_soft(pre[n])
		k = split(deps[n], d, " ")
		for (i = 1; i <= k; i++) visit(d[i])
		print path[n]
		visit_soft(post[n])
	}
	FILENAME ~ /modules\.builtin$/ { builtin[norm($1)] = 1; next }
	FILENAME ~ /modules\.alias$/ {
		if ($1 == "alias" && (!($2 in alias) || $3 ~ /_generic$/)) alias[$2] = $3
		next
	}
	FILENAME ~ /modules\.softdep$/ {
		if ($1 != "softdep") next
		n = $2; gsub(/-/, "_", n); which = ""
		for (i = 3; i <= NF; i++) {
			if ($i == "pre:" || $i == "post:") { which = $i; continue }
			if (which == "pre:") pre[n] = pre[n] " " $i
			else if (which == "post:") post[n] = post[n] " " $i
		}
		next
	}
	{
		p = $1; sub(/:$/, "", p); n = norm(p); path[n] = p; deps[n] = ""
		for (i = 2; i <= NF; i++) deps[n] = deps[n] " " norm($i)
	}
	END {
		k = split(want, w, " ")
		for (i = 1; i <= k; i++) {
			n = w[i]; gsub(/-/, "_", n)
			if (n in builtin) continue
			if (!(n in path)) { print "module " w[i] " is neither built in nor shipped" > "/dev/stderr"; bad = 1; continue }
			visit(n)
		}
		exit bad
	}' "$moddir/modules.builtin" "$moddir/modules.alias" "$moddir/modules.softdep" "$moddir/modules.dep"
}

mod_files=$(resolve_modules "${modules[@]}") || die "resolving modules for kernel $kver failed"

# ---- accelerator ---------------------------------------------------------

# kvm_usable succeeds when qemu can run a stock kernel under KVM, and otherwise
# says why in $kvm_why. Permissions alone can lie, so /dev/kvm must really open
# read-write; and a /dev/kvm that is not backed by VT-x/AMD-V (kvm_pvm in some
# cloud sandboxes runs only kernels built for it) opens fine but hangs a stock
# kernel right after decompression.
kvm_usable() {
	if [ ! -c /dev/kvm ] || ! (exec 3<>/dev/kvm) 2>/dev/null; then
		kvm_why="/dev/kvm cannot be opened read-write"
		return 1
	fi
	if [ ! -d /sys/module/kvm_intel ] && [ ! -d /sys/module/kvm_amd ]; then
		kvm_why="/dev/kvm is not hardware-assisted KVM (no kvm_intel/kvm_amd; loaded: $(cd /sys/module && echo kvm*))"
		return 1
	fi
}
kvm_why=""
accel_auto=""
if [ "$accel" = auto ]; then
	accel_auto=yes
	if kvm_usable; then
		accel=kvm
	else
		accel=tcg
		log "using TCG software emulation: $kvm_why"
	fi
elif [ "$accel" = kvm ] && ! kvm_usable; then
	log "warning: VMTEST_ACCEL=kvm although $kvm_why"
fi

# ---- initramfs -----------------------------------------------------------

work=$(mktemp -d "${TMPDIR:-/tmp}/vmtest.XXXXXX")
if [ -n "${VMTEST_KEEP:-}" ]; then
	log "keeping work directory $work"
else
	trap 'rm -rf "$work" || true' EXIT
fi
root=$work/root
# Merged /usr like Debian 12, so /bin/bash and /usr/bin/bash are both found.
mkdir -p "$root"/{usr/bin,usr/sbin,usr/lib,usr/lib64,etc/vmtest,proc,sys,dev,run,tmp,root,tests,var}
for d in bin sbin lib lib64; do ln -s "usr/$d" "$root/$d"; done
ln -s ../run "$root/var/run"

# The guest's init links the applets (busybox --install), which leaves the
# real tools copied below in place.
cp "$busybox" "$root/usr/bin/busybox"

# copy_with_libs copies a host file to the same path under $root, plus the
# shared libraries and loader it links against.
copy_with_libs() {
	local f=$1 lib
	mkdir -p "$root$(dirname "$f")"
	cp -L "$f" "$root$f"
	ldd "$f" 2>/dev/null | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }' |
		while read -r lib; do
			[ -e "$root$lib" ] && continue
			mkdir -p "$root$(dirname "$lib")"
			cp -L "$lib" "$root$lib"
		done
}
for t in $tools; do
	copy_with_libs "$(command -v "$t")"
done
# Debian's busybox sh runs its own applets ahead of PATH, so "sh -c 'ip ...'"
# would get busybox ip. /bin/sh is dash (as on Debian) or bash when copied in.
for sh in dash bash; do
	if [ -x "$root/usr/bin/$sh" ]; then
		ln -sf "$sh" "$root/usr/bin/sh"
		break
	fi
done
case " $tools " in *" tc "*)
	# netem's jitter distributions (normal, pareto, ...) are read from here.
	for d in /usr/lib/x86_64-linux-gnu/tc /usr/lib/tc; do
		[ -d "$d" ] && mkdir -p "$root$d" && cp -r "$d/." "$root$d/"
	done
	;;
esac
case " $tools " in *" iptables "* | *" ip6tables "*)
	# iptables loads its match and target extensions with dlopen, which ldd
	# cannot see.
	for d in /usr/lib/x86_64-linux-gnu/xtables /usr/lib/xtables; do
		[ -d "$d" ] && mkdir -p "$root$d" && cp -r "$d/." "$root$d/"
	done
	;;
esac
[ -d /etc/iproute2 ] && cp -r /etc/iproute2 "$root/etc/"

printf 'root:x:0:0:root:/root:/bin/sh\n' >"$root/etc/passwd"
printf 'root:x:0:\n' >"$root/etc/group"
printf '127.0.0.1 localhost\n::1 localhost\n' >"$root/etc/hosts"

# Modules go in uncompressed so busybox insmod can load whatever Debian ships.
rootmods=$root/lib/modules/$kver
mkdir -p "$rootmods"
cp "$moddir"/modules.builtin* "$moddir/modules.order" "$rootmods/" 2>/dev/null || true
: >"$root/etc/vmtest/modules"
nmods=0
while read -r f; do
	[ -n "$f" ] || continue
	dst=${f%.xz}
	dst=${dst%.zst}
	dst=${dst%.gz}
	mkdir -p "$(dirname "$rootmods/$dst")"
	case $f in
	*.xz) xz -dc "$moddir/$f" >"$rootmods/$dst" ;;
	*.zst) zstd -qdc "$moddir/$f" >"$rootmods/$dst" ;;
	*.gz) gzip -dc "$moddir/$f" >"$rootmods/$dst" ;;
	*) cp "$moddir/$f" "$rootmods/$dst" ;;
	esac
	echo "$dst" >>"$root/etc/vmtest/modules"
	nmods=$((nmods + 1))
done <<<"$mod_files"
# A modules.dep for the subset lets the kernel's on-demand loading (through
# busybox modprobe) find what is already in the image.
depmod -b "$root" "$kver"

cp "$here/init.sh" "$root/init"
chmod 0755 "$root/init"
nonce=$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')
echo "$nonce" >"$root/etc/vmtest/nonce"
if [ -f "$testdir/args" ]; then cp "$testdir/args" "$root/etc/vmtest/args"; else : >"$root/etc/vmtest/args"; fi
printf '%s\n' "${rootless[@]}" | grep . >"$root/etc/vmtest/rootless" || :
for b in "${binaries[@]}"; do
	if ldd "$b" >/dev/null 2>&1; then
		log "warning: ${b##*/} is dynamically linked; build it with CGO_ENABLED=0"
	fi
	cp "$b" "$root/tests/"
	chmod 0755 "$root/tests/${b##*/}"
done

initrd=$work/initrd.cpio
(cd "$root" && find . -mindepth 1 | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet) >"$initrd"
log "kernel $kver ($nmods modules), initramfs $(du -k "$initrd" | cut -f1) KiB, accel $accel, ${cpus} vCPUs, ${mem} MiB, timeout ${timeout_s}s"

# ---- boot ----------------------------------------------------------------

# quiet: the console carries test output; loglevel=6 still lets warnings and
# their backtraces through. panic=-1 and oops=panic turn a crashed guest into a
# reboot, which -no-reboot turns into qemu exiting; softlockup_panic=1 does the
# same for a CPU stuck in the kernel, which otherwise hangs the guest until the
# timeout with nothing to show but the watchdog's one-line complaints.
append="console=ttyS0 quiet loglevel=6 softlockup_panic=1 panic=-1 oops=panic rdinit=/init i8042.noaux i8042.nomux i8042.nopnp"
consolelog=$work/console.log
qemu_pidfile=$work/qemu.pid

stop_qemu() {
	[ -s "$qemu_pidfile" ] && kill "$(cat "$qemu_pidfile")" 2>/dev/null
	return 0
}
# On Ctrl-C or kill, stop qemu and let the console pipeline drain before the
# EXIT trap removes the work directory under it.
trap 'stop_qemu; wait; exit 130' INT TERM

# boot_vm runs the VM with accelerator $1 for at most $2 seconds, streaming the
# console, and sets qemu_rc and booted (non-empty once the guest's init ran).
# A guest that shows no sign of init within $boot_timeout seconds is stopped.
boot_vm() {
	local acc=$1 limit=$2 opts tenths=0
	if [ "$acc" = kvm ]; then
		opts=(-accel kvm -cpu host)
	else
		# shellcheck disable=SC2054 # the comma belongs to qemu's option
		opts=(-accel tcg,thread=multi -cpu max)
	fi
	rm -f "$qemu_pidfile" "$work/qemu.rc"
	: >"$consolelog"
	# The subshell records qemu's status, which a background pipeline loses.
	(
		set +e
		timeout -k 10 "$limit" \
			qemu-system-x86_64 -nodefaults -no-user-config -no-reboot -display none \
			-machine q35 "${opts[@]}" -smp "$cpus" -m "$mem" \
			-kernel "$kernel" -initrd "$initrd" -append "$append" \
			-serial stdio -pidfile "$qemu_pidfile" </dev/null
		echo $? >"$work/qemu.rc"
	) | sed -u 's/\r$//' | tee "$consolelog" &
	local job=$!
	booted=""
	while kill -0 "$job" 2>/dev/null; do
		if grep -aq "PONTOON-VMTEST $nonce boot" "$consolelog"; then
			booted=yes
			break
		fi
		if [ "$tenths" -ge $((boot_timeout * 10)) ]; then
			log "the guest's init did not start within ${boot_timeout}s with $acc (VMTEST_BOOT_TIMEOUT); stopping qemu"
			stop_qemu
			break
		fi
		sleep 0.1
		tenths=$((tenths + 1))
	done
	wait "$job" || true
	qemu_rc=$(cat "$work/qemu.rc" 2>/dev/null || echo 255)
}

start_ms=$(($(date +%s%N) / 1000000))
elapsed_ms() { echo $(($(date +%s%N) / 1000000 - start_ms)); }
boot_vm "$accel" "$timeout_s"
if [ -z "$booted" ] && [ "$accel" = kvm ] && [ -n "$accel_auto" ]; then
	left=$((timeout_s - $(elapsed_ms) / 1000))
	if [ "$left" -gt 0 ]; then
		log "KVM did not boot the kernel; retrying with TCG software emulation"
		accel=tcg
		boot_vm tcg "$left"
	fi
fi
wall=$(awk -v ms="$(elapsed_ms)" 'BEGIN { printf "%.1f", ms / 1000 }')

# ---- verdict -------------------------------------------------------------

marks=$(grep -ao "PONTOON-VMTEST $nonce .*" "$consolelog" | cut -d' ' -f3- || true)
pass=0
fail=0
failed=()
test_s=0
while read -r kind a b c; do
	case $kind in
	result)
		test_s=$(awk -v x="$test_s" -v y="$c" 'BEGIN { print x + y }')
		if [ "$b" = 0 ]; then
			pass=$((pass + 1))
		else
			fail=$((fail + 1))
			failed+=("$a(exit $b)")
		fi
		;;
	modules-failed)
		fail=$((fail + 1))
		failed+=("modules:${a}${b:+ $b}${c:+ $c}")
		;;
	esac
done <<<"$marks"

boot=$(awk '$1 == "boot" { print $2 }' <<<"$marks")
done_seen=$(awk '$1 == "done" { print "yes" }' <<<"$marks")
timing="wall ${wall}s, tests ${test_s}s, kernel boot ${boot:-?}s, accel $accel, kernel $kver"
status=0
if [ "$qemu_rc" -eq 124 ] || [ "$qemu_rc" -eq 137 ]; then
	echo "vmtest: FAIL timed out after ${wall}s (VMTEST_TIMEOUT=${timeout_s}); $pass passed, $fail failed before that; $timing"
	status=1
elif [ -z "$booted" ]; then
	echo "vmtest: FAIL the guest did not boot (qemu exit $qemu_rc); $timing"
	status=1
elif [ -z "$done_seen" ]; then
	echo "vmtest: FAIL the VM stopped before reporting all results (qemu exit $qemu_rc; kernel panic or crash?); $pass passed, $fail failed; $timing"
	status=1
elif [ "$fail" -gt 0 ] || [ "$pass" -ne $((${#binaries[@]} + ${#rootless[@]})) ]; then
	echo "vmtest: FAIL ${failed[*]:-missing results}; $pass of $((${#binaries[@]} + ${#rootless[@]})) runs passed; $timing"
	status=1
else
	echo "vmtest: PASS $pass runs of ${#binaries[@]} test binaries (${#rootless[@]} also as uid 65534); $timing"
fi
exit "$status"
