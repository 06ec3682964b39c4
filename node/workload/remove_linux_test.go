//go:build linux

package workload

import (
	"errors"
	"net/netip"
	"strings"
	"testing"

	"calico/internal/testutil"
	"calico/node/api"
	"calico/node/veth"
	"calico/store"
	"calico/store/etcdv3"
	"calico/store/ipam"
)

// TestPrivilegedRemoveEndpoint: RemoveEndpoint (what `calico leave
// --force` calls) removes each kind of endpoint the node makes as its
// own front end would, from the endpoint alone: the CLI's workload with
// its namespace, a CNI attachment with its interface and handle, a
// Docker endpoint with its pair (its address stays its IPAM driver's);
// an endpoint the node did not make is refused and left alone.
func TestPrivilegedRemoveEndpoint(t *testing.T) {
	testutil.Privileged(t)
	host := testutil.NewNetNS(t)
	ctr := testutil.NewNetNS(t)
	s := newService(t)
	ctx := t.Context()
	name := "leaving-" + host.Name[len("calico-test-"):]
	t.Cleanup(func() { veth.DeleteNetNS(name) })
	docker := netip.MustParseAddr("10.65.3.7")
	pool := ipam.Pool{CIDR: netip.MustParsePrefix("10.65.0.0/16"), BlockSize: 26}
	if err := s.IPAM.Assign(ctx, docker, "libnetwork.x", "n1", pool, map[string]string{"node": "n1"}); err != nil {
		t.Fatal(err)
	}
	err := host.Do(func() error {
		if err := veth.EnableForwarding(); err != nil {
			return err
		}
		cli, err := s.Add(ctx, api.WorkloadAdd{Name: name})
		if err != nil {
			return err
		}
		cni, err := s.Add(ctx, api.WorkloadAdd{Orchestrator: OrchestratorCNI, ContainerID: "ctr-1", Interface: "eth0", Network: "net1",
			NetNS: ctr.Path(), Families: []int{4}})
		if err != nil {
			return err
		}
		dk, err := s.Add(ctx, api.WorkloadAdd{Orchestrator: OrchestratorLibnetwork, ContainerID: dockerEP, Network: "web",
			IPs: []string{docker.String()}, Allocated: true})
		if err != nil {
			return err
		}
		foreign := store.KindWorkloadEndpoint.New().(*store.WorkloadEndpoint)
		foreign.Metadata.Name, foreign.Metadata.Namespace = "n1-k8s-pod-eth0", "default"
		foreign.Spec = store.WorkloadEndpointSpec{Orchestrator: "k8s", Workload: "pod", Node: "n1", Endpoint: "eth0", InterfaceName: "calipod"}
		if err := s.Store.Create(ctx, foreign); err != nil {
			return err
		}
		if err := s.RemoveEndpoint(ctx, foreign); err == nil || !strings.Contains(err.Error(), "not made by this host's node") {
			t.Errorf("RemoveEndpoint of an applied endpoint = %v; want a refusal", err)
		}
		for _, w := range []*api.Workload{cli, cni, dk} {
			wep, err := etcdv3.GetOf[*store.WorkloadEndpoint](ctx, s.Store, w.Namespace, w.Endpoint)
			if err != nil {
				return err
			}
			if !s.MadeHere(wep) {
				t.Errorf("MadeHere(%s) = false", w.Endpoint)
			}
			if err := s.RemoveEndpoint(ctx, wep); err != nil {
				t.Errorf("RemoveEndpoint(%s) = %v", w.Endpoint, err)
			}
		}
		s.Wait()
		for _, w := range []*api.Workload{cli, cni, dk} {
			if _, err := etcdv3.GetOf[*store.WorkloadEndpoint](ctx, s.Store, w.Namespace, w.Endpoint); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("endpoint %s after its removal: %v", w.Endpoint, err)
			}
			if veth.Exists(w.Interface) {
				t.Errorf("interface %s of %s is still there", w.Interface, w.Endpoint)
			}
		}
		if iface, netns, hs := remains(t, s, name); iface || netns || len(hs) > 0 {
			t.Errorf("the CLI's workload left interface %v, namespace %v, handles %v", iface, netns, hs)
		}
		if hs, _ := s.IPAM.HandlesOf(ctx, map[string]string{"containerID": "ctr-1"}); len(hs) > 0 {
			t.Errorf("the CNI attachment's handles %v are still there", hs)
		}
		if al, err := s.IPAM.Lookup(ctx, docker); err != nil || al.Handle != "libnetwork.x" {
			t.Errorf("the Docker endpoint's address, its IPAM driver's: %+v %v", al, err)
		}
		if _, err := etcdv3.GetOf[*store.WorkloadEndpoint](ctx, s.Store, "default", foreign.Metadata.Name); err != nil {
			t.Errorf("the refused endpoint: %v", err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
