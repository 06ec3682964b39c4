package bgp

import (
	"fmt"
	"net/netip"
	"testing"
	"time"

	api "github.com/osrg/gobgp/v3/api"
)

// TestSiblingReflectors: three reflectors that reflect for the same two
// clients and peer with each other (as the automatic reflectors do) each
// reflect every client's route, so a client has one copy from each; when
// one reflector stops (with a Cease: its copies go at once), the client
// never misses the route. Without the reflectors marked (Peer.Reflector),
// GoBGP's best path at a reflector may be another reflector's copy, and
// fewer copies, at times none, reach the clients; but whether they do
// depends on the order the routes arrive in (CI saw none, and once all
// three), so that case is not a test.
func TestSiblingReflectors(t *testing.T) {
	addrD, addrE := netip.MustParseAddr("127.0.0.4"), netip.MustParseAddr("127.0.0.5")
	reflectors, clients := []netip.Addr{addrA, addrB, addrC}, []netip.Addr{addrD, addrE}
	port := freePort(t, addrA, addrB, addrC, addrD, addrE)
	sp := map[netip.Addr]*Speaker{}
	for _, a := range append(reflectors, clients...) {
		sp[a] = start(t, a, port, false)
	}
	peer := func(local, remote netip.Addr) Peer {
		p := Peer{Addr: remote, AS: testAS, Port: port, Type: "mesh", Name: "n-" + remote.String(), LocalAddr: local}
		for _, r := range reflectors {
			if r == local {
				p.ReflectorClient, p.ClusterID = true, netip.MustParseAddr("244.0.0.1")
			}
			if r == remote {
				p.Reflector = true
			}
		}
		return p
	}
	for _, l := range reflectors {
		var ps []Peer
		for _, r := range append(reflectors, clients...) {
			if r != l {
				ps = append(ps, peer(l, r))
			}
		}
		setPeers(t, sp[l], ps...)
	}
	for _, c := range clients {
		setPeers(t, sp[c], peer(c, addrA), peer(c, addrB), peer(c, addrC))
	}
	advertise(t, sp[addrE], "10.65.5.0/26")
	advertise(t, sp[addrA], "10.65.1.0/26")

	copies := func() int {
		n := 0
		err := sp[addrD].srv.ListPath(t.Context(), &api.ListPathRequest{
			TableType: api.TableType_GLOBAL, Family: family(addrD),
			Prefixes: []*api.TableLookupPrefix{{Prefix: "10.65.5.0/26"}},
		}, func(d *api.Destination) { n += len(d.Paths) })
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	waitLearned(t, sp[addrD], route("10.65.1.0/26", "127.0.0.1"), route("10.65.5.0/26", "127.0.0.5"))
	eventually(t, "the client has a copy of E's route from each reflector", func() (bool, string) {
		n := copies()
		return n == 3, fmt.Sprint(n)
	})
	// A reflector stops (without graceful restart: a Cease); the client
	// keeps the route all along.
	stopped := make(chan struct{})
	go func() { sp[addrA].Stop(); close(stopped) }()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if !hasRoute(sp[addrD].Learned(), "10.65.5.0/26") {
			t.Fatal("the client lost E's route when a reflector stopped")
		}
		time.Sleep(5 * time.Millisecond)
	}
	<-stopped
	waitLearned(t, sp[addrD], route("10.65.5.0/26", "127.0.0.5"))
}

func hasRoute(rs []Route, dst string) bool {
	for _, r := range rs {
		if r.Dst.String() == dst {
			return true
		}
	}
	return false
}

// TestReflectorSetEmptied: reflector B reflects between A and C; while A
// is marked Reflector, B sends A no reflected route. When the mark goes
// (A no longer a reflector: B's set of them is empty), B still reflects
// both ways: a route A advertises then reaches C, and one C advertises
// then reaches A. (GoBGP's neighbour condition matches every peer when
// its set is empty: B reflected nothing at all then.)
func TestReflectorSetEmptied(t *testing.T) {
	addrA, addrB, addrC := netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("127.0.0.2"), netip.MustParseAddr("127.0.0.3")
	port := freePort(t, addrA, addrB, addrC)
	a, b, c := start(t, addrA, port, false), start(t, addrB, port, false), start(t, addrC, port, false)
	fromB := func(remote netip.Addr, reflector bool) Peer { return autoReflectorPeer(addrB, remote, port, reflector) }
	setPeers(t, a, meshPeer(addrA, addrB, port))
	setPeers(t, c, meshPeer(addrC, addrB, port))
	setPeers(t, b, fromB(addrA, true), fromB(addrC, false))
	advertise(t, a, "10.65.1.0/26")
	advertise(t, c, "10.65.3.0/26")
	waitLearned(t, c, route("10.65.1.0/26", "127.0.0.1"))
	waitLearned(t, b, route("10.65.1.0/26", "127.0.0.1"), route("10.65.3.0/26", "127.0.0.3"))
	if got := a.Learned(); len(got) != 0 {
		t.Fatalf("B sent A, a peer marked Reflector, reflected routes: %v", got)
	}

	setPeers(t, b, fromB(addrA, false), fromB(addrC, false))
	advertise(t, a, "10.65.1.0/26", "10.65.11.0/26")
	advertise(t, c, "10.65.3.0/26", "10.65.13.0/26")
	waitLearned(t, c, route("10.65.1.0/26", "127.0.0.1"), route("10.65.11.0/26", "127.0.0.1"))
	waitLearned(t, a, route("10.65.3.0/26", "127.0.0.3"), route("10.65.13.0/26", "127.0.0.3"))
}

// TestReflectorMarkedLater: reflector B reflects C's route to A while A
// is a client only (B does not know yet that A reflects too, as when A's
// promotion to voter reaches B late). Then B marks A Reflector: a soft
// reset out, which sends A nothing for the routes it now filters. When
// C withdraws its route and D still has the same prefix, B's best path
// changes to D's, which it does not send A either: A must still lose
// C's copy.
func TestReflectorMarkedLater(t *testing.T) {
	addrA, addrB, addrC, addrD := netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("127.0.0.2"), netip.MustParseAddr("127.0.0.3"), netip.MustParseAddr("127.0.0.4")
	port := freePort(t, addrA, addrB, addrC, addrD)
	a, b, c, d := start(t, addrA, port, false), start(t, addrB, port, false), start(t, addrC, port, false), start(t, addrD, port, false)
	fromB := func(remote netip.Addr, reflector bool) Peer { return autoReflectorPeer(addrB, remote, port, reflector) }
	setPeers(t, a, meshPeer(addrA, addrB, port))
	setPeers(t, c, meshPeer(addrC, addrB, port))
	setPeers(t, d, meshPeer(addrD, addrB, port))
	setPeers(t, b, fromB(addrA, false), fromB(addrC, false), fromB(addrD, false))
	advertise(t, a, "10.65.1.0/26")
	advertise(t, c, "10.65.3.0/26", "10.65.99.0/26")
	waitLearned(t, a, route("10.65.3.0/26", "127.0.0.3"), route("10.65.99.0/26", "127.0.0.3"))
	advertise(t, d, "10.65.99.0/26")
	waitLearned(t, b, route("10.65.1.0/26", "127.0.0.1"), route("10.65.3.0/26", "127.0.0.3"), route("10.65.99.0/26", "127.0.0.3", "127.0.0.4"))

	setPeers(t, b, fromB(addrA, true), fromB(addrC, false), fromB(addrD, false))
	waitState(t, b, addrA, "established", false)
	advertise(t, c)
	waitLearned(t, b, route("10.65.1.0/26", "127.0.0.1"), route("10.65.99.0/26", "127.0.0.4"))
	waitLearned(t, a)
}

// autoReflectorPeer is the session an automatic reflector at local has
// to remote: a client session, marked Reflector when remote reflects too.
func autoReflectorPeer(local, remote netip.Addr, port int, reflector bool) Peer {
	p := meshPeer(local, remote, port)
	p.ReflectorClient, p.ClusterID, p.Reflector = true, netip.MustParseAddr("244.0.0.1"), reflector
	return p
}
