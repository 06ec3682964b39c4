#!/bin/sh
# The three test tiers. Unit tests need no root; privileged tests (named
# TestPrivileged…) run drivers against the kernel in throwaway network
# namespaces; e2e tests run real nodes in the lab (scripts/lab.sh).
set -eu
cd "$(dirname "$0")/.."

echo "== vet"
go vet ./...
echo "== unit"
go test -count=1 ./...
if [ "$(id -u)" != 0 ]; then
	echo "== skipped the privileged and e2e tiers: they need root (sudo make test)"
	exit 0
fi
echo "== privileged"
PRIVILEGED_TESTS=1 go test -count=1 -p 1 -run '^TestPrivileged' ./...
echo "== e2e"
# CALICO_VERIFY=1: every node checks its memoised calculation and
# rendering against fresh ones on every change (the lab fails on a
# "memo check" in a node's log).
CALICO_VERIFY=1 CALICO_E2E=1 CALICO="$PWD/calico" go test -count=1 -p 1 -timeout 20m ./e2e/
