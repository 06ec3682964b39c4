package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"calico/e2e/sim"
	"calico/node/api"
)

// A sim lab is a lab of real nodes (host1…hostN in rack 1: the first
// three are the etcd voters) and a simulation of many more hosts
// (e2e/calico-sim) in a namespace of its own on rack 1's bridge. The
// simulated hosts' addresses are in simSubnet, which sorts below the lab
// hosts' (so the real nodes only listen for their BGP sessions) and is
// on the real hosts' link (a route on eth0): routes via a simulated host
// go to it directly.
const (
	simSubnet = "172.30.0.0/16"
	simSrc    = "172.30.255.254" // the simulation's own address (etcd)
	simPool   = "10.64.0.0/12"
)

type simLab struct {
	*Lab
	t   *testing.T
	sim *sim.Client
	ns  string
	// real hosts are started; hosts is every lab host.
	real, hosts int
	simPid      int
}

var (
	simBuild    sync.Once
	simBin      string
	simBuildErr error
)

// newSimLab starts real nodes (host1 founds the cluster with pool simPool,
// the others join) and the simulation, with no simulated host yet; spare
// more lab hosts are made but not started. The mesh spans up to meshMax
// nodes (BGPConfiguration default's annotation).
func newSimLab(t *testing.T, real, spare, meshMax int) *simLab {
	t.Helper()
	simBuild.Do(func() {
		simBin = filepath.Join(filepath.Dir(probeBin), "calico-sim")
		out, err := exec.Command("go", "build", "-o", simBin, "./calico-sim").CombinedOutput()
		if err != nil {
			simBuildErr = fmt.Errorf("building calico-sim: %v\n%s", err, out)
		}
	})
	if simBuildErr != nil {
		t.Fatal(simBuildErr)
	}
	lab := NewLab(t, real+spare, 1)
	l := &simLab{Lab: lab, t: t, ns: labName() + "-sim", real: real, hosts: real + spare}
	lab.Start("host1", "--pool", simPool)
	token := lab.Token("host1")
	// host2 and host3 take the two other seats; the rest are clients.
	join := func(from, to int) {
		var wg sync.WaitGroup
		errs := make([]error, real+1)
		for i := from; i <= min(to, real); i++ {
			wg.Go(func() {
				host := fmt.Sprintf("host%d", i)
				errs[i] = lab.StartErr(host, "--join", lab.Addr("host1"), "--token", token)
				if errs[i] != nil && strings.Contains(errs[i].Error(), "cannot reach its join API") {
					// Seen once on a loaded machine: the first ARP of a
					// fresh lab went unanswered.
					time.Sleep(time.Second)
					errs[i] = lab.StartErr(host, "--join", lab.Addr("host1"), "--token", token)
				}
			})
		}
		wg.Wait()
		for _, err := range errs {
			if err != nil {
				t.Fatal(err)
			}
		}
	}
	join(2, 3)
	if real > 3 {
		waitFor(t, 60*time.Second, "three voters", func() (bool, string) {
			nodes, err := lab.Nodes("host1")
			voters := 0
			for _, n := range nodes {
				if n.Role == "voter" {
					voters++
				}
			}
			return err == nil && voters == 3, fmt.Sprint(nodes, err)
		})
		join(4, real)
	}
	l.setMeshMax(meshMax)
	l.wire()
	l.startSim()
	return l
}

// setMeshMax sets the largest cluster the mesh spans.
func (l *simLab) setMeshMax(n int) {
	l.t.Helper()
	f := filepath.Join(l.dir, "bgpconfig.yaml")
	os.WriteFile(f, []byte(fmt.Sprintf(`apiVersion: projectcalico.org/v3
kind: BGPConfiguration
metadata:
  name: default
  annotations: {projectcalico.org/node-mesh-max-nodes: "%d"}
spec: {}
`, n)), 0o644)
	l.MustCalico("host1", "apply", "-f", f)
}

// apply applies YAML through host1.
func (l *simLab) apply(yaml string) {
	l.t.Helper()
	f, err := os.CreateTemp(l.dir, "apply-*.yaml")
	if err != nil {
		l.t.Fatal(err)
	}
	f.WriteString(yaml)
	f.Close()
	l.MustCalico("host1", "apply", "-f", f.Name())
}

// wire makes the simulation's namespace: its eth0 on rack 1's bridge with
// its own address, a route to the lab hosts from it, and on every real
// host a route to the simulated hosts on its link.
func (l *simLab) wire() {
	l.t.Helper()
	fabric := labName() + "-fabric"
	run := func(args ...string) {
		l.t.Helper()
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			l.t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
		}
	}
	run("netns", "add", l.ns)
	l.t.Cleanup(func() { exec.Command("ip", "netns", "del", l.ns).Run() })
	run("-n", l.ns, "link", "set", "lo", "up")
	run("link", "add", "lab-sim", "netns", fabric, "type", "veth", "peer", "name", "eth0", "netns", l.ns)
	run("-n", fabric, "link", "set", "lab-sim", "master", "rack1", "up")
	run("-n", l.ns, "addr", "add", simSrc+"/16", "dev", "eth0")
	run("-n", l.ns, "link", "set", "eth0", "up")
	run("-n", l.ns, "route", "add", "172.31.1.0/24", "dev", "eth0", "src", simSrc)
	for i := 1; i <= l.hosts; i++ {
		ns := fmt.Sprintf("%s-host%d", labName(), i)
		// The simulated hosts' neighbour entries are pinned by
		// calico-sim (-pin): see there.
		run("-n", ns, "route", "add", simSubnet, "dev", "eth0")
	}
}

// startSim runs calico-sim in its namespace until the test ends.
func (l *simLab) startSim() {
	l.t.Helper()
	var eps []string
	for i := 1; i <= min(3, l.real); i++ {
		eps = append(eps, "https://"+l.Addr(fmt.Sprintf("host%d", i))+":2379")
	}
	sock := filepath.Join(l.dir, "sim.sock")
	logf, err := os.Create(filepath.Join(l.dir, "sim.log"))
	if err != nil {
		l.t.Fatal(err)
	}
	var pins []string
	for i := 1; i <= l.hosts; i++ {
		pins = append(pins, "/run/netns/"+hostNS(fmt.Sprintf("host%d", i)))
	}
	cmd := exec.Command("nsenter", "--net=/run/netns/"+l.ns, simBin, "-socket", sock, "-etcd", strings.Join(eps, ","),
		"-pki", filepath.Join(l.DataDir("host1"), "pki"), "-src", simSrc, "-subnet", simSubnet, "-pin", strings.Join(pins, ","))
	cmd.Stderr = logf
	stdout, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		l.t.Fatal(err)
	}
	l.simPid = cmd.Process.Pid // nsenter execs the simulation
	l.t.Cleanup(func() {
		cmd.Process.Signal(os.Interrupt)
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-done
		}
		logf.Close()
		if l.t.Failed() {
			b, _ := os.ReadFile(logf.Name())
			l.t.Logf("calico-sim's log:\n%s", tail(string(b), 40))
		}
	})
	ready := make(chan bool, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if strings.Contains(sc.Text(), "ready") {
				ready <- true
			}
		}
		ready <- false
	}()
	select {
	case ok := <-ready:
		if !ok {
			b, _ := os.ReadFile(logf.Name())
			l.t.Fatalf("calico-sim exited:\n%s", b)
		}
	case <-time.After(60 * time.Second):
		l.t.Fatal("calico-sim is not ready after 60s")
	}
	l.sim = sim.NewClient(sock)
}

// simDo calls the simulation's control API, for up to 30 minutes or
// until a minute before the test's deadline, whichever is later (a grow
// to 1,000 hosts takes longer than 30 minutes here).
func (l *simLab) simDo(method, path string, in, out any) {
	l.t.Helper()
	bound := 30 * time.Minute
	if d, ok := l.t.Deadline(); ok {
		bound = max(bound, time.Until(d)-time.Minute)
	}
	ctx, cancel := context.WithTimeout(context.Background(), bound)
	defer cancel()
	if err := l.sim.Do(ctx, method, path, in, out); err != nil {
		l.t.Fatal(err)
	}
}

func (l *simLab) simStats() sim.Stats {
	var st sim.Stats
	l.simDo("GET", "/stats", nil, &st)
	return st
}

// node is the local API of a real host's node.
func (l *simLab) node(host string) *api.Client { return api.NewClient(l.DataDir(host)) }

func (l *simLab) nodeGet(host, path string, out any) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return l.node(host).Do(ctx, "GET", path, nil, nil, out)
}

// kernelRoutes are host's routes of our protocol (80) in the kernel:
// destination -> next hops (none for a local route or a blackhole).
func (l *simLab) kernelRoutes(host string) (map[netip.Prefix][]netip.Addr, error) {
	out, err := l.Exec(host, "ip", "-j", "route", "show", "proto", "80")
	if err != nil {
		return nil, fmt.Errorf("ip route on %s: %v: %s", host, err, out)
	}
	var rs []struct {
		Dst      string `json:"dst"`
		Gateway  string `json:"gateway"`
		Nexthops []struct {
			Gateway string `json:"gateway"`
		} `json:"nexthops"`
	}
	if err := json.Unmarshal([]byte(out), &rs); err != nil {
		return nil, fmt.Errorf("ip route printed %q: %v", out, err)
	}
	m := map[netip.Prefix][]netip.Addr{}
	for _, r := range rs {
		dst, err := netip.ParsePrefix(r.Dst)
		if err != nil {
			a, err := netip.ParseAddr(r.Dst)
			if err != nil {
				continue
			}
			dst = netip.PrefixFrom(a, a.BitLen())
		}
		var via []netip.Addr
		for _, g := range append([]string{r.Gateway}, gateways(r.Nexthops)...) {
			if a, err := netip.ParseAddr(g); err == nil {
				via = append(via, a)
			}
		}
		slices.SortFunc(via, netip.Addr.Compare)
		m[dst] = via
	}
	return m, nil
}

func gateways(nhs []struct {
	Gateway string `json:"gateway"`
}) []string {
	var out []string
	for _, n := range nhs {
		out = append(out, n.Gateway)
	}
	return out
}

// expectedRoutes is what the datastore says host should route to the
// other hosts: each block affine to another host that is not dead, via
// that host's address.
func (l *simLab) expectedRoutes(host string, dead ...string) (map[netip.Prefix]netip.Addr, error) {
	var blocks []api.IPAMBlock
	if err := l.nodeGet(host, "/v1/ipam/blocks", &blocks); err != nil {
		return nil, err
	}
	addrs := map[string]netip.Addr{}
	var hosts []sim.HostInfo
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := l.sim.Do(ctx, "GET", "/hosts", nil, &hosts); err != nil {
		return nil, err
	}
	for _, h := range hosts {
		addrs[h.Name] = h.Addr
	}
	for i := 1; i <= l.hosts; i++ {
		addrs[fmt.Sprintf("host%d", i)] = netip.MustParseAddr(l.Addr(fmt.Sprintf("host%d", i)))
	}
	want := map[netip.Prefix]netip.Addr{}
	for _, b := range blocks {
		p, err := netip.ParsePrefix(b.CIDR)
		if err != nil || b.Affinity == "" || b.Affinity == host || slices.Contains(dead, b.Affinity) || !p.Addr().Is4() {
			continue
		}
		want[p] = addrs[b.Affinity]
	}
	return want, nil
}

// routesMatch compares host's kernel routes to other hosts' blocks with
// what the datastore says: it returns what differs.
func routesMatch(want map[netip.Prefix]netip.Addr, have map[netip.Prefix][]netip.Addr) []string {
	var diff []string
	for dst, via := range want {
		if got := have[dst]; !slices.Equal(got, []netip.Addr{via}) {
			diff = append(diff, fmt.Sprintf("%s via %s (kernel: %v)", dst, via, got))
		}
	}
	for dst, via := range have {
		if _, ok := want[dst]; !ok && len(via) > 0 && dst.Addr().Is4() && netip.MustParsePrefix(simPool).Contains(dst.Addr()) && dst.Bits() < 32 {
			diff = append(diff, fmt.Sprintf("%s via %v is not in the datastore", dst, via))
		}
	}
	slices.Sort(diff)
	return diff
}

// sessions are host's BGP sessions as its node reports them.
func (l *simLab) sessions(host string) ([]api.BGPSession, error) {
	var st api.Status
	if err := l.nodeGet(host, "/v1/status", &st); err != nil {
		return nil, err
	}
	return st.BGP, nil
}

// nftSets are host's nftables sets of table inet calico: name -> their
// elements (addresses, or prefixes as addr/len), sorted.
func (l *simLab) nftSets(host string) (map[string][]string, error) {
	out, err := l.Exec(host, "nft", "-j", "list", "sets", "inet")
	if err != nil {
		return nil, fmt.Errorf("nft on %s: %v: %s", host, err, out)
	}
	var doc struct {
		Nftables []struct {
			Set *struct {
				Name  string            `json:"name"`
				Table string            `json:"table"`
				Elem  []json.RawMessage `json:"elem"`
			} `json:"set"`
		} `json:"nftables"`
	}
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		return nil, err
	}
	sets := map[string][]string{}
	for _, o := range doc.Nftables {
		if o.Set == nil || o.Set.Table != "calico" {
			continue
		}
		var elems []string
		for _, e := range o.Set.Elem {
			var s string
			var p struct {
				Prefix struct {
					Addr string `json:"addr"`
					Len  int    `json:"len"`
				} `json:"prefix"`
			}
			switch {
			case json.Unmarshal(e, &s) == nil:
				elems = append(elems, s)
			case json.Unmarshal(e, &p) == nil && p.Prefix.Addr != "":
				elems = append(elems, fmt.Sprintf("%s/%d", p.Prefix.Addr, p.Prefix.Len))
			}
		}
		slices.Sort(elems)
		sets[o.Set.Name] = elems
	}
	return sets, nil
}

// appAddrs are the IPv4 addresses of every workload whose app label is
// app, as the datastore has them (host's node lists them).
func (l *simLab) appAddrs(host, app string) ([]string, error) {
	var ws []api.Workload
	if err := l.nodeGet(host, "/v1/workloads", &ws); err != nil {
		return nil, err
	}
	var out []string
	for _, w := range ws {
		if w.Labels["app"] != app {
			continue
		}
		for _, a := range w.Addresses {
			if a.Is4() {
				out = append(out, a.String())
			}
		}
	}
	slices.Sort(out)
	return out, nil
}
