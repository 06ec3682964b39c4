//go:build linux

package workload

import (
	"os"
	"strings"
	"testing"

	"calico/internal/testutil"
	"calico/node/api"
	"calico/node/veth"
	"calico/store"
	"calico/store/etcdv3"

	"github.com/vishvananda/netlink"
)

// TestPrivilegedAttachExisting: a workload attached to a tap gets its
// addresses, an endpoint marked attached with the tap's name and the
// guest's MAC, and the tap's host side treatment; a second workload on
// the tap, and a remove, leave the tap. Bad input changes nothing.
func TestPrivilegedAttachExisting(t *testing.T) {
	testutil.Privileged(t)
	host := testutil.NewNetNS(t)
	s := newService(t)
	s.MTU = 1450
	ctx := t.Context()
	err := host.Do(func() error {
		for _, name := range []string{"vnet3", "tun0"} {
			mode := netlink.TUNTAP_MODE_TAP
			if name == "tun0" {
				mode = netlink.TUNTAP_MODE_TUN
			}
			if err := netlink.LinkAdd(&netlink.Tuntap{LinkAttrs: netlink.LinkAttrs{Name: name}, Mode: mode, Flags: netlink.TUNTAP_DEFAULTS}); err != nil {
				return err
			}
		}
		w, err := s.Add(ctx, api.WorkloadAdd{Name: "vm1", HostInterface: "vnet3", MAC: "52:54:00:12:34:56"})
		if err != nil {
			return err
		}
		if w.Interface != "vnet3" || w.Attached != "tuntap" || w.MAC != "52:54:00:12:34:56" || len(w.Addresses) != 1 || w.NetNS != "" {
			t.Errorf("added %+v", w)
		}
		ep, err := etcdv3.GetOf[*store.WorkloadEndpoint](ctx, s.Store, "default", w.Endpoint)
		if err != nil || ep.Metadata.Annotations[store.AnnotationAttached] != "tuntap" || ep.Spec.InterfaceName != "vnet3" || ep.Spec.MAC != "52:54:00:12:34:56" {
			t.Errorf("endpoint %+v, %v", ep, err)
		}
		if l, _ := veth.Inspect("vnet3"); l == nil || !l.Up || l.MTU != 1450 {
			t.Errorf("the tap after the add: %+v", l)
		}
		// The same request again is the same workload; another one on
		// the tap is refused.
		if again, err := s.Add(ctx, api.WorkloadAdd{Name: "vm1", HostInterface: "vnet3", MAC: "52:54:00:12:34:56"}); err != nil || again.Endpoint != w.Endpoint {
			t.Errorf("the add again: %+v, %v", again, err)
		}
		checkRefusals(t, s)
		if err := s.Remove(ctx, "default", "vm1"); err != nil {
			return err
		}
		if !veth.Exists("vnet3") {
			t.Errorf("workload rm deleted the tap")
		}
		if b, _ := os.ReadFile("/proc/sys/net/ipv4/conf/vnet3/proxy_arp"); strings.TrimSpace(string(b)) != "0" {
			t.Errorf("proxy ARP is still on after the remove: %q", b)
		}
		hs, _ := s.IPAM.HandlesOf(ctx, map[string]string{"node": "n1", "workload": "vm1"})
		if len(hs) != 0 {
			t.Errorf("handles left after the remove: %v", hs)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// checkRefusals: bad input to an attach is refused with the field and a
// sentence naming what is wrong, and nothing is written.
func checkRefusals(t *testing.T, s *Service) {
	t.Helper()
	ctx := t.Context()
	for _, tc := range []struct {
		req   api.WorkloadAdd
		field string
		want  string
	}{
		{api.WorkloadAdd{Name: "vm2", HostInterface: "vnet3"}, "hostInterface", "already the interface of workload default/vm1"},
		{api.WorkloadAdd{Name: "vm2", HostInterface: "vnet9"}, "hostInterface", "interface vnet9 does not exist on this host"},
		{api.WorkloadAdd{Name: "vm2", HostInterface: "lo"}, "hostInterface", "loopback"},
		{api.WorkloadAdd{Name: "vm2", HostInterface: "tun0", MAC: "52:54:00:00:00:01"}, "mac", "carries no Ethernet frames"},
		{api.WorkloadAdd{Name: "vm2", HostInterface: "vnet3", MAC: "01:00:5e:00:00:01"}, "mac", "not a unicast Ethernet address"},
		{api.WorkloadAdd{Name: "vm2", MAC: "52:54:00:00:00:01"}, "mac", "goes with --iface"},
		{api.WorkloadAdd{Name: "vm2", HostInterface: "a/b"}, "hostInterface", "must be 1-15"},
		{api.WorkloadAdd{Name: "vm2", HostInterface: "vnet3", NetNS: "/run/netns/x"}, "hostInterface", "give one of them"},
	} {
		_, err := s.Add(ctx, tc.req)
		if err == nil || api.FieldOf(err) != tc.field || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("add %+v: %v; want a %s error saying %q", tc.req, err, tc.field, tc.want)
		}
	}
	ws, _ := etcdv3.ListOf[*store.WorkloadEndpoint](ctx, s.Store, "")
	hs, _ := s.IPAM.HandlesOf(ctx, map[string]string{"node": "n1", "workload": "vm2"})
	if ins, _ := s.intents(); len(ws) != 1 || len(hs) != 0 || len(ins) != 0 {
		t.Errorf("after the refusals: %d endpoints, handles %v, intents %v; want vm1's endpoint alone", len(ws), hs, ins)
	}
}
