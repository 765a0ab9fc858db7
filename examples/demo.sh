#!/usr/bin/env bash
# The demo behind `make demo`: three kvstore replicas in runc containers on one pontoon
# bridge, a scripted partition (isolate n3), and a heal -- see examples/kvstore/pontoon.toml.
# Run as root from the repository root after `make build`.
set -euo pipefail
cd "$(dirname "$0")/.."
pontoon=$PWD/bin/pontoon
[ "$(id -u)" = 0 ] || { echo "the demo creates network namespaces and containers: run it as root" >&2; exit 1; }

echo "== building the example service (static, so the containers can run it)"
CGO_ENABLED=0 go build -o examples/kvstore/bin/ ./examples/kvstore/cmd/...

# pontoon run brings the gateway up when it is missing; put the host back as it was.
if "$pontoon" gateway status --json | grep -q '"up": true'; then
  had_gateway=1
else
  had_gateway=0
fi
cleanup() {
  if [ "$had_gateway" = 0 ]; then "$pontoon" gateway down >/dev/null 2>&1 || true; fi
}
trap cleanup EXIT

echo "== pontoon run demo (examples/kvstore/pontoon.toml)"
"$pontoon" run -C examples/kvstore demo
