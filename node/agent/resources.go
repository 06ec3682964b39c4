package agent

import (
	"encoding/binary"
	"slices"

	"calico/store"
)

// resources are the cache's resources by etcd key, kept in a stable
// order: a new one goes last, a removed one's place is taken by the last.
// The calculation's input lists them in that order, so that the
// calculation finds what changed since its last input by comparing the
// lists place by place (calc's index) rather than looking every resource
// up.
//
// WorkloadEndpoints, the fleet's bulk, are kept apart, in a list of
// their own that the input takes as it is (workloadList): a pass copies
// no list of 100,000 pointers, and a pass where no workload changed
// allocates none. The list handed out is never written again: the first
// change of a place in it after that copies it (appending does not, as
// the holder's list ends before).
//
// Resources with equal labels share one map of them (labels): a node
// keeps every endpoint of the fleet, and replicas' labels, one map each,
// were about a third of a decoded endpoint's memory. Labels are never
// changed in place (the store clones them first), so sharing is safe.
type resources struct {
	keys  []string
	vals  []store.Resource // all but WorkloadEndpoints
	wkeys []string
	wls   []*store.WorkloadEndpoint
	// pos is a key's place: i in vals, or -1-i in wls.
	pos    map[string]int
	labels map[string]*sharedLabels
	// lent: wls was handed out (workloadList).
	lent bool
}

// sharedLabels is a labels map and how many resources hold it.
type sharedLabels struct {
	m map[string]string
	n int
}

func newResources(n int) *resources {
	return &resources{pos: make(map[string]int, n), labels: map[string]*sharedLabels{}}
}

func (r *resources) len() int { return len(r.vals) + len(r.wls) }

func (r *resources) get(k string) (store.Resource, bool) {
	i, ok := r.pos[k]
	switch {
	case !ok:
		return nil, false
	case i < 0:
		return r.wls[-1-i], true
	}
	return r.vals[i], true
}

// set files v under k. v must be the cache's own (fresh from decoding):
// its labels may be replaced by an equal map another resource holds.
func (r *resources) set(k string, v store.Resource) {
	w, isWL := v.(*store.WorkloadEndpoint)
	i, ok := r.pos[k]
	if ok && (i < 0) != isWL { // another kind under the key: no key of the store's
		r.del(k)
		ok = false
	}
	r.share(v)
	if ok {
		old, _ := r.get(k)
		r.release(old)
	}
	switch {
	case ok && i < 0:
		r.own()
		r.wls[-1-i] = w
	case ok:
		r.vals[i] = v
	case isWL:
		r.pos[k] = -1 - len(r.wls)
		r.wkeys, r.wls = append(r.wkeys, k), append(r.wls, w)
	default:
		r.pos[k] = len(r.vals)
		r.keys, r.vals = append(r.keys, k), append(r.vals, v)
	}
}

func (r *resources) del(k string) {
	i, ok := r.pos[k]
	if !ok {
		return
	}
	old, _ := r.get(k)
	r.release(old)
	delete(r.pos, k)
	if i < 0 {
		r.own()
		i, last := -1-i, len(r.wls)-1
		r.wkeys[i], r.wls[i] = r.wkeys[last], r.wls[last]
		if i != last {
			r.pos[r.wkeys[i]] = -1 - i
		}
		r.wkeys[last], r.wls[last] = "", nil
		r.wkeys, r.wls = r.wkeys[:last], r.wls[:last]
		return
	}
	last := len(r.vals) - 1
	r.keys[i], r.vals[i] = r.keys[last], r.vals[last]
	if i != last {
		r.pos[r.keys[i]] = i
	}
	r.keys[last], r.vals[last] = "", nil
	r.keys, r.vals = r.keys[:last], r.vals[:last]
}

// workloadList is the WorkloadEndpoints, in their order; the caller may
// keep it, and must not change it.
func (r *resources) workloadList() []*store.WorkloadEndpoint {
	r.lent = true
	return r.wls[:len(r.wls):len(r.wls)]
}

// own makes wls the resources' own before a place in it is written.
func (r *resources) own() {
	if r.lent {
		r.wls = append(make([]*store.WorkloadEndpoint, 0, cap(r.wls)), r.wls...)
		r.lent = false
	}
}

// allKeys lists every resource's key.
func (r *resources) allKeys() []string {
	return append(append(make([]string, 0, r.len()), r.keys...), r.wkeys...)
}

// share gives v the labels map of the resources with the same labels.
func (r *resources) share(v store.Resource) {
	var buf [256]byte
	k, s := r.lookup(v, buf[:0])
	switch {
	case k == nil:
	case s != nil:
		v.Meta().Labels = s.m
		s.n++
	default:
		r.labels[string(k)] = &sharedLabels{m: v.Meta().Labels, n: 1}
	}
}

// release counts v's labels map as no longer held by v.
func (r *resources) release(v store.Resource) {
	var buf [256]byte
	if k, s := r.lookup(v, buf[:0]); s != nil {
		if s.n--; s.n == 0 {
			delete(r.labels, string(k))
		}
	}
}

// lookup finds the entry of v's labels, appending their key to b; a nil
// key for no labels.
func (r *resources) lookup(v store.Resource, b []byte) ([]byte, *sharedLabels) {
	labels := v.Meta().Labels
	if len(labels) == 0 {
		return nil, nil
	}
	k := appendLabelsKey(b, labels)
	return k, r.labels[string(k)]
}

// appendLabelsKey appends labels as one key, equal for equal labels:
// each key and value in key order, prefixed by its length.
func appendLabelsKey(b []byte, labels map[string]string) []byte {
	var buf [16]string
	keys := buf[:0]
	for k := range labels {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		b = binary.AppendUvarint(b, uint64(len(k)))
		b = append(b, k...)
		v := labels[k]
		b = binary.AppendUvarint(b, uint64(len(v)))
		b = append(b, v...)
	}
	return b
}
