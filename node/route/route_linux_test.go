//go:build linux

package route

import (
	"log/slog"
	"net"
	"testing"

	"calico/internal/testutil"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// newKernelTable opens a Table in a fresh namespace with the interfaces
// and next hops the states need.
func newKernelTable(t *testing.T) (*Table, *testutil.NetNS) {
	ns := testutil.NewNetNS(t)
	var tbl *Table
	err := ns.Do(func() error {
		h, err := netlink.NewHandle()
		if err != nil {
			return err
		}
		defer h.Close()
		for _, name := range []string{"cali1", "cali2", "uplink"} {
			if err := h.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: name}, PeerName: name + "p"}); err != nil {
				return err
			}
			l, _ := h.LinkByName(name)
			h.LinkSetUp(l)
			pl, _ := h.LinkByName(name + "p")
			h.LinkSetUp(pl)
		}
		up, _ := h.LinkByName("uplink")
		h.AddrAdd(up, &netlink.Addr{IPNet: &net.IPNet{IP: net.ParseIP("10.99.0.1"), Mask: net.CIDRMask(24, 32)}})
		tbl, err = New(slog.New(slog.NewTextHandler(t.Output(), nil)))
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(tbl.Close)
	return tbl, ns
}

func TestPrivilegedStates(t *testing.T) {
	testutil.Privileged(t)
	tbl, _ := newKernelTable(t)
	testStates(t, tbl, func() string {
		d, err := tbl.Dump()
		if err != nil {
			t.Fatal(err)
		}
		return d
	})
}

func TestPrivilegedDriftAndOwnership(t *testing.T) {
	testutil.Privileged(t)
	tbl, _ := newKernelTable(t)
	want := states[2].want
	if err := tbl.Apply(want); err != nil {
		t.Fatal(err)
	}
	// Someone else's route, and one of ours deleted by hand.
	foreign := &netlink.Route{Dst: ipNet(p("10.200.0.0/24")), Gw: net.ParseIP("10.99.0.9"), Protocol: unix.RTPROT_BOOT}
	if err := tbl.h.RouteAdd(foreign); err != nil {
		t.Fatal(err)
	}
	if err := tbl.h.RouteDel(&netlink.Route{Dst: ipNet(p("10.65.0.2/32")), Protocol: Protocol, Scope: netlink.SCOPE_NOWHERE}); err != nil {
		t.Fatal(err)
	}
	// Once ReadBack has passed, Apply reads the kernel and repairs.
	tbl.ReadBack = 0
	if err := tbl.Apply(want); err != nil {
		t.Fatal(err)
	}
	if got, _ := tbl.Dump(); got != Dump(want) {
		t.Errorf("after repair:\n%s\nwant:\n%s", got, Dump(want))
	}
	if err := tbl.Apply(nil); err != nil {
		t.Fatal(err)
	}
	rs, err := tbl.h.RouteListFiltered(netlink.FAMILY_V4, &netlink.Route{Dst: ipNet(p("10.200.0.0/24"))}, netlink.RT_FILTER_DST)
	if err != nil || len(rs) != 1 {
		t.Errorf("the foreign route did not survive Apply(nil): %v, %v", rs, err)
	}
}

func TestPrivilegedMissingInterface(t *testing.T) {
	testutil.Privileged(t)
	tbl, _ := newKernelTable(t)
	err := tbl.Apply([]Route{{Dst: p("10.65.0.1/32"), Iface: "cali1"}, {Dst: p("10.65.0.9/32"), Iface: "calinothere"}})
	if err == nil {
		t.Fatal("a route to a missing interface was accepted")
	}
	if got, _ := tbl.Dump(); got != "10.65.0.1/32 dev cali1\n" {
		t.Errorf("the good route was not programmed: %q", got)
	}
}
