#!/bin/sh
# One of the three children of the "3 children until all reach each other" comparison, the
# same for pontoon run and podman: ping every address given until it answers, then wait at a
# barrier (a file per child in /work/sync) so that no child stops answering before the others
# have reached it. Runs under busybox sh.
# Usage: child.sh NAME IP..   (NAME is n1, n2 or n3)
self=$1
shift
for ip in "$@"; do
	until ping -c 1 -W 1 "$ip" >/dev/null 2>&1; do :; done
done
touch "/work/sync/$self"
until [ -e /work/sync/n1 ] && [ -e /work/sync/n2 ] && [ -e /work/sync/n3 ]; do
	usleep 1000
done
