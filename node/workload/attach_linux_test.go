//go:build linux

package workload

import (
	"errors"
	"os/exec"
	"strings"
	"testing"

	"calico/internal/testutil"
	"calico/node/api"
	"calico/node/veth"
	"calico/store"
	"calico/store/etcdv3"
	"calico/store/ipam"
)

// TestPrivilegedCNIAttachment: a CNI attachment through the service: its
// names (endpoint, host interface, handle, profile), CHECK of what ADD
// made, the refusals of the spec, an idempotent DEL and GC.
func TestPrivilegedCNIAttachment(t *testing.T) {
	testutil.Privileged(t)
	host := testutil.NewNetNS(t)
	ctr := testutil.NewNetNS(t)
	ctr2 := testutil.NewNetNS(t)
	s := newService(t)
	ctx := t.Context()
	add := api.WorkloadAdd{Orchestrator: OrchestratorCNI, ContainerID: "ctr-1", Interface: "eth0", Network: "net1",
		NetNS: ctr.Path(), Families: []int{4}, Labels: map[string]string{"app": "web"}}
	err := host.Do(func() error {
		if err := veth.EnableForwarding(); err != nil {
			return err
		}
		w, err := s.Add(ctx, add)
		if err != nil {
			return err
		}
		if w.Endpoint != "n1-cni-ctr--1-eth0" || w.Interface != cniHostIface("ctr-1", "eth0") || len(w.Addresses) != 1 || w.Name != "ctr-1" {
			t.Errorf("added %+v", w)
		}
		if al, err := s.IPAM.Lookup(ctx, w.Addresses[0]); err != nil || al.Handle != "net1.ctr-1" || al.Attrs["network"] != "net1" {
			t.Errorf("IPAM holds %s as %+v, %v", w.Addresses[0], al, err)
		}
		if _, err := etcdv3.GetOf[*store.Profile](ctx, s.Store, "", "net1"); err != nil {
			t.Errorf("the network's profile: %v", err)
		}
		ref := api.Attachment{ContainerID: "ctr-1", Interface: "eth0", Network: "net1", NetNS: ctr.Path(), Addresses: w.Addresses}
		if err := s.Check(ctx, ref); err == nil || !strings.Contains(err.Error(), "no route to") {
			t.Errorf("check before the route driver's route = %v", err)
		}
		// What the route driver does on a node.
		if out, err := exec.Command("ip", "route", "add", w.Addresses[0].String(), "dev", w.Interface).CombinedOutput(); err != nil {
			t.Fatalf("ip route add: %v %s", err, out)
		}
		if err := s.Check(ctx, ref); err != nil {
			t.Errorf("check = %v", err)
		}
		// The same ADD again (a retry) gets the same; another netns for
		// the attachment, or another container's eth0 in this netns, is
		// refused as the interface's fault.
		if again, err := s.Add(ctx, add); err != nil || again.Addresses[0] != w.Addresses[0] {
			t.Errorf("a repeated add = %+v, %v", again, err)
		}
		other := add
		other.NetNS = ctr2.Path()
		if _, err := s.Add(ctx, other); api.FieldOf(err) != "interface" {
			t.Errorf("an add of the attachment into another netns = %v (field %q)", err, api.FieldOf(err))
		}
		other = add
		other.ContainerID = "ctr-x"
		if _, err := s.Add(ctx, other); api.FieldOf(err) != "interface" || !strings.Contains(err.Error(), "already has an interface eth0") {
			t.Errorf("an add into a netns whose eth0 exists = %v (field %q)", err, api.FieldOf(err))
		}
		if hs, _ := s.IPAM.HandlesOf(ctx, map[string]string{"containerID": "ctr-x"}); len(hs) > 0 {
			t.Errorf("the refused add kept addresses of %v", hs)
		}
		// Someone removes the address: CHECK says so.
		exec.Command("ip", "netns", "exec", ctr.Name, "ip", "addr", "flush", "dev", "eth0").Run()
		if err := s.Check(ctx, ref); err == nil || !strings.Contains(err.Error(), "lacks address") {
			t.Errorf("check after the address went = %v", err)
		}

		// DEL, twice, and of something never seen.
		for range 2 {
			if err := s.RemoveAttachment(ctx, ref); err != nil {
				t.Errorf("remove = %v", err)
			}
		}
		if err := s.RemoveAttachment(ctx, api.Attachment{ContainerID: "never", Interface: "eth0", Network: "net1"}); err != nil {
			t.Errorf("remove of an attachment never seen = %v", err)
		}
		if veth.Exists(w.Interface) {
			t.Errorf("%s is left after DEL", w.Interface)
		}
		if _, err := s.IPAM.Lookup(ctx, w.Addresses[0]); !errors.Is(err, ipam.ErrNotAllocated) {
			t.Errorf("%s after DEL: %v", w.Addresses[0], err)
		}
		if err := s.Check(ctx, ref); err == nil {
			t.Error("check after DEL succeeded")
		}
		// ADD, DEL and at once ADD again: the interface the DEL left to
		// remove after it returned goes before the second ADD makes it
		// anew (the attachment stays locked until then).
		for i := range 3 {
			w, err := s.Add(ctx, add)
			if err != nil || !veth.Exists(w.Interface) {
				t.Fatalf("add %d after a DEL = %+v, %v", i, w, err)
			}
			if err := s.RemoveAttachment(ctx, ref); err != nil {
				t.Fatalf("remove %d = %v", i, err)
			}
		}
		s.Wait()
		if veth.Exists(w.Interface) {
			t.Errorf("%s is left after the last DEL", w.Interface)
		}
		if hs, _ := s.IPAM.HandlesOf(ctx, map[string]string{"containerID": "ctr-1"}); len(hs) > 0 {
			t.Errorf("the last DEL left addresses of %v", hs)
		}

		// GC: a kept attachment stays; a leaked handle (an ADD of
		// calico-ipam whose DEL never came) and an attachment not in
		// the list go.
		kept := add
		kept.ContainerID, kept.NetNS = "ctr-2", ctr2.Path()
		k, err := s.Add(ctx, kept)
		if err != nil {
			return err
		}
		if _, err := s.Allocate(ctx, api.IPAMAllocate{Network: "net1", ContainerID: "ctr-9", Families: []int{4}}); err != nil {
			return err
		}
		res, err := s.GC(ctx, api.GC{Network: "net1", Valid: []api.Attachment{{ContainerID: "ctr-2", Interface: "eth0"}}})
		if err != nil || len(res.Endpoints) != 0 || len(res.Handles) != 1 || res.Handles[0] != "net1.ctr-9" {
			t.Errorf("GC = %+v, %v", res, err)
		}
		if al, err := s.IPAM.Lookup(ctx, k.Addresses[0]); err != nil || al.Handle != "net1.ctr-2" {
			t.Errorf("GC took the valid attachment's address: %+v %v", al, err)
		}
		res, err = s.GC(ctx, api.GC{Network: "net1"})
		if err != nil || len(res.Endpoints) != 1 || veth.Exists(k.Interface) {
			t.Errorf("GC of everything = %+v, %v", res, err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
