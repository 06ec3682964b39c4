package agent

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/netip"
	"os"
	"runtime"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"calico/node/calc"
	"calico/store"
	"calico/store/etcdv3"

	bolt "go.etcd.io/bbolt"
)

// cache is the node's copy of the datastore: every resource, the revision
// it is at and this host's address blocks. It is kept in a bbolt file so
// that a node restarted while the datastore is out of reach programs the
// same dataplane as before.
type cache struct {
	mu     sync.Mutex
	items  *resources // by etcd key, in a stable order
	blocks []netip.Prefix
	rev    int64
	// gen counts the changes to items and blocks (see generation).
	gen atomic.Uint64
	// loaded: items is a complete state (from disk or from etcd).
	loaded bool
	// live: items follows etcd right now.
	live bool
	// lastEvent is when the datastore last changed the copy.
	lastEvent time.Time
	fromDisk  bool
	syncErr   error

	db *bolt.DB
	// writer is this binary's version, recorded with a whole rewrite:
	// a cache this version wrote whole is loaded without checking its
	// values again (the checks' results are stored with them).
	writer string
	// dirty keys to write; all: rewrite everything.
	dirty map[string]bool
	all   bool
	// saving is held for the whole of a save (persist).
	saving sync.Mutex
}

var (
	bucketResources = []byte("resources")
	bucketMeta      = []byte("meta")
	keyRevision     = []byte("revision")
	keyBlocks       = []byte("blocks")
	// keyWriter is kept among the resources (no resource's key), so that
	// any version's whole rewrite, which replaces that bucket, removes
	// it: a version before it knows nothing of it.
	keyWriter = []byte("writer")
)

// openCache opens (or creates) the cache file and loads what it holds. A
// file that cannot be read (bbolt refuses it, or it is corrupt inside) is
// only a cache: it is moved aside with a warning, and the agent starts
// empty and fills it from the datastore.
func openCache(path, writer string, log *slog.Logger) (*cache, error) {
	c, err := loadCache(path, writer)
	if err == nil {
		return c, nil
	}
	aside := path + ".corrupt-" + time.Now().UTC().Format("20060102T150405")
	if rerr := os.Rename(path, aside); rerr != nil {
		return nil, errors.Join(err, fmt.Errorf("moving the state cache aside: %w", rerr))
	}
	log.Warn("the state cache cannot be read; it is moved aside and rebuilt from the datastore", "err", err, "aside", aside)
	return loadCache(path, writer)
}

// loadCache opens the cache file and loads what it holds; a panic of
// bbolt's on a corrupt page is an error, and so is a fault reading its
// memory map (a file cut short: its pages past the end fault with SIGBUS,
// which would crash the node, at every start, without SetPanicOnFault).
func loadCache(path, writer string) (c *cache, err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	var db *bolt.DB
	defer func() {
		if p := recover(); p != nil {
			if db != nil {
				db.Close()
			}
			c, err = nil, fmt.Errorf("reading the state cache %s: %v", path, p)
		}
	}()
	db, err = bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		return nil, fmt.Errorf("opening the state cache %s: %w", path, err)
	}
	c, err = readCache(db, writer)
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("reading the state cache %s: %w", path, err)
	}
	return c, nil
}

// readCache loads what an open cache file holds. Its values are checked
// as the datastore's are, unless this version wrote the whole cache
// (trusted: see loadCached) and is trustable.
func readCache(db *bolt.DB, writer string) (*cache, error) {
	c := &cache{db: db, writer: writer, items: newResources(0), dirty: map[string]bool{}}
	err := db.View(func(tx *bolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		res := tx.Bucket(bucketResources)
		if meta == nil || res == nil {
			return nil // a new cache
		}
		if v := meta.Get(keyRevision); len(v) == 8 {
			c.rev = int64(binary.BigEndian.Uint64(v))
		}
		if v := meta.Get(keyBlocks); v != nil {
			if err := json.Unmarshal(v, &c.blocks); err != nil {
				return err
			}
		}
		trusted := trustable(writer) && string(res.Get(keyWriter)) == writer
		type entry struct {
			key string
			id  store.ID
			val []byte
			r   store.Resource
		}
		var entries []entry
		err := res.ForEach(func(k, v []byte) error {
			if id, ok := store.ParseKey(string(k)); ok {
				// A copy, read here: a fault reading a file cut short
				// is an error on this goroutine only (loadCache).
				entries = append(entries, entry{key: string(k), id: id, val: bytes.Clone(v)})
			}
			return nil
		})
		// Decoded on every core: a restart waits for it.
		var wg sync.WaitGroup
		workers := runtime.GOMAXPROCS(0)
		panics := make([]any, workers)
		for w := range workers {
			wg.Go(func() {
				defer func() { panics[w] = recover() }()
				for i := w; i < len(entries); i += workers {
					entries[i].r = loadCached(entries[i].id, entries[i].val, trusted)
				}
			})
		}
		wg.Wait()
		for _, p := range panics {
			if p != nil {
				panic(p) // loadCache's recover makes it an error
			}
		}
		for _, e := range entries {
			c.items.set(e.key, e.r)
		}
		c.loaded, c.fromDisk = c.rev > 0, c.rev > 0
		return err
	})
	if err != nil {
		return nil, err
	}
	return c, nil
}

func (c *cache) close() error { return c.db.Close() }

// update applies one sync event; it reports whether anything changed.
func (c *cache) update(ev etcdv3.SyncEvent) bool {
	changed := c.applyEvent(ev)
	if changed {
		c.gen.Add(1)
	}
	return changed
}

// generation counts the changes to the calculation's input: the
// resources and this host's blocks.
func (c *cache) generation() uint64 { return c.gen.Load() }

func (c *cache) applyEvent(ev etcdv3.SyncEvent) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if ev.Err != nil {
		c.syncErr, c.live = ev.Err, false
		return false
	}
	c.syncErr = nil
	if !c.fromDisk && c.loaded {
		// A watch resumed after an error: live again (Sync delivers
		// no other event before its first snapshot).
		c.live = true
	}
	if ev.Snapshot {
		c.items = newResources(len(ev.Updates))
		c.all = true
		c.loaded, c.live, c.fromDisk = true, true, false
	}
	for _, u := range ev.Updates {
		k := store.Key(u.ID)
		if u.Resource == nil {
			c.items.del(k)
		} else {
			c.items.set(k, u.Resource)
		}
		c.dirty[k] = true
	}
	changed := ev.Snapshot || len(ev.Updates) > 0
	if changed {
		c.lastEvent = time.Now()
	}
	if ev.Revision > c.rev {
		c.rev = ev.Revision
	}
	return changed
}

// setBlocks records this host's address blocks.
func (c *cache) setBlocks(b []netip.Prefix) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !slices.Equal(c.blocks, b) {
		c.blocks = b
		c.gen.Add(1)
	}
}

// input is the calculation's input at the cache's current state.
func (c *cache) input(node string) (in calc.Input, rev int64, ok bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.loaded {
		return calc.Input{}, 0, false
	}
	in.Node = node
	in.HostBlocks = c.blocks
	// Workloads are the fleet's bulk: their list is the cache's own,
	// lent (see resources).
	in.Workloads = c.items.workloadList()
	for _, r := range c.items.vals {
		in.Add(r)
	}
	return in, c.rev, true
}

// size is how many resources the copy holds.
func (c *cache) size() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.items.len()
}

// changedAt is when the datastore last changed the copy.
func (c *cache) changedAt() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lastEvent
}

// state reports how the cache relates to the datastore.
func (c *cache) state() (rev int64, live, fromDisk bool, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.rev, c.live, c.fromDisk, c.syncErr
}

// persist writes what changed since the last write. Only the copy of what to write is made under
// the cache's lock: the encoding and bbolt's write (0.6 s for the
// 100,000 resources of a 1,000-host cluster on an idle core, seconds
// under load) hold up neither the datastore's events nor the
// calculation's input. One save runs at a time, so a later one never
// lands under an earlier one. A failed write leaves its keys to write
// again.
func (c *cache) persist() error {
	c.saving.Lock()
	defer c.saving.Unlock()
	w, ok := c.toWrite()
	if !ok {
		return nil
	}
	if err := c.db.Update(w.write); err != nil {
		c.mu.Lock()
		defer c.mu.Unlock()
		for _, k := range w.keys {
			c.dirty[k] = true
		}
		c.all = c.all || w.all
		return fmt.Errorf("writing the state cache: %w", err)
	}
	return nil
}

// cacheWrite is one save of the cache: what changed (or everything),
// as it was when the save began.
type cacheWrite struct {
	all    bool
	keys   []string
	vals   []store.Resource // nil: the key is deleted
	rev    int64
	blocks []netip.Prefix
	writer string
}

// toWrite takes what a save is to write, when there is a state to save
// (not the one read from the file), and starts the next one's list of
// changes.
func (c *cache) toWrite() (cacheWrite, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.loaded || c.fromDisk {
		return cacheWrite{}, false
	}
	w := cacheWrite{all: c.all, rev: c.rev, blocks: c.blocks, writer: c.writer}
	if c.all {
		w.keys = c.items.allKeys()
	} else {
		w.keys = slices.Collect(maps.Keys(c.dirty))
	}
	// In key order: bbolt keeps a bucket's keys of one write in a
	// sorted slice until the commit, so keys put in random order cost a
	// copy of that slice each, O(n²): 24 s of memmove for the 101,000
	// resources of a 1,000-host cluster (a fresh node's first pass and a
	// restarted reflector waited for it). In order, each is appended.
	slices.Sort(w.keys)
	w.vals = make([]store.Resource, len(w.keys))
	for i, k := range w.keys {
		w.vals[i], _ = c.items.get(k)
	}
	c.dirty, c.all = map[string]bool{}, false
	return w, true
}

// write is the bbolt transaction of a save. The resources are shared
// with the cache: a resource is never changed once stored, only
// replaced.
func (w cacheWrite) write(tx *bolt.Tx) error {
	if w.all && tx.Bucket(bucketResources) != nil {
		if err := tx.DeleteBucket(bucketResources); err != nil {
			return err
		}
	}
	res, err := tx.CreateBucketIfNotExists(bucketResources)
	if err != nil {
		return err
	}
	meta, err := tx.CreateBucketIfNotExists(bucketMeta)
	if err != nil {
		return err
	}
	for i, k := range w.keys {
		if w.vals[i] == nil {
			if err := res.Delete([]byte(k)); err != nil {
				return err
			}
			continue
		}
		b, err := cachedValue(w.vals[i])
		if err != nil {
			return err
		}
		if err := res.Put([]byte(k), b); err != nil {
			return err
		}
	}
	rev := make([]byte, 8)
	binary.BigEndian.PutUint64(rev, uint64(w.rev))
	if err := meta.Put(keyRevision, rev); err != nil {
		return err
	}
	if w.all && trustable(w.writer) {
		if err := res.Put(keyWriter, []byte(w.writer)); err != nil {
			return err
		}
	}
	blocks, err := json.Marshal(w.blocks)
	if err != nil {
		return err
	}
	return meta.Put(keyBlocks, blocks)
}

// cachedValue is how the cache stores a resource: its JSON, wrapped with
// its problems when it has any, so that a node started from its cache
// enforces a resource another tool wrote badly as fail-closed as before.
func cachedValue(r store.Resource) ([]byte, error) {
	if len(r.Meta().Problems) == 0 {
		return json.Marshal(r)
	}
	return json.Marshal(struct {
		Resource store.Resource     `json:"resource"`
		Problems []store.FieldError `json:"problems"`
	}{r, r.Meta().Problems})
}

// wrappedValue is cachedValue's wrapping of a resource with problems, as
// read back.
type wrappedValue struct {
	Resource json.RawMessage    `json:"resource"`
	Problems []store.FieldError `json:"problems"`
}

// loadCached reads what cachedValue wrote (or an older cache's plain
// JSON) as the datastore's values are read. A trusted value (this
// version wrote it, with the problems its checks found) is only decoded:
// checking it again would find the same, at about 45 µs a resource
// (160 ms of a restart with 3,500).
func loadCached(id store.ID, v []byte, trusted bool) store.Resource {
	if trusted {
		if r, ok := loadTrusted(id, v); ok {
			return r
		}
	}
	var wrapped wrappedValue
	if json.Unmarshal(v, &wrapped) != nil || wrapped.Resource == nil {
		return store.DecodeStored(id, v, 0)
	}
	r := store.DecodeStored(id, wrapped.Resource, 0)
	m := r.Meta()
	for _, p := range wrapped.Problems {
		if !slices.Contains(m.Problems, p) {
			m.Problems = append(m.Problems, p)
		}
	}
	return r
}

// loadTrusted decodes a value cachedValue wrote: the resource's JSON, or
// that wrapped with its problems. Anything else is not ok.
func loadTrusted(id store.ID, v []byte) (store.Resource, bool) {
	r := id.Kind.New()
	raw := v
	var problems []store.FieldError
	if bytes.HasPrefix(v, []byte(`{"resource":`)) {
		var wrapped wrappedValue
		if json.Unmarshal(v, &wrapped) != nil || wrapped.Resource == nil {
			return nil, false
		}
		raw, problems = wrapped.Resource, wrapped.Problems
	}
	if json.Unmarshal(raw, r) != nil || store.KindOf(r) == nil {
		return nil, false
	}
	m := r.Meta()
	if m.Name != id.Name || m.Namespace != id.Namespace {
		return nil, false
	}
	m.Problems = problems
	return r, true
}

// trustable says whether a version names one build: a release's or a
// commit's, not "dev", none, or a build of uncommitted changes (two of
// those may share a name and check differently).
func trustable(version string) bool {
	return version != "" && version != "dev" && !strings.HasSuffix(version, "-dirty")
}
