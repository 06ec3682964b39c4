package main

import (
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
