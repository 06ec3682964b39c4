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
	"golang.org/x/sys/unix"
)

// An interface that something else made (a VM's tap, named by libvirt or
// QEMU) can be attached to a workload: the node gives it the host side's
// treatment (proxy ARP, forwarding, no router advertisements accepted, an
// MTU) and routes the workload's addresses to it, but never deletes it.

// AttachKinds are the kinds of interface Attach takes: a tap (or tun) and
// a veth whose other end something else manages.
var AttachKinds = []string{"tuntap", "veth"}

// Link is an interface as Inspect finds it.
type Link struct {
	Name  string
	Index int
	// Kind is the netlink kind: tuntap, veth, …
	Kind string
	// Ethernet says the interface carries Ethernet frames (a tap, not a
	// tun): it has MACs and can be answered by DHCP.
	Ethernet bool
	MAC      net.HardwareAddr
	MTU      int
	// Up is the administrative state, Carrier whether something (a VM)
	// is on the other side.
	Up, Carrier bool
}

// ErrNoLink is Inspect's error for an interface that does not exist.
var ErrNoLink = errors.New("no such interface")

// Inspect finds an interface to attach and says what is wrong with it:
// missing, the loopback, the host's own (it has IPv4 or global IPv6
// addresses, or a default route goes through it), a port of a bridge, or
// of a kind Attach does not take.
func Inspect(name string) (*Link, error) {
	h, err := netlink.NewHandle()
	if err != nil {
		return nil, err
	}
	defer h.Close()
	l, err := h.LinkByName(name)
	var notFound netlink.LinkNotFoundError
	if errors.As(err, &notFound) {
		return nil, fmt.Errorf("interface %s does not exist on this host: %w", name, ErrNoLink)
	}
	if err != nil {
		return nil, fmt.Errorf("finding interface %s: %w", name, err)
	}
	a := l.Attrs()
	out := &Link{Name: name, Index: a.Index, Kind: l.Type(), Ethernet: a.EncapType == "ether", MAC: a.HardwareAddr, MTU: a.MTU,
		Up: a.Flags&net.FlagUp != 0, Carrier: a.OperState == netlink.OperUp || a.RawFlags&unix.IFF_LOWER_UP != 0}
	switch {
	case a.Flags&net.FlagLoopback != 0:
		return nil, fmt.Errorf("interface %s is the host's loopback", name)
	case out.Kind == "macvtap":
		return nil, fmt.Errorf("interface %s is a macvtap: the host cannot reach a guest through it (a macvtap passes the host's own traffic to its lower device); put the macvtap on one end of a veth pair and attach the other end", name)
	case !slices.Contains(AttachKinds, out.Kind):
		return nil, fmt.Errorf("interface %s is a %s; calico attaches a VM's tap or a veth (kinds %s)", name, out.Kind, strings.Join(AttachKinds, ", "))
	case a.MasterIndex != 0:
		return nil, fmt.Errorf("interface %s is a port of another interface (a bridge?); calico routes to the interface itself: detach it first (libvirt: <interface type='ethernet'>)", name)
	}
	if err := notTheHosts(h, l); err != nil {
		return nil, err
	}
	return out, nil
}

// notTheHosts refuses an interface the host itself uses: one with an
// IPv4 or global IPv6 address, or one a default route goes through.
func notTheHosts(h *netlink.Handle, l netlink.Link) error {
	name := l.Attrs().Name
	addrs, err := h.AddrList(l, netlink.FAMILY_ALL)
	if err != nil {
		return fmt.Errorf("listing the addresses of %s: %w", name, err)
	}
	for _, a := range addrs {
		ip, _ := netip.AddrFromSlice(a.IP)
		if ip = ip.Unmap(); ip.IsValid() && !ip.IsLinkLocalUnicast() {
			return fmt.Errorf("interface %s has the host's address %s: it is one of the host's own interfaces, not a VM's", name, a.IPNet)
		}
	}
	for _, fam := range []int{netlink.FAMILY_V4, netlink.FAMILY_V6} {
		rs, err := h.RouteListFiltered(fam, &netlink.Route{LinkIndex: l.Attrs().Index}, netlink.RT_FILTER_OIF)
		if err != nil {
			return fmt.Errorf("listing the routes of %s: %w", name, err)
		}
		for _, r := range rs {
			if r.Dst == nil || r.Dst.IP.IsUnspecified() && isZeroMask(r.Dst.Mask) {
				return fmt.Errorf("interface %s carries the host's default route: it is one of the host's own interfaces, not a VM's", name)
			}
		}
	}
	return nil
}

func isZeroMask(m net.IPMask) bool {
	ones, _ := m.Size()
	return ones == 0
}

// Attach gives an interface something else made the host side's
// treatment, as Add gives a veth's host side: proxy ARP (so the guest's
// gateway 169.254.1.1 answers), forwarding, no router advertisements or
// duplicate address detection, the MTU when mtu > 0, and up. It does not
// change the interface's MAC: the guest learns its IPv6 gateway from the
// node's router advertisements, sent from the interface's own link-local
// address. It may be called again (the interface was made again).
func Attach(name string, mtu int) error {
	if err := hostSysctls(name); err != nil {
		return err
	}
	h, err := netlink.NewHandle()
	if err != nil {
		return err
	}
	defer h.Close()
	l, err := h.LinkByName(name)
	if err != nil {
		return fmt.Errorf("finding %s: %w", name, err)
	}
	if mtu > 0 && l.Attrs().MTU != mtu {
		if err := h.LinkSetMTU(l, mtu); err != nil {
			return fmt.Errorf("setting the MTU of %s to %d: %w", name, mtu, err)
		}
	}
	if l.Attrs().Flags&net.FlagUp == 0 {
		if err := h.LinkSetUp(l); err != nil {
			return fmt.Errorf("bringing %s up: %w", name, err)
		}
	}
	return nil
}

// Detach takes back what Attach set that would outlive the workload: the
// host would otherwise go on answering ARP on the interface for every
// address it routes. A missing interface is no error.
func Detach(name string) error {
	err := WriteSysctl("ipv4/conf/"+name+"/proxy_arp", "0")
	if err != nil && (errors.Is(err, os.ErrNotExist) || !Exists(name)) {
		return nil
	}
	return err
}
