#!/bin/sh
# The three test tiers. Unit tests need no root; privileged tests (named
# TestPrivileged…) run drivers against the kernel in throwaway network
# namespaces; e2e tests run real nodes in the lab (scripts/lab.sh).
set -eu
cd "$(dirname "$0")/.."

echo "== vet"
go vet ./...
echo "== unit"
# The e2e package runs in its own tier below (it would only skip here).
go test -count=1 $(go list ./... | grep -v '^calico/e2e$')
echo "== fuzz (15 s per target, from the seed corpus; FUZZTIME to change)"
out=$(mktemp)
trap 'rm -f "$out"' EXIT
for target in store:FuzzDecodeValidate store/selector:FuzzParse node/localapi:FuzzHandler cluster:FuzzJoinAPI; do
	if ! go test -run '^$' -fuzz "^${target#*:}\$" -fuzztime "${FUZZTIME:-15s}" "./${target%%:*}" >"$out" 2>&1; then
		grep -v '^{' "$out"
		exit 1
	fi
	tail -1 "$out"
done
if [ "$(id -u)" != 0 ]; then
	echo "== privileged: SKIP (needs root: sudo make test)"
	echo "== e2e: SKIP (needs root: sudo make test)"
	exit 0
fi
echo "== privileged"
PRIVILEGED_TESTS=1 go test -count=1 -p 1 -run '^TestPrivileged' ./...
echo "== e2e"
# CALICO_VERIFY=1: every node checks its memoised calculation and
# rendering against fresh ones on every change (the lab fails on a
# "memo check" in a node's log).
CALICO_VERIFY=1 CALICO_E2E=1 CALICO="$PWD/calico" go test -count=1 -p 1 -timeout 30m ./e2e/
