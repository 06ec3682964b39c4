//go:build linux

package veth

import (
	"context"
	"net"
	"net/netip"
	"os"
	"testing"
	"time"

	"calico/internal/testutil"

	"github.com/vishvananda/netlink"
)

// TestPrivilegedWire wires a workload into a test "host" namespace that
// has an uplink with a default route (proxy ARP answers only then), routes
// the workload's addresses to its veth as the route driver would, and
// checks that TCP works both ways over IPv4 and IPv6.
func TestPrivilegedWire(t *testing.T) {
	testutil.Privileged(t)
	host := testutil.NewNetNS(t)
	wlName := "calico-test-wl-" + host.Name[len("calico-test-"):]
	addrs := []netip.Addr{netip.MustParseAddr("10.65.0.7"), netip.MustParseAddr("fd00:65::7")}
	err := host.Do(func() error {
		for _, sc := range []string{"ipv4/ip_forward", "ipv6/conf/all/forwarding"} {
			if err := WriteSysctl(sc, "1"); err != nil {
				return err
			}
		}
		if err := CreateNetNS(wlName); err != nil {
			return err
		}
		t.Cleanup(func() {
			if err := DeleteNetNS(wlName); err != nil {
				t.Errorf("DeleteNetNS: %v", err)
			}
			if _, err := os.Stat(NetNSPath(wlName)); !os.IsNotExist(err) {
				t.Errorf("%s still exists after DeleteNetNS", NetNSPath(wlName))
			}
		})
		if err := CreateNetNS(wlName); err == nil {
			t.Errorf("CreateNetNS of an existing name succeeded")
		}
		// An uplink with addresses and default routes.
		h, _ := netlink.NewHandle()
		defer h.Close()
		up := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "uplink"}, PeerName: "uplink-peer"}
		if err := h.LinkAdd(up); err != nil {
			return err
		}
		l, _ := h.LinkByName("uplink")
		h.AddrAdd(l, &netlink.Addr{IPNet: netipNet(netip.MustParsePrefix("10.99.0.1/24"))})
		h.AddrAdd(l, &netlink.Addr{IPNet: netipNet(netip.MustParsePrefix("fd99::1/64")), Flags: 0x02 /* NODAD */})
		h.LinkSetUp(l)
		if p, err := h.LinkByName("uplink-peer"); err == nil {
			h.LinkSetUp(p)
		}
		h.RouteAdd(&netlink.Route{LinkIndex: l.Attrs().Index, Gw: net.ParseIP("10.99.0.254")})
		h.RouteAdd(&netlink.Route{LinkIndex: l.Attrs().Index, Gw: net.ParseIP("fd99::fe")})

		mac, err := Add(Spec{NetNS: NetNSPath(wlName), HostIface: "calitest0", Iface: "eth0", Addrs: addrs})
		if err != nil {
			return err
		}
		if len(mac) != 6 {
			t.Errorf("workload MAC = %v", mac)
		}
		cali, err := h.LinkByName("calitest0")
		if err != nil {
			return err
		}
		if got := cali.Attrs().HardwareAddr.String(); got != "ee:ee:ee:ee:ee:ee" {
			t.Errorf("host side MAC = %s; want ee:ee:ee:ee:ee:ee", got)
		}
		if b, _ := os.ReadFile("/proc/sys/net/ipv4/conf/calitest0/proxy_arp"); string(b) != "1\n" {
			t.Errorf("proxy_arp = %q; want 1", b)
		}
		for _, a := range addrs {
			if err := h.RouteAdd(&netlink.Route{LinkIndex: cali.Attrs().Index, Dst: netipNet(netip.PrefixFrom(a, a.BitLen())), Scope: netlink.SCOPE_LINK}); err != nil {
				return err
			}
		}
		// A second Add of the same workload interface is refused and
		// leaves the first intact.
		if _, err := Add(Spec{NetNS: NetNSPath(wlName), HostIface: "calitest1", Iface: "eth0", Addrs: addrs}); err == nil {
			t.Errorf("a second eth0 in the same namespace was accepted")
		}
		if _, err := h.LinkByName("calitest1"); err == nil {
			t.Errorf("the refused Add left calitest1 behind")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	wl := testutil.OpenNetNS(t, wlName)
	for _, tc := range []struct {
		server, client *testutil.NetNS
		addr           string
	}{
		{host, wl, "10.99.0.1:7000"},    // workload -> host
		{host, wl, "[fd99::1]:7001"},    // workload -> host, IPv6
		{wl, host, "10.65.0.7:7002"},    // host -> workload
		{wl, host, "[fd00:65::7]:7003"}, // host -> workload, IPv6
	} {
		checkTCP(t, tc.server, tc.client, tc.addr)
	}
}

// checkTCP listens in one namespace and dials from the other.
func checkTCP(t *testing.T, server, client *testutil.NetNS, addr string) {
	t.Helper()
	var ln net.Listener
	if err := server.Do(func() (err error) { ln, err = net.Listen("tcp", addr); return err }); err != nil {
		t.Fatalf("listening on %s: %v", addr, err)
	}
	defer ln.Close()
	go func() {
		if c, err := ln.Accept(); err == nil {
			c.Write([]byte("ok"))
			c.Close()
		}
	}()
	err := client.Do(func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		c, err := (&net.Dialer{}).DialContext(ctx, "tcp", addr)
		if err != nil {
			return err
		}
		defer c.Close()
		_, err = c.Read(make([]byte, 2))
		return err
	})
	if err != nil {
		t.Errorf("TCP to %s from %s: %v", addr, client.Name, err)
	}
}

// TestPrivilegedHandOver: with no namespace, the pair stays in the host's
// namespace: the host side configured as always, the workload side down
// and bare, as a runtime that moves it (Docker) wants it; a stale pair of
// the same names is replaced, and Remove takes both sides.
func TestPrivilegedHandOver(t *testing.T) {
	testutil.Privileged(t)
	host := testutil.NewNetNS(t)
	err := host.Do(func() error {
		h, _ := netlink.NewHandle()
		defer h.Close()
		for range 2 { // the second finds the first's pair stale
			mac, err := Add(Spec{HostIface: "calitest0", Iface: "temptest0", MTU: 1400})
			if err != nil {
				return err
			}
			peer, err := h.LinkByName("temptest0")
			if err != nil {
				return err
			}
			if peer.Attrs().HardwareAddr.String() != mac.String() || peer.Attrs().Flags&net.FlagUp != 0 || peer.Attrs().MTU != 1400 {
				t.Errorf("workload side: MAC %s (Add said %s), flags %s, MTU %d", peer.Attrs().HardwareAddr, mac, peer.Attrs().Flags, peer.Attrs().MTU)
			}
			if addrs, _ := h.AddrList(peer, netlink.FAMILY_V4); len(addrs) != 0 {
				t.Errorf("workload side has addresses %v", addrs)
			}
			cali, err := h.LinkByName("calitest0")
			if err != nil {
				return err
			}
			if cali.Attrs().HardwareAddr.String() != HostMAC.String() || cali.Attrs().Flags&net.FlagUp == 0 {
				t.Errorf("host side: MAC %s, flags %s", cali.Attrs().HardwareAddr, cali.Attrs().Flags)
			}
		}
		if err := Remove("calitest0"); err != nil {
			return err
		}
		if Exists("calitest0") || Exists("temptest0") {
			t.Errorf("Remove left calitest0 %v, temptest0 %v", Exists("calitest0"), Exists("temptest0"))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
