package e2e

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"calico/internal/testutil"

	"go.yaml.in/yaml/v3"
)

// Hosts in two racks, with a top-of-rack router between them that is
// every host's BGP route reflector (e2e/tor).

// bgpTor is the route reflector on the router between the racks.
type bgpTor struct {
	ns  string
	cmd *exec.Cmd
	// log is the tor's stderr, read while it writes.
	log *testutil.SyncBuffer
}

func (r *bgpTor) logText() string { return r.log.String() }

// bgpBuildTor builds e2e/tor for the test.
func bgpBuildTor(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "tor")
	if out, err := exec.Command("go", "build", "-o", bin, "./tor").CombinedOutput(); err != nil {
		t.Fatalf("building the tor: %v\n%s", err, out)
	}
	return bin
}

// bgpTorRouter makes the tor namespace: a veth into each rack's bridge with
// the rack's .254 addresses, forwarding on. It is removed when the test
// ends.
func bgpTorRouter(t *testing.T, racks int) string {
	t.Helper()
	ns := labName() + "-tor"
	run := func(args ...string) {
		t.Helper()
		if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
			t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	run("ip", "netns", "add", ns)
	t.Cleanup(func() {
		// lab.sh down removes it too (it matches the lab's prefix).
		if _, err := os.Stat("/run/netns/" + ns); err == nil {
			if out, err := exec.Command("ip", "netns", "del", ns).CombinedOutput(); err != nil {
				t.Errorf("removing %s: %v\n%s", ns, err, out)
			}
		}
	})
	fabric := labName() + "-fabric"
	run("ip", "-n", ns, "link", "set", "lo", "up")
	for r := 1; r <= racks; r++ {
		run("ip", "link", "add", fmt.Sprintf("tor-r%d", r), "netns", fabric, "type", "veth", "peer", "name", fmt.Sprintf("r%d", r), "netns", ns)
		run("ip", "-n", fabric, "link", "set", fmt.Sprintf("tor-r%d", r), "master", fmt.Sprintf("rack%d", r), "up")
		run("ip", "-n", ns, "addr", "add", fmt.Sprintf("172.31.%d.254/24", r), "dev", fmt.Sprintf("r%d", r))
		run("ip", "-n", ns, "addr", "add", fmt.Sprintf("fd00:31:%d::254/64", r), "dev", fmt.Sprintf("r%d", r), "nodad")
		run("ip", "-n", ns, "link", "set", fmt.Sprintf("r%d", r), "up")
	}
	run("ip", "netns", "exec", ns, "sysctl", "-q", "-w", "net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1")
	return ns
}

// bgpStartTor runs the tor's BGP speaker in namespace ns with args, until
// the test ends or stop is called.
func bgpStartTor(t *testing.T, bin, ns string, args ...string) *bgpTor {
	t.Helper()
	r := &bgpTor{ns: ns, log: &testutil.SyncBuffer{}}
	r.cmd = exec.Command("nsenter", append([]string{"--net=/run/netns/" + ns, bin}, args...)...)
	r.cmd.Stderr = r.log
	stdout, err := r.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := r.cmd.Start(); err != nil {
		t.Fatalf("starting the tor: %v", err)
	}
	t.Cleanup(func() {
		r.stop()
		if t.Failed() {
			t.Logf("the tor's log:\n%s", tail(r.logText(), 80))
		}
	})
	ready := make(chan bool, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		ok := false
		for sc.Scan() {
			if sc.Text() == "tor: ready" && !ok {
				ok = true
				ready <- true
			}
		}
		if !ok {
			ready <- false
		}
	}()
	select {
	case ok := <-ready:
		if !ok {
			t.Fatalf("the tor exited:\n%s", r.logText())
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("the tor is not ready after 30s:\n%s", r.logText())
	}
	return r
}

// stop stops the tor (SIGTERM, then SIGKILL after 5s).
func (r *bgpTor) stop() {
	if r.cmd.ProcessState != nil {
		return
	}
	r.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { r.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		r.cmd.Process.Kill()
		<-done
	}
}

// bgpLabelNode adds a label to a Node: `calico get node -o yaml`, the label
// added, `calico apply`.
func bgpLabelNode(t *testing.T, lab *Lab, host, node, key, value string) {
	t.Helper()
	out := lab.MustCalico(host, "get", "node", node, "-o", "yaml")
	var doc map[string]any
	if err := yaml.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatalf("get node %s printed %q: %v", node, out, err)
	}
	meta, _ := doc["metadata"].(map[string]any)
	if meta == nil {
		t.Fatalf("get node %s printed no metadata: %q", node, out)
	}
	labels, _ := meta["labels"].(map[string]any)
	if labels == nil {
		labels = map[string]any{}
	}
	labels[key] = value
	meta["labels"] = labels
	b, err := json.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	bgpApply(t, lab, host, string(b))
}

// bgpApply is `calico apply -f` of text on host.
func bgpApply(t *testing.T, lab *Lab, host, text string) {
	t.Helper()
	f := filepath.Join(t.TempDir(), "doc.yaml")
	if err := os.WriteFile(f, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	lab.MustCalico(host, "apply", "-f", f)
}

// TestBGPTwoRacks: hosts 1-2 in rack 1 and 3-4 in rack 2, with a router
// between the racks whose BGP speaker is the route reflector of every
// host. The node-to-node mesh is off; each rack's hosts peer with the
// tor's address in their rack (BGPPeers by node selector on a rack
// label), and workloads in the two racks reach each other.
func TestBGPTwoRacks(t *testing.T) {
	lab := NewLab(t, 4, 2)
	hosts := bgpHosts(4)
	rack := map[string]int{}
	for _, h := range hosts {
		b, err := os.ReadFile(filepath.Join(lab.dir, h+".rack"))
		if err != nil {
			t.Fatal(err)
		}
		var r int
		fmt.Sscan(string(b), &r)
		rack[h] = r
	}
	if rack["host1"] != 1 || rack["host2"] != 1 || rack["host3"] != 2 || rack["host4"] != 2 {
		t.Fatalf("lab.sh put the hosts in racks %v; want hosts 1-2 in rack 1, 3-4 in rack 2", rack)
	}
	ns := bgpTorRouter(t, 2)
	for _, h := range hosts {
		other := 3 - rack[h]
		for _, args := range [][]string{
			{"ip", "route", "add", fmt.Sprintf("172.31.%d.0/24", other), "via", fmt.Sprintf("172.31.%d.254", rack[h])},
			{"ip", "-6", "route", "add", fmt.Sprintf("fd00:31:%d::/64", other), "via", fmt.Sprintf("fd00:31:%d::254", rack[h])},
		} {
			if out, err := lab.Exec(h, args...); err != nil {
				t.Fatalf("%s: %s: %v\n%s", h, strings.Join(args, " "), err, out)
			}
		}
	}
	for _, dst := range []string{"172.31.1.11", "fd00:31:1::11"} {
		bgpWaitFor(t, 20*time.Second, 100*time.Millisecond, "host3 reaching "+dst+" through the tor", func() (bool, string) {
			out, err := lab.Exec("host3", "ping", "-c", "1", "-W", "1", dst)
			return err == nil, out
		})
	}

	args := []string{"-as", "64512", "-router-id", "172.31.1.254",
		"-listen", "172.31.1.254,172.31.2.254,fd00:31:1::254,fd00:31:2::254",
		"-clients", "172.31.1.11,172.31.1.12,172.31.2.13,172.31.2.14,fd00:31:1::11,fd00:31:1::12,fd00:31:2::13,fd00:31:2::14"}
	selfAcross := []string{"-rack", "172.31.1.0/24,fd00:31:1::/64", "-rack", "172.31.2.0/24,fd00:31:2::/64"}
	bin := bgpBuildTor(t)
	tr := bgpStartTor(t, bin, ns, append(slices.Clone(args), selfAcross...)...)

	// The mesh goes off and the peers go in before any other host joins,
	// so no host ever meshes across the racks.
	lab.Start("host1", bgpPools...)
	var peers strings.Builder
	peers.WriteString("apiVersion: projectcalico.org/v3\nkind: BGPConfiguration\nmetadata: {name: default}\nspec: {nodeToNodeMeshEnabled: false}\n")
	for r := 1; r <= 2; r++ {
		for _, ip := range []string{fmt.Sprintf("172.31.%d.254", r), fmt.Sprintf("fd00:31:%d::254", r)} {
			name := fmt.Sprintf("tor-rack%d-v4", r)
			if strings.Contains(ip, ":") {
				name = fmt.Sprintf("tor-rack%d-v6", r)
			}
			fmt.Fprintf(&peers, "---\napiVersion: projectcalico.org/v3\nkind: BGPPeer\nmetadata: {name: %s}\nspec: {nodeSelector: \"rack == '%d'\", peerIP: %q, asNumber: 64512}\n", name, r, ip)
		}
	}
	bgpApply(t, lab, "host1", peers.String())
	join := []string{"--join", lab.Addr("host1"), "--token", lab.Token("host1")}
	for _, h := range hosts[1:] {
		lab.Start(h, join...)
	}
	for _, h := range hosts {
		bgpLabelNode(t, lab, "host1", h, "rack", fmt.Sprint(rack[h]))
	}

	r1 := lab.AddWorkload("host1", "bg-r1", "--profile", "a")
	r2 := lab.AddWorkload("host2", "bg-r2", "--profile", "a")
	r4 := lab.AddWorkload("host4", "bg-r4", "--profile", "a")
	b3 := lab.AddWorkload("host3", "bg-rb3", "--profile", "b")
	matrix := []Expect{
		{r1, r4.v4(), true}, {r4, r1.v4(), true}, {r1, r4.v6(), true}, {r4, r1.v6(), true},
		{r2, r4.v4(), true}, {r1, r2.v4(), true},
		{b3, r1.v4(), false}, {r1, b3.v4(), false}, {b3, r4.v6(), false},
	}

	t.Run("next hop self across racks", func(t *testing.T) {
		start := time.Now()
		CheckMatrix(t, matrix, 45*time.Second)
		t.Logf("matrix across the racks checked in %s", time.Since(start).Round(time.Millisecond))
		// Rack 1 reaches rack 2 through the tor, and its own rack
		// directly (the tor reflects those routes unchanged): proof that
		// the routes came from the reflector, not a mesh.
		tor1 := netip.MustParseAddr("172.31.1.254")
		if r, err := bgpRouteTo("host1", netip.MustParseAddr(r4.v4())); err != nil || r == nil || !bgpRouteVia(*r, tor1) {
			t.Errorf("host1's route to %s is %v (%v); want one via the tor %s\n%s", r4.v4(), r, err, tor1, bgpShowRoutes(lab, "host1"))
		}
		if r, err := bgpRouteTo("host1", netip.MustParseAddr(r2.v4())); err != nil || r == nil || !bgpRouteVia(*r, netip.MustParseAddr("172.31.1.12")) {
			t.Errorf("host1's route to %s is %v (%v); want one via host2\n%s", r2.v4(), r, err, bgpShowRoutes(lab, "host1"))
		}
		if t.Failed() {
			for _, h := range hosts {
				t.Logf("%s's routes:\n%s", h, bgpShowRoutes(lab, h))
			}
		}
	})

	// A route reflector passes next hops on unchanged (RFC 4456): rack 1
	// learns rack 2's blocks with rack 2's hosts as next hops, which it
	// reaches through its route to rack 2's subnet. Calico (BIRD's
	// "gateway recursive") resolves such next hops.
	t.Run("next hop unchanged across racks", func(t *testing.T) {
		// The tor closes its sessions with a notification: the hosts
		// drop what it sent them.
		tr.stop()
		want := map[string][]string{"host1": r4.Addresses, "host4": r1.Addresses}
		bgpWaitFor(t, 15*time.Second, 100*time.Millisecond, "the racks to drop each other's routes with the tor gone", func() (bool, string) {
			for h, addrs := range want {
				for _, a := range addrs {
					if r, err := bgpRouteTo(h, netip.MustParseAddr(a)); err != nil || r != nil {
						return false, fmt.Sprintf("%s: %v %v", h, r, err)
					}
				}
			}
			return true, ""
		})
		tr = bgpStartTor(t, bin, ns, args...)
		start := time.Now()
		// The hosts reconnect to the new tor within their connect retry
		// (5s); then each rack must route the other's workloads.
		var missing []string
		for time.Since(start) < 20*time.Second {
			missing = missing[:0]
			for _, h := range []string{"host1", "host4"} {
				for _, a := range want[h] {
					if r, err := bgpRouteTo(h, netip.MustParseAddr(a)); err != nil || r == nil {
						missing = append(missing, h+" has no route to "+a)
					}
				}
			}
			if len(missing) == 0 {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		if len(missing) > 0 {
			t.Errorf("%s after the tor came back: %s\nhost1's routes:\n%shost1's last warning:\n%s",
				time.Since(start).Round(time.Millisecond), strings.Join(missing, "; "), bgpShowRoutes(lab, "host1"), bgpGrepTail(lab.Log("host1"), "WARN", 1))
		} else {
			CheckMatrix(t, matrix, 10*time.Second)
			t.Logf("matrix across the racks checked %s after the tor restarted", time.Since(start).Round(time.Millisecond))
		}
		// Whatever other routes fail to program, `workload add` waits
		// for the new workload's own dataplane only.
		t0 := time.Now()
		out, errs, err := lab.Calico("host1", "workload", "add", "bg-r5", "--profile", "a", "-o", "json")
		took := time.Since(t0)
		var w struct {
			Programmed bool `json:"programmed"`
		}
		if err != nil || json.Unmarshal([]byte(out), &w) != nil || !w.Programmed || took > 5*time.Second {
			t.Errorf("workload add bg-r5 on host1 took %s: %v, %s%s", took.Round(time.Millisecond), err, out, errs)
		}
	})
}

// bgpGrepTail is the last n lines of s that contain pattern.
func bgpGrepTail(s, pattern string, n int) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, pattern) {
			out = append(out, l)
		}
	}
	if len(out) > n {
		out = out[len(out)-n:]
	}
	return strings.Join(out, "\n")
}
