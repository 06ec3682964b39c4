package cluster

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"
)

var (
	gossipKey      = bytes.Repeat([]byte{1}, 32)
	gossipOtherKey = bytes.Repeat([]byte{2}, 32)
	loopback       = netip.MustParseAddr("127.0.0.1")
)

// gossipPort asks the kernel for a port that is free for both TCP and UDP
// right now.
func gossipPort(t *testing.T) int {
	t.Helper()
	for range 20 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := ln.Addr().(*net.TCPAddr).Port
		pc, err := net.ListenPacket("udp", fmt.Sprintf("127.0.0.1:%d", port))
		ln.Close()
		if err == nil {
			pc.Close()
			return port
		}
	}
	t.Fatal("no port free for both tcp and udp")
	return 0
}

func testMeta(name, cluster string) Meta {
	return Meta{Name: name, ClusterID: cluster, IPv4: "127.0.0.1", Role: "voter", Version: "v1", JoinPort: 7947, EtcdPort: 2379}
}

// startGossip starts a gossip on 127.0.0.1, on port (0: any free one,
// retrying when another process takes it first). It is closed when the
// test ends.
func startGossip(t *testing.T, meta Meta, key []byte, port int) *Gossip {
	t.Helper()
	var lastErr error
	for range 5 {
		p := port
		if p == 0 {
			p = gossipPort(t)
		}
		g, err := StartGossip(GossipConfig{
			Meta: meta, Bind: loopback, Port: p, Key: key,
			Log: slog.New(slog.NewTextHandler(t.Output(), nil)).With("node", meta.Name),
		})
		if err == nil {
			t.Cleanup(func() { g.Close() })
			return g
		}
		lastErr = err
	}
	t.Fatalf("starting gossip %s: %v", meta.Name, lastErr)
	return nil
}

func (g *Gossip) addr() string { return netip.AddrPortFrom(loopback, uint16(g.port)).String() }

// startGossips starts n gossips of cluster "c1" named n0, n1, … and has
// each join the first.
func startGossips(t *testing.T, n int) []*Gossip {
	t.Helper()
	gs := make([]*Gossip, n)
	for i := range gs {
		gs[i] = startGossip(t, testMeta(fmt.Sprintf("n%d", i), "c1"), gossipKey, 0)
		if i > 0 {
			if got, err := gs[i].Join([]string{gs[0].addr()}); got != 1 || err != nil {
				t.Fatalf("n%d joining n0: %d, %v", i, got, err)
			}
		}
	}
	// A join returns once the joiner has n0's state; n0 merges the
	// joiner's just after it answered (memberlist's push/pull), so a
	// test that looked at once saw n0 alone (seen in CI).
	eventually(t, 10*time.Second, func() string {
		for _, g := range gs {
			if ms := g.Members(); len(ms) != n {
				return fmt.Sprintf("%s sees %d members, want %d", g.meta0.Name, len(ms), n)
			}
		}
		return ""
	})
	return gs
}

// eventually polls cond until it returns "" or the deadline passes; then
// it fails the test with cond's last complaint.
func eventually(t *testing.T, within time.Duration, cond func() string) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		msg := cond()
		if msg == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %s", within, msg)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// stateIs says how g's view of name differs from state ("" if it does not).
func stateIs(g *Gossip, name, state string) string {
	m, ok := g.Member(name)
	if !ok {
		return fmt.Sprintf("%s has not seen %s", g.meta0.Name, name)
	}
	if m.State != state {
		return fmt.Sprintf("%s sees %s %s, want %s", g.meta0.Name, name, m.State, state)
	}
	return ""
}

// allAlive says how a member's view differs from every member alive.
func allAlive(gs []*Gossip) func() string {
	return func() string {
		for _, g := range gs {
			for _, o := range gs {
				if msg := stateIs(g, o.meta0.Name, "alive"); msg != "" {
					return msg
				}
			}
		}
		return ""
	}
}

func TestGossipJoin(t *testing.T) {
	t.Parallel()
	gs := startGossips(t, 3)
	eventually(t, 10*time.Second, func() string {
		for _, g := range gs {
			ms := g.Members()
			if len(ms) != 3 {
				return fmt.Sprintf("%s sees %v", g.meta0.Name, ms)
			}
			for i, m := range ms {
				want := Member{
					Meta: testMeta(fmt.Sprintf("n%d", i), "c1"), State: "alive",
					Addr: netip.AddrPortFrom(loopback, uint16(gs[i].port)), Since: m.Since,
				}
				if m != want {
					return fmt.Sprintf("%s sees %+v, want %+v", g.meta0.Name, m, want)
				}
			}
		}
		return ""
	})
}

// TestGossipExitToldStraight: a member that hears of a node's death
// before its gossiped meta (which says it is leaving) still knows it left:
// the node told it straight. Here the meta is never gossiped at all.
func TestGossipExitToldStraight(t *testing.T) {
	t.Parallel()
	gs := startGossips(t, 3)
	eventually(t, 10*time.Second, allAlive(gs))
	select {
	case <-gs[2].tellExit("leaving"):
	case <-time.After(10 * time.Second):
		t.Fatal("telling the exit took over 10s")
	}
	gs[2].life.Lock()
	if err := gs[2].ml.Leave(5 * time.Second); err != nil { // no meta gossiped first
		t.Errorf("leaving: %v", err)
	}
	gs[2].shutdown()
	gs[2].life.Unlock()
	eventually(t, 10*time.Second, func() string {
		for _, g := range gs[:2] {
			if msg := stateIs(g, "n2", "left"); msg != "" {
				return msg
			}
		}
		return ""
	})

	// Told after the death was heard, the member takes it back.
	gs[1].Close()
	eventually(t, 10*time.Second, func() string { return stateIs(gs[0], "n1", "dead") })
	gs[0].noteExit([]byte(exitMsg + "stopping\x00n1"))
	if msg := stateIs(gs[0], "n1", "stopped"); msg != "" {
		t.Error(msg)
	}
	gs[0].noteExit([]byte(exitMsg + "vanishing\x00n0"))
	if msg := stateIs(gs[0], "n0", "alive"); msg != "" {
		t.Errorf("a malformed exit message: %s", msg)
	}
}

// TestGossipToldExitExpires: an exit intent told straight stands only for
// a death soon after; a crash long after (the node came back unseen, say)
// is a crash.
func TestGossipToldExitExpires(t *testing.T) {
	t.Parallel()
	gs := startGossips(t, 3)
	eventually(t, 10*time.Second, func() string { return stateIs(gs[0], "n2", "alive") })
	gs[0].mu.Lock()
	gs[0].exitHold = 200 * time.Millisecond
	gs[0].mu.Unlock()
	gs[0].noteExit([]byte(exitMsg + "stopping\x00n2"))
	time.Sleep(300 * time.Millisecond)
	gs[2].Close()
	eventually(t, 10*time.Second, func() string { return stateIs(gs[0], "n2", "dead") })
}

func TestGossipDeadAndLeft(t *testing.T) {
	t.Parallel()
	gs := startGossips(t, 4)
	eventually(t, 10*time.Second, allAlive(gs))

	closed := time.Now()
	gs[3].Close()
	eventually(t, 10*time.Second, func() string {
		for _, g := range gs[:3] {
			if msg := stateIs(g, "n3", "dead"); msg != "" {
				return msg
			}
		}
		return ""
	})
	t.Logf("n3 found dead by all in %v", time.Since(closed).Round(time.Millisecond))

	if err := gs[2].Leave(5 * time.Second); err != nil {
		t.Errorf("leaving: %v", err)
	}
	eventually(t, 10*time.Second, func() string {
		for _, g := range gs[:2] {
			if msg := stateIs(g, "n2", "left"); msg != "" {
				return msg
			}
		}
		return ""
	})
	if m, _ := gs[0].Member("n3"); m.State != "dead" {
		t.Errorf("n3 is %s after n2 left, want dead", m.State)
	}
	if err := gs[2].Leave(time.Second); err == nil {
		t.Error("leaving twice: no error")
	}
}

func TestGossipRefusesStrangers(t *testing.T) {
	t.Parallel()
	gs := startGossips(t, 2)
	strangers := []*Gossip{
		startGossip(t, testMeta("other-key", "c1"), gossipOtherKey, 0),
		startGossip(t, testMeta("other-cluster", "c2"), gossipKey, 0),
	}
	for _, s := range strangers {
		if n, err := s.Join([]string{gs[0].addr()}); n != 0 || err == nil {
			t.Errorf("%s joining: %d, %v; want refused", s.meta0.Name, n, err)
		}
		if n, err := gs[1].Join([]string{s.addr()}); n != 0 || err == nil {
			t.Errorf("joining %s: %d, %v; want refused", s.meta0.Name, n, err)
		}
	}
	// Give any leak a few gossip rounds to show.
	deadline := time.Now().Add(2 * time.Second)
	for time.Now().Before(deadline) {
		for _, g := range gs {
			if ms := g.Members(); len(ms) != len(gs) {
				t.Fatalf("%s sees %v", g.meta0.Name, ms)
			}
		}
		for _, s := range strangers {
			if ms := s.Members(); len(ms) != 1 {
				t.Fatalf("%s sees %v", s.meta0.Name, ms)
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestGossipAliveFilter(t *testing.T) {
	g := &Gossip{meta0: testMeta("n0", "c1")}
	for _, tc := range []struct {
		node, meta string
		ok         bool
	}{
		{"n1", `{"name":"n1","cluster":"c1"}`, true},
		{"n1", `{"name":"n1","cluster":"c2"}`, false},
		{"n1", `{"name":"n2","cluster":"c1"}`, false},
		{"n1", `not json`, false},
		{"n1", ``, false},
	} {
		err := gossipHooks{g}.NotifyAlive(&memberlist.Node{Name: tc.node, Meta: []byte(tc.meta)})
		if (err == nil) != tc.ok {
			t.Errorf("NotifyAlive(%s, %s) = %v, want ok %v", tc.node, tc.meta, err, tc.ok)
		}
	}
}

func TestGossipRejoin(t *testing.T) {
	t.Parallel()
	gs := startGossips(t, 3)
	eventually(t, 10*time.Second, func() string { return stateIs(gs[0], "n2", "alive") + stateIs(gs[1], "n2", "alive") })
	port := gs[2].port
	gs[2].Close()
	eventually(t, 10*time.Second, func() string { return stateIs(gs[0], "n2", "dead") + stateIs(gs[1], "n2", "dead") })

	// n2 comes back, on its old address, and joins no one.
	meta := testMeta("n2", "c1")
	meta.Version = "v2"
	n2 := startGossip(t, meta, gossipKey, port)
	known := func() []string { return []string{"127.0.0.1:" + fmt.Sprint(gs[0].port), gs[1].addr(), n2.addr()} }
	ctx, cancel := context.WithCancel(t.Context())
	var wg sync.WaitGroup
	for _, g := range gs[:2] {
		wg.Go(func() { g.Rejoin(ctx, 200*time.Millisecond, known) })
	}
	defer wg.Wait()
	defer cancel()
	eventually(t, 10*time.Second, func() string {
		var msgs []string
		for _, g := range []*Gossip{gs[0], gs[1], n2} {
			for _, name := range []string{"n0", "n1", "n2"} {
				if msg := stateIs(g, name, "alive"); msg != "" {
					msgs = append(msgs, msg)
				}
			}
		}
		if m, _ := gs[0].Member("n2"); m.Version != "v2" {
			msgs = append(msgs, "n0 sees n2 at version "+m.Version)
		}
		return strings.Join(msgs, "; ")
	})
}

func TestGossipSetMeta(t *testing.T) {
	t.Parallel()
	gs := startGossips(t, 2)
	eventually(t, 10*time.Second, func() string { return stateIs(gs[1], "n0", "alive") })

	meta := testMeta("n0", "c1")
	meta.Role = "learner"
	meta.BGPPort = 179
	if err := gs[0].SetMeta(meta); err != nil {
		t.Fatalf("setting meta: %v", err)
	}
	timeout := time.After(10 * time.Second)
	for done := false; !done; {
		select {
		case m := <-gs[1].Events():
			done = m.Name == "n0" && m.Meta == meta && m.State == "alive"
		case <-timeout:
			t.Fatalf("no event for the new meta; n1 sees %+v", gs[1].Members())
		}
	}
	if m, _ := gs[0].Member("n0"); m.Meta != meta {
		t.Errorf("n0 sees itself as %+v, want %+v", m.Meta, meta)
	}

	big := meta
	big.Version = strings.Repeat("x", memberlist.MetaMaxSize)
	if err := gs[0].SetMeta(big); err == nil {
		t.Error("setting a meta too big: no error")
	}
	renamed := meta
	renamed.Name = "n9"
	if err := gs[0].SetMeta(renamed); err == nil {
		t.Error("renaming through SetMeta: no error")
	}
	if _, err := StartGossip(GossipConfig{Meta: big, Bind: loopback, Port: gossipPort(t), Key: gossipKey}); err == nil {
		t.Error("starting with a meta too big: no error")
	}
}

func TestGossipAddr(t *testing.T) {
	g := &Gossip{port: 7946}
	for in, want := range map[string]string{
		"10.0.0.1":       "10.0.0.1:7946",
		"10.0.0.1:8000":  "10.0.0.1:8000",
		"fd00::1":        "[fd00::1]:7946",
		"[fd00::1]:8000": "[fd00::1]:8000",
		"host.example":   "host.example",
	} {
		if got := g.gossipAddr(in); got != want {
			t.Errorf("gossipAddr(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestGossipVoterChanges: a client host hears at once when another host
// takes or leaves a seat (its role) or a voter dies, and not when a
// client's meta changes otherwise.
func TestGossipVoterChanges(t *testing.T) {
	t.Parallel()
	gs := startGossips(t, 3)
	for _, n := range []string{"n0", "n2"} {
		eventually(t, 10*time.Second, func() string { return stateIs(gs[1], n, "alive") })
	}
	client := testMeta("n2", "c1")
	client.Role = "client"
	if err := gs[2].SetMeta(client); err != nil {
		t.Fatal(err)
	}
	heard := func(want Meta) {
		t.Helper()
		eventually(t, 10*time.Second, func() string {
			if m, _ := gs[1].Member("n2"); m.Meta != want {
				return fmt.Sprintf("n1 sees n2 as %+v, want %+v", m.Meta, want)
			}
			return ""
		})
	}
	heard(client)
	kicks := gs[1].VoterChanges()
	kicked := func(within time.Duration) bool {
		select {
		case <-kicks:
			return true
		case <-time.After(within):
			return false
		}
	}
	client.Version = "v2"
	if err := gs[2].SetMeta(client); err != nil {
		t.Fatal(err)
	}
	heard(client)
	if kicked(time.Second) {
		t.Error("a client's new version told of a change of the voters")
	}
	learner := client
	learner.Role = "learner"
	if err := gs[2].SetMeta(learner); err != nil {
		t.Fatal(err)
	}
	if !kicked(10 * time.Second) {
		t.Error("a client that became a learner told nothing")
	}
	gs[0].Close()
	if !kicked(30 * time.Second) {
		t.Error("a voter's death told nothing")
	}
}
