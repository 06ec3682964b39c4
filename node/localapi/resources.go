package localapi

import (
	"context"
	"encoding/json"
	"errors"
	"net/netip"
	"reflect"
	"slices"

	"calico/node/api"
	"calico/node/workload"
	"calico/store"
	"calico/store/etcdv3"
	"calico/store/ipam"
)

// applyData applies (mode "apply"), creates ("create") or deletes
// ("delete") the resources of a YAML or JSON document, all or none: they
// are decoded and validated first, then written in one transaction, so
// bad input changes nothing.
func (s *Server) applyData(ctx context.Context, data []byte, mode string) (*api.Applied, error) {
	rs, err := store.Decode(data)
	if err != nil {
		return nil, api.Errorf(api.BadRequest, "%w", err)
	}
	if mode == "delete" {
		return s.deleteAll(ctx, rs)
	}
	if mode != "apply" && mode != "create" {
		return nil, api.Errorf(api.BadRequest, "unknown mode %q", mode)
	}
	if err := s.checkEndpoints(ctx, rs); err != nil {
		return nil, err
	}
	out := &api.Applied{}
	rs, out.Results = skipBuiltins(rs)
	if len(rs) == 0 {
		return out, nil
	}
	created, err := s.Store.ApplyAll(ctx, rs, mode == "create")
	if err != nil {
		return nil, err
	}
	for i, r := range rs {
		action := "configured"
		if created[i] {
			action = "created"
		}
		out.Results = append(out.Results, applied(r, action))
	}
	return out, nil
}

// skipBuiltins takes out of rs the built-in resources given as they are
// (Calico's tools list them: `calicoctl get profiles | calico apply`
// works); one given otherwise is left in, for the store to refuse.
func skipBuiltins(rs []store.Resource) (rest []store.Resource, skipped []api.AppliedResource) {
	for _, r := range rs {
		p, ok := r.(*store.Profile)
		if ok && store.IsBuiltin(store.IDOf(r)) && reflect.DeepEqual(p.Spec, store.DefaultAllow().Spec) {
			skipped = append(skipped, applied(r, "unchanged (built in)"))
			continue
		}
		rest = append(rest, r)
	}
	return rest, skipped
}

func applied(r store.Resource, action string) api.AppliedResource {
	m := r.Meta()
	return api.AppliedResource{Kind: r.Type().Kind, Namespace: m.Namespace, Name: m.Name, Action: action}
}

func (s *Server) deleteAll(ctx context.Context, rs []store.Resource) (*api.Applied, error) {
	var ids []store.ID
	for _, r := range rs { // only the identity of each matters
		if store.KindOf(r).Namespaced && r.Meta().Namespace == "" {
			r.Meta().Namespace = "default"
		}
		id := store.IDOf(r)
		if err := s.checkDelete(ctx, id); err != nil {
			return nil, err
		}
		if id.Kind == store.KindNode && s.Members != nil {
			if len(rs) > 1 {
				return nil, api.Errorf(api.BadRequest, "Node %q: delete a node on its own (`calico node rm %s`): it takes more than one transaction", id.Name, id.Name)
			}
			return s.removeNode(ctx, id.Name)
		}
		ids = append(ids, id)
	}
	olds, err := s.Store.DeleteAll(ctx, ids)
	if err != nil {
		return nil, err
	}
	out := &api.Applied{}
	for _, r := range olds {
		out.Results = append(out.Results, applied(r, "deleted"))
	}
	return out, nil
}

// removeNode deletes a Node as `calico node rm` does: refused while the
// host is alive; otherwise its etcd seat, workloads, addresses and blocks
// go with it.
func (s *Server) removeNode(ctx context.Context, name string) (*api.Applied, error) {
	if err := s.Members.RemoveNode(ctx, name); err != nil {
		return nil, err
	}
	return &api.Applied{Results: []api.AppliedResource{{Kind: store.KindNode.Name, Name: name, Action: "deleted"}}}, nil
}

func (s *Server) deleteResource(ctx context.Context, kindName, ns, name string) (*api.Applied, error) {
	kind, err := store.LookupKind(kindName)
	if err != nil {
		return nil, api.Errorf(api.BadRequest, "%w", err)
	}
	if kind.Namespaced && ns == "" {
		ns = "default"
	}
	id := store.ID{Kind: kind, Namespace: ns, Name: name}
	if err := s.checkDelete(ctx, id); err != nil {
		return nil, err
	}
	if kind == store.KindNode && s.Members != nil {
		return s.removeNode(ctx, name)
	}
	old, err := s.Store.Delete(ctx, id, "")
	if err != nil {
		return nil, err
	}
	return &api.Applied{Results: []api.AppliedResource{applied(old, "deleted")}}, nil
}

// checkDelete refuses deletes that the API keeps for other commands: a
// workload's endpoint (`calico workload rm`) and this node. What other
// resources still use is checked by the store, in the delete itself.
func (s *Server) checkDelete(ctx context.Context, id store.ID) error {
	switch id.Kind {
	case store.KindWorkloadEndpoint:
		w, err := etcdv3.GetOf[*store.WorkloadEndpoint](ctx, s.Store, id.Namespace, id.Name)
		if err != nil {
			return err
		}
		if w.Spec.Orchestrator == workload.Orchestrator {
			return api.Errorf(api.Conflict, "WorkloadEndpoint %s/%s belongs to workload %s on node %s: remove it there with `calico workload rm %s`", id.Namespace, id.Name, w.Spec.Workload, w.Spec.Node, w.Spec.Workload)
		}
		if w.Spec.Orchestrator == workload.OrchestratorCNI {
			return api.Errorf(api.Conflict, "WorkloadEndpoint %s/%s belongs to container %s on node %s: its container runtime removes it (CNI DEL)", id.Namespace, id.Name, w.Spec.ContainerID, w.Spec.Node)
		}
	case store.KindNode:
		if id.Name == s.Info.Name {
			return api.Errorf(api.Conflict, "node %s is this node: it cannot delete itself", id.Name)
		}
	}
	return nil
}

func (s *Server) getResources(ctx context.Context, kindName, ns, name string) (*api.Resources, error) {
	kind, err := store.LookupKind(kindName)
	if err != nil {
		return nil, api.Errorf(api.BadRequest, "%w", err)
	}
	var rs []store.Resource
	if name != "" {
		if kind.Namespaced && ns == "" {
			ns = "default"
		}
		r, err := s.Store.Get(ctx, store.ID{Kind: kind, Namespace: ns, Name: name})
		if err != nil {
			return nil, err
		}
		rs = []store.Resource{r}
	} else if rs, _, err = s.Store.List(ctx, kind, ns); err != nil {
		return nil, err
	}
	out := &api.Resources{Items: []json.RawMessage{}}
	for _, r := range rs {
		store.Redact(r)
		b, err := json.Marshal(r)
		if err != nil {
			return nil, err
		}
		out.Items = append(out.Items, b)
	}
	return out, nil
}

// checkEndpoints refuses WorkloadEndpoints whose addresses they do not
// hold: an address inside a pool must be allocated, to the endpoint's own
// workload when it is one of ours, and no address may be another
// endpoint's. (`calico workload add` allocates; an endpoint written here
// cannot take an address over.)
func (s *Server) checkEndpoints(ctx context.Context, rs []store.Resource) error {
	var weps []*store.WorkloadEndpoint
	for _, r := range rs {
		if w, ok := r.(*store.WorkloadEndpoint); ok {
			weps = append(weps, w)
		}
	}
	if len(weps) == 0 {
		return nil
	}
	all, err := etcdv3.ListOf[*store.WorkloadEndpoint](ctx, s.Store, "")
	if err != nil {
		return err
	}
	pools, err := etcdv3.ListOf[*store.IPPool](ctx, s.Store, "")
	if err != nil {
		return err
	}
	users := map[netip.Addr]string{}
	for _, w := range all {
		for _, a := range workloadAddrsOf(w) {
			users[a] = store.Key(store.IDOf(w))
		}
	}
	for _, w := range weps {
		if w.Metadata.Namespace == "" {
			w.Metadata.Namespace = "default"
		}
		key := store.Key(store.IDOf(w))
		for _, a := range workloadAddrsOf(w) {
			if u, ok := users[a]; ok && u != key {
				return api.Errorf(api.Conflict, "WorkloadEndpoint %s/%s: spec.ipNetworks: %s is used by another endpoint (%s)", w.Metadata.Namespace, w.Metadata.Name, a, u)
			}
			users[a] = key
			if err := s.checkAllocated(ctx, w, a, pools); err != nil {
				return err
			}
		}
	}
	return nil
}

// checkAllocated checks that an endpoint's address inside a pool is
// allocated in IPAM (to the endpoint's workload, for ours).
func (s *Server) checkAllocated(ctx context.Context, w *store.WorkloadEndpoint, a netip.Addr, pools []*store.IPPool) error {
	inPool := slices.ContainsFunc(pools, func(p *store.IPPool) bool {
		c, err := store.ParseCIDR(p.Spec.CIDR)
		return err == nil && c.Contains(a)
	})
	if !inPool {
		return nil // not ours to allocate
	}
	al, err := s.IPAM.Lookup(ctx, a)
	if errors.Is(err, ipam.ErrNotAllocated) {
		return api.Errorf(api.BadRequest, "WorkloadEndpoint %s/%s: spec.ipNetworks: %s is in a pool but not allocated: `calico workload add` allocates addresses (or use an address outside every pool)", w.Metadata.Namespace, w.Metadata.Name, a)
	}
	if err != nil {
		return err
	}
	if (w.Spec.Orchestrator == workload.Orchestrator || w.Spec.Orchestrator == workload.OrchestratorCNI) && al.Handle != workload.HandleOf(w) {
		return api.Errorf(api.Conflict, "WorkloadEndpoint %s/%s: spec.ipNetworks: %s is allocated to %s, not to this workload", w.Metadata.Namespace, w.Metadata.Name, a, al.Handle)
	}
	return nil
}
