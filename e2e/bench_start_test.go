package e2e

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestBenchProcessStart measures what every CLI command and CNI call pays
// before doing anything: the binary's process start (CALICO_BENCH=1;
// scripts/bench.sh runs it). Each command is run 200 times, the binaries
// taking turns: the calico under test, those in CALICO_BENCH_BASELINE if
// set (paths separated by colons, each shown by its file name: builds of
// an older commit or of other dependencies, to compare under the same
// load), and an empty static Go program, the floor of a Go process on
// this machine. Package initialisation is summed from GODEBUG=inittrace=1 in
// separate runs (the trace costs time of its own).
func TestBenchProcessStart(t *testing.T) {
	if os.Getenv("CALICO_BENCH") != "1" {
		t.Skip("a benchmark: set CALICO_BENCH=1 (scripts/bench.sh does)")
	}
	const n, traced = 200, 100
	bins := []startBin{{name: "calico", path: calicoBin}}
	// make's calico embeds the full build, which calico up runs: it is
	// what every command started before the split.
	full := filepath.Join(repoRoot, "internal", "nodebin", "calico-node")
	if _, err := os.Stat(full); err != nil {
		t.Fatalf("no full build at %s (make calico writes it): %v", full, err)
	}
	bins = append(bins, startBin{name: "calico's full build", path: full})
	for _, other := range filepath.SplitList(os.Getenv("CALICO_BENCH_BASELINE")) {
		bins = append(bins, startBin{name: filepath.Base(other), path: other})
	}
	bins = append(bins, startBin{name: "empty Go program", path: buildEmptyProgram(t), empty: true})
	commands := []startCommand{
		{name: "`calico version`", args: []string{"version"}},
		{name: "`calico --help`", args: []string{"--help"}},
		{name: "CNI `VERSION` (CNI_COMMAND=VERSION)", env: []string{"CNI_COMMAND=VERSION"}, stdin: `{"cniVersion":"1.0.0"}`},
		// What the garbage collection during package init costs.
		{name: "`calico version` with GOGC=off", args: []string{"version"}, env: []string{"GOGC=off"}},
	}
	load0 := loadAverage()
	runs := map[[2]int][]startRun{}
	for range n {
		for c, cmd := range commands {
			for b, bin := range bins {
				runs[[2]int{c, b}] = append(runs[[2]int{c, b}], runStart(t, bin, cmd, ""))
			}
		}
	}
	inits := make([][]startRun, len(bins))
	for range traced {
		for b, bin := range bins {
			inits[b] = append(inits[b], runStart(t, bin, commands[0], "inittrace=1"))
		}
	}
	routes := []int{0, 1000, 10000}
	embedInit := make([][]startRun, len(routes))
	for i, r := range routes {
		embedInit[i] = startWithRoutes(t, full, r, 30)
	}
	load1 := loadAverage()

	out := []string{
		"## Process start (issue 18)",
		"",
		"What every CLI command and CNI call pays before it does anything: the exec of the binary",
		"until it exits, for commands that do not run the node. Each command ran " + strconv.Itoa(n) + " times, the",
		"binaries taking turns: " + binList(bins) + ". CPU is user+system time of the process,",
		"faults are its minor page faults, switches its context switches (voluntary and not; the",
		"last two hardly depend on the machine's load). Package initialisation is the sum of",
		fmt.Sprintf("`GODEBUG=inittrace=1`'s clock times over all packages, median of %d runs of `calico version`.", traced),
		"The last command runs with the collector off (GOGC=off): the difference is the cost of the garbage",
		"collection that package initialisation's allocations (about 4 MB, the first collection's goal) set off.",
		"Goal: <= 5 ms for a command that does not run the node.",
		"",
		"| command | binary | wall p50 / p90 | CPU p50 | faults p50 | switches p50 |",
		"| --- | --- | --- | --- | --- | --- |",
	}
	for c, cmd := range commands {
		for b, bin := range bins {
			r := runs[[2]int{c, b}]
			out = append(out, fmt.Sprintf("| %s | %s | %s / %s | %s | %d | %d |", cmd.name, bin.name,
				ms(startPct(r, 0.5, startWall)), ms(startPct(r, 0.9, startWall)), ms(startPct(r, 0.5, startCPU)),
				startPct(r, 0.5, func(r startRun) int64 { return r.faults }), startPct(r, 0.5, func(r startRun) int64 { return r.switches })))
		}
	}
	r, e := runs[[2]int{0, 0}], runs[[2]int{0, len(bins) - 1}]
	out = append(out, "", fmt.Sprintf("Of `calico version`'s wall p50 of %s, the empty Go program's start takes %s; package initialisation", ms(startPct(r, 0.5, startWall)), ms(startPct(e, 0.5, startWall))),
		fmt.Sprintf("%s (p50, below); the rest is the runtime's start of a %.0f MB binary (%d page faults more than the empty program's) and the collection.",
			ms(startPct(inits[0], 0.5, startInit)), float64(fileSize(t, calicoBin))/1e6, startPct(r, 0.5, func(r startRun) int64 { return r.faults })-startPct(e, 0.5, func(r startRun) int64 { return r.faults })))
	out = append(out, "", "| binary | size | package initialisation, p50 / p90 |", "| --- | --- | --- |")
	for b, bin := range bins {
		out = append(out, fmt.Sprintf("| %s | %.1f MB | %s / %s |", bin.name, float64(fileSize(t, bin.path))/1e6,
			ms(startPct(inits[b], 0.5, startInit)), ms(startPct(inits[b], 0.9, startInit))))
	}
	out = append(out, "", "`calico` is make's split build: the command line and the CNI plugin, linking none of etcd, GoBGP, gRPC,",
		"protobuf or Prometheus, with the full build embedded, which only `calico up` runs (internal/nodebin). The",
		"full build is what every command was before the split.")
	for b := range 2 {
		out = append(out, "", "Package initialisation of "+bins[b].name+" by group of packages, medians of the "+strconv.Itoa(traced)+" runs (each",
			"package's median, summed; the largest packages in brackets):", "")
		out = append(out, initGroups(inits[b])...)
	}
	out = append(out, "",
		"etcd's embed package, at its init, reads the routing table (netutil.GetDefaultHost, a netlink dump of",
		"every route) to pick a default advertise address, so every start of the full build pays per route of the",
		"host's: its `calico version` in a network namespace with blackhole routes added, 30 runs each:", "",
		"| routes in the namespace | go.etcd.io/etcd/server/v3/embed's init, p50 | package initialisation, p50 |", "| --- | --- | --- |")
	for i, r := range routes {
		embed := func(r startRun) time.Duration { return r.pkgInit["go.etcd.io/etcd/server/v3/embed"] }
		out = append(out, fmt.Sprintf("| %d | %s | %s |", r, ms(startPct(embedInit[i], 0.5, embed)), ms(startPct(embedInit[i], 0.5, startInit))))
	}
	out = append(out, "", fmt.Sprintf("The machine's load average (1 min) was %s before and %s after.", load0, load1))
	writeReport(t, out)
}

type startBin struct {
	name, path string
	empty      bool // takes no arguments: the floor
}

type startCommand struct {
	name  string
	args  []string
	env   []string
	stdin string
}

type startRun struct {
	wall, cpu, init  time.Duration
	faults, switches int64
	pkgInit          map[string]time.Duration
}

func startWall(r startRun) time.Duration { return r.wall }
func startCPU(r startRun) time.Duration  { return r.cpu }
func startInit(r startRun) time.Duration { return r.init }

// runStart runs bin once as cmd says; godebug, if set, is GODEBUG.
func runStart(t *testing.T, bin startBin, cmd startCommand, godebug string) startRun {
	t.Helper()
	args := cmd.args
	if bin.empty {
		args = nil
	}
	c := exec.Command(bin.path, args...)
	c.Env = append(os.Environ(), cmd.env...)
	if godebug != "" {
		c.Env = append(c.Env, "GODEBUG="+godebug)
	}
	c.Stdin = strings.NewReader(cmd.stdin)
	var stdout, stderr bytes.Buffer
	c.Stdout, c.Stderr = &stdout, &stderr
	start := time.Now()
	err := c.Run()
	wall := time.Since(start)
	if err != nil {
		t.Fatalf("%s %s: %v\n%s%s", bin.path, strings.Join(args, " "), err, stdout.Bytes(), stderr.Bytes())
	}
	ru := c.ProcessState.SysUsage().(*syscall.Rusage)
	r := startRun{
		wall:     wall,
		cpu:      c.ProcessState.UserTime() + c.ProcessState.SystemTime(),
		faults:   ru.Minflt + ru.Majflt,
		switches: ru.Nvcsw + ru.Nivcsw,
	}
	if godebug != "" {
		r.pkgInit = parseInitTrace(stderr.String())
		for _, d := range r.pkgInit {
			r.init += d
		}
	}
	return r
}

// startWithRoutes runs calico version n times, traced, in a new network
// namespace with that many blackhole routes.
func startWithRoutes(t *testing.T, bin string, routes, n int) []startRun {
	t.Helper()
	ns := fmt.Sprintf("calico-bench-routes-%d", os.Getpid())
	if out, err := exec.Command("ip", "netns", "add", ns).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add: %v %s", err, out)
	}
	defer exec.Command("ip", "netns", "del", ns).Run()
	var batch strings.Builder
	for i := range routes {
		fmt.Fprintf(&batch, "route add blackhole 172.%d.%d.0/24\n", 16+i/256, i%256)
	}
	add := exec.Command("ip", "-n", ns, "-batch", "-")
	add.Stdin = strings.NewReader(batch.String())
	if out, err := add.CombinedOutput(); err != nil {
		t.Fatalf("adding %d routes: %v %s", routes, err, out)
	}
	var runs []startRun
	for range n {
		c := exec.Command("ip", "netns", "exec", ns, bin, "version")
		c.Env = append(os.Environ(), "GODEBUG=inittrace=1")
		var stderr bytes.Buffer
		c.Stderr = &stderr
		if err := c.Run(); err != nil {
			t.Fatalf("calico version with %d routes: %v %s", routes, err, stderr.Bytes())
		}
		r := startRun{pkgInit: parseInitTrace(stderr.String())}
		for _, d := range r.pkgInit {
			r.init += d
		}
		runs = append(runs, r)
	}
	return runs
}

// parseInitTrace reads inittrace's lines ("init PKG @T ms, C ms clock, ...")
// into each package's clock time.
func parseInitTrace(s string) map[string]time.Duration {
	m := map[string]time.Duration{}
	for _, line := range strings.Split(s, "\n") {
		f := strings.Fields(line)
		if len(f) < 7 || f[0] != "init" || f[6] != "clock," {
			continue
		}
		v, err := strconv.ParseFloat(f[4], 64)
		if err == nil {
			m[f[1]] += time.Duration(v * float64(time.Millisecond))
		}
	}
	return m
}

// initGroups is one line per group of packages: the sum of its packages'
// median init times, with the largest packages.
func initGroups(runs []startRun) []string {
	groups := []struct{ name, prefix string }{
		{"etcd's server", "go.etcd.io/etcd/server/"},
		{"etcd's API and client, raft", "go.etcd.io/"},
		{"GoBGP", "github.com/osrg/gobgp/"},
		{"protobuf, gRPC, genproto, grpc-gateway", "google.golang.org/"},
		{"Prometheus's client", "github.com/prometheus/"},
		{"OpenTelemetry", "go.opentelemetry.io/"},
		{"calico's own packages", "calico/"},
	}
	median := map[string]time.Duration{}
	for pkg := range runs[0].pkgInit {
		var ds []time.Duration
		for _, r := range runs {
			ds = append(ds, r.pkgInit[pkg])
		}
		slices.Sort(ds)
		median[pkg] = ds[len(ds)/2]
	}
	group := func(pkg string) int {
		if pkg == "github.com/grpc-ecosystem/grpc-gateway/v2/protoc-gen-openapiv2/options" {
			return 3
		}
		for i, g := range groups {
			if strings.HasPrefix(pkg, g.prefix) {
				return i
			}
		}
		if !strings.Contains(strings.Split(pkg, "/")[0], ".") {
			return len(groups) // the standard library and the runtime
		}
		return len(groups) + 1
	}
	var names []string
	for _, g := range groups {
		names = append(names, g.name)
	}
	names = append(names, "the standard library and the runtime", "other modules (memberlist, YAML, go-cmp, viper, ...)")
	pkgs := make([][]string, len(names))
	sums := make([]time.Duration, len(names))
	for pkg, d := range median {
		g := group(pkg)
		pkgs[g] = append(pkgs[g], pkg)
		sums[g] += d
	}
	var total time.Duration
	var out []string
	for g, name := range names {
		slices.SortFunc(pkgs[g], func(a, b string) int { return int(median[b] - median[a]) })
		var top []string
		for _, p := range pkgs[g][:min(3, len(pkgs[g]))] {
			top = append(top, fmt.Sprintf("%s %.2f ms", p, float64(median[p].Microseconds())/1000))
		}
		out = append(out, fmt.Sprintf("- %s: %s, %d packages (%s)", name, ms(sums[g]), len(pkgs[g]), strings.Join(top, ", ")))
		total += sums[g]
	}
	return append(out, fmt.Sprintf("- in all: %s over %d packages", ms(total), len(median)))
}

// startPct is the p-quantile of f over runs.
func startPct[T int64 | time.Duration](runs []startRun, p float64, f func(startRun) T) T {
	v := make([]T, len(runs))
	for i, r := range runs {
		v[i] = f(r)
	}
	slices.Sort(v)
	return v[int(p*float64(len(v)-1))]
}

func binList(bins []startBin) string {
	var s []string
	for _, b := range bins {
		s = append(s, b.name)
	}
	return strings.Join(s, ", ")
}

// buildEmptyProgram builds a static Go program that writes a line and
// exits, as calico is built.
func buildEmptyProgram(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	src := "package main\n\nimport \"os\"\n\nfunc main() { os.Stdout.WriteString(\"empty\\n\") }\n"
	if err := os.WriteFile(filepath.Join(dir, "main.go"), []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "go.mod"), []byte("module empty\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	build := exec.Command("go", "build", "-trimpath", "-ldflags", "-s -w", "-o", "empty", ".")
	build.Dir = dir
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building the empty program: %v\n%s", err, out)
	}
	return filepath.Join(dir, "empty")
}

func fileSize(t *testing.T, path string) int64 {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}
