package e2e

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"calico/store"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// TestBenchPolicyPacket measures what policy costs each packet
// (CALICO_BENCH=1): TCP round trips on one connection, and new
// connections, between two workloads on a host whose table holds 10,000
// policy rules and sets of 100,000 and more addresses, against the same
// between two workloads on a host with no policy at all. Runs alternate
// between the two hosts, and each round's pair of runs is compared.
func TestBenchPolicyPacket(t *testing.T) {
	if os.Getenv("CALICO_BENCH") != "1" {
		t.Skip("a benchmark: set CALICO_BENCH=1 (scripts/bench.sh does)")
	}
	const (
		remote  = 100_000 // endpoints on other nodes, all in one set
		rounds  = 30
		seconds = "0.5"
	)
	// Two hosts, each founding a cluster of its own: host1 is loaded,
	// host2 holds nothing but its two workloads.
	lab := NewLab(t, 2, 1)
	for _, h := range []string{"host1", "host2"} {
		lab.Start(h, "--pool", "10.65.0.0/16", "--pool", "fd00:65::/48")
	}
	cli := labEtcd(t, lab, "host1")
	// Workload names are namespace names, unique on the machine.
	pair := func(h string) (server, client Workload) {
		server = lab.AddWorkload(h, "rr-server-"+h, "--profile", "rr", "--label", "app=rr-server", "--label", "tier=backend")
		client = lab.AddWorkload(h, "rr-client-"+h, "--profile", "rr", "--label", "app=rr-client", "--label", "tier=frontend")
		cmd := exec.Command("nsenter", "--net="+server.NetNS, probeBin, "rrserve", "9000")
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		lab.mu.Lock()
		lab.probes = append(lab.probes, cmd)
		lab.mu.Unlock()
		return server, client
	}
	loadedServer, loadedClient := pair("host1")
	emptyServer, emptyClient := pair("host2")

	// host1: 50 more local endpoints for 500 policies of 20 rules to
	// select, the policies in the pair's path, then the remote endpoints.
	var eps []benchEndpoint
	for i := range 50 {
		eps = append(eps, benchEndpoint{Workload: fmt.Sprintf("fill-%02d", i), Namespace: "default",
			Labels: map[string]string{"filler": fmt.Sprintf("f%d", i)}, Profiles: []string{"rr"}})
	}
	addBulkEndpoints(t, lab, cli, "host1", eps)
	calicoApply(t, lab, "host1", listDoc(append(pathPolicies(), fillerPolicies()...)))
	loadStart := time.Now()
	putRemoteEndpoints(t, cli, remote)
	var counts tableCounts
	eventually(t, 5*time.Minute, "host1's table holding the set of every frontend", func() bool {
		var err error
		counts, err = readTable("host1")
		return err == nil && counts.Largest > remote
	})
	load := time.Since(loadStart)
	st := waitProgrammed(t, lab, "host1", 52, 500, time.Minute)
	empty, err := readTable("host2")
	if err != nil {
		t.Fatal(err)
	}

	// The nodes' own work while idle (periodic resyncs): on a machine of
	// two cores it would weigh on whichever run it falls in. The runs are
	// made with both nodes stopped: the dataplane stays as programmed.
	cpu1, cpu2 := nodeCPU(t, lab, "host1"), nodeCPU(t, lab, "host2")
	time.Sleep(20 * time.Second)
	idle1, idle2 := nodeCPU(t, lab, "host1")-cpu1, nodeCPU(t, lab, "host2")-cpu2
	lab.Stop("host1")
	lab.Stop("host2")

	// Alternate loaded and empty, swapping which goes first every round.
	run := func(mode string, from Workload, to Workload) float64 {
		out, err := exec.Command("nsenter", "--net="+from.NetNS, probeBin, mode, to.v4(), "9000", seconds).CombinedOutput()
		if err != nil {
			t.Fatalf("probe %s from %s: %v %s", mode, from.Name, err, out)
		}
		v, err := strconv.ParseFloat(strings.TrimSpace(string(out)), 64)
		if err != nil {
			t.Fatalf("probe %s printed %q", mode, out)
		}
		return v
	}
	results := map[string]map[bool][]float64{"rr": {}, "conns": {}}
	for r := range rounds {
		for _, mode := range []string{"rr", "conns"} {
			for _, loaded := range []bool{r%2 == 0, r%2 != 0} {
				from, to := emptyClient, emptyServer
				if loaded {
					from, to = loadedClient, loadedServer
				}
				results[mode][loaded] = append(results[mode][loaded], run(mode, from, to))
			}
		}
	}
	// Each round's two runs are next to each other in time, so their
	// ratio cancels the machine's slow drift; the ratio reported is the
	// median of the rounds' ratios.
	quartiles := func(v []float64) (q1, q2, q3 float64) {
		s := slices.Sorted(slices.Values(v))
		return s[len(s)/4], s[len(s)/2], s[3*len(s)/4]
	}
	row := func(mode, what string) string {
		var ratios []float64
		for i, l := range results[mode][true] {
			ratios = append(ratios, l/results[mode][false][i])
		}
		_, l, _ := quartiles(results[mode][true])
		_, e, _ := quartiles(results[mode][false])
		q1, q2, q3 := quartiles(ratios)
		return fmt.Sprintf("| %s | %.0f /s | %.0f /s | %.3f (%.3f-%.3f) |", what, l, e, q2, q1, q3)
	}
	writeReport(t, []string{
		"## Policy: per-packet cost (issue 5)",
		"",
		"Two lab hosts, each the only node of its own cluster, each with a client and a server",
		"workload (`workload add`). On the loaded host the server's ingress goes through three",
		"policies and the client's egress through three (a deny of some nets, a monitoring allow that",
		"does not match, then the allow), and the server's allow takes the client by a selector",
		fmt.Sprintf("(`tier == 'frontend'`) whose set holds %d addresses: %d WorkloadEndpoints of 100", remote+1, remote),
		"other nodes (written straight into etcd, 100 to a transaction, as `calico apply` would store",
		"them: applying 100,000 one by one through the API takes minutes, the agent recomputing all",
		"the while), and the client. The loaded host also has 50 more local endpoints and 500",
		"GlobalNetworkPolicies of 20 rules (10,000 rules), 5 of them by selectors over the remote",
		fmt.Sprintf("endpoints (10 sets of 10,000). Its table: %s; the largest set", counts),
		fmt.Sprintf("has %d elements; the agent reported %d endpoints, %d policy and profile chains, %d",
			counts.Largest, st.Dataplane.Endpoints, st.Dataplane.Policies, st.Dataplane.Sets),
		fmt.Sprintf("sets, and took %.0f s from the first remote endpoint written to the set in the kernel. The empty", load.Seconds()),
		fmt.Sprintf("host's table: %s (its two workloads and their profile).", empty),
		"",
		fmt.Sprintf("Each run is one client for %s s: `rr` keeps one connection and does 1-byte round trips", seconds),
		"(established packets are accepted before any policy), `conns` opens a new connection for each",
		"1-byte round trip and resets it (each SYN goes through the whole path). Loaded and empty runs",
		fmt.Sprintf("alternate, %d rounds of one each (which goes first alternates too). Both nodes are stopped during the runs (the dataplane", rounds),
		"stays as it is), so that only the kernel's work is compared: idle, the loaded node used",
		fmt.Sprintf("%.0f%% of a core (its periodic resync over 100,000 remote endpoints), the empty one %.0f%%,", 100*idle1.Seconds()/20, 100*idle2.Seconds()/20),
		"over 20 s. Goal: loaded / empty >= 0.95.",
		"",
		"| measure | loaded, median | empty, median | loaded / empty, median of the rounds (quartiles) |",
		"| --- | --- | --- | --- |",
		row("rr", "round trips on one connection"),
		row("conns", "new connections"),
	})
}

// nodeCPU is the processor time host's node has used so far.
func nodeCPU(t *testing.T, lab *Lab, host string) time.Duration {
	t.Helper()
	pid, err := lab.pid(host)
	if err != nil {
		t.Fatal(err)
	}
	return procCPU(t, pid)
}

// procCPU is the processor time process pid has used so far.
func procCPU(t *testing.T, pid int) time.Duration {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatal(err)
	}
	// Fields 14 and 15 (utime, stime, in clock ticks of 1/100 s) follow
	// the command name in parentheses.
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(utime+stime) * 10 * time.Millisecond
}

// pathPolicies are the policies of the measured pair: a deny of some
// nets for every tiered endpoint, a monitoring allow that never matches,
// and the allows between the tiers.
func pathPolicies() []string {
	gnp := func(name string, order float64, selector string, types []string, ingress, egress []any) string {
		spec := map[string]any{"order": order, "selector": selector, "types": types}
		if ingress != nil {
			spec["ingress"] = ingress
		}
		if egress != nil {
			spec["egress"] = egress
		}
		b, _ := json.Marshal(map[string]any{
			"apiVersion": "projectcalico.org/v3", "kind": "GlobalNetworkPolicy",
			"metadata": map[string]any{"name": name}, "spec": spec,
		})
		return string(b)
	}
	both := []string{"Ingress", "Egress"}
	return []string{
		gnp("deny-bad-nets", 10, "has(tier)", both,
			[]any{map[string]any{"action": "Deny", "source": map[string]any{"nets": []string{"198.51.100.0/24", "2001:db8:bad::/48"}}}},
			[]any{map[string]any{"action": "Deny", "destination": map[string]any{"nets": []string{"203.0.113.0/24"}}}}),
		gnp("monitoring", 20, "has(tier)", both,
			[]any{map[string]any{"action": "Allow", "protocol": "TCP", "source": map[string]any{"selector": "app == 'monitoring'"}, "destination": map[string]any{"ports": []int{9090}}}},
			[]any{map[string]any{"action": "Allow", "protocol": "UDP", "destination": map[string]any{"ports": []int{53}}}}),
		gnp("frontend-to-backend", 30, "tier == 'backend'", []string{"Ingress"},
			[]any{map[string]any{"action": "Allow", "protocol": "TCP", "source": map[string]any{"selector": "tier == 'frontend'"}, "destination": map[string]any{"ports": []int{8080, 9000}}}}, nil),
		gnp("frontend-egress", 30, "tier == 'frontend'", []string{"Egress"}, nil,
			[]any{map[string]any{"action": "Allow", "protocol": "TCP", "destination": map[string]any{"selector": "tier == 'backend'", "ports": []int{8080, 9000}}}}),
	}
}

// fillerPolicies are 500 GlobalNetworkPolicies of 20 rules (15 in, 5
// out), ten for each of the 50 filler endpoints; 6 rules of each name
// remote endpoints by selector.
func fillerPolicies() []string {
	var out []string
	for k := range 500 {
		var in, eg []any
		for j := range 10 {
			in = append(in, map[string]any{"action": "Allow", "protocol": "TCP",
				"source":      map[string]any{"nets": []string{fmt.Sprintf("10.200.%d.%d/28", k%250, j*16)}},
				"destination": map[string]any{"ports": []int{1000 + j}}})
		}
		for j := 10; j < 15; j++ {
			in = append(in, map[string]any{"action": "Allow", "protocol": "TCP",
				"source":      map[string]any{"selector": fmt.Sprintf("app == 'web-%d'", (k+j)%10)},
				"destination": map[string]any{"ports": []int{2000 + j}}})
		}
		eg = append(eg,
			map[string]any{"action": "Allow", "protocol": "UDP", "destination": map[string]any{"ports": []int{53}}},
			map[string]any{"action": "Allow", "protocol": "TCP", "destination": map[string]any{"nets": []string{fmt.Sprintf("10.201.%d.0/24", k%250)}, "ports": []int{443}}},
			map[string]any{"action": "Deny", "destination": map[string]any{"nets": []string{"169.254.0.0/16"}}},
			map[string]any{"action": "Allow", "protocol": "TCP", "destination": map[string]any{"selector": fmt.Sprintf("app == 'web-%d'", k%10), "ports": []int{80}}},
			map[string]any{"action": "Allow", "protocol": "ICMP"},
		)
		b, _ := json.Marshal(map[string]any{
			"apiVersion": "projectcalico.org/v3", "kind": "GlobalNetworkPolicy",
			"metadata": map[string]any{"name": fmt.Sprintf("fill-%03d", k)},
			"spec": map[string]any{"order": 1000 + k, "selector": fmt.Sprintf("filler == 'f%d'", k%50),
				"types": []string{"Ingress", "Egress"}, "ingress": in, "egress": eg},
		})
		out = append(out, string(b))
	}
	return out
}

// putRemoteEndpoints writes n WorkloadEndpoints of nodes remote-00 to
// remote-99 (1,000 each, tier=frontend, app=web-0 to web-9, addresses
// from 10.96.0.1 on) straight into etcd, 100 to a transaction, four
// transactions at a time.
func putRemoteEndpoints(t *testing.T, cli *clientv3.Client, n int) {
	t.Helper()
	const batch = 100
	base := binary.BigEndian.Uint32(netip.MustParseAddr("10.96.0.0").AsSlice())
	starts := make(chan int)
	var wg sync.WaitGroup
	put := func(first int) error {
		var ops []clientv3.Op
		for i := first; i < min(first+batch, n); i++ {
			var a [4]byte
			binary.BigEndian.PutUint32(a[:], base+uint32(i)+1)
			w := store.KindWorkloadEndpoint.New().(*store.WorkloadEndpoint)
			node, pod := fmt.Sprintf("remote-%02d", i/1000), fmt.Sprintf("web-%06d", i)
			w.Metadata = store.ObjectMeta{
				Name: wepName(node, "k8s", pod, "eth0"), Namespace: "big",
				UID: fmt.Sprintf("00000000-0000-4000-8000-%012d", i), CreationTimestamp: time.Now().UTC().Format(time.RFC3339),
				Labels: map[string]string{"tier": "frontend", "app": fmt.Sprintf("web-%d", i%10)},
			}
			w.Spec = store.WorkloadEndpointSpec{
				Orchestrator: "k8s", Workload: pod, Node: node, Endpoint: "eth0",
				InterfaceName: ifaceName(node, "big", pod), IPNetworks: []string{netip.AddrFrom4(a).String() + "/32"},
			}
			if err := store.Validate(w); err != nil {
				return fmt.Errorf("remote endpoint %d: %w", i, err)
			}
			val, err := json.Marshal(w)
			if err != nil {
				return err
			}
			ops = append(ops, clientv3.OpPut(store.Key(store.IDOf(w)), string(val)))
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := cli.Txn(ctx).Then(ops...).Commit(); err != nil {
			return fmt.Errorf("writing remote endpoints %d-%d: %w", first, first+len(ops)-1, err)
		}
		return nil
	}
	for range 4 {
		wg.Go(func() {
			for first := range starts {
				if err := put(first); err != nil {
					t.Error(err)
				}
			}
		})
	}
	for first := 0; first < n; first += batch {
		starts <- first
	}
	close(starts)
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
}
