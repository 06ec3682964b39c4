package agent

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	"calico/store"
	"calico/store/etcdv3"
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
	if err := c.persist(true, 0); err != nil {
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
				if err := c.persist(true, 0); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N*n), "µs/resource")
		})
	}
}
