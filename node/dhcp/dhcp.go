// Package dhcp answers the guests behind this host's workload interfaces
// (a VM's tap) so that they configure themselves the Calico way: DHCPv4
// gives the workload's address as a /32, with 169.254.1.1 as gateway by a
// classless static route, the DNS servers and domain, the lease and the
// interface's MTU; router advertisements (managed, no prefix to
// autoconfigure, the MTU) make the interface's own link-local address the
// guest's IPv6 gateway; DHCPv6 gives the workload's /128.
//
// The server keeps no leases of its own. A lease is a WorkloadEndpoint of
// this host as the node knows it (its copy of the datastore, which it
// keeps on disk): the interface names the workload, the endpoint gives the
// addresses, and its MAC, when it has one, is the only client answered. A
// request on an interface that is no workload's, or from another MAC, is
// ignored. A restarted node answers as before, and a workload removed gets
// a NAK on its next renewal.
//
// It reads and writes whole frames on packet sockets (one per family,
// filtered in the kernel to DHCP server ports and router solicitations):
// the host side of a workload interface has no IPv4 address, and a guest
// without one can only be answered frame by frame.
package dhcp

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv6"
	nl "github.com/mdlayher/netlink"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Gateway is the guest's IPv4 gateway and the server's IPv4 identity:
// the host answers ARP for it on every workload interface (proxy ARP).
var Gateway = netip.MustParseAddr("169.254.1.1")

// Lease is what the server hands the guest behind one interface.
type Lease struct {
	Iface string
	// Workload names the endpoint, for the log.
	Workload string
	// MAC, when set, is the only client the lease is for; without one
	// any client on the interface gets it.
	MAC        net.HardwareAddr
	IPv4, IPv6 netip.Addr
	// Attached says the interface is a VM's: it gets router
	// advertisements unasked, when it appears and periodically.
	Attached bool
}

// Config is the server's configuration.
type Config struct {
	// Leases lists the leases of this host's workload interfaces, by
	// interface name. It is called for every request.
	Leases func() map[string]Lease
	// DNS servers (of both families) and the DNS domain, handed out
	// with the addresses.
	DNS    []netip.Addr
	Domain string
	// LeaseTime is how long an address is leased (default an hour).
	LeaseTime time.Duration
	// Name names this server to DHCPv6 clients (the node's name).
	Name string
	Log  *slog.Logger
}

// Server answers DHCPv4, DHCPv6 and router solicitations.
type Server struct {
	cfg  Config
	log  *slog.Logger
	duid dhcpv6.DUID
	// iface describes an interface by index, or by name when index is
	// 0 (tests replace it).
	iface func(index int, name string) (ifaceInfo, error)
	// known remembers interfaces by index for ifaceTTL (only the read
	// loop touches it): a lookup lists every interface, and a host with
	// a thousand workloads hears their router solicitations, which the
	// kernel repeats with back-off until an advertisement it takes
	// comes, by the hundred.
	known map[int]knownIface

	mu       sync.Mutex
	sock     conn
	announce chan string
}

type knownIface struct {
	info ifaceInfo
	at   time.Time
}

// ifaceTTL is how long the read loop trusts what it looked up of an
// interface (its MAC, MTU and link-local address may change; an index
// names one interface only, the kernel does not reuse them).
const ifaceTTL = 30 * time.Second

// ifaceOf describes the interface of index, from memory when it is fresh.
func (s *Server) ifaceOf(index int, now time.Time) (ifaceInfo, error) {
	if k, ok := s.known[index]; ok && now.Sub(k.at) < ifaceTTL {
		return k.info, nil
	}
	in, err := s.iface(index, "")
	if err != nil {
		delete(s.known, index)
		return in, err
	}
	if len(s.known) >= 4096 {
		clear(s.known) // bounded: most are looked up again at once
	}
	s.known[index] = knownIface{in, now}
	return in, nil
}

// ifaceInfo is what replies need of the interface a request came in on.
type ifaceInfo struct {
	Name      string
	Index     int
	MAC       net.HardwareAddr
	MTU       int
	LinkLocal netip.Addr // invalid when it has none
}

// conn sends and receives frames (packet sockets; a fake in tests).
type conn interface {
	// read returns the next frame and the index of its interface.
	read(buf []byte) (n, ifindex int, err error)
	write(ifindex int, frame []byte) error
	close() error
}

// raInterval is how often attached interfaces get an unsolicited router
// advertisement; the router lifetime advertised is three times as long.
const raInterval = 10 * time.Minute

// New makes a server; Run serves.
func New(cfg Config) *Server {
	if cfg.LeaseTime <= 0 {
		cfg.LeaseTime = time.Hour
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	sum := sha256.Sum256([]byte("calico-dhcp/" + cfg.Name))
	return &Server{
		cfg: cfg, log: cfg.Log.With("component", "dhcp"),
		duid:     &dhcpv6.DUIDUUID{UUID: [16]byte(sum[:16])},
		iface:    lookupIface,
		known:    map[int]knownIface{},
		announce: make(chan string, 64),
	}
}

// Announce sends a router advertisement on iface soon, if it is the
// interface of an attached workload (it appeared, or came up). It never
// blocks.
func (s *Server) Announce(iface string) {
	select {
	case s.announce <- iface:
	default:
	}
}

// Run serves until ctx is done. It fails only when it cannot open its
// sockets; a frame it cannot answer is logged at debug level.
func (s *Server) Run(ctx context.Context) error {
	c, err := openSockets()
	if err != nil {
		return fmt.Errorf("opening the DHCP server's packet sockets: %w", err)
	}
	return s.serve(ctx, c)
}

// serve answers what c receives until ctx is done, and closes c.
func (s *Server) serve(ctx context.Context, c conn) error {
	s.mu.Lock()
	s.sock = c
	s.mu.Unlock()
	var wg sync.WaitGroup
	defer wg.Wait()
	stop := context.AfterFunc(ctx, func() { c.close() })
	defer stop()
	wg.Go(func() { s.readLoop(ctx, c) })
	timer := time.NewTimer(time.Second)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			c.close()
			return nil
		case name := <-s.announce:
			s.advertise(c, func(l Lease) bool { return l.Iface == name })
		case <-timer.C:
			s.advertise(c, func(Lease) bool { return true })
			timer.Reset(raInterval - rand.N(raInterval/10))
		}
	}
}

func (s *Server) readLoop(ctx context.Context, c conn) {
	buf := make([]byte, 9000)
	for {
		n, idx, err := c.read(buf)
		if err != nil {
			if ctx.Err() == nil && !errors.Is(err, net.ErrClosed) {
				s.log.Warn("reading the DHCP socket", "err", err)
				time.Sleep(100 * time.Millisecond)
				continue
			}
			return
		}
		for _, reply := range s.handle(idx, buf[:n]) {
			if err := c.write(idx, reply); err != nil {
				s.log.Debug("sending a DHCP reply", "ifindex", idx, "err", err)
			}
		}
	}
}

// handle answers one received frame; it returns the frames to send back
// through the same interface (none for what is not ours to answer).
func (s *Server) handle(ifindex int, frame []byte) [][]byte {
	p, err := parseFrame(frame)
	if err != nil || !p.request() {
		// Before the interface and the leases are looked up: a lookup
		// by index lists every interface (Go's net package), which with
		// a thousand workloads cost a node 300 MB a second of garbage
		// while frames that are no request went by.
		return nil
	}
	in, err := s.ifaceOf(ifindex, time.Now())
	if err != nil {
		return nil
	}
	lease, ok := s.cfg.Leases()[in.Name]
	if !ok {
		s.log.Debug("ignoring a request on an interface that is no workload's", "iface", in.Name, "from", p.srcMAC.String())
		return nil
	}
	if lease.MAC != nil && p.srcMAC.String() != lease.MAC.String() {
		s.log.Debug("ignoring a request from an unknown MAC", "iface", in.Name, "from", p.srcMAC.String(), "workload", lease.Workload)
		return nil
	}
	var reply []byte
	switch {
	case p.src.Is4() && p.proto == protoUDP && p.dstPort == portDHCP4Server:
		reply = s.dhcp4(lease, in, p)
	case p.src.Is6() && p.proto == protoUDP && p.dstPort == portDHCP6Server:
		reply = s.dhcp6(lease, in, p)
	case p.src.Is6() && p.proto == protoICMP && p.payload[0] == icmpRouterSolicit:
		reply = s.routerAdvert(lease, in)
	}
	if reply == nil {
		return nil
	}
	return [][]byte{reply}
}

// advertise sends a router advertisement on the interfaces of the
// attached leases that pick selects.
func (s *Server) advertise(c conn, pick func(Lease) bool) {
	for name, l := range s.cfg.Leases() {
		if !l.Attached || !l.IPv6.IsValid() || !pick(l) {
			continue
		}
		in, err := s.iface(0, name)
		if err != nil {
			continue
		}
		if ra := s.routerAdvert(l, in); ra != nil {
			if err := c.write(in.Index, ra); err != nil {
				s.log.Debug("sending a router advertisement", "iface", name, "err", err)
			}
		}
	}
}

// lookupIface describes an interface of this host by index or name: one
// request for the link and one for its IPv6 link-local address. Go's
// net.InterfaceByIndex lists every interface with all its attributes,
// about a megabyte on a host with a thousand workloads, for each
// router solicitation.
func lookupIface(index int, name string) (ifaceInfo, error) {
	var l netlink.Link
	var err error
	if index > 0 {
		l, err = netlink.LinkByIndex(index)
	} else {
		l, err = netlink.LinkByName(name)
	}
	if err != nil {
		return ifaceInfo{}, err
	}
	a := l.Attrs()
	in := ifaceInfo{Name: a.Name, Index: a.Index, MAC: a.HardwareAddr, MTU: a.MTU}
	in.LinkLocal, _ = linkLocal(a.Index)
	return in, nil
}

// linkLocal is the first IPv6 link-local address of the interface of
// index, invalid when it has none. The kernel filters the listing to that
// interface (strict checking, Linux 5.0 and later): netlink.AddrList
// lists every address of every interface and filters here, which on a
// host of a thousand workloads, each soliciting routers as it comes up,
// made a thousand listings of two thousand addresses. A kernel that does
// not filter still lists everything (one that refuses the filtered
// request is asked again without it), and the index is checked here too.
func linkLocal(index int) (netip.Addr, error) {
	c, err := nl.Dial(unix.NETLINK_ROUTE, nil)
	if err != nil {
		return netip.Addr{}, err
	}
	defer c.Close()
	strict := c.SetOption(nl.GetStrictCheck, true) == nil
	data := make([]byte, unix.SizeofIfAddrmsg)
	data[0] = unix.AF_INET6
	binary.NativeEndian.PutUint32(data[4:], uint32(index))
	req := nl.Message{Header: nl.Header{Type: unix.RTM_GETADDR, Flags: nl.Request | nl.Dump}, Data: data}
	msgs, err := c.Execute(req)
	if err != nil && strict && c.SetOption(nl.GetStrictCheck, false) == nil {
		msgs, err = c.Execute(req)
	}
	if err != nil {
		return netip.Addr{}, err
	}
	for _, m := range msgs {
		if len(m.Data) < unix.SizeofIfAddrmsg || m.Data[0] != unix.AF_INET6 || binary.NativeEndian.Uint32(m.Data[4:]) != uint32(index) {
			continue
		}
		ad, err := nl.NewAttributeDecoder(m.Data[unix.SizeofIfAddrmsg:])
		if err != nil {
			continue
		}
		for ad.Next() {
			if ad.Type() != unix.IFA_ADDRESS {
				continue
			}
			if ip, ok := netip.AddrFromSlice(ad.Bytes()); ok && ip.Is6() && ip.IsLinkLocalUnicast() {
				return ip, nil
			}
		}
	}
	return netip.Addr{}, nil
}
