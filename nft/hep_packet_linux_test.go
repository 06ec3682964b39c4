package nft

import (
	"net"
	"testing"

	"calico/internal/testutil"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/vishvananda/netlink"
)

// peer is a namespace outside the host, reached through a host interface
// of its own (a host endpoint): a machine on one of the host's networks.
type peer struct {
	ns         *testutil.NetNS
	iface      string // the host's interface to it
	hostV4, v4 string
}

// hostLab is newLab's host and workloads and two peers, x (through ethx)
// and y (through ethy).
type hostLab struct {
	*lab
	wls  []workload
	x, y peer
}

func newHostLab(t *testing.T) *hostLab {
	l, wls := newLab(t)
	return &hostLab{lab: l, wls: wls,
		x: addPeer(t, l.host, "ethx", "10.70.1.1", "10.70.1.2"),
		y: addPeer(t, l.host, "ethy", "10.70.2.1", "10.70.2.2")}
}

func addPeer(t *testing.T, host *testutil.NetNS, iface, hostV4, v4 string) peer {
	p := peer{ns: testutil.NewNetNS(t), iface: iface, hostV4: hostV4, v4: v4}
	err := host.Do(func() error {
		h, err := netlink.NewHandle()
		if err != nil {
			return err
		}
		defer h.Close()
		veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: iface}, PeerName: "eth0", PeerNamespace: netlink.NsFd(p.ns.Handle())}
		if err := h.LinkAdd(veth); err != nil {
			return err
		}
		return configure(h, iface, []string{hostV4 + "/24"}, "", "")
	})
	if err == nil {
		err = p.ns.Do(func() error {
			h, err := netlink.NewHandle()
			if err != nil {
				return err
			}
			defer h.Close()
			return configure(h, "eth0", []string{v4 + "/24"}, hostV4, "")
		})
	}
	if err != nil {
		t.Fatalf("adding peer through %s: %v", iface, err)
	}
	return p
}

// hostPolicies are the policies the host endpoint tests use.
var hostPolicies = []Policy{
	{Name: "open", Ingress: []Rule{{Action: Allow}}, Egress: []Rule{{Action: Allow}}},
	{Name: "deny-all", Ingress: []Rule{{Action: Deny}}, Egress: []Rule{{Action: Deny}}},
	{Name: "allow-7070", Ingress: []Rule{{Action: Allow, Protocol: tcp, Dst: Match{Ports: []PortRange{{7070, 7070}}}}},
		Egress: []Rule{{Action: Allow, Protocol: tcp, Src: Match{Ports: []PortRange{{7070, 7070}}}}}},
	{Name: "allow-8888", Ingress: []Rule{{Action: Allow, Protocol: tcp, Dst: Match{Ports: []PortRange{{8888, 8888}}}}}},
	{Name: "deny-8888", Ingress: []Rule{{Action: Deny, Protocol: tcp, Dst: Match{Ports: []PortRange{{8888, 8888}}}}}},
	{Name: "allow-9090-9191", Ingress: []Rule{{Action: Allow, Protocol: tcp, Dst: Match{Ports: []PortRange{{9090, 9191}}}}}},
	{Name: "deny-9090", Ingress: []Rule{{Action: Deny, Protocol: tcp, Dst: Match{Ports: []PortRange{{9090, 9090}}}}, {Action: Allow}}},
	{Name: "deny-9191", Egress: []Rule{{Action: Deny, Protocol: tcp, Dst: Match{Ports: []PortRange{{9191, 9191}}}}, {Action: Allow}}},
}

// hostRuleset is the lab's two workloads (open) and host endpoints.
func (hl *hostLab) ruleset(heps ...HostEndpoint) Ruleset {
	rs := Ruleset{HostEndpoints: heps, Policies: hostPolicies,
		FailsafeIn: []ProtoPort{{Protocol: 6, Port: 2222}}, FailsafeOut: []ProtoPort{{Protocol: 6, Port: 2380}}}
	for _, w := range hl.wls {
		rs.Workloads = append(rs.Workloads, Endpoint{Iface: w.iface, Addrs: addrs(w.wlV4, w.wlV6),
			Ingress: profilePath("open"), Egress: profilePath("open")})
	}
	return rs
}

func (hl *hostLab) applier(t *testing.T) *Applier {
	ap := New(testLogger(t), WithNetNS(int(hl.host.Handle())))
	t.Cleanup(func() { ap.Close() })
	return ap
}

// TestPrivilegedPacketsForward forwards between two host interfaces under
// their forward policies, and to a workload, which only the workload's
// policy decides.
func TestPrivilegedPacketsForward(t *testing.T) {
	testutil.Privileged(t)
	hl := newHostLab(t)
	x, y, a := hl.x, hl.y, hl.wls[0]
	for _, port := range []string{":8080", ":9090", ":9191"} {
		listen(t, y.ns, port)
	}
	listen(t, x.ns, ":9090")
	listen(t, hl.a, ":9090")
	toY := func(port string) string { return net.JoinHostPort(y.v4, port) }
	ap := hl.applier(t)

	// ethx denies 9090 in, ethy denies 9191 out; neither has other tiers
	// (and their host Ingress and Egress are empty: they deny).
	apply(t, ap, hl.ruleset(
		HostEndpoint{Iface: x.iface, ForwardIngress: tierPath("deny-9090")},
		HostEndpoint{Iface: y.iface, ForwardEgress: tierPath("deny-9191")}))
	expect(t, x.ns, "", toY("8080"))
	expectNot(t, x.ns, "", toY("9090"))
	expectNot(t, x.ns, "", toY("9191"))
	expect(t, y.ns, "", net.JoinHostPort(x.v4, "9090")) // no forward tiers that way
	expect(t, x.ns, "", net.JoinHostPort(a.wlV4, "9090"))
	expectNot(t, x.ns, "", net.JoinHostPort(x.hostV4, "9090")) // the host's own Ingress

	// The same out through "*", which takes every interface no endpoint
	// names.
	apply(t, ap, hl.ruleset(
		HostEndpoint{Iface: x.iface, ForwardIngress: tierPath("deny-9090")},
		HostEndpoint{Iface: AllInterfaces, ForwardEgress: tierPath("deny-9191")}))
	expect(t, x.ns, "", toY("8080"))
	expectNot(t, x.ns, "", toY("9191"))
	expect(t, y.ns, "", net.JoinHostPort(x.v4, "9090"))
	expect(t, x.ns, "", net.JoinHostPort(a.wlV4, "9090"))

	// A pre-DNAT allow of ethx accepts for ethx's forward stage too, not
	// for ethy's.
	apply(t, ap, hl.ruleset(
		HostEndpoint{Iface: x.iface, ForwardIngress: tierPath("deny-9090"), PreDNAT: tierPath("allow-9090-9191")},
		HostEndpoint{Iface: y.iface, ForwardEgress: tierPath("deny-9191")}))
	expect(t, x.ns, "", toY("9090"))
	expectNot(t, x.ns, "", toY("9191"))
}

// redirect makes the host in ns redirect TCP port from to port to, in a
// nat table of the test's own, at the dstnat priority.
func redirect(t *testing.T, ns *testutil.NetNS, from, to uint16) {
	c := nftConn(t, ns)
	tbl := c.AddTable(&nftables.Table{Name: "test-nat", Family: nftables.TableFamilyINet})
	policy := nftables.ChainPolicyAccept
	ch := c.AddChain(&nftables.Chain{Table: tbl, Name: "prerouting", Type: nftables.ChainTypeNAT,
		Hooknum: nftables.ChainHookPrerouting, Priority: nftables.ChainPriorityNATDest, Policy: &policy})
	c.AddRule(&nftables.Rule{Table: tbl, Chain: ch, Exprs: []expr.Any{
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{6}},
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: be16(from)},
		&expr.Immediate{Register: 1, Data: be16(to)},
		&expr.Redir{RegisterProtoMin: 1},
	}})
	if err := c.Flush(); err != nil {
		t.Fatalf("adding a redirect: %v", err)
	}
}

// TestPrivilegedPacketsPreDNAT checks that pre-DNAT policy sees the
// destination before DNAT (port 8888, which the host redirects to 7070),
// that what it allows the host endpoint's Ingress does not see again, and
// that failsafe ports stay open under a pre-DNAT deny of everything.
func TestPrivilegedPacketsPreDNAT(t *testing.T) {
	testutil.Privileged(t)
	hl := newHostLab(t)
	x := hl.x
	listen(t, hl.host, ":7070")
	listen(t, hl.host, ":2222")
	redirect(t, hl.host, 8888, 7070)
	at := func(port string) string { return net.JoinHostPort(x.hostV4, port) }
	ap := hl.applier(t)

	apply(t, ap, hl.ruleset(HostEndpoint{Iface: x.iface, Ingress: tierPath("allow-7070")}))
	expect(t, x.ns, "", at("7070"))
	expect(t, x.ns, "", at("8888")) // redirected: Ingress sees 7070

	t.Run("deny", func(t *testing.T) {
		apply(t, ap, hl.ruleset(HostEndpoint{Iface: x.iface, Ingress: tierPath("allow-7070"), PreDNAT: tierPath("deny-8888")}))
		expectNot(t, x.ns, "", at("8888"))
		expect(t, x.ns, "", at("7070"))
	})
	t.Run("allow skips Ingress", func(t *testing.T) {
		apply(t, ap, hl.ruleset(HostEndpoint{Iface: x.iface, PreDNAT: tierPath("allow-8888")}))
		expect(t, x.ns, "", at("8888"))
		expectNot(t, x.ns, "", at("7070"))
	})
	t.Run("failsafe", func(t *testing.T) {
		apply(t, ap, hl.ruleset(HostEndpoint{Iface: x.iface, Ingress: tierPath("allow-7070"), PreDNAT: tierPath("deny-all")}))
		expect(t, x.ns, "", at("2222"))
		expectNot(t, x.ns, "", at("7070"))
	})
}

// tracked reports whether the host in ns has a conntrack entry of TCP
// port (either end).
func tracked(t *testing.T, ns *testutil.NetNS, port uint16) bool {
	t.Helper()
	h, err := netlink.NewHandleAt(ns.Handle())
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	flows, err := h.ConntrackTableList(netlink.ConntrackTable, netlink.FAMILY_V4)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range flows {
		if f.Forward.Protocol == 6 && (f.Forward.DstPort == port || f.Forward.SrcPort == port) {
			return true
		}
	}
	return false
}

// TestPrivilegedPacketsUntracked connects through untracked allows (no
// conntrack entry, and the endpoint's empty Ingress and Egress are not
// consulted), and checks that the failsafe ports stay open both ways
// under an untracked deny of everything.
func TestPrivilegedPacketsUntracked(t *testing.T) {
	testutil.Privileged(t)
	hl := newHostLab(t)
	x := hl.x
	for _, port := range []string{":7070", ":7071", ":2222"} {
		listen(t, hl.host, port)
	}
	listen(t, x.ns, ":2380")
	listen(t, x.ns, ":7072")
	at := func(port string) string { return net.JoinHostPort(x.hostV4, port) }
	ap := hl.applier(t)

	t.Run("allow", func(t *testing.T) {
		apply(t, ap, hl.ruleset(HostEndpoint{Iface: x.iface,
			UntrackedIngress: tierPath("allow-7070"), UntrackedEgress: tierPath("allow-7070")}))
		expect(t, x.ns, "", at("7070"))
		if tracked(t, hl.host, 7070) {
			t.Error("an untracked connection has a conntrack entry")
		}
		expectNot(t, x.ns, "", at("7071"))
		expect(t, x.ns, "", at("2222"))
		if !tracked(t, hl.host, 2222) {
			t.Error("a failsafe connection has no conntrack entry: the check above proves nothing")
		}
	})
	t.Run("failsafe under deny", func(t *testing.T) {
		apply(t, ap, hl.ruleset(HostEndpoint{Iface: x.iface,
			UntrackedIngress: tierPath("deny-all"), UntrackedEgress: tierPath("deny-all")}))
		expect(t, x.ns, "", at("2222"))
		expectNot(t, x.ns, "", at("7070"))
		expect(t, hl.host, "", net.JoinHostPort(x.v4, "2380"))
		before := denials(t, ap)
		expectNot(t, hl.host, "", net.JoinHostPort(x.v4, "7072"))
		if after := denials(t, ap); after <= before {
			t.Error("the untracked deny counted nothing")
		}
	})
}

// denials is what policy deny-all's egress rule counted.
func denials(t *testing.T, ap *Applier) uint64 {
	t.Helper()
	cs, err := ap.Counters(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cs {
		if c.Policy == "deny-all" && c.Direction == Egress && c.Rule == 0 {
			return c.Packets
		}
	}
	return 0
}
