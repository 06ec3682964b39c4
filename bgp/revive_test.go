package bgp

import (
	"calico/internal/testutil"
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
	"testing"
	"time"
)

// TestReviveAfterPeerRemade: B makes its side of the session to A again
// (its settings changed), closing it with a notification; A makes its
// side again at once rather than sit out GoBGP's 5 s Idle, so the session
// and B's route are back well within those 5 s.
func TestReviveAfterPeerRemade(t *testing.T) {
	addrA, addrB := netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("127.0.0.2")
	port := freePort(t, addrA, addrB)
	logA := &testutil.SyncBuffer{}
	a, err := Start(t.Context(), Config{RouterID: addrA, AS: testAS, ListenAddr: []netip.Addr{addrA}, ListenPort: port, NextHop4: addrA,
		Log: slog.New(slog.NewTextHandler(logA, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(a.Stop)
	b := start(t, addrB, port, false)
	setPeers(t, a, meshPeer(addrA, addrB, port))
	setPeers(t, b, meshPeer(addrB, addrA, port))
	advertise(t, b, "10.65.2.0/26")
	waitLearned(t, a, route("10.65.2.0/26", "127.0.0.2"))
	before := waitState(t, a, addrB, "established", false).Since

	remade := meshPeer(addrB, addrA, port)
	remade.ReflectorClient, remade.ClusterID = true, netip.MustParseAddr("244.0.0.1")
	start := time.Now()
	setPeers(t, b, remade)
	eventually(t, "A's session to B established anew", func() (bool, string) {
		st, err := a.Peers(t.Context())
		if err != nil || len(st) != 1 {
			return false, fmt.Sprint(st, err)
		}
		return st[0].State == "established" && st[0].Since.After(before), fmt.Sprintf("%s since %s", st[0].State, st[0].Since)
	})
	waitLearned(t, a, route("10.65.2.0/26", "127.0.0.2"))
	took := time.Since(start)
	t.Logf("back %s after B made its side again", took)
	if took > 4500*time.Millisecond {
		t.Errorf("the session and B's route were back %s after B made its side again; GoBGP's Idle alone is 5 s, which the revival should not wait out", took)
	}
	if !strings.Contains(logA.String(), "BGP session made again at once") {
		t.Errorf("A did not make its side again:\n%s", logA.String())
	}
}
