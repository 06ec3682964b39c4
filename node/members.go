package node

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"calico/cluster"
	"calico/node/api"
	"calico/node/workload"
	"calico/store"
	"calico/store/etcdv3"
	"calico/store/ipam"
)

// members is the cluster as the local API shows and changes it: the
// cluster's membership joined with what the datastore holds of each host
// (its Node, workloads, addresses and blocks).
type members struct {
	cluster   clusterPart
	store     *etcdv3.Store
	ipam      *ipam.IPAM
	workloads *workload.Service
	name      string
}

func (m *members) Role() string { return m.cluster.Role() }

func (m *members) DiskFull() string { return m.cluster.DiskFull() }

// Unanswered says why the datastore may not have answered: the voters
// that are down, when they are too many for a quorum.
func (m *members) Unanswered() string {
	down, voters := m.cluster.VotersDown()
	if voters == 0 || len(down) < voters/2+1 {
		return ""
	}
	return fmt.Sprintf("the datastore has no quorum: %d of its %d voters are down: %s", len(down), voters, strings.Join(down, ", "))
}

// Nodes lists every node the datastore or gossip knows of; a host that
// gossip alone remembers is listed only while it is alive.
func (m *members) Nodes(ctx context.Context) ([]api.Node, error) {
	nodes, err := etcdv3.ListOf[*store.Node](ctx, m.store, "")
	if err != nil {
		return nil, err
	}
	ms, err := m.cluster.Members(ctx)
	if err != nil {
		return nil, err
	}
	byName := map[string]*api.Node{}
	for _, n := range nodes {
		out := &api.Node{Name: n.Metadata.Name, Role: "client", Gossip: "unknown"}
		if b := n.Spec.BGP; b != nil {
			out.IPv4, out.IPv6 = b.IPv4Address, b.IPv6Address
		}
		byName[out.Name] = out
	}
	for _, c := range ms {
		out, ok := byName[c.Name]
		if !ok && c.Gossip != "alive" {
			continue // gone, and no Node says otherwise
		}
		if !ok {
			out = &api.Node{Name: c.Name, IPv4: c.IPv4, IPv6: c.IPv6}
			byName[c.Name] = out
		}
		out.Role, out.Gossip, out.Since, out.Version, out.Reach = c.Role, c.Gossip, c.Since, c.Version, c.Reach
	}
	res := make([]api.Node, 0, len(byName))
	for _, n := range byName {
		res = append(res, *n)
	}
	slices.SortFunc(res, func(a, b api.Node) int { return strings.Compare(a.Name, b.Name) })
	return res, nil
}

// Leave removes this host's workloads (only with force while any remain)
// and takes the host out of the cluster: a voter hands over its seat, the
// host's blocks are released and its Node deleted, then it departs. The
// workloads the node made (the CLI's, CNI's, Docker's) are removed as
// their front end would, interfaces and namespaces included; forget then
// deletes the rest of the host's endpoints and whatever was added
// meanwhile.
func (m *members) Leave(ctx context.Context, force bool) error {
	all, err := etcdv3.ListOf[*store.WorkloadEndpoint](ctx, m.store, "")
	if err != nil {
		return err
	}
	own := slices.DeleteFunc(all, func(w *store.WorkloadEndpoint) bool { return w.Spec.Node != m.name })
	if len(own) > 0 && !force {
		return api.Errorf(api.Conflict, "%d workload(s) remain on this host (%s/%s…): remove them first, or leave with --force to remove them",
			len(own), own[0].Metadata.Namespace, own[0].Spec.Workload)
	}
	for _, w := range own {
		if !m.workloads.MadeHere(w) {
			continue
		}
		if err := m.workloads.RemoveEndpoint(ctx, w); err != nil {
			return fmt.Errorf("removing workload %s/%s: %w", w.Metadata.Namespace, w.Spec.Workload, err)
		}
	}
	if err := m.cluster.HandOver(ctx); err != nil {
		return err
	}
	if err := m.forget(ctx, m.name); err != nil {
		return err
	}
	return m.cluster.Depart(ctx)
}

// RemoveNode removes a host that is gone for good, as `calico leave`
// would have: its etcd member, its workload endpoints and their
// addresses, its blocks and its Node. A live host is refused.
func (m *members) RemoveNode(ctx context.Context, name string) error {
	n, err := etcdv3.GetOf[*store.Node](ctx, m.store, "", name)
	if errors.Is(err, store.ErrNotFound) {
		return api.Errorf(api.NotFound, "no node %s", name)
	} else if err != nil {
		return err
	}
	var addr netip.Addr
	if b := n.Spec.BGP; b != nil {
		if p, err := netip.ParsePrefix(b.IPv4Address); err == nil {
			addr = p.Addr()
		}
	}
	switch err := m.cluster.RemoveMember(ctx, name, addr); {
	case errors.Is(err, cluster.ErrSelf):
		return api.Errorf(api.BadRequest, "%w", err)
	case errors.Is(err, cluster.ErrAlive):
		return api.Errorf(api.Conflict, "%w", err)
	case err != nil:
		return err
	}
	if err := m.forget(ctx, name); err != nil {
		return err
	}
	return nil
}

// forget removes what the datastore holds of a host: its workload
// endpoints and their addresses, the other addresses allocated to it,
// its blocks and its Node.
func (m *members) forget(ctx context.Context, name string) error {
	weps, err := etcdv3.ListOf[*store.WorkloadEndpoint](ctx, m.store, "")
	if err != nil {
		return err
	}
	for _, w := range weps {
		if w.Spec.Node != name {
			continue
		}
		for _, n := range w.Spec.IPNetworks {
			if p, err := netip.ParsePrefix(n); err == nil {
				if err := m.ipam.Release(ctx, p.Addr()); err != nil && !errors.Is(err, ipam.ErrNotAllocated) {
					return err
				}
			}
		}
		if _, err := m.store.Delete(ctx, store.IDOf(w), ""); err != nil && !errors.Is(err, store.ErrNotFound) {
			return err
		}
	}
	// Addresses of the host no endpoint names: a Docker endpoint's (its
	// IPAM driver holds them), an add cut short.
	handles, err := m.ipam.HandlesOf(ctx, map[string]string{"node": name})
	if err != nil {
		return err
	}
	for _, h := range handles {
		if h == "" {
			continue // an allocation without a handle (none of ours)
		}
		if _, err := m.ipam.ReleaseByHandle(ctx, h); err != nil {
			return fmt.Errorf("releasing %s's addresses of handle %s: %w", name, h, err)
		}
	}
	if err := m.ipam.ReleaseHost(ctx, name); err != nil {
		return err
	}
	if _, err := m.store.Delete(ctx, store.ID{Kind: store.KindNode, Name: name}, ""); err != nil && !errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("deleting node %s: %w", name, err)
	}
	return nil
}
