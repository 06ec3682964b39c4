//go:build linux

package veth

import (
	"errors"
	"net/netip"
	"os"
	"strings"
	"testing"

	"calico/internal/testutil"

	"github.com/vishvananda/netlink"
)

// TestPrivilegedAttach checks Inspect's refusals (the host's own
// interfaces, the loopback, a bridge port, a bridge, a missing one) and
// that Attach gives a tap the host side's treatment and Detach takes
// proxy ARP back, leaving the tap.
func TestPrivilegedAttach(t *testing.T) {
	testutil.Privileged(t)
	host := testutil.NewNetNS(t)
	attachLab(t, host)
	for name, want := range map[string]string{
		"uplink": "has the host's address 10.99.0.1/24", "gwonly": "carries the host's default route",
		"lo": "loopback", "br0": "is a bridge", "vnet4": "port of another interface", "vnet9": "does not exist",
	} {
		err := host.Do(func() error { _, err := Inspect(name); return err })
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Inspect(%s) = %v, want an error saying %q", name, err, want)
		}
		if name == "vnet9" && !errors.Is(err, ErrNoLink) {
			t.Errorf("Inspect(vnet9) = %v, want ErrNoLink", err)
		}
	}
	if err := host.Do(func() error { return checkAttach(t) }); err != nil {
		t.Fatal(err)
	}
}

// attachLab makes, in host, an uplink with an address, an interface with
// a default route and nothing else, a bridge, a tap vnet3 and a tap vnet4
// in the bridge.
func attachLab(t *testing.T, host *testutil.NetNS) {
	err := host.Do(func() error {
		h, err := netlink.NewHandle()
		if err != nil {
			return err
		}
		defer h.Close()
		for _, l := range []netlink.Link{
			&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "uplink"}, PeerName: "uplink-peer"},
			&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "gwonly"}, PeerName: "gwonly-peer"},
			&netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: "br0"}},
			&netlink.Tuntap{LinkAttrs: netlink.LinkAttrs{Name: "vnet3"}, Mode: netlink.TUNTAP_MODE_TAP, Flags: netlink.TUNTAP_DEFAULTS},
			&netlink.Tuntap{LinkAttrs: netlink.LinkAttrs{Name: "vnet4"}, Mode: netlink.TUNTAP_MODE_TAP, Flags: netlink.TUNTAP_DEFAULTS},
		} {
			if err := h.LinkAdd(l); err != nil {
				return err
			}
		}
		up, _ := h.LinkByName("uplink")
		h.AddrAdd(up, &netlink.Addr{IPNet: netipNet(netip.MustParsePrefix("10.99.0.1/24"))})
		for _, name := range []string{"uplink", "uplink-peer", "gwonly", "gwonly-peer"} {
			l, _ := h.LinkByName(name)
			h.LinkSetUp(l)
		}
		gw, _ := h.LinkByName("gwonly")
		if err := h.RouteAdd(&netlink.Route{LinkIndex: gw.Attrs().Index, Dst: netipNet(netip.MustParsePrefix("::/0"))}); err != nil {
			return err
		}
		br, _ := h.LinkByName("br0")
		v4, _ := h.LinkByName("vnet4")
		return h.LinkSetMaster(v4, br)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// checkAttach attaches vnet3, checks it, and detaches it.
func checkAttach(t *testing.T) error {
	l, err := Inspect("vnet3")
	if err != nil {
		return err
	}
	if l.Kind != "tuntap" || !l.Ethernet || l.Up {
		t.Errorf("Inspect(vnet3) = %+v", l)
	}
	if err := Attach("vnet3", 1400); err != nil {
		return err
	}
	if err := Attach("vnet3", 1400); err != nil { // again: no change
		return err
	}
	if l, _ = Inspect("vnet3"); !l.Up || l.MTU != 1400 {
		t.Errorf("after Attach: %+v", l)
	}
	for path, want := range map[string]string{"ipv4/conf/vnet3/proxy_arp": "1", "ipv4/conf/vnet3/forwarding": "1", "ipv6/conf/vnet3/accept_ra": "0"} {
		if b, _ := os.ReadFile("/proc/sys/net/" + path); strings.TrimSpace(string(b)) != want {
			t.Errorf("%s = %q after Attach, want %s", path, b, want)
		}
	}
	if err := Detach("vnet3"); err != nil {
		return err
	}
	if b, _ := os.ReadFile("/proc/sys/net/ipv4/conf/vnet3/proxy_arp"); strings.TrimSpace(string(b)) != "0" {
		t.Errorf("proxy_arp = %q after Detach", b)
	}
	if !Exists("vnet3") {
		t.Errorf("Detach removed the tap")
	}
	return Detach("vnet9") // missing: no error
}
