// Package agenttest runs an agent with fake drivers for the tests of the
// packages that read it.
package agenttest

import (
	"context"
	"log/slog"
	"sync"
	"testing"
	"time"

	"calico/nft"
	"calico/node/agent"
	"calico/node/route"
	"calico/store"
)

// Node is the name of the node the test agents run as.
const Node = "n1"

// Run runs an agent of node n1 in dir with fake drivers until the test
// ends, connected to ds unless it is nil.
func Run(t testing.TB, dir string, ds agent.Datastore) (*agent.Agent, *nft.Fake, *route.Fake) {
	t.Helper()
	rules, routes := nft.NewFake(), route.NewFake()
	a, err := agent.New(agent.Config{Name: Node, DataDir: dir, Log: slog.New(slog.NewTextHandler(t.Output(), nil))}, rules, routes)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { a.Run(ctx) })
	t.Cleanup(func() { cancel(); wg.Wait() })
	if ds != nil {
		a.Connect(ds)
	}
	return a, rules, routes
}

// Workload is a WorkloadEndpoint of node n1 in profile a.
func Workload(name, iface, ip string) *store.WorkloadEndpoint {
	w := store.KindWorkloadEndpoint.New().(*store.WorkloadEndpoint)
	w.Metadata.Name = store.WorkloadEndpointName(Node, "calico", name, "eth0")
	w.Spec = store.WorkloadEndpointSpec{Node: Node, Orchestrator: "calico", Workload: name, Endpoint: "eth0",
		InterfaceName: iface, IPNetworks: []string{ip + "/32"}, Profiles: []string{"a"}}
	return w
}

// WaitApplied waits until the agent has programmed r.
func WaitApplied(t testing.TB, a *agent.Agent, r store.Resource) {
	t.Helper()
	rev, err := store.ParseRevision(r.Meta().ResourceVersion)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := a.WaitApplied(ctx, rev); err != nil {
		t.Fatalf("the dataplane did not catch up with %s: %v", store.IDOf(r), err)
	}
}
