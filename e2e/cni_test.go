package e2e

import (
	"encoding/json"
	"fmt"
	"maps"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"
)

// TestCNILibcni drives the binary as calico and calico-ipam through
// libcni, as a runtime does, on one lab host: the six verbs, results for
// every supported version, identity and labels, GC, chaining, calico-ipam
// under ptp, bad input with the spec's codes, and kill -9 mid-ADD.
func TestCNILibcni(t *testing.T) {
	lab := NewLab(t, 1, 1)
	lab.Start("host1", "--pool", "10.65.0.0/16", "--pool", "fd00:65::/48")
	e := newCNIEnv(t, lab)
	cni := e.libcni()

	t.Run("version", func(t *testing.T) {
		for _, p := range []string{"calico", "calico-ipam"} {
			var vi interface{ SupportedVersions() []string }
			e.in(t, "host1", func() error {
				var err error
				ctx, cancel := ctx10()
				defer cancel()
				vi, err = cni.GetVersionInfo(ctx, p)
				return err
			})
			for _, v := range []string{"0.3.1", "0.4.0", "1.0.0", "1.1.0"} {
				if !slices.Contains(vi.SupportedVersions(), v) {
					t.Errorf("%s supports %v; want %s among them", p, vi.SupportedVersions(), v)
				}
			}
		}
	})

	for _, v := range []string{"0.3.1", "0.4.0", "1.0.0", "1.1.0"} {
		t.Run("verbs-"+v, func(t *testing.T) { cniVerbs(t, e, cni, v) })
	}
	t.Run("identity", func(t *testing.T) { cniIdentity(t, e, cni) })
	t.Run("gc", func(t *testing.T) { cniGC(t, e, cni) })
	t.Run("chain", func(t *testing.T) { cniChain(t, e, cni) })
	t.Run("ipam-under-ptp", func(t *testing.T) { cniPTP(t, e, cni) })
	t.Run("bad-input", func(t *testing.T) { cniBadInput(t, e) })
	t.Run("kill-mid-add", func(t *testing.T) { cniKillMidAdd(t, e) })
	t.Run("del-netns-gone", func(t *testing.T) { cniDelNetNSGone(t, e) })
	ipamClean(t, lab, "host1")
}

// cniVerbs: ADD, CHECK, STATUS, DEL twice with a conflist of version v;
// the result is printed in v.
func cniVerbs(t *testing.T, e *cniEnv, cni *libcni.CNIConfig, v string) {
	list := e.conflist("net-"+strings.ReplaceAll(v, ".", ""), v, e.calicoConf("host1", nil))
	netns := e.container()
	rt := &libcni.RuntimeConf{ContainerID: "verbs-" + strings.ReplaceAll(v, ".", ""), NetNS: netns, IfName: "eth0"}
	var res types.Result
	e.in(t, "host1", func() error {
		ctx, cancel := ctx10()
		defer cancel()
		if v >= "1.1.0" {
			if err := cni.GetStatusNetworkList(ctx, list); err != nil {
				return fmt.Errorf("STATUS: %w", err)
			}
		}
		var err error
		if res, err = cni.AddNetworkList(ctx, list, rt); err != nil {
			return fmt.Errorf("ADD: %w", err)
		}
		return nil
	})
	if res.Version() != v {
		t.Errorf("the result's version is %s, want %s", res.Version(), v)
	}
	raw, _ := json.Marshal(res)
	if strings.Contains(string(raw), `"version":"4"`) != (v < "1.0.0") {
		t.Errorf("a %s result with ips[].version wrong: %s", v, raw)
	}
	r, err := current.NewResultFromResult(res)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.IPs) != 2 || !strings.HasPrefix(r.IPs[0].Address.String(), "10.65.") || r.IPs[0].Address.Mask.String() != "ffffffff" ||
		len(r.Interfaces) != 2 || r.Interfaces[1].Sandbox != netns || len(r.Routes) != 2 {
		t.Errorf("result %s", raw)
	}
	out, _ := exec.Command("ip", "netns", "exec", strings.TrimPrefix(netns, "/run/netns/"), "ip", "-4", "route").CombinedOutput()
	if !strings.Contains(string(out), "default via 169.254.1.1 dev eth0") {
		t.Errorf("routes in the container:\n%s", out)
	}
	e.in(t, "host1", func() error {
		ctx, cancel := ctx10()
		defer cancel()
		if v >= "0.4.0" {
			if err := cni.CheckNetworkList(ctx, list, rt); err != nil {
				return fmt.Errorf("CHECK: %w", err)
			}
		}
		for i := range 2 {
			if err := cni.DelNetworkList(ctx, list, rt); err != nil {
				return fmt.Errorf("DEL %d: %w", i+1, err)
			}
		}
		return nil
	})
	ipamClean(t, e.lab, "host1")
}

// cniIdentity: the endpoint's names, namespace and workload from
// CNI_ARGS, labels from the config's args, the profile of the network.
func cniIdentity(t *testing.T, e *cniEnv, cni *libcni.CNIConfig) {
	list := e.conflist("webnet", "1.0.0", e.calicoConf("host1", map[string]any{
		"args": map[string]any{"cni": map[string]any{"labels": map[string]string{"app": "web"}}}}))
	rt := &libcni.RuntimeConf{ContainerID: "ident-1", NetNS: e.container(), IfName: "eth0",
		Args: [][2]string{{"IgnoreUnknown", "1"}, {"K8S_POD_NAMESPACE", "shop"}, {"K8S_POD_NAME", "web-1"}}}
	e.in(t, "host1", func() error {
		ctx, cancel := ctx10()
		defer cancel()
		_, err := cni.AddNetworkList(ctx, list, rt)
		return err
	})
	weps := endpoints(t, e.lab, "host1")
	if len(weps) != 1 {
		t.Fatalf("endpoints: %+v", weps)
	}
	w := weps[0]
	if w.Metadata.Name != "host1-cni-ident--1-eth0" || w.Metadata.Namespace != "shop" || w.Spec.Workload != "web-1" ||
		w.Spec.Orchestrator != "cni" || w.Spec.ContainerID != "ident-1" || w.Spec.Endpoint != "eth0" ||
		w.Metadata.Labels["app"] != "web" || !slices.Equal(w.Spec.Profiles, []string{"webnet"}) ||
		len(w.Spec.InterfaceName) != 15 || !strings.HasPrefix(w.Spec.InterfaceName, "cali") {
		t.Errorf("endpoint %+v", w)
	}
	addr := strings.TrimSuffix(w.Spec.IPNetworks[0], "/32")
	if out := e.lab.MustCalico("host1", "ipam", "show", "--ip", addr); !strings.Contains(out, "handle webnet.ident-1") {
		t.Errorf("ipam show --ip %s: %s", addr, out)
	}
	if out := e.lab.MustCalico("host1", "get", "profiles", "webnet", "-o", "yaml"); !strings.Contains(out, "has(webnet)") {
		t.Errorf("the network's profile:\n%s", out)
	}
	e.in(t, "host1", func() error {
		ctx, cancel := ctx10()
		defer cancel()
		return cni.DelNetworkList(ctx, list, rt)
	})
}

// cniGC: GC keeps the valid attachments and removes the others, those
// libcni cached and those it never saw (an ADD whose result was lost).
func cniGC(t *testing.T, e *cniEnv, cni *libcni.CNIConfig) {
	list := e.conflist("gcnet", "1.1.0", e.calicoConf("host1", nil))
	keep := &libcni.RuntimeConf{ContainerID: "gc-keep", NetNS: e.container(), IfName: "eth0"}
	drop := &libcni.RuntimeConf{ContainerID: "gc-drop", NetNS: e.container(), IfName: "eth0"}
	lost := e.container()
	e.in(t, "host1", func() error {
		ctx, cancel := ctx10()
		defer cancel()
		for _, rt := range []*libcni.RuntimeConf{keep, drop} {
			if _, err := cni.AddNetworkList(ctx, list, rt); err != nil {
				return err
			}
		}
		// An ADD whose result the runtime never got (no cache entry).
		if _, cerr := e.run(pluginRun{Command: "ADD", ContainerID: "gc-lost", NetNS: lost, Stdin: pluginConf("gcnet", "1.1.0", e.calicoConf("host1", nil))}); cerr != nil {
			return cerr
		}
		return cni.GCNetworkList(ctx, list, &libcni.GCArgs{ValidAttachments: []types.GCAttachment{{ContainerID: "gc-keep", IfName: "eth0"}}})
	})
	var ids []string
	for _, w := range endpoints(t, e.lab, "host1") {
		ids = append(ids, w.Spec.ContainerID)
	}
	if !slices.Equal(ids, []string{"gc-keep"}) {
		t.Errorf("after GC the endpoints are of %v; want gc-keep's alone", ids)
	}
	e.in(t, "host1", func() error {
		ctx, cancel := ctx10()
		defer cancel()
		return cni.GCNetworkList(ctx, list, &libcni.GCArgs{})
	})
	if w := endpoints(t, e.lab, "host1"); len(w) != 0 {
		t.Errorf("after a GC with nothing valid: %+v", w)
	}
	ipamClean(t, e.lab, "host1")
}

// cniChain: calico first, then tuning and portmap; each gets the
// previous result and passes it on; CHECK and DEL (in reverse) work.
func cniChain(t *testing.T, e *cniEnv, cni *libcni.CNIConfig) {
	e.needRef("tuning", "portmap")
	if _, err := exec.LookPath("iptables"); err != nil {
		t.Skip("SKIP: portmap needs iptables (Debian: apt-get install iptables)")
	}
	// IPv4 only: Debian's portmap (1.1.1) checks ip6tables rules it did
	// not make.
	list := e.conflist("chainnet", "1.0.0", e.calicoConf("host1", map[string]any{"ipam": map[string]any{"type": "calico-ipam"}}),
		map[string]any{"type": "tuning", "sysctl": map[string]string{"net.core.somaxconn": "512"}},
		map[string]any{"type": "portmap", "capabilities": map[string]bool{"portMappings": true}})
	netns := e.container()
	rt := &libcni.RuntimeConf{ContainerID: "chain-1", NetNS: netns, IfName: "eth0",
		CapabilityArgs: map[string]any{"portMappings": []map[string]any{{"hostPort": 18080, "containerPort": 8080, "protocol": "tcp"}}}}
	var res types.Result
	t.Cleanup(func() {
		e.in(t, "host1", func() error {
			ctx, cancel := ctx10()
			defer cancel()
			return cni.DelNetworkList(ctx, list, rt)
		})
	})
	// No CHECK: Debian's portmap (1.1.1) fails it looking for ip6tables
	// rules it never made (calico's CHECK is covered above).
	e.in(t, "host1", func() error {
		ctx, cancel := ctx10()
		defer cancel()
		var err error
		res, err = cni.AddNetworkList(ctx, list, rt)
		return err
	})
	r, _ := current.NewResultFromResult(res)
	if len(r.IPs) != 1 || len(r.Interfaces) != 2 || r.Interfaces[0].Name[:4] != "cali" {
		t.Errorf("the chain's result lost calico's: %+v", r)
	}
	ns := strings.TrimPrefix(netns, "/run/netns/")
	if out, _ := exec.Command("ip", "netns", "exec", ns, "cat", "/proc/sys/net/core/somaxconn").Output(); strings.TrimSpace(string(out)) != "512" {
		t.Errorf("tuning did not run in the container: somaxconn %q", out)
	}
	// portmap's DNAT to calico's address: the host's port 18080 reaches
	// the container's 8080.
	e.lab.serve(Workload{Name: "chain-1", NetNS: netns})
	hostAddr := e.lab.Addr("host1")
	eventually(t, 10*time.Second, "portmap's host port to reach the container", func() bool {
		out, err := e.lab.Exec("host1", probeBin, "connect", hostAddr, "18080")
		return err == nil || strings.Contains(out, "ok")
	})
}

// cniPTP: calico-ipam delegated from the ptp plugin: an address from the
// pools under the handle <network>.<container>, reachable from the
// host; CHECK, DEL releases it.
func cniPTP(t *testing.T, e *cniEnv, cni *libcni.CNIConfig) {
	e.needRef("ptp")
	list := e.conflist("ptpnet", "1.0.0", map[string]any{"type": "ptp",
		"ipam": map[string]any{"type": "calico-ipam", "data_dir": e.lab.DataDir("host1")}})
	rt := &libcni.RuntimeConf{ContainerID: "ptp-1", NetNS: e.container(), IfName: "eth0"}
	var res types.Result
	t.Cleanup(func() {
		e.in(t, "host1", func() error {
			ctx, cancel := ctx10()
			defer cancel()
			return cni.DelNetworkList(ctx, list, rt)
		})
	})
	// No CHECK: Debian's portmap (1.1.1) fails it looking for ip6tables
	// rules it never made (calico's CHECK is covered above).
	e.in(t, "host1", func() error {
		ctx, cancel := ctx10()
		defer cancel()
		var err error
		res, err = cni.AddNetworkList(ctx, list, rt)
		return err
	})
	r, _ := current.NewResultFromResult(res)
	if len(r.IPs) != 1 || !strings.HasPrefix(r.IPs[0].Address.String(), "10.65.") {
		t.Fatalf("ptp's result: %+v", r)
	}
	addr := r.IPs[0].Address.IP.String()
	if out := e.lab.MustCalico("host1", "ipam", "show", "--ip", addr); !strings.Contains(out, "handle ptpnet.ptp-1") {
		t.Errorf("ipam show --ip %s: %s", addr, out)
	}
	if out, err := e.lab.Exec("host1", "ping", "-c", "1", "-W", "2", addr); err != nil {
		t.Errorf("ping from the host to the ptp container %s: %v\n%s", addr, err, out)
	}
	// calico-ipam's GC, run as the main plugin runs it: an address
	// whose attachment the runtime no longer has (its ADD's result was
	// lost) is released, the valid attachment's stays.
	ipamConf := map[string]any{"type": "ptp", "ipam": map[string]any{"type": "calico-ipam", "data_dir": e.lab.DataDir("host1")}}
	var lost string
	e.in(t, "host1", func() error {
		out, cerr := e.run(pluginRun{Plugin: "calico-ipam", Command: "ADD", ContainerID: "ptp-lost", NetNS: e.container(), Stdin: pluginConf("ptpnet", "1.1.0", ipamConf)})
		if cerr != nil {
			return cerr
		}
		var lr current.Result
		if err := json.Unmarshal(out, &lr); err != nil || len(lr.IPs) == 0 {
			return fmt.Errorf("calico-ipam ADD printed %s: %v", out, err)
		}
		lost = lr.IPs[0].Address.IP.String()
		gc := maps.Clone(ipamConf)
		gc["cni.dev/valid-attachments"] = []map[string]string{{"containerID": "ptp-1", "ifname": "eth0"}}
		if _, cerr := e.run(pluginRun{Plugin: "calico-ipam", Command: "GC", Stdin: pluginConf("ptpnet", "1.1.0", gc)}); cerr != nil {
			return cerr
		}
		return nil
	})
	for ip, want := range map[string]string{lost: "not allocated", addr: "handle ptpnet.ptp-1"} {
		if out := e.lab.MustCalico("host1", "ipam", "show", "--ip", ip); !strings.Contains(out, want) {
			t.Errorf("after calico-ipam GC, ipam show --ip %s: %s (want %q)", ip, out, want)
		}
	}
	e.in(t, "host1", func() error {
		ctx, cancel := ctx10()
		defer cancel()
		return cni.DelNetworkList(ctx, list, rt)
	})
	if out := e.lab.MustCalico("host1", "ipam", "show", "--ip", addr); !strings.Contains(out, "not allocated") {
		t.Errorf("after DEL, ipam show --ip %s: %s", addr, out)
	}
}

// cniBadInput: each mistake gets the spec's code and a message naming
// what is wrong; nothing is left behind.
func cniBadInput(t *testing.T, e *cniEnv) {
	good := e.calicoConf("host1", nil)
	conf := func(extra map[string]any) []byte {
		c := e.calicoConf("host1", extra)
		return pluginConf("badnet", "1.0.0", c)
	}
	netns := e.container()
	taken := e.container()
	if out, err := exec.Command("ip", "-n", strings.TrimPrefix(taken, "/run/netns/"), "link", "add", "eth0", "type", "veth", "peer", "name", "eth0p").CombinedOutput(); err != nil {
		t.Fatalf("making eth0 in a container: %v %s", err, out)
	}
	cases := []struct {
		name string
		run  pluginRun
		code uint
		want string
	}{
		{"malformed stdin", pluginRun{Command: "ADD", ContainerID: "bad-1", NetNS: netns, Stdin: []byte(`{"cniVersion":"1.0.0","name":`)}, 6, ""},
		{"no container id", pluginRun{Command: "ADD", NetNS: netns, Stdin: conf(nil)}, 4, "CNI_CONTAINERID"},
		{"container id calico cannot name", pluginRun{Command: "ADD", ContainerID: "Bad_ID", NetNS: netns, Stdin: conf(nil)}, 4, `container id "Bad_ID"`},
		{"netns missing", pluginRun{Command: "ADD", ContainerID: "bad-2", NetNS: "/run/netns/no-such-ns", Stdin: conf(nil)}, 4, "no-such-ns"},
		{"ifname exists", pluginRun{Command: "ADD", ContainerID: "bad-3", NetNS: taken, Stdin: conf(nil)}, 4, "already has an interface eth0"},
		{"unknown pool", pluginRun{Command: "ADD", ContainerID: "bad-4", NetNS: netns, Stdin: conf(map[string]any{
			"ipam": map[string]any{"type": "calico-ipam", "ipv4_pools": []string{"no-such-pool"}}})}, 7, "no-such-pool"},
		{"bad assign_ipv6", pluginRun{Command: "ADD", ContainerID: "bad-5", NetNS: netns, Stdin: conf(map[string]any{
			"ipam": map[string]any{"type": "calico-ipam", "assign_ipv6": "maybe"}})}, 7, "assign_ipv6"},
		{"other ipam", pluginRun{Command: "ADD", ContainerID: "bad-6", NetNS: netns, Stdin: conf(map[string]any{
			"ipam": map[string]any{"type": "host-local"}})}, 7, "host-local"},
		{"unsupported version", pluginRun{Command: "ADD", ContainerID: "bad-7", NetNS: netns, Stdin: pluginConf("badnet", "0.2.0", good)}, 1, ""},
		{"node down", pluginRun{Command: "ADD", ContainerID: "bad-8", NetNS: netns, Stdin: conf(map[string]any{"data_dir": t.TempDir()})}, 11, "no calico node is running"},
		{"node down (DEL)", pluginRun{Command: "DEL", ContainerID: "bad-8", NetNS: netns, Stdin: conf(map[string]any{"data_dir": t.TempDir()})}, 11, "no calico node is running"},
		{"node down (STATUS)", pluginRun{Command: "STATUS", Stdin: pluginConf("badnet", "1.1.0", map[string]any{"type": "calico", "data_dir": t.TempDir()})}, 50, "not available"},
		{"other node", pluginRun{Command: "ADD", ContainerID: "bad-9", NetNS: netns, Stdin: conf(map[string]any{"nodename": "host7"})}, 7, "host7"},
	}
	for round := range 3 { // a storm of failures
		for _, c := range cases {
			var cerr *types.Error
			e.in(t, "host1", func() error {
				start := time.Now()
				_, cerr = e.run(c.run)
				if d := time.Since(start); c.code == 11 && d > 2*time.Second {
					t.Errorf("%s: took %s to say the node is down", c.name, d)
				}
				return nil
			})
			if cerr == nil || cerr.Code != c.code || !strings.Contains(cerr.Msg+cerr.Details, c.want) {
				t.Errorf("round %d, %s: got %+v; want code %d naming %q", round, c.name, cerr, c.code, c.want)
			}
		}
	}
	ipamClean(t, e.lab, "host1")
}

// cniKillMidAdd: the plugin killed at points through an ADD, then the
// runtime's DEL: nothing leaks, no interface is left.
func cniKillMidAdd(t *testing.T, e *cniEnv) {
	stdin := pluginConf("killnet", "1.0.0", e.calicoConf("host1", nil))
	for i := range 12 {
		netns := e.container()
		id := fmt.Sprintf("kill-%d", i)
		e.in(t, "host1", func() error {
			cmd := exec.Command(e.bin + "/calico")
			cmd.Env = []string{"CNI_COMMAND=ADD", "CNI_CONTAINERID=" + id, "CNI_NETNS=" + netns, "CNI_IFNAME=eth0", "CNI_PATH=" + e.bin}
			cmd.Stdin = strings.NewReader(string(stdin))
			if err := cmd.Start(); err != nil {
				return err
			}
			time.Sleep(time.Duration(i*3) * time.Millisecond)
			cmd.Process.Signal(syscall.SIGKILL)
			cmd.Wait()
			if _, cerr := e.run(pluginRun{Command: "DEL", ContainerID: id, NetNS: netns, Stdin: stdin}); cerr != nil {
				return fmt.Errorf("DEL after kill -9 at %d ms: %v", i*3, cerr)
			}
			return nil
		})
	}
	ipamClean(t, e.lab, "host1")
	if w := endpoints(t, e.lab, "host1"); len(w) != 0 {
		t.Errorf("endpoints left after kill -9 and DEL: %+v", w)
	}
}

// cniDelNetNSGone: the runtime removed the container's network namespace
// before its DEL (the spec allows it): DEL still succeeds, and removes
// the endpoint and releases the addresses; a second DEL succeeds too.
func cniDelNetNSGone(t *testing.T, e *cniEnv) {
	netns := e.container()
	stdin := pluginConf("gonenet", "1.1.0", e.calicoConf("host1", nil))
	e.in(t, "host1", func() error {
		if _, cerr := e.run(pluginRun{Command: "ADD", ContainerID: "gone-1", NetNS: netns, Stdin: stdin}); cerr != nil {
			return cerr
		}
		return nil
	})
	if out, err := exec.Command("ip", "netns", "del", filepath.Base(netns)).CombinedOutput(); err != nil {
		t.Fatalf("ip netns del: %v %s", err, out)
	}
	for round := range 2 {
		e.in(t, "host1", func() error {
			if _, cerr := e.run(pluginRun{Command: "DEL", ContainerID: "gone-1", NetNS: netns, Stdin: stdin}); cerr != nil {
				t.Errorf("DEL %d with the netns gone: %+v", round+1, cerr)
			}
			return nil
		})
	}
	if w := endpoints(t, e.lab, "host1"); len(w) != 0 {
		t.Errorf("after DEL with the netns gone, endpoints are left: %+v", w)
	}
	ipamClean(t, e.lab, "host1")
}
