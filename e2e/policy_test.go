package e2e

import (
	"encoding/json"
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// The policy conformance matrix (issue 5): one lab of three hosts, seven
// workloads with varied labels in two namespaces, and Calico policies
// applied one after another as a user writes them (`calico apply -f -`).
// Each scenario checks its matrix of expected reachability, every pair in
// both directions, most of them over IPv4 and IPv6, TCP and UDP; the
// destination also tells which source address it saw, so every allowed
// workload-to-workload cell checks that nothing was masqueraded.

// TestPolicy is the conformance matrix: one scenario after another on one
// lab, each removed (when its subtest ends, pass or fail) before the next;
// a subtest also runs alone (-run TestPolicy/4-pass). IPv6 is checked
// beside IPv4 in most. The host endpoint comes last, so that if it cuts
// host2 off the other scenarios have run; it is removed before the lab
// goes down.
func TestPolicy(t *testing.T) {
	began := time.Now()
	lab := NewLab(t, 3, 1)
	p := &polLab{lab: lab, hosts: bgpHosts(3)}
	bgpCluster(t, lab, p.hosts)
	h1, h2, h3 := p.host(t, "host1"), p.host(t, "host2"), p.host(t, "host3")
	wl := func(host, name, profile, ns string, labels ...string) polPeer {
		args := []string{"--profile", profile, "--namespace", ns}
		for _, l := range labels {
			args = append(args, "--label", l)
		}
		return p.workload(t, host, name, args...)
	}
	web1 := wl("host1", "po-web1", "web", "default", "role=web", "env=prod")
	web2 := wl("host2", "po-web2", "web", "default", "role=web", "env=dev")
	db1 := wl("host3", "po-db1", "db", "default", "role=db", "env=prod")
	db2 := wl("host1", "po-db2", "db", "default", "role=db", "env=dev")
	cli := wl("host2", "po-cli", "client", "default", "role=client", "env=prod")
	oweb := wl("host3", "po-oweb", "web", "other", "role=web", "env=prod")
	odb := wl("host2", "po-odb", "db", "other", "role=db", "env=prod")
	t.Logf("lab, cluster and 7 workloads ready in %s", time.Since(began).Round(time.Millisecond))

	t.Run("1-profiles", func(t *testing.T) {
		// No policy: a profile's members reach each other, whatever
		// their namespace; nobody else reaches them.
		var m polMatrix
		m.pair(web1, web2, "tcp/80", true, true)
		m.pair(web1, oweb, "tcp/80", true, true)
		m.pair(db1, db2, "tcp/5432", true, true)
		m.pair(db1, odb, "tcp/5432", true, true)
		m.pair(web1, db1, "tcp/80", false, false)
		m.pair(cli, web2, "tcp/80", false, false)
		m.pair(web1, web2, "udp/5432", true, true)
		m.pair(cli, odb, "udp/5432", false, false)
		p.check(t, m.both(), 2*polWithin)
	})

	allowDBFromWeb := `
apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata:
  name: pol-db-from-web
spec:
  order: 100
  selector: role == "db"
  types: [Ingress]
  ingress:
  - action: Allow
    protocol: TCP
    source:
      selector: role == "web"
    destination:
      ports: [5432]
`
	t.Run("2-allow-by-selector", func(t *testing.T) {
		p.apply(t, allowDBFromWeb)
		var m polMatrix
		m.pair(web1, db1, "tcp/5432", true, false)
		m.pair(web2, db2, "tcp/5432", true, false)
		m.pair(oweb, db1, "tcp/5432", true, false) // a global policy's selector sees every namespace
		m.pair(web2, odb, "tcp/5432", true, false)
		m.pair(web1, db1, "tcp/80", false, false)
		m.pair(cli, db1, "tcp/5432", false, false)
		// A policy selects db1 and db2 now: what it does not allow is
		// dropped at the end of the tier, their profile is not asked.
		m.pair(db2, db1, "tcp/5432", false, false)
		m.pair(web1, db2, "udp/5432", false, false)
		m.pair(web1, web2, "tcp/5432", true, true)
		p.check(t, m.both(), polWithin)
	})

	t.Run("3-order", func(t *testing.T) {
		deny := func(order int) string {
			return fmt.Sprintf(`
apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata:
  name: pol-deny-dev-web
spec:
  order: %d
  selector: role == "db"
  ingress:
  - action: Deny
    protocol: TCP
    source:
      selector: role == "web" && env == "dev"
    destination:
      ports: [5432]
`, order)
		}
		p.apply(t, allowDBFromWeb+"---"+deny(10))
		var m polMatrix
		m.pair(web2, db1, "tcp/5432", false, false) // Deny at 10 before Allow at 100
		m.pair(web2, db2, "tcp/5432", false, false)
		m.pair(web1, db1, "tcp/5432", true, false)
		p.check(t, m.both(), polWithin)

		swapped := strings.Replace(allowDBFromWeb, "order: 100", "order: 10", 1) + "---" + deny(100)
		p.apply(t, swapped)
		m = nil
		m.pair(web2, db1, "tcp/5432", true, false) // Allow at 10 before Deny at 100
		m.pair(web2, db2, "tcp/5432", true, false)
		m.pair(web1, db1, "tcp/5432", true, false)
		p.check(t, m.both(), polWithin)
	})

	t.Run("4-pass", func(t *testing.T) {
		p.apply(t, `
apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata:
  name: pol-pass-db
spec:
  order: 10
  selector: role == "db"
  ingress:
  - action: Pass
    source:
      selector: role == "db"
---
apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata:
  name: pol-after-pass
spec:
  order: 20
  selector: role == "db"
  ingress:
  - action: Deny
    source:
      selector: role == "db"
  - action: Allow
    source:
      selector: role == "client"
`)
		var m polMatrix
		// Pass skips pol-after-pass's Deny: profile db decides, and allows.
		m.pair(db2, db1, "tcp/5432", true, true)
		m.pair(odb, db1, "tcp/5432", true, true)
		m.pair(db2, odb, "udp/5432", true, true)
		// Not passed: pol-after-pass allows clients, nothing else.
		m.pair(cli, db1, "tcp/5432", true, false)
		m.pair(web1, db2, "tcp/5432", false, false)
		m.pair(web1, web2, "tcp/80", true, true)
		p.check(t, m.both(), polWithin)
	})

	t.Run("5-port-ranges", func(t *testing.T) {
		p.apply(t, `
apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata:
  name: pol-ports
spec:
  order: 10
  selector: role == "web"
  ingress:
  - action: Allow
    protocol: TCP
    source:
      selector: role == "client"
    destination:
      ports: ["6000:6010"]
  - action: Allow
    protocol: TCP
    source:
      selector: role == "db"
    destination:
      notPorts: [80, "6000:6010"]
`)
		var m polMatrix
		for _, port := range []int{6000, 6005, 6010} {
			m.pair(cli, web1, fmt.Sprintf("tcp/%d", port), true, false)
		}
		m.pair(cli, web1, "tcp/6011", false, false)
		m.pair(cli, web2, "tcp/6010", true, false)
		m.pair(cli, web2, "tcp/80", false, false)
		m.pair(db1, web1, "tcp/7000", true, false)
		m.pair(db1, web1, "tcp/6005", false, false)
		m.pair(db1, web1, "tcp/80", false, false)
		m.pair(web1, web2, "tcp/6005", false, false)
		p.check(t, m.both(), polWithin)
	})

	t.Run("6-not-nets", func(t *testing.T) {
		p.apply(t, fmt.Sprintf(`
apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata:
  name: pol-not-nets
spec:
  order: 10
  selector: role == "db"
  ingress:
  - action: Allow
    protocol: TCP
    source:
      notNets: [%s/32, %s/128]
    destination:
      ports: [5432]
`, web2.v4, web2.v6))
		var m polMatrix
		m.pair(web2, db1, "tcp/5432", false, false)
		m.pair(web2, db2, "tcp/5432", false, false)
		m.pair(web1, db1, "tcp/5432", true, false)
		m.pair(cli, db2, "tcp/5432", true, false)
		m.pair(db2, db1, "tcp/5432", true, true)
		p.check(t, m.both(), polWithin)
	})

	t.Run("7-egress-deny", func(t *testing.T) {
		p.apply(t, `
apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata:
  name: pol-egress
spec:
  order: 10
  selector: role == "web"
  types: [Egress]
  egress:
  - action: Deny
    destination:
      selector: role == "web" && env == "dev"
  - action: Allow
`)
		var m polMatrix
		m.pair(web1, web2, "tcp/80", false, true) // host1 drops what po-web1 sends
		m.pair(oweb, web2, "tcp/80", false, true)
		m.pair(web1, oweb, "tcp/80", true, true)
		m.pair(web1, web2, "udp/5432", false, true)
		m.pair(cli, web2, "tcp/80", false, false) // ingress is the profiles' still
		p.check(t, m.both(), polWithin)
		// The deny is counted on the sender's host.
		if n := p.counted(t, "host1", "pol-egress", "egress", 0); n == 0 {
			t.Errorf("host1 counted no packet on pol-egress's egress rule 0 (Deny)")
		}
	})

	t.Run("8-namespaced", func(t *testing.T) {
		policy := `
apiVersion: projectcalico.org/v3
kind: NetworkPolicy
metadata:
  name: pol-db-from-web
  namespace: other
spec:
  selector: role == "db"
  ingress:
  - action: Allow
    protocol: TCP
    source:
      selector: role == "web"
    destination:
      ports: [5432]
`
		p.apply(t, policy)
		var m polMatrix
		m.pair(oweb, odb, "tcp/5432", true, false)
		m.pair(web1, odb, "tcp/5432", false, false) // the selector sees namespace other only
		m.pair(web2, odb, "tcp/5432", false, false)
		m.pair(db2, odb, "tcp/5432", false, true) // po-odb is selected now; po-db2 is not
		m.pair(web1, db1, "tcp/5432", false, false)
		m.pair(db2, db1, "tcp/5432", true, true) // namespace default is untouched
		p.check(t, m.both(), polWithin)

		p.apply(t, policy+`  - action: Allow
    protocol: TCP
    source:
      selector: role == "web"
      namespaceSelector: projectcalico.org/name == "default"
    destination:
      ports: [5432]
`)
		m = nil
		m.pair(oweb, odb, "tcp/5432", true, false)
		m.pair(web1, odb, "tcp/5432", true, false)
		m.pair(web2, odb, "tcp/5432", true, false)
		m.pair(cli, odb, "tcp/5432", false, false)
		m.pair(db2, odb, "tcp/5432", false, true)
		m.pair(web1, db1, "tcp/5432", false, false)
		p.check(t, m.both(), polWithin)
	})

	t.Run("10-nat-outgoing", func(t *testing.T) {
		inet := p.internet(t)
		p.apply(t, `
apiVersion: projectcalico.org/v3
kind: IPPool
metadata:
  name: pol-nat-v4
spec:
  cidr: 10.66.0.0/16
  natOutgoing: true
---
apiVersion: projectcalico.org/v3
kind: IPPool
metadata:
  name: pol-nat-v6
spec:
  cidr: fd00:66::/48
  natOutgoing: true
`)
		nat := p.tempWorkload(t, "host2", "po-nat", "--profile", "web", "--label", "role=web", "--label", "env=nat",
			"--pool", "10.66.0.0/16", "--pool", "fd00:66::/48")
		var m polMatrix
		for _, v6 := range []bool{false, true} {
			// The internet host sees host2's address; it has no route
			// back to any pool.
			m = append(m,
				polCell{from: nat, to: inet, proto: "tcp", port: 80, v6: v6, ok: true, src: h2.addr(v6)},
				polCell{from: inet, to: nat, proto: "tcp", port: 80, v6: v6},
				polCell{from: web1, to: inet, proto: "tcp", port: 80, v6: v6},
				polCell{from: inet, to: web1, proto: "tcp", port: 80, v6: v6})
		}
		// Between workloads nothing is masqueraded: each end sees the
		// other's own address.
		var w polMatrix
		w.pair(nat, web1, "tcp/80", true, true)
		w.pair(nat, web2, "tcp/80", true, true)
		p.check(t, append(m, w.both()...), polWithin)
	})

	t.Run("9-host-endpoint", func(t *testing.T) {
		applied := time.Now()
		p.apply(t, `
apiVersion: projectcalico.org/v3
kind: HostEndpoint
metadata:
  name: h2-all
  labels:
    host: h2
spec:
  node: host2
  interfaceName: "*"
`)
		var m polMatrix
		m.pair(h1, h2, "tcp/22", true, false) // failsafe in, not out
		m.pair(h3, h2, "tcp/8080", false, false)
		m.pair(h1, h2, "tcp/7000", false, false)
		m.pair(h1, h3, "tcp/8080", true, true) // hosts without endpoints
		// Workloads are not host traffic, even when they cross host2.
		m.pair(web1, web2, "tcp/80", true, true)
		m.pair(cli, h1, "tcp/7000", true, false)
		// Host to its own workload is allowed; workload to host is
		// defaultEndpointToHostAction's (Drop).
		m.pair(h2, web2, "tcp/7000", true, false)
		p.check(t, m.both(), polWithin)

		// The host still works in its cluster: it adds a workload, which
		// its host and the others reach.
		w := p.tempWorkload(t, "host2", "po-new2", "--profile", "web", "--label", "role=web", "--pool", "10.65.0.0/16", "--pool", "fd00:65::/48")
		m = nil
		m.pair(h2, w, "tcp/80", true, false)
		m.pair(web1, w, "tcp/80", true, true)
		p.check(t, m.both(), polWithin)

		p.apply(t, `
apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata:
  name: pol-h2
spec:
  selector: host == "h2"
  types: [Ingress, Egress]
  ingress:
  - action: Allow
    protocol: TCP
    destination:
      ports: [8080]
  egress:
  - action: Allow
`)
		m = nil
		m.pair(h3, h2, "tcp/8080", true, true)
		m.pair(h1, h2, "tcp/8080", true, true)
		m.pair(h1, h2, "tcp/22", true, true)
		m.pair(h1, h2, "tcp/7000", false, true)
		m.pair(web1, web2, "tcp/80", true, true)
		p.check(t, m.both(), polWithin)

		// With defaultEndpointToHostAction Accept, host2's workloads reach
		// it on a port the host endpoint closes to everyone else.
		p.apply(t, `
apiVersion: projectcalico.org/v3
kind: FelixConfiguration
metadata:
  name: default
spec:
  defaultEndpointToHostAction: Accept
`)
		m = nil
		m.pair(h2, web2, "tcp/7000", true, true)
		m.pair(h1, h2, "tcp/7000", false, true)
		p.check(t, m.both(), polWithin)

		p.healthy(t, "host2", applied)
	})
	t.Logf("lab and scenarios took %s", time.Since(began).Round(time.Millisecond))
}

// counted is the packet count of one rule of a policy on host.
func (p *polLab) counted(t *testing.T, host, policy, dir string, rule int) uint64 {
	t.Helper()
	out, errs, err := p.lab.CalicoWithin(10*time.Second, host, "policy", "stats", policy, "-o", "json")
	if err != nil {
		t.Errorf("policy stats %s on %s: %v: %s", policy, host, err, errs)
		return 0
	}
	var stats []struct {
		Direction string `json:"direction"`
		Rule      int    `json:"rule"`
		Packets   uint64 `json:"packets"`
	}
	if err := json.Unmarshal([]byte(out), &stats); err != nil {
		t.Errorf("policy stats printed %q: %v", out, err)
	}
	for _, s := range stats {
		if s.Direction == dir && s.Rule == rule {
			return s.Packets
		}
	}
	return 0
}

// internet makes the lab's internet host: a namespace on rack 1's bridge
// at 172.31.1.250 and fd00:31:1::250, outside the cluster, with no route
// to the pools, serving tcp/80.
func (p *polLab) internet(t *testing.T) polPeer {
	t.Helper()
	ns, fabric := labName()+"-inet", labName()+"-fabric"
	t.Cleanup(func() { exec.Command("ip", "netns", "del", ns).Run() })
	for _, c := range [][]string{
		{"netns", "add", ns},
		{"-n", ns, "link", "set", "lo", "up"},
		{"link", "add", "lab-inet", "netns", fabric, "type", "veth", "peer", "name", "eth0", "netns", ns},
		{"-n", fabric, "link", "set", "lab-inet", "master", "rack1", "up"},
		{"-n", ns, "addr", "add", "172.31.1.250/24", "dev", "eth0"},
		{"-n", ns, "addr", "add", "fd00:31:1::250/64", "dev", "eth0", "nodad"},
		{"-n", ns, "link", "set", "eth0", "up"},
	} {
		if out, err := exec.Command("ip", c...).CombinedOutput(); err != nil {
			t.Fatalf("ip %s: %v: %s", strings.Join(c, " "), err, out)
		}
	}
	path := "/run/netns/" + ns
	polServe(t, path, []int{80}, nil)
	return polPeer{name: "internet", ns: path, v4: "172.31.1.250", v6: "fd00:31:1::250"}
}

// healthy checks that host kept its place in the cluster since since:
// its datastore is healthy, every node sees it alive and it sees every
// node alive, and its BGP sessions stayed up.
func (p *polLab) healthy(t *testing.T, host string, since time.Time) {
	t.Helper()
	st, err := p.status(host)
	if err != nil || !st.Datastore.Healthy {
		t.Errorf("%s's datastore: %v %+v", host, err, st.Datastore)
	}
	for _, h := range p.hosts {
		nodes, err := p.lab.Nodes(h)
		if err != nil {
			t.Errorf("node list on %s: %v", h, err)
			continue
		}
		for _, n := range nodes {
			if (h == host || n.Name == host) && (n.Gossip != "alive" || n.Since.After(since)) {
				t.Errorf("%s sees %s %s since %s (the host endpoint came at %s)", h, n.Name, n.Gossip, n.Since.Format(time.TimeOnly), since.Format(time.TimeOnly))
			}
		}
	}
	for _, h := range p.hosts {
		st, err := p.status(h)
		if err != nil {
			t.Error(err)
			continue
		}
		for _, s := range st.BGP {
			if (h == host || s.Node == host) && (s.State != "established" || s.Since.After(since)) {
				t.Errorf("%s's BGP session with %s (%s) is %s since %s", h, s.Peer, s.Node, s.State, s.Since.Format(time.TimeOnly))
			}
		}
	}
}
