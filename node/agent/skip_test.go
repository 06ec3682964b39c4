package agent

import (
	"context"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"calico/internal/testutil"
	"calico/nft"
	"calico/node/route"
	"calico/store"
	"calico/store/etcdv3"
	"calico/store/ipam"
)

// TestSkipsPassWithNothingNew: a datastore change that a pass already
// took in (a workload's add waits for one, then the change's own event
// arrives) sets off no second pass; a change with something new does.
func TestSkipsPassWithNothingNew(t *testing.T) {
	cli := testutil.StartEtcd(t)
	s := etcdv3.New(cli)
	var passes atomic.Int32
	a, err := New(Config{Name: "n1", DataDir: t.TempDir(), Log: slog.New(slog.DiscardHandler),
		Observe: func(Applied) { passes.Add(1) }}, nft.NewFake(), route.NewFake())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { a.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	a.Connect(FromStore(s, ipam.New(cli)))

	add := func(name, ip string) {
		t.Helper()
		w := store.KindWorkloadEndpoint.New().(*store.WorkloadEndpoint)
		w.Metadata.Name = store.WorkloadEndpointName("n1", "calico", name, "eth0")
		w.Spec = store.WorkloadEndpointSpec{Node: "n1", Orchestrator: "calico", Workload: name, Endpoint: "eth0",
			InterfaceName: "cali-" + name, IPNetworks: []string{ip + "/32"}}
		if err := s.Create(t.Context(), w); err != nil {
			t.Fatal(err)
		}
		rev, _ := store.ParseRevision(w.Metadata.ResourceVersion)
		wctx, wcancel := context.WithTimeout(t.Context(), 10*time.Second)
		defer wcancel()
		if err := a.WaitApplied(wctx, rev); err != nil {
			t.Fatal(err)
		}
	}
	add("w1", "10.65.0.1")
	time.Sleep(300 * time.Millisecond) // the event's own pass, if any, is over
	before := passes.Load()
	for range 5 {
		select {
		case a.changed <- struct{}{}:
		default:
		}
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(200 * time.Millisecond)
	if got := passes.Load(); got != before {
		t.Errorf("%d passes for change signals with nothing new in the cache", got-before)
	}
	add("w2", "10.65.0.2")
	if passes.Load() == before {
		t.Error("no pass for a new workload")
	}
}
