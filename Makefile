# make          build ./calico (static, version stamped)
# make test     every test tier this user may run (all three as root)
# make bench    benchmarks, written to docs/bench.md (root)
# make demo     a one-host lab with workloads to try (root)

VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X calico/cli.Version=$(VERSION)
export CGO_ENABLED := 0

.PHONY: all calico test bench demo lab-down clean

all: calico

calico:
	go build -trimpath -ldflags '$(LDFLAGS)' -o calico .

test: calico
	scripts/test.sh

bench: calico
	scripts/bench.sh

demo: calico
	scripts/demo.sh

lab-down:
	scripts/lab.sh down

clean:
	rm -f calico
