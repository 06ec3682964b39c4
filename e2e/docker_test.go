package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// The Docker tests: a real Docker Engine (Debian's) per lab host, started
// by the test in the host's namespaces (docker_lab_test.go), with the
// calico node serving its network and IPAM plugins.

// TestDockerOneHost: networks are profiles (members reach each other,
// other networks are firewalled off), a GlobalNetworkPolicy by a
// network's label lets one in, --ip and IPv6, docker network connect and
// disconnect, and removal frees what a container had.
func TestDockerOneHost(t *testing.T) {
	lab, hosts := newDockerLab(t, 1)
	d := hosts[0]
	d.startNode("--pool", "10.65.0.0/16", "--pool", "fd00:65::/48", "--pool", "10.66.0.0/16")
	d.startDockerd()
	if _, err := os.Stat("/run/docker/plugins/calico.sock"); err == nil {
		t.Errorf("the node's plugin socket is in the machine's /run/docker/plugins")
	}
	for _, args := range [][]string{
		{"--subnet", "10.65.0.0/16", "--label", "role=web", "web"},
		{"--subnet", "10.66.0.0/16", "--label", "tier=db", "db"},
		{"--ipv6", "--subnet", "10.65.0.0/16", "--subnet", "fd00:65::/48", "dual"},
	} {
		d.mustDocker(append([]string{"network", "create", "--driver", "calico", "--ipam-driver", "calico-ipam"}, args...)...)
	}
	w1, w2, d1 := d.run("w1", "web"), d.run("w2", "web"), d.run("d1", "db")
	routes := d.mustDocker("exec", "w1", "ip", "route")
	if !strings.Contains(routes, "default via 169.254.1.1 dev eth0") || !strings.Contains(routes, "169.254.1.1 dev eth0 scope link") ||
		!strings.HasPrefix(w1.v4(), "10.65.") || !strings.HasPrefix(d1.v4(), "10.66.") {
		t.Errorf("w1 at %v, d1 at %v; w1's routes:\n%s", w1.Addresses, d1.Addresses, routes)
	}
	if addr := d.mustDocker("exec", "w1", "ip", "-4", "addr", "show", "eth0"); !strings.Contains(addr, w1.v4()+"/32") {
		t.Errorf("w1's eth0:\n%s", addr)
	}
	CheckMatrix(t, []Expect{{w1, w2.v4(), true}, {w2, w1.v4(), true}, {d1, w1.v4(), false}, {w1, d1.v4(), false}}, 20*time.Second)

	// Policy by the networks' labels.
	policy := `apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata: {name: web-from-db}
spec:
  selector: role == "web"
  types: [Ingress]
  ingress: [{action: Allow, protocol: TCP, source: {selector: tier == "db"}, destination: {ports: [8080]}}]
`
	f := filepath.Join(t.TempDir(), "p.yaml")
	os.WriteFile(f, []byte(policy), 0o644)
	lab.MustCalico(d.name, "apply", "-f", f)
	CheckMatrix(t, []Expect{{d1, w1.v4(), true}, {w1, d1.v4(), false}}, 20*time.Second)
	lab.MustCalico(d.name, "delete", "-f", f)

	dockerAddresses(t, d)
	dockerConnect(t, d, d1)
	dockerRemove(t, lab, d)
}

// dockerAddresses: --ip and --ip6 are honoured; IPv6 works between
// containers; one address taken is refused.
func dockerAddresses(t *testing.T, d *dockerHost) {
	t.Helper()
	s1 := d.run("s1", "dual", "--ip", "10.65.50.5", "--ip6", "fd00:65::55")
	s2 := d.run("s2", "dual")
	if s1.v4() != "10.65.50.5" || s1.v6() != "fd00:65::55" || !strings.HasPrefix(s2.v6(), "fd00:65:") {
		t.Errorf("s1 at %v, s2 at %v", s1.Addresses, s2.Addresses)
	}
	if r := d.mustDocker("exec", "s1", "ip", "-6", "route"); !strings.Contains(r, "default via fe80::ecee:eeff:feee:eeee dev eth0") {
		t.Errorf("s1's IPv6 routes:\n%s", r)
	}
	CheckMatrix(t, []Expect{{s1, s2.v6(), true}, {s2, s1.v6(), true}, {s2, s1.v4(), true}}, 20*time.Second)
	out, err := d.docker("run", "--rm", "--net", "dual", "--ip", "10.65.50.5", dockerImage, "true")
	if err == nil || !strings.Contains(out, "address 10.65.50.5 is already in use") {
		t.Errorf("a second container with --ip 10.65.50.5: %v\n%s", err, out)
	}
}

// dockerConnect: docker network connect gives a container an interface
// on a second network, through which it reaches that network's members
// (its --subnet's route) and they reach it; disconnect takes it away.
func dockerConnect(t *testing.T, d *dockerHost, d1 Workload) {
	t.Helper()
	c1 := d.run("c1", "web")
	CheckMatrix(t, []Expect{{c1, d1.v4(), false}}, 20*time.Second)
	d.mustDocker("network", "connect", "db", "c1")
	c1db := d.container("c1", "db")
	if r := d.mustDocker("exec", "c1", "ip", "route"); !strings.Contains(r, "10.66.0.0/16 dev eth1") || strings.Count(r, "default") != 1 {
		t.Errorf("c1's routes on two networks:\n%s", r)
	}
	CheckMatrix(t, []Expect{{c1, d1.v4(), true}, {d1, c1db.v4(), true}}, 20*time.Second)
	d.mustDocker("network", "disconnect", "db", "c1")
	if a := d.mustDocker("exec", "c1", "ip", "-o", "link"); strings.Contains(a, "eth1") {
		t.Errorf("c1 keeps eth1 after the disconnect:\n%s", a)
	}
	eventually(t, 10*time.Second, "c1's db address to be free", func() bool { return !dockerAllocated(t, d, c1db.v4()) })
	CheckMatrix(t, []Expect{{c1, d1.v4(), false}}, 20*time.Second)
}

// dockerRemove: docker rm frees the container's address, endpoint and
// interfaces; the last network of a name takes its profile with it;
// nothing is left.
func dockerRemove(t *testing.T, lab *Lab, d *dockerHost) {
	t.Helper()
	w := d.container("w2", "web")
	d.mustDocker("rm", "-f", "w2")
	if dockerAllocated(t, d, w.v4()) {
		t.Errorf("w2's address %s is still allocated after docker rm", w.v4())
	}
	for _, ep := range dockerEndpoints(t, lab, d.name) {
		if strings.Contains(ep.Spec.IPNetworks[0], w.v4()+"/") {
			t.Errorf("w2's endpoint is left: %+v", ep)
		}
	}
	d.mustDocker("rm", "-f", "d1")
	d.mustDocker("network", "rm", "db")
	if out := lab.MustCalico(d.name, "get", "profiles"); strings.Contains(out, "db\n") || !strings.Contains(out, "web\n") {
		t.Errorf("profiles after docker network rm db:\n%s", out)
	}
	out := d.mustDocker("ps", "-aq")
	d.mustDocker(append([]string{"rm", "-f"}, strings.Fields(out)...)...)
	if eps := dockerEndpoints(t, lab, d.name); len(eps) != 0 {
		t.Errorf("endpoints after every container went: %+v", eps)
	}
	ipamClean(t, lab, d.name)
}

// dockerAllocated says whether IPAM holds an address.
func dockerAllocated(t *testing.T, d *dockerHost, addr string) bool {
	t.Helper()
	out := d.lab.MustCalico(d.name, "ipam", "show", "--ip", addr, "-o", "json")
	var a struct {
		Allocated bool `json:"allocated"`
	}
	if err := json.Unmarshal([]byte(out), &a); err != nil {
		t.Fatalf("ipam show --ip %s printed %q: %v", addr, out, err)
	}
	return a.Allocated
}

// dockerEndpoints are the Docker endpoints the cluster holds.
func dockerEndpoints(t *testing.T, lab *Lab, host string) []wep {
	t.Helper()
	var out []wep
	for _, w := range endpoints(t, lab, host) {
		if w.Metadata.Namespace == "libnetwork" {
			out = append(out, w)
		}
	}
	return out
}

// TestDockerTwoHosts: the network of one name on two hosts is one group:
// a container on host1 reaches one on host2 by plain routed IP (the
// fabric carries the containers' own addresses), another network is
// refused; calico lists the containers; a restart of host1's node keeps
// a flow between them going; host2 leaves with its containers running,
// then founds a cluster of its own, and they are removed.
func TestDockerTwoHosts(t *testing.T) {
	lab, hosts := newDockerLab(t, 2)
	d1, d2 := hosts[0], hosts[1]
	d1.startNode("--pool", "10.65.0.0/16", "--pool", "fd00:65::/48")
	d2.startNode("--join", lab.Addr("host1"), "--token", lab.Token("host1"))
	d1.startDockerd()
	d2.startDockerd()
	d1.mustDocker("network", "create", "--driver", "calico", "--ipam-driver", "calico-ipam", "--subnet", "10.65.0.0/16", "--label", "role=web", "web")
	d2.mustDocker("network", "create", "--driver", "calico", "--ipam-driver", "calico-ipam", "web")
	d2.mustDocker("network", "create", "--driver", "calico", "--ipam-driver", "calico-ipam", "other")
	w1, c2, o2 := d1.run("w1", "web"), d2.run("c2", "web"), d2.run("o2", "other")
	CheckMatrix(t, []Expect{{c2, w1.v4(), true}, {w1, c2.v4(), true}, {o2, w1.v4(), false}}, 30*time.Second)

	if _, err := exec.LookPath("tcpdump"); err != nil {
		t.Log("SKIP (part): no tcpdump to show the fabric's packets (Debian: apt-get install tcpdump)")
	} else {
		dockerOnTheWire(t, c2, w1)
	}
	out := lab.MustCalico("host2", "get", "workloadendpoints", "-o", "wide")
	for _, want := range []string{w1.v4() + "/32", c2.v4() + "/32", "host1", "host2", "libnetwork"} {
		if !strings.Contains(out, want) {
			t.Errorf("calico get workloadendpoints -o wide lacks %q:\n%s", want, out)
		}
	}

	// A restart of host1's node (SIGTERM, as an upgrade does) breaks no
	// flow and loses nothing.
	bgpServeIn(t, w1.NetNS, 9000, bgpEcho)
	fl := bgpStartFlow(t, c2.NetNS, w1.v4()+":9000")
	fl.progress(t, 50, 10*time.Second, "before host1's restart")
	synced := strings.Count(lab.Log("host1"), "BGP is in sync")
	lab.Stop("host1")
	fl.progress(t, 50, 10*time.Second, "while host1's node is stopped")
	d1.startNode()
	fl.progress(t, 200, 20*time.Second, "after host1's node started")
	// Until the restarted node's BGP is in sync and it swept what it kept.
	for start := time.Now(); strings.Count(lab.Log("host1"), "BGP is in sync") == synced && time.Since(start) < 30*time.Second; {
		fl.progress(t, 1, 10*time.Second, "while host1's BGP syncs")
		time.Sleep(100 * time.Millisecond)
	}
	fl.progress(t, 100, 10*time.Second, "after host1's BGP synced")
	n, gap, _, err := fl.state()
	if err != nil || gap > 2*time.Second {
		t.Errorf("the flow across host1's restart: %d messages, longest gap %s, %v", n, gap, err)
	}
	t.Logf("the flow across host1's restart: %d messages, longest gap %s", n, gap.Round(time.Millisecond))
	if eps := dockerEndpoints(t, lab, "host1"); len(eps) != 3 {
		t.Errorf("endpoints after the restart: %+v", eps)
	}

	// host2 leaves with its containers running: --force removes its
	// Docker endpoints (their pairs included) and releases the addresses
	// Docker's IPAM driver held, and nothing of it stays behind.
	if out, errs, err := lab.CalicoWithin(90*time.Second, "host2", "leave", "--force"); err != nil {
		t.Fatalf("calico leave --force on host2 with Docker containers: %v\n%s%s", err, out, errs)
	}
	exited(t, lab, "host2")
	if eps := dockerEndpoints(t, lab, "host1"); len(eps) != 1 || eps[0].Spec.Node != "host1" {
		t.Errorf("endpoints after host2 left: %+v; want host1's w1 alone", eps)
	}
	for _, w := range []Workload{c2, o2} {
		if out := lab.MustCalico("host1", "ipam", "show", "--ip", w.v4()); !strings.Contains(out, "is not allocated") {
			t.Errorf("after host2 left, ipam show --ip %s says %q", w.v4(), out)
		}
	}
	if out, errs, err := lab.Calico("host1", "ipam", "check"); err != nil {
		t.Errorf("ipam check after host2 left: %v\n%s%s", err, out, errs)
	}

	// host2 founds a cluster of its own. Its containers, whose endpoints
	// went with the old cluster, are removed through its plugins at once
	// (with no node answering, Docker retries each call for half a
	// minute).
	d2.startNode("--pool", "10.66.0.0/16")
	for _, w := range []Workload{c2, o2} {
		if out, err := d2.docker("rm", "-f", w.Name); err != nil {
			t.Errorf("docker rm -f %s on host2 after it founded a new cluster: %v\n%s", w.Name, err, out)
		}
	}
	if eps := dockerEndpoints(t, lab, "host2"); len(eps) != 0 {
		t.Errorf("host2's new cluster holds Docker endpoints: %+v", eps)
	}
}

// dockerOnTheWire: tcpdump on the rack's bridge sees the containers' own
// addresses (no overlay, no NAT) while one connects to the other.
func dockerOnTheWire(t *testing.T, from, to Workload) {
	t.Helper()
	filter := fmt.Sprintf("tcp and host %s and host %s", from.v4(), to.v4())
	out := make(chan string, 1)
	go func() {
		b, _ := exec.Command("ip", "netns", "exec", labName()+"-fabric", "timeout", "10", "tcpdump", "-n", "-l", "-c", "2", "-i", "rack1", filter).CombinedOutput()
		out <- string(b)
	}()
	want := fmt.Sprintf("%s.", from.v4())
	var got string
	deadline := time.Now().Add(12 * time.Second)
	for got == "" && time.Now().Before(deadline) {
		connects(from, to.v4())
		select {
		case got = <-out:
		case <-time.After(200 * time.Millisecond):
		}
	}
	if !strings.Contains(got, want) || !strings.Contains(got, to.v4()+".8080") {
		t.Errorf("tcpdump on the fabric, %s:\n%s", filter, got)
	}
	t.Logf("tcpdump on the fabric, %s:\n%s", filter, got)
}

// TestDockerFaults: kill -9 of the node with containers running (their
// traffic keeps flowing; the restarted node keeps them), containers
// removed while it was down (cleaned up when it returns), a restart of
// dockerd (its --restart containers come back on the network), and a
// network whose --subnet is outside every pool (refused, with calico's
// message).
func TestDockerFaults(t *testing.T) {
	lab, hosts := newDockerLab(t, 1)
	d := hosts[0]
	d.startNode("--pool", "10.65.0.0/16", "--pool", "fd00:65::/48")
	d.startDockerd()
	out, err := d.docker("network", "create", "--driver", "calico", "--ipam-driver", "calico-ipam", "--subnet", "10.99.0.0/24", "bad")
	if err == nil || !strings.Contains(out, "--subnet 10.99.0.0/24 is neither one of calico's IP pools nor inside one") {
		t.Errorf("a network outside every pool: %v\n%s", err, out)
	}
	// By name: a network ID may hold "bad" (08bada0e2c48 did once).
	if out, _ := d.docker("network", "ls", "--format", "{{.Name}}"); slices.Contains(strings.Fields(out), "bad") {
		t.Errorf("the refused network exists:\n%s", out)
	}
	d.mustDocker("network", "create", "--driver", "calico", "--ipam-driver", "calico-ipam", "web")
	a, b := d.run("fa", "web"), d.run("fb", "web")
	gone := []Workload{d.run("fx", "web"), d.run("fy", "web")}
	bgpServeIn(t, b.NetNS, 9000, bgpEcho)
	CheckMatrix(t, []Expect{{a, b.v4(), true}}, 20*time.Second)
	fl := bgpStartFlow(t, a.NetNS, b.v4()+":9000")
	fl.progress(t, 50, 10*time.Second, "before the kill")

	lab.KillNow(d.name)
	lab.Kill(d.name)
	fl.progress(t, 100, 10*time.Second, "while the node is dead")
	// Docker's calls fail (after its retries: a minute or so) while the
	// node is down; the containers go all the same.
	start := time.Now()
	errs := make(chan error, len(gone))
	for _, w := range gone {
		go func() { _, err := d.docker("rm", "-f", w.Name); errs <- err }()
	}
	for range gone {
		if err := <-errs; err != nil {
			t.Errorf("docker rm -f while the node is down: %v", err)
		}
	}
	t.Logf("docker rm -f of two containers while the node was down took %s", time.Since(start).Round(time.Second))
	fl.progress(t, 50, 10*time.Second, "after the containers went")
	d.startNode()
	fl.progress(t, 100, 10*time.Second, "after the node started again")
	eventually(t, 30*time.Second, "the removed containers' endpoints to be collected", func() bool {
		return len(dockerEndpoints(t, lab, d.name)) == 2
	})
	for _, w := range gone {
		if dockerAllocated(t, d, w.v4()) {
			t.Errorf("%s's address %s is still allocated", w.Name, w.v4())
		}
	}
	links, _ := lab.Exec(d.name, "ip", "-o", "link")
	if n := strings.Count(links, ": cali"); n != 2 || strings.Contains(links, ": temp") {
		t.Errorf("the host's interfaces after the collection (want the cali… of fa and fb only):\n%s", links)
	}
	n, gap, _, err := fl.state()
	if err != nil || gap > 2*time.Second {
		t.Errorf("the flow across the kill: %d messages, longest gap %s, %v", n, gap, err)
	}
	t.Logf("the flow across the kill and restart: %d messages, longest gap %s", n, gap.Round(time.Millisecond))
	fl.close()

	// dockerd restarts: a --restart=always container comes back with a
	// calico address; the endpoints of the others go with their
	// containers.
	r := d.run("fr", "web", "--restart", "always")
	d.restartDockerd()
	eventually(t, 30*time.Second, "fr to run again", func() bool {
		out, _ := d.docker("inspect", "-f", "{{.State.Running}}", "fr")
		return strings.TrimSpace(out) == "true"
	})
	r2 := d.container("fr", "web")
	if dockerAllocated(t, d, a.v4()) {
		t.Errorf("fa's address %s is still allocated after dockerd stopped it", a.v4())
	}
	a2 := d.run("fa2", "web")
	CheckMatrix(t, []Expect{{a2, r2.v4(), true}}, 20*time.Second)
	if eps := dockerEndpoints(t, lab, d.name); len(eps) != 2 {
		t.Errorf("endpoints after dockerd's restart (fr and fa2): %+v", eps)
	}
	t.Logf("fr was at %s and is at %s after dockerd's restart", r.v4(), r2.v4())
}
