//go:build linux

package docker

import (
	"log/slog"
	"net"
	"slices"
	"strings"
	"testing"

	"calico/internal/testutil"
	"calico/node/veth"
	"calico/node/workload"

	"github.com/vishvananda/netlink"
)

// TestPrivilegedJoin: endpoints wired by the real workload service in a
// test host: the interface handed over at Join, with the default routes
// for a container's first calico endpoint and only its --subnet's route
// for a further one; DeleteEndpoint takes the pair. The calls are made
// directly, not over the socket: the server's goroutines would wire the
// endpoints in this process's namespace, not in the test host's.
func TestPrivilegedJoin(t *testing.T) {
	testutil.Privileged(t)
	host := testutil.NewNetNS(t)
	sandbox := testutil.NewNetNS(t)
	wl := &workload.Service{Node: "n1", DataDir: t.TempDir(), Dataplane: nowDataplane{}, Log: slog.New(slog.DiscardHandler)}
	h := newHarness(t, wl)
	wl.Store, wl.IPAM = h.s.Store, h.s.IPAM
	h.engine.put(EngineNetwork{ID: netA, Name: "web"})
	netB := strings.Repeat("b", 64)
	sub := EngineNetwork{ID: netB, Name: "db"}
	sub.IPAM.Config = append(sub.IPAM.Config, struct {
		Subnet string `json:"Subnet"`
	}{"10.65.64.0/18"})
	h.engine.put(sub)
	err := host.Do(func() error {
		if err := veth.EnableForwarding(); err != nil {
			return err
		}
		if err := joinFirst(t, h.s, sandbox); err != nil {
			return err
		}
		if err := joinSecond(t, h.s, sandbox, netB); err != nil {
			return err
		}
		if _, err := h.s.join(t.Context(), join{NetworkID: netA, EndpointID: strings.Repeat("d", 64)}); err == nil || !strings.Contains(err.Error(), "has no interface for endpoint dddddddddddd") {
			t.Errorf("a join of an endpoint never created = %v", err)
		}
		for _, ep := range []string{epA, epB} {
			if _, err := h.s.deleteEndpoint(t.Context(), endpointID{NetworkID: netA, EndpointID: ep}); err != nil {
				return err
			}
		}
		if veth.Exists("cali7c1b94f3a8e") || veth.Exists("cali8e6d5c4b3a2") || veth.Exists("temp8e6d5c4b3a2") {
			t.Errorf("DeleteEndpoint left an interface")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// joinFirst: the container's first calico endpoint (IPv4 and IPv6) gets
// the default routes; Docker then moves its interface in.
func joinFirst(t *testing.T, s *Server, sandbox *testutil.NetNS) error {
	ctx := t.Context()
	a, err := s.requestAddress(ctx, requestAddress{PoolID: anyPoolV4})
	if err != nil {
		return err
	}
	if _, err := s.createEndpoint(ctx, createEndpoint{NetworkID: netA, EndpointID: epA,
		Interface: &endpointInterface{Address: a.Address, AddressIPv6: "fd00:65::5/128"}}); err == nil || !strings.Contains(err.Error(), "fd00:65::5 is not allocated") {
		t.Errorf("an endpoint with an address calico-ipam did not give = %v", err)
	}
	six, err := s.requestAddress(ctx, requestAddress{PoolID: anyPoolV6})
	if err != nil {
		return err
	}
	if _, err := s.createEndpoint(ctx, createEndpoint{NetworkID: netA, EndpointID: epA,
		Interface: &endpointInterface{Address: a.Address, AddressIPv6: six.Address}}); err != nil {
		return err
	}
	j, err := s.join(ctx, join{NetworkID: netA, EndpointID: epA, SandboxKey: sandbox.Path()})
	if err != nil {
		return err
	}
	want := []staticRoute{{Destination: "169.254.1.1/32", RouteType: routeConnected}, {Destination: "fe80::ecee:eeff:feee:eeee/128", RouteType: routeConnected}}
	if *j.InterfaceName != (interfaceName{SrcName: "temp7c1b94f3a8e", DstPrefix: "eth"}) || j.Gateway != "169.254.1.1" ||
		j.GatewayIPv6 != "fe80::ecee:eeff:feee:eeee" || !slices.Equal(j.StaticRoutes, want) || j.DisableGatewayService {
		t.Errorf("the first join: %+v", j)
	}
	return moveIn(sandbox, "temp7c1b94f3a8e", "eth0")
}

// joinSecond: a further endpoint in the same container gets no default
// route, only its network's --subnet, and no gateway service.
func joinSecond(t *testing.T, s *Server, sandbox *testutil.NetNS, netB string) error {
	ctx := t.Context()
	b, err := s.requestAddress(ctx, requestAddress{PoolID: "10.65.64.0/18"})
	if err != nil {
		return err
	}
	if _, err := s.createEndpoint(ctx, createEndpoint{NetworkID: netB, EndpointID: epB, Interface: &endpointInterface{Address: b.Address}}); err != nil {
		return err
	}
	j, err := s.join(ctx, join{NetworkID: netB, EndpointID: epB, SandboxKey: sandbox.Path()})
	if err != nil {
		return err
	}
	if j.InterfaceName.SrcName != "temp8e6d5c4b3a2" || j.Gateway != "" || j.GatewayIPv6 != "" || !j.DisableGatewayService ||
		!slices.Equal(j.StaticRoutes, []staticRoute{{Destination: "10.65.64.0/18", RouteType: routeConnected}}) {
		t.Errorf("the second join: %+v", j)
	}
	return nil
}

// moveIn does what Docker does with a handed-over interface: moves it
// into the sandbox, names it, and adds the on-link route to 169.254.1.1.
func moveIn(sandbox *testutil.NetNS, name, as string) error {
	l, err := netlink.LinkByName(name)
	if err != nil {
		return err
	}
	if err := netlink.LinkSetNsFd(l, int(sandbox.Handle())); err != nil {
		return err
	}
	h, err := netlink.NewHandleAt(sandbox.Handle())
	if err != nil {
		return err
	}
	defer h.Close()
	if l, err = h.LinkByName(name); err != nil {
		return err
	}
	if err := h.LinkSetName(l, as); err != nil {
		return err
	}
	if err := h.LinkSetUp(l); err != nil {
		return err
	}
	return h.RouteAdd(&netlink.Route{LinkIndex: l.Attrs().Index, Scope: netlink.SCOPE_LINK,
		Dst: &net.IPNet{IP: net.ParseIP("169.254.1.1"), Mask: net.CIDRMask(32, 32)}})
}
