package agent_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"calico/internal/testutil"
	"calico/nft"
	"calico/node/agent"
	"calico/node/agent/agenttest"
	"calico/node/route"
	"calico/store"
	"calico/store/etcdv3"
	"calico/store/ipam"
)

func TestAgentProgramsAndRemembers(t *testing.T) {
	cli := testutil.StartEtcd(t)
	s := etcdv3.New(cli)
	dir := t.TempDir()
	a, rules, routes := agenttest.Run(t, dir, agent.FromStore(s, ipam.New(cli)))
	if err := s.Create(t.Context(), store.ClassicProfile("a")); err != nil {
		t.Fatal(err)
	}
	w := agenttest.Workload("w1", "cali1", "10.65.0.1")
	if err := s.Create(t.Context(), w); err != nil {
		t.Fatal(err)
	}
	agenttest.WaitApplied(t, a, w)
	if got := routes.String(); got != "10.65.0.1/32 dev cali1\n" {
		t.Errorf("routes = %q", got)
	}
	if !strings.Contains(rules.String(), "cali1") {
		t.Errorf("the ruleset does not mention cali1:\n%s", rules)
	}
	// A failed apply is retried.
	routes.FailNext()
	w2 := agenttest.Workload("w2", "cali2", "10.65.0.2")
	if err := s.Create(t.Context(), w2); err != nil {
		t.Fatal(err)
	}
	agenttest.WaitApplied(t, a, w2)
	if got := routes.String(); got != "10.65.0.1/32 dev cali1\n10.65.0.2/32 dev cali2\n" {
		t.Errorf("routes after a failure and a retry = %q", got)
	}
	if last := a.Last(); last.Err != nil || last.Endpoints != 2 {
		t.Errorf("last apply = %+v", last)
	}
}

func TestAgentRestartsFromItsCacheWithoutDatastore(t *testing.T) {
	cli := testutil.StartEtcd(t)
	s := etcdv3.New(cli)
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(t.Context())
	a, err := agent.New(agent.Config{Name: "n1", DataDir: dir, Log: slog.New(slog.DiscardHandler)}, nft.NewFake(), route.NewFake())
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { a.Run(ctx); close(done) }()
	a.Connect(agent.FromStore(s, ipam.New(cli)))
	s.Create(t.Context(), store.ClassicProfile("a"))
	w := agenttest.Workload("w1", "cali1", "10.65.0.1")
	if err := s.Create(t.Context(), w); err != nil {
		t.Fatal(err)
	}
	agenttest.WaitApplied(t, a, w)
	cancel()
	<-done

	// No datastore this time: the same dataplane, from the cache.
	b, _, routes := agenttest.Run(t, dir, nil)
	agenttest.WaitApplied(t, b, w)
	if got := routes.String(); got != "10.65.0.1/32 dev cali1\n" {
		t.Errorf("routes from the cache = %q", got)
	}
	if !b.Last().FromSnapshot {
		t.Errorf("the apply does not say it came from the saved state")
	}
}

func TestAgentDoesNothingBeforeItHasAState(t *testing.T) {
	a, rules, routes := agenttest.Run(t, t.TempDir(), nil)
	ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancel()
	if err := a.WaitApplied(ctx, 1); err == nil {
		t.Fatal("an agent with neither a cache nor a datastore says it applied something")
	}
	if rules.Applies != 0 || routes.Applies != 0 {
		t.Errorf("drivers were called (%d, %d times) before the agent had any state", rules.Applies, routes.Applies)
	}
}

// TestAgentSurvivesACorruptCache: the state cache is only a cache: random
// bytes, or a real cache with pages overwritten, are moved aside and the
// agent starts empty, never fails or panics.
func TestAgentSurvivesACorruptCache(t *testing.T) {
	log := slog.New(slog.DiscardHandler)
	open := func(dir string) {
		t.Helper()
		a, err := agent.New(agent.Config{Name: "n1", DataDir: dir, Log: log}, nft.NewFake(), route.NewFake())
		if err != nil {
			t.Fatalf("a corrupt state cache stops the agent: %v", err)
		}
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		a.Run(ctx) // closes the cache
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "state.db"), bytes.Repeat([]byte{0xde, 0xad, 0xbe, 0xef}, 4096), 0o600); err != nil {
		t.Fatal(err)
	}
	open(dir)
	if aside, _ := filepath.Glob(filepath.Join(dir, "state.db.corrupt-*")); len(aside) != 1 {
		t.Errorf("the corrupt cache was not moved aside: %v", aside)
	}

	// A real cache, then pages in the middle overwritten.
	dir = t.TempDir()
	cli := testutil.StartEtcd(t)
	s := etcdv3.New(cli)
	a, _, _ := agenttest.Run(t, dir, agent.FromStore(s, ipam.New(cli)))
	s.Create(t.Context(), store.ClassicProfile("a"))
	for i := range 50 {
		w := agenttest.Workload(fmt.Sprintf("w%d", i), fmt.Sprintf("cali%d", i), fmt.Sprintf("10.65.0.%d", i+1))
		if err := s.Create(t.Context(), w); err != nil {
			t.Fatal(err)
		}
		if i == 49 {
			agenttest.WaitApplied(t, a, w)
		}
	}
	b, err := os.ReadFile(filepath.Join(dir, "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	for _, off := range []int{4096 * 2, 4096 * 3, len(b) / 2} {
		if off+4096 <= len(b) {
			copy(b[off:off+4096], bytes.Repeat([]byte{0xff}, 4096))
		}
	}
	dir2 := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir2, "state.db"), b, 0o600); err != nil {
		t.Fatal(err)
	}
	open(dir2)
}

// TestAgentReadsBlocksAfterAClaim: a pass for a workload change does not
// read this host's blocks (a round trip to etcd) unless this host's IPAM
// claimed one since they were last read; then the block's blackhole
// route comes with the workload that took the block's first address.
func TestAgentReadsBlocksAfterAClaim(t *testing.T) {
	cli := testutil.StartEtcd(t)
	s, m := etcdv3.New(cli), ipam.New(cli)
	a, _, routes := agenttest.Run(t, t.TempDir(), agent.FromStore(s, m))
	if err := s.Create(t.Context(), store.ClassicProfile("a")); err != nil {
		t.Fatal(err)
	}
	pool := ipam.Pool{CIDR: netip.MustParsePrefix("10.65.0.0/16"), BlockSize: 26}
	want := ""
	for i := range 2 {
		addr, err := m.AutoAssign(t.Context(), fmt.Sprint("h", i), agenttest.Node, []ipam.Pool{pool}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			block, _ := addr.Prefix(26)
			want = "blackhole " + block.String() + "\n"
		}
		want += fmt.Sprintf("%s/32 dev cali%d\n", addr, i)
		w := agenttest.Workload(fmt.Sprint("w", i), fmt.Sprint("cali", i), addr.String())
		if err := s.Create(t.Context(), w); err != nil {
			t.Fatal(err)
		}
		agenttest.WaitApplied(t, a, w)
		if got := routes.String(); got != want {
			t.Errorf("routes after workload %d = %q; want %q", i, got, want)
		}
	}
}

// The pass that programs the datastore's listing says how long that
// took and where, once per listing: not for the passes after it.
func TestAgentLogsTheListingProgrammed(t *testing.T) {
	cli := testutil.StartEtcd(t)
	s := etcdv3.New(cli)
	s.Create(t.Context(), store.ClassicProfile("a"))
	w := agenttest.Workload("w1", "cali1", "10.65.0.1")
	if err := s.Create(t.Context(), w); err != nil {
		t.Fatal(err)
	}
	var out testutil.SyncBuffer
	a, err := agent.New(agent.Config{Name: agenttest.Node, DataDir: t.TempDir(), Log: slog.New(slog.NewTextHandler(&out, nil))}, nft.NewFake(), route.NewFake())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { a.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	a.Connect(agent.FromStore(s, ipam.New(cli)))
	agenttest.WaitApplied(t, a, w)
	w2 := agenttest.Workload("w2", "cali2", "10.65.0.2")
	if err := s.Create(t.Context(), w2); err != nil {
		t.Fatal(err)
	}
	agenttest.WaitApplied(t, a, w2)
	log := out.String()
	if n := strings.Count(log, `msg="programmed the datastore's listing"`); n != 1 || !strings.Contains(log, "since_listed=") || !strings.Contains(log, " calc=") {
		t.Errorf("%d lines saying the listing was programmed, want 1 with its parts:\n%s", n, log)
	}
}

// runResyncing runs an agent of node n1 with a resync period of 100 ms,
// connected to ds, until the test ends.
func runResyncing(t *testing.T, ds agent.Datastore) (*agent.Agent, *route.Fake) {
	routes := route.NewFake()
	a, err := agent.New(agent.Config{Name: agenttest.Node, DataDir: t.TempDir(), Log: slog.New(slog.NewTextHandler(t.Output(), nil)), Resync: 100 * time.Millisecond}, nft.NewFake(), routes)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { a.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	a.Connect(ds)
	return a, routes
}

// hangingBlocks is a datastore whose reads of this host's blocks hang,
// once the first has answered, until gate is closed.
type hangingBlocks struct {
	agent.Datastore
	gate  chan struct{}
	reads atomic.Int32
}

func (d *hangingBlocks) HostBlocks(ctx context.Context, host string) ([]netip.Prefix, error) {
	if d.reads.Add(1) > 1 {
		<-d.gate // not ctx: a pass that waited for this read would hang
	}
	return d.Datastore.HostBlocks(ctx, host)
}

// TestAgentChangeDoesNotWaitForThePeriodicBlockRead: the read of this
// host's blocks that is due once a resync period goes on beside the
// loop; a change's pass meanwhile programs without it.
func TestAgentChangeDoesNotWaitForThePeriodicBlockRead(t *testing.T) {
	cli := testutil.StartEtcd(t)
	s := etcdv3.New(cli)
	ds := &hangingBlocks{Datastore: agent.FromStore(s, ipam.New(cli)), gate: make(chan struct{})}
	a, _ := runResyncing(t, ds)
	t.Cleanup(func() { close(ds.gate) }) // before the agent stops: it waits for the read
	if err := s.Create(t.Context(), store.ClassicProfile("a")); err != nil {
		t.Fatal(err)
	}
	w1 := agenttest.Workload("w1", "cali1", "10.65.0.1")
	if err := s.Create(t.Context(), w1); err != nil {
		t.Fatal(err)
	}
	agenttest.WaitApplied(t, a, w1)
	for ds.reads.Load() < 2 { // the periodic read, hanging
		time.Sleep(10 * time.Millisecond)
	}
	w2 := agenttest.Workload("w2", "cali2", "10.65.0.2")
	if err := s.Create(t.Context(), w2); err != nil {
		t.Fatal(err)
	}
	agenttest.WaitApplied(t, a, w2)
}

// TestAgentFindsABlockClaimedElsewhere: a block given to this host by
// another IPAM client (not this host's, whose claims a pass reads at
// once) is found by the periodic read, and its route programmed.
func TestAgentFindsABlockClaimedElsewhere(t *testing.T) {
	cli := testutil.StartEtcd(t)
	s := etcdv3.New(cli)
	a, routes := runResyncing(t, agent.FromStore(s, ipam.New(cli)))
	w := agenttest.Workload("w1", "cali1", "10.65.0.1")
	if err := s.Create(t.Context(), w); err != nil {
		t.Fatal(err)
	}
	agenttest.WaitApplied(t, a, w)
	pool := ipam.Pool{CIDR: netip.MustParsePrefix("10.66.0.0/16"), BlockSize: 26}
	addr, err := ipam.New(cli).AutoAssign(t.Context(), "elsewhere", agenttest.Node, []ipam.Pool{pool}, nil)
	if err != nil {
		t.Fatal(err)
	}
	block, _ := addr.Prefix(26)
	want := "blackhole " + block.String() + "\n"
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(routes.String(), want) {
		if time.Now().After(deadline) {
			t.Fatalf("no route for the block %s claimed elsewhere; routes:\n%s", block, routes)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
