#!/bin/bash
# pontoon's side of shell_chain.sh through the command line, one process per step, as a user
# types it: `bridge create`, one `guest add` per guest with a fixed address, one ping from the
# first guest to the last through `pontoon exec`, `bridge destroy` (for 3 guests, 6 calls).
# The gateway is up already, as the shell chain keeps its own.
#
# Usage: cli_chain.sh N ID     bridge cli<ID> with N guests (1-253)
# Environment: PONTOON (the binary; default pontoon on PATH), and the PONTOON_* variables that
# point it at a sandbox (bench/compare.sh sets them). Needs root and ping.
set -euo pipefail
n=${1:?usage: cli_chain.sh N ID}
id=${2:?usage: cli_chain.sh N ID}
p=${PONTOON:-pontoon}
br=cli$id
"$p" bridge create "$br" >/dev/null
trap '"$p" bridge destroy "$br" >/dev/null' EXIT
for ((i = 1; i <= n; i++)); do
	"$p" guest add "$br" "g$i" --ip "172.18.0.$i" >/dev/null
done
"$p" exec "$br" g1 -- ping -q -c 1 -W 1 "172.18.0.$n" >/dev/null
trap - EXIT
"$p" bridge destroy "$br" >/dev/null
