package cluster

import (
	"calico/cluster/token"
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// found founds a cluster of one host, closed when the test ends, and
// returns it with its config and join token.
func found(t *testing.T, tune func(*Config)) (*Cluster, Config, string) {
	cfg := testConfig(t, t.TempDir())
	tune(&cfg)
	n1, err := Start(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(n1.Close)
	tok, _ := token.Load(cfg.DataDir)
	return n1, cfg, tok.String()
}

// join starts host name joining seed's cluster with tok, closed when the
// test ends.
func join(t *testing.T, name string, seed *Cluster, tok string, tune func(*Config)) (*Cluster, Config) {
	cfg := joinConfig(t, name, seed, tok)
	tune(&cfg)
	c, err := Start(t.Context(), cfg)
	if err != nil {
		t.Fatalf("joining %s: %v", name, err)
	}
	t.Cleanup(c.Close)
	return c, cfg
}

// startFour founds a cluster and joins three more hosts: three voters and
// a client.
func startFour(t *testing.T, tune func(*Config)) (cs []*Cluster, cfgs []Config) {
	n1, cfg, tok := found(t, tune)
	cs, cfgs = []*Cluster{n1}, []Config{cfg}
	for i := 2; i <= 4; i++ {
		c, cfg := join(t, fmt.Sprintf("n%d", i), n1, tok, tune)
		cs, cfgs = append(cs, c), append(cfgs, cfg)
		if i == 3 {
			waitFor(t, 30*time.Second, "three voters", func() bool { return voters(t, n1) == "n1 n2 n3" })
		}
	}
	return cs, cfgs
}

// voters lists the voters' names as one string.
func voters(t *testing.T, c *Cluster) string {
	var out []string
	for n, r := range roles(t, c) {
		if r == "voter" {
			out = append(out, n)
		}
	}
	slices.Sort(out)
	return strings.Join(out, " ")
}

func TestReplaceDeadVoter(t *testing.T) {
	cs, cfgs := startFour(t, func(c *Config) { c.VoterReplaceAfter = 2 * time.Second })
	n3 := cs[2]
	n3.Close() // dies, without leaving
	start := time.Now()
	waitFor(t, 60*time.Second, "n4 to take n3's seat", func() bool { return voters(t, cs[0]) == "n1 n2 n4" })
	t.Logf("n3's seat went to n4 %s after n3 died (replace-after 2s)", time.Since(start).Round(100*time.Millisecond))

	// n3 comes back: it was replaced, so it goes on as a client of the
	// same cluster.
	cfg := cfgs[2]
	cfg.Name, cfg.Join = "", ""
	back, err := Start(t.Context(), cfg)
	if err != nil {
		t.Fatalf("n3 starting again: %v", err)
	}
	defer back.Close()
	if back.id.Role != "client" || back.embedded() != nil || back.id.ClusterID != cs[0].id.ClusterID {
		t.Errorf("n3 came back as %+v; want a client of cluster %s", back.id, cs[0].id.ClusterID)
	}
	if got := voters(t, cs[0]); got != "n1 n2 n4" {
		t.Errorf("voters after n3 came back = %s", got)
	}
	waitFor(t, 20*time.Second, "n1 to see n3 alive again", func() bool {
		m, ok := cs[0].gossip.Member("n3")
		return ok && m.State == "alive"
	})
}

func TestLeave(t *testing.T) {
	cs, _ := startFour(t, func(*Config) {})
	if err := cs[1].HandOver(t.Context()); err != nil {
		t.Fatalf("n2 handing over its seat: %v", err)
	}
	// The agent's copy of the datastore, which the cluster package
	// does not write, goes aside too.
	if err := os.WriteFile(filepath.Join(cs[1].cfg.DataDir, "state.db"), []byte("cache"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := cs[1].Depart(t.Context()); err != nil {
		t.Fatalf("n2 departing: %v", err)
	}
	for _, f := range []string{"node.json", "state.db"} {
		if aside, _ := filepath.Glob(filepath.Join(cs[1].cfg.DataDir, "left-*", f)); len(aside) != 1 {
			t.Errorf("n2's %s moved aside to %v, want one left-* dir", f, aside)
		}
	}
	waitFor(t, 60*time.Second, "n4 to take n2's seat", func() bool { return voters(t, cs[0]) == "n1 n3 n4" })
	waitFor(t, 10*time.Second, "n2 to be seen leaving", func() bool {
		m, _ := cs[0].gossip.Member("n2")
		return m.State == "left"
	})
	if got := slices.Sorted(maps.Keys(roles(t, cs[0]))); !slices.Equal(got, []string{"n1", "n3", "n4"}) {
		t.Errorf("etcd members after n2 left = %v", got)
	}
	if _, err := os.Stat(filepath.Join(cs[1].cfg.DataDir, "node.json")); !os.IsNotExist(err) {
		t.Errorf("n2's identity is still in its data dir after it left: %v", err)
	}
}

// TestLearnerHandsOverAtOnce: the second host of a cluster is a learner
// (it waits for a third to become a voter), so it has no vote to hand
// over: it leaves without waiting for a successor (it used to wait out
// the minute, as `calico leave` on a two-host cluster showed).
func TestLearnerHandsOverAtOnce(t *testing.T) {
	n1, _, tok := found(t, func(*Config) {})
	n2, _ := join(t, "n2", n1, tok, func(*Config) {})
	if r := roles(t, n1); r["n2"] != "learner" {
		t.Fatalf("roles before n2 hands over = %v; want n2 a learner", r)
	}
	// Well short of the minute a voter waits for a successor.
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	if err := n2.HandOver(ctx); err != nil {
		t.Fatalf("n2, a learner, handing over its seat: %v", err)
	}
	if got := slices.Sorted(maps.Keys(roles(t, n1))); !slices.Equal(got, []string{"n1"}) {
		t.Errorf("etcd members after n2 handed over = %v; want n1 alone", got)
	}
}

func TestRemoveMember(t *testing.T) {
	cs, _ := startFour(t, func(*Config) {})
	waitFor(t, 20*time.Second, "n1 to see n4 alive", func() bool {
		m, _ := cs[0].gossip.Member("n4")
		return m.State == "alive"
	})
	if err := cs[0].RemoveMember(t.Context(), "n4", netip.Addr{}); !errors.Is(err, ErrAlive) {
		t.Errorf("removing a live node = %v", err)
	}
	if err := cs[0].RemoveMember(t.Context(), "n1", netip.Addr{}); !errors.Is(err, ErrSelf) {
		t.Errorf("removing itself = %v", err)
	}
	cs[2].Close() // n3, a voter, goes away for good
	waitFor(t, 20*time.Second, "n3 gone from gossip", func() bool {
		m, _ := cs[0].gossip.Member("n3")
		return m.State != "alive"
	})
	if err := cs[0].RemoveMember(t.Context(), "n3", netip.Addr{}); err != nil {
		t.Fatalf("removing n3: %v", err)
	}
	if rs := roles(t, cs[0]); rs["n3"] != "" {
		t.Errorf("n3 is still an etcd member after it was removed: %v", rs)
	}
}

// TestFounderLoss: losing the founder, whose endpoint every other host
// was given when it joined, leaves the datastore to the other voters and
// the client at once.
func TestFounderLoss(t *testing.T) {
	cs, _ := startFour(t, func(*Config) {})
	waitFor(t, 10*time.Second, "every host to use the three voters", func() bool {
		for _, c := range cs {
			if len(c.client.Endpoints()) != 3 {
				return false
			}
		}
		return true
	})
	for _, c := range cs[1:3] {
		if got, own := c.client.Endpoints()[0], c.member.clientURL(); got != own {
			t.Errorf("%s's etcd client starts with %s; want its own member %s", c.id.Name, got, own)
		}
	}
	cs[0].Close()
	killed := time.Now()
	for _, c := range cs[1:] {
		for i := 0; ; i++ {
			ctx, cancel := context.WithTimeout(t.Context(), time.Second)
			_, err := c.client.Put(ctx, "/test/founder-loss/"+c.id.Name, "x")
			cancel()
			if err == nil {
				t.Logf("%s (%s) wrote %s after the founder stopped", c.id.Name, c.Role(), time.Since(killed).Round(time.Millisecond))
				break
			}
			if time.Since(killed) > 5*time.Second {
				t.Fatalf("%s (%s) cannot write 5s after the founder stopped: %v (endpoints %v)", c.id.Name, c.Role(), err, c.client.Endpoints())
			}
		}
	}
}

func TestClientEndpoints(t *testing.T) {
	const a, b, c = "https://10.0.0.1:2379", "https://10.0.0.2:2379", "https://10.0.0.3:2379"
	downB := func(u string) bool { return u == b }
	for _, tc := range []struct {
		voters []string
		own    string
		down   func(string) bool
		want   []string
	}{
		{[]string{a, b, c}, "", nil, []string{a, b, c}},
		{[]string{a, b, c}, c, nil, []string{c, a, b}},
		{[]string{a, b, c}, c, downB, []string{c, a}},
		{[]string{b}, "", downB, []string{b}},    // never empty while a voter is listed
		{[]string{a, b}, c, nil, []string{a, b}}, // a learner's own member is no voter
		{nil, "", nil, nil},
	} {
		if got := clientEndpoints(tc.voters, tc.own, tc.down); !slices.Equal(got, tc.want) {
			t.Errorf("clientEndpoints(%v, %q) = %v; want %v", tc.voters, tc.own, got, tc.want)
		}
	}
}

// TestDeadLearnerFreesItsSeat: a learner whose host died before its
// member started (a full disk, say) holds no seat: the next host to
// claim one removes it and takes the seat.
func TestDeadLearnerFreesItsSeat(t *testing.T) {
	n1, _, tok := found(t, func(*Config) {})
	if _, err := n1.client.MemberAddAsLearner(t.Context(), []string{"https://127.0.0.1:1"}); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"n2", "n3"} {
		join(t, name, n1, tok, func(*Config) {})
	}
	waitFor(t, 30*time.Second, "three voters", func() bool { return voters(t, n1) == "n1 n2 n3" })
	list, err := n1.client.MemberList(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range list.Members {
		if slices.Contains(m.PeerURLs, "https://127.0.0.1:1") {
			t.Errorf("the learner that never started is still a member: %v", m)
		}
	}
}

// TestDiskFull: a member does not start without room for etcd's log,
// stops before the room runs out, and starts again when there is room.
func TestDiskFull(t *testing.T) {
	defer func(s, p uint64) { startFree, stopFree = s, p }(startFree, stopFree)
	startFree = 1 << 62
	if _, err := Start(t.Context(), testConfig(t, t.TempDir())); err == nil || !strings.Contains(err.Error(), "data dir full") {
		t.Errorf("founding without room = %v; want data dir full", err)
	}
	startFree = 0
	c, err := Start(t.Context(), testConfig(t, t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	stopFree = 1 << 62 // as if the disk filled
	waitFor(t, 10*time.Second, "the member to stop", func() bool { return c.embedded() == nil && strings.Contains(c.DiskFull(), "data dir full") })
	startFree, stopFree = 0, 0 // room again
	waitFor(t, 10*time.Second, "the member to start again", func() bool { return c.embedded() != nil && c.DiskFull() == "" })
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if _, err := c.client.Put(ctx, "/test/after-full", "x"); err != nil {
		t.Errorf("writing after the member started again: %v", err)
	}
}

// TestClientPeriod: a client host reads the membership every second up
// to 50 hosts, then less often, so that the fleet's reads stay about 150
// a second (three reads a tick) however many hosts there are.
func TestClientPeriod(t *testing.T) {
	for _, tc := range []struct {
		hosts int
		want  time.Duration
	}{{1, time.Second}, {50, time.Second}, {100, 2 * time.Second}, {1000, 20 * time.Second}, {10000, 200 * time.Second}} {
		p := ClientPeriod(tc.hosts)
		if p != tc.want {
			t.Errorf("ClientPeriod(%d) = %v, want %v", tc.hosts, p, tc.want)
		}
		if reads := 3 * float64(tc.hosts) / p.Seconds(); tc.hosts >= 50 && reads > 150 {
			t.Errorf("at %d hosts the clients read %.0f times a second", tc.hosts, reads)
		}
	}
}

// TestVoterResumesThroughTheOthers: a voter restarting while the other
// voters serve uses the datastore through them at once and starts its
// own member in the background (startLater), once MemberAfter is closed
// or after memberWait; one closed while its member starts leaves no
// member running.
func TestVoterResumesThroughTheOthers(t *testing.T) {
	cs, cfgs := startFour(t, func(*Config) {})
	t.Cleanup(func() { laterHook = nil })

	cs[1].Close()
	hold := make(chan struct{})
	cfg2 := cfgs[1]
	cfg2.MemberAfter = hold
	n2, err := Start(t.Context(), cfg2)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(n2.Close)
	if n2.embedded() != nil || !n2.memberStarting() {
		t.Fatalf("Start returned with the member running %v, starting %v; want it held back", n2.embedded() != nil, n2.memberStarting())
	}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if _, err := n2.client.Put(ctx, "/test/resumed", "n2"); err != nil {
		t.Fatalf("writing through the other voters while n2's member waits: %v", err)
	}
	time.Sleep(500 * time.Millisecond) // a member not held back has started by now
	if n2.embedded() != nil {
		t.Fatal("n2's member started before MemberAfter was closed")
	}
	close(hold)
	waitFor(t, 30*time.Second, "n2's member to start", func() bool { return n2.embedded() != nil && !n2.memberStarting() })
	select {
	case <-n2.embedded().Server.ReadyNotify():
	case <-ctx.Done():
		t.Fatal("n2's member started but does not serve")
	}
	own, err := newClient([]string{n2.member.clientURL()}, n2.pki, false)
	if err != nil {
		t.Fatal(err)
	}
	defer own.Close()
	if resp, err := own.Get(ctx, "/test/resumed"); err != nil || len(resp.Kvs) != 1 {
		t.Errorf("reading from n2's own member: %v, %v", resp, err)
	}
	waitFor(t, 10*time.Second, "n1 to hear n2's etcd port", func() bool {
		m, ok := cs[0].gossip.Member("n2")
		return ok && m.EtcdPort == cfgs[1].EtcdClientPort
	})

	// n3, closed while its member waits to start: the start that comes
	// after the close stops the member, which frees its ports for the
	// next run.
	laterHook = func(ctx context.Context) { <-ctx.Done() }
	cs[2].Close()
	n3, err := Start(t.Context(), cfgs[2])
	if err != nil {
		t.Fatal(err)
	}
	n3.Close()
	if n3.embedded() != nil {
		t.Error("n3 closed with its member running")
	}
	laterHook = nil
	n3, err = Start(t.Context(), cfgs[2])
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(n3.Close)
	waitFor(t, 30*time.Second, "n3's member to start again", func() bool { return n3.embedded() != nil })
	select {
	case <-n3.embedded().Server.ReadyNotify():
	case err := <-n3.Err():
		t.Fatalf("n3's member failed: %v", err)
	case <-ctx.Done():
		t.Fatal("n3's member does not serve")
	}

	// n3 again, MemberAfter never closed: its member starts after
	// memberWait (the other voters might need it for a quorum).
	defer func(d time.Duration) { memberWait = d }(memberWait)
	memberWait = 300 * time.Millisecond
	n3.Close()
	cfg3 := cfgs[2]
	cfg3.MemberAfter = make(chan struct{})
	n3, err = Start(t.Context(), cfg3)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(n3.Close)
	waitFor(t, 30*time.Second, "n3's member to start without MemberAfter", func() bool { return n3.embedded() != nil })

	// n2 again, its member's peer port taken: Start returns, the member
	// fails in the background, and Err says so; the member's data stays.
	n2.Close()
	ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", cfgs[1].EtcdPeerPort))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	n2, err = Start(t.Context(), cfgs[1])
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(n2.Close)
	failCtx, cancelFail := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancelFail()
	select {
	case err := <-n2.Err():
		if !strings.Contains(err.Error(), "starting etcd member n2") {
			t.Errorf("n2's Err = %v; want its member's failure to start", err)
		}
	case <-failCtx.Done():
		t.Fatal("n2's member could not start, and Err did not say so")
	}
	if !etcdHasData(n2.member.dataDir) {
		t.Errorf("n2's etcd data is gone from %s", n2.member.dataDir)
	}
}
