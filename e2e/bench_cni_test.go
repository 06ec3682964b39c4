package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"sync"
	"testing"
	"time"

	"calico/internal/testutil"

	current "github.com/containernetworking/cni/pkg/types/100"
)

// TestBenchCNI measures the CNI plugin as a runtime sees it, from the
// exec of the plugin to its result (CALICO_BENCH=1; scripts/bench.sh runs
// it): 200 ADDs one after another and their DELs, 50 ADDs at once, and
// Debian's bridge plugin with host-local IPAM for the same containers.
func TestBenchCNI(t *testing.T) {
	if os.Getenv("CALICO_BENCH") != "1" {
		t.Skip("a benchmark: set CALICO_BENCH=1 (scripts/bench.sh does)")
	}
	const n, par = 200, 50
	lab := NewLab(t, 1, 1)
	lab.Start("host1", "--pool", "10.65.0.0/16", "--pool", "fd00:65::/48")
	e := newCNIEnv(t, lab)
	stdin := pluginConf("benchnet", "1.0.0", e.calicoConf("host1", nil))
	netns := make([]string, n+par)
	for i := range netns {
		netns[i] = e.container()
	}
	timed := func(r pluginRun) (time.Duration, []byte) {
		start := time.Now()
		out, cerr := e.run(r)
		d := time.Since(start)
		if cerr != nil {
			t.Fatalf("%s %s: %v", r.Command, r.ContainerID, cerr)
		}
		return d, out
	}
	add, del := make([]time.Duration, n), make([]time.Duration, n)
	e.in(t, "host1", func() error {
		for i := range n {
			add[i], _ = timed(pluginRun{Command: "ADD", ContainerID: fmt.Sprintf("bench-%03d", i), NetNS: netns[i], Stdin: stdin})
		}
		for i := range n {
			del[i], _ = timed(pluginRun{Command: "DEL", ContainerID: fmt.Sprintf("bench-%03d", i), NetNS: netns[i], Stdin: stdin})
		}
		return nil
	})

	// 50 at once, each from a thread of its own in the host's namespace.
	parAdd := make([]time.Duration, par)
	addrs := make([][]string, par)
	var wg sync.WaitGroup
	host := testutil.OpenNetNS(t, hostNS("host1"))
	start := make(chan struct{})
	for i := range par {
		wg.Go(func() {
			host.Do(func() error {
				<-start
				d, out := timed(pluginRun{Command: "ADD", ContainerID: fmt.Sprintf("par-%02d", i), NetNS: netns[n+i], Stdin: stdin})
				parAdd[i] = d
				var r current.Result
				json.Unmarshal(out, &r)
				for _, ip := range r.IPs {
					addrs[i] = append(addrs[i], ip.Address.IP.String())
				}
				return nil
			})
		})
	}
	close(start)
	wg.Wait()
	seen, dups, got := map[string]bool{}, 0, 0
	for _, as := range addrs {
		if len(as) > 0 {
			got++
		}
		for _, a := range as {
			dups += map[bool]int{true: 1}[seen[a]]
			seen[a] = true
		}
	}
	if got != par || dups > 0 {
		t.Errorf("%d of %d parallel ADDs got addresses; %d duplicate addresses", got, par, dups)
	}
	e.in(t, "host1", func() error {
		for i := range par {
			timed(pluginRun{Command: "DEL", ContainerID: fmt.Sprintf("par-%02d", i), NetNS: netns[n+i], Stdin: stdin})
		}
		return nil
	})
	ipamClean(t, lab, "host1")

	// The reference plugins for the same containers (interface eth1).
	e.needRef("bridge", "host-local")
	ref := pluginConf("refnet", "1.0.0", map[string]any{"type": "bridge", "bridge": "cnibench0", "isGateway": true, "ipMasq": false,
		"ipam": map[string]any{"type": "host-local", "dataDir": t.TempDir(), "ranges": [][]map[string]string{{{"subnet": "10.99.0.0/16"}}}}})
	refAdd, refDel := make([]time.Duration, n), make([]time.Duration, n)
	e.in(t, "host1", func() error {
		for i := range n {
			refAdd[i], _ = timed(pluginRun{Plugin: "bridge", Command: "ADD", ContainerID: fmt.Sprintf("bench-%03d", i), NetNS: netns[i], IfName: "eth1", Stdin: ref})
		}
		for i := range n {
			refDel[i], _ = timed(pluginRun{Plugin: "bridge", Command: "DEL", ContainerID: fmt.Sprintf("bench-%03d", i), NetNS: netns[i], IfName: "eth1", Stdin: ref})
		}
		return nil
	})
	lab.Exec("host1", "ip", "link", "del", "cnibench0")

	pct := func(d []time.Duration, p float64) time.Duration {
		s := slices.Sorted(slices.Values(d))
		return s[int(p*float64(len(s)-1))]
	}
	median := func(d []time.Duration) time.Duration { return pct(d, 0.5) }
	growth := func(d []time.Duration) string {
		return fmt.Sprintf("%s / %s = %.2f", ms(median(d[n-20:])), ms(median(d[:20])), float64(median(d[n-20:]))/float64(median(d[:20])))
	}
	writeReport(t, []string{
		"## CNI (issue 12)",
		"",
		"One lab host; the plugin exec'd as a runtime does (config on stdin, CNI_* in the",
		"environment), each run timed from the exec to its exit with the result. calico's",
		"ADD returns once the node has wired the container (IPv4 and IPv6 address, veth,",
		"endpoint) and programmed the dataplane for it. Goals: ADD p50 <= 25 ms, p99 <=",
		"100 ms, the 200th no slower than the 10th by more than 20%; DEL likewise.",
		"",
		"| measure | calico | bridge + host-local (Debian 1.1.1) |",
		"| --- | --- | --- |",
		fmt.Sprintf("| ADD, %d one after another: p50 / p99 / max | %s / %s / %s | %s / %s / %s |", n,
			ms(median(add)), ms(pct(add, 0.99)), ms(pct(add, 1)), ms(median(refAdd)), ms(pct(refAdd, 0.99)), ms(pct(refAdd, 1))),
		fmt.Sprintf("| ADD: 10th / 200th | %s / %s | %s / %s |", ms(add[9]), ms(add[n-1]), ms(refAdd[9]), ms(refAdd[n-1])),
		fmt.Sprintf("| ADD: median of the last 20 / of the first 20 | %s | %s |", growth(add), growth(refAdd)),
		fmt.Sprintf("| DEL, %d one after another: p50 / p99 / max | %s / %s / %s | %s / %s / %s |", n,
			ms(median(del)), ms(pct(del, 0.99)), ms(pct(del, 1)), ms(median(refDel)), ms(pct(refDel, 0.99)), ms(pct(refDel, 1))),
		fmt.Sprintf("| DEL: 10th / 200th | %s / %s | %s / %s |", ms(del[9]), ms(del[n-1]), ms(refDel[9]), ms(refDel[n-1])),
		fmt.Sprintf("| DEL: median of the last 20 / of the first 20 | %s | %s |", growth(del), growth(refDel)),
		fmt.Sprintf("| %d ADDs at once: succeeded, p50 / p99 / max | %d, %s / %s / %s | |", par, got,
			ms(median(parAdd)), ms(pct(parAdd, 0.99)), ms(pct(parAdd, 1))),
		fmt.Sprintf("| %d ADDs at once: duplicate addresses | %d | |", par, dups),
	})
}
