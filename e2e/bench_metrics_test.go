package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestBenchMetricsCost measures what --metrics-addr costs a node
// (CALICO_BENCH=1): the CPU and RSS of the three nodes of the policy
// benchmark's lab (1,000 endpoints and 500 policies a host), idle and
// while policy changes are programmed, without metrics and with them,
// twice each in turn, a Prometheus scraping every node every 15 s
// (Prometheus's default). Each measure starts from a restart of every
// node, so all measure nodes of the same age.
func TestBenchMetricsCost(t *testing.T) {
	if os.Getenv("CALICO_BENCH") != "1" {
		t.Skip("a benchmark: set CALICO_BENCH=1 (scripts/bench.sh does)")
	}
	needTools(t, "prometheus")
	const (
		perHost = 1000
		changes = 30
		idle    = 60 * time.Second
	)
	hosts := []string{"host1", "host2", "host3"}
	lab, servers, clients, _ := policyLab(t, hosts, perHost)
	type result struct{ idleCPU, loadCPU, idleRSS, loadRSS []float64 }
	measure := func(extra ...string) result {
		for _, h := range hosts {
			lab.Stop(h)
		}
		for _, h := range hosts {
			lab.Start(h, append([]string{"--log-level", "debug"}, extra...)...)
		}
		for _, h := range hosts {
			waitProgrammed(t, lab, h, perHost, 500, 3*time.Minute)
		}
		time.Sleep(10 * time.Second) // settle: BGP, the first scrapes
		var r result
		before := cpuOf(t, lab, hosts)
		time.Sleep(idle)
		r.idleCPU = cpuShare(before, cpuOf(t, lab, hosts))
		r.idleRSS = rssOf(t, lab, hosts)
		before = cpuOf(t, lab, hosts)
		measureToggles(t, lab, hosts, servers, clients, changes, probeEvery)
		r.loadCPU = cpuShare(before, cpuOf(t, lab, hosts))
		r.loadRSS = rssOf(t, lab, hosts)
		return r
	}
	var targets []string
	for _, h := range hosts {
		targets = append(targets, lab.Addr(h)+":9091")
	}
	promStart := time.Now()
	prom := StartPrometheusEvery(t, "host1", targets, "15s")
	// Without, with, without, with: each configuration twice, so that a
	// drift of the machine over the run does not favour one.
	var without, with result
	for range 2 {
		for _, c := range []struct {
			into *result
			args []string
		}{{&without, nil}, {&with, []string{"--metrics-addr", ":9091"}}} {
			r := measure(c.args...)
			c.into.idleCPU, c.into.loadCPU = append(c.into.idleCPU, r.idleCPU...), append(c.into.loadCPU, r.loadCPU...)
			c.into.idleRSS, c.into.loadRSS = append(c.into.idleRSS, r.idleRSS...), append(c.into.loadRSS, r.loadRSS...)
		}
	}
	scrape, _ := prom.Value(t, `avg(scrape_duration_seconds)`) // the last scrapes: of nodes with metrics
	series, _ := prom.Value(t, `avg(scrape_samples_scraped)`)
	t.Logf("Prometheus ran %s", time.Since(promStart).Round(time.Second))

	med := func(xs []float64) float64 { s := slices.Sorted(slices.Values(xs)); return s[len(s)/2] }
	pct := func(xs []float64) string { return fmt.Sprintf("%.2f%% (%s)", med(xs), joinf(xs, "%.2f")) }
	mib := func(xs []float64) string { return fmt.Sprintf("%.1f MiB (%s)", med(xs), joinf(xs, "%.1f")) }
	writeReport(t, []string{
		"## Cost of metrics (issue 15)",
		"",
		fmt.Sprintf("The policy benchmark's lab (three hosts, %d endpoints and 500 policies each), measured four times in one", perHost),
		"run: every node restarted without `--metrics-addr`, then every node restarted with it, then again without",
		"and with; a Prometheus (in host1's namespace) scrapes the three every 15 s, its default, throughout.",
		fmt.Sprintf("Idle is %s with nothing changing;", idle),
		fmt.Sprintf("load is %d policy changes programmed on all three hosts (the latency benchmark's toggles).", changes),
		"CPU is the node process's user+system time over the window, in % of one core; RSS at the",
		"window's end. Median of the six samples of each (three nodes, twice; each in brackets: host1 to host3, then again).",
		"Goal: metrics cost under 2% CPU and under 10 MiB.",
		"",
		"| measure | without metrics | with metrics, scraped every 15 s | difference (medians) |",
		"| --- | --- | --- | --- |",
		fmt.Sprintf("| CPU, idle | %s | %s | %+.2f points |", pct(without.idleCPU), pct(with.idleCPU), med(with.idleCPU)-med(without.idleCPU)),
		fmt.Sprintf("| CPU, under policy changes | %s | %s | %+.2f points |", pct(without.loadCPU), pct(with.loadCPU), med(with.loadCPU)-med(without.loadCPU)),
		fmt.Sprintf("| RSS, idle | %s | %s | %+.1f MiB |", mib(without.idleRSS), mib(with.idleRSS), med(with.idleRSS)-med(without.idleRSS)),
		fmt.Sprintf("| RSS, after the changes | %s | %s | %+.1f MiB |", mib(without.loadRSS), mib(with.loadRSS), med(with.loadRSS)-med(without.loadRSS)),
		fmt.Sprintf("| one scrape (the last of each node, mean; Prometheus's scrape_duration_seconds) | | %.1f ms | |", scrape*1000),
		fmt.Sprintf("| samples in one scrape, mean | | %.0f | |", series),
	})
}

func joinf(xs []float64, format string) string {
	parts := make([]string, len(xs))
	for i, x := range xs {
		parts[i] = fmt.Sprintf(format, x)
	}
	return strings.Join(parts, ", ")
}

// cpuSample is the nodes' CPU time (user+system) at one moment.
type cpuSample struct {
	at    time.Time
	ticks []float64
}

func cpuOf(t *testing.T, lab *Lab, hosts []string) cpuSample {
	s := cpuSample{at: time.Now()}
	for _, h := range hosts {
		pid, err := lab.pid(h)
		if err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
		if err != nil {
			t.Fatal(err)
		}
		// The fields after the command's closing parenthesis: utime and
		// stime are the 12th and 13th of them.
		f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
		ut, _ := strconv.ParseFloat(f[11], 64)
		st, _ := strconv.ParseFloat(f[12], 64)
		s.ticks = append(s.ticks, ut+st)
	}
	return s
}

// cpuShare is each node's CPU use between two samples, in % of a core
// (the kernel counts 100 ticks a second).
func cpuShare(a, b cpuSample) []float64 {
	wall := b.at.Sub(a.at).Seconds()
	out := make([]float64, len(a.ticks))
	for i := range a.ticks {
		out[i] = (b.ticks[i] - a.ticks[i]) / 100 / wall * 100
	}
	return out
}

func rssOf(t *testing.T, lab *Lab, hosts []string) []float64 {
	var out []float64
	for _, h := range hosts {
		out = append(out, float64(nodeRSS(t, lab, h))/(1<<20))
	}
	return out
}
