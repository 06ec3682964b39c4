//go:build linux

package route

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

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
	t.Cleanup(func() {
		if n, took := tbl.Lists(); n < 1 || took <= 0 {
			t.Errorf("Lists() = %d, %v after the states; want the reads of the kernel counted and timed", n, took)
		}
	})
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

// ReadBehind reads the routes back beside Apply: while the kernel holds
// what Apply left, Apply trusts its memory and lists nothing; when one
// of ours was deleted by hand, the reader says so and the next Apply
// repairs it.
func TestPrivilegedReadBehind(t *testing.T) {
	testutil.Privileged(t)
	tbl, _ := newKernelTable(t)
	tbl.ReadBack = time.Hour
	want := states[2].want
	if err := tbl.Apply(want); err != nil {
		t.Fatal(err)
	}
	lists := func() int64 { n, _ := tbl.Lists(); return n }
	age := func() { tbl.memMu.Lock(); tbl.memAt = tbl.memAt.Add(-2 * tbl.ReadBack); tbl.memMu.Unlock() }
	n := lists()
	// Memory older than ReadBack: the reader lists and renews it, and
	// Apply then lists nothing.
	age()
	if d, err := tbl.vouch(tbl.ReadBack); d || err != nil || lists() != n+1 {
		t.Fatalf("vouch() over the routes Apply left = %v, %v with %d listings; want false, nil and 1", d, err, lists()-n)
	}
	if err := tbl.Apply(want); err != nil || lists() != n+1 {
		t.Errorf("Apply after the reader renewed its memory listed %d times (err %v); want 0", lists()-n-1, err)
	}
	// Not renewed, Apply lists itself.
	age()
	if err := tbl.Apply(want); err != nil || lists() != n+2 {
		t.Errorf("Apply with memory %v old listed %d times (err %v); want 1", 2*tbl.ReadBack, lists()-n-1, err)
	}
	// Fresh memory: the reader does not list.
	if d, err := tbl.vouch(tbl.ReadBack); d || err != nil || lists() != n+2 {
		t.Errorf("vouch() over fresh memory = %v, %v with %d listings; want false, nil and none", d, err, lists()-n-2)
	}

	// A pass that programs during the listing: the listing vouches for
	// the other routes, and still finds one of those deleted by hand.
	halfAge := func() { tbl.memMu.Lock(); tbl.memAt = time.Now().Add(-tbl.ReadBack * 2 / 3); tbl.memMu.Unlock() }
	more := append(slices.Clone(want), Route{Dst: p("10.65.7.0/26"), Blackhole: true})
	halfAge()
	start, ok := tbl.vouchBegin(tbl.ReadBack)
	if !ok {
		t.Fatal("vouchBegin() = false over memory two thirds of ReadBack old")
	}
	if err := tbl.Apply(more); err != nil {
		t.Fatal(err)
	}
	got, err := tbl.list(tbl.back)
	if d, err := tbl.vouchEnd(start, got, err); d || err != nil || !tbl.memAt.Equal(start) {
		t.Errorf("vouch with a route added during the listing = %v, %v, memory at %v; want false, nil and renewed at %v", d, err, tbl.memAt, start)
	}
	halfAge()
	start, _ = tbl.vouchBegin(tbl.ReadBack)
	if err := tbl.Apply(want); err != nil {
		t.Fatal(err)
	}
	if err := tbl.h.RouteDel(&netlink.Route{Dst: ipNet(p("10.65.0.2/32")), Protocol: Protocol, Scope: netlink.SCOPE_NOWHERE}); err != nil {
		t.Fatal(err)
	}
	got, err = tbl.list(tbl.back)
	if d, err := tbl.vouchEnd(start, got, err); !d || err != nil {
		t.Errorf("vouch with a route deleted during the listing and another deleted by hand = %v, %v; want true, nil", d, err)
	}
	if err := tbl.Apply(want); err != nil {
		t.Fatal(err)
	}
	if got, _ := tbl.Dump(); got != Dump(want) {
		t.Errorf("after the drift found beside a pass:\n%s\nwant:\n%s", got, Dump(want))
	}

	// A route of ours deleted by hand: the running reader finds it and
	// calls drifted; the next Apply puts it back.
	tbl.ReadBack = 100 * time.Millisecond
	drifted := make(chan struct{}, 1)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() {
		defer close(done)
		tbl.ReadBehind(ctx, func() {
			select {
			case drifted <- struct{}{}:
			default:
			}
		})
	}()
	defer func() { cancel(); <-done }()
	if err := tbl.h.RouteDel(&netlink.Route{Dst: ipNet(p("10.65.0.2/32")), Protocol: Protocol, Scope: netlink.SCOPE_NOWHERE}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-drifted:
	case <-time.After(10 * time.Second):
		t.Fatal("ReadBehind did not report the route deleted by hand")
	}
	tbl.ReadBack = time.Hour // only the reader's finding makes Apply list
	if err := tbl.Apply(want); err != nil {
		t.Fatal(err)
	}
	if got, _ := tbl.Dump(); got != Dump(want) {
		t.Errorf("after the drift was found:\n%s\nwant:\n%s", got, Dump(want))
	}
}

// A route that waits for its interface, while the kernel still routes
// its destination the old way, is no drift: the reader does not ask for
// a pass every few seconds for as long as it waits.
func TestPrivilegedReadBehindWaiting(t *testing.T) {
	testutil.Privileged(t)
	tbl, _ := newKernelTable(t)
	tbl.ReadBack = time.Hour
	old := []Route{{Dst: p("10.65.0.5/32"), Iface: "cali1"}}
	if err := tbl.Apply(old); err != nil {
		t.Fatal(err)
	}
	moved := []Route{{Dst: p("10.65.0.5/32"), Iface: "tap-not-yet"}}
	var f *Failed
	if err := tbl.Apply(moved); !errors.As(err, &f) || len(f.Missing) != 1 {
		t.Fatalf("Apply through a missing interface = %v; want a Failed with it missing", err)
	}
	tbl.memMu.Lock()
	tbl.memAt = tbl.memAt.Add(-tbl.ReadBack)
	tbl.memMu.Unlock()
	if d, err := tbl.vouch(tbl.ReadBack); d || err != nil {
		t.Errorf("vouch() while the route waits, the old one in place = %v, %v; want false, nil", d, err)
	}
}

// An Apply of the routes the last one programmed does nothing while
// nothing calls for a look; a changed input, an interface's change, a
// drift found, a gateway moved, or memory ReadBack old each make it look.
func TestPrivilegedApplyUnchanged(t *testing.T) {
	testutil.Privileged(t)
	tbl, ns := newKernelTable(t)
	tbl.ReadBack = time.Hour
	otherRack(t, ns, "172.31.2.0/24", "10.99.0.254")
	want := []Route{
		{Dst: p("10.65.0.1/32"), Iface: "cali1"},
		{Dst: p("10.65.1.0/26"), Via: []netip.Addr{a("172.31.2.13")}},
	}
	apply := func(what string, rs []Route, full int) {
		t.Helper()
		if err := tbl.Apply(rs); err != nil || tbl.full != full {
			t.Errorf("%s: Apply = %v with %d full passes in all; want nil and %d", what, err, tbl.full, full)
		}
	}
	apply("first", want, 1)
	apply("the same input", slices.Clone(want), 1)
	changed := append(slices.Clone(want), Route{Dst: p("10.65.9.0/26"), Blackhole: true})
	apply("a changed input", changed, 2)
	apply("the same again", changed, 2)
	tbl.LinkChanged("cali1")
	apply("after an interface changed", changed, 3)
	// A drift the reader found: the route deleted by hand comes back.
	if err := tbl.h.RouteDel(&netlink.Route{Dst: ipNet(p("10.65.9.0/26")), Type: unix.RTN_BLACKHOLE, Protocol: Protocol, Scope: netlink.SCOPE_NOWHERE}); err != nil {
		t.Fatal(err)
	}
	apply("a drift not found yet", changed, 3)
	tbl.memMu.Lock()
	tbl.memAt = tbl.memAt.Add(-tbl.ReadBack * 2 / 3)
	tbl.memMu.Unlock()
	if d, err := tbl.vouch(tbl.ReadBack); !d || err != nil {
		t.Fatalf("vouch() after a route was deleted by hand = %v, %v; want true", d, err)
	}
	apply("after the drift was found", changed, 4)
	if got, _ := tbl.Dump(); !strings.Contains(got, "blackhole 10.65.9.0/26") {
		t.Errorf("after the drift was found, no blackhole 10.65.9.0/26:\n%s", got)
	}
	// A gateway moved.
	otherRack(t, ns, "172.31.2.0/24", "10.99.0.253")
	tbl.hopMu.Lock()
	tbl.hopsAt = tbl.hopsAt.Add(-tbl.ReadBack * 2 / 3)
	tbl.hopMu.Unlock()
	if !tbl.refreshHops(tbl.ReadBack) {
		t.Fatal("refreshHops() = false after the gateway moved")
	}
	apply("after a gateway moved", changed, 5)
	if got, _ := tbl.Dump(); !strings.Contains(got, "10.65.1.0/26 via 10.99.0.253") {
		t.Errorf("after the gateway moved:\n%s", got)
	}
	// Memory ReadBack old.
	tbl.memMu.Lock()
	tbl.memAt = tbl.memAt.Add(-tbl.ReadBack)
	tbl.memMu.Unlock()
	apply("with memory ReadBack old", changed, 6)
	apply("and then the same", changed, 6)
	// A failed Apply is never skipped over.
	bad := append(slices.Clone(changed), Route{Dst: p("10.65.3.0/26"), Via: []netip.Addr{a("192.0.2.1")}})
	for _, n := range []int{7, 8} {
		if err := tbl.Apply(bad); err == nil || tbl.full != n {
			t.Errorf("Apply with an unreachable next hop = %v with %d full passes; want an error and %d", err, tbl.full, n)
		}
	}
}

// Reading the routes back names their interfaces from memory: learned
// from the routes programmed, else asked of the kernel, one index at a
// time, for an interface not known and for all once a minute old.
func TestPrivilegedReadBackNames(t *testing.T) {
	testutil.Privileged(t)
	tbl, ns := newKernelTable(t)
	want := []Route{{Dst: p("10.65.0.1/32"), Iface: "cali1"}, {Dst: p("10.65.9.0/26"), Blackhole: true}}
	if err := tbl.Apply(want); err != nil {
		t.Fatal(err)
	}
	read := func() string {
		t.Helper()
		m, err := tbl.list(tbl.dump)
		if err != nil {
			t.Fatal(err)
		}
		var rs []Route
		for _, r := range m {
			rs = append(rs, r)
		}
		return Dump(normalize(rs))
	}
	if got := read(); got != Dump(want) || tbl.links.lookup != 0 {
		t.Errorf("read back after programming: %d names asked (want 0), routes\n%s\nwant\n%s", tbl.links.lookup, got, Dump(want))
	}
	// Another Table (a node started again) knows no name: it asks for
	// cali1's once.
	var fresh *Table
	if err := ns.Do(func() (err error) { fresh, err = New(slog.New(slog.DiscardHandler)); return err }); err != nil {
		t.Fatal(err)
	}
	defer fresh.Close()
	for range 2 {
		if got, err := fresh.Current(); err != nil || Dump(got) != Dump(want) || fresh.links.lookup != 1 {
			t.Errorf("a new table read back with %d names asked (want 1), routes\n%s\nwant\n%s (err %v)", fresh.links.lookup, Dump(got), Dump(want), err)
		}
	}
	// A route of ours through an interface this table never programmed.
	c2, err := tbl.h.LinkByName("cali2")
	if err != nil {
		t.Fatal(err)
	}
	if err := tbl.h.RouteAdd(&netlink.Route{Dst: ipNet(p("10.65.0.2/32")), LinkIndex: c2.Attrs().Index, Scope: netlink.SCOPE_LINK, Protocol: Protocol}); err != nil {
		t.Fatal(err)
	}
	want = append(want, Route{Dst: p("10.65.0.2/32"), Iface: "cali2"})
	if got := read(); got != Dump(normalize(want)) || tbl.links.lookup != 1 {
		t.Errorf("read back with an interface not known: %d names asked (want 1), routes\n%s\nwant\n%s", tbl.links.lookup, got, Dump(normalize(want)))
	}
	// Names a minute old are read again (an interface renamed keeps its
	// index).
	if err := tbl.h.LinkSetName(c2, "cali2b"); err != nil {
		t.Fatal(err)
	}
	tbl.links.asked = tbl.links.asked.Add(-namesMaxAge)
	want[len(want)-1].Iface = "cali2b"
	if got := read(); got != Dump(normalize(want)) || tbl.links.lookup != 3 {
		t.Errorf("read back a minute later: %d names asked (want 3: both again), routes\n%s\nwant\n%s", tbl.links.lookup, got, Dump(normalize(want)))
	}
	// A route's interface gone between the routes' listing and its name.
	names, err := tbl.links.names([]int{c2.Attrs().Index, 1 << 30})
	if err != nil || len(names) != 2 || names[c2.Attrs().Index] != "cali2b" {
		t.Errorf("names of cali2b and of an index without an interface: %v, %v; want cali1's and cali2b's only", names, err)
	}
}

// A next hop in another subnet (a route reflector passes those on) is
// installed through the gateway the kernel uses to reach it, and applying
// the same routes again changes nothing.
func TestPrivilegedRecursiveNextHop(t *testing.T) {
	testutil.Privileged(t)
	tbl, ns := newKernelTable(t)
	otherRack(t, ns, "172.31.2.0/24", "10.99.0.254")
	want := []Route{
		{Dst: netip.MustParsePrefix("10.65.1.0/26"), Via: []netip.Addr{netip.MustParseAddr("172.31.2.13")}},
		{Dst: netip.MustParsePrefix("10.65.2.0/26"), Via: []netip.Addr{netip.MustParseAddr("10.99.0.7")}}, // on-link: kept
	}
	if err := tbl.Apply(want); err != nil {
		t.Fatal(err)
	}
	d, _ := tbl.Dump()
	if wantDump := "10.65.1.0/26 via 10.99.0.254\n10.65.2.0/26 via 10.99.0.7\n"; d != wantDump {
		t.Errorf("kernel routes:\n%s\nwant:\n%s", d, wantDump)
	}
	tbl.ReadBack = 0 // read the kernel again: equal means no change
	if err := tbl.Apply(want); err != nil {
		t.Fatal(err)
	}
	// An unreachable next hop fails that route only, and says which.
	bad := append(want, Route{Dst: netip.MustParsePrefix("10.65.3.0/26"), Via: []netip.Addr{netip.MustParseAddr("192.0.2.1")}})
	err := tbl.Apply(bad)
	var f *Failed
	if !errors.As(err, &f) || len(f.Dsts) != 1 || f.Dsts[0] != netip.MustParsePrefix("10.65.3.0/26") {
		t.Errorf("applying a route with an unreachable next hop = %v; want a Failed naming it", err)
	}
}

// TestPrivilegedMissingInterfaceWaits: a route through an interface that
// does not exist waits (it is not an error), the others are programmed,
// the interface is looked for again only after a back-off, and the route
// comes once the interface is there.
func TestPrivilegedMissingInterface(t *testing.T) {
	testutil.Privileged(t)
	tbl, ns := newKernelTable(t)
	want := []Route{
		{Dst: netip.MustParsePrefix("10.65.0.1/32"), Iface: "cali1"},
		{Dst: netip.MustParsePrefix("10.65.0.9/32"), Iface: "calinope"},
	}
	var f *Failed
	err := tbl.Apply(want)
	if !errors.As(err, &f) || f.Unwrap() != nil || len(f.Missing) != 1 || f.Missing[0].Iface != "calinope" {
		t.Fatalf("Apply = %v; want the calinope route waiting and no error", err)
	}
	if d, _ := tbl.Dump(); !contains(d, "10.65.0.1/32 dev cali1") {
		t.Errorf("the other route is not programmed:\n%s", d)
	}
	if err := ns.Do(func() error {
		if err := netlink.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "calinope"}, PeerName: "calinopep"}); err != nil {
			return err
		}
		for _, name := range []string{"calinope", "calinopep"} {
			l, err := netlink.LinkByName(name)
			if err != nil {
				return err
			}
			netlink.LinkSetUp(l)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := tbl.Apply(want); !errors.As(err, &f) || len(f.Missing) != 1 {
		t.Errorf("Apply at once after = %v; want the route still waiting (backing off)", err)
	}
	tbl.waiting["calinope"].next = time.Now() // the back-off has passed
	if err := tbl.Apply(want); err != nil {
		t.Errorf("Apply after the back-off = %v", err)
	}
	if d, _ := tbl.Dump(); !contains(d, "10.65.0.9/32 dev calinope") {
		t.Errorf("the waiting route is not programmed:\n%s", d)
	}
}

// TestPrivilegedLinkChanged: an interface the kernel reports is looked
// for at once, without waiting out the back-off, and a route through an
// interface that was deleted and made again (a VM's tap, recreated) is
// programmed again at once, though the table's memory says it is there.
func TestPrivilegedLinkChanged(t *testing.T) {
	testutil.Privileged(t)
	tbl, ns := newKernelTable(t)
	want := []Route{{Dst: netip.MustParsePrefix("10.65.0.9/32"), Iface: "tap9"}}
	var f *Failed
	if err := tbl.Apply(want); !errors.As(err, &f) || len(f.Missing) != 1 {
		t.Fatalf("Apply = %v; want the route waiting", err)
	}
	tap := func(add bool) {
		t.Helper()
		if err := ns.Do(func() error {
			if add {
				tap := &netlink.Tuntap{LinkAttrs: netlink.LinkAttrs{Name: "tap9"}, Mode: netlink.TUNTAP_MODE_TAP, Flags: netlink.TUNTAP_DEFAULTS}
				if err := netlink.LinkAdd(tap); err != nil {
					return err
				}
			}
			l, err := netlink.LinkByName("tap9")
			if err != nil {
				return err
			}
			if add {
				return netlink.LinkSetUp(l)
			}
			return netlink.LinkDel(l)
		}); err != nil {
			t.Fatal(err)
		}
	}
	routed := func() bool { d, _ := tbl.Dump(); return contains(d, "10.65.0.9/32 dev tap9") }
	tap(true)
	tbl.LinkChanged("tap9")
	if err := tbl.Apply(want); err != nil || !routed() {
		t.Errorf("Apply after the interface was reported = %v; routed %v", err, routed())
	}
	tap(false)
	tap(true)
	tbl.LinkChanged("tap9")
	if err := tbl.Apply(want); err != nil || !routed() {
		t.Errorf("Apply after the interface was made again = %v; routed %v", err, routed())
	}
}

func contains(s, sub string) bool { return strings.Contains(s, sub) }

// otherRack routes dst, another rack, through the router gw on the
// uplink's network of ns; the route is not ours, so it has another
// protocol.
func otherRack(t *testing.T, ns *testutil.NetNS, dst, gw string) {
	t.Helper()
	err := ns.Do(func() error {
		up, err := netlink.LinkByName("uplink")
		if err != nil {
			return err
		}
		return netlink.RouteReplace(&netlink.Route{LinkIndex: up.Attrs().Index, Dst: ipNet(p(dst)), Gw: net.ParseIP(gw)})
	})
	if err != nil {
		t.Fatal(err)
	}
}

// The gateways of next hops, IPv4 and IPv6, are asked of the kernel
// once, not at every Apply; ReadBehind's refresh finds a gateway that
// moved, and the next Apply programs the route through the new one.
func TestPrivilegedNextHopMoved(t *testing.T) {
	testutil.Privileged(t)
	tbl, ns := newKernelTable(t)
	tbl.ReadBack = time.Hour
	err := ns.Do(func() error {
		up, err := netlink.LinkByName("uplink")
		if err != nil {
			return err
		}
		return netlink.AddrAdd(up, &netlink.Addr{IPNet: ipNet(p("fd00:99::1/64")), Flags: unix.IFA_F_NODAD})
	})
	if err != nil {
		t.Fatal(err)
	}
	otherRack(t, ns, "172.31.2.0/24", "10.99.0.254")
	otherRack(t, ns, "fd00:31:2::/64", "fd00:99::fe")
	want := []Route{
		{Dst: p("10.65.1.0/26"), Via: []netip.Addr{a("172.31.2.13")}},
		{Dst: p("10.65.2.0/26"), Via: []netip.Addr{a("10.99.0.7")}},
		{Dst: p("fd00:65:1::/122"), Via: []netip.Addr{a("fd00:31:2::13")}},
	}
	for range 2 {
		if err := tbl.Apply(want); err != nil || tbl.asked != 3 {
			t.Fatalf("Apply = %v with %d gateways asked in all; want nil and 3 (each next hop once)", err, tbl.asked)
		}
	}
	before := "10.65.1.0/26 via 10.99.0.254\n10.65.2.0/26 via 10.99.0.7\nfd00:65:1::/122 via fd00:99::fe\n"
	if d, _ := tbl.Dump(); d != before {
		t.Fatalf("routes:\n%s\nwant:\n%s", d, before)
	}
	age := func() { tbl.hopMu.Lock(); tbl.hopsAt = tbl.hopsAt.Add(-tbl.ReadBack); tbl.hopMu.Unlock() }
	age()
	if tbl.refreshHops(tbl.ReadBack) || len(tbl.hops) != 3 {
		t.Errorf("refreshHops() = true or %d next hops known, with no gateway moved; want false and 3", len(tbl.hops))
	}
	otherRack(t, ns, "172.31.2.0/24", "10.99.0.253")
	otherRack(t, ns, "fd00:31:2::/64", "fd00:99::fd")
	if tbl.refreshHops(tbl.ReadBack) {
		t.Error("refreshHops() = true over gateways just asked; want them trusted for half of ReadBack")
	}
	age()
	if !tbl.refreshHops(tbl.ReadBack) {
		t.Fatal("refreshHops() = false after the other rack's routers changed")
	}
	if err := tbl.Apply(want); err != nil {
		t.Fatal(err)
	}
	after := "10.65.1.0/26 via 10.99.0.253\n10.65.2.0/26 via 10.99.0.7\nfd00:65:1::/122 via fd00:99::fd\n"
	if d, _ := tbl.Dump(); d != after || tbl.asked != 3 {
		t.Errorf("after the gateways moved, with %d gateways asked by Apply (want 3), routes:\n%s\nwant:\n%s", tbl.asked, d, after)
	}
	// Without ReadBehind, Apply asks again once they are ReadBack old.
	age()
	if err := tbl.Apply(want); err != nil || tbl.asked != 6 {
		t.Errorf("Apply over gateways ReadBack old = %v with %d asked in all; want nil and 6", err, tbl.asked)
	}
	// A next hop the kernel has no route to is not remembered: each
	// Apply asks again (its route fails).
	bad := append(want, Route{Dst: p("10.65.3.0/26"), Via: []netip.Addr{a("192.0.2.1")}})
	for _, n := range []int{7, 8} {
		if err := tbl.Apply(bad); err == nil || tbl.asked != n {
			t.Errorf("Apply with an unreachable next hop = %v with %d asked in all; want an error and %d", err, tbl.asked, n)
		}
	}
}
