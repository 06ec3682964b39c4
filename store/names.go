package store

import "strings"

// WorkloadEndpointName is Calico's name for a workload endpoint,
// <node>-<orchestrator>-<workload>-<endpoint>, with every '-' inside a part
// doubled so the parts can be told apart.
func WorkloadEndpointName(node, orchestrator, workload, endpoint string) string {
	parts := []string{node, orchestrator, workload, endpoint}
	for i, p := range parts {
		parts[i] = strings.ReplaceAll(p, "-", "--")
	}
	return strings.Join(parts, "-")
}

// AnnotationAttached marks a WorkloadEndpoint whose interface something
// else made and owns (a VM's tap, attached with `calico workload add
// --iface`); its value is the interface's kind (tuntap, macvtap, veth).
// The node polices such an interface whatever its name, and never
// deletes it.
const AnnotationAttached = "projectcalico.org/attached-interface"
