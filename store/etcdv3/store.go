package etcdv3

import (
	"calico/internal/quote"
	"calico/store"
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// Store reads and writes resources in etcd.
type Store struct {
	kv *clientv3.Client
	// timeout bounds each etcd call that has no deadline of its own.
	timeout time.Duration
}

// New returns a Store over an etcd client.
func New(kv *clientv3.Client) *Store {
	return &Store{kv: kv, timeout: 10 * time.Second}
}

// Client is the etcd client under the store, for packages that keep their
// own keys (IPAM).
func (s *Store) Client() *clientv3.Client { return s.kv }

func (s *Store) ctx(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, s.timeout)
}

// Get reads one resource.
func (s *Store) Get(ctx context.Context, id store.ID) (store.Resource, error) {
	if store.IsBuiltin(id) {
		return store.DefaultAllow(), nil
	}
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	resp, err := s.kv.Get(ctx, store.Key(id))
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", id, err)
	}
	if len(resp.Kvs) == 0 {
		return nil, &store.IDError{ID: id, Err: store.ErrNotFound}
	}
	return store.DecodeStored(id, resp.Kvs[0].Value, resp.Kvs[0].ModRevision), nil
}

// List reads every resource of kind, in namespace ns if the kind is
// namespaced and ns is not empty, sorted by namespace and name. It also
// returns the revision it read at.
func (s *Store) List(ctx context.Context, kind *store.Kind, ns string) ([]store.Resource, int64, error) {
	kvs, rev, err := s.rangePrefix(ctx, store.KindPrefix(kind, ns))
	if err != nil {
		return nil, 0, fmt.Errorf("listing %s: %w", kind.Plural, err)
	}
	out := make([]store.Resource, 0, len(kvs))
	for _, kv := range kvs {
		id, ok := store.ParseKey(string(kv.Key))
		if !ok || id.Kind != kind {
			continue
		}
		if !store.IsBuiltin(id) {
			out = append(out, store.DecodeStored(id, kv.Value, kv.ModRevision))
		}
	}
	if kind == store.KindProfile {
		out = append(out, store.DefaultAllow())
		slices.SortStableFunc(out, func(a, b store.Resource) int { return strings.Compare(a.Meta().Name, b.Meta().Name) })
	}
	return out, rev, nil
}

// listPage is how many keys one read of a listing asks etcd for. A
// listing in one read must fit the store's timeout whole: at 1,000 hosts
// (100,000 endpoints) on a busy 2-core machine a fresh node's listing
// took 35 s in tries that ran out, and `calico leave` failed listing the
// endpoints. Pages also keep etcd from building one response of hundreds
// of megabytes.
var listPage int64 = 2000

// rangePrefix reads every key under prefix, a page at a time, all at the
// revision of the first page (a consistent snapshot), and returns them in
// key order with that revision. Each page has the store's timeout unless
// ctx has a deadline, which then bounds the whole listing.
func (s *Store) rangePrefix(ctx context.Context, prefix string) ([]*mvccpb.KeyValue, int64, error) {
	end := clientv3.GetPrefixRangeEnd(prefix)
	key := prefix
	var kvs []*mvccpb.KeyValue
	var rev int64
	for {
		opts := []clientv3.OpOption{clientv3.WithRange(end), clientv3.WithLimit(listPage)}
		if rev > 0 {
			opts = append(opts, clientv3.WithRev(rev))
		}
		pctx, cancel := s.ctx(ctx)
		resp, err := s.kv.Get(pctx, key, opts...)
		cancel()
		if err != nil {
			return nil, 0, err
		}
		if rev == 0 {
			rev = resp.Header.Revision
		}
		kvs = append(kvs, resp.Kvs...)
		if !resp.More || len(resp.Kvs) == 0 {
			return kvs, rev, nil
		}
		key = string(resp.Kvs[len(resp.Kvs)-1].Key) + "\x00"
	}
}

// Create writes a new resource after validating it. It fills in r's
// defaults, uid, creationTimestamp and resourceVersion. It fails with
// store.ErrExists if the resource is already there.
func (s *Store) Create(ctx context.Context, r store.Resource) error {
	if err := store.Validate(r); err != nil {
		return err
	}
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	id := store.IDOf(r)
	guards, err := s.guards(ctx, r, false)
	if err != nil {
		return err
	}
	m := r.Meta()
	m.UID = uuid.NewString()
	m.CreationTimestamp = time.Now().UTC().Format(time.RFC3339)
	val, err := store.EncodeStored(r)
	if err != nil {
		return err
	}
	cmps := append(guards, clientv3.Compare(clientv3.CreateRevision(store.Key(id)), "=", 0))
	ok, rev, err := Commit(ctx, s.kv, cmps, []clientv3.Op{clientv3.OpPut(store.Key(id), val)})
	if err != nil {
		return fmt.Errorf("creating %s: %w", id, err)
	}
	if !ok {
		if len(guards) > 0 {
			if _, err := s.Get(ctx, id); errors.Is(err, store.ErrNotFound) {
				return fmt.Errorf("creating %s: %w", id, &store.IDError{ID: id, Err: store.ErrConflict, Rev: "0"})
			}
		}
		return &store.IDError{ID: id, Err: store.ErrExists}
	}
	m.ResourceVersion = strconv.FormatInt(rev, 10)
	return nil
}

// Update replaces a resource, provided it has not changed since r's
// resourceVersion (store.ErrConflict otherwise). It validates r and fills in its
// defaults and new resourceVersion.
func (s *Store) Update(ctx context.Context, r store.Resource) error {
	if err := store.Validate(r); err != nil {
		return err
	}
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	id := store.IDOf(r)
	m := r.Meta()
	rev, err := strconv.ParseInt(m.ResourceVersion, 10, 64)
	if err != nil || rev <= 0 {
		return &store.InvalidError{ID: id, Fields: []store.FieldError{{Field: "metadata.resourceVersion", Msg: "is required to update"}}}
	}
	old, err := s.Get(ctx, id)
	if err != nil {
		return err
	}
	if err := immutable(old, r); err != nil {
		return err
	}
	guards, err := s.guards(ctx, r, false)
	if err != nil {
		return err
	}
	m.UID, m.CreationTimestamp = old.Meta().UID, old.Meta().CreationTimestamp
	val, err := store.EncodeStored(r)
	if err != nil {
		return err
	}
	cmps := append(guards, clientv3.Compare(clientv3.ModRevision(store.Key(id)), "=", rev))
	ok, newRev, err := Commit(ctx, s.kv, cmps, []clientv3.Op{clientv3.OpPut(store.Key(id), val)})
	if err != nil {
		return fmt.Errorf("updating %s: %w", id, err)
	}
	if !ok {
		return &store.IDError{ID: id, Err: store.ErrConflict, Rev: m.ResourceVersion}
	}
	m.ResourceVersion = strconv.FormatInt(newRev, 10)
	return nil
}

// Apply creates r, or replaces what is there. Without a resourceVersion it
// replaces whatever version is current (last write wins, as calicoctl
// apply); with one it is an Update.
func (s *Store) Apply(ctx context.Context, r store.Resource) (created bool, err error) {
	if r.Meta().ResourceVersion != "" {
		return false, s.Update(ctx, r)
	}
	for attempt := 0; ; attempt++ {
		cur, err := s.Get(ctx, store.IDOf(r))
		if errors.Is(err, store.ErrNotFound) {
			err = s.Create(ctx, r)
			if errors.Is(err, store.ErrExists) && attempt < 3 {
				continue
			}
			return err == nil, err
		}
		if err != nil {
			return false, err
		}
		r.Meta().ResourceVersion = cur.Meta().ResourceVersion
		err = s.Update(ctx, r)
		if (errors.Is(err, store.ErrConflict) || errors.Is(err, store.ErrNotFound)) && attempt < 3 {
			r.Meta().ResourceVersion = ""
			continue
		}
		return false, err
	}
}

// Delete removes a resource and returns what it held. With a non-empty
// rev it deletes only that version (store.ErrConflict otherwise). A resource
// that others still refer to (a pool with addresses in use, a profile an
// endpoint uses) is refused with an *store.InUseError, checked in the same
// transaction as the delete.
func (s *Store) Delete(ctx context.Context, id store.ID, rev string) (store.Resource, error) {
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	for attempt := 1; ; attempt++ {
		old, err := s.Get(ctx, id)
		if err != nil {
			return nil, err
		}
		if rev != "" && rev != old.Meta().ResourceVersion {
			return nil, &store.IDError{ID: id, Err: store.ErrConflict, Rev: rev}
		}
		guards, err := s.references(ctx, old, nil)
		if err != nil {
			return nil, err
		}
		cur, _ := strconv.ParseInt(old.Meta().ResourceVersion, 10, 64)
		cmps := append(guards, clientv3.Compare(clientv3.ModRevision(store.Key(id)), "=", cur))
		ok, _, err := Commit(ctx, s.kv, cmps, []clientv3.Op{clientv3.OpDelete(store.Key(id))})
		if err != nil {
			return nil, fmt.Errorf("deleting %s: %w", id, err)
		}
		if ok {
			return old, nil
		}
		// The resource or what refers to it changed meanwhile: look again.
		if attempt == 5 {
			return nil, &store.IDError{ID: id, Err: store.ErrConflict, Rev: old.Meta().ResourceVersion}
		}
	}
}

// GetOf reads one resource of type T.
func GetOf[T store.Resource](ctx context.Context, s *Store, namespace, name string) (T, error) {
	var zero T
	r, err := s.Get(ctx, store.ID{Kind: store.KindOf(zero), Namespace: namespace, Name: name})
	if err != nil {
		return zero, err
	}
	return r.(T), nil
}

// ListOf reads every resource of type T (in namespace, if given).
func ListOf[T store.Resource](ctx context.Context, s *Store, namespace string) ([]T, error) {
	var zero T
	rs, _, err := s.List(ctx, store.KindOf(zero), namespace)
	if err != nil {
		return nil, err
	}
	out := make([]T, len(rs))
	for i, r := range rs {
		out[i] = r.(T)
	}
	return out, nil
}

// guards checks r against the resources it must agree with and returns
// the comparisons that keep that check true until the write commits.
// Serializable reads ask only the member the client talks to, which may
// be behind: the comparisons then fail the write, and a refusal made on
// the strength of such a read is for the caller to read again.
func (s *Store) guards(ctx context.Context, r store.Resource, serializable bool) ([]clientv3.Cmp, error) {
	var opts []clientv3.OpOption
	if serializable {
		opts = append(opts, clientv3.WithSerializable())
	}
	if tier := policyTier(r); tier != "" {
		return s.tierGuard(ctx, r, tier, opts)
	}
	pool, ok := r.(*store.IPPool)
	if !ok {
		return nil, nil
	}
	cidr, _ := store.ParseCIDR(pool.Spec.CIDR) // validated
	prefix := store.KindPrefix(store.KindIPPool, "")
	resp, err := s.kv.Get(ctx, prefix, append(opts, clientv3.WithPrefix())...)
	if err != nil {
		return nil, fmt.Errorf("listing ippools: %w", err)
	}
	for _, kv := range resp.Kvs {
		id, ok := store.ParseKey(string(kv.Key))
		if !ok || id.Name == pool.Metadata.Name {
			continue
		}
		other := store.DecodeStored(id, kv.Value, kv.ModRevision)
		oc, err := store.ParseCIDR(other.(*store.IPPool).Spec.CIDR)
		if err == nil && oc.Overlaps(cidr) {
			return nil, &store.InvalidError{ID: store.IDOf(r), Fields: []store.FieldError{{Field: "spec.cidr", Msg: fmt.Sprintf("%s overlaps IPPool %q (%s)", cidr, quote.Clip(id.Name), oc)}}}
		}
	}
	return []clientv3.Cmp{clientv3.Compare(clientv3.ModRevision(prefix).WithPrefix(), "<", resp.Header.Revision+1)}, nil
}

// immutable refuses changes to fields that cannot change once written.
func immutable(old, r store.Resource) error {
	o, ok := old.(*store.IPPool)
	if !ok {
		return nil
	}
	n := r.(*store.IPPool)
	var errs []store.FieldError
	if o.Spec.CIDR != n.Spec.CIDR {
		errs = append(errs, store.FieldError{Field: "spec.cidr", Msg: fmt.Sprintf("cannot change from %s: create a new pool and delete this one", o.Spec.CIDR)})
	}
	if o.Spec.BlockSize != n.Spec.BlockSize {
		errs = append(errs, store.FieldError{Field: "spec.blockSize", Msg: fmt.Sprintf("cannot change from %d", o.Spec.BlockSize)})
	}
	if errs != nil {
		return &store.InvalidError{ID: store.IDOf(r), Fields: errs}
	}
	return nil
}

// policyTier is the tier of a policy ("" for other kinds).
func policyTier(r store.Resource) string {
	switch r := r.(type) {
	case *store.GlobalNetworkPolicy:
		return r.Spec.Tier
	case *store.NetworkPolicy:
		return r.Spec.Tier
	}
	return ""
}

// tierGuard refuses a policy in a tier that does not exist, as Calico's
// client does, and keeps the tier there until the write commits.
func (s *Store) tierGuard(ctx context.Context, r store.Resource, tier string, opts []clientv3.OpOption) ([]clientv3.Cmp, error) {
	key := store.Key(store.ID{Kind: store.KindTier, Name: tier})
	resp, err := s.kv.Get(ctx, key, append(opts, clientv3.WithCountOnly())...)
	if err != nil {
		return nil, fmt.Errorf("reading tier %s: %w", tier, err)
	}
	if resp.Count == 0 {
		return nil, &store.InvalidError{ID: store.IDOf(r), Fields: []store.FieldError{{Field: "spec.tier", Msg: fmt.Sprintf("tier %q does not exist: create it first (calico apply a Tier)", quote.Clip(tier))}}}
	}
	return []clientv3.Cmp{clientv3.Compare(clientv3.CreateRevision(key), ">", 0)}, nil
}
