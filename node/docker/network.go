package docker

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"net/netip"
	"slices"
	"strconv"
	"time"

	"calico/internal/quote"
	"calico/node/api"
	"calico/node/veth"
	"calico/node/workload"
	"calico/store"
	"calico/store/etcdv3"
)

// Docker's option keys that the driver reads.
const (
	optGeneric     = "com.docker.network.generic"
	optMTU         = "com.docker.network.driver.mtu"
	optInternal    = "com.docker.network.internal"
	optPortMap     = "com.docker.network.portmap"
	optGatewayType = "com.docker.network.gateway"
)

// network is what the driver knows of a Docker network.
type network struct {
	ID, Name string
	Labels   map[string]string
	MTU      int
	// Subnets are the network's --subnet pools (none: every pool).
	Subnets []netip.Prefix
}

func (s *Server) networkHandler() http.Handler {
	ok := func(context.Context, endpointID) (empty, error) { return empty{}, nil }
	return s.handler(routes{
		"/Plugin.Activate": call(s, activated("NetworkDriver", s.kickCollector)),
		"/NetworkDriver.GetCapabilities": call(s, func(context.Context, empty) (capabilities, error) {
			return capabilities{Scope: "local", ConnectivityScope: "local"}, nil
		}),
		"/NetworkDriver.CreateNetwork":               call(s, s.createNetwork),
		"/NetworkDriver.DeleteNetwork":               call(s, s.deleteNetwork),
		"/NetworkDriver.CreateEndpoint":              call(s, s.createEndpoint),
		"/NetworkDriver.DeleteEndpoint":              call(s, s.deleteEndpoint),
		"/NetworkDriver.EndpointOperInfo":            call(s, s.endpointInfo),
		"/NetworkDriver.Join":                        call(s, s.join),
		"/NetworkDriver.Leave":                       call(s, ok),
		"/NetworkDriver.ProgramExternalConnectivity": call(s, s.programExternal),
		"/NetworkDriver.RevokeExternalConnectivity":  call(s, ok),
		"/NetworkDriver.DiscoverNew":                 call(s, func(context.Context, empty) (empty, error) { return empty{}, nil }),
		"/NetworkDriver.DiscoverDelete":              call(s, func(context.Context, empty) (empty, error) { return empty{}, nil }),
		"/NetworkDriver.AllocateNetwork":             call(s, swarm),
		"/NetworkDriver.FreeNetwork":                 call(s, swarm),
		// Docker 28 asks only drivers that say GwAllocChecker; calico
		// networks have no gateway address either way.
		"/NetworkDriver.GwAllocCheck": call(s, func(context.Context, empty) (gwAllocCheck, error) {
			return gwAllocCheck{SkipIPv4: true, SkipIPv6: true}, nil
		}),
	})
}

func swarm(context.Context, empty) (empty, error) {
	return empty{}, errors.New("the calico network driver is a local plugin: it does not support Swarm's global networks")
}

// createNetwork checks a new network: calico-ipam's addresses, no
// options calico cannot honour. Its name is not known yet (the Engine
// stores the network once the driver agrees), so its profile is made
// when the Engine has it (syncNetwork), or at the latest by its first
// endpoint.
func (s *Server) createNetwork(_ context.Context, req createNetwork) (empty, error) {
	if err := checkNetworkOptions(req.Options); err != nil {
		return empty{}, err
	}
	for _, d := range slices.Concat(req.IPv4Data, req.IPv6Data) {
		if d.AddressSpace != localSpace && d.AddressSpace != globalSpace {
			return empty{}, fmt.Errorf("a calico network takes its addresses from calico's pools: create it with --ipam-driver calico-ipam (this one's IPAM gave address space %q)", quote.Clip(d.AddressSpace))
		}
		if len(d.AuxAddresses) > 0 {
			return empty{}, errors.New("a calico network takes no --aux-address: every address of its pools is a container's")
		}
	}
	s.work.Go(func() { s.syncNetwork(req.NetworkID) })
	return empty{}, nil
}

// checkNetworkOptions refuses what calico cannot do: -o options other
// than the MTU, --internal.
func checkNetworkOptions(opts map[string]any) error {
	if internal, _ := opts[optInternal].(bool); internal {
		return errors.New("a calico network cannot be --internal: limit its containers' traffic with a policy instead")
	}
	generic, _ := opts[optGeneric].(map[string]any)
	for _, k := range slices.Sorted(maps.Keys(generic)) {
		if k != optMTU {
			return fmt.Errorf("a calico network takes no option %q (-o): the only one is %s", quote.Clip(k), optMTU)
		}
		if _, err := parseMTU(fmt.Sprint(generic[k])); err != nil {
			return err
		}
	}
	return nil
}

func parseMTU(v string) (int, error) {
	mtu, err := strconv.Atoi(v)
	if err != nil || mtu < 68 || mtu > 65535 {
		return 0, fmt.Errorf("-o %s=%s: the MTU is a number from 68 to 65535", optMTU, quote.Clip(v))
	}
	return mtu, nil
}

// syncNetwork waits (up to 10 s) for the Engine to have a new network,
// then makes its profile, so that it exists with the network's labels
// before any container runs.
func (s *Server) syncNetwork(id string) {
	ctx, cancel := context.WithTimeout(s.life, 10*time.Second)
	defer cancel()
	for {
		n, err := s.network(ctx, id)
		if err == nil {
			if err := s.ensureProfile(ctx, n); err != nil {
				s.Log.Warn("making the profile of a Docker network (its first container tries again)", "network", n.Name, "err", err)
			}
			return
		}
		if !errors.Is(err, ErrNoNetwork) {
			s.Log.Info("cannot look up a new Docker network (its first container makes its profile)", "id", short(id), "err", err)
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// network is what the Engine says of the network id (cached).
func (s *Server) network(ctx context.Context, id string) (*network, error) {
	s.mu.Lock()
	n := s.networks[id]
	s.mu.Unlock()
	if n != nil {
		return n, nil
	}
	en, err := s.Engine.Network(ctx, id)
	if err != nil {
		return nil, err
	}
	if n, err = fromEngine(en); err != nil {
		return nil, err
	}
	s.mu.Lock()
	s.networks[id] = n
	s.mu.Unlock()
	return n, nil
}

// fromEngine reads the Engine's network; a name or label calico cannot
// use is an error.
func fromEngine(en *EngineNetwork) (*network, error) {
	n := &network{ID: en.ID, Name: en.Name, Labels: en.Labels}
	if err := store.Validate(store.ClassicProfile(n.Name)); err != nil {
		return nil, fmt.Errorf("Docker network %q: calico names the network's profile after it, and a profile's name is lower-case letters, digits, '-' and '.'", quote.Clip(n.Name))
	}
	p := store.ClassicProfile(n.Name)
	maps.Copy(p.Spec.LabelsToApply, n.Labels)
	if err := store.Validate(p); err != nil {
		return nil, fmt.Errorf("Docker network %s: its labels become its profile's labelsToApply: %w", n.Name, err)
	}
	if v, ok := en.Options[optMTU]; ok {
		mtu, err := parseMTU(v)
		if err != nil {
			return nil, err
		}
		n.MTU = mtu
	}
	for _, c := range en.IPAM.Config {
		// A network without --subnet has calico-ipam's "every pool",
		// 0.0.0.0/0 (::/0), which is no subnet of its own.
		if p, err := netip.ParsePrefix(c.Subnet); err == nil && p.Bits() > 0 {
			n.Subnets = append(n.Subnets, p.Masked())
		}
	}
	return n, nil
}

// deleteNetwork takes the host's network off its profile's list, and
// deletes the profile with the last one unless an endpoint uses it. It
// never fails: a profile left behind is taken care of by the garbage
// collector.
func (s *Server) deleteNetwork(ctx context.Context, req networkID) (empty, error) {
	n, err := s.network(ctx, req.NetworkID)
	s.mu.Lock()
	delete(s.networks, req.NetworkID)
	s.mu.Unlock()
	if err != nil {
		s.Log.Info("a Docker network is gone before calico learnt its name; the garbage collector takes care of its profile", "id", req.NetworkID, "err", err)
		return empty{}, nil
	}
	if err := s.releaseProfile(ctx, n.Name, req.NetworkID); err != nil {
		s.Log.Warn("updating the profile of a deleted Docker network", "network", n.Name, "err", err)
	}
	return empty{}, nil
}

// createEndpoint wires a new endpoint through the workload service: its
// profile (the network's), the addresses calico-ipam gave it, its
// interface (handed over to Docker at Join) and WorkloadEndpoint. It
// returns once the dataplane is programmed for it.
func (s *Server) createEndpoint(ctx context.Context, req createEndpoint) (empty, error) {
	n, err := s.network(ctx, req.NetworkID)
	if err != nil {
		return empty{}, fmt.Errorf("looking up network %s: %w", req.NetworkID, err)
	}
	var ips []string
	if i := req.Interface; i != nil {
		for _, a := range []string{i.Address, i.AddressIPv6} {
			if p, err := netip.ParsePrefix(a); err == nil {
				ips = append(ips, p.Addr().String())
			}
		}
	}
	if len(ips) == 0 {
		return empty{}, fmt.Errorf("endpoint %s on network %s has no address: a calico network takes its addresses from calico-ipam", short(req.EndpointID), n.Name)
	}
	if err := s.ensureProfile(ctx, n); err != nil {
		return empty{}, err
	}
	s.markLive(req.EndpointID)
	start := time.Now()
	w, err := s.Workloads.Add(ctx, api.WorkloadAdd{Orchestrator: workload.OrchestratorLibnetwork, ContainerID: req.EndpointID,
		Network: n.Name, IPs: ips, Allocated: true, MTU: n.MTU})
	if err != nil {
		s.unmarkLive(req.EndpointID)
		return empty{}, err
	}
	s.Log.Info("Docker endpoint added", "network", n.Name, "endpoint", short(req.EndpointID), "interface", w.Interface,
		"addresses", w.Addresses, "took", time.Since(start).Round(time.Millisecond))
	return empty{}, nil
}

// deleteEndpoint removes the endpoint, its interface and the endpoint's
// WorkloadEndpoint; its addresses are released by calico-ipam's
// ReleaseAddress, which Docker calls next.
func (s *Server) deleteEndpoint(ctx context.Context, req endpointID) (empty, error) {
	err := s.Workloads.RemoveAttachment(ctx, api.Attachment{Orchestrator: workload.OrchestratorLibnetwork, ContainerID: req.EndpointID})
	if err != nil {
		return empty{}, err
	}
	s.unmarkLive(req.EndpointID)
	s.Log.Info("Docker endpoint removed", "endpoint", short(req.EndpointID))
	return empty{}, nil
}

// endpointInfo is what `docker inspect` shows of the endpoint under the
// network's driver.
func (s *Server) endpointInfo(_ context.Context, req endpointID) (endpointInfo, error) {
	host, _ := workload.DockerInterfaces(req.EndpointID)
	return endpointInfo{Value: map[string]string{
		"calico.interface":        host,
		"calico.workloadendpoint": workload.OrchestratorLibnetwork + "/" + store.WorkloadEndpointName(s.Node, workload.OrchestratorLibnetwork, workload.OrchestratorLibnetwork, req.EndpointID),
	}}, nil
}

// join hands the endpoint's interface over to Docker, which moves it into
// the container, names it eth<N> and gives it its addresses. The first
// calico endpoint of a container gets the routes every workload has: its
// default routes via 169.254.1.1 and the host side's IPv6 link-local
// address, on-link. A container's further calico endpoints (docker
// network connect) get no default route, which the first one has, but an
// on-link route to their network's own --subnet pools, so that the
// container reaches that network's members from its address on it.
func (s *Server) join(ctx context.Context, req join) (joined, error) {
	_, peer := workload.DockerInterfaces(req.EndpointID)
	if !veth.Exists(peer) {
		return joined{}, fmt.Errorf("calico has no interface for endpoint %s (its creation did not complete on this node): disconnect and connect the container again", short(req.EndpointID))
	}
	n, err := s.network(ctx, req.NetworkID)
	if err != nil {
		return joined{}, fmt.Errorf("looking up network %s: %w", req.NetworkID, err)
	}
	fams, err := s.families(ctx, req.EndpointID)
	if err != nil {
		return joined{}, err
	}
	out := joined{InterfaceName: &interfaceName{SrcName: peer, DstPrefix: "eth"}}
	first, err := firstInSandbox(req.SandboxKey)
	if err != nil {
		s.Log.Debug("cannot look into the container's network namespace; taking the endpoint as its first", "sandbox", req.SandboxKey, "err", err)
	}
	if !first {
		out.DisableGatewayService = true
		for _, p := range n.Subnets {
			if fams[family(p.Addr())] {
				out.StaticRoutes = append(out.StaticRoutes, staticRoute{Destination: p.String(), RouteType: routeConnected})
			}
		}
		return out, nil
	}
	if fams[4] {
		out.Gateway = veth.GatewayV4.String()
		out.StaticRoutes = append(out.StaticRoutes, staticRoute{Destination: netip.PrefixFrom(veth.GatewayV4, 32).String(), RouteType: routeConnected})
	}
	if fams[6] {
		out.GatewayIPv6 = veth.GatewayV6.String()
		out.StaticRoutes = append(out.StaticRoutes, staticRoute{Destination: netip.PrefixFrom(veth.GatewayV6, 128).String(), RouteType: routeConnected})
	}
	return out, nil
}

// families are the IP versions of an endpoint's addresses.
func (s *Server) families(ctx context.Context, endpointID string) (map[int]bool, error) {
	name := store.WorkloadEndpointName(s.Node, workload.OrchestratorLibnetwork, workload.OrchestratorLibnetwork, endpointID)
	w, err := etcdv3.GetOf[*store.WorkloadEndpoint](ctx, s.Store, workload.OrchestratorLibnetwork, name)
	if err != nil {
		return nil, fmt.Errorf("reading endpoint %s: %w", short(endpointID), err)
	}
	out := map[int]bool{}
	for _, n := range w.Spec.IPNetworks {
		if p, err := netip.ParsePrefix(n); err == nil {
			out[family(p.Addr())] = true
		}
	}
	return out, nil
}

// programExternal refuses published ports: a calico container is reached
// at its own address.
func (s *Server) programExternal(_ context.Context, req externalConnectivity) (empty, error) {
	if pm, _ := req.Options[optPortMap].([]any); len(pm) > 0 {
		return empty{}, errors.New("a calico network publishes no ports (-p): the container's own address is routable, reach it there (and let a policy in)")
	}
	return empty{}, nil
}

func family(a netip.Addr) int {
	if a.Is4() {
		return 4
	}
	return 6
}

// short is an id as Docker's CLI shows it.
func short(id string) string { return id[:min(12, len(id))] }

// kickCollector asks the garbage collector for a pass (Docker activated
// the plugin: it started, and may have lost containers meanwhile).
func (s *Server) kickCollector() {
	select {
	case s.kick <- struct{}{}:
	default:
	}
}
