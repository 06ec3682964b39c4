package agent

import "calico/store"

// resources are the cache's resources by etcd key, kept in a stable
// order: a new one goes last, a removed one's place is taken by the last.
// The calculation's input lists them in that order, so that the
// calculation finds what changed since its last input by comparing the
// lists place by place (calc's index) rather than looking every resource
// up.
type resources struct {
	keys []string
	vals []store.Resource
	pos  map[string]int
}

func newResources(n int) *resources {
	return &resources{keys: make([]string, 0, n), vals: make([]store.Resource, 0, n), pos: make(map[string]int, n)}
}

func (r *resources) len() int { return len(r.vals) }

func (r *resources) get(k string) (store.Resource, bool) {
	i, ok := r.pos[k]
	if !ok {
		return nil, false
	}
	return r.vals[i], true
}

func (r *resources) set(k string, v store.Resource) {
	if i, ok := r.pos[k]; ok {
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
	last := len(r.vals) - 1
	r.keys[i], r.vals[i] = r.keys[last], r.vals[last]
	r.pos[r.keys[i]] = i
	r.keys[last], r.vals[last] = "", nil
	r.keys, r.vals = r.keys[:last], r.vals[:last]
	delete(r.pos, k)
}
