package sim

import (
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"calico/bgp"
)

// TestSpeaker: a simulated host's speaker peers with the node's own (a
// GoBGP speaker in this process, as a node configures it for a mesh peer
// with a lower address: it only listens), which learns the host's
// prefixes with the host as next hop and loses them when the host
// withdraws them or dies; the host counts the updates it is sent.
func TestSpeaker(t *testing.T) {
	nodeAddr, hostAddr := netip.MustParseAddr("127.0.0.20"), netip.MustParseAddr("127.0.0.10")
	l, err := net.Listen("tcp", netip.AddrPortFrom(nodeAddr, 0).String())
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	node, err := bgp.Start(t.Context(), bgp.Config{RouterID: nodeAddr, AS: 64512, ListenAddr: []netip.Addr{nodeAddr}, ListenPort: port, NextHop4: nodeAddr})
	if err != nil {
		t.Fatal(err)
	}
	defer node.Stop()
	if err := node.SetAdvertised(t.Context(), []netip.Prefix{netip.MustParsePrefix("10.65.9.0/26")}); err != nil {
		t.Fatal(err)
	}
	err = node.SetPeers(t.Context(), []bgp.Peer{{Addr: hostAddr, AS: 64512, Port: port, Type: "mesh", Name: "sim-1", LocalAddr: nodeAddr}})
	if err != nil {
		t.Fatal(err)
	}
	sp := NewSpeaker(hostAddr, 64512, port, slog.New(slog.DiscardHandler))
	sp.SetAdvertised([]netip.Prefix{netip.MustParsePrefix("10.65.1.0/26"), netip.MustParsePrefix("10.65.7.7/32")})
	sp.SetPeers([]netip.Addr{nodeAddr})

	learned := func(want string) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for {
			var got []string
			for _, r := range node.Learned() {
				got = append(got, r.Dst.String()+" via "+r.NextHops[0].String())
			}
			slices.Sort(got)
			if strings.Join(got, ", ") == want {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("the node learned %q; want %q", strings.Join(got, ", "), want)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	learned("10.65.1.0/26 via 127.0.0.10, 10.65.7.7/32 via 127.0.0.10")
	if up, all := sp.Established(); up != 1 || all != 1 {
		t.Errorf("established %d of %d sessions", up, all)
	}
	for deadline := time.Now().Add(10 * time.Second); sp.Received() == 0; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the host was sent no update")
		}
	}
	sp.SetAdvertised([]netip.Prefix{netip.MustParsePrefix("10.65.1.0/26")})
	learned("10.65.1.0/26 via 127.0.0.10")
	sp.Stop(false)
	learned("")
}
