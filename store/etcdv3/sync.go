package etcdv3

import (
	"calico/store"
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// SyncEvent is one step of Sync: either the complete state (Snapshot) or
// changes to it, or a report that the datastore cannot be read right now.
// A watch (re)established after the snapshot is an event with neither
// updates nor an error: from then on the caller follows the datastore
// live again, the changes it missed coming next. So is the answer to
// RequestProgress: the state is at its Revision.
type SyncEvent struct {
	// Snapshot marks Updates as the complete state, replacing everything
	// delivered before.
	Snapshot bool
	Updates  []Update
	// Revision is the datastore revision the state is at.
	Revision int64
	// Listed is how long a snapshot took to list and decode.
	Listed time.Duration
	// Err is set when the datastore could not be read; Sync keeps trying.
	// Values that cannot be used as written are not errors: they come as
	// resources with Problems (store.DecodeStored).
	Err error
}

// Update is one resource as it now is, or its deletion (store.Resource nil).
type Update struct {
	ID       store.ID
	Resource store.Resource
}

// Sync lists every resource and then watches for changes, calling fn for
// each step from one goroutine. A watch that breaks resumes from the last
// revision seen; one that falls behind a compaction relists and delivers a
// new snapshot. It returns only when ctx is done.
func (s *Store) Sync(ctx context.Context, fn func(SyncEvent)) error {
	backoff := newBackoff(100*time.Millisecond, 5*time.Second)
	rev := int64(0) // 0: list first
	for ctx.Err() == nil {
		if rev == 0 {
			ev, err := s.snapshot(ctx)
			if err != nil {
				fn(SyncEvent{Err: err})
				backoff.wait(ctx)
				continue
			}
			fn(ev)
			rev = ev.Revision
		}
		next, err := s.watch(ctx, rev, fn, backoff)
		switch {
		case ctx.Err() != nil:
		case errors.Is(err, rpctypes.ErrCompacted):
			rev = 0
		default:
			if err != nil {
				fn(SyncEvent{Err: err, Revision: next})
			}
			rev = next
			backoff.wait(ctx)
		}
	}
	return ctx.Err()
}

func (s *Store) snapshot(ctx context.Context) (SyncEvent, error) {
	start := time.Now()
	kvs, rev, err := s.rangePrefix(ctx, store.ResourcePrefix)
	if err != nil {
		return SyncEvent{}, fmt.Errorf("listing resources (for %v): %w", time.Since(start).Round(time.Millisecond), err)
	}
	ups := decodeAll(kvs)
	return SyncEvent{Snapshot: true, Revision: rev, Updates: ups, Listed: time.Since(start)}, nil
}

// decodeAll decodes a listing's resources on every core, in the
// listing's order; keys of kinds we do not know are left out. Decoding
// is most of a snapshot's cost (about 20 µs a WorkloadEndpoint: a
// fresh node of a 300-host cluster decodes 30,000).
func decodeAll(kvs []*mvccpb.KeyValue) []Update {
	out := make([]Update, len(kvs))
	known := make([]bool, len(kvs))
	var wg sync.WaitGroup
	workers := min(runtime.GOMAXPROCS(0), max(len(kvs)/256, 1))
	for w := range workers {
		wg.Go(func() {
			for i := w; i < len(kvs); i += workers {
				id, ok := store.ParseKey(string(kvs[i].Key))
				if !ok {
					continue // not a resource kind we know
				}
				out[i], known[i] = Update{ID: id, Resource: store.DecodeStored(id, kvs[i].Value, kvs[i].ModRevision)}, true
			}
		})
	}
	wg.Wait()
	n := 0
	for i := range out {
		if known[i] {
			out[n] = out[i]
			n++
		}
	}
	clear(out[n:])
	return out[:n]
}

func (s *Store) decodeInto(ev *SyncEvent, key string, val []byte, rev int64) {
	id, ok := store.ParseKey(key)
	if !ok {
		return // not a resource kind we know
	}
	if val == nil {
		ev.Updates = append(ev.Updates, Update{ID: id})
		return
	}
	ev.Updates = append(ev.Updates, Update{ID: id, Resource: store.DecodeStored(id, val, rev)})
}

// watch delivers changes after rev until the watch breaks, and returns the
// last revision it delivered.
func (s *Store) watch(ctx context.Context, rev int64, fn func(SyncEvent), b *backoff) (int64, error) {
	wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	defer cancel()
	for wr := range s.kv.Watch(wctx, store.ResourcePrefix, clientv3.WithPrefix(), clientv3.WithRev(rev+1), clientv3.WithCreatedNotify()) {
		if err := wr.Err(); err != nil {
			if wr.CompactRevision != 0 {
				return rev, rpctypes.ErrCompacted
			}
			return rev, fmt.Errorf("watching resources: %w", err)
		}
		b.reset()
		if wr.Created {
			// The watch is up: a caller told of an error before
			// knows it follows the datastore again.
			fn(SyncEvent{Revision: rev})
			continue
		}
		if wr.IsProgressNotify() {
			// Asked for by RequestProgress: every event up to the
			// header's revision has come, so the state is at it.
			rev = max(rev, wr.Header.Revision)
			fn(SyncEvent{Revision: rev})
			continue
		}
		if len(wr.Events) == 0 {
			continue
		}
		// The last event's revision, not the header's: a response may be
		// one batch of a longer catch-up, and the header is the store's
		// revision at the time, so resuming from it (or telling the cache
		// it is there) would skip the events still to come.
		last := wr.Events[len(wr.Events)-1].Kv.ModRevision
		ev := SyncEvent{Revision: last}
		for _, e := range wr.Events {
			var val []byte
			if e.Type == clientv3.EventTypePut {
				val = e.Kv.Value
			}
			s.decodeInto(&ev, string(e.Kv.Key), val, e.Kv.ModRevision)
		}
		fn(ev)
		rev = last
	}
	return rev, errors.New("watch closed")
}

// RequestProgress asks etcd to tell Sync's watch the store's revision
// once the watch has had every event up to it. Sync then delivers an
// event with no updates at that revision: the revision a caller sees
// moves on while no resource changes (other writes move etcd's), so the
// caller can tell how far behind its copy is without reading the
// resources again. Call it only while Sync watches (it would open a
// watch stream of its own otherwise).
func (s *Store) RequestProgress(ctx context.Context) error {
	// The watch's stream is the one of its context's metadata.
	return s.kv.RequestProgress(clientv3.WithRequireLeader(ctx))
}

// backoff is a capped exponential delay.
type backoff struct{ cur, min, max time.Duration }

func newBackoff(min, max time.Duration) *backoff { return &backoff{cur: min, min: min, max: max} }

func (b *backoff) reset() { b.cur = b.min }

func (b *backoff) wait(ctx context.Context) {
	t := time.NewTimer(b.cur)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
	b.cur = min(b.cur*2, b.max)
}
