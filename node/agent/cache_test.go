package agent

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"calico/store"
	"calico/store/etcdv3"

	bolt "go.etcd.io/bbolt"
)

// A cache told the datastore is out of reach is live again once the
// watch resumes (an event with no error), not only after a new snapshot:
// `calico status` said "in sync: false" for good after a host was cut
// off for a few seconds (the chaos test, seed 109320).
func TestCacheLiveAgainWhenTheWatchResumes(t *testing.T) {
	c, err := openCache(filepath.Join(t.TempDir(), "state.db"), "", slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer c.close()
	live := func() bool { _, l, _, _ := c.state(); return l }
	c.update(etcdv3.SyncEvent{Snapshot: true, Revision: 5})
	if !live() {
		t.Fatal("not live after a snapshot")
	}
	c.update(etcdv3.SyncEvent{Err: errors.New("watching resources: etcdserver: no leader"), Revision: 5})
	if live() {
		t.Fatal("live after an error")
	}
	c.update(etcdv3.SyncEvent{Revision: 5}) // the watch is up again
	if !live() {
		t.Error("not live once the watch resumed")
	}
	if _, _, _, err := c.state(); err != nil {
		t.Errorf("the error stays after the watch resumed: %v", err)
	}
}

// A state cache cut short (a disk that filled, a copy that stopped) is
// moved aside like any other corrupt one: bbolt reads it through a
// memory map, and a page past the end of the file faulted (SIGBUS), which
// no recover catches, so the node crashed at every start (the chaos
// test, seed 587493).
func TestCacheCutShort(t *testing.T) {
	log := slog.New(slog.DiscardHandler)
	dir := t.TempDir()
	path := filepath.Join(dir, "state.db")
	c, err := openCache(path, "", log)
	if err != nil {
		t.Fatal(err)
	}
	ev := etcdv3.SyncEvent{Snapshot: true, Revision: 9}
	for i := range 300 {
		ev.Updates = append(ev.Updates, etcdv3.Update{ID: store.ID{Kind: store.KindProfile, Name: fmt.Sprintf("p%03d", i)}, Resource: store.ClassicProfile(fmt.Sprintf("p%03d", i))})
	}
	c.update(ev)
	if err := c.persist(); err != nil {
		t.Fatal(err)
	}
	c.close()
	whole, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for size := 2 * 4096; size < len(whole); size += 4096 {
		cut := filepath.Join(t.TempDir(), "state.db")
		if err := os.WriteFile(cut, whole[:size], 0o600); err != nil {
			t.Fatal(err)
		}
		c, err := openCache(cut, "", log)
		if err != nil {
			t.Fatalf("cut to %d of %d bytes: %v", size, len(whole), err)
		}
		c.close()
	}
}

// A save of the state cache holds neither the datastore's events nor the
// calculation's input: at 1,000 hosts the save of 100,000 resources took
// seconds under load with the cache locked, and the agent's loop waited.
// What changes during a save is left for the next one, and a save that
// fails leaves all its keys to write again: nothing is lost.
func TestCacheSaveHoldsNothingUp(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	c, err := openCache(path, "", slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	profile := func(name string) etcdv3.Update {
		return etcdv3.Update{ID: store.ID{Kind: store.KindProfile, Name: name}, Resource: store.ClassicProfile(name)}
	}
	c.update(etcdv3.SyncEvent{Snapshot: true, Revision: 5, Updates: []etcdv3.Update{profile("a")}})

	// bbolt's writer lock, taken here, holds the save inside its write.
	tx, err := c.db.Begin(true)
	if err != nil {
		t.Fatal(err)
	}
	saved := make(chan error, 1)
	go func() { saved <- c.persist() }()
	changed := make(chan bool, 1)
	go func() {
		time.Sleep(50 * time.Millisecond) // the save has taken its copy
		c.update(etcdv3.SyncEvent{Revision: 6, Updates: []etcdv3.Update{profile("b")}})
		_, rev, _ := c.input("host")
		changed <- rev == 6
	}()
	select {
	case ok := <-changed:
		if !ok {
			t.Error("the input is not at the revision of the change made during the save")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("an event and the input waited for the save")
	}
	if err := tx.Rollback(); err != nil {
		t.Fatal(err)
	}
	if err := <-saved; err != nil {
		t.Fatal(err)
	}

	// A save that fails (the file is closed) keeps its keys to write.
	c.update(etcdv3.SyncEvent{Revision: 7, Updates: []etcdv3.Update{profile("c")}})
	db := c.db
	db.Close()
	if err := c.persist(); err == nil {
		t.Fatal("a save to a closed file did not fail")
	}
	c.db, err = bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.persist(); err != nil {
		t.Fatal(err)
	}
	c.close()
	back, err := openCache(path, "", slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer back.close()
	for _, name := range []string{"a", "b", "c"} {
		if get(back, store.Key(store.ID{Kind: store.KindProfile, Name: name})) == nil {
			t.Errorf("profile %s is not in the saved cache", name)
		}
	}
	if rev, _, _, _ := back.state(); rev != 7 {
		t.Errorf("saved revision %d, want 7", rev)
	}
}

// BenchmarkCachePersist writes a whole listing of n WorkloadEndpoints to
// the state cache, as a fresh node's first pass or a re-listing does.
// Its time per resource should not grow with n (it did, as n², when the
// keys went to bbolt in a map's order).
func BenchmarkCachePersist(b *testing.B) {
	for _, n := range []int{10_000, 40_000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			ev := etcdv3.SyncEvent{Snapshot: true, Revision: 5}
			for i := range n {
				w := store.KindWorkloadEndpoint.New().(*store.WorkloadEndpoint)
				w.Metadata.Name, w.Metadata.Namespace, w.Metadata.ResourceVersion = fmt.Sprintf("sim--%05d-calico-w%d-eth0", i/100, i%100), "sim", "5"
				w.Spec = store.WorkloadEndpointSpec{Node: fmt.Sprintf("sim-%05d", i/100), Orchestrator: "calico", Workload: fmt.Sprintf("w%d", i%100),
					Endpoint: "eth0", InterfaceName: fmt.Sprintf("cali%011x", i), IPNetworks: []string{fmt.Sprintf("10.%d.%d.%d/32", 64+i>>16, i>>8&255, i&255)}}
				ev.Updates = append(ev.Updates, etcdv3.Update{ID: store.IDOf(w), Resource: w})
			}
			c, err := openCache(filepath.Join(b.TempDir(), "state.db"), "", slog.New(slog.DiscardHandler))
			if err != nil {
				b.Fatal(err)
			}
			defer c.close()
			for b.Loop() {
				c.update(ev)
				if err := c.persist(); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N*n), "µs/resource")
		})
	}
}

// BenchmarkCacheLoad opens a state cache of the lab benchmark's shape
// (3,000 WorkloadEndpoints, 500 policies of 7 rules), written by a
// trustable version, as a restart does before its first apply.
func BenchmarkCacheLoad(b *testing.B) {
	ev := etcdv3.SyncEvent{Snapshot: true, Revision: 5}
	for i := range 3000 {
		w := store.KindWorkloadEndpoint.New().(*store.WorkloadEndpoint)
		w.Metadata.Name, w.Metadata.Namespace, w.Metadata.ResourceVersion = fmt.Sprintf("host%d-calico-w%d-eth0", i/1000, i%1000), fmt.Sprintf("ns-%d", i%4), "5"
		w.Metadata.Labels = map[string]string{"app": fmt.Sprintf("a%d", i%50), "role": fmt.Sprintf("r%d", i%100), "tier": fmt.Sprintf("t%d", i%5)}
		w.Spec = store.WorkloadEndpointSpec{Node: fmt.Sprintf("host%d", i/1000), Orchestrator: "calico", Workload: fmt.Sprintf("w%d", i%1000),
			Endpoint: "eth0", InterfaceName: fmt.Sprintf("cali%011x", i), Profiles: []string{"p1"},
			IPNetworks: []string{fmt.Sprintf("10.%d.%d.%d/32", 64+i>>16, i>>8&255, i&255), fmt.Sprintf("fd00:65::%x/128", i)}}
		ev.Updates = append(ev.Updates, etcdv3.Update{ID: store.IDOf(w), Resource: w})
	}
	tcp := &store.Protocol{Num: 6}
	for k := range 500 {
		p := store.KindGlobalNetworkPolicy.New().(*store.GlobalNetworkPolicy)
		p.Metadata.Name, p.Metadata.ResourceVersion = fmt.Sprintf("gnp-%03d", k), "5"
		order := float64(k)
		p.Spec = store.GlobalNetworkPolicySpec{Order: &order, Selector: fmt.Sprintf("app == 'a%d'", k%50), Types: []string{"Ingress", "Egress"},
			Ingress: []store.Rule{
				{Action: "Allow", Protocol: tcp, Source: store.EntityRule{Selector: fmt.Sprintf("role == 'r%d'", k%100)}, Destination: store.EntityRule{Ports: []store.Port{{First: 80, Last: 80}}}},
				{Action: "Deny", Source: store.EntityRule{Nets: []string{"192.0.2.0/24", "2001:db8::/32"}}},
			},
			Egress: []store.Rule{{Action: "Allow", Protocol: tcp, Destination: store.EntityRule{Selector: fmt.Sprintf("app == 'a%d'", k%50), Ports: []store.Port{{First: 5432, Last: 5432}}}}},
		}
		ev.Updates = append(ev.Updates, etcdv3.Update{ID: store.IDOf(p), Resource: p})
	}
	path := filepath.Join(b.TempDir(), "state.db")
	c, err := openCache(path, "v1.0.0", slog.New(slog.DiscardHandler))
	if err != nil {
		b.Fatal(err)
	}
	c.update(ev)
	if err := c.persist(); err != nil {
		b.Fatal(err)
	}
	c.close()
	for b.Loop() {
		c, err := openCache(path, "v1.0.0", slog.New(slog.DiscardHandler))
		if err != nil {
			b.Fatal(err)
		}
		if c.size() != len(ev.Updates) {
			b.Fatalf("loaded %d resources, want %d", c.size(), len(ev.Updates))
		}
		c.close()
	}
}

// BenchmarkCacheInput is the input of a pass on a host among 1,000 of
// 100 workloads: the cache's resources listed by kind for the
// calculation, on every pass; here no workload changed between passes.
func BenchmarkCacheInput(b *testing.B) { benchCacheInput(b, false) }

// BenchmarkCacheInputChurn is BenchmarkCacheInput with one workload
// replaced before each pass, as under churn.
func BenchmarkCacheInputChurn(b *testing.B) { benchCacheInput(b, true) }

func benchCacheInput(b *testing.B, churn bool) {
	c := &cache{items: newResources(0), loaded: true}
	for i := range 100000 {
		w := &store.WorkloadEndpoint{Metadata: store.ObjectMeta{Name: fmt.Sprint(i), Namespace: "ns"}}
		c.items.set(store.Key(store.IDOf(w)), w)
	}
	for i := range 1000 {
		n := &store.Node{Metadata: store.ObjectMeta{Name: fmt.Sprintf("host%d", i)}}
		c.items.set(store.Key(store.IDOf(n)), n)
	}
	i := 0
	for b.Loop() {
		if churn {
			i++
			w := &store.WorkloadEndpoint{Metadata: store.ObjectMeta{Name: fmt.Sprint(i % 100000), Namespace: "ns", ResourceVersion: fmt.Sprint(i)}}
			c.items.set(store.Key(store.IDOf(w)), w)
		}
		in, _, _ := c.input("host1")
		if len(in.Workloads) != 100000 || len(in.Nodes) != 1000 {
			b.Fatalf("%d workloads, %d nodes", len(in.Workloads), len(in.Nodes))
		}
	}
}
