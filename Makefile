# pontoon's build, test, benchmark and demo entry points. Run as root on Debian: test and demo
# install the Debian packages they need when they are missing.

export PATH := $(PATH):/usr/local/go/bin
GO      ?= go
BIN     := bin/pontoon
# What the privileged tests and the demo drive for real.
DEBS    := iproute2 iptables nftables runc crun containerd podman busybox-static \
           containernetworking-plugins iputils-ping docker.io docker-compose tcpdump
BENCH_DEBS := hyperfine containernetworking-plugins netavark
TEST_TIMEOUT ?= 40m
# The privileged suites that need nothing but the kernel also run on Debian's stock kernel in
# the VM lane, where netem exists (vmtest/README.md).
VM_TEST_PKGS ?= ./vmtest/selftest ./netsetup ./partition ./testenv
VM_TEST_ARGS ?= -test.count=1
# The lane runs under software emulation (TCG) where the host has no hardware KVM: 420 s on
# a quiet machine, 760 s on a loaded one; run.sh's default of 900 s is too close.
export VMTEST_TIMEOUT ?= 1800
# Packages to run there a second time as an ordinary user (VM_ROOTLESS_PKGS=./testenv);
# off by default: the stock kernel under emulation has locked up in it (vmtest/README.md).
VM_ROOTLESS_PKGS ?=

.PHONY: all build test unit vet deps bench test-bench test-limits demo clean gc check-go

all: build

check-go:
	@command -v $(GO) >/dev/null || { echo "Go is not installed; pontoon needs Go >= $$(sed -n 's/^go //p' go.mod)"; exit 1; }

# The pontoon binary is static (it runs as the init of containers whose root is not the
# host's) and leaves out urfave/cli's man-page generator, which it never uses.
# It is linked to a temporary file and copied into place: a file just written by the linker
# starts ~10% slower than a copy of it for as long as its pages stay cached (see
# bench/compare.sh), and pontoon is meant to be run right after `make`.
BUILD_FLAGS := -trimpath -tags urfave_cli_no_docs
build: check-go
	CGO_ENABLED=0 $(GO) build $(BUILD_FLAGS) -o $(BIN).link ./cmd/pontoon
	cp $(BIN).link $(BIN).copy && mv $(BIN).copy $(BIN) && rm $(BIN).link
	$(GO) build -o bin/pontoon-containerd ./runtime/containerd/pontoon-containerd
	CGO_ENABLED=0 $(GO) build $(BUILD_FLAGS) -o bin/pontoon-cni ./cmd/pontoon-cni
	CGO_ENABLED=0 $(GO) build $(BUILD_FLAGS) -o bin/pontoon-capture ./cmd/pontoon-capture

# The CNI tests drive the plugin that `build` made (without it they build their own).
test: export PONTOON_CNI := $(CURDIR)/bin/pontoon-cni

vet: check-go
	$(GO) vet ./...

# deps installs missing Debian packages (apt-get update runs only when something is missing).
deps:
	@missing=""; for p in $(DEBS) $(EXTRA_DEBS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
		echo "installing:$$missing"; \
		apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $$missing >/dev/null; \
	fi

# unit runs the tests that need no root.
unit: check-go
	$(GO) test -count=1 -short ./...

# test runs everything: unit tests and the privileged integration tests (real namespaces,
# nftables, runc, crun, containerd, podman, docker), the stock-kernel VM lane, and a check of
# the developer VM's definition. The Go tests run while a dockerd runs: .ci/with-dockerd
# starts one with pontoon's runtime when none is running, and afterwards stops it and puts
# back what it changed on the host.
test: check-go deps vet build
	.ci/with-dockerd $(BIN) $(GO) test -count=1 -timeout $(TEST_TIMEOUT) ./...
	$(MAKE) --no-print-directory test-rootless
	$(MAKE) --no-print-directory test-limits
	$(MAKE) --no-print-directory test-bench
	$(MAKE) --no-print-directory test-vm
	$(MAKE) --no-print-directory vagrant-validate

# test-limits fills all 2048 bridge slots of a gateway (~90 s), alone: while it holds that
# many namespaces, every other test's kernel work slows.
test-limits: check-go
	PONTOON_LIMITS=1 $(GO) test -count=1 -timeout 10m -run '^TestAllBridgeSlots$$' ./netsetup

# bench times pontoon against the project's baselines in bench/baselines (shell chain, CNI,
# per-guest iptables, runc + CNI, podman on netavark) and runs the Go benchmarks, all in private
# network and mount namespaces; prints one summary table and writes it as JSON to
# bench/results/DATE.json (BENCH_JSON=path to choose). BASELINES=dir uses other baselines;
# RUNS, WARMUP, GO_BENCH=0, NO_PODMAN=1 and the rest are described in bench/compare.sh.
bench: check-go build
	@$(MAKE) --no-print-directory deps EXTRA_DEBS="$(BENCH_DEBS)"
	PONTOON_BIN=$(BIN) bash bench/compare.sh

# test-bench runs every row of `make bench` but podman's once (~20 s): it checks that the
# benchmark and its baselines run, not how fast.
test-bench: check-go build
	NO_PODMAN=1 GO_BENCH=0 RUNS=1 WARMUP=0 RUNS_LARGE=1 WARMUP_LARGE=0 BENCH_JSON=none \
		PONTOON_BIN=$(BIN) bash bench/compare.sh >/dev/null

demo: check-go deps build
	bash examples/demo.sh

gc: build
	$(BIN) gc

clean:
	rm -rf bin

-include vmtest/vmtest.mk
-include testenv/rootless.mk
-include vagrant/vagrant.mk
