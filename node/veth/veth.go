// Package veth wires a workload into the host the Calico way: a veth pair
// created with its peer directly inside the workload's network namespace,
// the host side named cali… with MAC ee:ee:ee:ee:ee:ee and proxy ARP, and
// on the workload side its addresses as /32 and /128 with default routes
// via 169.254.1.1 and the host side's IPv6 link-local address. It also
// makes and removes named network namespaces, and gives an interface that
// something else made (a VM's tap) the host side's treatment without
// owning it (attach.go). The host's /32 and /128
// routes towards the workload belong to the route driver, not to this
// package.
//
// Every function that touches the host side runs in the network namespace
// of the calling thread; callers in the node process are always there.
package veth

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"slices"
	"strings"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

var (
	// HostMAC is the MAC address of every host-side interface.
	HostMAC = net.HardwareAddr{0xee, 0xee, 0xee, 0xee, 0xee, 0xee}
	// GatewayV4 is the workload's IPv4 next hop, answered by proxy ARP.
	GatewayV4 = netip.MustParseAddr("169.254.1.1")
	// GatewayV6 is the host side's link-local address, derived from
	// HostMAC; it is the workload's IPv6 next hop.
	GatewayV6 = netip.MustParseAddr("fe80::ecee:eeff:feee:eeee")
)

// ErrIfaceExists is an Add into a namespace that has an interface of
// the name asked for already.
var ErrIfaceExists = errors.New("the interface exists already")

// Spec is one workload interface to wire.
type Spec struct {
	// NetNS is the path of the workload's network namespace; "" leaves
	// the workload side in the host's namespace, down and without
	// addresses, for a runtime that moves it into the workload's
	// namespace and configures it itself (Docker's network drivers hand
	// the interface over so).
	NetNS string
	// HostIface is the host side's name (cali…), Iface the name inside
	// the namespace (eth0), or the workload side's name in the host's
	// namespace until the runtime moves it.
	HostIface, Iface string
	// Addrs are the workload's addresses.
	Addrs []netip.Addr
	// MTU of both ends; 0 leaves the kernel's default.
	MTU int
}

// Add creates and configures the veth pair. On failure it removes what it
// made, so nothing is left half-wired.
func Add(s Spec) (mac net.HardwareAddr, err error) {
	if s.NetNS == "" {
		return handOver(s)
	}
	ns, err := netns.GetFromPath(s.NetNS)
	if err != nil {
		return nil, fmt.Errorf("opening network namespace %s: %w", s.NetNS, err)
	}
	defer ns.Close()
	host, err := netlink.NewHandle()
	if err != nil {
		return nil, err
	}
	defer host.Close()
	wl, err := netlink.NewHandleAt(ns)
	if err != nil {
		return nil, fmt.Errorf("netlink in %s: %w", s.NetNS, err)
	}
	defer wl.Close()

	if _, err := wl.LinkByName(s.Iface); err == nil {
		return nil, fmt.Errorf("namespace %s already has an interface %s: %w", s.NetNS, s.Iface, ErrIfaceExists)
	}
	// A stale host side of that name (a crash between add and record)
	// is ours by its name: remove it first, as Calico's CNI plugin does.
	if old, err := host.LinkByName(s.HostIface); err == nil {
		if err := host.LinkDel(old); err != nil {
			return nil, fmt.Errorf("removing stale %s: %w", s.HostIface, err)
		}
	}
	link := &netlink.Veth{
		LinkAttrs:     netlink.LinkAttrs{Name: s.HostIface, HardwareAddr: HostMAC, MTU: s.MTU},
		PeerName:      s.Iface,
		PeerNamespace: netlink.NsFd(ns),
	}
	if err := host.LinkAdd(link); err != nil {
		return nil, fmt.Errorf("creating veth %s: %w", s.HostIface, err)
	}
	defer func() {
		if err != nil {
			if l, lerr := host.LinkByName(s.HostIface); lerr == nil {
				host.LinkDel(l)
			}
		}
	}()
	if err := configureHostSide(host, s.HostIface); err != nil {
		return nil, err
	}
	mac, err = configureWorkloadSide(wl, s)
	if err != nil {
		return nil, err
	}
	return mac, nil
}

// handOver creates the veth pair with both sides in the host's
// namespace: the host side configured as Add configures it, the workload
// side down and bare, for the runtime to move and configure. It returns
// the workload side's MAC.
func handOver(s Spec) (mac net.HardwareAddr, err error) {
	host, err := netlink.NewHandle()
	if err != nil {
		return nil, err
	}
	defer host.Close()
	// Stale interfaces of these names are ours by their names (a crash
	// between add and record, or a runtime that handed the workload side
	// back): remove them first.
	for _, name := range []string{s.HostIface, s.Iface} {
		if old, err := host.LinkByName(name); err == nil {
			if err := host.LinkDel(old); err != nil {
				return nil, fmt.Errorf("removing stale %s: %w", name, err)
			}
		}
	}
	link := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: s.HostIface, HardwareAddr: HostMAC, MTU: s.MTU}, PeerName: s.Iface}
	if err := host.LinkAdd(link); err != nil {
		return nil, fmt.Errorf("creating veth %s: %w", s.HostIface, err)
	}
	defer func() {
		if err != nil {
			if l, lerr := host.LinkByName(s.HostIface); lerr == nil {
				host.LinkDel(l)
			}
		}
	}()
	if err := configureHostSide(host, s.HostIface); err != nil {
		return nil, err
	}
	peer, err := host.LinkByName(s.Iface)
	if err != nil {
		return nil, fmt.Errorf("finding %s: %w", s.Iface, err)
	}
	return peer.Attrs().HardwareAddr, nil
}

func configureHostSide(h *netlink.Handle, name string) error {
	// Before the link comes up, so its link-local address skips DAD and
	// is usable as the workload's gateway at once.
	if err := hostSysctls(name); err != nil {
		return err
	}
	link, err := h.LinkByName(name)
	if err != nil {
		return fmt.Errorf("finding %s: %w", name, err)
	}
	// The kernel does not always honour the MAC given at creation.
	if link.Attrs().HardwareAddr.String() != HostMAC.String() {
		if err := h.LinkSetHardwareAddr(link, HostMAC); err != nil {
			return fmt.Errorf("setting the MAC of %s: %w", name, err)
		}
	}
	if err := h.LinkSetUp(link); err != nil {
		return fmt.Errorf("bringing %s up: %w", name, err)
	}
	return nil
}

func configureWorkloadSide(h *netlink.Handle, s Spec) (net.HardwareAddr, error) {
	if lo, err := h.LinkByName("lo"); err == nil {
		h.LinkSetUp(lo)
	}
	link, err := h.LinkByName(s.Iface)
	if err != nil {
		return nil, fmt.Errorf("finding %s in %s: %w", s.Iface, s.NetNS, err)
	}
	var has4, has6 bool
	for _, a := range s.Addrs {
		addr := &netlink.Addr{IPNet: netipNet(netip.PrefixFrom(a, a.BitLen()))}
		if a.Is6() {
			addr.Flags = unix.IFA_F_NODAD
			has6 = true
		} else {
			has4 = true
		}
		if err := h.AddrAdd(link, addr); err != nil {
			return nil, fmt.Errorf("adding %s to %s: %w", a, s.Iface, err)
		}
	}
	if err := h.LinkSetUp(link); err != nil {
		return nil, fmt.Errorf("bringing %s up: %w", s.Iface, err)
	}
	idx := link.Attrs().Index
	var routes []*netlink.Route
	if has4 {
		routes = append(routes,
			&netlink.Route{LinkIndex: idx, Dst: netipNet(netip.PrefixFrom(GatewayV4, 32)), Scope: netlink.SCOPE_LINK},
			&netlink.Route{LinkIndex: idx, Dst: netipNet(netip.MustParsePrefix("0.0.0.0/0")), Gw: GatewayV4.AsSlice()})
	}
	if has6 {
		routes = append(routes, &netlink.Route{LinkIndex: idx, Dst: netipNet(netip.MustParsePrefix("::/0")), Gw: GatewayV6.AsSlice()})
	}
	for _, r := range routes {
		if err := h.RouteAdd(r); err != nil {
			return nil, fmt.Errorf("adding route %s in %s: %w", r.Dst, s.NetNS, err)
		}
	}
	return link.Attrs().HardwareAddr, nil
}

// hostSysctls sets what every host side of a workload interface has:
// proxy ARP without delay, forwarding, no router advertisements accepted
// and no duplicate address detection.
func hostSysctls(name string) error {
	for _, sc := range []struct{ path, val string }{
		{"ipv4/conf/" + name + "/proxy_arp", "1"},
		{"ipv4/neigh/" + name + "/proxy_delay", "0"},
		{"ipv4/conf/" + name + "/forwarding", "1"},
		{"ipv6/conf/" + name + "/accept_ra", "0"},
		{"ipv6/conf/" + name + "/accept_dad", "0"},
		{"ipv6/conf/" + name + "/disable_ipv6", "0"},
		{"ipv6/conf/" + name + "/forwarding", "1"},
	} {
		if err := WriteSysctl(sc.path, sc.val); err != nil && !(errors.Is(err, os.ErrNotExist) && strings.HasPrefix(sc.path, "ipv6/")) {
			return err
		}
	}
	return nil
}

// Remove deletes the host side of a veth pair, which takes the workload
// side with it. A missing interface is not an error.
func Remove(hostIface string) error {
	h, err := netlink.NewHandle()
	if err != nil {
		return err
	}
	defer h.Close()
	link, err := find(h, hostIface)
	if link == nil {
		return err
	}
	return del(h, link)
}

// RemoveLater sets the host's interface down now, so that nothing passes
// it from then on (about 2 ms; deleting a veth pair takes the kernel
// 20-30 ms), and returns the rest of Remove, to be called once, from any
// goroutine: it works in the calling thread's network namespace.
func RemoveLater(hostIface string) (func() error, error) {
	h, err := netlink.NewHandle()
	if err != nil {
		return nil, err
	}
	link, err := find(h, hostIface)
	if link == nil {
		h.Close()
		return func() error { return nil }, err
	}
	if err := h.LinkSetDown(link); err != nil && !errors.Is(err, unix.ENODEV) {
		h.Close()
		return nil, fmt.Errorf("setting %s down: %w", hostIface, err)
	}
	return func() error {
		defer h.Close()
		return del(h, link)
	}, nil
}

// find looks hostIface up: nil and no error when there is none.
func find(h *netlink.Handle, hostIface string) (netlink.Link, error) {
	link, err := h.LinkByName(hostIface)
	var notFound netlink.LinkNotFoundError
	if errors.As(err, &notFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("finding %s: %w", hostIface, err)
	}
	return link, nil
}

func del(h *netlink.Handle, link netlink.Link) error {
	if err := h.LinkDel(link); err != nil && !errors.Is(err, unix.ENODEV) {
		// ENODEV: gone meanwhile, with its namespace (a runtime deletes
		// the container's right after a CNI DEL).
		return fmt.Errorf("deleting %s: %w", link.Attrs().Name, err)
	}
	return nil
}

// Exists reports whether the host has an interface of that name.
func Exists(hostIface string) bool {
	_, err := net.InterfaceByName(hostIface)
	return err == nil
}

// WriteSysctl writes a value under /proc/sys/net, in the network
// namespace of the calling thread.
func WriteSysctl(path, val string) error {
	if err := os.WriteFile("/proc/sys/net/"+path, []byte(val), 0o644); err != nil {
		return fmt.Errorf("setting net.%s=%s: %w", strings.ReplaceAll(path, "/", "."), val, err)
	}
	return nil
}

func netipNet(p netip.Prefix) *net.IPNet {
	return &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}

// Check verifies what Add made: the host side (up, MAC HostMAC, a route
// to each address through it, which the route driver programs), and in
// the namespace the interface with the addresses and the default routes
// via the gateways. It says all that is wrong.
func Check(s Spec) error {
	host, err := netlink.NewHandle()
	if err != nil {
		return err
	}
	defer host.Close()
	hl, err := host.LinkByName(s.HostIface)
	if err != nil {
		return fmt.Errorf("host interface %s: %w", s.HostIface, err)
	}
	var errs []error
	if hl.Attrs().HardwareAddr.String() != HostMAC.String() {
		errs = append(errs, fmt.Errorf("%s has MAC %s, not %s", s.HostIface, hl.Attrs().HardwareAddr, HostMAC))
	}
	if hl.Attrs().Flags&net.FlagUp == 0 {
		errs = append(errs, fmt.Errorf("%s is down", s.HostIface))
	}
	for _, a := range s.Addrs {
		rs, err := host.RouteListFiltered(familyOf(a), &netlink.Route{Dst: netipNet(netip.PrefixFrom(a, a.BitLen()))}, netlink.RT_FILTER_DST)
		if err != nil || !slices.ContainsFunc(rs, func(r netlink.Route) bool { return r.LinkIndex == hl.Attrs().Index }) {
			errs = append(errs, fmt.Errorf("the host has no route to %s via %s", a, s.HostIface))
		}
	}
	errs = append(errs, checkWorkloadSide(s))
	return errors.Join(errs...)
}

func checkWorkloadSide(s Spec) error {
	ns, err := netns.GetFromPath(s.NetNS)
	if err != nil {
		return fmt.Errorf("opening network namespace %s: %w", s.NetNS, err)
	}
	defer ns.Close()
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		return fmt.Errorf("netlink in %s: %w", s.NetNS, err)
	}
	defer h.Close()
	link, err := h.LinkByName(s.Iface)
	if err != nil {
		return fmt.Errorf("%s in %s: %w", s.Iface, s.NetNS, err)
	}
	var errs []error
	if link.Attrs().Flags&net.FlagUp == 0 {
		errs = append(errs, fmt.Errorf("%s in %s is down", s.Iface, s.NetNS))
	}
	have, err := h.AddrList(link, netlink.FAMILY_ALL)
	if err != nil {
		return err
	}
	gws := map[int]netip.Addr{}
	for _, a := range s.Addrs {
		want := netip.PrefixFrom(a, a.BitLen())
		if !slices.ContainsFunc(have, func(h netlink.Addr) bool { return h.IPNet.String() == want.String() }) {
			errs = append(errs, fmt.Errorf("%s in %s lacks address %s", s.Iface, s.NetNS, want))
		}
		if a.Is4() {
			gws[netlink.FAMILY_V4] = GatewayV4
		} else {
			gws[netlink.FAMILY_V6] = GatewayV6
		}
	}
	for fam, gw := range gws {
		rs, err := h.RouteList(link, fam)
		if err != nil {
			return err
		}
		if !slices.ContainsFunc(rs, func(r netlink.Route) bool {
			gwr, _ := netip.AddrFromSlice(r.Gw)
			return (r.Dst == nil || r.Dst.IP.IsUnspecified()) && gwr.Unmap() == gw
		}) {
			errs = append(errs, fmt.Errorf("%s has no default route via %s on %s", s.NetNS, gw, s.Iface))
		}
	}
	return errors.Join(errs...)
}

func familyOf(a netip.Addr) int {
	if a.Is4() {
		return netlink.FAMILY_V4
	}
	return netlink.FAMILY_V6
}
