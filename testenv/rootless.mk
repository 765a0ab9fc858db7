# Rootless lane: the testenv suite and the kvstore example's tests run as an unprivileged
# account, where testenv builds every chain in a user namespace of its own. Include from the
# top Makefile:
#
#   -include testenv/rootless.mk
#
#   make test-rootless                                     # as root
#   make test-rootless ROOTLESS_PKGS=./testenv ROOTLESS_ARGS='-test.run Partition'
#
# ROOTLESS_ARGS are passed to every test binary (whitespace-separated words, no quoting: a
# regexp with '|' does not survive; use the -test.* spelling).
#
# As root it makes the account ROOTLESS_USER when missing (a system account without home or
# login), builds the test binaries and kvnode/kvctl with root's Go build cache, and runs each
# binary as the account from its package directory, with -test.v. It fails when a test fails
# and when a test skips for any reason but those in ROOTLESS_SKIP_OK: tests that need the
# host's root by nature and say so, helpers that only their driving test runs, and netem
# effects on a kernel without netem (skipped as root too).

GO ?= go
ROOTLESS_USER ?= pontoon-test
ROOTLESS_PKGS ?= ./testenv ./examples/kvstore
ROOTLESS_ARGS ?= -test.count=1 -test.timeout=20m
ROOTLESS_SKIP_OK ?= needs the host.s root|run by Test[A-Za-z]+|CONFIG_NET_SCH_NETEM

.PHONY: test-rootless
test-rootless:
	@set -e; \
	[ "$$(id -u)" = 0 ] || { echo "test-rootless: run as root: it makes the account $(ROOTLESS_USER) and runs the tests as it"; exit 1; }; \
	id -u $(ROOTLESS_USER) >/dev/null 2>&1 || useradd --system --no-create-home --shell /usr/sbin/nologin $(ROOTLESS_USER); \
	dir=$$(mktemp -d /tmp/pontoon-rootless.XXXXXX); \
	trap 'rm -rf "$$dir"' EXIT; \
	chmod 755 "$$dir"; \
	mkdir -m 700 "$$dir/tmp"; chown $(ROOTLESS_USER): "$$dir/tmp"; \
	$(GO) build -o "$$dir/kvbin/" ./examples/kvstore/cmd/kvnode ./examples/kvstore/cmd/kvctl; \
	mod=$$($(GO) list -m); \
	fail=0; \
	for pkg in $$($(GO) list $(ROOTLESS_PKGS)); do \
		name=$$(echo "$${pkg#$$mod/}" | tr / _); \
		$(GO) test -c -o "$$dir/$$name.test" "$$pkg"; \
		src=$$($(GO) list -f '{{.Dir}}' "$$pkg"); \
		echo "test-rootless: $$pkg as $(ROOTLESS_USER)"; \
		( cd "$$src" && runuser -u $(ROOTLESS_USER) -- env TMPDIR="$$dir/tmp" KVSTORE_BIN="$$dir/kvbin" \
			"$$dir/$$name.test" -test.v $(ROOTLESS_ARGS) ) >"$$dir/$$name.out" 2>&1 || fail=1; \
		grep -E '^(--- FAIL|FAIL|ok|PASS)|^panic' "$$dir/$$name.out" || true; \
		awk -v allow='$(ROOTLESS_SKIP_OK)' -v pkg="$$pkg" ' \
			/^=== (RUN|CONT|NAME|PAUSE)/ { cur = $$3; next } \
			/^ *--- SKIP: / { skipped[$$3] = 1; next } \
			cur != "" && $$0 ~ allow { ok[cur] = 1 } \
			END { bad = 0; for (t in skipped) if (!(t in ok)) { print "test-rootless: " pkg ": " t " skipped for a reason not in ROOTLESS_SKIP_OK"; bad = 1 }; exit bad }' \
			"$$dir/$$name.out" || fail=1; \
		if [ $$fail != 0 ]; then cat "$$dir/$$name.out"; exit 1; fi; \
		echo "test-rootless: $$pkg: $$(grep -c -- '--- PASS' "$$dir/$$name.out") passed, $$(grep -c -- '--- SKIP' "$$dir/$$name.out") skipped (allowed)"; \
	done
