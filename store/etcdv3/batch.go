package etcdv3

import (
	"calico/internal/quote"
	"calico/store"
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/google/uuid"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// MaxBatch is the most resources one ApplyAll or DeleteAll writes: they
// go in one etcd transaction, and the embedded etcd takes 1,024
// operations in one (an external etcd, 128 unless told otherwise).
const MaxBatch = 500

// ApplyAll writes rs in one transaction: all of them or none. With
// create, none may exist yet (store.ErrExists names the first that does);
// otherwise each is created, or replaces what is there (only the version
// its resourceVersion names, if it has one: store.ErrConflict otherwise). Each
// resource is validated and gets its defaults, uid, creationTimestamp and
// new resourceVersion. It reports which resources were created.
func (s *Store) ApplyAll(ctx context.Context, rs []store.Resource, create bool) ([]bool, error) {
	if err := checkBatch(rs); err != nil {
		return nil, err
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
		return nil, errors.Join(errs...)
	}
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	for attempt := 1; ; attempt++ {
		// The first attempt reads from the member the client asks, as
		// that member has it (serializable: no round trip through the
		// leader). The write's guards catch a read gone stale, and a
		// refusal made on the strength of it is read again, with the
		// leader, before it is given.
		first := attempt == 1
		created, cmps, ops, err := s.planApply(ctx, rs, create, first)
		if err != nil && first {
			continue
		}
		if err != nil {
			return nil, batchError(err)
		}
		ok, rev, err := Commit(ctx, s.kv, cmps, ops)
		if err != nil {
			return nil, batchError(err)
		}
		if ok {
			for _, r := range rs {
				r.Meta().ResourceVersion = strconv.FormatInt(rev, 10)
			}
			return created, nil
		}
		if attempt == 5 {
			return nil, fmt.Errorf("applying %d resources: %w: they kept changing; try again", len(rs), store.ErrConflict)
		}
	}
}

// planApply reads what rs would replace (serializable: see ApplyAll) and
// makes the guarded writes.
func (s *Store) planApply(ctx context.Context, rs []store.Resource, create, serializable bool) (created []bool, cmps []clientv3.Cmp, ops []clientv3.Op, err error) {
	olds, err := s.getAll(ctx, rs, serializable)
	if err != nil {
		return nil, nil, nil, err
	}
	now := time.Now().UTC().Format(time.RFC3339)
	for i, r := range rs {
		id, old, m := store.IDOf(r), olds[i], r.Meta()
		switch {
		case old == nil && m.ResourceVersion != "":
			return nil, nil, nil, &store.IDError{ID: id, Err: store.ErrNotFound}
		case old == nil:
			m.UID, m.CreationTimestamp = uuid.NewString(), now
			cmps = append(cmps, clientv3.Compare(clientv3.CreateRevision(store.Key(id)), "=", 0))
		case create:
			return nil, nil, nil, &store.IDError{ID: id, Err: store.ErrExists}
		default:
			if m.ResourceVersion != "" && m.ResourceVersion != old.Meta().ResourceVersion {
				return nil, nil, nil, &store.IDError{ID: id, Err: store.ErrConflict, Rev: m.ResourceVersion}
			}
			if err := immutable(old, r); err != nil {
				return nil, nil, nil, err
			}
			m.UID, m.CreationTimestamp = old.Meta().UID, old.Meta().CreationTimestamp
			cur, _ := strconv.ParseInt(old.Meta().ResourceVersion, 10, 64)
			cmps = append(cmps, clientv3.Compare(clientv3.ModRevision(store.Key(id)), "=", cur))
		}
		val, err := store.EncodeStored(r)
		if err != nil {
			return nil, nil, nil, err
		}
		ops = append(ops, clientv3.OpPut(store.Key(id), val))
		created = append(created, old == nil)
	}
	guards, err := s.batchGuards(ctx, rs, serializable)
	return created, append(cmps, guards...), ops, err
}

// getAll reads the current version of each resource's key; nil where
// there is none. The reads go in one read-only transaction: one round
// trip for the batch, not one per resource. A serializable one reads
// what the member asked has, which may be behind.
func (s *Store) getAll(ctx context.Context, rs []store.Resource, serializable bool) ([]store.Resource, error) {
	var opts []clientv3.OpOption
	if serializable {
		opts = append(opts, clientv3.WithSerializable())
	}
	ops := make([]clientv3.Op, len(rs))
	for i, r := range rs {
		ops[i] = clientv3.OpGet(store.Key(store.IDOf(r)), opts...)
	}
	resp, err := s.kv.Txn(ctx).Then(ops...).Commit()
	if err != nil {
		return nil, fmt.Errorf("reading %d resources: %w", len(ops), err)
	}
	out := make([]store.Resource, len(rs))
	for i, r := range resp.Responses {
		if kvs := r.GetResponseRange().GetKvs(); len(kvs) > 0 {
			out[i] = store.DecodeStored(store.IDOf(rs[i]), kvs[0].Value, kvs[0].ModRevision)
		}
	}
	return out, nil
}

// batchGuards checks rs against the datastore (pools against pools,
// policies against their tiers, unless the tier comes with them) and
// returns the comparisons that keep those checks true. Its reads are
// serializable as planApply's are (the comparisons catch a stale one).
func (s *Store) batchGuards(ctx context.Context, rs []store.Resource, serializable bool) ([]clientv3.Cmp, error) {
	tiers := map[string]bool{}
	for _, r := range rs {
		if t, ok := r.(*store.Tier); ok {
			tiers[t.Metadata.Name] = true
		}
	}
	var out []clientv3.Cmp
	pools := false
	for _, r := range rs {
		if tiers[policyTier(r)] {
			continue // the tier is written with its policies, or checked
		}
		g, err := s.guards(ctx, r, serializable)
		if err != nil {
			return nil, err
		}
		if _, pool := r.(*store.IPPool); pool {
			if pools {
				continue // every pool's guard is the same
			}
			pools = true
		}
		if t := policyTier(r); t != "" {
			tiers[t] = true // one check per tier
		}
		out = append(out, g...)
	}
	return out, nil
}

// DeleteAll deletes the resources with these ids in one transaction: all
// of them or none. A resource that others still refer to is refused, as
// by Delete.
func (s *Store) DeleteAll(ctx context.Context, ids []store.ID) ([]store.Resource, error) {
	if len(ids) > MaxBatch {
		return nil, fmt.Errorf("%d resources are more than one transaction takes (%d): split the input", len(ids), MaxBatch)
	}
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	going := map[string]bool{}
	for _, id := range ids {
		going[store.Key(id)] = true
	}
	for attempt := 1; ; attempt++ {
		var olds []store.Resource
		var cmps []clientv3.Cmp
		var ops []clientv3.Op
		for _, id := range ids {
			old, err := s.Get(ctx, id)
			if err != nil {
				return nil, err
			}
			guards, err := s.references(ctx, old, going)
			if err != nil {
				return nil, err
			}
			cur, _ := strconv.ParseInt(old.Meta().ResourceVersion, 10, 64)
			cmps = append(append(cmps, guards...), clientv3.Compare(clientv3.ModRevision(store.Key(id)), "=", cur))
			ops = append(ops, clientv3.OpDelete(store.Key(id)))
			olds = append(olds, old)
		}
		ok, _, err := Commit(ctx, s.kv, cmps, ops)
		if err != nil {
			return nil, batchError(err)
		}
		if ok {
			return olds, nil
		}
		if attempt == 5 {
			return nil, fmt.Errorf("deleting %d resources: %w: they kept changing; try again", len(ids), store.ErrConflict)
		}
	}
}

// checkBatch refuses a batch too large for one transaction, or one that
// names a resource twice.
func checkBatch(rs []store.Resource) error {
	if len(rs) > MaxBatch {
		return fmt.Errorf("%d resources are more than one transaction takes (%d): split the input", len(rs), MaxBatch)
	}
	seen := map[string]bool{}
	for _, r := range rs {
		k := store.Key(store.IDOf(r))
		if seen[k] {
			return &store.InvalidError{ID: store.IDOf(r), Fields: []store.FieldError{{Field: "metadata.name", Msg: "appears twice in the input"}}}
		}
		seen[k] = true
	}
	return nil
}

// batchError says plainly when the datastore refused a batch for its size;
// nothing was written.
func batchError(err error) error {
	switch {
	case errors.Is(err, rpctypes.ErrTooManyOps):
		return fmt.Errorf("the datastore takes fewer operations in one transaction (etcd --max-txn-ops): apply fewer resources at once; nothing was written")
	case errors.Is(err, rpctypes.ErrRequestTooLarge):
		return fmt.Errorf("the input is larger than the datastore takes in one request (etcd --max-request-bytes): apply fewer resources at once; nothing was written")
	}
	return err
}

// overlappingPools refuses input whose pools overlap each other.
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
				return &store.InvalidError{ID: store.IDOf(b), Fields: []store.FieldError{{Field: "spec.cidr", Msg: fmt.Sprintf("%s overlaps IPPool %q (%s) in the same input", cb, quote.Clip(a.Metadata.Name), ca)}}}
			}
		}
	}
	return nil
}
