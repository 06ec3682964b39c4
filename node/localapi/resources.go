package localapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"calico/node/api"
	"calico/node/workload"
	"calico/store"
)

// applyData applies (mode "apply"), creates ("create") or deletes
// ("delete") the resources of a YAML or JSON document. Every resource is
// decoded and validated before anything is written, so bad input changes
// nothing.
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
	var errs []error
	for _, r := range rs {
		if err := store.Validate(r); err != nil {
			errs = append(errs, err)
		}
	}
	if err := overlappingPools(rs); err != nil {
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		return nil, api.Errorf(api.BadRequest, "%w", errors.Join(errs...))
	}
	out := &api.Applied{}
	for i, r := range rs {
		action := "created"
		if mode == "create" {
			err = s.Store.Create(ctx, r)
		} else {
			var created bool
			created, err = s.Store.Apply(ctx, r)
			if !created {
				action = "configured"
			}
		}
		if err != nil {
			if i > 0 {
				return nil, fmt.Errorf("%w (the %d resources before it were applied)", err, i)
			}
			return nil, err
		}
		out.Results = append(out.Results, applied(r, action))
	}
	return out, nil
}

func applied(r store.Resource, action string) api.AppliedResource {
	m := r.Meta()
	return api.AppliedResource{Kind: r.Type().Kind, Namespace: m.Namespace, Name: m.Name, Action: action}
}

// overlappingPools refuses a document whose pools overlap each other.
func overlappingPools(rs []store.Resource) error {
	var pools []*store.IPPool
	for _, r := range rs {
		if p, ok := r.(*store.IPPool); ok {
			pools = append(pools, p)
		}
	}
	for i, a := range pools {
		ca, _ := store.ParseCIDR(a.Spec.CIDR)
		for _, b := range pools[i+1:] {
			cb, _ := store.ParseCIDR(b.Spec.CIDR)
			if ca.Overlaps(cb) {
				return fmt.Errorf("IPPool %q: spec.cidr: %s overlaps IPPool %q (%s) in the same input", b.Metadata.Name, cb, a.Metadata.Name, ca)
			}
		}
	}
	return nil
}

func (s *Server) deleteAll(ctx context.Context, rs []store.Resource) (*api.Applied, error) {
	for _, r := range rs { // only the identity of each matters
		if store.KindOf(r).Namespaced && r.Meta().Namespace == "" {
			r.Meta().Namespace = "default"
		}
		if err := s.checkDelete(ctx, store.IDOf(r)); err != nil {
			return nil, err
		}
	}
	out := &api.Applied{}
	for i, r := range rs {
		if _, err := s.Store.Delete(ctx, store.IDOf(r), ""); err != nil {
			if i > 0 {
				return nil, fmt.Errorf("%w (the %d resources before it were deleted)", err, i)
			}
			return nil, err
		}
		out.Results = append(out.Results, applied(r, "deleted"))
	}
	return out, nil
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
		w, err := store.GetOf[*store.WorkloadEndpoint](ctx, s.Store, id.Namespace, id.Name)
		if err != nil {
			return err
		}
		if w.Spec.Orchestrator == workload.Orchestrator {
			return api.Errorf(api.Conflict, "WorkloadEndpoint %s/%s belongs to workload %s on node %s: remove it there with `calico workload rm %s`", id.Namespace, id.Name, w.Spec.Workload, w.Spec.Node, w.Spec.Workload)
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
		b, err := json.Marshal(r)
		if err != nil {
			return nil, err
		}
		out.Items = append(out.Items, b)
	}
	return out, nil
}
