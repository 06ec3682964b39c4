package nft

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"calico/internal/testutil"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// lab is a host namespace routing between two workload namespaces over
// veths named like Calico's: host side cali<x>, workload side eth0.
type lab struct {
	host, a, b *testutil.NetNS
}

type workload struct {
	ns               *testutil.NetNS
	iface            string
	hostV4, wlV4     string // host side and workload addresses, /24 and /64
	hostV6, wlV6     string
	extraV4          string // a second workload address no endpoint claims
	routeV4, routeV6 string
}

func newLab(t *testing.T) (*lab, []workload) {
	l := &lab{host: testutil.NewNetNS(t), a: testutil.NewNetNS(t), b: testutil.NewNetNS(t)}
	wls := []workload{
		{ns: l.a, iface: "caliA", hostV4: "10.65.1.1", wlV4: "10.65.1.2", hostV6: "fd00:65:1::1", wlV6: "fd00:65:1::2", extraV4: "10.65.1.3"},
		{ns: l.b, iface: "caliB", hostV4: "10.65.2.1", wlV4: "10.65.2.2", hostV6: "fd00:65:2::1", wlV6: "fd00:65:2::2"},
	}
	// No duplicate address detection: a fresh link's link-local address
	// would stay tentative and delay the first IPv6 connection.
	for _, ns := range []*testutil.NetNS{l.host, l.a, l.b} {
		if err := ns.Do(func() error { return sysctl("net/ipv6/conf/default/accept_dad", "0") }); err != nil {
			t.Fatal(err)
		}
	}
	err := l.host.Do(func() error {
		for _, s := range []string{"net/ipv4/ip_forward", "net/ipv6/conf/all/forwarding"} {
			if err := sysctl(s, "1"); err != nil {
				return err
			}
		}
		h, err := netlink.NewHandle()
		if err != nil {
			return err
		}
		defer h.Close()
		for _, w := range wls {
			veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: w.iface}, PeerName: "eth0", PeerNamespace: netlink.NsFd(w.ns.Handle())}
			if err := h.LinkAdd(veth); err != nil {
				return fmt.Errorf("adding %s: %w", w.iface, err)
			}
			if err := configure(h, w.iface, []string{w.hostV4 + "/24", w.hostV6 + "/64"}, "", ""); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range wls {
		addrs := []string{w.wlV4 + "/24", w.wlV6 + "/64"}
		if w.extraV4 != "" {
			addrs = append(addrs, w.extraV4+"/24")
		}
		if err := w.ns.Do(func() error {
			h, err := netlink.NewHandle()
			if err != nil {
				return err
			}
			defer h.Close()
			return configure(h, "eth0", addrs, w.hostV4, w.hostV6)
		}); err != nil {
			t.Fatal(err)
		}
	}
	return l, wls
}

func sysctl(name, value string) error {
	return os.WriteFile("/proc/sys/"+name, []byte(value), 0o644)
}

// configure sets a link up with addresses (no duplicate address
// detection) and optional default routes.
func configure(h *netlink.Handle, name string, addrs []string, gw4, gw6 string) error {
	link, err := h.LinkByName(name)
	if err != nil {
		return err
	}
	for _, a := range addrs {
		na, err := netlink.ParseAddr(a)
		if err != nil {
			return err
		}
		na.Flags = unix.IFA_F_NODAD
		if err := h.AddrAdd(link, na); err != nil {
			return fmt.Errorf("adding %s to %s: %w", a, name, err)
		}
	}
	if err := h.LinkSetUp(link); err != nil {
		return err
	}
	for _, gw := range []string{gw4, gw6} {
		if gw == "" {
			continue
		}
		if err := h.RouteAdd(&netlink.Route{LinkIndex: link.Attrs().Index, Gw: net.ParseIP(gw)}); err != nil {
			return fmt.Errorf("adding default route via %s: %w", gw, err)
		}
	}
	return nil
}

// listen accepts TCP connections on addr in ns, over IPv4 and IPv6, until
// the test ends. (Go's dual-stack ":port" depends on a probe made once per
// process, in whatever namespace it ran.)
func listen(t *testing.T, ns *testutil.NetNS, addr string) {
	for _, network := range []string{"tcp4", "tcp6"} {
		var ln net.Listener
		if err := ns.Do(func() (err error) {
			ln, err = net.Listen(network, addr)
			return err
		}); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ln.Close() })
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				c.Close()
			}
		}()
	}
}

// dial connects from ns to addr, from local if set.
func dial(ns *testutil.NetNS, local, addr string, timeout time.Duration) error {
	return ns.Do(func() error {
		d := net.Dialer{Timeout: timeout}
		if local != "" {
			d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(local)}
		}
		c, err := d.Dial("tcp", addr)
		if err != nil {
			return err
		}
		return c.Close()
	})
}

// expect retries a connection until it succeeds or 5s pass.
func expect(t *testing.T, ns *testutil.NetNS, local, addr string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		err := dial(ns, local, addr, time.Second)
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("connecting from %s to %s: %v", local, addr, err)
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// expectNot checks that a connection is dropped (it times out).
func expectNot(t *testing.T, ns *testutil.NetNS, local, addr string) {
	t.Helper()
	err := dial(ns, local, addr, 700*time.Millisecond)
	var ne net.Error
	if err == nil || !errors.As(err, &ne) || !ne.Timeout() {
		t.Errorf("connecting from %s to %s: %v, want a timeout (dropped)", local, addr, err)
	}
}

func TestPrivilegedPackets(t *testing.T) {
	testutil.Privileged(t)
	ctx := context.Background()
	l, wls := newLab(t)
	a, b := wls[0], wls[1]
	listen(t, l.b, ":8080")
	listen(t, l.b, ":9090")
	listen(t, l.host, ":7070")

	rs := Ruleset{
		Workloads: []Endpoint{
			{Iface: a.iface, Addrs: addrs(a.wlV4, a.wlV6), Ingress: profilePath("open"), Egress: profilePath("open")},
			{Iface: b.iface, Addrs: addrs(b.wlV4, b.wlV6), Ingress: Path{Tiers: []Tier{{Name: "default", Policies: []string{"web"}}}}, Egress: profilePath("open")},
		},
		Policies: []Policy{
			{Name: "open", Ingress: []Rule{{Action: Allow}}, Egress: []Rule{{Action: Allow}}},
			{Name: "web", Ingress: []Rule{
				{Action: Deny, Protocol: tcp, Dst: Match{Ports: []PortRange{{9090, 9090}}}},
				{Action: Allow, Protocol: tcp, Src: Match{Set: "clients"}, Dst: Match{Ports: []PortRange{{8000, 8999}}}},
			}},
		},
		Sets: []Set{{Name: "clients", Members: addrs(a.wlV4, a.wlV6)}},
	}
	ap := New(testLogger(t), WithNetNS(int(l.host.Handle())))
	t.Cleanup(func() { ap.Close() })
	if err := ap.Apply(ctx, rs); err != nil {
		t.Fatal(err)
	}

	t.Run("allowed", func(t *testing.T) {
		expect(t, l.a, "", net.JoinHostPort(b.wlV4, "8080"))
		expect(t, l.a, "", net.JoinHostPort(b.wlV6, "8080"))
	})
	t.Run("denied", func(t *testing.T) {
		expectNot(t, l.a, "", net.JoinHostPort(b.wlV4, "9090"))
		expectNot(t, l.a, "", net.JoinHostPort(b.wlV6, "9090"))
	})
	t.Run("spoofed source", func(t *testing.T) {
		expectNot(t, l.a, a.extraV4, net.JoinHostPort(b.wlV4, "8080"))
	})
	t.Run("not in the set", func(t *testing.T) {
		// A's second address, once A may send from it, is still not in
		// the clients set that B's ingress admits. (B dialing its own
		// address, as this once did, never reaches the host.)
		second := rs
		second.Workloads = slices.Clone(rs.Workloads)
		second.Workloads[0].Addrs = addrs(a.wlV4, a.extraV4, a.wlV6)
		if err := ap.Apply(ctx, second); err != nil {
			t.Fatal(err)
		}
		expectNot(t, l.a, a.extraV4, net.JoinHostPort(b.wlV4, "8080"))
		expect(t, l.a, a.wlV4, net.JoinHostPort(b.wlV4, "8080"))
		if err := ap.Apply(ctx, rs); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("endpoint to host", func(t *testing.T) {
		expectNot(t, l.a, "", net.JoinHostPort(a.hostV4, "7070"))
		open := rs
		open.EndpointToHost = Accept
		if err := ap.Apply(ctx, open); err != nil {
			t.Fatal(err)
		}
		expect(t, l.a, "", net.JoinHostPort(a.hostV4, "7070"))
		expect(t, l.a, "", net.JoinHostPort(a.hostV6, "7070"))
		if err := ap.Apply(ctx, rs); err != nil {
			t.Fatal(err)
		}
		expectNot(t, l.a, "", net.JoinHostPort(a.hostV4, "7070"))
	})
	t.Run("set membership", func(t *testing.T) {
		// Dropping A from the set (for another client) closes the
		// allowed port to it.
		closed := rs
		closed.Sets = []Set{{Name: "clients", Members: addrs("10.65.9.9", "fd00:65:9::9")}}
		if err := ap.Apply(ctx, closed); err != nil {
			t.Fatal(err)
		}
		if ap.last != (Stats{ElemsDeleted: 2, ElemsAdded: 2}) {
			t.Errorf("replacing two members changed %+v", ap.last)
		}
		expectNot(t, l.a, "", net.JoinHostPort(b.wlV4, "8080"))
		expectNot(t, l.a, "", net.JoinHostPort(b.wlV6, "8080"))
		if err := ap.Apply(ctx, rs); err != nil {
			t.Fatal(err)
		}
		expect(t, l.a, "", net.JoinHostPort(b.wlV4, "8080"))
	})
	t.Run("counters", func(t *testing.T) {
		cs, err := ap.Counters(ctx)
		if err != nil {
			t.Fatal(err)
		}
		byRule := map[string]Counter{}
		for _, c := range cs {
			byRule[fmt.Sprintf("%s/%s/%d", c.Policy, c.Direction, c.Rule)] = c
		}
		// Each allowed connection is one SYN through the policy; the rest
		// of it is established traffic.
		if c := byRule["web/ingress/1"]; c.Packets < 3 || c.Bytes == 0 {
			t.Errorf("allow rule counted %v", c)
		}
		if c := byRule["web/ingress/0"]; c.Packets < 2 {
			t.Errorf("deny rule counted %v", c)
		}
		if c := byRule["open/egress/0"]; c.Packets < 3 {
			t.Errorf("open egress counted %v", c)
		}
	})
	t.Run("an emptied set", func(t *testing.T) {
		// No member left: no set of either family, and no kernel rule
		// that looked one up; the port is closed, and open again with
		// the members back.
		closed := rs
		closed.Sets = []Set{{Name: "clients"}}
		if err := ap.Apply(ctx, closed); err != nil {
			t.Fatal(err)
		}
		if want := (Stats{SetsDeleted: 2, ChainsFlushed: 1, RulesAdded: 1}); ap.last != want {
			t.Errorf("emptying the set changed %+v, want %+v", ap.last, want)
		}
		expectNot(t, l.a, "", net.JoinHostPort(b.wlV4, "8080"))
		expectNot(t, l.a, "", net.JoinHostPort(b.wlV6, "8080"))
		if err := ap.Apply(ctx, rs); err != nil {
			t.Fatal(err)
		}
		expect(t, l.a, "", net.JoinHostPort(b.wlV4, "8080"))
		expect(t, l.a, "", net.JoinHostPort(b.wlV6, "8080"))
	})
}

// labelCount sums the packets counted by the kernel rules of the table in
// ns whose comment starts with label.
func labelCount(t *testing.T, ns *testutil.NetNS, label string) uint64 {
	t.Helper()
	r, err := dialReader(int(ns.Handle()), time.Now().Add(10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer r.close()
	rows, err := r.readRules()
	if err != nil {
		t.Fatal(err)
	}
	var n uint64
	for _, row := range rows {
		if strings.HasPrefix(row.comment, label) {
			n += row.packets
		}
	}
	return n
}

// apply applies rs with ap and fails the test on an error.
func apply(t *testing.T, ap *Applier, rs Ruleset) {
	t.Helper()
	if err := ap.Apply(context.Background(), rs); err != nil {
		t.Fatal(err)
	}
}

// TestPrivilegedPacketsTiers sends packets through three tiers of B's
// ingress: t1 passes some ports on and allows one, t2 (DefaultPass)
// denies one and passes the rest on, t3 allows one. Each other port is
// dropped at the end of the tier it stops in.
func TestPrivilegedPacketsTiers(t *testing.T) {
	testutil.Privileged(t)
	l, b := tiersLab(t, []Tier{
		{Name: "t1", Policies: []string{"p1"}},
		{Name: "t2", Policies: []string{"p2"}, DefaultPass: true},
		{Name: "t3", Policies: []string{"p3"}},
	},
		Policy{Name: "p1", Ingress: []Rule{
			{Action: Pass, Protocol: tcp, Dst: Match{Ports: tcpPorts(8080, 8082, 8084)}},
			{Action: Allow, Protocol: tcp, Dst: Match{Ports: tcpPorts(8081)}},
		}},
		Policy{Name: "p2", Ingress: []Rule{{Action: Deny, Protocol: tcp, Dst: Match{Ports: tcpPorts(8082)}}}},
		Policy{Name: "p3", Ingress: []Rule{{Action: Allow, Protocol: tcp, Dst: Match{Ports: tcpPorts(8080)}}}},
	)
	at := func(port int) string { return net.JoinHostPort(b.wlV4, strconv.Itoa(port)) }

	t.Run("passed by t1, default pass in t2, allowed in t3", func(t *testing.T) {
		expect(t, l.a, "", at(8080))
		expect(t, l.a, "", net.JoinHostPort(b.wlV6, "8080"))
	})
	t.Run("allowed in t1", func(t *testing.T) { expect(t, l.a, "", at(8081)) })
	t.Run("passed by t1, denied in t2", func(t *testing.T) { expectNot(t, l.a, "", at(8082)) })
	t.Run("end of tier t1", func(t *testing.T) { expectEndOfTier(t, l, "t1", at(8083)) })
	t.Run("passed by t1 and t2, end of tier t3", func(t *testing.T) {
		expectEndOfTier(t, l, "t3", at(8084))
		if n := labelCount(t, l.host, "end of tier t2"); n != 0 {
			t.Errorf("tier t2 (default pass) has an end-of-tier drop that counted %d", n)
		}
	})
}

// TestPrivilegedPacketsMarkTests: a group chain tests the Pass mark only
// after a policy that can pass and the Accept mark only after one that
// can allow (groupRules). B's ingress tier t1 holds q0 (denies 8084
// only), q1 (passes 8080 only) and q2 (denies 8080 and 8082, allows
// 8081); t2 allows 8080. What q1 passes must skip q2, what q0 leaves
// undecided must reach q2, and q2's allow must end the path.
func TestPrivilegedPacketsMarkTests(t *testing.T) {
	testutil.Privileged(t)
	l, b := tiersLab(t, []Tier{
		{Name: "t1", Policies: []string{"q0", "q1", "q2"}},
		{Name: "t2", Policies: []string{"q3"}},
	},
		Policy{Name: "q0", Ingress: []Rule{{Action: Deny, Protocol: tcp, Dst: Match{Ports: tcpPorts(8084)}}}},
		Policy{Name: "q1", Ingress: []Rule{{Action: Pass, Protocol: tcp, Dst: Match{Ports: tcpPorts(8080)}}}},
		Policy{Name: "q2", Ingress: []Rule{
			{Action: Deny, Protocol: tcp, Dst: Match{Ports: tcpPorts(8080)}},
			{Action: Deny, Protocol: tcp, Dst: Match{Ports: tcpPorts(8082)}},
			{Action: Allow, Protocol: tcp, Dst: Match{Ports: tcpPorts(8081)}},
		}},
		Policy{Name: "q3", Ingress: []Rule{{Action: Allow, Protocol: tcp, Dst: Match{Ports: tcpPorts(8080)}}}},
	)
	at := func(port int) string { return net.JoinHostPort(b.wlV4, strconv.Itoa(port)) }
	t.Run("passed by q1 past q2's deny, allowed in t2", func(t *testing.T) {
		expect(t, l.a, "", at(8080))
		expect(t, l.a, "", net.JoinHostPort(b.wlV6, "8080"))
	})
	t.Run("left undecided by q0 and q1, allowed by q2", func(t *testing.T) { expect(t, l.a, "", at(8081)) })
	t.Run("denied by q2", func(t *testing.T) { expectNot(t, l.a, "", at(8082)) })
	t.Run("denied by q0", func(t *testing.T) { expectNot(t, l.a, "", at(8084)) })
	t.Run("end of tier t1", func(t *testing.T) { expectEndOfTier(t, l, "t1", at(8083)) })
}

// tiersLab programs a lab whose B listens on TCP 8080-8084 and takes
// ingress through tiers of policies; everything else is open. It
// returns the lab and B.
func tiersLab(t *testing.T, tiers []Tier, policies ...Policy) (*lab, workload) {
	l, wls := newLab(t)
	a, b := wls[0], wls[1]
	for p := 8080; p <= 8084; p++ {
		listen(t, l.b, fmt.Sprintf(":%d", p))
	}
	rs := Ruleset{
		Workloads: []Endpoint{
			{Iface: a.iface, Addrs: addrs(a.wlV4, a.wlV6), Ingress: profilePath("open"), Egress: profilePath("open")},
			{Iface: b.iface, Addrs: addrs(b.wlV4, b.wlV6), Egress: profilePath("open"), Ingress: Path{Tiers: tiers}},
		},
		Policies: append([]Policy{{Name: "open", Ingress: []Rule{{Action: Allow}}, Egress: []Rule{{Action: Allow}}}}, policies...),
	}
	ap := New(testLogger(t), WithNetNS(int(l.host.Handle())))
	t.Cleanup(func() { ap.Close() })
	apply(t, ap, rs)
	return l, b
}

// tcpPorts are single ports as ranges.
func tcpPorts(ps ...uint16) []PortRange {
	var out []PortRange
	for _, p := range ps {
		out = append(out, PortRange{p, p})
	}
	return out
}

// expectEndOfTier checks that a connection from A to addr is dropped by
// the end of tier's rule (its counter grows).
func expectEndOfTier(t *testing.T, l *lab, tier, addr string) {
	t.Helper()
	label := "end of tier " + tier
	before := labelCount(t, l.host, label)
	expectNot(t, l.a, "", addr)
	if after := labelCount(t, l.host, label); after <= before {
		t.Errorf("the end of tier %s dropped nothing (%d -> %d packets)", tier, before, after)
	}
}

// TestPrivilegedPacketsNetworkSets admits A to B by a Set with nets: a /16
// and a /32 inside it (and the same address as a member), then the /16
// replaced, then 0.0.0.0/0, then no nets at all (a hash set again).
func TestPrivilegedPacketsNetworkSets(t *testing.T) {
	testutil.Privileged(t)
	l, wls := newLab(t)
	a, b := wls[0], wls[1]
	listen(t, l.b, ":8080")
	rs := func(s Set) Ruleset {
		return Ruleset{
			Workloads: []Endpoint{
				{Iface: a.iface, Addrs: addrs(a.wlV4, a.extraV4, a.wlV6), Ingress: profilePath("open"), Egress: profilePath("open")},
				{Iface: b.iface, Addrs: addrs(b.wlV4, b.wlV6), Egress: profilePath("open"), Ingress: profilePath("from-set")},
			},
			Policies: []Policy{
				{Name: "open", Ingress: []Rule{{Action: Allow}}, Egress: []Rule{{Action: Allow}}},
				{Name: "from-set", Ingress: []Rule{{Action: Allow, Protocol: tcp, Src: Match{Set: "clients"}}}},
			},
			Sets: []Set{s},
		}
	}
	ap := New(testLogger(t), WithNetNS(int(l.host.Handle())))
	t.Cleanup(func() { ap.Close() })
	to4, to6 := net.JoinHostPort(b.wlV4, "8080"), net.JoinHostPort(b.wlV6, "8080")

	apply(t, ap, rs(Set{Name: "clients", Members: addrs(a.wlV4),
		Nets: prefixes("10.65.0.0/16", a.wlV4+"/32", "fd00:65::/32")}))
	expect(t, l.a, a.wlV4, to4)
	expect(t, l.a, a.extraV4, to4)
	expect(t, l.a, a.wlV6, to6)

	// The /16 goes: the /32 still admits one address, not the other.
	apply(t, ap, rs(Set{Name: "clients", Members: addrs(a.wlV4), Nets: prefixes("10.64.0.0/16", a.wlV4+"/32")}))
	if want := (Stats{ElemsAdded: 2, ElemsDeleted: 1, SetsDeleted: 1, ChainsFlushed: 1, RulesAdded: 1}); ap.last != want {
		t.Errorf("replacing the /16 changed %+v, want %+v (v4: one range for two; v6: the set and the rule that looked it up gone)", ap.last, want)
	}
	expect(t, l.a, a.wlV4, to4)
	expectNot(t, l.a, a.extraV4, to4)
	expectNot(t, l.a, a.wlV6, to6)

	// An address below the first range is not in the set.
	apply(t, ap, rs(Set{Name: "clients", Nets: prefixes(a.extraV4 + "/32")}))
	expect(t, l.a, a.extraV4, to4)
	expectNot(t, l.a, a.wlV4, to4)

	// A /0 admits everything.
	apply(t, ap, rs(Set{Name: "clients", Nets: prefixes("0.0.0.0/0", "::/0")}))
	expect(t, l.a, a.extraV4, to4)
	expect(t, l.a, a.wlV6, to6)

	// Without nets the Set is a hash set again (its policy's chain is
	// refilled to refer to it).
	apply(t, ap, rs(Set{Name: "clients", Members: addrs(a.extraV4)}))
	expect(t, l.a, a.extraV4, to4)
	expectNot(t, l.a, a.wlV4, to4)
}

// TestPrivilegedPacketsNamedPorts admits A to B by B's named port: a port
// set of (B's address, tcp, port).
func TestPrivilegedPacketsNamedPorts(t *testing.T) {
	testutil.Privileged(t)
	l, wls := newLab(t)
	a, b := wls[0], wls[1]
	listen(t, l.b, ":8080")
	listen(t, l.b, ":9090")
	named := func(port uint16) PortSet {
		return PortSet{Name: "http", Members: []NamedPort{{addr(b.wlV4), 6, port}, {addr(b.wlV6), 6, port}}}
	}
	rs := func(ps PortSet, rules ...Rule) Ruleset {
		return Ruleset{
			Workloads: []Endpoint{
				{Iface: a.iface, Addrs: addrs(a.wlV4, a.wlV6), Ingress: profilePath("open"), Egress: profilePath("open")},
				{Iface: b.iface, Addrs: addrs(b.wlV4, b.wlV6), Egress: profilePath("open"), Ingress: profilePath("named")},
			},
			Policies: []Policy{
				{Name: "open", Ingress: []Rule{{Action: Allow}}, Egress: []Rule{{Action: Allow}}},
				{Name: "named", Ingress: rules},
			},
			PortSets: []PortSet{ps},
		}
	}
	ap := New(testLogger(t), WithNetNS(int(l.host.Handle())))
	t.Cleanup(func() { ap.Close() })
	allowNamed := Rule{Action: Allow, Dst: Match{PortSet: "http"}}

	apply(t, ap, rs(named(8080), allowNamed))
	expect(t, l.a, "", net.JoinHostPort(b.wlV4, "8080"))
	expect(t, l.a, "", net.JoinHostPort(b.wlV6, "8080"))
	expectNot(t, l.a, "", net.JoinHostPort(b.wlV4, "9090"))

	// The named port moves: two elements out, two in, nothing else.
	apply(t, ap, rs(named(9090), allowNamed))
	if want := (Stats{ElemsAdded: 2, ElemsDeleted: 2}); ap.last != want {
		t.Errorf("moving the named port changed %+v, want %+v", ap.last, want)
	}
	expect(t, l.a, "", net.JoinHostPort(b.wlV4, "9090"))
	expectNot(t, l.a, "", net.JoinHostPort(b.wlV4, "8080"))

	// NotPortSet: a packet without ports is not in the set, so a deny of
	// what is not a named port drops pings too.
	apply(t, ap, rs(named(8080), Rule{Action: Deny, Dst: Match{NotPortSet: "http"}}, Rule{Action: Allow}))
	expect(t, l.a, "", net.JoinHostPort(b.wlV4, "8080"))
	expectNot(t, l.a, "", net.JoinHostPort(b.wlV4, "9090"))
	if _, err := exec.LookPath("ping"); err != nil {
		t.Log("no ping: the portless case is not tried")
		return
	}
	ping := func() error { return exec.Command("ip", "netns", "exec", l.a.Name, "ping", "-c1", "-W1", b.wlV4).Run() }
	if ping() == nil {
		t.Error("a ping passed a deny of what is not a named port")
	}
	apply(t, ap, rs(named(8080), Rule{Action: Allow}))
	if err := ping(); err != nil {
		t.Errorf("a ping allowed by policy failed: %v", err)
	}
}
