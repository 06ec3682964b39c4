package docker

import (
	"errors"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"calico/node/workload"
	"calico/store"
	"calico/store/etcdv3"
	"calico/store/ipam"
)

const (
	netA = "0e5ad2a7c1b94f3a8e6d5c4b3a29180716253443526170819f8e7d6c5b4a3921"
	epA  = "7c1b94f3a8e6d5c4b3a291807162534435261708190e5ad2a7c1b94f3a8e6d5c"
	epB  = "8e6d5c4b3a291807162534435261708190e5ad2a7c1b94f3a7c1b94f3a8e6d5c"
)

// TestProtocol: each socket says what it implements; capabilities, the
// address spaces; an unknown call is a 404 with a message, a body that
// is not JSON a 400.
func TestProtocol(t *testing.T) {
	h := newHarness(t, nil)
	var act activation
	h.must(NetworkSocket, "/Plugin.Activate", nil, &act)
	if !slices.Equal(act.Implements, []string{"NetworkDriver"}) {
		t.Errorf("calico.sock implements %v", act.Implements)
	}
	h.must(IPAMSocket, "/Plugin.Activate", nil, &act)
	if !slices.Equal(act.Implements, []string{"IpamDriver"}) {
		t.Errorf("calico-ipam.sock implements %v", act.Implements)
	}
	var caps capabilities
	h.must(NetworkSocket, "/NetworkDriver.GetCapabilities", nil, &caps)
	if caps.Scope != "local" || caps.ConnectivityScope != "local" {
		t.Errorf("capabilities %+v", caps)
	}
	var spaces addressSpaces
	h.must(IPAMSocket, "/IpamDriver.GetDefaultAddressSpaces", nil, &spaces)
	if spaces.LocalDefaultAddressSpace != localSpace || spaces.GlobalDefaultAddressSpace != globalSpace {
		t.Errorf("address spaces %+v", spaces)
	}
	if status, e := h.post(NetworkSocket, "/NetworkDriver.NoSuchCall", nil, nil); status != http.StatusNotFound || !strings.Contains(e, "unknown call") {
		t.Errorf("an unknown call = %d %q", status, e)
	}
	if status, _ := h.post(NetworkSocket, "/IpamDriver.RequestPool", nil, nil); status != http.StatusNotFound {
		t.Errorf("an IPAM call on the network socket = %d", status)
	}
	if status, e := h.post(IPAMSocket, "/IpamDriver.RequestPool", "{", nil); status != http.StatusBadRequest || e == "" {
		t.Errorf("a body that is not a request = %d %q", status, e)
	}
	for _, path := range []string{"/NetworkDriver.DiscoverNew", "/NetworkDriver.DiscoverDelete", "/NetworkDriver.Leave", "/NetworkDriver.RevokeExternalConnectivity"} {
		h.must(NetworkSocket, path, map[string]any{"NetworkID": netA, "EndpointID": epA}, nil)
	}
	if _, e := h.post(NetworkSocket, "/NetworkDriver.AllocateNetwork", nil, nil); !strings.Contains(e, "Swarm") {
		t.Errorf("AllocateNetwork = %q", e)
	}
}

// TestIPAMPools: pools by --subnet (one of calico's, or inside one) or
// every pool of a family; the refusals say what is wrong.
func TestIPAMPools(t *testing.T) {
	h := newHarness(t, nil)
	var p pool
	h.must(IPAMSocket, "/IpamDriver.RequestPool", requestPool{AddressSpace: localSpace}, &p)
	if p.PoolID != anyPoolV4 || p.Pool != "0.0.0.0/0" || p.Data[optGatewayType] != "0.0.0.0/0" {
		t.Errorf("the pool without --subnet: %+v", p)
	}
	h.must(IPAMSocket, "/IpamDriver.RequestPool", requestPool{AddressSpace: localSpace, V6: true}, &p)
	if p.PoolID != anyPoolV6 || p.Data[optGatewayType] != "::/0" {
		t.Errorf("the IPv6 pool without --subnet: %+v", p)
	}
	h.must(IPAMSocket, "/IpamDriver.RequestPool", requestPool{AddressSpace: localSpace, Pool: "10.65.8.0/24"}, &p)
	if p.PoolID != "10.65.8.0/24" || p.Pool != "10.65.8.0/24" {
		t.Errorf("the pool of a subnet inside a pool: %+v", p)
	}
	for _, bad := range []struct {
		req  requestPool
		want string
	}{
		{requestPool{Pool: "10.99.0.0/24"}, "--subnet 10.99.0.0/24 is neither one of calico's IP pools nor inside one (the enabled pools of this node: 10.65.0.0/16, fd00:65::/48"},
		{requestPool{Pool: "10.65.8.0/28"}, "smaller than the blocks of pool 10.65.0.0/16 (/26)"},
		{requestPool{Pool: "10.65.0.0/16", SubPool: "10.65.1.0/24"}, "no --ip-range"},
		{requestPool{Options: map[string]string{"b": "1", "a": "2"}}, "no --ipam-opt (got a, b)"},
		{requestPool{Pool: "fd00:65::/64"}, `--subnet "fd00:65::/64" is not an IPv4 network prefix`},
		{requestPool{Pool: "10.65.0.1/16"}, "is not an IPv4 network prefix"},
	} {
		if _, e := h.post(IPAMSocket, "/IpamDriver.RequestPool", bad.req, nil); !strings.Contains(e, bad.want) {
			t.Errorf("RequestPool %+v = %q; want %q", bad.req, e, bad.want)
		}
	}

}

// TestIPAMAddresses: addresses auto or asked for, one handle each;
// release; the refusals say what is wrong.
func TestIPAMAddresses(t *testing.T) {
	h := newHarness(t, nil)
	var a, given, six address
	h.must(IPAMSocket, "/IpamDriver.RequestAddress", requestAddress{PoolID: "10.65.8.0/24"}, &a)
	if !strings.HasPrefix(a.Address, "10.65.8.") || !strings.HasSuffix(a.Address, "/32") {
		t.Errorf("an address of 10.65.8.0/24: %q", a.Address)
	}
	h.must(IPAMSocket, "/IpamDriver.RequestAddress", requestAddress{PoolID: anyPoolV4, Address: "10.65.200.9"}, &given)
	h.must(IPAMSocket, "/IpamDriver.RequestAddress", requestAddress{PoolID: anyPoolV6}, &six)
	if given.Address != "10.65.200.9/32" || !strings.HasPrefix(six.Address, "fd00:65:") || !strings.HasSuffix(six.Address, "/128") {
		t.Errorf("addresses %q, %q", given.Address, six.Address)
	}
	addr := netip.MustParsePrefix(a.Address).Addr()
	al, err := h.s.IPAM.Lookup(t.Context(), addr)
	if err != nil || !strings.HasPrefix(al.Handle, "libnetwork.") || al.Attrs["node"] != "n1" || al.Attrs["orchestrator"] != "libnetwork" {
		t.Errorf("IPAM holds %s as %+v, %v", addr, al, err)
	}
	for _, bad := range []struct {
		req  requestAddress
		want string
	}{
		{requestAddress{PoolID: anyPoolV4, Address: "10.65.200.9"}, "address 10.65.200.9 is already in use"},
		{requestAddress{PoolID: "10.65.8.0/24", Address: "10.65.9.1"}, "address 10.65.9.1 is not in the network's pools (10.65.8.0/24)"},
		{requestAddress{PoolID: "10.65.0.0/16", Options: map[string]string{"RequestAddressType": optGatewayType}}, "no gateway address"},
		{requestAddress{PoolID: "bridge-pool-1"}, "is not calico-ipam's"},
	} {
		if _, e := h.post(IPAMSocket, "/IpamDriver.RequestAddress", bad.req, nil); !strings.Contains(e, bad.want) {
			t.Errorf("RequestAddress %+v = %q; want %q", bad.req, e, bad.want)
		}
	}

	// Release, twice; someone else's address is left alone.
	for range 2 {
		h.must(IPAMSocket, "/IpamDriver.ReleaseAddress", releaseAddress{PoolID: "10.65.8.0/24", Address: addr.String()}, nil)
	}
	if _, err := h.s.IPAM.Lookup(t.Context(), addr); !errors.Is(err, ipam.ErrNotAllocated) {
		t.Errorf("%s after its release: %v", addr, err)
	}
	other := netip.MustParseAddr("10.65.201.1")
	if err := h.s.IPAM.Assign(t.Context(), other, "calico.x", "n1", ipam.Pool{CIDR: netip.MustParsePrefix("10.65.0.0/16"), BlockSize: 26}, nil); err != nil {
		t.Fatal(err)
	}
	h.must(IPAMSocket, "/IpamDriver.ReleaseAddress", releaseAddress{PoolID: anyPoolV4, Address: other.String()}, nil)
	if _, err := h.s.IPAM.Lookup(t.Context(), other); err != nil {
		t.Errorf("a workload's address released by Docker's ReleaseAddress: %v", err)
	}
}

// ours is calico-ipam's data of a network.
var ours = []ipamData{{AddressSpace: localSpace, Pool: "10.65.0.0/16", Gateway: "0.0.0.0/0"}}

// TestCreateNetworkRefusals: CreateNetwork refuses what calico cannot
// honour, saying what.
func TestCreateNetworkRefusals(t *testing.T) {
	h := newHarness(t, nil)
	for _, bad := range []struct {
		req  createNetwork
		want string
	}{
		{createNetwork{IPv4Data: []ipamData{{AddressSpace: "LocalDefault", Pool: "172.18.0.0/16"}}}, "--ipam-driver calico-ipam"},
		{createNetwork{IPv4Data: []ipamData{{AddressSpace: localSpace, AuxAddresses: map[string]any{"a": "10.65.0.9"}}}}, "no --aux-address"},
		{createNetwork{IPv4Data: ours, Options: map[string]any{optGeneric: map[string]any{"foo": "bar"}}}, `no option "foo"`},
		{createNetwork{IPv4Data: ours, Options: map[string]any{optGeneric: map[string]any{optMTU: "9"}}}, "the MTU is a number from 68 to 65535"},
		{createNetwork{IPv4Data: ours, Options: map[string]any{optInternal: true}}, "cannot be --internal"},
	} {
		bad.req.NetworkID = netA
		if _, e := h.post(NetworkSocket, "/NetworkDriver.CreateNetwork", bad.req, nil); !strings.Contains(e, bad.want) {
			t.Errorf("CreateNetwork %+v = %q; want %q", bad.req, e, bad.want)
		}
	}
}

// TestNetworks: a new network gets its profile (with its labels, listing
// the host's network) once the Engine has it; an endpoint is added
// through the workload service with calico-ipam's addresses; a network
// whose labels contradict its profile's is refused; the last network of
// a name takes the profile with it unless an endpoint uses it.
func TestNetworks(t *testing.T) {
	h := newHarness(t, nil)
	h.must(NetworkSocket, "/NetworkDriver.CreateNetwork", createNetwork{NetworkID: netA, IPv4Data: ours,
		Options: map[string]any{optGeneric: map[string]any{optMTU: "1400"}, "com.docker.network.enable_ipv6": false}}, nil)
	h.engine.put(EngineNetwork{ID: netA, Name: "web", Labels: map[string]string{"role": "web"}, Options: map[string]string{optMTU: "1400"}})
	var p *store.Profile
	eventually(t, "the network's profile", func() bool {
		var err error
		p, err = etcdv3.GetOf[*store.Profile](t.Context(), h.s.Store, "", "web")
		return err == nil
	})
	if p.Spec.LabelsToApply["role"] != "web" || p.Metadata.Annotations[annotationNetworks] != "n1/"+netA || p.Metadata.Annotations[annotationMadeFor] != "docker" {
		t.Errorf("profile %+v", p)
	}

	// An endpoint: the workload service gets calico-ipam's addresses.
	if _, e := h.post(NetworkSocket, "/NetworkDriver.CreateEndpoint", createEndpoint{NetworkID: netA, EndpointID: epA}, nil); !strings.Contains(e, "has no address") {
		t.Errorf("an endpoint without addresses = %q", e)
	}
	h.must(NetworkSocket, "/NetworkDriver.CreateEndpoint", createEndpoint{NetworkID: netA, EndpointID: epA,
		Interface: &endpointInterface{Address: "10.65.0.5/32", AddressIPv6: "fd00:65::5/128"}}, nil)
	if got := h.wl.adds[len(h.wl.adds)-1]; got.Orchestrator != workload.OrchestratorLibnetwork || got.ContainerID != epA || got.Network != "web" ||
		!got.Allocated || !slices.Equal(got.IPs, []string{"10.65.0.5", "fd00:65::5"}) || got.MTU != 1400 {
		t.Errorf("the workload service got %+v", got)
	}
	var info endpointInfo
	h.must(NetworkSocket, "/NetworkDriver.EndpointOperInfo", endpointID{NetworkID: netA, EndpointID: epA}, &info)
	if info.Value["calico.interface"] != "cali7c1b94f3a8e" {
		t.Errorf("endpoint info %v", info.Value)
	}
	if _, e := h.post(NetworkSocket, "/NetworkDriver.ProgramExternalConnectivity", externalConnectivity{NetworkID: netA, EndpointID: epA,
		Options: map[string]any{optPortMap: []any{map[string]any{"Proto": 6, "Port": 80, "HostPort": 8080}}}}, nil); !strings.Contains(e, "publishes no ports") {
		t.Errorf("published ports = %q", e)
	}
	h.must(NetworkSocket, "/NetworkDriver.ProgramExternalConnectivity", externalConnectivity{NetworkID: netA, EndpointID: epA,
		Options: map[string]any{optPortMap: []any{}}}, nil)

	// The network of another host with other labels is refused.
	netB := strings.Repeat("b", 64)
	h.engine.put(EngineNetwork{ID: netB, Name: "web", Labels: map[string]string{"role": "db"}})
	if _, e := h.post(NetworkSocket, "/NetworkDriver.CreateEndpoint", createEndpoint{NetworkID: netB, EndpointID: epB,
		Interface: &endpointInterface{Address: "10.65.0.6/32"}}, nil); !strings.Contains(e, "has label role=db, but its profile") {
		t.Errorf("contradicting labels = %q", e)
	}

	// Deleting the last network while an endpoint uses the profile
	// leaves it; with none, the profile goes.
	h.must(NetworkSocket, "/NetworkDriver.DeleteNetwork", networkID{NetworkID: netA}, nil)
	if p, err := etcdv3.GetOf[*store.Profile](t.Context(), h.s.Store, "", "web"); err != nil || p.Metadata.Annotations[annotationNetworks] != "" {
		t.Errorf("the profile in use after its network went: %+v, %v", p, err)
	}
	h.must(NetworkSocket, "/NetworkDriver.DeleteEndpoint", endpointID{NetworkID: netA, EndpointID: epA}, nil)
	h.must(NetworkSocket, "/NetworkDriver.CreateNetwork", createNetwork{NetworkID: netA, IPv4Data: ours}, nil)
	eventually(t, "the profile listing the network again", func() bool {
		p, err := etcdv3.GetOf[*store.Profile](t.Context(), h.s.Store, "", "web")
		return err == nil && p.Metadata.Annotations[annotationNetworks] != ""
	})
	h.must(NetworkSocket, "/NetworkDriver.DeleteNetwork", networkID{NetworkID: netA}, nil)
	if _, err := etcdv3.GetOf[*store.Profile](t.Context(), h.s.Store, "", "web"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("the profile after its last network went: %v", err)
	}

}

// TestUserProfile: a profile the user made gets the network's labels,
// and stays when the network goes.
func TestUserProfile(t *testing.T) {
	h := newHarness(t, nil)
	user := store.ClassicProfile("mine")
	if err := h.s.Store.Create(t.Context(), user); err != nil {
		t.Fatal(err)
	}
	netC := strings.Repeat("c", 64)
	h.engine.put(EngineNetwork{ID: netC, Name: "mine", Labels: map[string]string{"tier": "1"}})
	h.must(NetworkSocket, "/NetworkDriver.CreateNetwork", createNetwork{NetworkID: netC, IPv4Data: ours}, nil)
	eventually(t, "the user's profile with the network's labels", func() bool {
		p, err := etcdv3.GetOf[*store.Profile](t.Context(), h.s.Store, "", "mine")
		return err == nil && p.Spec.LabelsToApply["tier"] == "1"
	})
	h.must(NetworkSocket, "/NetworkDriver.DeleteNetwork", networkID{NetworkID: netC}, nil)
	if _, err := etcdv3.GetOf[*store.Profile](t.Context(), h.s.Store, "", "mine"); err != nil {
		t.Errorf("the user's profile after its network went: %v", err)
	}
}

// TestGarbage: a pass removes this node's endpoints and addresses that
// Docker's list lacks and takes its networks off their profiles; it
// leaves what Docker has, what this run made since, another node's, and
// does nothing while the Engine is away.
func TestGarbage(t *testing.T) {
	h := newHarness(t, nil)
	ctx := t.Context()
	h.engine.put(EngineNetwork{ID: netA, Name: "web"})
	n, _ := h.s.network(ctx, netA)
	if err := h.s.ensureProfile(ctx, n); err != nil {
		t.Fatal(err)
	}
	var kept, gone, fresh address
	h.must(IPAMSocket, "/IpamDriver.RequestAddress", requestAddress{PoolID: anyPoolV4}, &kept)
	h.must(IPAMSocket, "/IpamDriver.RequestAddress", requestAddress{PoolID: anyPoolV4}, &gone)
	for _, c := range []struct{ ep, addr string }{{epA, kept.Address}, {epB, gone.Address}} {
		h.must(NetworkSocket, "/NetworkDriver.CreateEndpoint", createEndpoint{NetworkID: netA, EndpointID: c.ep,
			Interface: &endpointInterface{Address: c.addr}}, nil)
	}
	// As after a restart: nothing of this run is live any more.
	h.s.mu.Lock()
	clear(h.s.live)
	h.s.mu.Unlock()
	h.must(IPAMSocket, "/IpamDriver.RequestAddress", requestAddress{PoolID: anyPoolV4}, &fresh)

	h.engine.err = syscall.ECONNREFUSED
	if err := h.s.collect(ctx); !engineAway(err) {
		t.Errorf("a pass without the Engine = %v", err)
	}
	h.engine.err = nil
	h.engine.put(EngineNetwork{ID: netA, Name: "web", Containers: map[string]EngineEndpoint{
		"c1": {EndpointID: epA, IPv4Address: kept.Address}}})
	if err := h.s.collect(ctx); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(h.wl.removes, []string{epB}) {
		t.Errorf("removed endpoints %v; want only %s", h.wl.removes, epB)
	}
	for _, c := range []struct {
		addr string
		held bool
	}{{kept.Address, true}, {gone.Address, false}, {fresh.Address, true}} {
		_, err := h.s.IPAM.Lookup(ctx, netip.MustParsePrefix(c.addr).Addr())
		if (err == nil) != c.held {
			t.Errorf("%s after the pass: %v (want held %v)", c.addr, err, c.held)
		}
	}
	// Docker's network is gone: the profile goes with it (no endpoint
	// of the fake uses it once the endpoint is gone too).
	h.engine.mu.Lock()
	delete(h.engine.nets, netA)
	h.engine.mu.Unlock()
	if err := h.s.collect(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := etcdv3.GetOf[*store.Profile](ctx, h.s.Store, "", "web"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("the profile of a network Docker no longer has: %v", err)
	}
}

// eventually retries cond for up to 10 s.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}
