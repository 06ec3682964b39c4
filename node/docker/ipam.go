package docker

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"net/netip"
	"slices"
	"strings"

	"calico/internal/quote"
	"calico/node/workload"
	"calico/store/ipam"

	"github.com/google/uuid"
)

// calico-ipam's address spaces and the pool ids of a network without
// --subnet (every pool of a family), as Calico's plugin names them. A
// network with --subnet has the subnet as its pool id, so that a
// restarted node knows every pool id without state.
const (
	localSpace  = "CalicoLocalAddressSpace"
	globalSpace = "CalicoGlobalAddressSpace"
	anyPoolV4   = "CalicoPoolIPv4"
	anyPoolV6   = "CalicoPoolIPv6"
)

// handlePrefix starts the IPAM handle of every address calico-ipam
// allocates (one handle per address: Docker releases them one by one).
const handlePrefix = workload.OrchestratorLibnetwork + "."

func (s *Server) ipamHandler() http.Handler {
	return s.handler(routes{
		"/Plugin.Activate": call(s, activated("IpamDriver", nil)),
		"/IpamDriver.GetCapabilities": call(s, func(context.Context, empty) (ipamCapabilities, error) {
			return ipamCapabilities{}, nil
		}),
		"/IpamDriver.GetDefaultAddressSpaces": call(s, func(context.Context, empty) (addressSpaces, error) {
			return addressSpaces{LocalDefaultAddressSpace: localSpace, GlobalDefaultAddressSpace: globalSpace}, nil
		}),
		"/IpamDriver.RequestPool":    call(s, s.requestPool),
		"/IpamDriver.ReleasePool":    call(s, func(context.Context, poolID) (empty, error) { return empty{}, nil }),
		"/IpamDriver.RequestAddress": call(s, s.requestAddress),
		"/IpamDriver.ReleaseAddress": call(s, s.releaseAddress),
	})
}

// requestPool is a network's pool: its --subnet, which must be one of
// calico's pools or lie inside one, or without --subnet every pool of the
// family. The pool's data names gateway 0.0.0.0/0 (::/0), so that Docker
// asks for no gateway address: containers route via 169.254.1.1.
func (s *Server) requestPool(ctx context.Context, req requestPool) (pool, error) {
	switch {
	case req.SubPool != "":
		return pool{}, fmt.Errorf("calico-ipam takes no --ip-range (%s): give --subnet one of calico's pools, or a part of one", quote.Clip(req.SubPool))
	case len(req.Options) > 0:
		return pool{}, fmt.Errorf("calico-ipam takes no --ipam-opt (got %s)", strings.Join(slices.Sorted(maps.Keys(req.Options)), ", "))
	}
	id, gw := anyPoolV4, "0.0.0.0/0"
	if req.V6 {
		id, gw = anyPoolV6, "::/0"
	}
	if req.Pool != "" {
		cidr, err := netip.ParsePrefix(req.Pool)
		if err != nil || cidr != cidr.Masked() || cidr.Addr().Is4() == req.V6 {
			return pool{}, fmt.Errorf("--subnet %q is not an IPv%d network prefix", quote.Clip(req.Pool), map[bool]int{false: 4, true: 6}[req.V6])
		}
		id = cidr.String()
	}
	if _, err := s.poolsOf(ctx, id); err != nil {
		return pool{}, err
	}
	cidr := gw
	if req.Pool != "" {
		cidr = id
	}
	return pool{PoolID: id, Pool: cidr, Data: map[string]string{optGatewayType: gw}}, nil
}

// poolsOf are the ranges to allocate from for a pool id: every enabled
// pool of this node of the family, or the --subnet within its pool.
func (s *Server) poolsOf(ctx context.Context, id string) ([]ipam.Pool, error) {
	pools, err := s.Workloads.Pools(ctx)
	if err != nil {
		return nil, err
	}
	if id == anyPoolV4 || id == anyPoolV6 {
		v := map[string]int{anyPoolV4: 4, anyPoolV6: 6}[id]
		pools = slices.DeleteFunc(pools, func(p ipam.Pool) bool { return family(p.CIDR.Addr()) != v })
		if len(pools) == 0 {
			return nil, fmt.Errorf("no enabled IPv%d pool applies to this node (see calico pool list)", v)
		}
		return pools, nil
	}
	cidr, err := netip.ParsePrefix(id)
	if err != nil {
		return nil, fmt.Errorf("pool id %q is not calico-ipam's: the network was made by another IPAM driver", quote.Clip(id))
	}
	var names []string
	for _, p := range pools {
		names = append(names, p.CIDR.String())
		if !p.CIDR.Contains(cidr.Addr()) || cidr.Bits() < p.CIDR.Bits() {
			continue
		}
		if cidr.Bits() > p.BlockSize {
			return nil, fmt.Errorf("--subnet %s is smaller than the blocks of pool %s (/%d): give a /%d or larger", cidr, p.CIDR, p.BlockSize, p.BlockSize)
		}
		return []ipam.Pool{{CIDR: cidr, BlockSize: p.BlockSize}}, nil
	}
	return nil, fmt.Errorf("--subnet %s is neither one of calico's IP pools nor inside one (the enabled pools of this node: %s; calico pool add makes one)", cidr, orNone(names))
}

func orNone(s []string) string {
	if len(s) == 0 {
		return "none"
	}
	return strings.Join(s, ", ")
}

// requestAddress allocates an endpoint's address: the one asked for
// (docker run --ip, --ip6), which must lie in the network's pools and be
// free, or any free one. Each address gets an IPAM handle of its own.
func (s *Server) requestAddress(ctx context.Context, req requestAddress) (address, error) {
	if req.Options["RequestAddressType"] == optGatewayType {
		return address{}, errors.New("a calico network has no gateway address (its containers route via 169.254.1.1): leave out --gateway")
	}
	pools, err := s.poolsOf(ctx, req.PoolID)
	if err != nil {
		return address{}, err
	}
	h := handlePrefix + strings.ReplaceAll(uuid.NewString(), "-", "")
	attrs := map[string]string{"node": s.Node, "orchestrator": workload.OrchestratorLibnetwork, "pool": req.PoolID}
	s.markLive(h)
	a, err := s.allocate(ctx, req.Address, pools, h, attrs)
	if err != nil {
		s.unmarkLive(h)
		return address{}, err
	}
	return address{Address: netip.PrefixFrom(a, a.BitLen()).String(), Data: map[string]string{}}, nil
}

func (s *Server) allocate(ctx context.Context, want string, pools []ipam.Pool, h string, attrs map[string]string) (netip.Addr, error) {
	if want == "" {
		return s.IPAM.AutoAssign(ctx, h, s.Node, pools, attrs)
	}
	a, err := netip.ParseAddr(want)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("address %q is not an IP address", quote.Clip(want))
	}
	a = a.Unmap()
	i := slices.IndexFunc(pools, func(p ipam.Pool) bool { return p.CIDR.Contains(a) })
	if i < 0 {
		return netip.Addr{}, fmt.Errorf("address %s is not in the network's pools (%s)", a, poolList(pools))
	}
	err = s.IPAM.Assign(ctx, a, h, s.Node, pools[i], attrs)
	if errors.Is(err, ipam.ErrInUse) {
		return netip.Addr{}, fmt.Errorf("address %s is already in use", a)
	}
	return a, err
}

func poolList(pools []ipam.Pool) string {
	var s []string
	for _, p := range pools {
		s = append(s, p.CIDR.String())
	}
	return strings.Join(s, ", ")
}

// releaseAddress frees an address calico-ipam gave this node's Docker;
// one that is free already is no error, and another's is left alone.
func (s *Server) releaseAddress(ctx context.Context, req releaseAddress) (empty, error) {
	a, err := netip.ParseAddr(req.Address)
	if err != nil {
		return empty{}, fmt.Errorf("address %q is not an IP address", quote.Clip(req.Address))
	}
	al, err := s.IPAM.Lookup(ctx, a.Unmap())
	if errors.Is(err, ipam.ErrNotAllocated) {
		return empty{}, nil
	}
	if err != nil {
		return empty{}, err
	}
	if !s.ours(al) {
		s.Log.Warn("Docker released an address calico-ipam did not give it; leaving it", "address", a, "handle", al.Handle)
		return empty{}, nil
	}
	if _, err := s.IPAM.ReleaseByHandle(ctx, al.Handle); err != nil {
		return empty{}, err
	}
	s.unmarkLive(al.Handle)
	return empty{}, nil
}

// ours says whether calico-ipam gave this node's Docker the allocation.
func (s *Server) ours(al ipam.Allocation) bool {
	return strings.HasPrefix(al.Handle, handlePrefix) && al.Attrs["orchestrator"] == workload.OrchestratorLibnetwork && al.Attrs["node"] == s.Node
}
