//go:build linux

package workload

import (
	"context"
	"errors"
	"log/slog"
	"net/netip"
	"os"
	"slices"
	"testing"
	"time"

	"calico/internal/testutil"
	"calico/node/api"
	"calico/node/veth"
	"calico/store"
	"calico/store/etcdv3"
	"calico/store/ipam"
)

// nowDataplane is a dataplane that is always programmed.
type nowDataplane struct{}

func (nowDataplane) WaitApplied(context.Context, int64) error { return nil }
func (nowDataplane) Applied() int64                           { return 1 << 62 }

// newService is a workload service of node n1 over a test etcd with one
// pool, to be used inside host.
func newService(t *testing.T) *Service {
	cli := testutil.StartEtcd(t)
	s := &Service{Node: "n1", DataDir: t.TempDir(), Store: etcdv3.New(cli), IPAM: ipam.New(cli), Dataplane: nowDataplane{},
		Log: slog.New(slog.NewTextHandler(t.Output(), nil))}
	if err := s.Store.Create(t.Context(), store.NewPool("p", netip.MustParsePrefix("10.65.0.0/16"))); err != nil {
		t.Fatal(err)
	}
	return s
}

// remains says what of workload name exists: its interface, its
// namespace, its addresses.
func remains(t *testing.T, s *Service, name string) (iface, netns bool, handles []string) {
	t.Helper()
	_, err := os.Stat(veth.NetNSPath(name))
	hs, herr := s.IPAM.HandlesOf(t.Context(), map[string]string{"node": "n1", "namespace": "default", "workload": name})
	if herr != nil {
		t.Fatal(herr)
	}
	return veth.Exists(hostIface("default", name)), err == nil, hs
}

// TestPrivilegedAddCutShort: a node killed in the middle of an add (its
// intent recorded, the endpoint never written) leaves nothing once it
// reconciles; an add or a retry of the same name then works.
func TestPrivilegedAddCutShort(t *testing.T) {
	testutil.Privileged(t)
	host := testutil.NewNetNS(t)
	s := newService(t)
	ctx := t.Context()
	name := "cutshort-" + host.Name[len("calico-test-"):]
	t.Cleanup(func() { veth.DeleteNetNS(name) })
	err := host.Do(func() error {
		if err := veth.EnableForwarding(); err != nil {
			return err
		}
		if _, err := s.Add(ctx, api.WorkloadAdd{Name: name, Profiles: []string{"cut"}}); err != nil {
			return err
		}
		// As if killed before the endpoint was written: no endpoint, and
		// the add's intent on disk.
		ep := store.WorkloadEndpointName("n1", Orchestrator, name, "eth0")
		old, err := etcdv3.GetOf[*store.WorkloadEndpoint](ctx, s.Store, "default", ep)
		if err != nil {
			return err
		}
		if _, err := s.Store.Delete(ctx, store.IDOf(old), ""); err != nil {
			return err
		}
		if err := s.record(&intent{Op: "add", Namespace: "default", Endpoint: ep, Workload: name, HostIface: old.Spec.InterfaceName,
			Handle: HandleOf(old), NetNS: name, Profiles: []string{"cut"}, Started: time.Now()}); err != nil {
			return err
		}
		if iface, netns, hs := remains(t, s, name); !iface || !netns || len(hs) != 1 {
			t.Fatalf("the half-made workload is not there to clean: interface %v, namespace %v, handles %v", iface, netns, hs)
		}
		if err := s.Reconcile(ctx); err != nil {
			return err
		}
		if iface, netns, hs := remains(t, s, name); iface || netns || len(hs) > 0 {
			t.Errorf("after reconciling an add cut short: interface %v, namespace %v, handles %v; want nothing left", iface, netns, hs)
		}
		if _, err := etcdv3.GetOf[*store.Profile](ctx, s.Store, "", "cut"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("the profile the cut-short add made is still there: %v", err)
		}
		if ins, _ := s.intents(); len(ins) > 0 {
			t.Errorf("intents left after reconciling: %+v", ins)
		}

		// The same add again, then its retry (a client whose connection
		// broke): one workload, the same addresses.
		again, err := s.Add(ctx, api.WorkloadAdd{Name: name})
		if err != nil {
			return err
		}
		retry, err := s.Add(ctx, api.WorkloadAdd{Name: name})
		if err != nil {
			return err
		}
		if !slices.Equal(again.Addresses, retry.Addresses) {
			t.Errorf("a retried add got %v; the add before it %v", retry.Addresses, again.Addresses)
		}
		if _, err := s.Add(ctx, api.WorkloadAdd{Name: name, Profiles: []string{"other"}}); err == nil {
			t.Error("an add of an existing workload with other profiles succeeded")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestPrivilegedRemoveWithoutEndpoint: a workload whose endpoint another
// tool deleted is still removed: interface, namespace and addresses.
func TestPrivilegedRemoveWithoutEndpoint(t *testing.T) {
	testutil.Privileged(t)
	host := testutil.NewNetNS(t)
	s := newService(t)
	ctx := t.Context()
	name := "orphan-" + host.Name[len("calico-test-"):]
	t.Cleanup(func() { veth.DeleteNetNS(name) })
	err := host.Do(func() error {
		if _, err := s.Add(ctx, api.WorkloadAdd{Name: name}); err != nil {
			return err
		}
		ep := store.WorkloadEndpointName("n1", Orchestrator, name, "eth0")
		if _, err := s.Store.Delete(ctx, store.ID{Kind: store.KindWorkloadEndpoint, Namespace: "default", Name: ep}, ""); err != nil {
			return err
		}
		if err := s.Remove(ctx, "default", name); err != nil {
			return err
		}
		if iface, netns, hs := remains(t, s, name); iface || netns || len(hs) > 0 {
			t.Errorf("after removing a workload without endpoint: interface %v, namespace %v, handles %v; want nothing left", iface, netns, hs)
		}
		if err := s.Remove(ctx, "default", name); err == nil {
			t.Error("removing a workload of which nothing is left succeeded; want it not found")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
