package conntrack

import (
	"log/slog"
	"net"
	"net/netip"
	"testing"

	"calico/internal/testutil"
	"calico/nft"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// TestPrivilegedForget: a tracked UDP flow to an address is forgotten,
// and one to another address is kept.
func TestPrivilegedForget(t *testing.T) {
	testutil.Privileged(t)
	ns := testutil.NewNetNS(t)
	// Connection tracking runs in a namespace once a rule uses it: the
	// firewall's table has such rules.
	fw := nft.New(slog.New(slog.DiscardHandler), nft.WithNetNS(int(ns.Handle())))
	if err := fw.Apply(t.Context(), nft.Ruleset{}); err != nil {
		t.Fatal(err)
	}
	err := ns.Do(func() error {
		lo, err := netlink.LinkByName("lo")
		if err != nil {
			return err
		}
		netlink.LinkSetUp(lo)
		for _, a := range []string{"10.65.0.1/32", "10.65.0.2/32"} {
			addr, _ := netlink.ParseAddr(a)
			if err := netlink.AddrAdd(lo, addr); err != nil {
				return err
			}
		}
		for _, to := range []string{"10.65.0.1:9", "10.65.0.2:9"} {
			c, err := net.Dial("udp", to)
			if err != nil {
				return err
			}
			c.Write([]byte("x"))
			c.Close()
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	flows := func() (n1, n2 int) {
		ns.Do(func() error {
			fs, err := netlink.ConntrackTableList(netlink.ConntrackTable, unix.AF_INET)
			if err != nil {
				return err
			}
			for _, f := range fs {
				switch f.Forward.DstIP.String() {
				case "10.65.0.1":
					n1++
				case "10.65.0.2":
					n2++
				}
			}
			return nil
		})
		return
	}
	if n1, n2 := flows(); n1 == 0 || n2 == 0 {
		t.Skipf("SKIP: the kernel tracks no connection in a fresh namespace without a ct rule (%d, %d)", n1, n2)
	}
	if err := ns.Do(func() error { return Forget([]netip.Addr{netip.MustParseAddr("10.65.0.1")}) }); err != nil {
		t.Fatal(err)
	}
	if n1, n2 := flows(); n1 != 0 || n2 == 0 {
		t.Errorf("after Forget(10.65.0.1): %d flows to it, %d to 10.65.0.2; want 0 and the other kept", n1, n2)
	}

	// A Table keeps the socket its first use opened, in that thread's
	// namespace: used again from this goroutine (the machine's own
	// namespace), it still forgets in the test's.
	var tbl Table
	defer tbl.Close()
	if err := ns.Do(func() error { return tbl.Forget([]netip.Addr{netip.MustParseAddr("10.65.0.9")}) }); err != nil {
		t.Fatal(err)
	}
	if err := tbl.Forget([]netip.Addr{netip.MustParseAddr("10.65.0.2")}); err != nil {
		t.Fatal(err)
	}
	if _, n2 := flows(); n2 != 0 {
		t.Errorf("after the Table forgot 10.65.0.2: %d flows to it", n2)
	}
}
