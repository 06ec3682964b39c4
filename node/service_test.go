package node

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"calico/cluster"
	"calico/nft"
)

// fakeNotifier records what the node tells systemd, as events.
type fakeNotifier struct {
	ev    *events
	every time.Duration

	mu    sync.Mutex
	pings []time.Time
}

func (f *fakeNotifier) Notify(states ...string) error {
	for _, s := range states {
		if s == "WATCHDOG=1" {
			f.mu.Lock()
			f.pings = append(f.pings, time.Now())
			n := len(f.pings)
			f.mu.Unlock()
			if n > 1 {
				continue // the first is an event, the rest are counted
			}
		}
		f.ev.add("notify " + s)
	}
	return nil
}

func (f *fakeNotifier) WatchdogInterval() time.Duration { return f.every }

// pingsSince counts the watchdog pings after t.
func (f *fakeNotifier) pingsSince(t time.Time) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, p := range f.pings {
		if p.After(t) {
			n++
		}
	}
	return n
}

// hangingFirewall is the fake firewall, whose Apply can be made to hang
// (a stuck kernel call) until released.
type hangingFirewall struct {
	fakeFirewall
	hangNext atomic.Bool
	hanging  chan struct{} // closed when Apply hangs
	release  chan struct{} // closed to let it return
	applied  sync.Once
}

func (f *hangingFirewall) Apply(ctx context.Context, rs nft.Ruleset) error {
	f.applied.Do(func() { f.ev.add("firewall applied") })
	if f.hangNext.CompareAndSwap(true, false) {
		close(f.hanging)
		<-f.release
	}
	return f.fakeFirewall.Apply(ctx, rs)
}

func TestRunNotifiesSystemd(t *testing.T) {
	ev := &events{}
	p, fc := testParts(t, ev, nil)
	fw := &hangingFirewall{fakeFirewall: fakeFirewall{Fake: nft.NewFake(), ev: ev}, hanging: make(chan struct{}), release: make(chan struct{})}
	p.firewall = func(*slog.Logger, bool) firewallDriver { return fw }
	start := p.cluster
	p.cluster = func(ctx context.Context, cfg cluster.Config) (clusterPart, error) {
		time.Sleep(300 * time.Millisecond) // etcd starting: the watchdog is pinged meanwhile
		return start(ctx, cfg)
	}
	var logs bytes.Buffer
	var logMu sync.Mutex
	cfg := testConfig(t)
	cfg.Log = slog.New(slog.NewTextHandler(writerFunc(func(b []byte) (int, error) {
		logMu.Lock()
		defer logMu.Unlock()
		return logs.Write(b)
	}), nil))
	sd := &fakeNotifier{ev: ev, every: 100 * time.Millisecond}
	cfg.Notify = sd
	_, stop := startNode(t, cfg, p)
	waitFor(t, "READY=1", func() bool { return slices.Contains(ev.all(), "notify READY=1") })

	got := ev.all()
	order := func(a, b string) {
		t.Helper()
		i, j := slices.Index(got, a), slices.Index(got, b)
		if i < 0 || j < 0 || i > j {
			t.Errorf("want %q before %q: %v", a, b, got)
		}
	}
	order("notify WATCHDOG=1", "cluster started")
	order("notify STATUS=founding a new cluster", "cluster started")
	order("notify STATUS=serving the API; programming the dataplane", "notify READY=1")
	order("firewall applied", "notify READY=1")
	if i := slices.Index(got, "notify READY=1"); !strings.HasPrefix(got[i+1], "notify STATUS=ready: node n1 (voter) of cluster c0ffee; dataplane programmed from the datastore") {
		t.Errorf("READY=1 came without its status: %v", got)
	}

	// Pings every 100ms while the loops answer.
	now := time.Now()
	time.Sleep(550 * time.Millisecond)
	if n := sd.pingsSince(now); n < 4 || n > 7 {
		t.Errorf("%d watchdog pings in 550ms; want about 5 (every 100ms)", n)
	}

	// The agent's loop hangs in a kernel call: no more pings.
	fw.hangNext.Store(true)
	fc.gossip <- cluster.Member{} // a host changed: the agent runs a pass
	select {
	case <-fw.hanging:
	case <-time.After(10 * time.Second):
		t.Fatal("the agent did not run a pass")
	}
	time.Sleep(200 * time.Millisecond)
	stuck := time.Now()
	time.Sleep(500 * time.Millisecond)
	if n := sd.pingsSince(stuck); n != 0 {
		t.Errorf("%d watchdog pings while the agent's loop was stuck; want none", n)
	}
	logMu.Lock()
	if !strings.Contains(logs.String(), "not pinging the watchdog") || !strings.Contains(logs.String(), "the agent's loop does not answer") {
		t.Errorf("the log does not say why the watchdog is not pinged:\n%s", logs.String())
	}
	logMu.Unlock()
	close(fw.release) // it returns
	resumed := time.Now()
	waitFor(t, "pings again", func() bool { return sd.pingsSince(resumed) >= 2 })

	if err := stop(); err != nil {
		t.Fatal(err)
	}
	got = ev.all()
	stopAt := slices.Index(got, "notify STOPPING=1")
	if stopAt < 0 || got[stopAt+1] != "notify STATUS=stopping; the dataplane stays as it is" {
		t.Fatalf("no STOPPING=1 with its status: %v", got)
	}
	order("notify STOPPING=1", "cluster closed")
	stopped := time.Now()
	time.Sleep(300 * time.Millisecond)
	if n := sd.pingsSince(stopped); n != 0 {
		t.Errorf("%d watchdog pings after the node stopped", n)
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(b []byte) (int, error) { return f(b) }

// A restarted node is ready as soon as it has programmed its state cache,
// before the datastore answers.
func TestRunReadyFromStateCache(t *testing.T) {
	ev := &events{}
	p, _ := testParts(t, ev, nil)
	cfg := testConfig(t)
	_, stop := startNode(t, cfg, p) // a first run fills the state cache
	waitFor(t, "the state cache", func() bool {
		st, err := os.Stat(filepath.Join(cfg.DataDir, "state.db"))
		return err == nil && st.Size() > 0
	})
	time.Sleep(1500 * time.Millisecond) // the cache is saved at most every second
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	writeIdentity(t, cfg.DataDir)

	ev2 := &events{}
	p2, _ := testParts(t, ev2, nil)
	block := make(chan struct{})
	start := p2.cluster
	p2.cluster = func(ctx context.Context, c cluster.Config) (clusterPart, error) {
		<-block // etcd waits for a quorum of voters
		return start(ctx, c)
	}
	cfg.Notify = &fakeNotifier{ev: ev2}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- run(ctx, cfg, p2) }()
	defer func() { cancel(); <-done }()
	time.Sleep(300 * time.Millisecond)
	if got := ev2.all(); slices.Contains(got, "notify READY=1") || !slices.Contains(got, "notify STATUS=programming the dataplane from the state cache") {
		t.Errorf("before the cluster started: %v", got)
	}
	close(block)
	waitFor(t, "READY=1", func() bool { return slices.Contains(ev2.all(), "notify READY=1") })
	got := ev2.all()
	if i := slices.Index(got, "notify READY=1"); !strings.Contains(got[i+1], "dataplane programmed from the state cache") {
		t.Errorf("READY=1 came with %q; want it programmed from the state cache", got[i+1])
	}
}
