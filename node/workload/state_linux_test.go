//go:build linux

package workload

import (
	"testing"
	"time"

	"github.com/vishvananda/netlink"

	"calico/internal/testutil"
	"calico/store"
)

// TestPrivilegedStates: a local workload is up, down (its interface
// down), without a carrier (its veth's peer down) or absent, as the
// kernel of the node's namespace says, one question per interface.
func TestPrivilegedStates(t *testing.T) {
	testutil.Privileged(t)
	ns := testutil.NewNetNS(t)
	wep := func(iface string) *store.WorkloadEndpoint {
		w := store.KindWorkloadEndpoint.New().(*store.WorkloadEndpoint)
		w.Metadata.Namespace = "default"
		w.Spec = store.WorkloadEndpointSpec{Node: "n1", Orchestrator: "calico", Workload: iface, Endpoint: "eth0", InterfaceName: iface}
		return w
	}
	err := ns.Do(func() error {
		for _, v := range []struct{ name, peer string }{{"caliup", "peerup"}, {"calidown", "peerdown"}, {"calinocarrier", "peernc"}} {
			if err := netlink.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: v.name}, PeerName: v.peer}); err != nil {
				return err
			}
		}
		for _, name := range []string{"caliup", "peerup", "calinocarrier"} {
			l, err := netlink.LinkByName(name)
			if err != nil {
				return err
			}
			if err := netlink.LinkSetUp(l); err != nil {
				return err
			}
		}
		ls := openLinks()
		defer ls.close()
		// The kernel marks a veth's carrier on a moment after both ends
		// are up (linkwatch): wait for it.
		for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
			if state, _ := stateOf(wep("caliup"), ls); state == "up" {
				break
			}
		}
		for _, c := range []struct{ iface, state, why string }{
			{"caliup", "up", ""},
			{"calidown", "down", "interface calidown is down"},
			{"calinocarrier", "down", "interface calinocarrier has no carrier (nothing on its other side)"},
			{"caligone", "down", "interface caligone is absent"},
			{"cali-name-too-long-for-any-link", "down", "interface cali-name-too-long-for-any-link is absent"},
		} {
			if state, why := stateOf(wep(c.iface), ls); state != c.state || why != c.why {
				t.Errorf("%s: %s (%s); want %s (%s)", c.iface, state, why, c.state, c.why)
			}
		}
		down := Down("n1", []*store.WorkloadEndpoint{wep("caliup"), wep("calidown"), wep("caligone")})
		if want := []string{"default/calidown: interface calidown is down", "default/caligone: interface caligone is absent"}; len(down) != 2 || down[0] != want[0] || down[1] != want[1] {
			t.Errorf("Down = %q; want %q", down, want)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
