package node

import (
	"context"
	"log/slog"
	"slices"
	"sync"
	"testing"

	"calico/node/dhcp"
	"calico/node/route"
	"calico/store"
	"calico/store/etcdv3"
)

// fakeGuests records what the node asked of the guests' parts.
type fakeGuests struct {
	mu        sync.Mutex
	cfg       dhcp.Config
	announced []string
	attached  []string
}

func (f *fakeGuests) Run(ctx context.Context) error { <-ctx.Done(); return nil }
func (f *fakeGuests) Announce(iface string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.announced = append(f.announced, iface)
}

func (f *fakeGuests) seen() (announced, attached []string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.announced), slices.Clone(f.attached)
}

// TestGuestsFollowLinks: the node's DHCP server gets the leases of its
// attached endpoints; a link event of an attached interface gets it the
// host side's treatment (once per interface made), tells the route
// driver, and a carrier gets the guest a router advertisement; other
// interfaces' events change nothing.
func TestGuestsFollowLinks(t *testing.T) {
	ev := &events{}
	p, fc := testParts(t, ev, nil)
	var rt *fakeRoutes
	p.routes = func(*slog.Logger) (routeDriver, error) {
		rt = &fakeRoutes{Fake: route.NewFake(), ev: ev}
		return rt, nil
	}
	fg := &fakeGuests{}
	links := make(chan linkEvent)
	p.dhcp = func(cfg dhcp.Config) dhcpServer { fg.mu.Lock(); fg.cfg = cfg; fg.mu.Unlock(); return fg }
	p.links = func(ctx context.Context, fn func(linkEvent)) error {
		for {
			select {
			case <-ctx.Done():
				return nil
			case e := <-links:
				fn(e)
			}
		}
	}
	p.attach = func(name string, mtu int) error {
		fg.mu.Lock()
		defer fg.mu.Unlock()
		fg.attached = append(fg.attached, name)
		if mtu != 1400 {
			t.Errorf("attached %s with MTU %d, want the node's 1400", name, mtu)
		}
		return nil
	}
	cfg := testConfig(t)
	cfg.MTU = 1400
	_, stop := startNode(t, cfg, p)
	defer stop()

	w := store.KindWorkloadEndpoint.New().(*store.WorkloadEndpoint)
	w.Metadata.Name, w.Metadata.Namespace = "n1-calico-vm1-eth0", "default"
	w.Metadata.Annotations = map[string]string{store.AnnotationAttached: "tuntap"}
	w.Spec = store.WorkloadEndpointSpec{Node: "n1", Orchestrator: "calico", Workload: "vm1", Endpoint: "eth0", InterfaceName: "vnet3",
		MAC: "52:54:00:12:34:56", IPNetworks: []string{"10.65.0.70/32"}, Profiles: []string{"default"}}
	if err := etcdv3.New(fc.cli).Create(t.Context(), w); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the DHCP lease of vnet3", func() bool {
		fg.mu.Lock()
		leases := fg.cfg.Leases
		fg.mu.Unlock()
		return leases != nil && leases()["vnet3"].IPv4.String() == "10.65.0.70"
	})

	links <- linkEvent{Name: "eth9", Index: 3, Up: true, Carrier: true}
	links <- linkEvent{Name: "vnet3", Index: 7, Up: true, Carrier: true}
	links <- linkEvent{Name: "vnet3", Index: 7, Up: true, Carrier: true} // a change of flags
	waitFor(t, "vnet3 attached, announced and reported to the routes", func() bool {
		an, at := fg.seen()
		return slices.Equal(at, []string{"vnet3"}) && slices.Equal(an, []string{"vnet3"}) && linked(rt, "vnet3") == 2
	})
	// The VM restarts: its tap is deleted and made again.
	links <- linkEvent{Name: "vnet3", Index: 7, Deleted: true}
	links <- linkEvent{Name: "vnet3", Index: 8, Up: true}
	links <- linkEvent{Name: "vnet3", Index: 8, Up: true, Carrier: true}
	waitFor(t, "the new vnet3 attached and announced", func() bool {
		an, at := fg.seen()
		return slices.Equal(at, []string{"vnet3", "vnet3"}) && slices.Equal(an, []string{"vnet3", "vnet3"}) && linked(rt, "vnet3") == 5
	})
	if n := linked(rt, "eth9"); n != 0 {
		t.Errorf("an interface of no workload was reported to the routes %d times", n)
	}
}

func linked(rt *fakeRoutes, name string) int { return rt.LinkChanges(name) }
