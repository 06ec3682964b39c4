package store

import (
	"fmt"
	"testing"
)

// BenchmarkDecodeStoredWorkload is what reading one WorkloadEndpoint from
// etcd costs: a fresh node decodes every endpoint of the cluster.
func BenchmarkDecodeStoredWorkload(b *testing.B) {
	w := KindWorkloadEndpoint.New().(*WorkloadEndpoint)
	*w = WorkloadEndpoint{TypeMeta: w.TypeMeta, Metadata: ObjectMeta{Name: "host1-k8s-pod-eth0", Namespace: "ns-1", Labels: map[string]string{"app": "a1", "role": "r1", "tier": "t1"}},
		Spec: WorkloadEndpointSpec{Node: "host1", Orchestrator: "k8s", Workload: "pod", Endpoint: "eth0", InterfaceName: "cali0123456789a",
			Profiles: []string{"kns.ns-1"}, IPNetworks: []string{"10.65.0.1/32", "fd00:65::1/128"}}}
	s, err := EncodeStored(w)
	if err != nil {
		b.Fatal(err)
	}
	id := IDOf(w)
	for b.Loop() {
		r := DecodeStored(id, []byte(s), 7)
		if len(r.Meta().Problems) > 0 {
			b.Fatal(fmt.Sprint(r.Meta().Problems))
		}
	}
}
