package e2e

import (
	"fmt"
	"net/netip"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestBGPUnreachable: the direct liveness check (issue 18). Three hosts in
// a full mesh, a workload on each. Every host finds every other reachable;
// a node stopped on purpose (SIGTERM) keeps its routes on the others
// (graceful restart) and is never called unreachable; a node killed
// (kill -9) loses them, and the others say it is unreachable before gossip
// says it is dead; started again, it is reachable and routed to again.
// No timings are asserted beyond generous bounds.
func TestBGPUnreachable(t *testing.T) {
	lab := NewLab(t, 3, 1)
	f := &failover{t: t, lab: lab, hosts: bgpHosts(3)}
	bgpCluster(t, lab, f.hosts)
	f.addrs = map[string][]netip.Addr{}
	for _, h := range f.hosts {
		f.addrs[h] = bgpHostAddrs(t, lab, h)
		lab.AddWorkload(h, "lv-"+h)
	}
	f.waitMesh()
	f.waitReach("up")
	f.waitSteady(3 * time.Second)

	// Stopped on purpose: no verdict, routes stay.
	logFrom := f.logLens()
	lab.Stop("host3")
	stopped := time.Now()
	for time.Since(stopped) < 3*time.Second { // five times the detect time
		for _, h := range f.others("host3") {
			if ok, err := f.routesVia(h, "host3"); err == nil && !ok {
				t.Fatalf("%s dropped its routes via host3, which was only stopping (after %s)", h, time.Since(stopped).Round(time.Millisecond))
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	if a := f.unreachableLines(logFrom); len(a) > 0 {
		t.Errorf("a host stopped on purpose was called unreachable:\n%s", strings.Join(a, "\n"))
	}
	lab.Start("host3")
	f.waitMesh()
	f.waitReach("up")
	f.waitSteady(3 * time.Second)

	// Killed: unreachable, then dead; routes gone.
	logFrom = f.logLens()
	if err := syscall.Kill(bgpPid(t, lab, "host3"), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	for _, h := range f.others("host3") {
		bgpWaitFor(t, 10*time.Second, 20*time.Millisecond, h+" dropping its routes via the killed host3", func() (bool, string) {
			ok, err := f.routesVia(h, "host3")
			return err == nil && !ok, fmt.Sprint(err)
		})
	}
	for _, h := range f.others("host3") {
		bgpWaitFor(t, 30*time.Second, 100*time.Millisecond, h+" saying host3 is dead", func() (bool, string) {
			n, err := f.node(h, "host3")
			return err == nil && n.Gossip == "dead", fmt.Sprintf("%+v %v", n, err)
		})
		log := f.lab.Log(h)
		log = log[min(logFrom[h], len(log)):]
		un, dead := lineOf(log, `msg="host unreachable"`, "peer=host3 "), lineOf(log, `msg="member dead"`, "member=host3 ")
		if un < 0 || (dead >= 0 && dead < un) {
			t.Errorf("%s did not find host3 unreachable before gossip found it dead (lines %d, %d of):\n%s", h, un, dead, log)
		}
	}
	if a := f.falseAlarms(logFrom, "host3"); len(a) > 0 {
		t.Errorf("a live host was called dead or unreachable:\n%s", strings.Join(a, "\n"))
	}
	_, _ = lab.script("kill", "host3") // lab.sh forgets it
	lab.Start("host3")
	f.waitMesh()
	f.waitReach("up")
}

// waitReach waits until every host's liveness check says want of every
// other host.
func (f *failover) waitReach(want string) {
	f.t.Helper()
	for _, h := range f.hosts {
		for _, o := range f.others(h) {
			bgpWaitFor(f.t, 30*time.Second, 100*time.Millisecond, h+" finding "+o+" "+want, func() (bool, string) {
				n, err := f.node(h, o)
				return err == nil && n.Reach == want, fmt.Sprintf("%+v %v", n, err)
			})
		}
	}
}

// waitSteady waits until every host has routed via every other for d
// without a break (BGP's topology settles after hosts join: automatic
// reflectors, sessions replaced).
func (f *failover) waitSteady(d time.Duration) {
	f.t.Helper()
	since := time.Now()
	bgpWaitFor(f.t, 60*time.Second, 50*time.Millisecond, fmt.Sprintf("every host routing via every other for %s", d), func() (bool, string) {
		for _, h := range f.hosts {
			for _, o := range f.others(h) {
				if ok, err := f.routesVia(h, o); err != nil || !ok {
					since = time.Now()
					return false, fmt.Sprintf("%s not via %s (%v)", h, o, err)
				}
			}
		}
		return time.Since(since) >= d, ""
	})
}

// logLens is how long each host's log is now.
func (f *failover) logLens() map[string]int {
	m := map[string]int{}
	for _, h := range f.hosts {
		m[h] = len(f.lab.Log(h))
	}
	return m
}

// unreachableLines are the "host unreachable" lines since logFrom.
func (f *failover) unreachableLines(logFrom map[string]int) []string {
	var out []string
	for _, h := range f.hosts {
		log := f.lab.Log(h)
		if logFrom[h] > len(log) {
			continue
		}
		for _, l := range strings.Split(log[logFrom[h]:], "\n") {
			if strings.Contains(l, `msg="host unreachable"`) {
				out = append(out, h+": "+l)
			}
		}
	}
	return out
}

// lineOf is the index of the first line of log holding both a and b, or
// -1.
func lineOf(log, a, b string) int {
	for i, l := range strings.Split(log, "\n") {
		if strings.Contains(l, a) && strings.Contains(l, b) {
			return i
		}
	}
	return -1
}
