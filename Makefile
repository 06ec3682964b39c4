# make                build ./calico (static, version stamped)
# make test           every test tier this user may run (all three as root)
# make bench          benchmarks, written to docs/bench.md (root)
# make scale          the fleet-scale benchmark: a real node among 10 to 1,000
#                     simulated hosts (root; an hour or more), its section of
#                     docs/bench.md and docs/scale/*.svg
# make demo           a one-host lab with workloads to try (root)
# make chaos          the chaos test with a longer random schedule (root;
#                     CHAOS_STEPS, default 40, and CHAOS_SEED to replay one)
# make release        dist/: calico-linux-{amd64,arm64}, sha256sum.txt, install.sh
# make release-check  build the release twice (the second with an empty Go
#                     build cache) and fail unless both are byte-identical

VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X calico/cli.Version=$(VERSION)
export CGO_ENABLED := 0

# Release builds are reproducible: no paths (-trimpath), no VCS stamp
# (-buildvcs=false: the version is the -X value), no build ids (-buildid=).
RELEASE_ARCHES := amd64 arm64
RELEASE_LDFLAGS := -s -w -buildid= -X calico/cli.Version=$(VERSION)
DIST ?= dist

.PHONY: all calico test bench scale demo chaos lab-down clean release release-check

all: calico

# The binary is built twice: the full one (every command in-process),
# then the command line with the split tag, which embeds the full one and
# runs it for the commands that run the node (internal/nodebin).
NODEBIN := internal/nodebin/calico-node

calico:
	go build -trimpath -ldflags '$(LDFLAGS)' -o $(NODEBIN) .
	sha256sum $(NODEBIN) > $(NODEBIN).sha256
	go build -trimpath -tags split -ldflags '$(LDFLAGS)' -o calico .

test: calico
	scripts/test.sh

bench: calico
	scripts/bench.sh

scale: calico
	CALICO_BENCH_TIMEOUT=4h scripts/bench.sh Scale

demo: calico
	scripts/demo.sh

# CALICO_LAB_NAME (the lab's namespace prefix) passes through.
chaos: calico
	CALICO_VERIFY=1 CALICO_E2E=1 CALICO="$(CURDIR)/calico" \
		CHAOS_SEED="$${CHAOS_SEED:-random}" CHAOS_STEPS="$${CHAOS_STEPS:-40}" \
		go test -count=1 -run '^TestChaos$$' -v -timeout 120m ./e2e/

lab-down:
	scripts/lab.sh down

release:
	rm -rf '$(DIST)' && mkdir -p '$(DIST)'
	for arch in $(RELEASE_ARCHES); do \
		GOOS=linux GOARCH=$$arch go build -trimpath -buildvcs=false -ldflags '$(RELEASE_LDFLAGS)' \
			-o $(NODEBIN) . || exit 1; \
		sha256sum $(NODEBIN) > $(NODEBIN).sha256 || exit 1; \
		GOOS=linux GOARCH=$$arch go build -trimpath -buildvcs=false -tags split -ldflags '$(RELEASE_LDFLAGS)' \
			-o '$(DIST)'/calico-linux-$$arch . || exit 1; \
	done
	cp scripts/install.sh '$(DIST)'/install.sh
	cd '$(DIST)' && sha256sum calico-linux-* install.sh > sha256sum.txt
	@cat '$(DIST)'/sha256sum.txt

release-check:
	@tmp=$$(mktemp -d) && trap 'rm -rf "$$tmp"' EXIT && \
	$(MAKE) --no-print-directory release DIST="$$tmp/a" VERSION='$(VERSION)' >/dev/null && \
	GOCACHE="$$tmp/gocache" $(MAKE) --no-print-directory release DIST="$$tmp/b" VERSION='$(VERSION)' >/dev/null && \
	if diff -r "$$tmp/a" "$$tmp/b"; then \
		echo "release-check: two builds of $(VERSION) are byte-identical:"; cat "$$tmp/a/sha256sum.txt"; \
	else \
		echo "release-check: two builds of $(VERSION) differ" >&2; exit 1; \
	fi

clean:
	rm -f calico $(NODEBIN) $(NODEBIN).sha256
	rm -rf dist
