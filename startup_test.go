package main

import (
	"os/exec"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"calico/internal/promdefault"
)

// TestDefaultRegistry registers everything this binary's packages queued
// on Prometheus's default registry during init (promdefault), as the
// node's embedded etcd does when it starts: none may collide.
func TestDefaultRegistry(t *testing.T) {
	promdefault.Started()
	families, err := prometheus.DefaultGatherer.Gather()
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, f := range families {
		found = found || f.GetName() == "etcd_server_has_leader"
	}
	if !found {
		t.Errorf("etcd_server_has_leader not gathered from the %d families", len(families))
	}
}

// TestPromdefaultOnlyInMain: the lazy default registry must not end up in
// a test binary of another package, where nothing would call Started.
func TestPromdefaultOnlyInMain(t *testing.T) {
	out, err := exec.Command("go", "list", "-f", `{{.ImportPath}} {{join .Imports " "}}`, "./...").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v: %s", err, out)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		fields := strings.Fields(line)
		if fields[0] != "calico" && slices.Contains(fields[1:], "calico/internal/promdefault") {
			t.Errorf("%s imports calico/internal/promdefault; only main may", fields[0])
		}
	}
}
