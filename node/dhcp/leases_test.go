package dhcp

import (
	"net/netip"
	"testing"

	"calico/store"
)

func endpoint(node, name, iface, mac string, attached bool, nets ...string) *store.WorkloadEndpoint {
	w := store.KindWorkloadEndpoint.New().(*store.WorkloadEndpoint)
	w.Metadata.Name, w.Metadata.Namespace = node+"-calico-"+name+"-eth0", "default"
	w.Spec = store.WorkloadEndpointSpec{Node: node, Workload: name, InterfaceName: iface, MAC: mac, IPNetworks: nets}
	if attached {
		w.Metadata.Annotations = map[string]string{store.AnnotationAttached: "tuntap"}
	}
	return w
}

func TestLeasesOf(t *testing.T) {
	ls := LeasesOf("h1", []*store.WorkloadEndpoint{
		endpoint("h1", "vm1", "vnet3", "52:54:00:12:34:56", true, "10.65.7.70/32", "fd00:65::46/128"),
		endpoint("h1", "vm2", "tap2", "", true, "fd00:65::47/128"),
		endpoint("h1", "c1", "cali0123", "ee:ee:ee:00:00:01", false, "10.65.7.1/32"),
		endpoint("h1", "x", "eth0", "", false, "10.65.7.9/32"), // not a workload interface
		endpoint("h2", "vm9", "vnet9", "", true, "10.65.8.1/32"),
		endpoint("h1", "d1", "tapd", "", true, "10.65.7.80/32"),
		endpoint("h1", "d2", "tapd", "", true, "10.65.7.81/32"),
	})
	if len(ls) != 3 {
		t.Fatalf("leases %+v", ls)
	}
	vm1 := ls["vnet3"]
	if vm1.IPv4 != netip.MustParseAddr("10.65.7.70") || vm1.IPv6 != netip.MustParseAddr("fd00:65::46") || vm1.MAC.String() != "52:54:00:12:34:56" || !vm1.Attached || vm1.Workload != "default/vm1" {
		t.Errorf("vnet3: %+v", vm1)
	}
	if vm2 := ls["tap2"]; vm2.IPv4.IsValid() || vm2.MAC != nil {
		t.Errorf("tap2: %+v", vm2)
	}
	if c1 := ls["cali0123"]; c1.Attached || c1.MAC == nil {
		t.Errorf("cali0123: %+v", c1)
	}
}
