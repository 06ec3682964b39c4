package calc

import (
	"fmt"
	"net"
	"slices"
	"strings"

	"calico/nft"
	"calico/store"
)

// Workload interfaces the node did not make (a VM's tap, attached with
// `calico workload add --iface`) are marked by store.AnnotationAttached.
// The node polices an interface as a workload's when it is one of its own
// (named cali…) or attached; any other name in a WorkloadEndpoint (another
// tool's, or the host's own eth0) is reported and left alone, never made a
// workload interface. An attached interface comes and goes with its VM:
// while the host does not have it, the endpoint is down and has no route
// (the node looks again when the kernel reports the interface), which is
// no problem.

// attached reports whether w's interface is one the node did not make.
func attached(w *store.WorkloadEndpoint) bool {
	return w.Metadata.Annotations[store.AnnotationAttached] != ""
}

// Policed reports whether the node polices w's interface as a
// workload's: one of its own (cali…) or an attached one, never loopback.
func Policed(w *store.WorkloadEndpoint) bool {
	name := w.Spec.InterfaceName
	return name != "lo" && (strings.HasPrefix(name, nft.IfacePrefix) || attached(w))
}

// reportUnpoliced reports this host's endpoints whose interface the node
// does not police, in the order of their names.
func (c *calculation) reportUnpoliced() {
	var ps []string
	for w := range c.idx.local {
		if w.Spec.InterfaceName != "" && !store.Broken(w) && !Policed(w) {
			ps = append(ps, fmt.Sprintf("%s: interface %s is not a workload interface (the node's own start with %s; others are attached with `calico workload add --iface`): it is neither policed nor routed as the workload's",
				store.IDOf(w), w.Spec.InterfaceName, nft.IfacePrefix))
		}
	}
	slices.Sort(ps)
	c.problems = append(c.problems, ps...)
}

// sourceMAC is the only source MAC an attached endpoint may send from:
// its spec.mac (`workload add --mac`); nil for no check.
func sourceMAC(w *store.WorkloadEndpoint) net.HardwareAddr {
	if !attached(w) {
		return nil
	}
	mac, err := net.ParseMAC(w.Spec.MAC)
	if err != nil || len(mac) != 6 {
		return nil
	}
	return mac
}

// NeedsInterfaces reports whether the calculation for in reads
// in.HostInterfaces: only when this host has an attached endpoint (is its
// interface there?) or a host endpoint given by expectedIPs (which
// interfaces hold them?). Otherwise Compute's result is the same whatever
// HostInterfaces holds, and the agent need not list the host's interfaces,
// a netlink dump of every link that costs a host of 1,000 workloads tens
// of milliseconds on every change.
func NeedsInterfaces(in Input) bool {
	for _, w := range in.Workloads {
		if w.Spec.Node == in.Node && attached(w) {
			return true
		}
	}
	for _, h := range in.HostEndpoints {
		if h.Spec.Node == in.Node && h.Spec.InterfaceName == "" {
			return true
		}
	}
	return false
}

// down reports whether an attached endpoint's interface is missing from
// the host, as far as the input knows (it lists the host's interfaces).
func down(in Input, w *store.WorkloadEndpoint) bool {
	if !attached(w) || in.HostInterfaces == nil {
		return false
	}
	_, ok := in.HostInterfaces[w.Spec.InterfaceName]
	return !ok
}
