package etcdv3

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"calico/internal/testutil"
	"calico/store"

	clientv3 "go.etcd.io/etcd/client/v3"
)

func pool(name, cidr string) *store.IPPool {
	p := store.KindIPPool.New().(*store.IPPool)
	p.Metadata.Name = name
	p.Spec.CIDR = cidr
	return p
}

func TestCRUD(t *testing.T) {
	s := New(testutil.StartEtcd(t))
	ctx := t.Context()
	p := pool("p1", "10.65.0.0/16")
	if err := s.Create(ctx, p); err != nil {
		t.Fatalf("Create: %v", err)
	}
	if p.Metadata.ResourceVersion == "" || p.Metadata.UID == "" || p.Spec.BlockSize != 26 {
		t.Errorf("Create did not fill in metadata and defaults: %+v", p)
	}
	if err := s.Create(ctx, pool("p1", "10.66.0.0/16")); !errors.Is(err, store.ErrExists) || !strings.Contains(err.Error(), `IPPool "p1" already exists`) {
		t.Errorf("second Create = %v; want store.ErrExists", err)
	}
	got, err := GetOf[*store.IPPool](ctx, s, "", "p1")
	if err != nil || got.Spec.CIDR != "10.65.0.0/16" || got.Metadata.ResourceVersion != p.Metadata.ResourceVersion {
		t.Fatalf("GetOf = %+v, %v", got, err)
	}
	// Two writers read the same version; the second update loses.
	a, b := *got, *got
	a.Spec.NATOutgoing = true
	if err := s.Update(ctx, &a); err != nil {
		t.Fatalf("Update: %v", err)
	}
	b.Spec.Disabled = true
	if err := s.Update(ctx, &b); !errors.Is(err, store.ErrConflict) {
		t.Errorf("stale Update = %v; want store.ErrConflict", err)
	}
	c := a
	c.Spec.CIDR = "10.99.0.0/16"
	if err := s.Update(ctx, &c); err == nil || !strings.Contains(err.Error(), "spec.cidr: cannot change") {
		t.Errorf("Update changing the CIDR = %v; want refused", err)
	}
	if _, err := s.Delete(ctx, store.IDOf(&a), got.Metadata.ResourceVersion); !errors.Is(err, store.ErrConflict) {
		t.Errorf("Delete of a stale version = %v; want store.ErrConflict", err)
	}
	old, err := s.Delete(ctx, store.IDOf(&a), a.Metadata.ResourceVersion)
	if err != nil || !old.(*store.IPPool).Spec.NATOutgoing {
		t.Fatalf("Delete = %v, %v", old, err)
	}
	if _, err := s.Get(ctx, store.IDOf(&a)); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Get after Delete = %v; want store.ErrNotFound", err)
	}
}

func TestInvalidWritesNothing(t *testing.T) {
	cli := testutil.StartEtcd(t)
	s := New(cli)
	if err := s.Create(t.Context(), pool("p1", "10.65.0.0/33")); err == nil {
		t.Fatal("Create of an invalid pool succeeded")
	}
	resp, err := cli.Get(t.Context(), "/", clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil || resp.Count != 0 {
		t.Errorf("keys after a refused write = %d, %v; want 0", resp.Count, err)
	}
}

func TestPoolOverlap(t *testing.T) {
	s := New(testutil.StartEtcd(t))
	ctx := t.Context()
	if err := s.Create(ctx, pool("p1", "10.65.0.0/16")); err != nil {
		t.Fatal(err)
	}
	err := s.Create(ctx, pool("p2", "10.65.128.0/17"))
	if err == nil || !strings.Contains(err.Error(), `spec.cidr: 10.65.128.0/17 overlaps IPPool "p1" (10.65.0.0/16)`) {
		t.Errorf("overlapping Create = %v", err)
	}
	// Racing creators of overlapping pools: exactly one wins.
	var wg sync.WaitGroup
	errs := make([]error, 8)
	for i := range errs {
		wg.Go(func() { errs[i] = s.Create(ctx, pool(fmt.Sprintf("r%d", i), "10.70.0.0/16")) })
	}
	wg.Wait()
	ok := 0
	for _, err := range errs {
		if err == nil {
			ok++
		}
	}
	if ok != 1 {
		t.Errorf("%d of 8 racing overlapping pools were created (%v); want exactly 1", ok, errs)
	}
}

func TestApply(t *testing.T) {
	s := New(testutil.StartEtcd(t))
	ctx := t.Context()
	created, err := s.Apply(ctx, pool("p1", "10.65.0.0/16"))
	if err != nil || !created {
		t.Fatalf("first Apply = %v, %v; want created", created, err)
	}
	p := pool("p1", "10.65.0.0/16")
	p.Spec.NATOutgoing = true
	created, err = s.Apply(ctx, p)
	if err != nil || created {
		t.Fatalf("second Apply = %v, %v; want updated", created, err)
	}
	got, _ := GetOf[*store.IPPool](ctx, s, "", "p1")
	if !got.Spec.NATOutgoing {
		t.Errorf("Apply did not update: %+v", got.Spec)
	}
}

func TestListNamespaced(t *testing.T) {
	s := New(testutil.StartEtcd(t))
	ctx := t.Context()
	if err := EnsureInitialized(ctx, s); err != nil {
		t.Fatal(err)
	}
	for _, id := range []struct{ ns, name string }{{"a", "x"}, {"b", "x"}, {"a", "y"}} {
		np := store.KindNetworkPolicy.New().(*store.NetworkPolicy)
		np.Metadata.Namespace, np.Metadata.Name = id.ns, id.name
		if err := s.Create(ctx, np); err != nil {
			t.Fatal(err)
		}
	}
	all, err := ListOf[*store.NetworkPolicy](ctx, s, "")
	if err != nil || len(all) != 3 {
		t.Fatalf("ListOf all = %d, %v; want 3", len(all), err)
	}
	inA, _ := ListOf[*store.NetworkPolicy](ctx, s, "a")
	if len(inA) != 2 || inA[0].Metadata.Name != "x" || inA[1].Metadata.Name != "y" {
		t.Errorf("ListOf a = %v", inA)
	}
}

// syncRecorder keeps the state Sync delivers.
type syncRecorder struct {
	mu        sync.Mutex
	state     map[string]store.Resource
	snapshots int
	changed   chan struct{}
}

func (r *syncRecorder) on(ev SyncEvent) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if ev.Err != nil {
		return
	}
	if ev.Snapshot {
		r.snapshots++
		r.state = map[string]store.Resource{}
	}
	for _, u := range ev.Updates {
		if u.Resource == nil {
			delete(r.state, store.Key(u.ID))
		} else {
			r.state[store.Key(u.ID)] = u.Resource
		}
	}
	select {
	case r.changed <- struct{}{}:
	default:
	}
}

func (r *syncRecorder) waitFor(t *testing.T, what string, cond func(map[string]store.Resource, int) bool) {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		r.mu.Lock()
		ok := cond(r.state, r.snapshots)
		r.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-r.changed:
		case <-deadline:
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

func TestSync(t *testing.T) {
	cli := testutil.StartEtcd(t)
	s := New(cli)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	if err := s.Create(ctx, pool("before", "10.1.0.0/16")); err != nil {
		t.Fatal(err)
	}
	rec := &syncRecorder{changed: make(chan struct{}, 1)}
	done := make(chan error)
	go func() { done <- s.Sync(ctx, rec.on) }()
	rec.waitFor(t, "the snapshot", func(st map[string]store.Resource, _ int) bool { return len(st) == 1 })

	p := pool("after", "10.2.0.0/16")
	if err := s.Create(ctx, p); err != nil {
		t.Fatal(err)
	}
	rec.waitFor(t, "the created pool", func(st map[string]store.Resource, _ int) bool { return len(st) == 2 })
	if _, err := s.Delete(ctx, store.IDOf(p), ""); err != nil {
		t.Fatal(err)
	}
	rec.waitFor(t, "the deletion", func(st map[string]store.Resource, _ int) bool { return len(st) == 1 })

	// A bad value under the prefix is skipped, not fatal.
	cli.Put(ctx, store.ResourcePrefix+"ippools/garbage", "{not json")
	if err := s.Create(ctx, pool("third", "10.3.0.0/16")); err != nil {
		t.Fatal(err)
	}
	rec.waitFor(t, "the third pool", func(st map[string]store.Resource, _ int) bool { return st[store.ResourcePrefix+"ippools/third"] != nil })
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("Sync returned %v; want context.Canceled", err)
	}
}

func TestSyncRecoversFromCompaction(t *testing.T) {
	cli := testutil.StartEtcd(t)
	s := New(cli)
	ctx := t.Context()
	rec := &syncRecorder{changed: make(chan struct{}, 1)}
	// Deliver the snapshot, then stall the watch long enough to compact
	// past it: Sync's watch starts after the first snapshot is delivered.
	stall := make(chan struct{})
	first := true
	go s.Sync(ctx, func(ev SyncEvent) {
		if first && ev.Snapshot {
			first = false
			rec.on(ev)
			<-stall
			return
		}
		rec.on(ev)
	})
	rec.waitFor(t, "the first snapshot", func(_ map[string]store.Resource, n int) bool { return n == 1 })
	var last int64
	for i := range 5 {
		if err := s.Create(ctx, pool(fmt.Sprintf("p%d", i), fmt.Sprintf("10.%d.0.0/16", i))); err != nil {
			t.Fatal(err)
		}
		resp, _ := cli.Get(ctx, "x")
		last = resp.Header.Revision
	}
	if _, err := cli.Compact(ctx, last); err != nil {
		t.Fatal(err)
	}
	close(stall)
	rec.waitFor(t, "a second snapshot with all five pools", func(st map[string]store.Resource, n int) bool { return n == 2 && len(st) == 5 })
}

// brokenWatch fails the first watch it is asked for at once (as a watch
// does when its member loses the leader), then watches as usual.
type brokenWatch struct {
	clientv3.Watcher
	mu    sync.Mutex
	broke bool
}

func (w *brokenWatch) Watch(ctx context.Context, key string, opts ...clientv3.OpOption) clientv3.WatchChan {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.broke {
		return w.Watcher.Watch(ctx, key, opts...)
	}
	w.broke = true
	ch := make(chan clientv3.WatchResponse, 1)
	ch <- clientv3.WatchResponse{Canceled: true}
	close(ch)
	return ch
}

// TestSyncSaysWhenItFollowsAgain: after a watch breaks, Sync reports the
// error and then, once the watch is up again, an event with neither
// updates nor an error, before any change comes: the caller knows it is
// live again although nothing changed.
func TestSyncSaysWhenItFollowsAgain(t *testing.T) {
	cli := testutil.StartEtcd(t)
	cli.Watcher = &brokenWatch{Watcher: cli.Watcher}
	s := New(cli)
	var mu sync.Mutex
	var seen []string
	go s.Sync(t.Context(), func(ev SyncEvent) {
		mu.Lock()
		defer mu.Unlock()
		switch {
		case ev.Snapshot:
			seen = append(seen, "snapshot")
		case ev.Err != nil:
			seen = append(seen, "error")
		case len(ev.Updates) == 0:
			seen = append(seen, "live")
		default:
			seen = append(seen, "updates")
		}
	})
	deadline := time.Now().Add(10 * time.Second)
	for {
		mu.Lock()
		got := strings.Join(seen, " ")
		mu.Unlock()
		if got == "snapshot error live" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("Sync delivered %q; want snapshot error live", got)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestSyncProgress: asked for progress, Sync delivers an event with no
// updates at etcd's revision, moved on by writes outside the resources
// that the watch never sees.
func TestSyncProgress(t *testing.T) {
	cli := testutil.StartEtcd(t)
	s := New(cli)
	ctx := t.Context()
	var mu sync.Mutex
	var revs []int64
	go s.Sync(ctx, func(ev SyncEvent) {
		mu.Lock()
		defer mu.Unlock()
		if len(ev.Updates) == 0 && ev.Err == nil {
			revs = append(revs, ev.Revision)
		}
	})
	last := func() int64 {
		mu.Lock()
		defer mu.Unlock()
		if len(revs) == 0 {
			return 0
		}
		return revs[len(revs)-1]
	}
	deadline := time.Now().Add(10 * time.Second)
	for last() == 0 { // the snapshot of an empty store, then the watch's start
		if time.Now().After(deadline) {
			t.Fatal("Sync delivered no event")
		}
		time.Sleep(10 * time.Millisecond)
	}
	var want int64
	for range 3 {
		resp, err := cli.Put(ctx, "/calico/ipam/v2/not-a-resource", "x")
		if err != nil {
			t.Fatal(err)
		}
		want = resp.Header.Revision
	}
	if got := last(); got >= want {
		t.Fatalf("Sync is at revision %d before progress was asked for; want below %d", got, want)
	}
	for last() < want {
		if err := s.RequestProgress(ctx); err != nil {
			t.Fatal(err)
		}
		if time.Now().After(deadline) {
			t.Fatalf("Sync is at revision %d, want %d after RequestProgress", last(), want)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestListPaged: a listing longer than a page comes whole, in order,
// and as of one revision, though writes go on between its pages.
func TestListPaged(t *testing.T) {
	defer func(n int64) { listPage = n }(listPage)
	listPage = 3
	s := New(testutil.StartEtcd(t))
	ctx := t.Context()
	if err := EnsureInitialized(ctx, s); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var created []int64 // the revisions of the creates, in order
	create := func(i int) {
		np := store.KindNetworkPolicy.New().(*store.NetworkPolicy)
		np.Metadata.Namespace, np.Metadata.Name = fmt.Sprintf("ns%d", i%3), fmt.Sprintf("p%03d", i)
		if err := s.Create(ctx, np); err != nil {
			t.Error(err)
			return
		}
		rev, _ := store.ParseRevision(np.Metadata.ResourceVersion)
		mu.Lock()
		created = append(created, rev)
		mu.Unlock()
	}
	for i := range 10 {
		create(i)
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := 10; i < 60; i++ {
			create(i)
		}
	})
	for range 30 {
		all, rev, err := s.List(ctx, store.KindNetworkPolicy, "")
		if err != nil {
			t.Fatal(err)
		}
		mu.Lock()
		want := 0
		for _, r := range created {
			if r <= rev {
				want++
			}
		}
		mu.Unlock()
		// A create with its revision at or below rev may not have been
		// recorded yet; one above it must not be listed.
		if len(all) < want {
			t.Fatalf("listed %d policies at revision %d, want at least the %d created by then", len(all), rev, want)
		}
		for i, r := range all {
			if got, _ := store.ParseRevision(r.Meta().ResourceVersion); got > rev {
				t.Fatalf("listed %s of revision %d in a listing at revision %d", r.Meta().Name, got, rev)
			}
			if i > 0 && store.Key(store.IDOf(all[i-1])) >= store.Key(store.IDOf(r)) {
				t.Fatalf("listing out of order at %d: %s after %s", i, store.IDOf(r), store.IDOf(all[i-1]))
			}
		}
	}
	wg.Wait()
	all, _, err := s.List(ctx, store.KindNetworkPolicy, "")
	if err != nil || len(all) != 60 {
		t.Fatalf("listed %d policies (%v), want 60", len(all), err)
	}
}
