//go:build linux

package workload

import (
	"net/netip"
	"slices"
	"strings"
	"testing"

	"calico/internal/testutil"
	"calico/node/api"
	"calico/node/veth"
	"calico/store"
	"calico/store/etcdv3"
	"calico/store/ipam"
)

// dockerEP is the Docker endpoint id of the tests.
const dockerEP = "4a3f0e6b2c9d8e7f6a5b4c3d2e1f0a9b8c7d6e5f4a3b2c1d0e9f8a7b6c5d4e3f"

// TestPrivilegedDockerEndpoint: a Docker endpoint through the service:
// Calico's libnetwork names, addresses the front end's IPAM holds (taken
// as they are, and never released by the service), the interface handed
// over in the host's namespace, the refusals, an add cut short and an
// idempotent removal.
func TestPrivilegedDockerEndpoint(t *testing.T) {
	testutil.Privileged(t)
	host := testutil.NewNetNS(t)
	s := newService(t)
	ctx := t.Context()
	a := netip.MustParseAddr("10.65.3.7")
	pool := ipam.Pool{CIDR: netip.MustParsePrefix("10.65.0.0/16"), BlockSize: 26}
	if err := s.IPAM.Assign(ctx, a, "libnetwork.x", "n1", pool, map[string]string{"node": "n1"}); err != nil {
		t.Fatal(err)
	}
	add := api.WorkloadAdd{Orchestrator: OrchestratorLibnetwork, ContainerID: dockerEP, Network: "web", IPs: []string{a.String()}, Allocated: true}
	err := host.Do(func() error {
		if err := veth.EnableForwarding(); err != nil {
			return err
		}
		dockerRefusals(t, s, add)
		w, err := s.Add(ctx, add)
		if err != nil {
			return err
		}
		checkDockerWorkload(t, s, w, a)
		if again, err := s.Add(ctx, add); err != nil || again.Endpoint != w.Endpoint {
			t.Errorf("a repeated add = %+v, %v", again, err)
		}
		other := add
		other.Network = "db"
		if _, err := s.Add(ctx, other); err == nil || !strings.Contains(err.Error(), "exists already") {
			t.Errorf("an add of the endpoint on another network = %v", err)
		}
		dockerRemoval(t, s, a)
		return dockerCutShort(t, s, add, a)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// checkDockerWorkload: a Docker endpoint is named as Calico's plugin
// names it, its pair is in the host's namespace, its endpoint has no
// handle of the service's.
func checkDockerWorkload(t *testing.T, s *Service, w *api.Workload, a netip.Addr) {
	t.Helper()
	if w.Endpoint != "n1-libnetwork-libnetwork-"+dockerEP || w.Namespace != "libnetwork" || w.Name != "libnetwork" || w.Interface != "cali4a3f0e6b2c9" ||
		w.Orchestrator != "libnetwork" || w.WorkloadInterface != dockerEP || !slices.Equal(w.Addresses, []netip.Addr{a}) || w.NetNS != "" {
		t.Errorf("added %+v", w)
	}
	if !veth.Exists("cali4a3f0e6b2c9") || !veth.Exists("temp4a3f0e6b2c9") {
		t.Errorf("the handed-over pair is not in the host's namespace")
	}
	wep, err := etcdv3.GetOf[*store.WorkloadEndpoint](t.Context(), s.Store, "libnetwork", w.Endpoint)
	if err != nil || !slices.Equal(wep.Spec.Profiles, []string{"web"}) || wep.Metadata.Labels[store.OrchestratorLabel] != "libnetwork" || HandleOf(wep) != "" {
		t.Errorf("endpoint %+v, %v", wep, err)
	}
}

// dockerRefusals: bad Docker endpoints are refused, naming the field,
// and leave no interface.
func dockerRefusals(t *testing.T, s *Service, add api.WorkloadAdd) {
	t.Helper()
	for _, bad := range []struct {
		change func(*api.WorkloadAdd)
		field  string
		msg    string
	}{
		{func(r *api.WorkloadAdd) { r.ContainerID = "Not-An-Id" }, "containerID", "is not 12 to 64 hex digits"},
		{func(r *api.WorkloadAdd) { r.Network = "My_Net" }, "network", "names the network's profile"},
		{func(r *api.WorkloadAdd) { r.Allocated = false }, "ips", "Docker's IPAM driver allocated"},
		{func(r *api.WorkloadAdd) { r.IPs = []string{"10.65.3.8"} }, "ips", "is not allocated"},
		{func(r *api.WorkloadAdd) { r.NetNS = "/run/netns/x" }, "", "handed over to Docker"},
	} {
		req := add
		bad.change(&req)
		_, err := s.Add(t.Context(), req)
		if err == nil || api.FieldOf(err) != bad.field || !strings.Contains(err.Error(), bad.msg) {
			t.Errorf("add %+v = %v (field %q); want %q on %q", req, err, api.FieldOf(err), bad.msg, bad.field)
		}
	}
	host, peer := DockerInterfaces(add.ContainerID)
	if veth.Exists(host) || veth.Exists(peer) {
		t.Errorf("a refused add left %s or %s", host, peer)
	}
}

// dockerRemoval: removal, twice, takes the pair and leaves the address
// to the front end.
func dockerRemoval(t *testing.T, s *Service, a netip.Addr) {
	t.Helper()
	ref := api.Attachment{Orchestrator: OrchestratorLibnetwork, ContainerID: dockerEP}
	for range 2 {
		if err := s.RemoveAttachment(t.Context(), ref); err != nil {
			t.Errorf("remove = %v", err)
		}
	}
	host, peer := DockerInterfaces(dockerEP)
	if veth.Exists(host) || veth.Exists(peer) {
		t.Errorf("the removal left %s or %s", host, peer)
	}
	if al, err := s.IPAM.Lookup(t.Context(), a); err != nil || al.Handle != "libnetwork.x" {
		t.Errorf("the removal touched the front end's address: %+v %v", al, err)
	}
}

// dockerCutShort: an add cut short (its intent recorded, no endpoint) is
// undone when the node reconciles, and leaves the address alone.
func dockerCutShort(t *testing.T, s *Service, add api.WorkloadAdd, a netip.Addr) error {
	ctx := t.Context()
	if _, err := s.Add(ctx, add); err != nil {
		return err
	}
	host, _ := DockerInterfaces(dockerEP)
	ep := store.WorkloadEndpointName("n1", OrchestratorLibnetwork, OrchestratorLibnetwork, dockerEP)
	old, err := etcdv3.GetOf[*store.WorkloadEndpoint](ctx, s.Store, "libnetwork", ep)
	if err != nil {
		return err
	}
	if _, err := s.Store.Delete(ctx, store.IDOf(old), ""); err != nil {
		return err
	}
	if err := s.record(&intent{Op: "add", Namespace: "libnetwork", Endpoint: ep, Workload: "libnetwork", HostIface: host}); err != nil {
		return err
	}
	if err := s.Reconcile(ctx); err != nil {
		t.Errorf("reconcile = %v", err)
	}
	if veth.Exists(host) {
		t.Errorf("reconcile left %s", host)
	}
	if _, err := s.IPAM.Lookup(ctx, a); err != nil {
		t.Errorf("reconcile released the front end's address: %v", err)
	}
	return nil
}
