package main

import (
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// TestImports keeps the house's arrows one way (README, Layout): each
// package may import only the calico packages below it. It fails, rather
// than skips, when the packages cannot be listed.
func TestImports(t *testing.T) {
	out, err := exec.Command("go", "list", "-f", `{{.ImportPath}} {{join .Imports " "}}`, "./...").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v: %s", err, out)
	}
	// forbidden: package -> calico packages it must not import (directly).
	forbidden := map[string][]string{
		"calico/cli":            {"calico/node/agent", "calico/node/localapi", "calico/node/workload", "calico/nft", "calico/bgp", "calico/store/ipam"},
		"calico/cluster":        {"calico/cli", "calico/node", "calico/nft", "calico/bgp", "calico/store/ipam"},
		"calico/store":          {"calico/cli", "calico/cluster", "calico/node", "calico/nft", "calico/bgp", "calico/store/ipam"},
		"calico/store/ipam":     {"calico/cli", "calico/cluster", "calico/node", "calico/nft", "calico/bgp"},
		"calico/store/selector": {"calico/store"},
		"calico/nft":            {"calico/store", "calico/node", "calico/cluster", "calico/cli", "calico/bgp"},
		"calico/bgp":            {"calico/store", "calico/node", "calico/cluster", "calico/cli", "calico/nft"},
		"calico/node/calc":      {"calico/node/agent", "calico/node/localapi", "calico/node/workload", "calico/cluster", "calico/cli", "log/slog", "go.etcd.io/etcd/client/v3", "github.com/vishvananda/netlink"},
		"calico/node/agent":     {"calico/node/localapi", "calico/node/workload", "calico/cluster", "calico/cli", "calico/node"},
		"calico/node/localapi":  {"calico/cluster", "calico/cli", "calico/node"},
		"calico/node/workload":  {"calico/node/agent", "calico/node/localapi", "calico/cluster", "calico/cli", "calico/node"},
		"calico/node/docker":    {"calico/node/agent", "calico/node/localapi", "calico/cluster", "calico/cli", "calico/node", "calico/nft", "calico/bgp"},
		"calico/cni":            {"calico/cli", "calico/node", "calico/node/agent", "calico/node/localapi", "calico/node/workload", "calico/store", "calico/store/ipam", "calico/cluster", "go.etcd.io/etcd/client/v3"},
		"calico/node/api":       {"calico/node/agent", "calico/node/localapi", "calico/node/workload", "calico/node/calc", "calico/cluster", "calico/store", "calico/cli", "calico/node"},
		"calico/node/route":     {"calico/store", "calico/node/agent", "calico/cluster", "calico/cli", "calico/node"},
		"calico/node/veth":      {"calico/store", "calico/node/agent", "calico/cluster", "calico/cli", "calico/node"},
		"calico/node/systemd":   {"calico/store", "calico/node/agent", "calico/node/api", "calico/cluster", "calico/cli", "calico/node"},
	}
	seen := 0
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		fields := strings.Fields(line)
		pkg, imports := fields[0], fields[1:]
		bad, ok := forbidden[pkg]
		if !ok {
			continue
		}
		seen++
		for _, imp := range imports {
			if slices.Contains(bad, imp) {
				t.Errorf("%s imports %s", pkg, imp)
			}
		}
	}
	if seen != len(forbidden) {
		t.Errorf("go list showed %d of the %d packages the test knows: update the test with the house", seen, len(forbidden))
	}
}
