package dhcp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"calico/internal/testutil"
	"calico/node/veth"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// clientScript configures what udhcpc (bound, renew) or dhclient -6
// (BOUND6, …) got, the Calico way: a /32 and the routes of option 121,
// a /128; and writes the client's environment to LEASE_DIR (dhclient
// gives its script no environment of its own).
const clientScript = `#!/bin/sh
PATH=/usr/sbin:/usr/bin:/sbin:/bin
case "$1$reason" in
bound|renew)
	ip addr add "$ip/${mask:-32}" dev "$interface" 2>/dev/null
	[ -n "$mtu" ] && ip link set dev "$interface" mtu "$mtu"
	set -- $staticroutes
	while [ $# -ge 2 ]; do
		if [ "$2" = 0.0.0.0 ]; then ip route replace "$1" dev "$interface" scope link
		else ip route replace "$1" via "$2" dev "$interface"; fi
		shift 2
	done
	env > "$LEASE_DIR/v4" ;;
BOUND6|RENEW6|REBIND6|REBOOT6)
	ip -6 addr add "$new_ip6_address/128" dev "$interface" nodad 2>/dev/null
	env > "$LEASE_DIR/v6" ;;
esac
exit 0
`

// TestPrivilegedClients runs real DHCP clients (busybox udhcpc, ISC
// dhclient -6) in a guest namespace behind a veth whose host end is
// attached as a VM's interface, against the server in the host
// namespace: the guest configures itself and reaches the host through
// its gateways.
func TestPrivilegedClients(t *testing.T) {
	testutil.Privileged(t)
	busybox, err := exec.LookPath("busybox")
	if err != nil {
		t.Skip("SKIP: needs busybox (udhcpc): apt-get install busybox-static")
	}
	host, guest := testutil.NewNetNS(t), testutil.NewNetNS(t)
	guestMAC := clientsLab(t, host, guest)
	leases := map[string]Lease{"vm-a": {Iface: "vm-a", Workload: "default/vm-a", MAC: guestMAC,
		IPv4: netip.MustParseAddr("10.65.7.70"), IPv6: netip.MustParseAddr("fd00:65::46"), Attached: true}}
	s := New(Config{Leases: func() map[string]Lease { return leases }, DNS: []netip.Addr{netip.MustParseAddr("10.0.0.53")}, Domain: "lab.example", Name: "host", Log: slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))})
	s.iface = func(i int, name string) (in ifaceInfo, err error) {
		err = host.Do(func() error { in, err = lookupIface(i, name); return err })
		return in, err
	}
	var c conn
	if err := host.Do(func() (err error) { c, err = openSockets(); return err }); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- s.serve(ctx, c) }()
	t.Cleanup(func() { cancel(); <-done })

	dir := t.TempDir()
	script := filepath.Join(dir, "lease.sh")
	os.WriteFile(script, []byte(strings.ReplaceAll(clientScript, "$LEASE_DIR", dir)), 0o755)
	run := func(args ...string) (string, error) {
		out, err := exec.Command("ip", append([]string{"netns", "exec", guest.Name}, args...)...).CombinedOutput()
		return string(out), err
	}
	if out, err := run(busybox, "udhcpc", "-i", "eth0", "-n", "-q", "-f", "-t", "5", "-T", "1", "-s", script); err != nil {
		t.Fatalf("udhcpc: %v\n%s", err, out)
	}
	lease, _ := os.ReadFile(filepath.Join(dir, "v4"))
	for _, want := range []string{"ip=10.65.7.70", "mask=32", "staticroutes=169.254.1.1/32 0.0.0.0 0.0.0.0/0 169.254.1.1", "mtu=1400", "dns=10.0.0.53", "domain=lab.example"} {
		if !strings.Contains(string(lease), want+"\n") {
			t.Errorf("udhcpc's lease lacks %s:\n%s", want, lease)
		}
	}
	if out, err := run("ping", "-c", "1", "-W", "2", "10.99.0.1"); err != nil {
		t.Errorf("the guest does not reach the host over IPv4 after DHCP: %v\n%s", err, out)
	}

	t.Run("dhclient -6", func(t *testing.T) { dhclient6(t, run, dir, script) })
}

// clientsLab makes, in host, an uplink with addresses and default routes
// (proxy ARP answers only then) and a veth vm-a, attached as a VM's
// interface, whose other end is eth0 in guest, routed to 10.65.7.70 and
// fd00:65::46; it returns the guest's MAC.
func clientsLab(t *testing.T, host, guest *testutil.NetNS) net.HardwareAddr {
	var mac net.HardwareAddr
	err := host.Do(func() error {
		for _, sc := range []string{"ipv4/ip_forward", "ipv6/conf/all/forwarding", "ipv6/conf/default/accept_dad"} {
			val := "1"
			if strings.HasSuffix(sc, "dad") {
				val = "0"
			}
			if err := veth.WriteSysctl(sc, val); err != nil {
				return err
			}
		}
		h, err := netlink.NewHandle()
		if err != nil {
			return err
		}
		defer h.Close()
		if err := h.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "uplink"}, PeerName: "uplink-peer"}); err != nil {
			return err
		}
		up, _ := h.LinkByName("uplink")
		peer, _ := h.LinkByName("uplink-peer")
		for _, a := range []string{"10.99.0.1/24", "fd99::1/64"} {
			na, _ := netlink.ParseAddr(a)
			na.Flags = unix.IFA_F_NODAD
			h.AddrAdd(up, na)
		}
		h.LinkSetUp(up)
		h.LinkSetUp(peer)
		h.RouteAdd(&netlink.Route{LinkIndex: up.Attrs().Index, Gw: net.ParseIP("10.99.0.254")})
		h.RouteAdd(&netlink.Route{LinkIndex: up.Attrs().Index, Gw: net.ParseIP("fd99::254")})
		if err := h.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "vm-a"}, PeerName: "eth0", PeerNamespace: netlink.NsFd(guest.Handle())}); err != nil {
			return err
		}
		if err := veth.Attach("vm-a", 1400); err != nil {
			return err
		}
		l, _ := h.LinkByName("vm-a")
		for _, dst := range []string{"10.65.7.70/32", "fd00:65::46/128"} {
			_, n, _ := net.ParseCIDR(dst)
			if err := h.RouteAdd(&netlink.Route{LinkIndex: l.Attrs().Index, Dst: n, Scope: netlink.SCOPE_LINK}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	err = guest.Do(func() error {
		h, err := netlink.NewHandle()
		if err != nil {
			return err
		}
		defer h.Close()
		l, err := h.LinkByName("eth0")
		if err != nil {
			return err
		}
		mac = l.Attrs().HardwareAddr
		for _, name := range []string{"lo", "eth0"} {
			l, _ := h.LinkByName(name)
			h.LinkSetUp(l)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return mac
}

// dhclient6 runs ISC dhclient -6 in the guest (run runs a command there)
// and checks the address it configured, the default route from the
// router advertisement and that the guest reaches the host.
func dhclient6(t *testing.T, run func(...string) (string, error), dir, script string) {
	dhclient, err := exec.LookPath("dhclient")
	if err != nil {
		t.Skip("SKIP: needs dhclient (DHCPv6): apt-get install isc-dhcp-client")
	}
	// dhclient binds to the link-local address: wait for its DAD.
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		out, _ := run("ip", "-6", "addr", "show", "dev", "eth0", "scope", "link")
		if strings.Contains(out, "fe80::") && !strings.Contains(out, "tentative") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the guest's link-local address: %q", out)
		}
	}
	out, err := run(dhclient, "-6", "-1", "-v", "-sf", script, "-pf", filepath.Join(dir, "pid"), "-lf", filepath.Join(dir, "leases"), "eth0")
	if err != nil {
		t.Fatalf("dhclient -6: %v\n%s", err, out)
	}
	if lease, _ := os.ReadFile(filepath.Join(dir, "v6")); !strings.Contains(string(lease), "new_ip6_address=fd00:65::46\n") {
		t.Errorf("dhclient's lease:\n%s", lease)
	}
	// The router advertisement made the host the default router.
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		out, _ := run("ip", "-6", "route", "show", "default")
		if strings.Contains(out, "via fe80::") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no IPv6 default route from the router advertisement: %q", out)
		}
	}
	if out, err := run("ping", "-6", "-c", "1", "-W", "2", "fd99::1"); err != nil {
		t.Errorf("the guest does not reach the host over IPv6: %v\n%s", err, out)
	}
}

// TestSocketsCloseAtOnce closes the sockets from many goroutines at
// once, as the server does when its context ends while it is stopping
// (a double close of the done channel once panicked a stopping node):
// every call returns, none panics, and reads see the close. Pipes stand
// in for the packet sockets.
func TestSocketsCloseAtOnce(t *testing.T) {
	for range 2000 {
		r, w, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		c := &sockets{v4: r, v6: w, frames: make(chan frameIn), done: make(chan struct{})}
		start := make(chan struct{})
		var wg sync.WaitGroup
		for range 4 {
			wg.Go(func() { <-start; c.close() })
		}
		close(start)
		wg.Wait()
		if _, _, err := c.read(make([]byte, 64)); !errors.Is(err, net.ErrClosed) {
			t.Fatalf("a read after close: %v, want net.ErrClosed", err)
		}
	}
}

// linkLocalLab makes n interfaces d0… in ns (bridges: this kernel has no
// dummy module), up, each with the link-local fe80::1:i and a global
// address (d0 has no link-local), and returns their indexes.
func linkLocalLab(t testing.TB, ns *testutil.NetNS, n int) []int {
	t.Helper()
	var idx []int
	err := ns.Do(func() error {
		// No link-local address of the kernel's own making: only ours.
		if err := os.WriteFile("/proc/sys/net/ipv6/conf/default/addr_gen_mode", []byte("1"), 0o644); err != nil {
			return err
		}
		for i := range n {
			d := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: "d" + strconv.Itoa(i)}}
			if err := netlink.LinkAdd(d); err != nil {
				return err
			}
			if err := netlink.LinkSetUp(d); err != nil {
				return err
			}
			addrs := []string{fmt.Sprintf("2001:db8::%x/64", i+1)}
			if i > 0 {
				addrs = append(addrs, fmt.Sprintf("fe80::1:%x/64", i))
			}
			for _, a := range addrs {
				ad, _ := netlink.ParseAddr(a)
				ad.Flags = unix.IFA_F_NODAD
				if err := netlink.AddrAdd(d, ad); err != nil {
					return fmt.Errorf("%s on %s: %w", a, d.Name, err)
				}
			}
			idx = append(idx, d.Attrs().Index)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return idx
}

// TestPrivilegedLinkLocal: the link-local address is the asked
// interface's, among others with theirs, and none for one without.
func TestPrivilegedLinkLocal(t *testing.T) {
	testutil.Privileged(t)
	ns := testutil.NewNetNS(t)
	idx := linkLocalLab(t, ns, 4)
	for i, index := range idx {
		var got netip.Addr
		if err := ns.Do(func() (err error) { got, err = linkLocal(index); return err }); err != nil {
			t.Fatal(err)
		}
		want := netip.Addr{}
		if i > 0 {
			want = netip.MustParseAddr(fmt.Sprintf("fe80::1:%x", i))
		}
		if got != want {
			t.Errorf("d%d's link-local: got %v, want %v", i, got, want)
		}
	}
	var in ifaceInfo
	if err := ns.Do(func() (err error) { in, err = lookupIface(idx[2], ""); return err }); err != nil {
		t.Fatal(err)
	}
	if in.Name != "d2" || in.LinkLocal != netip.MustParseAddr("fe80::1:2") {
		t.Errorf("lookupIface(d2) = %+v", in)
	}
}

// BenchmarkPrivilegedLinkLocal looks up one interface's link-local
// address on a host of 1,000 interfaces: it must not cost a listing of
// them all.
func BenchmarkPrivilegedLinkLocal(b *testing.B) {
	testutil.Privileged(b)
	ns := testutil.NewNetNS(b)
	idx := linkLocalLab(b, ns, 1000)
	b.ResetTimer()
	err := ns.Do(func() error {
		for i := 0; b.Loop(); i++ {
			if _, err := linkLocal(idx[i%len(idx)]); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
}
