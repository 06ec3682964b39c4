package etcdv3

import (
	"calico/store"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// references checks that nothing refers to r any more, as of one
// revision, and returns the comparisons that keep that true until the
// delete commits: whoever deletes through the store, the answer is the
// same, and nothing can start referring to r in between.
// Endpoints in going (by key) are being deleted with r and do not count.
func (s *Store) references(ctx context.Context, r store.Resource, going map[string]bool) ([]clientv3.Cmp, error) {
	if store.IsBuiltin(store.IDOf(r)) {
		return nil, &store.InUseError{ID: store.IDOf(r), Msg: "is built in: it cannot be deleted"}
	}
	switch r := r.(type) {
	case *store.IPPool:
		return s.poolReferences(ctx, r)
	case *store.Profile:
		return s.profileReferences(ctx, r, going)
	case *store.Tier:
		return s.tierReferences(ctx, r, going)
	}
	return nil, nil
}

// tierReferences refuses a built-in tier, and a tier that policies are
// in (unless they go with it).
func (s *Store) tierReferences(ctx context.Context, t *store.Tier, going map[string]bool) ([]clientv3.Cmp, error) {
	for _, b := range store.BuiltinTiers {
		if t.Metadata.Name == b.Name {
			return nil, &store.InUseError{ID: store.IDOf(t), Msg: "is built in: Calico's tools expect it"}
		}
	}
	prefixes := []string{store.KindPrefix(store.KindGlobalNetworkPolicy, ""), store.KindPrefix(store.KindNetworkPolicy, "")}
	resp, err := s.kv.Txn(ctx).Then(clientv3.OpGet(prefixes[0], clientv3.WithPrefix()), clientv3.OpGet(prefixes[1], clientv3.WithPrefix())).Commit()
	if err != nil {
		return nil, fmt.Errorf("reading the policies: %w", err)
	}
	var users []string
	for _, r := range resp.Responses {
		for _, kv := range r.GetResponseRange().Kvs {
			id, ok := store.ParseKey(string(kv.Key))
			if !ok || going[string(kv.Key)] {
				continue
			}
			if p := store.DecodeStored(id, kv.Value, kv.ModRevision); policyTier(p) == t.Metadata.Name {
				users = append(users, id.String())
			}
		}
	}
	if len(users) > 0 {
		return nil, &store.InUseError{ID: store.IDOf(t), Msg: fmt.Sprintf("has %d policies: delete or move them first (%s)", len(users), clipList(users))}
	}
	rev := resp.Header.Revision + 1
	return []clientv3.Cmp{
		clientv3.Compare(clientv3.ModRevision(prefixes[0]).WithPrefix(), "<", rev),
		clientv3.Compare(clientv3.ModRevision(prefixes[1]).WithPrefix(), "<", rev),
	}, nil
}

// poolReferences refuses a pool with addresses in use.
func (s *Store) poolReferences(ctx context.Context, p *store.IPPool) ([]clientv3.Cmp, error) {
	cidr, err := store.ParseCIDR(p.Spec.CIDR)
	if err != nil {
		return nil, nil // a pool that holds no valid CIDR holds no address
	}
	prefix := store.IPAMBlocksPrefix(cidr.Addr())
	resp, err := s.kv.Get(ctx, prefix, clientv3.WithPrefix())
	if err != nil {
		return nil, fmt.Errorf("reading the pool's blocks: %w", err)
	}
	n := 0
	for _, kv := range resp.Kvs {
		block, ok := store.ParseIPAMBlockKey(string(kv.Key))
		if !ok || !cidr.Overlaps(block) {
			continue
		}
		var b struct {
			Allocations []*int `json:"allocations"`
		}
		if err := json.Unmarshal(kv.Value, &b); err != nil {
			return nil, fmt.Errorf("reading block %s: %w", block, err)
		}
		for _, a := range b.Allocations {
			if a != nil {
				n++
			}
		}
	}
	if n > 0 {
		return nil, &store.InUseError{ID: store.IDOf(p), Msg: fmt.Sprintf("(%s) has %d addresses in use: remove those workloads first (set disabled: true to stop new allocations from it)", cidr, n)}
	}
	return []clientv3.Cmp{clientv3.Compare(clientv3.ModRevision(prefix).WithPrefix(), "<", resp.Header.Revision+1)}, nil
}

// profileReferences refuses a profile that an endpoint uses.
func (s *Store) profileReferences(ctx context.Context, p *store.Profile, going map[string]bool) ([]clientv3.Cmp, error) {
	prefixes := []string{store.KindPrefix(store.KindWorkloadEndpoint, ""), store.KindPrefix(store.KindHostEndpoint, "")}
	resp, err := s.kv.Txn(ctx).Then(clientv3.OpGet(prefixes[0], clientv3.WithPrefix()), clientv3.OpGet(prefixes[1], clientv3.WithPrefix())).Commit()
	if err != nil {
		return nil, fmt.Errorf("reading the endpoints: %w", err)
	}
	var users []string
	for _, r := range resp.Responses {
		for _, kv := range r.GetResponseRange().Kvs {
			id, ok := store.ParseKey(string(kv.Key))
			if !ok || going[string(kv.Key)] {
				continue
			}
			switch e := store.DecodeStored(id, kv.Value, kv.ModRevision).(type) {
			case *store.WorkloadEndpoint:
				if slices.Contains(e.Spec.Profiles, p.Metadata.Name) {
					users = append(users, "workload "+e.Metadata.Namespace+"/"+e.Spec.Workload)
				}
			case *store.HostEndpoint:
				if slices.Contains(e.Spec.Profiles, p.Metadata.Name) {
					users = append(users, "host endpoint "+e.Metadata.Name)
				}
			}
		}
	}
	if len(users) > 0 {
		return nil, &store.InUseError{ID: store.IDOf(p), Msg: "is in use by " + clipList(users)}
	}
	var cmps []clientv3.Cmp
	for _, prefix := range prefixes {
		cmps = append(cmps, clientv3.Compare(clientv3.ModRevision(prefix).WithPrefix(), "<", resp.Header.Revision+1))
	}
	return cmps, nil
}

// clipList joins the first few of a list, saying how many more there are.
func clipList(l []string) string {
	if len(l) <= 5 {
		return strings.Join(l, ", ")
	}
	return fmt.Sprintf("%s and %d more", strings.Join(l[:5], ", "), len(l)-5)
}
