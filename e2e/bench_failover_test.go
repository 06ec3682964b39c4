package e2e

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"calico/node/api"
)

// TestBenchFailover measures how soon a dead host is noticed and its
// routes are gone from every other host (CALICO_BENCH=1), and counts false
// alarms while one host's link is as lossy as the chaos test makes it.
//
// Five lab hosts in one rack, full iBGP mesh, a workload on each (so each
// host routes a block via every other). Each round kills one host's node
// (SIGKILL; the clock starts at the signal) and polls, on each of the four
// others, the kernel's routes (netlink, every 5 ms) and the node's API
// (every 10 ms): when the last route via the dead host went, when gossip
// said dead, and when the direct liveness check said down (nodes that have
// one). Then the node is started again and every host routes via it
// before the next round.
func TestBenchFailover(t *testing.T) {
	if os.Getenv("CALICO_BENCH") != "1" {
		t.Skip("a benchmark: set CALICO_BENCH=1 (scripts/bench.sh does)")
	}
	const hosts, rounds = 5, 10
	lab := NewLab(t, hosts, 1)
	f := &failover{t: t, lab: lab, hosts: bgpHosts(hosts), addrs: map[string][]netip.Addr{}}
	bgpCluster(t, lab, f.hosts)
	for _, h := range f.hosts {
		f.addrs[h] = bgpHostAddrs(t, lab, h)
		lab.AddWorkload(h, "fo-"+h)
	}
	f.waitMesh()
	f.waitSteady(2 * time.Second)
	load := loadAvgs()
	var rs []failoverRound
	for i := range rounds {
		rs = append(rs, f.round(f.hosts[1+i%(hosts-1)]))
	}
	lossy := f.lossy("host3", 60*time.Second)
	writeReport(t, f.report(rs, lossy, load))
}

type failover struct {
	t     *testing.T
	lab   *Lab
	hosts []string
	addrs map[string][]netip.Addr
}

// failoverRound is one kill: for each observer, when its last route via
// the victim went, when its gossip said dead, and when its liveness
// check said down.
type failoverRound struct {
	victim             string
	routes, dead, down map[string]time.Duration
	hasLiveness        bool
	others             []string // false alarms seen in the logs
}

func (f *failover) others(victim string) []string {
	return slices.DeleteFunc(slices.Clone(f.hosts), func(h string) bool { return h == victim })
}

// routesVia says whether host has a route of ours via any of victim's
// addresses (and could tell).
func (f *failover) routesVia(host, victim string) (bool, error) {
	rs, err := bgpRoutesVia(host, f.addrs[victim]...)
	return len(rs) > 0, err
}

// waitMesh waits until every host routes via every other.
func (f *failover) waitMesh() {
	f.t.Helper()
	for _, h := range f.hosts {
		for _, o := range f.others(h) {
			bgpWaitFor(f.t, 60*time.Second, 50*time.Millisecond, h+" routing via "+o, func() (bool, string) {
				ok, err := f.routesVia(h, o)
				return ok, fmt.Sprint(err)
			})
		}
	}
}

// node is how host's API shows another node now.
func (f *failover) node(host, name string) (api.Node, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	var ns []api.Node
	if err := api.NewClient(filepath.Join(f.lab.dir, host)).Do(ctx, "GET", "/v1/nodes", nil, nil, &ns); err != nil {
		return api.Node{}, err
	}
	for _, n := range ns {
		if n.Name == name {
			return n, nil
		}
	}
	return api.Node{}, fmt.Errorf("%s does not list %s", host, name)
}

// round kills victim, times what the others see, and starts it again.
func (f *failover) round(victim string) failoverRound {
	f.t.Helper()
	r := failoverRound{victim: victim, routes: map[string]time.Duration{}, dead: map[string]time.Duration{}, down: map[string]time.Duration{}}
	logFrom := map[string]int{}
	for _, h := range f.hosts {
		logFrom[h] = len(f.lab.Log(h))
	}
	if n, err := f.node(f.others(victim)[0], victim); err == nil && n.Reach != "" {
		r.hasLiveness = true
	}
	pid := bgpPid(f.t, f.lab, victim)
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		f.t.Fatalf("killing %s's node: %v", victim, err)
	}
	killed := time.Now()
	var wg, reaped sync.WaitGroup
	reaped.Go(func() { f.lab.script("kill", victim) })
	var mu sync.Mutex
	for _, h := range f.others(victim) {
		wg.Go(func() {
			d := pollUntil(killed, 5*time.Millisecond, func() bool { ok, err := f.routesVia(h, victim); return err == nil && !ok })
			mu.Lock()
			r.routes[h] = d
			mu.Unlock()
		})
		wg.Go(func() {
			var dead, down time.Duration
			pollUntil(killed, 10*time.Millisecond, func() bool {
				n, err := f.node(h, victim)
				if err != nil {
					return false
				}
				if dead == 0 && n.Gossip == "dead" {
					dead = time.Since(killed)
				}
				if down == 0 && n.Reach == "down" {
					down = time.Since(killed)
				}
				return dead > 0 // the liveness check, when there is one, comes first
			})
			mu.Lock()
			r.dead[h], r.down[h] = dead, down
			mu.Unlock()
		})
	}
	wg.Wait()
	reaped.Wait()
	f.lab.Start(victim)
	f.waitMesh()
	f.waitSteady(2 * time.Second)
	r.others = f.falseAlarms(logFrom, victim)
	return r
}

// pollUntil calls cond every interval until it holds (or 20 s pass) and
// returns how long after from it held; 0 if it never did.
func pollUntil(from time.Time, interval time.Duration, cond func() bool) time.Duration {
	for time.Since(from) < 20*time.Second {
		if cond() {
			return time.Since(from)
		}
		time.Sleep(interval)
	}
	return 0
}

// falseAlarms are the log lines since logFrom in which a host says a
// host other than victim is dead or unreachable.
func (f *failover) falseAlarms(logFrom map[string]int, victim string) []string {
	var out []string
	for _, h := range f.hosts {
		log := f.lab.Log(h)
		if logFrom[h] > len(log) {
			continue
		}
		for _, l := range strings.Split(log[logFrom[h]:], "\n") {
			if !strings.Contains(l, `msg="member dead"`) && !strings.Contains(l, `msg="host unreachable"`) {
				continue
			}
			if !strings.Contains(l, "member="+victim+" ") && !strings.Contains(l, "peer="+victim+" ") {
				out = append(out, h+": "+l)
			}
		}
	}
	return out
}

// failoverLossy is what happened while a host's link was lossy.
type failoverLossy struct {
	host, how string
	held      time.Duration
	alarms    []string // log lines: someone declared dead or unreachable
	// gaps counts, per observer, the times its routes via the lossy host
	// (or the lossy host's routes via it) went away; lost their total.
	gaps int
	lost time.Duration
}

// lossy makes host's link lossy as the chaos test's worst lossy step does
// on this kernel (30% dropped each way in the fabric, and a 1 Mbit/s
// limit queueing up to 149 ms each way) for hold, and watches routes and
// logs meanwhile.
func (f *failover) lossy(host string, hold time.Duration) failoverLossy {
	f.t.Helper()
	link := "lab-" + host
	q := []string{"root", "tbf", "rate", "1mbit", "burst", "4kb", "latency", "149ms"}
	res := failoverLossy{host: host, held: hold, how: "30% dropped each way, a 1 Mbit/s limit queueing up to 149 ms each way"}
	logFrom := map[string]int{}
	for _, h := range f.hosts {
		logFrom[h] = len(f.lab.Log(h))
	}
	must := func(err error) {
		if err != nil {
			f.t.Fatal(err)
		}
	}
	must(dropPackets(link, 30))
	must(fabric(append([]string{"tc", "qdisc", "replace", "dev", link}, q...)...))
	must(inHost(host, append([]string{"tc", "qdisc", "replace", "dev", "eth0"}, q...)...))
	start := time.Now()
	var wg sync.WaitGroup
	var mu sync.Mutex
	for _, o := range f.others(host) {
		for _, pair := range [][2]string{{o, host}, {host, o}} {
			wg.Go(func() {
				gaps, lost := f.watchRoutes(pair[0], pair[1], start.Add(hold))
				mu.Lock()
				res.gaps += gaps
				res.lost += lost
				mu.Unlock()
			})
		}
	}
	wg.Wait()
	must(fabric("tc", "qdisc", "del", "dev", link, "root"))
	must(inHost(host, "tc", "qdisc", "del", "dev", "eth0", "root"))
	must(fabric("nft", "delete", "table", "netdev", "chaos-"+link))
	res.alarms = f.falseAlarms(logFrom, "")
	f.waitMesh()
	return res
}

// watchRoutes polls, every 20 ms until the deadline, whether host routes
// via other; it counts the times the routes went away and for how long.
func (f *failover) watchRoutes(host, other string, until time.Time) (int, time.Duration) {
	gaps, lost := 0, time.Duration(0)
	var since time.Time
	for time.Now().Before(until) {
		ok, err := f.routesVia(host, other)
		switch {
		case err != nil:
		case !ok && since.IsZero():
			gaps++
			since = time.Now()
		case ok && !since.IsZero():
			lost += time.Since(since)
			since = time.Time{}
		}
		time.Sleep(20 * time.Millisecond)
	}
	if !since.IsZero() {
		lost += time.Since(since)
	}
	return gaps, lost
}

// loadAvgs is the machine's load averages, as /proc/loadavg says.
func loadAvgs() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}

// spread is "median (min-max)" of the non-zero durations, with how many
// were zero (never seen).
func spread(ds []time.Duration) string {
	var seen []time.Duration
	for _, d := range ds {
		if d > 0 {
			seen = append(seen, d)
		}
	}
	if len(seen) == 0 {
		return "never"
	}
	s := medianRange(seen)
	if missing := len(ds) - len(seen); missing > 0 {
		s += fmt.Sprintf(", %d never", missing)
	}
	return s
}

// lastOf is, per round, the time the last observer saw it (0 if one
// never did).
func lastOf(rs []failoverRound, of func(failoverRound) map[string]time.Duration) []time.Duration {
	var out []time.Duration
	for _, r := range rs {
		var last time.Duration
		for _, d := range of(r) {
			if d == 0 {
				last = 0
				break
			}
			last = max(last, d)
		}
		out = append(out, last)
	}
	return out
}

func (f *failover) report(rs []failoverRound, lossy failoverLossy, load string) []string {
	var alarms []string
	for _, r := range rs {
		alarms = append(alarms, r.others...)
	}
	down := "no liveness check in this build"
	if rs[0].hasLiveness {
		down = spread(lastOf(rs, func(r failoverRound) map[string]time.Duration { return r.down }))
	}
	for _, a := range append(alarms, lossy.alarms...) {
		f.t.Logf("false alarm: %s", a)
	}
	lines := []string{
		"## Dead host: detection and route withdrawal (issue 18)",
		"",
		"Five lab hosts in one rack in a full iBGP mesh, a workload on each. Each of " + fmt.Sprint(len(rs)) + " rounds",
		"kills one host's node (SIGKILL, host2 to host5 in turn; the clock starts at the",
		"signal) and polls the four others: their routes via the dead host (netlink, every",
		"5 ms) and their API (every 10 ms). Each figure is, per round, the time the last of",
		"the four saw it; median (min-max) over the rounds. Then the node starts again and",
		"every host routes via it before the next round. The lossy minute: one host's link",
		"as the chaos test's worst lossy step makes it on this kernel (no netem): " + lossy.how + ",",
		"for " + lossy.held.String() + ", nothing killed. Goal: routes gone everywhere <= 1 s; no false alarm.",
		"Load average at the start: " + load + ".",
		"",
		"| measure | result |",
		"| --- | --- |",
		"| routes via the dead host gone on all four | " + spread(lastOf(rs, func(r failoverRound) map[string]time.Duration { return r.routes })) + " |",
		"| the direct liveness check says down on all four | " + down + " |",
		"| gossip says dead on all four | " + spread(lastOf(rs, func(r failoverRound) map[string]time.Duration { return r.dead })) + " |",
		fmt.Sprintf("| false alarms during the kills (a live host declared dead or unreachable) | %d |", len(alarms)),
		fmt.Sprintf("| lossy minute: false alarms (dead or unreachable) | %d |", len(lossy.alarms)),
		fmt.Sprintf("| lossy minute: routes to or from the lossy host withdrawn (8 directed pairs) | %d times, %s in all |", lossy.gaps, ms(lossy.lost)),
	}
	if all := append(alarms, lossy.alarms...); len(all) > 0 {
		lines = append(lines, "", "The false alarms, as logged:", "")
		for _, a := range all {
			lines = append(lines, "    "+a)
		}
	}
	return lines
}
