package workload

import (
	"net"
	"slices"

	"calico/node/calc"
	"calico/store"
)

// A workload of this host is up while its interface is there, up and has
// a carrier. An attached interface comes and goes with its VM: while it
// is absent the workload is down (the node routes to it again when the
// kernel reports it), which `workload list` and `calico status` say.

// links reads the host's interfaces once: their flags by name.
func links() map[string]net.Flags {
	ifs, err := net.Interfaces()
	if err != nil {
		return nil
	}
	out := make(map[string]net.Flags, len(ifs))
	for _, i := range ifs {
		out[i.Name] = i.Flags
	}
	return out
}

// stateOf is the state of a local workload: "up", or "down" and why.
func stateOf(w *store.WorkloadEndpoint, links map[string]net.Flags) (state, why string) {
	name := w.Spec.InterfaceName
	flags, ok := links[name]
	switch {
	case !ok && attachedKind(w) != "":
		return "down", "interface " + name + " is absent (is the VM running?)"
	case !ok:
		return "down", "interface " + name + " is absent"
	case flags&net.FlagUp == 0:
		return "down", "interface " + name + " is down"
	case flags&net.FlagRunning == 0:
		return "down", "interface " + name + " has no carrier (nothing on its other side)"
	}
	return "up", ""
}

// Down lists the workloads of node whose interface is absent, down or
// without carrier, as "namespace/name: why", for `calico status`. It
// reads the kernel: call it on node's host.
func Down(node string, ws []*store.WorkloadEndpoint) []string {
	var ls map[string]net.Flags
	var out []string
	for _, w := range ws {
		if w.Spec.Node != node || w.Spec.InterfaceName == "" || store.Broken(w) || !calc.Policed(w) {
			continue
		}
		if ls == nil {
			ls = links()
		}
		if state, why := stateOf(w, ls); state != "up" {
			out = append(out, w.Metadata.Namespace+"/"+w.Spec.Workload+": "+why)
		}
	}
	slices.Sort(out)
	return out
}
