package node

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"calico/cluster"
	"calico/internal/testutil"
	"calico/nft"
	"calico/node/agent"
	"calico/node/api"
	"calico/node/route"
	"calico/store"
	"calico/store/etcdv3"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// The node's start and stop, with fakes for the kernel and the cluster:
// no root needed.

// events records what the fakes saw, in order.
type events struct {
	mu   sync.Mutex
	list []string
}

func (e *events) add(s string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.list = append(e.list, s)
}

func (e *events) all() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Clone(e.list)
}

// fakeRoutes is route.Fake that records its closing and complains of a
// use after it.
type fakeRoutes struct {
	*route.Fake
	ev     *events
	closed bool
	mu     sync.Mutex
}

func (f *fakeRoutes) Apply(want []route.Route) error {
	f.mu.Lock()
	if f.closed {
		f.ev.add("routes applied after close")
	}
	f.mu.Unlock()
	return f.Fake.Apply(want)
}

func (f *fakeRoutes) Close() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.closed = true
	f.ev.add("routes closed")
}

type fakeFirewall struct {
	*nft.Fake
	ev     *events
	closed bool
	mu     sync.Mutex
}

func (f *fakeFirewall) Apply(ctx context.Context, rs nft.Ruleset) error {
	f.mu.Lock()
	if f.closed {
		f.ev.add("firewall applied after close")
	}
	f.mu.Unlock()
	return f.Fake.Apply(ctx, rs)
}

func (f *fakeFirewall) Remove(ctx context.Context) error {
	f.ev.add("firewall removed")
	return f.Fake.Remove(ctx)
}

func (f *fakeFirewall) Close() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.closed = true
	f.ev.add("firewall closed")
	return nil
}

// fakeCluster is a one-node cluster over a test etcd.
type fakeCluster struct {
	id     cluster.Identity
	cli    *clientv3.Client
	ev     *events
	gossip chan cluster.Member
	errc   chan error
	// members, when set, are what GossipMembers says.
	members []cluster.Member
}

func (c *fakeCluster) Identity() cluster.Identity { return c.id }
func (c *fakeCluster) Founded() bool              { return true }
func (c *fakeCluster) Client() *clientv3.Client   { return c.cli }
func (c *fakeCluster) Role() string               { return "voter" }
func (c *fakeCluster) Members(context.Context) ([]cluster.MemberStatus, error) {
	return []cluster.MemberStatus{{Name: c.id.Name, Role: "voter", Gossip: "alive"}}, nil
}
func (c *fakeCluster) Down(netip.Addr) bool                                   { return false }
func (c *fakeCluster) Voters() []netip.Addr                                   { return nil }
func (c *fakeCluster) SetLivenessScope([]netip.Addr)                          {}
func (c *fakeCluster) GossipEvents() <-chan cluster.Member                    { return c.gossip }
func (c *fakeCluster) Err() <-chan error                                      { return c.errc }
func (c *fakeCluster) HandOver(context.Context) error                         { c.ev.add("seat handed over"); return nil }
func (c *fakeCluster) Depart(context.Context) error                           { c.ev.add("departed"); return nil }
func (c *fakeCluster) Close()                                                 { c.ev.add("cluster closed") }
func (c *fakeCluster) RemoveMember(context.Context, string, netip.Addr) error { return nil }
func (c *fakeCluster) VotersDown() ([]string, int)                            { return nil, 1 }
func (c *fakeCluster) ClockSkew(context.Context, cluster.Member) (time.Duration, error) {
	return 0, nil
}
func (c *fakeCluster) GossipMembers() []cluster.Member {
	if c.members != nil {
		return c.members
	}
	return []cluster.Member{{Meta: cluster.Meta{Name: c.id.Name}, State: "alive"}}
}

// testParts are fakes for every part; failCluster makes the cluster's
// start fail.
func testParts(t *testing.T, ev *events, failCluster error) (parts, *fakeCluster) {
	fc := &fakeCluster{
		id:  cluster.Identity{Name: "n1", ClusterID: "c0ffee", IPv4: netip.MustParsePrefix("10.0.0.1/24"), Role: "voter", Created: time.Now()},
		cli: testutil.StartEtcd(t), ev: ev, gossip: make(chan cluster.Member), errc: make(chan error, 1),
	}
	return parts{
		forwarding: func() error { ev.add("forwarding on"); return nil },
		routes: func(*slog.Logger) (routeDriver, error) {
			ev.add("routes opened")
			return &fakeRoutes{Fake: route.NewFake(), ev: ev}, nil
		},
		firewall: func(*slog.Logger, bool) firewallDriver { return &fakeFirewall{Fake: nft.NewFake(), ev: ev} },
		speaker:  func(*slog.Logger) agent.StartSpeaker { return nil },
		cluster: func(context.Context, cluster.Config) (clusterPart, error) {
			if failCluster != nil {
				return nil, failCluster
			}
			ev.add("cluster started")
			return fc, nil
		},
	}, fc
}

func testConfig(t *testing.T) Config {
	return Config{
		Config: cluster.Config{DataDir: t.TempDir(), Version: "test", Log: slog.New(slog.NewTextHandler(t.Output(), nil))},
		Pools:  []netip.Prefix{netip.MustParsePrefix("10.65.0.0/16")},
	}
}

// startNode runs a node until the test stops it; it returns once the API
// answers, and a stop that cancels the node and returns Run's error.
func startNode(t *testing.T, cfg Config, p parts) (client *api.Client, stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(ctx, cfg, p) }()
	client = api.NewClient(cfg.DataDir)
	deadline := time.Now().Add(10 * time.Second)
	for {
		var st api.Status
		err := client.Do(ctx, "GET", "/v1/status", nil, nil, &st)
		if err == nil {
			break
		}
		select {
		case err := <-done:
			cancel()
			t.Fatalf("the node stopped while starting: %v", err)
		default:
		}
		if time.Now().After(deadline) {
			cancel()
			t.Fatalf("the node's API did not answer: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	var once sync.Once
	var runErr error
	stop = func() error {
		once.Do(func() {
			cancel()
			select {
			case runErr = <-done:
			case <-time.After(20 * time.Second):
				runErr = errors.New("the node did not stop within 20s")
			}
		})
		return runErr
	}
	t.Cleanup(func() { stop() })
	return client, stop
}

// checkStopped checks what a stopped node leaves: no socket, the data
// dir unlocked, and every part stopped after what feeds it.
func checkStopped(t *testing.T, dir string, ev *events) {
	t.Helper()
	if st, err := os.Stat(filepath.Join(dir, api.SocketName)); err == nil && st.Mode()&os.ModeSocket != 0 {
		t.Errorf("the API socket is still there after the node stopped")
	}
	unlock, err := cluster.LockDataDir(dir)
	if err != nil {
		t.Errorf("the data dir is still locked after the node stopped: %v", err)
	} else {
		unlock()
	}
	got := ev.all()
	for _, e := range got {
		if strings.Contains(e, "after close") {
			t.Errorf("a driver was used after it was closed: %v", got)
		}
	}
	order := func(a, b string) {
		i, j := slices.Index(got, a), slices.Index(got, b)
		if i >= 0 && j >= 0 && i > j {
			t.Errorf("%q came after %q: %v", a, b, got)
		}
	}
	order("cluster closed", "routes closed")
	order("cluster closed", "firewall closed")
}

func TestRunStartsAndStops(t *testing.T) {
	ev := &events{}
	p, fc := testParts(t, ev, nil)
	cfg := testConfig(t)
	client, stop := startNode(t, cfg, p)

	var st api.Status
	if err := client.Do(t.Context(), "GET", "/v1/status", nil, nil, &st); err != nil || st.Node != "n1" || st.ClusterID != "c0ffee" {
		t.Errorf("status = %+v, %v", st, err)
	}
	// The node registers itself and its pools.
	s := etcdv3.New(fc.cli)
	waitFor(t, "the node's Node and pool", func() bool {
		n, err := etcdv3.GetOf[*store.Node](t.Context(), s, "", "n1")
		pools, _ := etcdv3.ListOf[*store.IPPool](t.Context(), s, "")
		return err == nil && n.Spec.BGP.IPv4Address == "10.0.0.1/24" && len(pools) == 1
	})
	var nodes []api.Node
	if err := client.Do(t.Context(), "GET", "/v1/nodes", nil, nil, &nodes); err != nil || len(nodes) != 1 || nodes[0].Role != "voter" || nodes[0].Gossip != "alive" {
		t.Errorf("nodes = %+v, %v", nodes, err)
	}
	if err := stop(); err != nil {
		t.Fatalf("Run returned %v after a stop", err)
	}
	checkStopped(t, cfg.DataDir, ev)
	got := ev.all()
	for _, want := range []string{"forwarding on", "routes opened", "cluster started", "cluster closed", "routes closed", "firewall closed"} {
		if !slices.Contains(got, want) {
			t.Errorf("events %v lack %q", got, want)
		}
	}
	if slices.Contains(got, "firewall removed") {
		t.Errorf("a stop that is not a leave removed the firewall: %v", got)
	}
}

// writeIdentity makes dir look like the data dir of a node that ran
// before: the agent starts from its state cache before the cluster.
func writeIdentity(t *testing.T, dir string) {
	b, _ := json.Marshal(cluster.Identity{Name: "n1", ClusterID: "c0ffee", Role: "voter"})
	if err := os.WriteFile(filepath.Join(dir, "node.json"), b, 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestRunFailsInTheMiddle(t *testing.T) {
	for _, tc := range []struct {
		name  string
		setup func(t *testing.T, cfg *Config, p *parts) (want string)
	}{
		{"the cluster does not start", func(t *testing.T, cfg *Config, p *parts) string {
			writeIdentity(t, cfg.DataDir)
			return "no quorum for you"
		}},
		{"the API socket cannot be made", func(t *testing.T, cfg *Config, p *parts) string {
			sock := filepath.Join(cfg.DataDir, api.SocketName)
			os.MkdirAll(filepath.Join(sock, "in-the-way"), 0o700)
			return "listening on " + sock
		}},
		{"netlink does not open", func(t *testing.T, cfg *Config, p *parts) string {
			p.routes = func(*slog.Logger) (routeDriver, error) { return nil, errors.New("no netlink here") }
			return "opening netlink: no netlink here"
		}},
		{"pools overlap", func(t *testing.T, cfg *Config, p *parts) string {
			cfg.Pools = append(cfg.Pools, netip.MustParsePrefix("10.65.1.0/24"))
			return "--pool 10.65.1.0/24 overlaps --pool 10.65.0.0/16"
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ev := &events{}
			cfg := testConfig(t)
			var failCluster error
			if tc.name == "the cluster does not start" {
				failCluster = errors.New("no quorum for you")
			}
			p, _ := testParts(t, ev, failCluster)
			want := tc.setup(t, &cfg, &p)
			done := make(chan error, 1)
			go func() { done <- run(t.Context(), cfg, p) }()
			select {
			case err := <-done:
				if err == nil || !strings.Contains(err.Error(), want) {
					t.Errorf("Run = %v; want an error saying %q", err, want)
				}
			case <-time.After(20 * time.Second):
				t.Fatal("Run did not return after a failure in the middle of its start")
			}
			checkStopped(t, cfg.DataDir, ev)
			got := ev.all()
			if slices.Contains(got, "routes opened") && !slices.Contains(got, "routes closed") {
				t.Errorf("the routes were opened and never closed: %v", got)
			}
			if slices.Contains(got, "cluster started") && !slices.Contains(got, "cluster closed") {
				t.Errorf("the cluster was started and never closed: %v", got)
			}
		})
	}
}

func TestRunLeaves(t *testing.T) {
	ev := &events{}
	p, _ := testParts(t, ev, nil)
	cfg := testConfig(t)
	client, stop := startNode(t, cfg, p)
	if err := client.Do(t.Context(), "POST", "/v1/leave", nil, nil, nil); err != nil {
		t.Fatalf("leave: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- stop() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run after a leave = %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the node did not stop after leaving")
	}
	checkStopped(t, cfg.DataDir, ev)
	got := ev.all()
	want := []string{"seat handed over", "departed", "firewall removed", "cluster closed"}
	var seen []string
	for _, e := range got {
		if slices.Contains(want, e) {
			seen = append(seen, e)
		}
	}
	if !slices.Equal(seen, want) {
		t.Errorf("leaving did %v; want %v in that order (all events: %v)", seen, want, got)
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal(fmt.Sprintf("timed out waiting for %s", what))
		}
	}
}
func (c *fakeCluster) DiskFull() string { return "" }
