package etcdv3

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"testing"

	"calico/internal/testutil"
	"calico/store"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// TestDeleteChecksReferences: a pool with addresses in use and a profile
// an endpoint uses are refused by the store itself, whoever deletes.
func TestDeleteChecksReferences(t *testing.T) {
	cli := testutil.StartEtcd(t)
	s := New(cli)
	ctx := t.Context()
	pool := store.NewPool("p", netip.MustParsePrefix("10.65.0.0/16"))
	if err := s.Create(ctx, pool); err != nil {
		t.Fatal(err)
	}
	block := store.IPAMBlocksPrefix(netip.MustParseAddr("10.65.0.0")) + "10.65.0.0-26"
	if _, err := cli.Put(ctx, block, `{"cidr":"10.65.0.0/26","allocations":[0,null,null]}`); err != nil {
		t.Fatal(err)
	}
	_, err := s.Delete(ctx, store.IDOf(pool), "")
	if !errors.Is(err, store.ErrInUse) || !strings.Contains(err.Error(), "has 1 addresses in use") {
		t.Errorf("deleting a pool in use = %v", err)
	}
	if _, err := cli.Put(ctx, block, `{"cidr":"10.65.0.0/26","allocations":[null,null,null]}`); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Delete(ctx, store.IDOf(pool), ""); err != nil {
		t.Errorf("deleting a pool no longer in use: %v", err)
	}

	if err := s.Create(ctx, store.ClassicProfile("web")); err != nil {
		t.Fatal(err)
	}
	h := store.KindHostEndpoint.New().(*store.HostEndpoint)
	h.Metadata.Name = "h1"
	h.Spec = store.HostEndpointSpec{Node: "n1", InterfaceName: "eth0", Profiles: []string{"web"}}
	if err := s.Create(ctx, h); err != nil {
		t.Fatal(err)
	}
	_, err = s.Delete(ctx, store.ID{Kind: store.KindProfile, Name: "web"}, "")
	if !errors.Is(err, store.ErrInUse) || !strings.Contains(err.Error(), "in use by host endpoint h1") {
		t.Errorf("deleting a profile in use = %v", err)
	}
	if _, err := s.Delete(ctx, store.IDOf(h), ""); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Delete(ctx, store.ID{Kind: store.KindProfile, Name: "web"}, ""); err != nil {
		t.Errorf("deleting a profile no longer in use: %v", err)
	}
}

// TestApplyAllIsAllOrNothing: a batch whose last resource cannot be
// written writes nothing, and a good batch writes every resource at one
// revision.
func TestApplyAllIsAllOrNothing(t *testing.T) {
	s := New(testutil.StartEtcd(t))
	ctx := t.Context()
	if err := s.Create(ctx, store.ClassicProfile("taken")); err != nil {
		t.Fatal(err)
	}
	batch := func() []store.Resource {
		return []store.Resource{store.ClassicProfile("a"), store.NewPool("p", netip.MustParsePrefix("10.65.0.0/16")), store.ClassicProfile("taken")}
	}
	if _, err := s.ApplyAll(ctx, batch(), true); !errors.Is(err, store.ErrExists) {
		t.Fatalf("creating a batch with one that exists = %v", err)
	}
	if ps, _ := ListOf[*store.Profile](ctx, s, ""); len(ps) != 2 {
		t.Errorf("a refused batch wrote %d profiles; want only the one there before (and the built-in default-allow)", len(ps))
	}
	rs := batch()
	created, err := s.ApplyAll(ctx, rs, false)
	if err != nil {
		t.Fatal(err)
	}
	if want := []bool{true, true, false}; !slices.Equal(created, want) {
		t.Errorf("created = %v; want %v", created, want)
	}
	if rs[0].Meta().ResourceVersion != rs[2].Meta().ResourceVersion || rs[0].Meta().UID == "" {
		t.Errorf("a batch's resources have versions %s and %s and uid %q; want one revision and a uid", rs[0].Meta().ResourceVersion, rs[2].Meta().ResourceVersion, rs[0].Meta().UID)
	}
	if _, err := s.ApplyAll(ctx, []store.Resource{store.ClassicProfile("x"), store.ClassicProfile("x")}, false); err == nil || !strings.Contains(err.Error(), "appears twice") {
		t.Errorf("a batch naming a resource twice = %v", err)
	}
	// Deleting a profile and the host endpoint that uses it, together.
	h := store.KindHostEndpoint.New().(*store.HostEndpoint)
	h.Metadata.Name = "h1"
	h.Spec = store.HostEndpointSpec{Node: "n1", InterfaceName: "eth0", Profiles: []string{"a"}}
	if err := s.Create(ctx, h); err != nil {
		t.Fatal(err)
	}
	if _, err := s.DeleteAll(ctx, []store.ID{{Kind: store.KindProfile, Name: "a"}, {Kind: store.KindProfile, Name: "taken"}}); !errors.Is(err, store.ErrInUse) {
		t.Errorf("deleting a used profile in a batch = %v", err)
	}
	if ps, _ := ListOf[*store.Profile](ctx, s, ""); len(ps) != 3 {
		t.Errorf("a refused delete batch deleted something: %d profiles left (want 2 and the built-in one)", len(ps))
	}
	if _, err := s.DeleteAll(ctx, []store.ID{{Kind: store.KindProfile, Name: "a"}, store.IDOf(h)}); err != nil {
		t.Errorf("deleting a profile with the host endpoint that uses it: %v", err)
	}
}

func TestTiers(t *testing.T) {
	s := New(testutil.StartEtcd(t))
	ctx := t.Context()
	if err := EnsureInitialized(ctx, s); err != nil {
		t.Fatal(err)
	}
	gnp := func(name, tier string) *store.GlobalNetworkPolicy {
		p := store.KindGlobalNetworkPolicy.New().(*store.GlobalNetworkPolicy)
		p.Metadata.Name, p.Spec.Tier = name, tier
		return p
	}
	if err := s.Create(ctx, gnp("a", "security")); err == nil || !strings.Contains(err.Error(), `spec.tier: tier "security" does not exist`) {
		t.Errorf("a policy in a missing tier: %v", err)
	}
	// A tier and its policies in one apply.
	if _, err := s.ApplyAll(ctx, []store.Resource{gnp("b", "security"), store.NewTier("security", 100, "Deny")}, false); err != nil {
		t.Fatalf("applying a tier with its policy: %v", err)
	}
	if _, err := s.Delete(ctx, store.ID{Kind: store.KindTier, Name: "security"}, ""); !errors.Is(err, store.ErrInUse) || !strings.Contains(err.Error(), "has 1 policies") {
		t.Errorf("deleting a tier with a policy: %v", err)
	}
	if _, err := s.DeleteAll(ctx, []store.ID{{Kind: store.KindGlobalNetworkPolicy, Name: "b"}, {Kind: store.KindTier, Name: "security"}}); err != nil {
		t.Errorf("deleting a tier with its policies: %v", err)
	}
	for _, name := range []string{"default", "kube-admin", "kube-baseline"} {
		if _, err := s.Delete(ctx, store.ID{Kind: store.KindTier, Name: name}, ""); !errors.Is(err, store.ErrInUse) || !strings.Contains(err.Error(), "is built in") {
			t.Errorf("deleting the %s tier: %v", name, err)
		}
	}
	ci, err := GetOf[*store.ClusterInformation](ctx, s, "", "default")
	if err != nil || len(ci.Spec.ClusterGUID) != 32 || ci.Spec.DatastoreReady == nil || !*ci.Spec.DatastoreReady {
		t.Errorf("ClusterInformation/default = %+v, %v", ci, err)
	}
	guid := ci.Spec.ClusterGUID
	if err := EnsureInitialized(ctx, s); err != nil {
		t.Fatal(err)
	}
	if ci, _ := GetOf[*store.ClusterInformation](ctx, s, "", "default"); ci.Spec.ClusterGUID != guid {
		t.Errorf("a second EnsureInitialized changed the cluster GUID")
	}
}

// TestApplyAllReadsOnce: a batch reads what it replaces in one round trip
// (a read-only transaction), not one per resource, and policies of one
// tier check the tier once; what it reports is as before.
func TestApplyAllReadsOnce(t *testing.T) {
	cli := testutil.StartEtcd(t)
	var calls countingKV
	calls.KV, cli.KV = cli.KV, &calls
	s, ctx := New(cli), t.Context()
	if err := s.Create(ctx, store.NewTier("t1", 10, "")); err != nil {
		t.Fatal(err)
	}
	if err := s.Create(ctx, store.ClassicProfile("p5")); err != nil {
		t.Fatal(err)
	}
	var rs []store.Resource
	for i := range 60 { // the test's etcd takes 128 operations a transaction
		rs = append(rs, store.ClassicProfile(fmt.Sprintf("p%d", i)))
		g := store.KindGlobalNetworkPolicy.New().(*store.GlobalNetworkPolicy)
		g.Metadata.Name, g.Spec.Tier = fmt.Sprintf("t1.g%d", i), "t1"
		rs = append(rs, g)
	}
	calls.gets, calls.txns = 0, 0
	created, err := s.ApplyAll(ctx, rs, false)
	if err != nil {
		t.Fatal(err)
	}
	if calls.gets > 1 || calls.txns != 2 {
		t.Errorf("applying 120 resources took %d reads and %d transactions; want the tier's read and two transactions (the reads, the write)", calls.gets, calls.txns)
	}
	for i, c := range created {
		if want := i != 10; c != want { // p5 was there
			t.Errorf("%s: created %v, want %v", store.IDOf(rs[i]), c, want)
		}
	}
}

// countingKV counts a client's Get and Txn calls.
type countingKV struct {
	clientv3.KV
	gets, txns int
}

func (c *countingKV) Get(ctx context.Context, key string, opts ...clientv3.OpOption) (*clientv3.GetResponse, error) {
	c.gets++
	return c.KV.Get(ctx, key, opts...)
}

func (c *countingKV) Txn(ctx context.Context) clientv3.Txn {
	c.txns++
	return c.KV.Txn(ctx)
}

// TestApplyAllStaleRead: the first read of a batch is serializable, so a
// member behind the leader may answer it with an older state. The write's
// guards catch that and the batch reads again: a stale read never writes
// over a newer version, and never refuses what a fresh read allows.
func TestApplyAllStaleRead(t *testing.T) {
	cli := testutil.StartEtcd(t)
	stale := &staleKV{KV: cli.KV}
	cli.KV = stale
	s, ctx := New(cli), t.Context()
	a := store.ClassicProfile("a")
	if err := s.Create(ctx, a); err != nil {
		t.Fatal(err)
	}
	stale.rev, _ = strconv.ParseInt(a.Metadata.ResourceVersion, 10, 64) // a lagging member's state from here on
	a2 := store.ClassicProfile("a")
	a2.Spec.LabelsToApply = map[string]string{"v": "2"}
	if _, err := s.ApplyAll(ctx, []store.Resource{a2}, false); err != nil {
		t.Fatal(err)
	}
	if stale.served == 0 {
		t.Fatal("no read was served stale: the test tests nothing")
	}

	// Replacing the version a fresh read sees is not a conflict.
	a3 := store.ClassicProfile("a")
	a3.Metadata.ResourceVersion = a2.Metadata.ResourceVersion
	a3.Spec.LabelsToApply = map[string]string{"v": "3"}
	if _, err := s.ApplyAll(ctx, []store.Resource{a3}, false); err != nil {
		t.Errorf("replacing the current version over a stale read: %v", err)
	}
	// A write without a version replaces the newest, keeping its uid.
	a4 := store.ClassicProfile("a")
	a4.Spec.LabelsToApply = map[string]string{"v": "4"}
	if created, err := s.ApplyAll(ctx, []store.Resource{a4}, false); err != nil || created[0] {
		t.Errorf("replacing over a stale read: created %v, %v", created, err)
	}
	got, err := s.Get(ctx, store.IDOf(a))
	if err != nil || got.(*store.Profile).Spec.LabelsToApply["v"] != "4" || got.Meta().UID != a.Metadata.UID {
		t.Errorf("after the writes: %+v, %v; want v=4 and uid %s", got, err, a.Metadata.UID)
	}
	// A resource made after the stale state exists all the same.
	if err := s.Create(ctx, store.ClassicProfile("b")); err != nil {
		t.Fatal(err)
	}
	if _, err := s.ApplyAll(ctx, []store.Resource{store.ClassicProfile("b")}, true); !errors.Is(err, store.ErrExists) {
		t.Errorf("creating what exists over a stale read that lacks it = %v, want ErrExists", err)
	}
	// A policy's tier made after the stale state: the tier's guard,
	// read stale, does not refuse the policy.
	if err := s.Create(ctx, store.NewTier("t2", 20, "")); err != nil {
		t.Fatal(err)
	}
	g := store.KindGlobalNetworkPolicy.New().(*store.GlobalNetworkPolicy)
	g.Metadata.Name, g.Spec.Tier = "t2.g", "t2"
	gets := stale.gets
	if _, err := s.ApplyAll(ctx, []store.Resource{g}, false); err != nil {
		t.Errorf("a policy in a tier made after the stale state: %v", err)
	}
	if stale.gets == gets {
		t.Error("the tier's guard was not read stale: the test tests nothing")
	}
}

// staleKV answers serializable reads (in transactions, and gets) as of
// revision rev (once set), as a member that fell behind does.
type staleKV struct {
	clientv3.KV
	rev          int64
	served, gets int
}

func (s *staleKV) Get(ctx context.Context, key string, opts ...clientv3.OpOption) (*clientv3.GetResponse, error) {
	if clientv3.OpGet(key, opts...).IsSerializable() && s.rev > 0 {
		s.gets++
		opts = append(slices.Clone(opts), clientv3.WithRev(s.rev))
	}
	return s.KV.Get(ctx, key, opts...)
}

func (s *staleKV) Txn(ctx context.Context) clientv3.Txn { return &staleTxn{Txn: s.KV.Txn(ctx), kv: s} }

type staleTxn struct {
	clientv3.Txn
	kv *staleKV
}

func (t *staleTxn) Then(ops ...clientv3.Op) clientv3.Txn {
	out := slices.Clone(ops)
	for i, op := range out {
		if op.IsGet() && op.IsSerializable() && t.kv.rev > 0 {
			out[i] = clientv3.OpGet(string(op.KeyBytes()), clientv3.WithRev(t.kv.rev), clientv3.WithSerializable())
			t.kv.served++
		}
	}
	t.Txn = t.Txn.Then(out...)
	return t
}

// TestApplyAllTooManyForTheDatastore: a batch larger than the datastore
// takes in one transaction (the test's etcd: 128 operations) is refused
// with what to do, and nothing is written.
func TestApplyAllTooManyForTheDatastore(t *testing.T) {
	s, ctx := New(testutil.StartEtcd(t)), t.Context()
	var rs []store.Resource
	for i := range 200 {
		rs = append(rs, store.ClassicProfile(fmt.Sprintf("p%d", i)))
	}
	if _, err := s.ApplyAll(ctx, rs, false); err == nil || !strings.Contains(err.Error(), "apply fewer resources at once; nothing was written") {
		t.Errorf("applying 200 resources to an etcd that takes 128 operations = %v", err)
	}
	if ps, _ := ListOf[*store.Profile](ctx, s, ""); len(ps) != 1 {
		t.Errorf("%d profiles after the refused batch; want only the built-in one", len(ps))
	}
}
