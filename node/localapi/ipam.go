package localapi

import (
	"context"
	"errors"
	"net/netip"
	"slices"

	"calico/node/api"
	"calico/store"
	"calico/store/etcdv3"
	"calico/store/ipam"
)

func (s *Server) ipamBlocks(ctx context.Context) ([]api.IPAMBlock, error) {
	blocks, err := s.IPAM.Blocks(ctx)
	if err != nil {
		return nil, err
	}
	out := []api.IPAMBlock{}
	for _, b := range blocks {
		out = append(out, api.IPAMBlock{CIDR: b.CIDR.String(), Affinity: b.Host, Allocated: len(b.Allocations),
			Size: 1 << (b.CIDR.Addr().BitLen() - b.CIDR.Bits())})
	}
	return out, nil
}

func (s *Server) ipamAddress(ctx context.Context, ip string) (*api.IPAMAddress, error) {
	a, err := netip.ParseAddr(ip)
	if err != nil {
		return nil, api.Errorf(api.BadRequest, "%q is not an address", ip)
	}
	out := &api.IPAMAddress{Address: a.String()}
	al, err := s.IPAM.Lookup(ctx, a)
	if errors.Is(err, ipam.ErrNotAllocated) {
		return out, nil
	}
	if err != nil {
		return nil, err
	}
	out.Allocated, out.Block, out.Affinity, out.Handle, out.Attrs = true, al.Block.String(), al.Host, al.Handle, al.Attrs
	weps, err := etcdv3.ListOf[*store.WorkloadEndpoint](ctx, s.Store, "")
	if err != nil {
		return nil, err
	}
	for _, w := range weps {
		if slices.Contains(workloadAddrsOf(w), a) {
			out.Workload = w.Metadata.Namespace + "/" + w.Spec.Workload + " on " + w.Spec.Node
		}
	}
	return out, nil
}

func workloadAddrsOf(w *store.WorkloadEndpoint) []netip.Addr {
	var out []netip.Addr
	for _, n := range w.Spec.IPNetworks {
		if p, err := store.ParseCIDR(n); err == nil {
			out = append(out, p.Addr())
		}
	}
	return out
}

// ipamCheck compares what IPAM holds with what workloads use: addresses
// allocated that no workload uses (leaked), addresses used that are not
// allocated, and addresses used by two workloads.
func (s *Server) ipamCheck(ctx context.Context) (*api.IPAMReport, error) {
	blocks, err := s.IPAM.Blocks(ctx)
	if err != nil {
		return nil, err
	}
	weps, err := etcdv3.ListOf[*store.WorkloadEndpoint](ctx, s.Store, "")
	if err != nil {
		return nil, err
	}
	users := map[netip.Addr][]string{}
	for _, w := range weps {
		for _, a := range workloadAddrsOf(w) {
			users[a] = append(users[a], w.Metadata.Namespace+"/"+w.Spec.Workload+"@"+w.Spec.Node)
		}
	}
	rep := &api.IPAMReport{Leaked: []api.IPAMProblem{}, Unallocated: []api.IPAMProblem{}, Duplicate: []api.IPAMProblem{}}
	allocated := map[netip.Addr]bool{}
	for _, b := range blocks {
		for _, al := range b.Allocations {
			allocated[al.Addr] = true
			rep.Allocated++
			if len(users[al.Addr]) == 0 {
				rep.Leaked = append(rep.Leaked, api.IPAMProblem{Address: al.Addr.String(), Handle: al.Handle})
			}
		}
	}
	addrs := make([]netip.Addr, 0, len(users))
	for a := range users {
		addrs = append(addrs, a)
	}
	slices.SortFunc(addrs, netip.Addr.Compare)
	for _, a := range addrs {
		rep.InUse++
		if !allocated[a] {
			rep.Unallocated = append(rep.Unallocated, api.IPAMProblem{Address: a.String(), Owners: users[a]})
		}
		if len(users[a]) > 1 {
			rep.Duplicate = append(rep.Duplicate, api.IPAMProblem{Address: a.String(), Owners: users[a]})
		}
	}
	return rep, nil
}

// ipamRelease frees one address, refusing while a workload uses it.
func (s *Server) ipamRelease(ctx context.Context, ip string) error {
	a, err := netip.ParseAddr(ip)
	if err != nil {
		return api.Errorf(api.BadRequest, "%q is not an address", ip)
	}
	weps, err := etcdv3.ListOf[*store.WorkloadEndpoint](ctx, s.Store, "")
	if err != nil {
		return err
	}
	for _, w := range weps {
		if slices.Contains(workloadAddrsOf(w), a) {
			return api.Errorf(api.Conflict, "%s is in use by workload %s/%s on %s: remove the workload instead", a, w.Metadata.Namespace, w.Spec.Workload, w.Spec.Node)
		}
	}
	if err := s.IPAM.Release(ctx, a); err != nil {
		if errors.Is(err, ipam.ErrNotAllocated) {
			return api.Errorf(api.NotFound, "%s is not allocated", a)
		}
		return err
	}
	return nil
}
