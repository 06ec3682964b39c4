package dhcp

import (
	"net"
	"net/netip"

	"calico/node/calc"
	"calico/store"
)

// LeasesOf are the leases of a node's workload endpoints, by interface:
// one for each interface the node polices as a workload's (its own cali…
// veths, and interfaces attached with `workload add --iface`), with the
// endpoint's first IPv4 and IPv6 address and its MAC. An interface that
// two endpoints claim has none (the node drops its traffic).
func LeasesOf(node string, ws []*store.WorkloadEndpoint) map[string]Lease {
	out := map[string]Lease{}
	claimed := map[string]int{}
	for _, w := range ws {
		iface := w.Spec.InterfaceName
		if w.Spec.Node != node || iface == "" || store.Broken(w) || !calc.Policed(w) {
			continue
		}
		claimed[iface]++
		l := Lease{Iface: iface, Workload: w.Metadata.Namespace + "/" + w.Spec.Workload, Attached: w.Metadata.Annotations[store.AnnotationAttached] != ""}
		if mac, err := net.ParseMAC(w.Spec.MAC); err == nil && len(mac) == 6 {
			l.MAC = mac
		}
		for _, n := range w.Spec.IPNetworks {
			p, err := netip.ParsePrefix(n)
			if err != nil || !p.IsSingleIP() {
				continue
			}
			if a := p.Addr().Unmap(); a.Is4() && !l.IPv4.IsValid() {
				l.IPv4 = a
			} else if a.Is6() && !l.IPv6.IsValid() {
				l.IPv6 = a
			}
		}
		out[iface] = l
	}
	for iface, n := range claimed {
		if n > 1 {
			delete(out, iface)
		}
	}
	return out
}
