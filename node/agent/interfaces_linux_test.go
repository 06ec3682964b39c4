package agent_test

import (
	"net/netip"
	"slices"
	"testing"

	"calico/internal/testutil"
	"calico/node/agent"

	"github.com/vishvananda/netlink"
)

// TestPrivilegedHostInterfaces: the host's interfaces with their
// addresses, from one dump, without loopback and workloads' interfaces.
func TestPrivilegedHostInterfaces(t *testing.T) {
	testutil.Privileged(t)
	ns := testutil.NewNetNS(t)
	var got map[string][]netip.Addr
	err := ns.Do(func() error {
		for _, pair := range [][2]string{{"eth7", "eth8"}, {"cali0123456789a", "peer9"}} {
			if err := netlink.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: pair[0]}, PeerName: pair[1]}); err != nil {
				return err
			}
			l, err := netlink.LinkByName(pair[0])
			if err != nil {
				return err
			}
			addr, _ := netlink.ParseAddr("10.9.0.1/24")
			if pair[0] != "eth7" {
				addr, _ = netlink.ParseAddr("10.9.1.1/24")
			}
			if err := netlink.AddrAdd(l, addr); err != nil {
				return err
			}
		}
		got = agent.HostInterfaces()
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(got["eth7"], netip.MustParseAddr("10.9.0.1")) {
		t.Errorf("eth7: %v (all: %v)", got["eth7"], got)
	}
	if _, ok := got["eth8"]; !ok {
		t.Errorf("eth8 (no address) missing: %v", got)
	}
	for name := range got {
		if name == "lo" || name == "cali0123456789a" {
			t.Errorf("%s listed: %v", name, got)
		}
	}
}
