package workload

import (
	"context"
	"errors"
	"net/netip"
	"slices"
	"strings"

	"calico/internal/quote"
	"calico/node/api"
	"calico/store"
	"calico/store/etcdv3"
	"calico/store/ipam"
)

// pool is an enabled IP pool that applies to this node.
type pool struct {
	ipam.Pool
	name string
}

// allocation is what an add asks of IPAM.
type allocation struct {
	ips, pools []string
	families   []int
	attrs      map[string]string
	flags      map[string]string
}

// assign takes the given addresses, or one address of each family asked
// for (by default: each family that has an enabled pool for this node).
// On failure it releases what it took.
func (s *Service) assign(ctx context.Context, al allocation, handle string) (addrs []netip.Addr, err error) {
	pools, all, err := s.eligiblePools(ctx)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil && len(addrs) > 0 {
			s.release(handle)
		}
	}()
	if len(al.ips) > 0 {
		return s.assignGiven(ctx, al.ips, all, handle, al.attrs)
	}
	families := al.families
	if len(al.pools) > 0 {
		chosen, err := choosePools(al.pools, all, al.flags["pools"])
		if err != nil {
			return nil, err
		}
		pools = narrow(pools, chosen, families)
	}
	if len(families) == 0 {
		families = []int{4, 6}
	}
	for _, v := range families {
		fam := slices.DeleteFunc(slices.Clone(pools), func(p pool) bool { return family(p.CIDR.Addr()) != v })
		if len(fam) == 0 {
			if len(al.families) > 0 {
				return addrs, api.FieldErrorf(api.BadRequest, "pools", "no enabled IPv%d pool applies to this node (see `calico pool list`)", v)
			}
			continue
		}
		a, err := s.IPAM.AutoAssign(ctx, handle, s.Node, ipamPools(fam), al.attrs)
		if err != nil {
			return addrs, err
		}
		addrs = append(addrs, a)
	}
	if len(addrs) == 0 {
		return nil, api.FieldErrorf(api.BadRequest, "pools", "no enabled IP pool applies to this node (see `calico pool list`)")
	}
	return addrs, nil
}

// allocated takes addresses that the front end's IPAM holds already,
// once IPAM confirms that each is allocated.
func (s *Service) allocated(ctx context.Context, ips []string) ([]netip.Addr, error) {
	var out []netip.Addr
	for _, ip := range ips {
		a := netip.MustParseAddr(ip).Unmap() // checkAdd checked it
		if _, err := s.IPAM.Lookup(ctx, a); errors.Is(err, ipam.ErrNotAllocated) {
			return nil, api.FieldErrorf(api.BadRequest, "ips", "address %s is not allocated (the front end allocates the addresses it gives)", a)
		} else if err != nil {
			return nil, err
		}
		out = append(out, a)
	}
	return out, nil
}

// Pools are the pools automatic assignment takes from on this node
// (eligiblePools), in name order.
func (s *Service) Pools(ctx context.Context) ([]ipam.Pool, error) {
	pools, _, err := s.eligiblePools(ctx)
	return ipamPools(pools), err
}

// narrow keeps the chosen pools; when families are asked for, a family
// of which none was chosen keeps all its pools (Calico's ipv4_pools
// limit IPv4 only).
func narrow(pools, chosen []pool, families []int) []pool {
	if len(families) == 0 {
		return chosen
	}
	out := slices.Clone(chosen)
	for _, v := range []int{4, 6} {
		if !slices.ContainsFunc(chosen, func(p pool) bool { return family(p.CIDR.Addr()) == v }) {
			out = append(out, slices.DeleteFunc(slices.Clone(pools), func(p pool) bool { return family(p.CIDR.Addr()) != v })...)
		}
	}
	return out
}

func ipamPools(ps []pool) []ipam.Pool {
	out := make([]ipam.Pool, len(ps))
	for i, p := range ps {
		out[i] = p.Pool
	}
	return out
}

// assignGiven takes the addresses a request names, from any pool for
// workloads (Manual ones too, whatever their nodeSelector, as Calico's).
func (s *Service) assignGiven(ctx context.Context, ips []string, all []*store.IPPool, handle string, attrs map[string]string) ([]netip.Addr, error) {
	var out []netip.Addr
	for _, ip := range ips {
		a := netip.MustParseAddr(ip).Unmap() // checkAdd checked it
		p, err := ipam.PoolForAddr(all, a)
		if err != nil {
			return out, api.FieldErrorf(api.BadRequest, "ips", "%v", err)
		}
		if err := s.IPAM.Assign(ctx, a, handle, s.Node, p, attrs); err != nil {
			if errors.Is(err, ipam.ErrInUse) {
				return out, api.FieldErrorf(api.Conflict, "ips", "address %s is already in use", a)
			}
			return out, err
		}
		out = append(out, a)
	}
	return out, nil
}

// choosePools finds the pools a request names, by CIDR or by name: any
// pool for workloads (Manual ones too, whatever their nodeSelector, as
// Calico's).
func choosePools(names []string, all []*store.IPPool, flag string) ([]pool, error) {
	var chosen []pool
	for _, c := range names {
		cidr, err := store.ParseCIDR(c)
		if i := slices.IndexFunc(all, func(p *store.IPPool) bool { return p.Metadata.Name == c }); i >= 0 {
			cidr, err = store.ParseCIDR(all[i].Spec.CIDR)
		}
		if err != nil {
			return nil, api.FieldErrorf(api.BadRequest, "pools", "%s %s is not an IP pool's name or CIDR (see `calico pool list`)", flag, quote.Clip(c))
		}
		p, err := ipam.RequestedPool(all, cidr)
		if err != nil {
			return nil, api.FieldErrorf(api.BadRequest, "pools", "%s %s: %v", flag, quote.Clip(c), err)
		}
		chosen = append(chosen, pool{Pool: p, name: p.Name})
	}
	return chosen, nil
}

// eligiblePools are the pools automatic assignment takes from on this
// node (ipam.PoolsFor: enabled, Automatic, for workloads, selecting the
// node), in name order, and every pool.
func (s *Service) eligiblePools(ctx context.Context) (auto []pool, all []*store.IPPool, err error) {
	all, err = etcdv3.ListOf[*store.IPPool](ctx, s.Store, "")
	if err != nil {
		return nil, nil, err
	}
	var labels map[string]string
	if n, err := etcdv3.GetOf[*store.Node](ctx, s.Store, "", s.Node); err == nil {
		labels = n.Metadata.Labels
	}
	ps, _ := ipam.PoolsFor(all, labels) // the problems are the agent's to report
	for _, p := range ps {
		auto = append(auto, pool{Pool: p, name: p.Name})
	}
	return auto, all, nil
}

// ensureProfile creates a missing profile with the classic semantics: its
// members may reach each other, and their egress is open. A profile made
// here is removed again if the workload add fails (unless another
// workload uses it by then); made says whether it made one.
func (s *Service) ensureProfile(ctx context.Context, name string, u *undo) (made bool, err error) {
	_, err = etcdv3.GetOf[*store.Profile](ctx, s.Store, "", name)
	if !errors.Is(err, store.ErrNotFound) {
		return false, err
	}
	p := store.ClassicProfile(name)
	err = s.Store.Create(ctx, p)
	if errors.Is(err, store.ErrExists) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	u.add(func() {
		ctx, cancel := cleanupContext()
		defer cancel()
		s.Store.Delete(ctx, store.IDOf(p), p.Metadata.ResourceVersion)
	})
	return true, nil
}

// Allocate gives a CNI attachment addresses without wiring anything
// (calico-ipam delegated from another plugin). A failure releases what
// it took; the handle's addresses are released together (Release, GC).
func (s *Service) Allocate(ctx context.Context, req api.IPAMAllocate) (*api.IPAMAllocation, error) {
	if req.Node != "" && req.Node != s.Node {
		return nil, api.FieldErrorf(api.BadRequest, "node", "the request is for node %q, but this node is %s", quote.Clip(req.Node), s.Node)
	}
	id, err := s.attachment(api.Attachment{ContainerID: req.ContainerID, Interface: "eth0", Network: req.Network, Namespace: req.Namespace})
	if err != nil {
		return nil, err
	}
	if err := checkAdd(&api.WorkloadAdd{IPs: req.IPs, Families: req.Families}, id); err != nil {
		return nil, err
	}
	defer s.lock("ipam/" + id.handle)()
	name := req.Name
	if name == "" {
		name = req.ContainerID
	}
	addrs, err := s.assign(ctx, allocation{ips: req.IPs, pools: req.Pools, families: req.Families, flags: id.flags,
		attrs: s.cniAttrs(id, name)}, id.handle)
	if err != nil {
		return nil, err
	}
	_, all, err := s.eligiblePools(ctx)
	if err != nil {
		s.release(id.handle)
		return nil, err
	}
	out := &api.IPAMAllocation{Handle: id.handle}
	for _, a := range addrs {
		bits := a.BitLen()
		if p, err := ipam.PoolForAddr(all, a); err == nil {
			bits = p.CIDR.Bits()
		}
		out.Addresses = append(out.Addresses, netip.PrefixFrom(a, bits))
	}
	return out, nil
}

// cniAttrs are the attributes recorded with a CNI attachment's
// addresses: what finds them again without the endpoint (GC).
func (s *Service) cniAttrs(id *ident, name string) map[string]string {
	return map[string]string{"node": s.Node, "namespace": id.namespace, "workload": name,
		"network": id.network, "containerID": id.containerID}
}

// Release frees the addresses of a CNI attachment's handle; one that
// holds none is no error.
func (s *Service) Release(ctx context.Context, req api.IPAMRelease) error {
	id, err := s.attachment(api.Attachment{ContainerID: req.ContainerID, Interface: "eth0", Network: req.Network})
	if err != nil {
		return err
	}
	defer s.lock("ipam/" + id.handle)()
	_, err = s.IPAM.ReleaseByHandle(ctx, id.handle)
	return err
}

// GCAddresses releases the addresses this host holds for attachments of
// a network whose container is not valid, and returns their handles.
func (s *Service) GCAddresses(ctx context.Context, req api.IPAMGC) ([]string, error) {
	if _, err := s.attachment(api.Attachment{ContainerID: "x", Interface: "eth0", Network: req.Network}); err != nil {
		return nil, err
	}
	handles, err := s.IPAM.HandlesOf(ctx, map[string]string{"node": s.Node, "network": req.Network})
	if err != nil {
		return nil, err
	}
	var released []string
	var errs []error
	for _, h := range handles {
		cid, ok := strings.CutPrefix(h, req.Network+".")
		if !ok || slices.Contains(req.Valid, cid) {
			continue
		}
		unlock := s.lock("ipam/" + h)
		if _, err := s.IPAM.ReleaseByHandle(ctx, h); err != nil {
			errs = append(errs, err)
		} else {
			released = append(released, h)
		}
		unlock()
	}
	return released, errors.Join(errs...)
}
