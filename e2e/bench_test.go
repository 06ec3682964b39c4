package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"calico/node/api"
)

// TestBenchWorkloadAdd measures adding 200 workloads one after another on
// one lab host (CALICO_BENCH=1; scripts/bench.sh runs it). Each add is
// timed at the node's API, from request to the reply that the dataplane is
// programmed for it; the CLI's process start is measured apart.
func TestBenchWorkloadAdd(t *testing.T) {
	if os.Getenv("CALICO_BENCH") != "1" {
		t.Skip("a benchmark: set CALICO_BENCH=1 (scripts/bench.sh does)")
	}
	const n = 200
	lab := NewLab(t, 1, 1)
	lab.Start("host1", "--pool", "10.65.0.0/16", "--pool", "fd00:65::/48")
	client := api.NewClient(filepath.Join(lab.dir, "host1"))
	ctx := context.Background()

	took := make([]time.Duration, n)
	for i := range n {
		req := api.WorkloadAdd{Name: fmt.Sprintf("bench-%03d", i), Profiles: []string{"bench"}}
		start := time.Now()
		var w api.Workload
		if err := client.Do(ctx, "POST", "/v1/workloads", nil, req, &w); err != nil {
			t.Fatalf("add %d: %v", i, err)
		}
		took[i] = time.Since(start)
		if w.Programmed == nil || !*w.Programmed {
			t.Fatalf("add %d returned before the dataplane was programmed", i)
		}
	}
	// The CLI's own cost: a process start and one request.
	cli := make([]time.Duration, 10)
	for i := range cli {
		start := time.Now()
		if out, err := exec.Command(calicoBin, "version").CombinedOutput(); err != nil {
			t.Fatalf("calico version: %v %s", err, out)
		}
		cli[i] = time.Since(start)
	}
	rss := nodeRSS(t, lab, "host1")

	sorted := slices.Sorted(slices.Values(took))
	pct := func(p float64) time.Duration { return sorted[int(p*float64(n-1))] }
	median := func(d []time.Duration) time.Duration { s := slices.Sorted(slices.Values(d)); return s[len(s)/2] }
	first, last := median(took[:20]), median(took[n-20:])
	out := []string{
		"## Adding workloads (issue 2)",
		"",
		"One lab host; workloads added one after another through the node's API,",
		"each timed from the request to the reply, which comes once the dataplane",
		"(routes and nftables) is programmed for the workload. Goal: p50 <= 20 ms,",
		"p99 <= 100 ms, no growth with the number of workloads. Calico's own network",
		"setup is about 15 ms per workload.",
		"",
		"| measure | result |",
		"| --- | --- |",
		fmt.Sprintf("| adds | %d, one after another, each with an IPv4 and an IPv6 address, one profile |", n),
		fmt.Sprintf("| per add, p50 | %s |", ms(pct(0.50))),
		fmt.Sprintf("| per add, p99 | %s |", ms(pct(0.99))),
		fmt.Sprintf("| per add, max | %s |", ms(sorted[n-1])),
		fmt.Sprintf("| 10th add / 200th add | %s / %s |", ms(took[9]), ms(took[n-1])),
		fmt.Sprintf("| median of adds 181-200 / median of adds 1-20 | %s / %s = %.2f |", ms(last), ms(first), float64(last)/float64(first)),
		fmt.Sprintf("| `calico version` (process start + nothing), median of 10 | %s |", ms(median(cli))),
		fmt.Sprintf("| node RSS after %d workloads | %.1f MiB |", n, float64(rss)/(1<<20)),
	}
	writeReport(t, out)
}

// writeReport logs a benchmark's section of docs/bench.md and appends it
// to $CALICO_BENCH_OUT.
func writeReport(t *testing.T, lines []string) {
	report := strings.Join(lines, "\n") + "\n\n"
	t.Log("\n" + report)
	f := os.Getenv("CALICO_BENCH_OUT")
	if f == "" {
		return
	}
	out, err := os.OpenFile(f, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	if _, err := out.WriteString(report); err != nil {
		t.Fatal(err)
	}
}

func ms(d time.Duration) string { return fmt.Sprintf("%.1f ms", float64(d.Microseconds())/1000) }

// nodeRSS reads the resident memory of host's node process.
func nodeRSS(t *testing.T, lab *Lab, host string) int64 {
	t.Helper()
	pid, err := os.ReadFile(filepath.Join(lab.dir, host+".pid"))
	if err != nil {
		t.Fatal(err)
	}
	status, err := os.ReadFile("/proc/" + strings.TrimSpace(string(pid)) + "/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(status), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			var kb int64
			fmt.Sscanf(strings.TrimSpace(v), "%d", &kb)
			return kb << 10
		}
	}
	t.Fatal("no VmRSS")
	return 0
}
