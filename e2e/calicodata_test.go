package e2e

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// Issue 11: what Calico's own client (or anything else) writes straight
// into our etcd, bypassing our API, is enforced as Calico enforces it, or
// fail-closed and reported. Each case writes Calico's values with the
// real etcdctl, with the credentials `calico datastore env --etcdctl`
// gives, and checks real packets between real workloads.

// etcdctl runs etcdctl on host against the cluster's datastore.
func (l *Lab) etcdctl(host string, args ...string) (string, error) {
	l.t.Helper()
	env := l.MustCalico(host, "datastore", "env", "--etcdctl")
	cmd := []string{"env"}
	for _, line := range strings.Split(strings.TrimSpace(env), "\n") {
		cmd = append(cmd, strings.Trim(strings.TrimPrefix(line, "export "), "'"))
	}
	return l.Exec(host, append(append(cmd, "etcdctl", "--dial-timeout=5s"), args...)...)
}

// putCalico writes a resource as Calico's client stores it: compact JSON
// under its key, with a uid and creation time.
// It is deleted again when t ends.
func (l *Lab) putCalico(t *testing.T, host, plural, nsName, value string) {
	t.Helper()
	var v map[string]any
	if err := json.Unmarshal([]byte(value), &v); err != nil {
		t.Fatalf("bad test value %s: %v", value, err)
	}
	m, _ := v["metadata"].(map[string]any)
	m["uid"] = "6f4148be-5fb2-4ad8-b006-" + fmt.Sprintf("%012d", time.Now().UnixNano()%1e12)
	m["creationTimestamp"] = time.Now().UTC().Format(time.RFC3339)
	b, _ := json.Marshal(v)
	key := "/calico/resources/v3/projectcalico.org/" + plural + "/" + nsName
	if out, err := l.etcdctl(host, "put", key, string(b)); err != nil {
		t.Fatalf("etcdctl put %s: %v\n%s", key, err, out)
	}
	t.Cleanup(func() { l.etcdctl(host, "del", key) })
}

func gnpValue(name, spec string) string {
	return `{"kind":"GlobalNetworkPolicy","apiVersion":"projectcalico.org/v3","metadata":{"name":"` + name + `","labels":{"projectcalico.org/tier":"default"}},"spec":` + spec + `}`
}

// TestCalicoWrittenData: one host, three workloads (web and ops in
// profile web, db in profile db); web reaches db only where a case's
// policy says so, as Calico would enforce it.
func TestCalicoWrittenData(t *testing.T) {
	if _, err := exec.LookPath("etcdctl"); err != nil {
		t.Skip("SKIP: etcdctl is not installed (Debian's etcd-client)")
	}
	lab := NewLab(t, 2, 1)
	bgpCluster(t, lab, bgpHosts(2))
	web := lab.AddWorkload("host1", "cd-web", "--profile", "web", "--label", "role=web")
	ops := lab.AddWorkload("host1", "cd-ops", "--profile", "web", "--label", "role=ops")
	db := lab.AddWorkload("host1", "cd-db", "--profile", "dbs", "--label", "role=db")
	// The db profile admits nobody but its members; a GlobalNetworkPolicy
	// for db decides, then the profile.
	reach := func(t *testing.T, from Workload, want bool) {
		t.Helper()
		CheckMatrix(t, []Expect{{From: from, To: db.v4(), OK: want}, {From: from, To: db.v6(), OK: want}}, 15*time.Second)
	}
	problem := func(t *testing.T, want string) {
		t.Helper()
		eventually(t, 15*time.Second, "the problem "+want+" in calico status", func() bool {
			return strings.Contains(lab.MustCalico("host1", "status"), want)
		})
	}
	settle := func() { time.Sleep(2 * time.Second) } // the watch delivers, the agent programs; then deny cells are checked

	t.Run("objects Calico expects", func(t *testing.T) {
		for _, key := range []string{"clusterinformations/default", "tiers/default", "tiers/kube-admin", "tiers/kube-baseline", "kubecontrollersconfigurations/default"} {
			out, err := lab.etcdctl("host1", "get", "--print-value-only", "/calico/resources/v3/projectcalico.org/"+key)
			if err != nil || !strings.Contains(out, `"apiVersion":"projectcalico.org/v3"`) {
				t.Errorf("%s: %v %q", key, err, out)
			}
		}
		out, _ := lab.etcdctl("host1", "get", "--print-value-only", "/calico/ipam/v2/config")
		if !strings.Contains(out, `"auto_allocate_blocks":true`) {
			t.Errorf("IPAM config = %q", out)
		}
	})
	t.Run("serviceAccounts in an Allow matches nothing", func(t *testing.T) {
		lab.putCalico(t, "host1", "globalnetworkpolicies", "sa", gnpValue("sa", `{"tier":"default","selector":"role == 'db'","types":["Ingress"],"ingress":[{"action":"Allow","source":{"serviceAccounts":{"names":["sa1"]}},"destination":{}}]}`))
		problem(t, "serviceAccounts")
		settle()
		reach(t, web, false)
	})
	t.Run("an unparsable notSelector in an Allow matches nothing", func(t *testing.T) {
		lab.putCalico(t, "host1", "globalnetworkpolicies", "notsel", gnpValue("notsel", `{"tier":"default","selector":"role == 'db'","types":["Ingress"],"ingress":[{"action":"Allow","source":{"notSelector":"role == "},"destination":{}}]}`))
		problem(t, "notSelector")
		settle()
		reach(t, web, false)
	})
	t.Run("a Deny with a bad net still denies", func(t *testing.T) {
		lab.putCalico(t, "host1", "globalnetworkpolicies", "badnet", gnpValue("badnet", `{"tier":"default","selector":"role == 'db'","types":["Ingress"],"ingress":[{"action":"Deny","source":{"nets":["10.65.0.0/40"]},"destination":{}},{"action":"Allow","source":{},"destination":{}}]}`))
		problem(t, "nets")
		settle()
		reach(t, web, false)
	})
	t.Run("doNotTrack policies are not workload policy", func(t *testing.T) {
		lab.putCalico(t, "host1", "globalnetworkpolicies", "untracked", gnpValue("untracked", `{"tier":"default","selector":"all()","types":["Ingress"],"doNotTrack":true,"applyOnForward":true,"ingress":[{"action":"Allow","source":{},"destination":{}}]}`))
		settle()
		reach(t, web, false)
	})
	t.Run("global() picks no workload", func(t *testing.T) {
		lab.putCalico(t, "host1", "globalnetworkpolicies", "global", gnpValue("global", `{"tier":"default","selector":"role == 'db'","types":["Ingress"],"ingress":[{"action":"Allow","source":{"namespaceSelector":"global()"},"destination":{}}]}`))
		settle()
		reach(t, web, false)
	})
	t.Run("tiers", func(t *testing.T) {
		lab.putCalico(t, "host1", "tiers", "sec", `{"kind":"Tier","apiVersion":"projectcalico.org/v3","metadata":{"name":"sec"},"spec":{"order":10,"defaultAction":"Deny"},"status":{}}`)
		lab.putCalico(t, "host1", "globalnetworkpolicies", "sec-pass-web", gnpValue("sec-pass-web", `{"tier":"sec","selector":"role == 'db'","types":["Ingress"],"ingress":[{"action":"Pass","source":{"selector":"role == 'web'"},"destination":{}}]}`))
		lab.putCalico(t, "host1", "globalnetworkpolicies", "allow-all-to-db", gnpValue("allow-all-to-db", `{"tier":"default","order":1000,"selector":"role == 'db'","types":["Ingress"],"ingress":[{"action":"Allow","source":{},"destination":{}}]}`))
		// web is passed on to the default tier, which allows it; ops is
		// dropped at the end of tier sec.
		reach(t, web, true)
		reach(t, ops, false)
	})
	t.Run("a GlobalNetworkSet blocklist denies its nets", func(t *testing.T) {
		lab.putCalico(t, "host1", "globalnetworksets", "blocklist", `{"kind":"GlobalNetworkSet","apiVersion":"projectcalico.org/v3","metadata":{"name":"blocklist","labels":{"list":"bad"}},"spec":{"nets":["`+web.v4()+`/32","`+web.v6()+`/128","198.51.100.0/24"]}}`)
		lab.putCalico(t, "host1", "globalnetworkpolicies", "blocklist", gnpValue("blocklist", `{"tier":"default","selector":"role == 'db'","types":["Ingress"],"ingress":[{"action":"Deny","source":{"selector":"list == 'bad'"},"destination":{}},{"action":"Allow","source":{},"destination":{}}]}`))
		reach(t, ops, true)
		reach(t, web, false)
	})
	t.Run("a named port", func(t *testing.T) {
		// db's endpoint, rewritten by another tool with a named port.
		keys, _ := lab.etcdctl("host1", "get", "--prefix", "--keys-only", "/calico/resources/v3/projectcalico.org/workloadendpoints/default/")
		key := grepLines(keys, "cd--db")
		val, err := lab.etcdctl("host1", "get", "--print-value-only", key)
		if err != nil || key == "" {
			t.Fatalf("db's endpoint %q: %v", key, err)
		}
		var wep map[string]any
		json.Unmarshal([]byte(val), &wep)
		wep["spec"].(map[string]any)["ports"] = []map[string]any{{"name": "probe", "protocol": "TCP", "port": 8080}}
		b, _ := json.Marshal(wep)
		if out, err := lab.etcdctl("host1", "put", key, string(b)); err != nil {
			t.Fatalf("put %s: %v %s", key, err, out)
		}
		t.Cleanup(func() { lab.etcdctl("host1", "put", key, val) })
		lab.putCalico(t, "host1", "globalnetworkpolicies", "named", gnpValue("named", `{"tier":"default","selector":"role == 'db'","types":["Ingress"],"ingress":[{"action":"Allow","protocol":"TCP","source":{"selector":"role == 'web'"},"destination":{"ports":["probe"]}}]}`))
		reach(t, web, true)
		reach(t, ops, false)
	})
	t.Run("a host endpoint found by expectedIPs", func(t *testing.T) {
		addr := lab.Addr("host2")
		ping := func() bool {
			_, err := lab.Exec("host1", "ping", "-c1", "-W1", addr)
			return err == nil
		}
		if !ping() {
			t.Fatalf("host1 cannot ping host2 (%s) before the host endpoint", addr)
		}
		lab.putCalico(t, "host1", "hostendpoints", "h2", `{"kind":"HostEndpoint","apiVersion":"projectcalico.org/v3","metadata":{"name":"h2","labels":{"role":"h2"}},"spec":{"node":"host2","expectedIPs":["`+addr+`"]}}`)
		eventually(t, 15*time.Second, "host2 closed to ping by its host endpoint (no policy: default deny, failsafe ports open)", func() bool { return !ping() })
		if out := lab.MustCalico("host2", "status"); strings.Contains(out, "expectedIPs") {
			t.Errorf("host2 reports the host endpoint as matching no interface:\n%s", out)
		}
		// Open to everything, then a pre-DNAT deny of ICMP closes it again;
		// an untracked allow of ICMP (before conntrack) opens it.
		lab.putCalico(t, "host1", "globalnetworkpolicies", "h2-open", gnpValue("h2-open", `{"tier":"default","selector":"role == 'h2'","types":["Ingress","Egress"],"ingress":[{"action":"Allow","source":{},"destination":{}}],"egress":[{"action":"Allow","source":{},"destination":{}}]}`))
		eventually(t, 15*time.Second, "host2 open to ping by policy", ping)
		lab.putCalico(t, "host1", "globalnetworkpolicies", "h2-prednat", gnpValue("h2-prednat", `{"tier":"default","selector":"role == 'h2'","types":["Ingress"],"preDNAT":true,"applyOnForward":true,"ingress":[{"action":"Deny","protocol":"ICMP","source":{},"destination":{}}]}`))
		eventually(t, 15*time.Second, "host2 closed to ping by a pre-DNAT deny", func() bool { return !ping() })
		lab.putCalico(t, "host1", "globalnetworkpolicies", "h2-raw", gnpValue("h2-raw", `{"tier":"default","selector":"role == 'h2'","types":["Ingress","Egress"],"doNotTrack":true,"applyOnForward":true,"ingress":[{"action":"Allow","protocol":"ICMP","source":{},"destination":{}}],"egress":[{"action":"Allow","protocol":"ICMP","source":{},"destination":{}}]}`))
		eventually(t, 15*time.Second, "host2 open to ping by an untracked allow, before pre-DNAT", ping)
	})
	t.Run("an endpoint whose interface is missing waits, reported once", func(t *testing.T) {
		lab.putCalico(t, "host1", "workloadendpoints", "default/host1-calico-ghost-eth0", `{"kind":"WorkloadEndpoint","apiVersion":"projectcalico.org/v3","metadata":{"name":"host1-calico-ghost-eth0","namespace":"default","labels":{"projectcalico.org/namespace":"default","projectcalico.org/orchestrator":"calico"}},"spec":{"orchestrator":"calico","workload":"ghost","node":"host1","endpoint":"eth0","ipNetworks":["10.65.200.1/32"],"profiles":["web"],"interfaceName":"calighost0"}}`)
		problem(t, "waits for interface calighost0")
		time.Sleep(6 * time.Second)
		if n := strings.Count(lab.Log("host1"), "calighost0"); n > 2 {
			t.Errorf("the missing interface is in the log %d times; want it once", n)
		}
		// The rest of the node goes on.
		CheckMatrix(t, []Expect{{From: ops, To: web.v4(), OK: true}}, 15*time.Second)
	})
	t.Run("pools: Manual, for tunnels only, and per rack", func(t *testing.T) {
		pool := func(name, cidr, extra string) {
			lab.putCalico(t, "host1", "ippools", name, `{"kind":"IPPool","apiVersion":"projectcalico.org/v3","metadata":{"name":"`+name+`"},"spec":{"cidr":"`+cidr+`","vxlanMode":"Never","ipipMode":"Never","natOutgoing":false,"blockSize":26,"nodeSelector":"all()"`+extra+`}}`)
		}
		pool("manual", "10.80.0.0/16", `,"allowedUses":["Workload","Tunnel"],"assignmentMode":"Manual"`)
		pool("tunnels", "10.81.0.0/16", `,"allowedUses":["Tunnel"]`)
		lab.putCalico(t, "host1", "ippools", "rack9", `{"kind":"IPPool","apiVersion":"projectcalico.org/v3","metadata":{"name":"rack9"},"spec":{"cidr":"10.82.0.0/16","blockSize":26,"nodeSelector":"rack == 'r9'"}}`)
		for i := range 6 { // automatic assignment never lands in them
			w := lab.AddWorkload("host1", fmt.Sprintf("cd-auto%d", i))
			if a := w.v4(); strings.HasPrefix(a, "10.80.") || strings.HasPrefix(a, "10.81.") || strings.HasPrefix(a, "10.82.") {
				t.Errorf("an automatic address %s came from a pool automatic assignment may not use", a)
			}
			lab.MustCalico("host1", "workload", "rm", w.Name)
		}
		if w := lab.AddWorkload("host1", "cd-manual", "--pool", "manual"); !strings.HasPrefix(w.v4(), "10.80.") {
			t.Errorf("workload add --pool manual got %v", w.Addresses)
		} else {
			lab.MustCalico("host1", "workload", "rm", "cd-manual")
		}
		if _, errs, err := lab.Calico("host1", "workload", "add", "cd-tunnel", "--pool", "tunnels"); err == nil || !strings.Contains(errs, "not for workloads") {
			t.Errorf("workload add --pool tunnels: %v %s; want it refused", err, errs)
		}
	})
	t.Run("a password stored as its value is never shown", func(t *testing.T) {
		lab.putCalico(t, "host1", "bgppeers", "old", `{"kind":"BGPPeer","apiVersion":"projectcalico.org/v3","metadata":{"name":"old"},"spec":{"peerIP":"192.0.2.99","asNumber":65099,"password":{"value":"hunter2-secret"}}}`)
		out := lab.MustCalico("host1", "get", "bgppeers", "-o", "yaml")
		if strings.Contains(out, "hunter2") || !strings.Contains(out, "redacted") {
			t.Errorf("get bgppeers shows:\n%s", out)
		}
		if strings.Contains(lab.Log("host1"), "hunter2") {
			t.Errorf("the password is in the node's log")
		}
	})
	t.Run("workload rm after another tool deleted the endpoint", func(t *testing.T) {
		gone := lab.AddWorkload("host1", "cd-gone")
		keys, err := lab.etcdctl("host1", "get", "--prefix", "--keys-only", "/calico/resources/v3/projectcalico.org/workloadendpoints/default/")
		key := grepLines(keys, "gone")
		if err != nil || key == "" || strings.Contains(key, "\n") {
			t.Fatalf("the endpoint of cd-gone among %q: %v", keys, err)
		}
		if out, err := lab.etcdctl("host1", "del", key); err != nil || strings.TrimSpace(out) != "1" {
			t.Fatalf("etcdctl del %s: %v %q", key, err, out)
		}
		lab.MustCalico("host1", "workload", "rm", "cd-gone")
		if _, err := os.Stat(gone.NetNS); err == nil {
			t.Errorf("the workload's netns %s is still there", gone.NetNS)
		}
		eventually(t, 10*time.Second, "the workload's veth "+gone.Interface+" gone", func() bool {
			_, err := lab.Exec("host1", "ip", "link", "show", gone.Interface)
			return err != nil
		})
	})
}

// TestCalicoctl runs Calico's own CLI (calicoctl, etcd mode) against the
// cluster's datastore. calicoctl cannot be installed on CI's machines
// (its module is not served by the module proxy and it has no Debian
// package): give its path in CALICOCTL to run this test.
func TestCalicoctl(t *testing.T) {
	ctl := os.Getenv("CALICOCTL")
	if ctl == "" {
		t.Skip("SKIP: set CALICOCTL to a calicoctl binary (v3.30 or later) to run Calico's own CLI against the cluster")
	}
	lab := NewLab(t, 1, 1)
	lab.Start("host1", "--pool", "10.65.0.0/16")
	web := lab.AddWorkload("host1", "ctl-web", "--profile", "web", "--label", "role=web")
	db := lab.AddWorkload("host1", "ctl-db", "--profile", "dbs", "--label", "role=db")
	env := []string{"env", "DATASTORE_TYPE=etcdv3"}
	for _, line := range strings.Split(strings.TrimSpace(lab.MustCalico("host1", "datastore", "env")), "\n") {
		env = append(env, strings.Trim(strings.TrimPrefix(line, "export "), "'"))
	}
	run := func(stdin string, args ...string) (string, error) {
		cmd := exec.Command("nsenter", append([]string{"--net=" + bgpNS("host1")}, append(append(env, ctl), args...)...)...)
		cmd.Stdin = strings.NewReader(stdin)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	must := func(stdin string, args ...string) string {
		t.Helper()
		out, err := run(stdin, args...)
		if err != nil {
			t.Fatalf("calicoctl %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return out
	}
	if out := must("", "version"); !strings.Contains(out, "Cluster Version") {
		t.Errorf("calicoctl version:\n%s", out)
	}
	apply := func(y string) (string, error) {
		cmd := exec.Command(labScript, "calico", "host1", "apply", "-f", "-")
		cmd.Env = append(os.Environ(), "CALICO="+lab.bin("host1"), "CALICO_LAB_DIR="+lab.dir)
		cmd.Stdin = strings.NewReader(y)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	// Every kind both ways: calicoctl get | calico apply, calico get |
	// calicoctl apply.
	for _, kind := range []string{"nodes", "ippools", "tiers", "profiles", "workloadendpoints", "clusterinformations", "felixconfigurations", "bgpconfigurations", "kubecontrollersconfigurations"} {
		y := must("", "get", kind, "-o", "yaml")
		if out, err := apply(y); err != nil && !strings.Contains(y, "items: []") {
			t.Errorf("calicoctl get %s | calico apply: %v\n%s\n%s", kind, err, out, y)
		}
		ours := lab.MustCalico("host1", "get", kind, "-o", "yaml")
		switch kind {
		case "clusterinformations":
			continue // read-only for calicoctl
		case "profiles": // without the built-in one, which calicoctl refuses to apply (as its own listing)
			ours = lab.MustCalico("host1", "get", "profile", "web", "-o", "yaml")
		}
		if out, err := run(ours, "apply", "-f", "-"); err != nil && !strings.Contains(ours, "items: []") {
			t.Errorf("calico get %s | calicoctl apply: %v\n%s\n%s", kind, err, out, ours)
		}
		if kind == "tiers" && !strings.Contains(y, "kube-baseline") {
			t.Errorf("calicoctl get tiers:\n%s", y)
		}
	}
	// A policy written by calicoctl, in a tier it made, is enforced.
	must("apiVersion: projectcalico.org/v3\nkind: Tier\nmetadata: {name: sec}\nspec: {order: 10}\n", "apply", "-f", "-")
	must("apiVersion: projectcalico.org/v3\nkind: GlobalNetworkPolicy\nmetadata: {name: web-to-db}\nspec:\n  tier: sec\n  selector: role == 'db'\n  ingress:\n  - action: Allow\n    source: {selector: role == 'web'}\n", "apply", "-f", "-")
	CheckMatrix(t, []Expect{{From: web, To: db.v4(), OK: true}, {From: db, To: web.v4(), OK: false}}, 15*time.Second)
	// Round trips: calicoctl's YAML into calico apply, and ours into calicoctl.
	y := must("", "get", "globalnetworkpolicy", "web-to-db", "-o", "yaml")
	if out, err := apply(y); err != nil {
		t.Errorf("calico apply of calicoctl's YAML: %v\n%s\n%s", err, out, y)
	}
	ours := lab.MustCalico("host1", "get", "globalnetworkpolicy", "web-to-db", "-o", "yaml")
	must(ours, "apply", "-f", "-")
	// IPAM: calicoctl reads our blocks, handles and affinities and finds
	// them consistent with the endpoints. (Its ipam check asks a
	// Kubernetes API for services even in etcd mode: a stub answers.)
	if out, err := run("", "ipam", "show"); err != nil || !strings.Contains(out, "10.65.0.0/16") {
		t.Errorf("calicoctl ipam show: %v\n%s", err, out)
	}
	// calicoctl's IPAM settings are the node's: strict affinity, as
	// calicoctl writes it, and a workload still gets an address of the
	// host's own block.
	must("", "ipam", "configure", "--strictaffinity=true")
	if out, _ := lab.etcdctl("host1", "get", "--print-value-only", "/calico/ipam/v2/config"); !strings.Contains(out, `"strict_affinity":true`) {
		t.Errorf("after calicoctl ipam configure --strictaffinity=true the IPAM settings are %s", out)
	}
	if out := must("", "ipam", "show", "--show-configuration"); !regexp.MustCompile(`StrictAffinity\s*\|\s*true`).MatchString(out) {
		t.Errorf("calicoctl ipam show --show-configuration:\n%s", out)
	}
	lab.AddWorkload("host1", "ctl-strict", "--profile", "web")
	var ln net.Listener
	if err := bgpInNS(bgpNS("host1"), func() (err error) { ln, err = net.Listen("tcp", "127.0.0.1:0"); return err }); err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go http.Serve(ln, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"kind":"ServiceList","apiVersion":"v1","metadata":{"resourceVersion":"1"},"items":[]}`)
	}))
	kubeconfig := filepath.Join(t.TempDir(), "kubeconfig")
	os.WriteFile(kubeconfig, []byte("apiVersion: v1\nkind: Config\nclusters: [{name: stub, cluster: {server: 'http://"+ln.Addr().String()+"'}}]\nusers: [{name: stub, user: {}}]\ncontexts: [{name: stub, context: {cluster: stub, user: stub}}]\ncurrent-context: stub\n"), 0o600)
	env = append(env, "KUBECONFIG="+kubeconfig)
	if out, err := run("", "ipam", "check"); err != nil || !strings.Contains(out, "found 0 problems") {
		t.Errorf("calicoctl ipam check: %v\n%s", err, out)
	}
	// Export for a migration to Kubernetes: it needs the datastore locked
	// and each Node to name its Kubernetes node (orchRefs), which a
	// cluster without Kubernetes does not have until the user adds it.
	node := lab.MustCalico("host1", "get", "node", "host1", "-o", "json")
	var n map[string]any
	json.Unmarshal([]byte(node), &n)
	n["spec"].(map[string]any)["orchRefs"] = []map[string]string{{"nodeName": "host1", "orchestrator": "k8s"}}
	b, _ := json.Marshal(n)
	if out, err := apply(string(b)); err != nil {
		t.Fatalf("adding orchRefs: %v %s", err, out)
	}
	must("", "datastore", "migrate", "lock")
	out, err := run("", "datastore", "migrate", "export")
	must("", "datastore", "migrate", "unlock")
	if err != nil || !strings.Contains(out, "kind: GlobalNetworkPolicyList") || !strings.Contains(out, "web-to-db") || !strings.Contains(out, `"blocks"`) {
		t.Errorf("calicoctl datastore migrate export: %v\n%s", err, out)
	}
}
