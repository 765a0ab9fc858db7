# Stock-kernel VM lane: run Go test packages as root inside qemu on Debian's
# stock kernel (see vmtest/README.md). Include from the top Makefile:
#
#   include vmtest/vmtest.mk
#
#   make test-vm                                   # the lane's self-test
#   make test-vm VM_TEST_PKGS='./partition/...' VM_TEST_ARGS='-test.v -test.run Netem'
#   make test-vm VM_TEST_PKGS=./testenv VM_ROOTLESS_PKGS=./testenv   # also as uid 65534
#
# VM_TEST_ARGS are passed to every test binary (whitespace-separated words, no
# quoting; use the -test.* spelling). run.sh honours VMTEST_TIMEOUT and friends.

VMTEST_DIR := $(patsubst %/,%,$(dir $(lastword $(MAKEFILE_LIST))))

GO ?= go
VM_TEST_PKGS ?= ./vmtest/selftest
VM_TEST_ARGS ?= -test.v
# Packages (among VM_TEST_PKGS) whose binaries run a second time as uid 65534.
VM_ROOTLESS_PKGS ?=

.PHONY: test-vm
test-vm:
	@set -e; \
	dir=$$(mktemp -d "$${TMPDIR:-/tmp}/pontoon-vmtest.XXXXXX"); \
	trap 'rm -rf "$$dir"' EXIT; \
	mod=$$($(GO) list -m); \
	pkgs=$$($(GO) list $(VM_TEST_PKGS)); \
	for pkg in $$pkgs; do \
		name=$$(echo "$${pkg#$$mod/}" | tr / _); \
		echo "vmtest: building $$pkg"; \
		CGO_ENABLED=0 $(GO) test -c -o "$$dir/$$name.test" "$$pkg"; \
	done; \
	for pkg in $$([ -z "$(strip $(VM_ROOTLESS_PKGS))" ] || $(GO) list $(VM_ROOTLESS_PKGS)); do \
		echo "$$(echo "$${pkg#$$mod/}" | tr / _).test" >>"$$dir/rootless"; \
	done; \
	printf '%s\n' '$(VM_TEST_ARGS)' >"$$dir/args"; \
	$(VMTEST_DIR)/run.sh "$$dir"
