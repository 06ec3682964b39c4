package agent

import (
	"log/slog"
	"net/netip"
	"testing"

	"calico/nft"
)

// TestForgetMoved: the connections of an address are forgotten when it
// leaves its workload's interface (removed, or now another's), not while
// it stays.
func TestForgetMoved(t *testing.T) {
	var forgot [][]netip.Addr
	a := &Agent{cfg: Config{Forget: func(as []netip.Addr) error { forgot = append(forgot, as); return nil }}, log: slog.New(slog.DiscardHandler)}
	x, y := netip.MustParseAddr("10.65.0.1"), netip.MustParseAddr("10.65.0.2")
	a.forgetMoved([]nft.Endpoint{{Iface: "cali1", Addrs: []netip.Addr{x}}, {Iface: "cali2", Addrs: []netip.Addr{y}}})
	a.forgetMoved([]nft.Endpoint{{Iface: "cali1", Addrs: []netip.Addr{x}}, {Iface: "cali2", Addrs: []netip.Addr{y}}})
	if len(forgot) != 0 {
		t.Fatalf("forgot %v while nothing moved", forgot)
	}
	a.forgetMoved([]nft.Endpoint{{Iface: "cali3", Addrs: []netip.Addr{x}}}) // x moved to cali3, y gone
	if len(forgot) != 1 || len(forgot[0]) != 2 {
		t.Errorf("forgot %v; want both addresses", forgot)
	}
}
