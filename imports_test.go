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
		"calico/node/metrics":   {"calico/node/agent", "calico/node/localapi", "calico/node/workload", "calico/node/calc", "calico/cluster", "calico/store", "calico/nft", "calico/bgp", "calico/cli", "calico/node"},
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

// TestSplitLinksNoNode: the command line of the split build (`make
// calico`), which every CLI command and CNI call starts, links none of
// the node's heavy modules, whose package initialisation would cost each
// of them about 10 ms (docs/bench.md, process start). `calico up` runs
// the full binary embedded in it.
func TestSplitLinksNoNode(t *testing.T) {
	// -e: the embedded binary (make writes it) need not be there.
	out, err := exec.Command("go", "list", "-e", "-tags", "split", "-deps", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v: %s", err, out)
	}
	deps := strings.Fields(string(out))
	if !slices.Contains(deps, "calico/cli") || !slices.Contains(deps, "calico/cni") || !slices.Contains(deps, "calico/internal/nodebin") {
		t.Fatalf("go list -tags split -deps . lists no calico/cli, calico/cni or calico/internal/nodebin: %v", deps)
	}
	heavy := []string{"go.etcd.io/", "github.com/osrg/gobgp", "google.golang.org/grpc", "google.golang.org/protobuf",
		"github.com/prometheus/", "github.com/hashicorp/memberlist", "go.opentelemetry.io/", "calico/node/agent", "calico/cluster"}
	for _, d := range deps {
		for _, h := range heavy {
			if strings.HasPrefix(d, h) && d != "calico/cluster/token" {
				t.Errorf("the split build's command line links %s", d)
			}
		}
	}
}
