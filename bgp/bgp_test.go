package bgp

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	api "github.com/osrg/gobgp/v3/api"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
)

const testAS = 64512

// waitTimeout bounds every wait: sessions come up in a second or two, but
// the test machine is small and busy, and a session that went down waits
// GoBGP's idle hold time (5 s) and a connect retry (5 s) before it tries
// again.
const waitTimeout = 60 * time.Second

var (
	addrA = netip.MustParseAddr("127.0.0.1")
	addrB = netip.MustParseAddr("127.0.0.2")
	addrC = netip.MustParseAddr("127.0.0.3")
)

// testLog writes the speaker's log to the test's output (shown with -v or
// on failure) until the test ends; GoBGP's goroutines may outlive it.
// BGP_TEST_LOG=debug shows more.
func testLog(t *testing.T) *slog.Logger {
	w := &testWriter{t: t}
	t.Cleanup(w.close)
	level := slog.LevelInfo
	switch os.Getenv("BGP_TEST_LOG") {
	case "debug":
		level = slog.LevelDebug
	case "trace":
		level = levelTrace
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: level}))
}

type testWriter struct {
	mu   sync.Mutex
	t    *testing.T
	done bool
}

func (w *testWriter) Write(b []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done {
		w.t.Log(strings.TrimSuffix(string(b), "\n"))
	}
	return len(b), nil
}

func (w *testWriter) close() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.done = true
}

// freePort finds a TCP port free on every one of addrs.
func freePort(t *testing.T, addrs ...netip.Addr) int {
	t.Helper()
	for range 50 {
		l, err := net.Listen("tcp", netip.AddrPortFrom(addrs[0], 0).String())
		if err != nil {
			t.Fatalf("listening on %s: %v", addrs[0], err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		ls := []net.Listener{l}
		ok := true
		for _, a := range addrs[1:] {
			l, err := net.Listen("tcp", netip.AddrPortFrom(a, uint16(port)).String())
			if err != nil {
				ok = false
				break
			}
			ls = append(ls, l)
		}
		for _, l := range ls {
			l.Close()
		}
		if ok {
			return port
		}
	}
	t.Fatalf("no port free on all of %v", addrs)
	return 0
}

// start starts a speaker on addr:port (router id addr, next hop addr) and
// stops it when the test ends.
func start(t *testing.T, addr netip.Addr, port int, gr bool) *Speaker {
	t.Helper()
	s, err := Start(t.Context(), Config{
		RouterID:        addr,
		AS:              testAS,
		ListenAddr:      []netip.Addr{addr},
		ListenPort:      port,
		NextHop4:        addr,
		GracefulRestart: gr,
		Log:             testLog(t).With("node", addr),
	})
	if err != nil {
		t.Fatalf("starting speaker on %s: %v", addr, err)
	}
	t.Cleanup(s.Stop)
	return s
}

// meshPeer is the mesh session from local to remote.
func meshPeer(local, remote netip.Addr, port int) Peer {
	return Peer{Addr: remote, AS: testAS, Port: port, Type: "mesh", Name: "node-" + remote.String(), LocalAddr: local}
}

func setPeers(t *testing.T, s *Speaker, peers ...Peer) {
	t.Helper()
	if err := s.SetPeers(t.Context(), peers); err != nil {
		t.Fatalf("SetPeers(%v): %v", peers, err)
	}
}

func advertise(t *testing.T, s *Speaker, prefixes ...string) {
	t.Helper()
	var ps []netip.Prefix
	for _, p := range prefixes {
		ps = append(ps, netip.MustParsePrefix(p))
	}
	if err := s.SetAdvertised(t.Context(), ps); err != nil {
		t.Fatalf("SetAdvertised(%v): %v", ps, err)
	}
}

// route builds a Route from strings.
func route(dst string, hops ...string) Route {
	r := Route{Dst: netip.MustParsePrefix(dst)}
	for _, h := range hops {
		r.NextHops = append(r.NextHops, netip.MustParseAddr(h))
	}
	return r
}

// eventually polls cond until it holds or waitTimeout passes; cond
// returns what it saw, for the failure message.
func eventually(t *testing.T, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for {
		ok, saw := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not so after %v; last saw %s", what, waitTimeout, saw)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// waitLearned waits until s has learned exactly want.
func waitLearned(t *testing.T, s *Speaker, want ...Route) {
	t.Helper()
	if want == nil {
		want = []Route{}
	}
	eventually(t, fmt.Sprintf("learned routes = %v", want), func() (bool, string) {
		got := s.Learned()
		return reflect.DeepEqual(got, want), fmt.Sprint(got)
	})
}

// waitState waits until s's session to peer is (or, with not, is not) in
// state.
func waitState(t *testing.T, s *Speaker, peer netip.Addr, state string, not bool) PeerStatus {
	t.Helper()
	var found PeerStatus
	what := fmt.Sprintf("session to %s is %s", peer, state)
	if not {
		what = fmt.Sprintf("session to %s is not %s", peer, state)
	}
	eventually(t, what, func() (bool, string) {
		st, err := s.Peers(t.Context())
		if err != nil {
			return false, err.Error()
		}
		for _, p := range st {
			if p.Addr == peer {
				found = p
				return (p.State == state) != not, p.State
			}
		}
		return false, fmt.Sprintf("no such peer in %v", st)
	})
	return found
}

// waitChange waits for s's Changes to fire.
func waitChange(t *testing.T, s *Speaker) {
	t.Helper()
	select {
	case <-s.Changes():
	case <-time.After(waitTimeout):
		t.Fatal("Changes did not fire")
	}
}

func drain(s *Speaker) {
	select {
	case <-s.Changes():
	default:
	}
}

// TestMesh: two iBGP mesh peers; B learns A's prefix with A as next hop,
// loses it when A withdraws it, and when A stops (without graceful
// restart, GoBGP's Cease makes B drop it at once).
func TestMesh(t *testing.T) {
	port := freePort(t, addrA, addrB)
	a, b := start(t, addrA, port, false), start(t, addrB, port, false)
	advertise(t, a, "10.65.1.0/26")
	advertise(t, a, "10.65.1.0/26") // idempotent
	setPeers(t, a, meshPeer(addrA, addrB, port))
	setPeers(t, b, meshPeer(addrB, addrA, port))

	waitLearned(t, b, route("10.65.1.0/26", "127.0.0.1"))
	if got := a.Learned(); len(got) != 0 {
		t.Errorf("A learned %v from B, which advertises nothing", got)
	}

	drain(b)
	advertise(t, a)
	waitChange(t, b)
	waitLearned(t, b)

	advertise(t, a, "10.65.1.0/26", "10.65.1.64/26")
	waitLearned(t, b, route("10.65.1.0/26", "127.0.0.1"), route("10.65.1.64/26", "127.0.0.1"))
	advertise(t, a, "10.65.1.64/26")
	waitLearned(t, b, route("10.65.1.64/26", "127.0.0.1"))

	drain(b)
	a.Stop()
	waitChange(t, b)
	waitLearned(t, b)
	waitState(t, b, addrA, "established", true)
}

// TestIPv6 carries IPv6 unicast over an IPv6 session. Without root there
// is only one IPv6 loopback address, ::1, so both speakers use it, on
// different ports, and the advertised next hop is a made-up address (a
// next hop that is one of the receiver's own addresses is not learned).
// TestPrivilegedPasswordAndIPv6 does it with real addresses.
func TestIPv6(t *testing.T) {
	lo6 := netip.IPv6Loopback()
	if l, err := net.Listen("tcp", "[::1]:0"); err != nil {
		t.Skipf("no IPv6 loopback: %v", err)
	} else {
		l.Close()
	}
	pa, pb := freePort(t, lo6), freePort(t, lo6)
	for pb == pa {
		pb = freePort(t, lo6)
	}
	startV6 := func(id netip.Addr, port int, hop string) *Speaker {
		s, err := Start(t.Context(), Config{
			RouterID: id, AS: testAS, ListenAddr: []netip.Addr{lo6}, ListenPort: port,
			NextHop6: netip.MustParseAddr(hop), Log: testLog(t).With("node", id),
		})
		if err != nil {
			t.Fatalf("starting speaker %s: %v", id, err)
		}
		t.Cleanup(s.Stop)
		return s
	}
	a := startV6(addrA, pa, "fd00::a")
	b := startV6(addrB, pb, "fd00::b")
	advertise(t, a, "fd00:65::/122", "10.65.1.0/26") // the IPv4 prefix has no IPv4 session to go on
	setPeers(t, a, Peer{Addr: lo6, AS: testAS, Port: pb, LocalAddr: lo6})
	setPeers(t, b, Peer{Addr: lo6, AS: testAS, Port: pa, LocalAddr: lo6})
	waitLearned(t, b, route("fd00:65::/122", "fd00::a"))

	advertise(t, b, "fd00:65::40/122")
	waitLearned(t, a, route("fd00:65::40/122", "fd00::b"))
	advertise(t, a, "10.65.1.0/26")
	waitLearned(t, b)
}

// TestECMP: C learns the same prefix from A and B and keeps both next
// hops; each of A and B prefers its own path.
func TestECMP(t *testing.T) {
	port := freePort(t, addrA, addrB, addrC)
	a, b, c := start(t, addrA, port, false), start(t, addrB, port, false), start(t, addrC, port, false)
	setPeers(t, a, meshPeer(addrA, addrB, port), meshPeer(addrA, addrC, port))
	setPeers(t, b, meshPeer(addrB, addrA, port), meshPeer(addrB, addrC, port))
	setPeers(t, c, meshPeer(addrC, addrA, port), meshPeer(addrC, addrB, port))
	advertise(t, a, "10.65.2.0/26", "10.65.3.0/26")
	advertise(t, b, "10.65.2.0/26")

	waitLearned(t, c, route("10.65.2.0/26", "127.0.0.1", "127.0.0.2"), route("10.65.3.0/26", "127.0.0.1"))
	waitLearned(t, b, route("10.65.3.0/26", "127.0.0.1"))
	waitLearned(t, a)

	advertise(t, a, "10.65.3.0/26")
	waitLearned(t, c, route("10.65.2.0/26", "127.0.0.2"), route("10.65.3.0/26", "127.0.0.1"))
	waitLearned(t, a, route("10.65.2.0/26", "127.0.0.2"))
	advertise(t, a, "10.65.2.0/26", "10.65.3.0/26")
	waitLearned(t, c, route("10.65.2.0/26", "127.0.0.1", "127.0.0.2"), route("10.65.3.0/26", "127.0.0.1"))
}

// TestRouteReflector: R reflects between its clients A and B, which do
// not peer with each other; the next hop stays the originator's.
func TestRouteReflector(t *testing.T) {
	port := freePort(t, addrA, addrB, addrC)
	a, b, r := start(t, addrA, port, false), start(t, addrB, port, false), start(t, addrC, port, false)
	toR := func(local netip.Addr) Peer {
		return Peer{Addr: addrC, AS: testAS, Port: port, Type: "reflector", Name: "r", LocalAddr: local}
	}
	client := func(remote netip.Addr) Peer {
		return Peer{Addr: remote, AS: testAS, Port: port, Type: "reflector", Name: "client-" + remote.String(),
			ReflectorClient: true, ClusterID: netip.MustParseAddr("10.0.0.1"), LocalAddr: addrC}
	}
	setPeers(t, a, toR(addrA))
	setPeers(t, b, toR(addrB))
	setPeers(t, r, client(addrA), client(addrB))
	advertise(t, a, "10.65.4.0/26")
	advertise(t, b, "10.65.5.0/26")

	waitLearned(t, b, route("10.65.4.0/26", "127.0.0.1"))
	waitLearned(t, a, route("10.65.5.0/26", "127.0.0.2"))
	waitLearned(t, r, route("10.65.4.0/26", "127.0.0.1"), route("10.65.5.0/26", "127.0.0.2"))

	advertise(t, a)
	waitLearned(t, b)
	waitLearned(t, r, route("10.65.5.0/26", "127.0.0.2"))
}

// TestSetPeers: reconciliation is idempotent, takes Type/Name changes
// without touching the session, removes sessions, and Peers reports
// counts. Graceful restart is on so that the End-of-RIB marker GoBGP
// sends is seen not to be counted.
func TestSetPeers(t *testing.T) {
	port := freePort(t, addrA, addrB, addrC)
	a, b, c := start(t, addrA, port, true), start(t, addrB, port, true), start(t, addrC, port, true)
	advertise(t, a, "10.65.6.0/26")
	advertise(t, b, "10.65.7.0/26", "10.65.7.64/26")
	toB, toC := meshPeer(addrA, addrB, port), meshPeer(addrA, addrC, port)
	toC.Type, toC.Name = "node", "c"
	setPeers(t, a, toB, toC)
	setPeers(t, b, meshPeer(addrB, addrA, port))
	setPeers(t, c, meshPeer(addrC, addrA, port))

	waitLearned(t, c, route("10.65.6.0/26", "127.0.0.1"))
	waitLearned(t, a, route("10.65.7.0/26", "127.0.0.2"), route("10.65.7.64/26", "127.0.0.2"))
	waitState(t, a, addrB, "established", false)
	waitState(t, a, addrC, "established", false)

	// A sends C its own prefix only: what it learned from B over iBGP
	// goes to no other iBGP peer.
	for _, to := range []netip.Addr{addrB, addrC} {
		eventually(t, "the routes A advertises to "+to.String(), func() (bool, string) {
			n, err := a.Advertised(t.Context(), to)
			return err == nil && n == 1, fmt.Sprint(n, err)
		})
	}
	want := []PeerStatus{
		{Peer: toB, State: "established", Received: 2},
		{Peer: toC, State: "established", Received: 0},
	}
	var before []PeerStatus
	eventually(t, "A's peer status", func() (bool, string) {
		st, err := a.Peers(t.Context())
		if err != nil {
			return false, err.Error()
		}
		before = st
		return statusMatches(st, want), fmt.Sprintf("%+v", st)
	})
	for _, st := range before {
		if st.Since.IsZero() || time.Since(st.Since) > time.Hour {
			t.Errorf("peer %s established since %v", st.Addr, st.Since)
		}
	}

	// The same again, and a new name: no session is touched.
	setPeers(t, a, toB, toC)
	toB.Name = "b-renamed"
	setPeers(t, a, toB, toC)
	after, err := a.Peers(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	want[0].Peer = toB
	if !statusMatches(after, want) {
		t.Errorf("after SetPeers again: %+v, want %+v", after, want)
	}
	for i := range after {
		if i < len(before) && !after[i].Since.Equal(before[i].Since) {
			t.Errorf("session to %s restarted: since %v, before %v", after[i].Addr, after[i].Since, before[i].Since)
		}
	}

	// A second, different entry for B is an error; the first one stays.
	other := toB
	other.AS = 65000
	if err := a.SetPeers(t.Context(), []Peer{toB, toC, other, {}}); err == nil {
		t.Error("SetPeers with a conflicting duplicate and an empty peer: no error")
	}
	waitState(t, a, addrB, "established", false)

	// Removing C ends its session; C loses A's route.
	setPeers(t, a, toB)
	st, err := a.Peers(t.Context())
	if err != nil || len(st) != 1 || st[0].Addr != addrB {
		t.Errorf("A's peers after removing C: %+v, %v", st, err)
	}
	waitLearned(t, c)
	waitState(t, c, addrA, "established", true)

	// A changed session (another port) is re-created: B's session to
	// it goes down, since nothing listens there.
	moved := toB
	moved.Port = freePort(t, addrB)
	setPeers(t, a, moved)
	waitState(t, b, addrA, "established", true)
	setPeers(t, a)
	if st, err := a.Peers(t.Context()); err != nil || len(st) != 0 {
		t.Errorf("A's peers after removing all: %+v, %v", st, err)
	}
}

// statusMatches compares status ignoring Since.
func statusMatches(got, want []PeerStatus) bool {
	if len(got) != len(want) {
		return false
	}
	for i := range got {
		g := got[i]
		g.Since = time.Time{}
		if g != want[i] {
			return false
		}
	}
	return true
}

// TestGracefulRestart: with graceful restart, Stop ends the sessions
// without a notification, so B keeps A's route (stale) while A is away;
// when A comes back and sends End-of-RIB without it, B drops it.
func TestGracefulRestart(t *testing.T) {
	port := freePort(t, addrA, addrB)
	a, b := start(t, addrA, port, true), start(t, addrB, port, true)
	advertise(t, a, "10.65.8.0/26")
	setPeers(t, a, meshPeer(addrA, addrB, port))
	setPeers(t, b, meshPeer(addrB, addrA, port))
	waitLearned(t, b, route("10.65.8.0/26", "127.0.0.1"))
	// A session older than reviveFresh, which the reviver looks at when
	// it goes down: it must leave alone one that holds stale routes.
	time.Sleep(reviveFresh)

	a.Stop()
	waitState(t, b, addrA, "established", true)
	// GoBGP marks the path stale rather than drop it.
	eventually(t, "B holds A's path as stale", func() (bool, string) {
		dsts, err := b.listPaths(t.Context(), family(addrA), nil)
		if err != nil {
			return false, err.Error()
		}
		for _, d := range dsts {
			for _, p := range d.Paths {
				if pfx, _ := pathPrefix(p); pfx.String() == "10.65.8.0/26" {
					return p.Stale, fmt.Sprintf("path stale=%v", p.Stale)
				}
			}
		}
		return false, "no path"
	})
	// Read the RIB again now (and after the reviver's look), as the
	// learner does after a session goes down: the route stays.
	time.Sleep(4 * reviveAfter)
	if _, err := b.readAll(t.Context()); err != nil {
		t.Fatal(err)
	}
	if got, want := b.Learned(), []Route{route("10.65.8.0/26", "127.0.0.1")}; !reflect.DeepEqual(got, want) {
		t.Fatalf("B's learned routes while A restarts = %v, want %v", got, want)
	}

	// A comes back advertising something else; its End-of-RIB ends the
	// restart and the stale route goes.
	a2 := start(t, addrA, port, true)
	advertise(t, a2, "10.65.9.0/26")
	setPeers(t, a2, meshPeer(addrA, addrB, port))
	waitLearned(t, b, route("10.65.9.0/26", "127.0.0.1"))
}

// TestNextHops is the ECMP choice on made-up destinations.
func TestNextHops(t *testing.T) {
	s := &Speaker{own: map[netip.Addr]bool{netip.MustParseAddr("10.0.0.9"): true}}
	type pa struct {
		from, hop string // from "" is our own path
		lp, med   uint32
		asPath    []uint32
	}
	mk := func(p pa) *api.Path {
		nlri, _ := anypb.New(&api.IPAddressPrefix{Prefix: "10.65.0.0", PrefixLen: 26})
		var attrs []*anypb.Any
		for _, m := range []proto.Message{
			&api.OriginAttribute{},
			&api.NextHopAttribute{NextHop: p.hop},
			&api.LocalPrefAttribute{LocalPref: p.lp},
			&api.MultiExitDiscAttribute{Med: p.med},
			&api.AsPathAttribute{Segments: []*api.AsSegment{{Type: 2, Numbers: p.asPath}}},
		} {
			a, _ := anypb.New(m)
			attrs = append(attrs, a)
		}
		from := p.from
		if from == "" {
			from = "<nil>"
		}
		return &api.Path{Nlri: nlri, Pattrs: attrs, NeighborIp: from}
	}
	for _, tc := range []struct {
		name  string
		paths []pa
		want  []string
	}{
		{"one", []pa{{from: "10.0.0.1", hop: "10.0.0.1", lp: 100}}, []string{"10.0.0.1"}},
		{"equal", []pa{{from: "10.0.0.2", hop: "10.0.0.2", lp: 100}, {from: "10.0.0.1", hop: "10.0.0.1", lp: 100}}, []string{"10.0.0.1", "10.0.0.2"}},
		{"same next hop twice", []pa{{from: "10.0.0.1", hop: "10.0.0.5", lp: 100}, {from: "10.0.0.2", hop: "10.0.0.5", lp: 100}}, []string{"10.0.0.5"}},
		{"lower local pref", []pa{{from: "10.0.0.1", hop: "10.0.0.1", lp: 200}, {from: "10.0.0.2", hop: "10.0.0.2", lp: 100}}, []string{"10.0.0.1"}},
		{"longer AS path", []pa{{from: "10.0.0.1", hop: "10.0.0.1", lp: 100}, {from: "10.0.0.2", hop: "10.0.0.2", lp: 100, asPath: []uint32{65000}}}, []string{"10.0.0.1"}},
		{"higher MED", []pa{{from: "10.0.0.1", hop: "10.0.0.1", lp: 100}, {from: "10.0.0.2", hop: "10.0.0.2", lp: 100, med: 5}}, []string{"10.0.0.1"}},
		{"own path best", []pa{{hop: "10.0.0.9", lp: 100}, {from: "10.0.0.1", hop: "10.0.0.1", lp: 100}}, nil},
		{"own next hop", []pa{{from: "10.0.0.1", hop: "10.0.0.9", lp: 100}, {from: "10.0.0.2", hop: "10.0.0.2", lp: 100}}, []string{"10.0.0.2"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := &api.Destination{}
			for _, p := range tc.paths {
				d.Paths = append(d.Paths, mk(p))
			}
			dst, hops := s.nextHops(d)
			var want []netip.Addr
			for _, h := range tc.want {
				want = append(want, netip.MustParseAddr(h))
			}
			if dst != netip.MustParsePrefix("10.65.0.0/26") || !slices.Equal(hops, want) {
				t.Errorf("nextHops = %v %v, want 10.65.0.0/26 %v", dst, hops, want)
			}
		})
	}
}

// TestStartErrors: bad configuration is refused, and a port in use is an
// error rather than a speaker that cannot be reached.
func TestStartErrors(t *testing.T) {
	ctx := t.Context()
	if _, err := Start(ctx, Config{AS: testAS, ListenPort: -1}); err == nil {
		t.Error("Start without a router id: no error")
	}
	if _, err := Start(ctx, Config{RouterID: addrA, ListenPort: -1}); err == nil {
		t.Error("Start without an AS: no error")
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	port := l.Addr().(*net.TCPAddr).Port
	if s, err := Start(ctx, Config{RouterID: addrA, AS: testAS, ListenAddr: []netip.Addr{addrA}, ListenPort: port, Log: slog.New(slog.NewTextHandler(io.Discard, nil))}); err == nil {
		s.Stop()
		t.Error("Start on a port in use: no error")
	}
}

// TestRecordFollowsGoBGP: SetAdvertised and SetPeers work from what
// their last calls left instead of reading GoBGP back each time. Calls
// given up on (their context ended: GoBGP may still make the change,
// later) are mixed in at random; once those have ended, every call that
// succeeds leaves GoBGP's own paths and neighbours exactly what it was
// asked for.
func TestRecordFollowsGoBGP(t *testing.T) {
	s := start(t, addrA, -1, false)
	port := freePort(t, addrA)
	var prefixes []netip.Prefix
	var peers []Peer
	for i := range 8 {
		prefixes = append(prefixes, netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 65, byte(i), 0}), 26))
		// Nothing listens there: the sessions stay down, which is all
		// this test needs.
		peers = append(peers, meshPeer(addrA, netip.AddrFrom4([4]byte{127, 0, 1, byte(i + 1)}), port))
	}
	rng := rand.New(rand.NewPCG(1, 2))
	pick := func(n int) []int {
		var out []int
		for i := range n {
			if rng.IntN(2) == 0 {
				out = append(out, i)
			}
		}
		return out
	}
	cancelled, cancel := context.WithCancel(t.Context())
	cancel()
	choose := func() ([]netip.Prefix, []Peer) {
		var ps []netip.Prefix
		for _, i := range pick(len(prefixes)) {
			ps = append(ps, prefixes[i])
		}
		var pe []Peer
		for _, i := range pick(len(peers)) {
			pe = append(pe, peers[i])
		}
		return ps, pe
	}
	for step := range 60 {
		ps, pe := choose()
		if step%3 == 1 {
			// Given up on: the change may be made or not, now or
			// after the calls that follow at once.
			s.SetAdvertised(cancelled, ps)
			s.SetPeers(cancelled, pe)
			ps, pe = choose()
			s.SetAdvertised(t.Context(), ps)
			s.SetPeers(t.Context(), pe)
			eventually(t, "the changes given up on to end", func() (bool, string) {
				n := s.abandoned.Load()
				return n == 0, fmt.Sprint(n, " not ended")
			})
			continue
		}
		if err := s.SetAdvertised(t.Context(), ps); err != nil {
			t.Fatalf("step %d: SetAdvertised: %v", step, err)
		}
		if err := s.SetPeers(t.Context(), pe); err != nil {
			t.Fatalf("step %d: SetPeers: %v", step, err)
		}
		have, err := s.localPaths(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if want := setOf(ps); !maps.Equal(have, want) {
			t.Fatalf("step %d: GoBGP advertises %v, want %v", step, slices.Collect(maps.Keys(have)), ps)
		}
		nbrs, err := s.readNeighbors(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		var wantN []netip.Addr
		for _, p := range pe {
			wantN = append(wantN, p.Addr)
		}
		if !maps.Equal(nbrs, setOf(wantN)) {
			t.Fatalf("step %d: GoBGP's neighbours %v, want %v", step, slices.Collect(maps.Keys(nbrs)), wantN)
		}
	}
}

func setOf[T comparable](xs []T) map[T]bool {
	m := map[T]bool{}
	for _, x := range xs {
		m[x] = true
	}
	return m
}
