package node

import (
	"bytes"
	"context"
	"errors"
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
	"calico/node/api"
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

func TestDataFormat(t *testing.T) {
	read := func(t *testing.T, dir string) formatRecord {
		t.Helper()
		rec, err := readFormat(filepath.Join(dir, formatFile))
		if err != nil {
			t.Fatal(err)
		}
		return rec
	}
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))

	t.Run("a new data dir gets the current format", func(t *testing.T) {
		dir := t.TempDir()
		if err := checkFormat(dir, "v2", log); err != nil {
			t.Fatal(err)
		}
		if rec := read(t, dir); rec != (formatRecord{Format: DataFormat, Calico: "v2"}) {
			t.Errorf("record = %+v", rec)
		}
	})
	t.Run("an unversioned data dir is migrated, in one log line", func(t *testing.T) {
		dir := t.TempDir()
		writeIdentity(t, dir)
		logs.Reset()
		if err := checkFormat(dir, "v2", log); err != nil {
			t.Fatal(err)
		}
		if rec := read(t, dir); rec.Format != DataFormat {
			t.Errorf("record = %+v", rec)
		}
		out := strings.TrimSpace(logs.String())
		if strings.Count(out, "\n") != 0 || !strings.Contains(out, "migrated data dir "+dir+" from format 0 to 1") {
			t.Errorf("log = %q; want one line saying the data dir was migrated", out)
		}
		logs.Reset()
		if err := checkFormat(dir, "v2", log); err != nil || logs.Len() != 0 {
			t.Errorf("a second start: %v, log %q", err, logs.String())
		}
	})
	t.Run("another binary of the same format records its version", func(t *testing.T) {
		dir := t.TempDir()
		checkFormat(dir, "v2", log)
		if err := checkFormat(dir, "v2.1", log); err != nil || read(t, dir).Calico != "v2.1" {
			t.Errorf("%v, %+v", err, read(t, dir))
		}
	})
	t.Run("a newer data dir is refused, in one line, and left as it is", func(t *testing.T) {
		dir := t.TempDir()
		newer := `{"format": 2, "calico": "v3"}` + "\n"
		os.WriteFile(filepath.Join(dir, formatFile), []byte(newer), 0o600)
		err := checkFormat(dir, "v2", log)
		want := "data dir " + dir + " has format 2, written by calico v3; this calico (v2) reads format 1 at most: run calico v3 or newer with it, or move it aside"
		if err == nil || err.Error() != want {
			t.Errorf("err = %v; want %q", err, want)
		}
		if c, _ := api.ClassOf(err); c != api.Conflict {
			t.Errorf("class = %v; want Conflict", c)
		}
		if b, _ := os.ReadFile(filepath.Join(dir, formatFile)); string(b) != newer {
			t.Errorf("the record became %q", b)
		}
	})
	t.Run("an unreadable record is refused", func(t *testing.T) {
		dir := t.TempDir()
		os.WriteFile(filepath.Join(dir, formatFile), []byte("seven\n"), 0o600)
		if err := checkFormat(dir, "v2", log); err == nil || !strings.Contains(err.Error(), "does not say the data dir's format") {
			t.Errorf("err = %v", err)
		}
	})
	t.Run("a failed migration stops the start", func(t *testing.T) {
		old := migrations
		t.Cleanup(func() { migrations = old })
		migrations = []migration{{did: "nothing", do: func(string) error { return errors.New("disk on fire") }}}
		dir := t.TempDir()
		writeIdentity(t, dir)
		if err := checkFormat(dir, "v2", log); err == nil || !strings.Contains(err.Error(), "from format 0 to 1: disk on fire") {
			t.Errorf("err = %v", err)
		}
		if _, err := os.Stat(filepath.Join(dir, formatFile)); err == nil {
			t.Error("a failed migration recorded the new format")
		}
	})
}

// A node refuses a newer data dir before it starts anything.
func TestRunRefusesANewerDataDir(t *testing.T) {
	ev := &events{}
	p, _ := testParts(t, ev, nil)
	cfg := testConfig(t)
	os.WriteFile(filepath.Join(cfg.DataDir, formatFile), []byte(`{"format": 99, "calico": "v9"}`), 0o600)
	err := run(t.Context(), cfg, p)
	if err == nil || !strings.Contains(err.Error(), "has format 99") {
		t.Fatalf("Run = %v", err)
	}
	if got := ev.all(); len(got) != 0 {
		t.Errorf("a refused node started %v", got)
	}
}
