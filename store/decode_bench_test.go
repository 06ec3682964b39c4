package store

import (
	"fmt"
	"runtime"
	"testing"

	"calico/internal/testutil"
)

// BenchmarkDecodeStoredWorkload is what reading one WorkloadEndpoint from
// etcd costs: a fresh node decodes every endpoint of the cluster.
func BenchmarkDecodeStoredWorkload(b *testing.B) {
	id, s := storedWorkload(b)
	for b.Loop() {
		r := DecodeStored(id, []byte(s), 7)
		if len(r.Meta().Problems) > 0 {
			b.Fatal(fmt.Sprint(r.Meta().Problems))
		}
	}
}

// BenchmarkDecodedWorkloadMemory is the heap a decoded WorkloadEndpoint
// holds (B/endpoint): a node keeps every endpoint of the cluster so.
func BenchmarkDecodedWorkloadMemory(b *testing.B) {
	id, s := storedWorkload(b)
	const n = 10000
	kept := make([]Resource, n)
	var perEndpoint float64
	for b.Loop() {
		clear(kept)
		before := testutil.LiveHeap()
		for i := range kept {
			kept[i] = DecodeStored(id, []byte(s), 7)
		}
		perEndpoint = float64(testutil.LiveHeap()-before) / n
	}
	runtime.KeepAlive(kept)
	b.ReportMetric(perEndpoint, "B/endpoint")
}

// storedWorkload is a WorkloadEndpoint as a node stores it.
func storedWorkload(b *testing.B) (ID, string) {
	w := KindWorkloadEndpoint.New().(*WorkloadEndpoint)
	*w = WorkloadEndpoint{TypeMeta: w.TypeMeta, Metadata: ObjectMeta{Name: "host1-k8s-pod-eth0", Namespace: "ns-1", Labels: map[string]string{"app": "a1", "role": "r1", "tier": "t1"}},
		Spec: WorkloadEndpointSpec{Node: "host1", Orchestrator: "k8s", Workload: "pod", Endpoint: "eth0", InterfaceName: "cali0123456789a",
			Profiles: []string{"kns.ns-1"}, IPNetworks: []string{"10.65.0.1/32", "fd00:65::1/128"}}}
	s, err := EncodeStored(w)
	if err != nil {
		b.Fatal(err)
	}
	return IDOf(w), s
}
