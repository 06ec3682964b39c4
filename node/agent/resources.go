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
// Resources with equal labels share one map of them (labels): a node
// keeps every endpoint of the fleet, and replicas' labels, one map each,
// were about a third of a decoded endpoint's memory. Labels are never
// changed in place (the store clones them first), so sharing is safe.
type resources struct {
	keys   []string
	vals   []store.Resource
	pos    map[string]int
	labels map[string]*sharedLabels
	// workloads counts the WorkloadEndpoints among vals.
	workloads int
}

// sharedLabels is a labels map and how many resources hold it.
type sharedLabels struct {
	m map[string]string
	n int
}

func newResources(n int) *resources {
	return &resources{keys: make([]string, 0, n), vals: make([]store.Resource, 0, n), pos: make(map[string]int, n), labels: map[string]*sharedLabels{}}
}

func (r *resources) len() int { return len(r.vals) }

func (r *resources) get(k string) (store.Resource, bool) {
	i, ok := r.pos[k]
	if !ok {
		return nil, false
	}
	return r.vals[i], true
}

// set files v under k. v must be the cache's own (fresh from decoding):
// its labels may be replaced by an equal map another resource holds.
func (r *resources) set(k string, v store.Resource) {
	r.share(v)
	r.count(v, 1)
	if i, ok := r.pos[k]; ok {
		r.release(r.vals[i])
		r.count(r.vals[i], -1)
		r.vals[i] = v
		return
	}
	r.pos[k] = len(r.vals)
	r.keys, r.vals = append(r.keys, k), append(r.vals, v)
}

func (r *resources) del(k string) {
	i, ok := r.pos[k]
	if !ok {
		return
	}
	r.release(r.vals[i])
	r.count(r.vals[i], -1)
	last := len(r.vals) - 1
	r.keys[i], r.vals[i] = r.keys[last], r.vals[last]
	r.pos[r.keys[i]] = i
	r.keys[last], r.vals[last] = "", nil
	r.keys, r.vals = r.keys[:last], r.vals[:last]
	delete(r.pos, k)
}

// count adds d to the count of v's kind.
func (r *resources) count(v store.Resource, d int) {
	if _, ok := v.(*store.WorkloadEndpoint); ok {
		r.workloads += d
	}
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
