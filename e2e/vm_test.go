package e2e

import (
	"encoding/json"
	"os/exec"
	"strings"
	"testing"
	"time"

	"calico/node/api"
)

const guestMAC = "52:54:00:12:34:56"

// vmFlags are the nodes' settings in the VM tests.
var vmFlags = []string{"--pool", "10.65.0.0/16", "--pool", "fd00:65::/48", "--mtu", "1400",
	"--dns-server", "10.0.0.53", "--dns-server", "fd00::53", "--dns-domain", "lab.example"}

// makeTap makes a persistent tap on host, up, as libvirt makes a VM's
// <interface type='ethernet'> (or an admin with ip tuntap, for
// managed='no').
func makeTap(t *testing.T, lab *Lab, host, name string) {
	t.Helper()
	cmd := "ip tuntap add dev " + name + " mode tap && ip link set " + name + " up"
	if out, err := exec.Command("ip", "netns", "exec", hostNS(host), "sh", "-c", cmd).CombinedOutput(); err != nil {
		t.Fatalf("%s on %s: %v\n%s", cmd, host, err, out)
	}
}

func deleteTap(t *testing.T, lab *Lab, host, name string) {
	t.Helper()
	if out, err := lab.Exec(host, "ip", "link", "del", name); err != nil {
		t.Fatalf("deleting %s on %s: %v\n%s", name, host, err, out)
	}
}

// addVM is `calico workload add NAME --iface TAP --mac MAC` on host.
func addVM(t *testing.T, lab *Lab, host, name, tap, mac string, args ...string) api.Workload {
	t.Helper()
	out := lab.MustCalico(host, append([]string{"workload", "add", name, "--iface", tap, "--mac", mac, "-o", "json"}, args...)...)
	var w api.Workload
	if err := json.Unmarshal([]byte(out), &w); err != nil {
		t.Fatalf("workload add %s printed %q: %v", name, out, err)
	}
	if w.Interface != tap || w.MAC != mac || w.Attached != "tuntap" || len(w.Addresses) != 2 {
		t.Fatalf("workload add %s --iface %s: %+v", name, tap, w)
	}
	return w
}

// leaseOf reads a lease the guest's DHCP client script wrote: its
// variables.
func leaseOf(t *testing.T, g guest, family string) map[string]string {
	t.Helper()
	out, err := g.Run("cat "+g.Path("leases")+"/"+family, 10*time.Second)
	if err != nil {
		t.Fatalf("the guest's %s lease: %v\n%s", family, err, out)
	}
	vars := map[string]string{}
	for _, l := range strings.Split(out, "\n") {
		if k, v, ok := strings.Cut(l, "="); ok {
			vars[k] = v
		}
	}
	return vars
}

// dhcp4 runs busybox udhcpc in the guest until it has a lease.
func dhcp4(t *testing.T, g guest) map[string]string {
	t.Helper()
	if out, err := g.Run("busybox udhcpc -i eth0 -n -q -f -t 20 -T 1 -s "+g.Path("lease.sh"), 60*time.Second); err != nil {
		t.Fatalf("udhcpc in the guest: %v\n%s", err, out)
	}
	return leaseOf(t, g, "v4")
}

// dhcp6 runs ISC dhclient -6 in the guest (once its link-local address
// is usable) until it has a lease; false when the guest has no dhclient.
func dhcp6(t *testing.T, g guest) (map[string]string, bool) {
	t.Helper()
	if _, err := g.Run("command -v dhclient", 10*time.Second); err != nil {
		t.Log("SKIP DHCPv6: the guest has no dhclient (apt-get install isc-dhcp-client on the test machine)")
		return nil, false
	}
	// /proc/net/if_inet6: a link-local (scope 20) address of eth0 whose
	// flags are just "permanent" (80), no longer "tentative" (40).
	wait := `for i in $(seq 300); do awk '$6=="eth0" && $4=="20" {print $5}' /proc/net/if_inet6 | grep -qx 80 && break; sleep 0.1; done`
	cmd := wait + "; dhclient -6 -1 -sf " + g.Path("lease.sh") + " -lf " + g.Path("leases") + "/dhclient6.leases -pf " + g.Path("leases") + "/dhclient6.pid eth0"
	if out, err := g.Run(cmd, 90*time.Second); err != nil {
		t.Fatalf("dhclient -6 in the guest: %v\n%s", err, out)
	}
	return leaseOf(t, g, "v6"), true
}

// guestConnects reports whether the guest connects to addr:8080.
func guestConnects(g guest, addr string) bool {
	_, err := g.Run(g.Path("probe")+" connect "+addr+" 8080", 10*time.Second)
	return err == nil
}

// TestVM is issue 16 as a user sees it: a VM's tap on host1 attached
// with `workload add --iface --mac` gets its addresses by DHCP (and
// DHCPv6 with a router advertisement), the MTU and DNS from the node's
// config, reaches a container on host2 of its profile and not one of
// another, is reached likewise, and may send only from its MAC.
func TestVM(t *testing.T) {
	lab := NewLab(t, 2, 1)
	lab.Start("host1", vmFlags...)
	lab.Start("host2", append(vmFlags, "--join", lab.Addr("host1"), "--token", lab.Token("host1"))...)
	web := lab.AddWorkload("host2", "vmt-web", "--profile", "web")
	db := lab.AddWorkload("host2", "vmt-db", "--profile", "db")
	makeTap(t, lab, "host1", "vnet3")
	vm := addVM(t, lab, "host1", "vm1", "vnet3", guestMAC, "--profile", "web", "--label", "role=web")
	g := startGuest(t, lab, "host1", "vnet3", guestMAC)

	lease := dhcp4(t, g)
	want := map[string]string{"ip": vm.Addresses[0].String(), "mask": "32", "router": "169.254.1.1", "serverid": "169.254.1.1",
		"staticroutes": "169.254.1.1/32 0.0.0.0 0.0.0.0/0 169.254.1.1", "mtu": "1400", "dns": "10.0.0.53", "domain": "lab.example"}
	for k, v := range want {
		if lease[k] != v {
			t.Errorf("the guest's DHCPv4 lease has %s=%q, want %q (all: %v)", k, lease[k], v, lease)
		}
	}
	vmAddrs := []string{vm.Addresses[0].String()}
	if l6, ok := dhcp6(t, g); ok {
		if l6["new_ip6_address"] != vm.Addresses[1].String() || l6["new_dhcp6_name_servers"] != "fd00::53" {
			t.Errorf("the guest's DHCPv6 lease: %v; want address %s, DNS fd00::53", l6, vm.Addresses[1])
		}
		vmAddrs = append(vmAddrs, vm.Addresses[1].String())
		eventually(t, 20*time.Second, "an IPv6 default route from the node's router advertisement", func() bool {
			out, _ := g.Run("ip -6 route show default", 10*time.Second)
			return strings.Contains(out, "via fe80::")
		})
	}
	if out, err := g.Run(g.Path("probe")+" serve 8080 >/dev/null 2>&1 &", 10*time.Second); err != nil {
		t.Fatalf("starting the guest's server: %v\n%s", err, out)
	}
	checkVMPolicy(t, g, vmAddrs, web, db)
	checkMACSpoofing(t, g, web)
	checkRenewal(t, lab, g, vm)

	out := lab.MustCalico("host1", "workload", "list")
	if !strings.Contains(out, "vnet3") || !strings.Contains(out, " up ") {
		t.Errorf("workload list does not show vm1 up on vnet3:\n%s", out)
	}
}

// checkVMPolicy: the VM (profile web) and the container web reach each
// other, over every family the VM has; db (profile db) and the VM do not.
func checkVMPolicy(t *testing.T, g guest, vmAddrs []string, web, db Workload) {
	t.Helper()
	webAddrs := []string{web.v4(), web.v6()}
	for i, addr := range vmAddrs {
		eventually(t, 20*time.Second, "the VM to reach the container web at "+webAddrs[i], func() bool { return guestConnects(g, webAddrs[i]) })
		CheckMatrix(t, []Expect{{web, addr, true}, {db, addr, false}}, 20*time.Second)
		dbAddr := []string{db.v4(), db.v6()}[i]
		if guestConnects(g, dbAddr) {
			t.Errorf("the VM reached the container db at %s (another profile)", dbAddr)
		}
	}
}

// checkMACSpoofing: frames from another MAC are dropped and its DHCP
// requests ignored; the guest's own MAC works again.
func checkMACSpoofing(t *testing.T, g guest, web Workload) {
	t.Helper()
	if out, err := g.Run("ip link set eth0 address 52:54:00:de:ad:01", 10*time.Second); err != nil {
		t.Fatalf("changing the guest's MAC: %v\n%s", err, out)
	}
	if guestConnects(g, web.v4()) {
		t.Errorf("the VM reached web from another MAC")
	}
	if out, err := g.Run("busybox udhcpc -i eth0 -n -q -f -t 2 -T 1 -s /bin/true", 30*time.Second); err == nil {
		t.Errorf("DHCP answered a client with another MAC:\n%s", out)
	}
	if out, err := g.Run("ip link set eth0 address "+guestMAC, 10*time.Second); err != nil {
		t.Fatalf("restoring the guest's MAC: %v\n%s", err, out)
	}
	eventually(t, 20*time.Second, "the VM to reach web again from its own MAC", func() bool { return guestConnects(g, web.v4()) })
}

// checkRenewal: the guest's DHCP client renews its lease (unicast to
// 169.254.1.1) from a node that restarted meanwhile: the lease is the
// workload's endpoint, not the node's memory.
func checkRenewal(t *testing.T, lab *Lab, g guest, vm api.Workload) {
	t.Helper()
	pid := g.Path("leases") + "/udhcpc.pid"
	g.Run("rm -f "+g.Path("leases")+"/v4", 10*time.Second)
	// As a service manager runs it: in the foreground of its own.
	if out, err := g.Run("busybox udhcpc -i eth0 -f -t 20 -T 1 -p "+pid+" -s "+g.Path("lease.sh")+" >/dev/null 2>&1 &", 10*time.Second); err != nil {
		t.Fatalf("starting udhcpc: %v\n%s", err, out)
	}
	eventually(t, 60*time.Second, "udhcpc's lease", func() bool {
		out, err := g.Run("grep -x event=bound "+g.Path("leases")+"/v4", 10*time.Second)
		return err == nil && out != ""
	})
	lab.Stop("host1")
	lab.Start("host1", vmFlags...)
	if out, err := g.Run("kill -USR1 $(cat "+pid+")", 10*time.Second); err != nil {
		t.Fatalf("asking udhcpc to renew: %v\n%s", err, out)
	}
	eventually(t, 30*time.Second, "the lease renewed from the restarted node", func() bool {
		l := leaseOf(t, g, "v4")
		return l["event"] == "renew" && l["ip"] == vm.Addresses[0].String()
	})
	g.Run("kill $(cat "+pid+")", 10*time.Second)
}

// TestVMTapRecreated: the VM stops (its tap goes): workload list and
// calico status say vm1 is down, and nothing is reported as an error;
// the VM starts again (the tap is made again with the same name): it
// works again as soon as the node has seen the tap; workload rm leaves
// the tap.
func TestVMTapRecreated(t *testing.T) {
	lab := NewLab(t, 1, 1)
	lab.Start("host1", vmFlags...)
	web := lab.AddWorkload("host1", "vmt-web", "--profile", "web")
	makeTap(t, lab, "host1", "vnet3")
	vm := addVM(t, lab, "host1", "vm1", "vnet3", guestMAC, "--profile", "web")
	g := startGuest(t, lab, "host1", "vnet3", guestMAC)
	dhcp4(t, g)
	eventually(t, 20*time.Second, "the VM to reach web", func() bool { return guestConnects(g, web.v4()) })

	g.Stop()
	deleteTap(t, lab, "host1", "vnet3")
	eventually(t, 10*time.Second, "workload list to say vm1 is down", func() bool {
		out, _, _ := lab.Calico("host1", "workload", "list")
		return strings.Contains(out, "down (interface vnet3 is absent (is the VM running?))")
	})
	st := nodeStatus(t, lab, "host1")
	if len(st.WorkloadsDown) != 1 || !strings.Contains(st.WorkloadsDown[0], "default/vm1: interface vnet3 is absent") || len(st.Problems) > 0 || st.Dataplane.Error != "" {
		t.Errorf("status while the tap is absent: down %q, problems %q, dataplane error %q", st.WorkloadsDown, st.Problems, st.Dataplane.Error)
	}
	if out, _ := lab.Exec("host1", "ip", "route", "show", vm.Addresses[0].String()); strings.Contains(out, "vnet3") {
		t.Errorf("a route to the absent tap: %s", out)
	}

	// The VM starts again: a new tap of the same name.
	start := time.Now()
	makeTap(t, lab, "host1", "vnet3")
	eventually(t, 10*time.Second, "the route to vm1 through the new tap", func() bool {
		out, _ := lab.Exec("host1", "ip", "route", "show", vm.Addresses[0].String())
		return strings.Contains(out, "vnet3")
	})
	t.Logf("the route through the new tap was there %s after the tap was made (timed by polling ip route every 100 ms)", time.Since(start).Round(time.Millisecond))
	g = startGuest(t, lab, "host1", "vnet3", guestMAC)
	dhcp4(t, g)
	eventually(t, 20*time.Second, "the VM to reach web after its restart", func() bool { return guestConnects(g, web.v4()) })
	if log := lab.Log("host1"); strings.Contains(log, "will retry") || strings.Contains(log, "level=ERROR") {
		t.Errorf("the node logged errors while the tap came and went:\n%s", grepLines(log, "will retry")+grepLines(log, "level=ERROR"))
	}

	lab.MustCalico("host1", "workload", "rm", "vm1")
	if out, err := lab.Exec("host1", "ip", "link", "show", "vnet3"); err != nil {
		t.Errorf("workload rm deleted the tap: %v\n%s", err, out)
	}
	eventually(t, 10*time.Second, "the route to vm1 to go", func() bool {
		out, _ := lab.Exec("host1", "ip", "route", "show", vm.Addresses[0].String())
		return !strings.Contains(out, "vnet3")
	})
}

// TestVMBadInput: --iface naming a missing interface, the host's uplink,
// the loopback, or a tap another workload has is refused with a sentence
// naming what is wrong, and changes nothing.
func TestVMBadInput(t *testing.T) {
	lab := NewLab(t, 1, 1)
	lab.Start("host1", vmFlags...)
	makeTap(t, lab, "host1", "vnet3")
	addVM(t, lab, "host1", "vm1", "vnet3", guestMAC)
	before := lab.MustCalico("host1", "workload", "list") + lab.MustCalico("host1", "ipam", "show")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--iface", "vnet9"}, "interface vnet9 does not exist on this host"},
		{[]string{"--iface", "eth0"}, "interface eth0 has the host's address 172.31.1.11/24: it is one of the host's own interfaces, not a VM's"},
		{[]string{"--iface", "lo"}, "interface lo is the host's loopback"},
		{[]string{"--iface", "vnet3"}, "interface vnet3 is already the interface of workload default/vm1"},
		{[]string{"--iface", "vnet3", "--mac", "ff:ff:ff:ff:ff:ff"}, `--mac "ff:ff:ff:ff:ff:ff" is not a unicast Ethernet address`},
		{[]string{"--mac", guestMAC}, "--mac is the MAC of a VM's interface: it goes with --iface"},
	} {
		out, errs, err := lab.Calico("host1", append([]string{"workload", "add", "vm2"}, tc.args...)...)
		if err == nil || !strings.Contains(errs, tc.want) {
			t.Errorf("workload add vm2 %s: %v\n%s%s\nwant an error saying %q", strings.Join(tc.args, " "), err, out, errs, tc.want)
		}
	}
	if after := lab.MustCalico("host1", "workload", "list") + lab.MustCalico("host1", "ipam", "show"); after != before {
		t.Errorf("refused adds changed something:\nbefore:\n%s\nafter:\n%s", before, after)
	}
	if out, _ := lab.Exec("host1", "sysctl", "-n", "net.ipv4.conf.eth0.proxy_arp"); strings.TrimSpace(out) != "0" {
		t.Errorf("a refused add turned proxy ARP on for eth0: %s", out)
	}
}
