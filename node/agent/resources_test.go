package agent

import (
	"reflect"
	"slices"
	"testing"

	"calico/store"
)

// TestResourcesShareLabels: resources with equal labels hold one map of
// them, counted, and dropped when the last goes; labels that differ are
// not shared.
func TestResourcesShareLabels(t *testing.T) {
	we := func(name string, labels map[string]string) *store.WorkloadEndpoint {
		return &store.WorkloadEndpoint{Metadata: store.ObjectMeta{Name: name, Namespace: "ns", Labels: labels}}
	}
	same := func(a, b map[string]string) bool {
		return reflect.ValueOf(a).UnsafePointer() == reflect.ValueOf(b).UnsafePointer()
	}
	r := newResources(0)
	a := we("a", map[string]string{"app": "web", "tier": "1"})
	b := we("b", map[string]string{"tier": "1", "app": "web"})
	c := we("c", map[string]string{"app": "web", "tier": "2"})
	d := we("d", map[string]string{"app": "web", "tier": "1"})
	r.set("a", a)
	r.set("b", b)
	r.set("c", c)
	if !same(a.Metadata.Labels, b.Metadata.Labels) || same(a.Metadata.Labels, c.Metadata.Labels) {
		t.Fatalf("equal labels not shared, or unequal ones shared: a %p b %p c %p", a.Metadata.Labels, b.Metadata.Labels, c.Metadata.Labels)
	}
	if got := r.labels[labelsKey(a.Metadata.Labels)].n; got != 2 || len(r.labels) != 2 || len(r.wls) != 3 {
		t.Fatalf("holders %d (want 2), label sets %d (want 2), workloads %d (want 3)", got, len(r.labels), len(r.wls))
	}
	// b replaced by c's labels: a holds its map alone.
	r.set("b", we("b", map[string]string{"app": "web", "tier": "2"}))
	if got := r.labels[labelsKey(a.Metadata.Labels)].n; got != 1 {
		t.Errorf("a's labels held %d times, want 1", got)
	}
	r.del("a")
	if _, ok := r.labels[labelsKey(a.Metadata.Labels)]; ok {
		t.Error("a's labels kept after the last holder went")
	}
	// A new holder of a's labels gets a map of its own, with them.
	r.set("d", d)
	if d.Metadata.Labels["app"] != "web" || d.Metadata.Labels["tier"] != "1" || len(d.Metadata.Labels) != 2 {
		t.Errorf("d's labels %v", d.Metadata.Labels)
	}
	r.del("b")
	r.del("c")
	r.del("d")
	if len(r.labels) != 0 || r.len() != 0 || len(r.wls) != 0 {
		t.Errorf("left: %d label sets, %d resources, %d workloads", len(r.labels), r.len(), len(r.wls))
	}
	// No labels: nothing shared or counted.
	r.set("e", we("e", nil))
	if len(r.labels) != 0 {
		t.Errorf("a resource without labels counted: %d", len(r.labels))
	}
}

func labelsKey(labels map[string]string) string { return string(appendLabelsKey(nil, labels)) }

// TestLabelsKeyUnambiguous: keys and values that run into each other do
// not make equal keys.
func TestLabelsKeyUnambiguous(t *testing.T) {
	if labelsKey(map[string]string{"ab": "c"}) == labelsKey(map[string]string{"a": "bc"}) {
		t.Error("ab=c and a=bc have the same key")
	}
	if labelsKey(map[string]string{"a": "", "b": ""}) == labelsKey(map[string]string{"a": "\x01b"}) {
		t.Error("two labels and one have the same key")
	}
}

// TestResourcesLendWorkloads: the list of workloads handed out never
// changes afterwards; the resources go on with their own copy, every key
// still finding its value, workloads and others apart.
func TestResourcesLendWorkloads(t *testing.T) {
	we := func(name string) *store.WorkloadEndpoint {
		return &store.WorkloadEndpoint{Metadata: store.ObjectMeta{Name: name, Namespace: "ns"}}
	}
	r := newResources(0)
	a, b, c := we("a"), we("b"), we("c")
	pol := &store.GlobalNetworkPolicy{Metadata: store.ObjectMeta{Name: "p"}}
	r.set("a", a)
	r.set("p", pol)
	r.set("b", b)
	r.set("c", c)
	lent := r.workloadList()
	want := []*store.WorkloadEndpoint{a, b, c}
	if !slices.Equal(lent, want) || len(r.vals) != 1 {
		t.Fatalf("workloads %v, others %d; want a, b, c and the policy", lent, len(r.vals))
	}
	b2, d := we("b"), we("d")
	r.set("b", b2) // a place written: copied first
	r.del("a")     // the last moves into a's place
	r.set("d", d)  // appended
	if !slices.Equal(lent, want) {
		t.Errorf("the lent list changed: %v", lent)
	}
	now := r.workloadList()
	if !slices.Equal(now, []*store.WorkloadEndpoint{c, b2, d}) {
		t.Errorf("workloads now %v; want c, b (new), d", now)
	}
	for k, v := range map[string]store.Resource{"b": b2, "c": c, "d": d, "p": pol} {
		if got, ok := r.get(k); !ok || got != v {
			t.Errorf("get(%q) = %v, %v", k, got, ok)
		}
	}
	if _, ok := r.get("a"); ok || r.len() != 4 {
		t.Errorf("a still there, or %d resources (want 4)", r.len())
	}
	keys := r.allKeys()
	slices.Sort(keys)
	if !slices.Equal(keys, []string{"b", "c", "d", "p"}) {
		t.Errorf("allKeys %v", keys)
	}
	r.del("p")
	r.del("d")
	if r.len() != 2 || len(r.vals) != 0 {
		t.Errorf("%d resources, %d others after deleting p and d", r.len(), len(r.vals))
	}
}
