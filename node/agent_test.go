package node

import (
	"context"
	"log/slog"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"calico/internal/testutil"
	"calico/nft"
	"calico/node/route"
	"calico/store"
	"calico/store/ipam"
)

type testDatastore struct {
	*store.Store
	ipam *ipam.IPAM
}

func (d testDatastore) HostBlocks(ctx context.Context, host string) ([]netip.Prefix, error) {
	return d.ipam.HostBlocks(ctx, host)
}

// runAgent runs an agent with fake drivers until the test ends.
func runAgent(t *testing.T, dir string, ds datastore) (*Agent, *nft.Fake, *route.Fake) {
	t.Helper()
	rules, routes := nft.NewFake(), route.NewFake()
	a, err := NewAgent(Config{Name: "n1", DataDir: dir, Log: slog.New(slog.NewTextHandler(t.Output(), nil))}, rules, routes)
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

func workload(name, iface, ip string) *store.WorkloadEndpoint {
	w := store.KindWorkloadEndpoint.New().(*store.WorkloadEndpoint)
	w.Metadata.Name = store.WorkloadEndpointName("n1", "calico", name, "eth0")
	w.Spec = store.WorkloadEndpointSpec{Node: "n1", Orchestrator: "calico", Workload: name, Endpoint: "eth0",
		InterfaceName: iface, IPNetworks: []string{ip + "/32"}, Profiles: []string{"a"}}
	return w
}

func rev(t *testing.T, r store.Resource) int64 {
	n, err := strconv.ParseInt(r.Meta().ResourceVersion, 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func waitApplied(t *testing.T, a *Agent, r store.Resource) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if err := a.WaitApplied(ctx, rev(t, r)); err != nil {
		t.Fatalf("the dataplane did not catch up with %s: %v", store.IDOf(r), err)
	}
}

func TestAgentProgramsAndRemembers(t *testing.T) {
	cli := testutil.StartEtcd(t)
	s := store.New(cli)
	dir := t.TempDir()
	a, rules, routes := runAgent(t, dir, testDatastore{s, ipam.New(cli)})
	if err := s.Create(t.Context(), ClassicProfile("a")); err != nil {
		t.Fatal(err)
	}
	w := workload("w1", "cali1", "10.65.0.1")
	if err := s.Create(t.Context(), w); err != nil {
		t.Fatal(err)
	}
	waitApplied(t, a, w)
	if got := routes.String(); got != "10.65.0.1/32 dev cali1\n" {
		t.Errorf("routes = %q", got)
	}
	if !strings.Contains(rules.String(), "cali1") {
		t.Errorf("the ruleset does not mention cali1:\n%s", rules)
	}
	// A failed apply is retried.
	routes.FailNext()
	w2 := workload("w2", "cali2", "10.65.0.2")
	if err := s.Create(t.Context(), w2); err != nil {
		t.Fatal(err)
	}
	waitApplied(t, a, w2)
	if got := routes.String(); got != "10.65.0.1/32 dev cali1\n10.65.0.2/32 dev cali2\n" {
		t.Errorf("routes after a failure and a retry = %q", got)
	}
	if last := a.Last(); last.Err != nil || last.Endpoints != 2 {
		t.Errorf("last apply = %+v", last)
	}
}

func TestAgentRestartsFromItsCacheWithoutDatastore(t *testing.T) {
	cli := testutil.StartEtcd(t)
	s := store.New(cli)
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(t.Context())
	a, err := NewAgent(Config{Name: "n1", DataDir: dir, Log: slog.New(slog.DiscardHandler)}, nft.NewFake(), route.NewFake())
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { a.Run(ctx); close(done) }()
	a.Connect(testDatastore{s, ipam.New(cli)})
	s.Create(t.Context(), ClassicProfile("a"))
	w := workload("w1", "cali1", "10.65.0.1")
	if err := s.Create(t.Context(), w); err != nil {
		t.Fatal(err)
	}
	waitApplied(t, a, w)
	cancel()
	<-done

	// No datastore this time: the same dataplane, from the cache.
	b, _, routes := runAgent(t, dir, nil)
	waitApplied(t, b, w)
	if got := routes.String(); got != "10.65.0.1/32 dev cali1\n" {
		t.Errorf("routes from the cache = %q", got)
	}
	if !b.Last().FromSnapshot {
		t.Errorf("the apply does not say it came from the saved state")
	}
}

func TestAgentDoesNothingBeforeItHasAState(t *testing.T) {
	a, rules, routes := runAgent(t, t.TempDir(), nil)
	ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancel()
	if err := a.WaitApplied(ctx, 1); err == nil {
		t.Fatal("an agent with neither a cache nor a datastore says it applied something")
	}
	if rules.Applies != 0 || routes.Applies != 0 {
		t.Errorf("drivers were called (%d, %d times) before the agent had any state", rules.Applies, routes.Applies)
	}
}
