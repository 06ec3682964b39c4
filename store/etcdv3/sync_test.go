package etcdv3

import (
	"fmt"
	"testing"

	"calico/store"

	"go.etcd.io/etcd/api/v3/mvccpb"
)

// TestDecodeAll: a listing decoded on several cores comes out in the
// listing's order, each value under its key and revision, with keys of
// unknown kinds left out.
func TestDecodeAll(t *testing.T) {
	var kvs []*mvccpb.KeyValue
	var want []string
	for i := range 1000 {
		if i%97 == 0 {
			kvs = append(kvs, &mvccpb.KeyValue{Key: []byte(fmt.Sprintf("/calico/resources/v3/projectcalico.org/nosuchkinds/x%d", i)), Value: []byte("{}")})
		}
		w := store.KindWorkloadEndpoint.New().(*store.WorkloadEndpoint)
		w.Metadata.Name, w.Metadata.Namespace = fmt.Sprintf("w%04d", i), "ns"
		w.Spec.Node, w.Spec.InterfaceName = "host1", fmt.Sprintf("cali%04d", i)
		w.Spec.Orchestrator, w.Spec.Workload, w.Spec.Endpoint = "calico", fmt.Sprintf("w%04d", i), "eth0"
		v, err := store.EncodeStored(w)
		if err != nil {
			t.Fatal(err)
		}
		kvs = append(kvs, &mvccpb.KeyValue{Key: []byte(store.Key(store.IDOf(w))), Value: []byte(v), ModRevision: int64(i + 1)})
		want = append(want, w.Metadata.Name)
	}
	got := decodeAll(kvs)
	if len(got) != len(want) {
		t.Fatalf("%d updates, want %d", len(got), len(want))
	}
	for i, u := range got {
		w, ok := u.Resource.(*store.WorkloadEndpoint)
		switch {
		case !ok:
			t.Fatalf("update %d: %T, want a WorkloadEndpoint", i, u.Resource)
		case w.Metadata.Name != want[i] || u.ID.Name != want[i]:
			t.Fatalf("update %d: %s (id %s), want %s", i, w.Metadata.Name, u.ID.Name, want[i])
		case w.Metadata.ResourceVersion != fmt.Sprint(i+1):
			t.Fatalf("update %d: revision %s, want %d", i, w.Metadata.ResourceVersion, i+1)
		case len(w.Metadata.Problems) > 0:
			t.Fatalf("update %d: problems %v", i, w.Metadata.Problems)
		}
	}
}
