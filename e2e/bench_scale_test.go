package e2e

import (
	"context"
	"fmt"
	"math"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"calico/e2e/sim"
	"calico/node/calc"
)

// TestBenchScale measures a real node among 10, 100, 300 and 1,000
// simulated hosts of 100 workloads each (CALICO_SCALE_HOSTS changes the
// sizes; `make scale` runs it): memory and CPU idle and under churn, the
// agent's time per change, etcd's watch events, lag, size and latency,
// convergence of routes and policy sets, BGP sessions and routes, a fresh
// node's join, both BGP topologies, and a route reflector's failure. The
// lab: host1-3 are the etcd voters (and so the route reflectors), host4
// is the node under test (a client, with ten workloads that policies
// select), host5 joins fresh at each size. It writes its section of
// docs/bench.md and plots in docs/scale/.
func TestBenchScale(t *testing.T) {
	if os.Getenv("CALICO_BENCH") != "1" {
		t.Skip("a benchmark: set CALICO_BENCH=1 (scripts/bench.sh does; make scale runs this one)")
	}
	sizes := []int{10, 100, 300, 1000}
	if s := os.Getenv("CALICO_SCALE_HOSTS"); s != "" {
		sizes = nil
		for _, f := range strings.Split(s, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(f))
			if err != nil {
				t.Fatalf("CALICO_SCALE_HOSTS=%q: %v", s, err)
			}
			sizes = append(sizes, n)
		}
	}
	b := &scaleBench{t: t, perHost: 100, apps: 50, out: reportOffset(t), alt: os.Getenv("CALICO_SCALE_ALT") != "0"}
	if s := os.Getenv("CALICO_SCALE_PER_HOST"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			t.Fatalf("CALICO_SCALE_PER_HOST=%q: want a number of workloads", s)
		}
		b.perHost = n
	}
	b.setup()
	var points []*scalePoint
	var last time.Duration
	for i, n := range sizes {
		if i > 0 && !b.fits(n, points[len(points)-1].Hosts, last) {
			b.skipped = sizes[i:]
			b.report(points)
			break
		}
		start := time.Now()
		p := b.measure(n)
		last = time.Since(start)
		points = append(points, p)
		t.Logf("%d hosts (%s): %+v", n, last.Round(time.Second), *p)
		// Each size's results are written as soon as they are there: a
		// larger size that fails or runs out of time leaves the smaller
		// ones' table and plots.
		b.report(points)
	}
}

// fits says whether the size of n hosts can be measured before the
// test's deadline (less 10 minutes for the lab's teardown and the
// report), reckoning its time as the last size's (of prev hosts, which
// took last) grown in proportion to the hosts: the test's timeout
// panics without cleaning up the lab, so a size that cannot finish is
// not started.
func (b *scaleBench) fits(n, prev int, last time.Duration) bool {
	deadline, ok := b.t.Deadline()
	if !ok {
		return true
	}
	need := time.Duration(float64(last) * float64(n) / float64(max(prev, 1)))
	left := time.Until(deadline) - 10*time.Minute
	if need > left {
		b.t.Logf("%d hosts not measured: reckoned %s (%d hosts took %s), %s left before the deadline", n,
			need.Round(time.Minute), prev, last.Round(time.Second), left.Round(time.Minute))
		return false
	}
	return true
}

// reportOffset is the size of CALICO_BENCH_OUT before this benchmark
// writes: each report replaces what the one before it wrote.
func reportOffset(t *testing.T) int64 {
	f := os.Getenv("CALICO_BENCH_OUT")
	if f == "" {
		return 0
	}
	st, err := os.Stat(f)
	if err != nil {
		return 0
	}
	return st.Size()
}

// scaleBench is the benchmark's lab and settings.
type scaleBench struct {
	t        *testing.T
	l        *simLab
	perHost  int
	apps     int
	policies int
	// out is where this benchmark's section starts in CALICO_BENCH_OUT;
	// skipped are the sizes there was no time for.
	out     int64
	skipped []int
	// alt: measure the topology that is not the default at each size
	// (CALICO_SCALE_ALT=0 leaves it out, for a quicker run).
	alt bool
}

// scalePoint is what was measured at one size.
type scalePoint struct {
	Hosts, Endpoints                  int
	Topology, AltTopology             string
	Grow, Converge, Join              time.Duration
	Idle, Churn, ReflIdle, ReflChurn  usage
	SimIdle                           usage
	AltIdle                           usage
	Calc, CalcP99, Nft, Routes        time.Duration
	BGPStep, Input, Pass, PassP99     time.Duration // a pass's BGP step and input, and the whole pass
	Passes                            int
	EventsPerSec                      float64
	WatchLag, WatchLagP99             time.Duration
	RouteConv, RouteConvP90, AltRoute time.Duration
	SetConv, SetConvP90               time.Duration
	Sessions, ReflSessions, AltSess   int
	KernelRoutes                      int
	DBSize, DBInUse                   int64
	PutQuiet, PutIdle, PutChurn       float64 // ms, median
	GetIdle                           float64
	ChurnRate                         float64       // changes a second achieved
	ChurnTook                         time.Duration // the whole churn, joins and leaves included
	PutChurnP99                       float64
	ChurnAdds, ChurnErrors            int
	FailoverDropped, FailoverChecked  int
	ReflectorReady                    time.Duration // the killed reflector started again to its node's "ready" (its log)
	ReflectorBack                     time.Duration // the killed reflector started again to `calico status` answering
	Load                              []float64
}

func (b *scaleBench) setup() {
	b.l = newSimLab(b.t, 4, 1, calc.DefaultMeshMaxNodes) // host5 joins at each size
	l := b.l
	// Ten workloads on host4 that policies select, with sets of the
	// endpoints of other applications.
	for i := range 10 {
		l.MustCalico("host4", "workload", "add", fmt.Sprintf("local-%d", i), "--label", fmt.Sprintf("app=app-%d", i))
	}
	var y strings.Builder
	for k := range b.apps {
		fmt.Fprintf(&y, "---\napiVersion: projectcalico.org/v3\nkind: GlobalNetworkPolicy\nmetadata: {name: allow-app-%d}\n", k)
		fmt.Fprintf(&y, "spec:\n  selector: app == 'app-%d'\n  types: [Ingress]\n", k)
		fmt.Fprintf(&y, "  ingress: [{action: Allow, protocol: TCP, source: {selector: app == 'app-%d'}, destination: {ports: [8080]}}]\n", (k+1)%b.apps)
	}
	b.policies = b.apps
	l.apply(y.String())
}

// measure grows the simulation to n hosts and measures everything there.
func (b *scaleBench) measure(n int) *scalePoint {
	l, t := b.l, b.t
	p := &scalePoint{Hosts: n, Topology: topologyAt(n)}
	start := time.Now()
	l.simDo("POST", "/grow", sim.Grow{Hosts: n, PerHost: b.perHost, Apps: b.apps, Parallel: 8}, nil)
	p.Grow = time.Since(start)
	p.Endpoints = l.simStats().Workloads
	b.converged("host4", 20*time.Minute)
	p.Converge = time.Since(start) - p.Grow
	t.Logf("%d hosts: grown in %s, host4 converged %s later", n, p.Grow.Round(time.Second), p.Converge.Round(time.Second))
	var quiet sim.Latency
	l.simDo("POST", "/latency", map[string]int{"n": 50}, &quiet)
	p.PutQuiet = quantileF(quiet.Put, 0.5)
	l.simDo("POST", "/emulate", map[string]bool{"on": true}, nil)
	defer l.simDo("POST", "/emulate", map[string]bool{"on": false}, nil)
	time.Sleep(10 * time.Second) // the emulated nodes' watches and polls settle
	p.Load = append(p.Load, loadAvg())
	b.idle(p)
	b.convergence(p)
	b.churn(p)
	p.Join = b.join()
	p.Load = append(p.Load, loadAvg())
	if b.alt {
		b.otherTopology(p)
	}
	if p.Topology == "reflectors" {
		b.failover(p)
	}
	p.Load = append(p.Load, loadAvg())
	return p
}

// topologyAt is the default topology at n simulated hosts (and five real
// ones).
func topologyAt(n int) string {
	if n+5 > calc.DefaultMeshMaxNodes {
		return "reflectors"
	}
	return "mesh"
}

// converged waits until host routes every other host's block as the
// datastore says.
func (b *scaleBench) converged(host string, within time.Duration, dead ...string) {
	b.t.Helper()
	waitFor(b.t, within, host+"'s routes to equal the datastore's blocks", func() (bool, string) {
		want, err := b.l.expectedRoutes(host, dead...)
		if err != nil {
			return false, err.Error()
		}
		have, err := b.l.kernelRoutes(host)
		if err != nil {
			return false, err.Error()
		}
		diff := routesMatch(want, have)
		return len(diff) == 0, fmt.Sprintf("%d differences of %d blocks, such as %v", len(diff), len(want), diff[:min(3, len(diff))])
	})
}

// pids are the processes measured: host4 (the node under test), host1 (a
// reflector and etcd voter) and the simulation.
func (b *scaleBench) pids() map[string]int {
	return map[string]int{"host4": b.l.labPid(b.t, "host4"), "host1": b.l.labPid(b.t, "host1"), "sim": b.l.simPid}
}

// usages samples several processes over one window.
func usages(pids map[string]int, window time.Duration) map[string]usage {
	out := map[string]usage{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for name, pid := range pids {
		wg.Go(func() {
			u, _ := measureUsage(pid, window)
			mu.Lock()
			out[name] = u
			mu.Unlock()
		})
	}
	wg.Wait()
	return out
}

// idle measures the quiet cluster: CPU and memory, sessions, routes and
// etcd.
func (b *scaleBench) idle(p *scalePoint) {
	l := b.l
	u := usages(b.pids(), 20*time.Second)
	p.Idle, p.ReflIdle, p.SimIdle = u["host4"], u["host1"], u["sim"]
	ss, err := l.sessions("host4")
	if err == nil {
		p.Sessions = len(ss)
	}
	if ss, err := l.sessions("host1"); err == nil {
		p.ReflSessions = len(ss)
	}
	if rs, err := l.kernelRoutes("host4"); err == nil {
		p.KernelRoutes = len(rs)
	}
	var st []sim.EtcdStatus
	l.simDo("GET", "/etcd", nil, &st)
	for _, s := range st {
		p.DBSize, p.DBInUse = max(p.DBSize, s.DBSize), max(p.DBInUse, s.InUse)
	}
	var lat sim.Latency
	l.simDo("POST", "/latency", map[string]int{"n": 50}, &lat)
	p.PutIdle, p.GetIdle = quantileF(lat.Put, 0.5), quantileF(lat.Get, 0.5)
}

// convergence times a new block's route and a new endpoint's set member
// on host4, from the moment the simulated host wrote the endpoint.
func (b *scaleBench) convergence(p *scalePoint) {
	route, set, lag := b.convergeSamples(10, 20)
	p.RouteConv, p.RouteConvP90 = quantile(route, 0.5), quantile(route, 0.9)
	p.SetConv, p.SetConvP90 = quantile(set, 0.5), quantile(set, 0.9)
	p.WatchLag, p.WatchLagP99 = quantile(lag, 0.5), quantile(lag, 0.99)
}

// convergeSamples: routes new hosts join with one workload each (whose
// block is new) until host4 routes the block; sets workloads of app-1
// (which a policy on host4 picks) until host4's set has the address.
func (b *scaleBench) convergeSamples(routes, sets int) (route, set, lag []time.Duration) {
	l, t := b.l, b.t
	rm := startMonitor(t, "host4", "ip", "-o", "monitor", "route")
	nm := startMonitor(t, "host4", "nft", "monitor", "new", "elements")
	time.Sleep(500 * time.Millisecond)
	for range routes {
		var h sim.HostInfo
		l.simDo("POST", "/host", sim.HostReq{Op: "add"}, &h)
		waitFor(t, 2*time.Minute, h.Name+"'s sessions up", func() (bool, string) {
			var hi sim.HostInfo
			l.simDo("GET", "/host?name="+h.Name, nil, &hi)
			return len(hi.Peers) > 0 && hi.Up == len(hi.Peers), fmt.Sprintf("%d of %v", hi.Up, hi.Peers)
		})
		var w sim.WorkloadInfo
		l.simDo("POST", "/workload", sim.WorkloadReq{Host: h.Name}, &w)
		via := "via " + h.Addr.String() + " "
		if at, ok := rm.first(w.Created.Add(-time.Second), time.Minute, func(s string) bool {
			return strings.Contains(s, via) && !strings.HasPrefix(s, "Deleted")
		}); ok {
			route = append(route, max(0, at.Sub(w.Created)))
		}
		l.simDo("POST", "/host", sim.HostReq{Op: "leave", Host: h.Name}, nil)
	}
	for range sets {
		var w sim.WorkloadInfo
		l.simDo("POST", "/workload", sim.WorkloadReq{App: 1}, &w)
		lag = append(lag, w.WatchLag)
		addr := w.Addr.String()
		if at, ok := nm.first(w.Created.Add(-time.Second), time.Minute, func(s string) bool {
			return strings.Contains(s, "add element") && (strings.Contains(s, " "+addr+" ") || strings.Contains(s, " "+addr+","))
		}); ok {
			set = append(set, max(0, at.Sub(w.Created)))
		}
	}
	return route, set, lag
}

// churn changes workloads at 20 a second (and hosts join and leave) for
// 20 s, while host4 logs its passes at Debug.
func (b *scaleBench) churn(p *scalePoint) {
	l := b.l
	l.apply("apiVersion: projectcalico.org/v3\nkind: FelixConfiguration\nmetadata: {name: node.host4}\nspec: {logSeverityScreen: Debug}\n")
	defer l.MustCalico("host1", "delete", "felixconfiguration", "node.host4")
	time.Sleep(2 * time.Second)
	offset := len(l.Log("host4"))
	st0 := l.simStats()
	var res sim.ChurnResult
	var u map[string]usage
	var lat sim.Latency
	var wg sync.WaitGroup
	wg.Go(func() { u = usages(b.pids(), 18*time.Second) })
	wg.Go(func() {
		time.Sleep(5 * time.Second)
		l.sim.Do(context.Background(), "POST", "/latency", map[string]int{"n": 50}, &lat)
	})
	start := time.Now()
	l.simDo("POST", "/churn", sim.Churn{Rate: 20, Duration: 20 * time.Second, JoinsPerMinute: 6, LeavesPerMinute: 6,
		PerHost: b.perHost, Apps: b.apps, Parallel: 16}, &res)
	took := time.Since(start)
	wg.Wait()
	st1 := l.simStats()
	p.Churn, p.ReflChurn = u["host4"], u["host1"]
	p.ChurnAdds, p.ChurnErrors = res.Adds+res.Removes, len(res.Errors)
	// The rate is over the time the workload changes took: the joins and
	// leaves of simulated hosts may go on after them (a leave removes a
	// host's workloads one by one), and the whole churn took Took.
	p.ChurnTook = took
	if res.Span > 0 {
		p.ChurnRate = float64(p.ChurnAdds) / (res.Span / 1000)
	}
	if len(res.Errors) > 0 {
		b.t.Logf("%d hosts: %d changes of the churn failed, such as %q", p.Hosts, len(res.Errors), res.Errors[:min(3, len(res.Errors))])
	}
	p.EventsPerSec = float64(st1.ProbeEvents-st0.ProbeEvents) / took.Seconds()
	p.PutChurn, p.PutChurnP99 = quantileF(lat.Put, 0.5), quantileF(lat.Put, 0.99)
	passes := agentTimings(l.Lab, "host4", offset)
	p.Passes = len(passes)
	if p.Passes == 0 {
		b.t.Errorf("%d hosts: host4 logged no pass under churn at Debug (has the agent's line changed? appliedRE)", p.Hosts)
	}
	part := func(f func(a appliedLine) time.Duration) []time.Duration {
		out := make([]time.Duration, len(passes))
		for i, a := range passes {
			out[i] = f(a)
		}
		return out
	}
	calcs := part(func(a appliedLine) time.Duration { return a.Calc })
	p.Calc, p.CalcP99 = quantile(calcs, 0.5), quantile(calcs, 0.99)
	p.Nft = quantile(part(func(a appliedLine) time.Duration { return a.NFT }), 0.5)
	p.Routes = quantile(part(func(a appliedLine) time.Duration { return a.Routes }), 0.5)
	p.BGPStep = quantile(part(func(a appliedLine) time.Duration { return a.BGP }), 0.5)
	p.Input = quantile(part(func(a appliedLine) time.Duration { return a.Input }), 0.5)
	whole := part(func(a appliedLine) time.Duration { return a.Input + a.Calc + a.NFT + a.BGP + a.Routes })
	p.Pass, p.PassP99 = quantile(whole, 0.5), quantile(whole, 0.99)
}

// join starts host5 fresh (it joins the cluster) and times it until it
// routes every other host's block; then it leaves again.
func (b *scaleBench) join() time.Duration {
	l := b.l
	start := time.Now()
	if err := l.StartWithin(10*time.Minute, "host5", "--join", l.Addr("host1"), "--token", l.Token("host1")); err != nil {
		b.t.Fatal(err)
	}
	b.converged("host5", 20*time.Minute)
	took := time.Since(start)
	l.MustCalico("host5", "leave", "--force")
	l.Stop("host5")
	return took
}

// otherTopology switches to the topology that is not the default at this
// size (the mesh's size lowered to 0 or raised past the cluster),
// measures host4 idle there and how fast a new block reaches it, and
// switches back.
func (b *scaleBench) otherTopology(p *scalePoint) {
	l := b.l
	want := func(mesh bool) func() (bool, string) {
		return func() (bool, string) {
			ss, err := l.sessions("host4")
			up := 0
			for _, s := range ss {
				if s.State == "established" {
					up++
				}
			}
			if mesh {
				return err == nil && up >= p.Hosts+6, fmt.Sprintf("%d of %d sessions up (%v)", up, len(ss), err)
			}
			return err == nil && len(ss) == 6 && up == 6, fmt.Sprintf("%d of %d sessions up (%v)", up, len(ss), err)
		}
	}
	mesh := p.Topology != "mesh"
	p.AltTopology = map[bool]string{true: "mesh", false: "reflectors"}[mesh]
	if mesh {
		l.setMeshMax(1 << 20)
	} else {
		l.setMeshMax(0)
	}
	waitFor(b.t, 20*time.Minute, "host4's sessions in the "+p.AltTopology+" topology", want(mesh))
	b.converged("host4", 10*time.Minute)
	p.AltIdle = usages(map[string]int{"host4": l.labPid(b.t, "host4")}, 20*time.Second)["host4"]
	if ss, err := l.sessions("host4"); err == nil {
		p.AltSess = len(ss)
	}
	route, _, _ := b.convergeSamples(5, 0)
	p.AltRoute = quantile(route, 0.5)
	l.setMeshMax(calc.DefaultMeshMaxNodes)
	waitFor(b.t, 20*time.Minute, "host4's sessions back in the "+p.Topology+" topology", want(!mesh))
	b.converged("host4", 10*time.Minute)
}

// failover kills a route reflector (host2, a voter) and counts the routes
// to simulated hosts' blocks host4 deleted meanwhile (none should go: the
// other reflectors carry them all); then host2 comes back.
func (b *scaleBench) failover(p *scalePoint) {
	l := b.l
	rs, err := l.kernelRoutes("host4")
	if err != nil {
		b.t.Fatal(err)
	}
	for dst, via := range rs {
		if len(via) == 1 && netip.MustParsePrefix(simSubnet).Contains(via[0]) && dst.Bits() < 32 {
			p.FailoverChecked++
		}
	}
	rm := startMonitor(b.t, "host4", "ip", "-o", "monitor", "route")
	time.Sleep(500 * time.Millisecond)
	start := time.Now()
	l.KillNow("host2")
	waitFor(b.t, time.Minute, "host4's sessions to host2 to go", func() (bool, string) {
		ss, err := l.sessions("host4")
		for _, s := range ss {
			if s.Node == "host2" || s.Peer == l.Addr("host2") {
				return false, fmt.Sprint(s)
			}
		}
		return err == nil, fmt.Sprint(err)
	})
	time.Sleep(5 * time.Second)
	for _, line := range rm.since(start) {
		if strings.HasPrefix(line, "Deleted") && strings.Contains(line, " via 172.30.") {
			p.FailoverDropped++
		}
	}
	l.Kill("host2")
	from := logSize(l.Lab, "host2")
	back := time.Now()
	if err := l.StartErr("host2"); err != nil {
		// lab.sh waits 90 s; a reflector of a thousand hosts may take
		// longer (etcd's member, a listing of 100,000 resources, a
		// thousand sessions): its node runs on, and its API is waited for.
		b.t.Logf("host2 started again: %v", err)
		waitFor(b.t, 10*time.Minute, "host2's node to answer again", func() (bool, string) {
			_, err := tryStatus(l.Lab, "host2")
			return err == nil, fmt.Sprint(err)
		})
	}
	p.ReflectorBack = time.Since(back)
	// The API answers before the node is ready (its dataplane
	// programmed) when the state cache takes long to load: at 1,000
	// hosts the line came after `calico status` answered.
	var ready time.Time
	waitFor(b.t, 10*time.Minute, "host2's node to log that it is ready", func() (bool, string) {
		var err error
		ready, err = readyLine(l.Lab, "host2", from)
		return err == nil, fmt.Sprint(err)
	})
	p.ReflectorReady = ready.Sub(back)
	b.converged("host4", 10*time.Minute)
}

// report writes the section of docs/bench.md and the plots.
func (b *scaleBench) report(ps []*scalePoint) {
	mib := func(u usage) string { return fmt.Sprintf("%.0f MiB", float64(u.RSS)/(1<<20)) }
	fileMiB := func(u usage) string { return fmt.Sprintf("%.0f", float64(u.RSSFile)/(1<<20)) }
	cores := func(u usage) string { return fmt.Sprintf("%.3f", u.Cores) }
	d := func(x time.Duration) string {
		if x >= 10*time.Second {
			return x.Round(time.Second).String()
		}
		return ms(x)
	}
	rows := []struct {
		name string
		f    func(p *scalePoint) string
	}{
		{"workload endpoints (simulated hosts' + host4's 10)", func(p *scalePoint) string { return fmt.Sprint(p.Endpoints + 10) }},
		{"BGP topology (default; the mesh spans up to 100 nodes)", func(p *scalePoint) string { return p.Topology }},
		{"growing to this size (the simulation writing; host4 converged after)", func(p *scalePoint) string { return d(p.Grow) + " (+" + d(p.Converge) + ")" }},
		{"host4 RSS idle / under churn (of it file pages: the binary's and the state cache's)", func(p *scalePoint) string {
			return fmt.Sprintf("%s (%s) / %s (%s)", mib(p.Idle), fileMiB(p.Idle), mib(p.Churn), fileMiB(p.Churn))
		}},
		{"host4 CPU idle / under churn (cores)", func(p *scalePoint) string { return cores(p.Idle) + " / " + cores(p.Churn) }},
		{"host1 (voter, reflector) RSS idle / churn", func(p *scalePoint) string { return mib(p.ReflIdle) + " / " + mib(p.ReflChurn) }},
		{"host1 CPU idle / churn (cores)", func(p *scalePoint) string { return cores(p.ReflIdle) + " / " + cores(p.ReflChurn) }},
		{"churn achieved (workload changes a second, over the time they took); the whole churn, simulated hosts joining and leaving included, took", func(p *scalePoint) string {
			return fmt.Sprintf("%.1f; %s", p.ChurnRate, d(p.ChurnTook))
		}},
		{"host4 agent passes under churn; calculation per pass p50 / p99", func(p *scalePoint) string {
			return fmt.Sprintf("%d; %s / %s", p.Passes, ms(p.Calc), ms(p.CalcP99))
		}},
		{"host4 nftables / routes per pass, p50", func(p *scalePoint) string { return ms(p.Nft) + " / " + ms(p.Routes) }},
		{"host4 per pass: the input from the cache / the BGP step (its calculation and the speaker's sessions, advertisements and learned routes), p50", func(p *scalePoint) string {
			return ms(p.Input) + " / " + ms(p.BGPStep)
		}},
		{"host4 a whole pass (input, calculation, nftables, BGP, routes), p50 / p99", func(p *scalePoint) string { return ms(p.Pass) + " / " + ms(p.PassP99) }},
		{"watch events a node receives under churn, per second", func(p *scalePoint) string { return fmt.Sprintf("%.0f", p.EventsPerSec) }},
		{"watch lag (endpoint written to a node's watch), p50 / p99", func(p *scalePoint) string { return ms(p.WatchLag) + " / " + ms(p.WatchLagP99) }},
		{"new block to host4's route, p50 / p90", func(p *scalePoint) string { return ms(p.RouteConv) + " / " + ms(p.RouteConvP90) }},
		{"new endpoint to host4's policy set, p50 / p90", func(p *scalePoint) string { return ms(p.SetConv) + " / " + ms(p.SetConvP90) }},
		{"BGP sessions host4 / host1; host4's routes (proto 80)", func(p *scalePoint) string {
			return fmt.Sprintf("%d / %d; %d", p.Sessions, p.ReflSessions, p.KernelRoutes)
		}},
		{"other topology: host4 sessions, CPU idle, RSS, new block p50", func(p *scalePoint) string {
			if p.AltTopology == "" {
				return "- (not measured: CALICO_SCALE_ALT=0)"
			}
			return fmt.Sprintf("%s: %d, %s, %s, %s", p.AltTopology, p.AltSess, cores(p.AltIdle), mib(p.AltIdle), ms(p.AltRoute))
		}},
		{"fresh node: start to every route", func(p *scalePoint) string { return d(p.Join) }},
		{"etcd database size / in use", func(p *scalePoint) string {
			return fmt.Sprintf("%.1f / %.1f MiB", float64(p.DBSize)/(1<<20), float64(p.DBInUse)/(1<<20))
		}},
		{"etcd put p50 without / with the nodes' load, under churn (p99); get p50", func(p *scalePoint) string {
			return fmt.Sprintf("%.1f / %.1f / %.1f (%.1f); %.1f ms", p.PutQuiet, p.PutIdle, p.PutChurn, p.PutChurnP99, p.GetIdle)
		}},
		{"a reflector killed: host4's routes to simulated hosts deleted", func(p *scalePoint) string {
			if p.FailoverChecked == 0 {
				return "-"
			}
			return fmt.Sprintf("%d of %d", p.FailoverDropped, p.FailoverChecked)
		}},
		{"the killed reflector started again: its node ready (its log) / `calico status` answering", func(p *scalePoint) string {
			if p.ReflectorBack == 0 {
				return "-"
			}
			return d(p.ReflectorReady) + " / " + d(p.ReflectorBack)
		}},
		{"the simulation's CPU idle (cores) / RSS", func(p *scalePoint) string { return cores(p.SimIdle) + " / " + mib(p.SimIdle) }},
		{"machine load average (1 min) during the size's run", func(p *scalePoint) string {
			var s []string
			for _, l := range p.Load {
				s = append(s, fmt.Sprintf("%.1f", l))
			}
			return strings.Join(s, ", ")
		}},
	}
	head := "| measure |"
	sep := "| --- |"
	for _, p := range ps {
		head += fmt.Sprintf(" %d hosts |", p.Hosts)
		sep += " --- |"
	}
	out := append(scaleIntro(b), head, sep)
	for _, r := range rows {
		line := "| " + r.name + " |"
		for _, p := range ps {
			line += " " + r.f(p) + " |"
		}
		out = append(out, line)
	}
	out = append(out, "", "Plots (docs/scale/): "+strings.Join(b.plots(ps), ", ")+".")
	if len(b.skipped) > 0 {
		out = append(out, "", fmt.Sprintf("Not measured for want of time before the run's bound: %v hosts.", b.skipped))
	}
	if f := os.Getenv("CALICO_BENCH_OUT"); f != "" {
		if err := os.Truncate(f, b.out); err != nil && !os.IsNotExist(err) {
			b.t.Fatal(err)
		}
	}
	writeReport(b.t, out)
}

func scaleIntro(b *scaleBench) []string {
	return []string{
		scaleTitle(b.perHost),
		"",
		"`make scale`: five real nodes in the lab (host1-3 the etcd voters, so the automatic route",
		"reflectors beyond the mesh's size; host4 the node under test, with ten workloads that",
		fmt.Sprintf("%d policies select; host5 joins fresh at each size) among simulated hosts (e2e/sim: each", b.policies),
		"writes its Node, IPAM blocks and WorkloadEndpoints as a node does and speaks BGP from its own",
		fmt.Sprintf("address), %d workloads per simulated host over %d applications, IPv4 only. With the", b.perHost, b.apps),
		"simulated hosts' node-like etcd load on (a watch of every resource; the member list twice and",
		"the seats being handed over once, serializable, every second up to 50 hosts and every",
		"hosts/50 seconds beyond, as a client host reads them; the host's blocks every 5 s),",
		"idle is 20 s of quiet and churn is 20 s of 20",
		"workload changes a second with hosts joining and leaving. Convergence is timed from the",
		"simulated host's write to the event in host4's kernel (`ip monitor route`, `nft monitor`).",
		"Medians unless marked; the machine is shared (2 cores), and its load is in the last row.",
		"docs/scale.md explains the growth of each figure and projects it.",
		"",
	}
}

// scaleTitle is the section's title: another number of workloads per
// host (CALICO_SCALE_PER_HOST) makes a section of its own.
func scaleTitle(perHost int) string {
	if perHost == 100 {
		return "## Fleet scale (issue 18)"
	}
	return fmt.Sprintf("## Fleet scale (issue 18), %d workloads per host", perHost)
}

// plots writes the SVG plots and returns their file names.
func (b *scaleBench) plots(ps []*scalePoint) []string {
	dir := os.Getenv("CALICO_SCALE_PLOTS")
	if dir == "" {
		dir = filepath.Join("..", "docs", "scale")
	}
	var xs []float64
	col := func(f func(p *scalePoint) float64) []float64 {
		var out []float64
		for _, p := range ps {
			out = append(out, f(p))
		}
		return out
	}
	for _, p := range ps {
		xs = append(xs, float64(p.Hosts))
	}
	msf := func(x time.Duration) float64 { return float64(x.Microseconds()) / 1000 }
	mibf := func(u usage) float64 { return float64(u.RSS) / (1 << 20) }
	type plot struct {
		file, title, y string
		ss             []series
		log            bool
	}
	plots := []plot{
		{"memory.svg", "Resident memory", "MiB", []series{
			{"host4 (client)", col(func(p *scalePoint) float64 { return mibf(p.Idle) })},
			{"host1 (voter, reflector)", col(func(p *scalePoint) float64 { return mibf(p.ReflIdle) })}}, false},
		{"cpu.svg", "CPU", "cores", []series{
			{"host4 idle", col(func(p *scalePoint) float64 { return p.Idle.Cores })},
			{"host4 churn", col(func(p *scalePoint) float64 { return p.Churn.Cores })},
			{"host1 idle", col(func(p *scalePoint) float64 { return p.ReflIdle.Cores })},
			{"host1 churn", col(func(p *scalePoint) float64 { return p.ReflChurn.Cores })}}, false},
		{"calc.svg", "host4's agent per pass under churn", "ms", []series{
			{"calculation p50", col(func(p *scalePoint) float64 { return msf(p.Calc) })},
			{"calculation p99", col(func(p *scalePoint) float64 { return msf(p.CalcP99) })},
			{"nftables p50", col(func(p *scalePoint) float64 { return msf(p.Nft) })},
			{"whole pass p50", col(func(p *scalePoint) float64 { return msf(p.Pass) })}}, true},
		{"convergence.svg", "From a simulated host's write to host4's kernel", "ms", []series{
			{"new block route p50", col(func(p *scalePoint) float64 { return msf(p.RouteConv) })},
			{"policy set p50", col(func(p *scalePoint) float64 { return msf(p.SetConv) })},
			{"watch lag p50", col(func(p *scalePoint) float64 { return msf(p.WatchLag) })}}, true},
		{"sessions.svg", "BGP sessions", "sessions", []series{
			{"host4, mesh", col(func(p *scalePoint) float64 { return sessionsIn(p, "mesh") })},
			{"host4, reflectors", col(func(p *scalePoint) float64 { return sessionsIn(p, "reflectors") })},
			{"host1 (reflector)", col(func(p *scalePoint) float64 { return float64(p.ReflSessions) })}}, true},
		{"etcd.svg", "etcd", "MiB / ms", []series{
			{"database MiB", col(func(p *scalePoint) float64 { return float64(p.DBSize) / (1 << 20) })},
			{"put p50 ms, churn", col(func(p *scalePoint) float64 { return p.PutChurn })},
			{"events/s per node /10", col(func(p *scalePoint) float64 { return p.EventsPerSec / 10 })}}, true},
	}
	var names []string
	for _, pl := range plots {
		if b.perHost != 100 { // a section of its own (scaleTitle)
			pl.file = strings.TrimSuffix(pl.file, ".svg") + fmt.Sprintf("-%d.svg", b.perHost)
		}
		if err := plotSVG(filepath.Join(dir, pl.file), pl.title, pl.y, xs, pl.ss, pl.log); err != nil {
			b.t.Error(err)
		}
		names = append(names, "[`"+pl.file+"`](scale/"+pl.file+")")
	}
	return names
}

func sessionsIn(p *scalePoint, topo string) float64 {
	switch topo {
	case p.Topology:
		return float64(p.Sessions)
	case p.AltTopology:
		return float64(p.AltSess)
	}
	return math.NaN()
}
