package nft

import (
	"context"
	"net"
	"testing"

	"calico/internal/testutil"

	"github.com/vishvananda/netlink"
)

// TestPrivilegedAttached checks, with packets, an endpoint whose interface
// is not named cali… (a VM's tap, here a veth named vm-a) and the MAC
// check: traffic through vm-a is policed like a cali… interface's, and a
// frame from another source MAC is dropped.
func TestPrivilegedAttached(t *testing.T) {
	testutil.Privileged(t)
	ctx := context.Background()
	host, a, b, macA := attachedLab(t)
	listen(t, b, ":8080")
	listen(t, a, ":8080")

	rs := Ruleset{
		Workloads: []Endpoint{
			{Iface: "vm-a", Addrs: addrs("10.65.1.2"), MAC: macA, Ingress: profilePath("web"), Egress: profilePath("open")},
			{Iface: "caliB", Addrs: addrs("10.65.2.2"), Ingress: profilePath("open"), Egress: profilePath("open")},
		},
		Policies: []Policy{
			{Name: "open", Ingress: []Rule{{Action: Allow}}, Egress: []Rule{{Action: Allow}}},
			{Name: "web", Ingress: []Rule{{Action: Allow, Protocol: tcp, Dst: Match{Ports: []PortRange{{9090, 9090}}}}}},
		},
	}
	ap := New(testLogger(t), WithNetNS(int(host.Handle())))
	t.Cleanup(func() { ap.Close() })
	if err := ap.Apply(ctx, rs); err != nil {
		t.Fatal(err)
	}
	// The kernel holds what was written: a fresh Applier reads it back
	// and changes nothing.
	again := New(testLogger(t), WithNetNS(int(host.Handle())))
	t.Cleanup(func() { again.Close() })
	if err := again.Apply(ctx, rs); err != nil {
		t.Fatal(err)
	}
	if again.last.changed() {
		t.Errorf("a read-back of the attached sets found differences: %+v", again.last)
	}

	t.Run("egress through the attached interface", func(t *testing.T) {
		expect(t, a, "", "10.65.2.2:8080")
	})
	t.Run("ingress policy at the attached interface", func(t *testing.T) {
		expectNot(t, b, "", "10.65.1.2:8080")
	})
	t.Run("another source MAC", func(t *testing.T) {
		if err := a.Do(func() error {
			h, err := netlink.NewHandle()
			if err != nil {
				return err
			}
			defer h.Close()
			l, err := h.LinkByName("eth0")
			if err != nil {
				return err
			}
			return h.LinkSetHardwareAddr(l, net.HardwareAddr{0x52, 0x54, 0, 0xde, 0xad, 1})
		}); err != nil {
			t.Fatal(err)
		}
		// Without the MAC in the ruleset, frames from the new MAC pass
		// (and the host learns it); with it, they are dropped.
		noMAC := rs
		noMAC.Workloads = []Endpoint{rs.Workloads[0], rs.Workloads[1]}
		noMAC.Workloads[0].MAC = nil
		if err := ap.Apply(ctx, noMAC); err != nil {
			t.Fatal(err)
		}
		expect(t, a, "", "10.65.2.2:8080")
		if err := ap.Apply(ctx, rs); err != nil {
			t.Fatal(err)
		}
		expectNot(t, a, "", "10.65.2.2:8080")
	})
}

// attachedLab is a host namespace with two workload namespaces behind
// veths: vm-a (named as a VM's tap might be) and caliB. It returns the
// MAC of vm-a's workload side.
func attachedLab(t *testing.T) (host, a, b *testutil.NetNS, macA net.HardwareAddr) {
	host, a, b = testutil.NewNetNS(t), testutil.NewNetNS(t), testutil.NewNetNS(t)
	for _, ns := range []*testutil.NetNS{host, a, b} {
		if err := ns.Do(func() error { return sysctl("net/ipv6/conf/default/accept_dad", "0") }); err != nil {
			t.Fatal(err)
		}
	}
	err := host.Do(func() error {
		if err := sysctl("net/ipv4/ip_forward", "1"); err != nil {
			return err
		}
		h, err := netlink.NewHandle()
		if err != nil {
			return err
		}
		defer h.Close()
		for _, w := range []struct {
			name, addr string
			ns         *testutil.NetNS
		}{{"vm-a", "10.65.1.1/24", a}, {"caliB", "10.65.2.1/24", b}} {
			veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: w.name}, PeerName: "eth0", PeerNamespace: netlink.NsFd(w.ns.Handle())}
			if err := h.LinkAdd(veth); err != nil {
				return err
			}
			if err := configure(h, w.name, []string{w.addr}, "", ""); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range []struct {
		ns       *testutil.NetNS
		addr, gw string
		mac      *net.HardwareAddr
	}{{a, "10.65.1.2/24", "10.65.1.1", &macA}, {b, "10.65.2.2/24", "10.65.2.1", nil}} {
		if err := w.ns.Do(func() error {
			h, err := netlink.NewHandle()
			if err != nil {
				return err
			}
			defer h.Close()
			if err := configure(h, "eth0", []string{w.addr}, w.gw, ""); err != nil {
				return err
			}
			l, err := h.LinkByName("eth0")
			if err == nil && w.mac != nil {
				*w.mac = l.Attrs().HardwareAddr
			}
			return err
		}); err != nil {
			t.Fatal(err)
		}
	}
	return host, a, b, macA
}
