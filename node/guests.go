package node

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"sync"
	"time"

	"calico/node/dhcp"
	"calico/node/veth"
	"calico/store"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// The guests of attached interfaces (a VM's tap): the node answers their
// DHCP and router solicitations (node/dhcp), and follows the kernel's
// link events so that a tap that appears, or is made again when its VM
// restarts, gets the host side's treatment, its routes and a router
// advertisement at once, rather than at the route driver's next look.

// dhcpServer is what the node uses of the DHCP server; *dhcp.Server is
// one.
type dhcpServer interface {
	Run(ctx context.Context) error
	Announce(iface string)
}

// linkEvent is one of the kernel's link events.
type linkEvent struct {
	Name    string
	Index   int
	Deleted bool
	// Up and Carrier are the interface's state after the event.
	Up, Carrier bool
}

// guests follows the attached interfaces of this host's workloads.
type guests struct {
	n      *node
	name   string
	server dhcpServer
	// seen is the index of each attached interface the node has given
	// the host side's treatment, and whether it had a carrier; only the
	// loop touches it.
	seen map[string]seenLink
	// leased caches leases() by the agent's generation: the DHCP server
	// reads them for every request, and each derivation walks the
	// datastore's copy.
	leaseMu  sync.Mutex
	leaseGen uint64
	leased   map[string]dhcp.Lease
}

type seenLink struct {
	index   int
	carrier bool
}

// guestResync is how often the node looks at every attached interface,
// in case it missed an event (or the agent had no state yet).
const guestResync = 30 * time.Second

// startGuests starts the DHCP server and the link watcher (when the
// parts have them); guestsStop ends them.
func (n *node) startGuests(name string) {
	if n.parts.dhcp == nil || n.parts.links == nil {
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	g := &guests{n: n, name: name, seen: map[string]seenLink{}}
	g.server = n.parts.dhcp(dhcp.Config{Leases: g.leases, DNS: n.cfg.DNSServers, Domain: n.cfg.DNSDomain, Name: name, Log: n.log})
	events := make(chan linkEvent, 256)
	var wg sync.WaitGroup
	wg.Go(func() {
		if err := g.server.Run(ctx); err != nil {
			n.log.Warn("the DHCP server does not run; guests must be configured by hand", "err", err)
		}
	})
	wg.Go(func() {
		push := func(ev linkEvent) {
			select {
			case events <- ev:
			case <-ctx.Done():
			}
		}
		if err := n.parts.links(ctx, push); err != nil && ctx.Err() == nil {
			n.log.Warn("not following the kernel's link events; a VM's tap is looked for every 30 s", "err", err)
		}
	})
	wg.Go(func() { g.loop(ctx, events) })
	n.guestsStop = func() { cancel(); wg.Wait() }
}

// loop handles link events, and looks at every attached interface now
// and then.
func (g *guests) loop(ctx context.Context, events <-chan linkEvent) {
	tick := time.NewTicker(guestResync)
	defer tick.Stop()
	g.resync()
	for {
		select {
		case <-ctx.Done():
			return
		case ev := <-events:
			g.changed(ev)
		case <-tick.C:
			g.resync()
		}
	}
}

// attached are this host's endpoints of attached interfaces, by
// interface, as the agent's copy of the datastore has them.
func (g *guests) attached() map[string]*store.WorkloadEndpoint {
	in, _, ok := g.n.agent.View()
	if !ok {
		return nil
	}
	out := map[string]*store.WorkloadEndpoint{}
	for _, w := range in.Workloads {
		if w.Spec.Node == g.name && w.Metadata.Annotations[store.AnnotationAttached] != "" {
			out[w.Spec.InterfaceName] = w
		}
	}
	return out
}

// changed handles one link event of an attached interface: one made
// anew (a new index) gets the host side's treatment; the route driver
// looks for it at once, the agent programs the host, and a carrier that
// came gets a router advertisement.
func (g *guests) changed(ev linkEvent) {
	if _, ok := g.attached()[ev.Name]; !ok {
		return
	}
	old, had := g.seen[ev.Name]
	switch {
	case ev.Deleted:
		delete(g.seen, ev.Name)
	case !had || old.index != ev.Index:
		if err := g.n.parts.attach(ev.Name, g.n.cfg.MTU); err != nil {
			g.n.log.Warn("giving a VM's interface the host side's treatment", "iface", ev.Name, "err", err)
		}
		g.seen[ev.Name] = seenLink{index: ev.Index, carrier: ev.Carrier}
	default:
		g.seen[ev.Name] = seenLink{index: ev.Index, carrier: ev.Carrier}
	}
	g.n.routes.LinkChanged(ev.Name)
	g.n.agent.Kick()
	if !ev.Deleted && ev.Up && ev.Carrier && !(had && old.carrier && old.index == ev.Index) {
		g.server.Announce(ev.Name)
	}
}

// resync handles every attached interface as if the kernel had just
// reported it: those present and not seen yet (or made anew) get the
// host side's treatment.
func (g *guests) resync() {
	for name := range g.attached() {
		l, err := net.InterfaceByName(name)
		if err != nil {
			if _, had := g.seen[name]; had {
				g.changed(linkEvent{Name: name, Deleted: true})
			}
			continue
		}
		if s, had := g.seen[name]; !had || s.index != l.Index {
			g.changed(linkEvent{Name: name, Index: l.Index, Up: l.Flags&net.FlagUp != 0, Carrier: l.Flags&net.FlagRunning != 0})
		}
	}
}

// leases are the DHCP leases of this host's workload interfaces.
func (g *guests) leases() map[string]dhcp.Lease {
	gen := g.n.agent.Generation()
	g.leaseMu.Lock()
	defer g.leaseMu.Unlock()
	if g.leased != nil && gen == g.leaseGen {
		return g.leased
	}
	in, _, ok := g.n.agent.View()
	if !ok {
		return nil
	}
	g.leased, g.leaseGen = dhcp.LeasesOf(g.name, in.Workloads), gen
	return g.leased
}

// watchLinks calls fn with the kernel's link events (of the calling
// thread's network namespace) until ctx is done.
func watchLinks(ctx context.Context, fn func(linkEvent)) error {
	updates := make(chan netlink.LinkUpdate, 256)
	done := make(chan struct{})
	defer close(done)
	errc := make(chan error, 1)
	opts := netlink.LinkSubscribeOptions{ErrorCallback: func(err error) {
		select {
		case errc <- err:
		default:
		}
	}}
	if err := netlink.LinkSubscribeWithOptions(updates, done, opts); err != nil {
		return err
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case err := <-errc:
			return err
		case u, ok := <-updates:
			if !ok {
				return errors.New("the kernel's link events ended")
			}
			fn(linkEvent{Name: u.Attrs().Name, Index: int(u.Index), Deleted: u.Header.Type == unix.RTM_DELLINK,
				Up: u.Flags&unix.IFF_UP != 0, Carrier: u.Flags&unix.IFF_LOWER_UP != 0})
		}
	}
}

// upInterfaces lists the host's interfaces that are up, with their
// addresses (none for a tap without any): the calculation's view of
// which workload interfaces are there, and of the host's own for host
// endpoints given by expectedIPs. Two netlink dumps, whatever the number
// of interfaces.
func upInterfaces() map[string][]netip.Addr {
	links, err := netlink.LinkList()
	if err != nil {
		return nil
	}
	addrs, err := netlink.AddrList(nil, netlink.FAMILY_ALL)
	if err != nil {
		return nil
	}
	names := make(map[int]string, len(links))
	out := make(map[string][]netip.Addr, len(links))
	for _, l := range links {
		if a := l.Attrs(); a.Flags&net.FlagUp != 0 {
			names[a.Index] = a.Name
			out[a.Name] = nil
		}
	}
	for _, a := range addrs {
		ip, ok := netip.AddrFromSlice(a.IP)
		if name, up := names[a.LinkIndex]; ok && up {
			out[name] = append(out[name], ip.Unmap())
		}
	}
	return out
}

// realGuestParts are the real DHCP server, link events and attachment.
func realGuestParts(p *parts) {
	p.dhcp = func(cfg dhcp.Config) dhcpServer { return dhcp.New(cfg) }
	p.links = watchLinks
	p.attach = veth.Attach
}
