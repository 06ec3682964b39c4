package agent

import (
	"errors"
	"log/slog"
	"path/filepath"
	"testing"

	"calico/store"
)

// A cache told the datastore is out of reach is live again once the
// watch resumes (an event with no error), not only after a new snapshot:
// `calico status` said "in sync: false" for good after a host was cut
// off for a few seconds (the chaos test, seed 109320).
func TestCacheLiveAgainWhenTheWatchResumes(t *testing.T) {
	c, err := openCache(filepath.Join(t.TempDir(), "state.db"), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer c.close()
	live := func() bool { _, l, _, _ := c.state(); return l }
	c.update(store.SyncEvent{Snapshot: true, Revision: 5})
	if !live() {
		t.Fatal("not live after a snapshot")
	}
	c.update(store.SyncEvent{Err: errors.New("watching resources: etcdserver: no leader"), Revision: 5})
	if live() {
		t.Fatal("live after an error")
	}
	c.update(store.SyncEvent{Revision: 5}) // the watch is up again
	if !live() {
		t.Error("not live once the watch resumed")
	}
	if _, _, _, err := c.state(); err != nil {
		t.Errorf("the error stays after the watch resumed: %v", err)
	}
}
