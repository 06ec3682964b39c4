package e2e

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"calico/e2e/sim"
	"calico/node/api"
)

// TestScaleSim runs five real nodes (host1-3 the etcd voters, host4 the
// node under test, host5 another client) among 20 simulated hosts, with
// the mesh limited to 10 nodes so that the voters are route reflectors,
// and checks what is correct, never how fast:
//
//   - the reflectors are the voters: host4 and every simulated host peer
//     with host1-3 only, and the voters with every node;
//   - host4's routes to the other hosts' blocks are exactly what the
//     datastore says (block via its host), though host4 has no session
//     to any simulated host: the reflectors carry them;
//   - host4's set for a policy's selector holds exactly the addresses of
//     the endpoints the datastore has for it;
//   - while the topology changes (the mesh's size raised past the
//     cluster, so every node peers with every other, then lowered again;
//     then a reflector killed), no route host4 had is ever missing;
//   - after churn (workloads added and removed, a host joining, one
//     leaving) routes and sets match the datastore again;
//   - the liveness check runs between BGP neighbours only: host4 watches
//     its reflectors, not host5, which the reflectors watch; host5
//     killed, the reflectors find it unreachable, host4 gives no verdict
//     of its own and still loses its route via host5.
func TestScaleSim(t *testing.T) {
	const hosts, perHost = 20, 4
	l := newSimLab(t, 5, 0, 10)
	l.MustCalico("host4", "workload", "add", "db1", "--label", "role=db")
	l.MustCalico("host5", "workload", "add", "w5")
	l.apply(`apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata: {name: db-from-app-1}
spec:
  selector: role == 'db'
  types: [Ingress]
  ingress: [{action: Allow, source: {selector: app == 'app-1'}}]
`)
	l.simDo("POST", "/grow", sim.Grow{Hosts: hosts, PerHost: perHost, Apps: 4, Parallel: 8}, nil)

	voters := []string{l.Addr("host1"), l.Addr("host2"), l.Addr("host3")}
	l.checkReflectors(voters, hosts)
	want := l.checkRoutes("host4")
	l.checkSets("host4", "app-1")
	t.Logf("%d simulated hosts peer with the voters only; host4's %d routes to other hosts' blocks and its set for app-1 match the datastore", hosts, len(want))

	// Every route host4 has to a simulated host's block must stay while
	// the topology changes.
	missing := l.watchRoutes("host4", want)
	l.setMeshMax(100)
	eventually(t, 60*time.Second, "host4 to peer with every simulated host (a mesh)", func() bool {
		ss, err := l.sessions("host4")
		return err == nil && countUp(ss, "mesh") >= hosts+3
	})
	l.setMeshMax(10)
	eventually(t, 60*time.Second, "host4 to peer with the reflectors only again", func() bool {
		ss, err := l.sessions("host4")
		return err == nil && len(ss) == 6 && countUp(ss, "reflector") == 6
	})
	l.KillNow("host2")
	eventually(t, 30*time.Second, "host4's session to the dead reflector to drop", func() bool {
		ss, err := l.sessions("host4")
		return err == nil && countUp(ss, "reflector") == 4
	})
	if m := missing(); len(m) > 0 {
		t.Errorf("routes missing on host4 while the topology changed: %s", strings.Join(m[:min(5, len(m))], "; "))
	} else {
		t.Log("mesh and back to reflectors, then a reflector killed: no route missing on host4")
	}
	l.Kill("host2")

	var res sim.ChurnResult
	l.simDo("POST", "/churn", sim.Churn{Rate: 10, Duration: 5 * time.Second, JoinsPerMinute: 12, LeavesPerMinute: 12,
		PerHost: perHost, Apps: 4, Parallel: 8}, &res)
	if len(res.Errors) > 0 || res.Adds == 0 || res.Removes == 0 || res.Joins == 0 || res.Leaves == 0 {
		t.Fatalf("churn: %d adds, %d removes, %d joins, %d leaves, errors %q", res.Adds, res.Removes, res.Joins, res.Leaves, res.Errors)
	}
	after := l.checkRoutesWithout("host4", "host2")
	l.checkSets("host4", "app-1")
	t.Logf("after churn (%d adds, %d removes, %d joins, %d leaves) host4's %d routes and its set match the datastore",
		res.Adds, res.Removes, res.Joins, res.Leaves, len(after))
	l.checkLivenessScope(after)
}

// checkLivenessScope: host4 (a client) watches its live reflectors and
// not host5 (another client); host1 (a reflector) watches both. host5
// killed, host1 and host3 find it unreachable, host4 does not judge it,
// and host4's route to host5's block goes all the same (the reflectors
// withdraw it).
func (l *simLab) checkLivenessScope(routes map[netip.Prefix]netip.Addr) {
	l.t.Helper()
	reach := func(host string) map[string]string {
		nodes, err := l.Nodes(host)
		if err != nil {
			return nil
		}
		out := map[string]string{}
		for _, n := range nodes {
			out[n.Name] = n.Reach
		}
		return out
	}
	waitFor(l.t, 30*time.Second, "host4 watching host1 and host3 only, host1 watching host4 and host5", func() (bool, string) {
		r4, r1 := reach("host4"), reach("host1")
		ok := r4["host1"] == "up" && r4["host3"] == "up" && r4["host5"] == "" && r1["host4"] == "up" && r1["host5"] == "up"
		return ok, fmt.Sprintf("host4 finds %v; host1 finds %v", r4, r1)
	})
	five := netip.MustParseAddr(l.Addr("host5"))
	var block netip.Prefix
	for p, via := range routes {
		if via == five {
			block = p
		}
	}
	if !block.IsValid() {
		l.t.Fatalf("host4 has no route via host5 (%s) to kill: %v", five, routes)
	}
	logFrom := map[string]int{}
	for _, h := range []string{"host1", "host3", "host4"} {
		logFrom[h] = len(l.Log(h))
	}
	l.KillNow("host5")
	waitFor(l.t, 60*time.Second, "host4 to drop its route to host5's block "+block.String(), func() (bool, string) {
		rs, err := l.kernelRoutes("host4")
		if err != nil {
			return false, err.Error()
		}
		_, ok := rs[block]
		return !ok, fmt.Sprintf("%s via %v", block, rs[block])
	})
	unreachable := func(h string) bool {
		log := l.Log(h)
		return strings.Contains(log[min(logFrom[h], len(log)):], `msg="host unreachable" component=liveness peer=host5 `)
	}
	waitFor(l.t, 30*time.Second, "host1 and host3 to find host5 unreachable", func() (bool, string) {
		return unreachable("host1") && unreachable("host3"), ""
	})
	if unreachable("host4") {
		l.t.Error("host4 judged host5, which is not its BGP neighbour")
	}
	l.Kill("host5")
}

func countUp(ss []api.BGPSession, typ string) int {
	n := 0
	for _, s := range ss {
		if s.State == "established" && s.Type == typ {
			n++
		}
	}
	return n
}

// checkReflectors: the simulated hosts and host4 peer with the voters
// only; each voter with every node.
func (l *simLab) checkReflectors(voters []string, hosts int) {
	l.t.Helper()
	key := strings.Join(voters, ",")
	waitFor(l.t, 60*time.Second, "every simulated host to peer with the voters only, all sessions up", func() (bool, string) {
		st := l.simStats()
		return st.PeerSets[key] == hosts && st.Up == 3*hosts, fmt.Sprintf("peer sets %v, %d of %d sessions up", st.PeerSets, st.Up, st.Sessions)
	})
	waitFor(l.t, 60*time.Second, "host4 to peer with the voters only (IPv4 and IPv6), as their client", func() (bool, string) {
		ss, err := l.sessions("host4")
		if err != nil || len(ss) != 6 {
			return false, fmt.Sprint(ss, err)
		}
		for _, s := range ss {
			a := netip.MustParseAddr(s.Peer)
			if s.Type != "reflector" || s.State != "established" || (a.Is4() && !slices.Contains(voters, s.Peer)) {
				return false, fmt.Sprint(ss)
			}
		}
		return true, ""
	})
	waitFor(l.t, 60*time.Second, "host1 to peer with every node", func() (bool, string) {
		ss, err := l.sessions("host1")
		return err == nil && countUp(ss, "reflector") == hosts+4+4, fmt.Sprint(ss, err) // IPv4 to all, IPv6 to host2-5
	})
}

// checkRoutes waits until host's routes to other hosts' blocks are what
// the datastore says, and returns them.
func (l *simLab) checkRoutes(host string) map[netip.Prefix]netip.Addr {
	return l.checkRoutesWithout(host)
}

func (l *simLab) checkRoutesWithout(host string, dead ...string) map[netip.Prefix]netip.Addr {
	l.t.Helper()
	var want map[netip.Prefix]netip.Addr
	var diff []string
	deadline := time.Now().Add(60 * time.Second)
	for {
		var err error
		want, err = l.expectedRoutes(host, dead...)
		if err == nil {
			var have map[netip.Prefix][]netip.Addr
			have, err = l.kernelRoutes(host)
			if err == nil {
				diff = routesMatch(want, have)
			}
		}
		if err == nil && len(diff) == 0 && len(want) > 0 {
			return want
		}
		if time.Now().After(deadline) {
			// The BGP sessions the host holds, and the simulated hosts
			// that have or advertise a differing block or are its next
			// hop, to tell which peer still carries a route the
			// datastore no longer has.
			ss, _ := l.Exec(host, "ss", "-tn", "( sport = :179 or dport = :179 )")
			l.t.Fatalf("%s's routes differ from the datastore (%d blocks): err %v, %d differences: %s\n%s's BGP connections:\n%s\nsimulated hosts concerned:\n%s\nroutes the agents last installed from BGP for those blocks:\n%s",
				host, len(want), err, len(diff), strings.Join(diff[:min(5, len(diff))], "; "), host, ss, l.simHostsConcerned(want, host), l.installedFor(diff))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// installedFor says, for the blocks the differences name, what each real
// node's agent last installed from BGP: whether the host's own speaker
// still held a path (a withdrawal that never came) or its routes were
// not brought in line with it.
func (l *simLab) installedFor(diff []string) string {
	var b strings.Builder
	for i := 1; i <= l.real; i++ {
		h := fmt.Sprintf("host%d", i)
		var rs api.BGPRoutes
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err := api.NewClient(l.DataDir(h)).Do(ctx, "GET", "/v1/bgp/routes", nil, nil, &rs)
		cancel()
		if err != nil {
			fmt.Fprintf(&b, "%s: %v\n", h, err)
			continue
		}
		var found []string
		for _, r := range rs.Installed {
			for _, d := range diff {
				if strings.HasPrefix(d, r.Dst+" ") {
					found = append(found, fmt.Sprintf("%s via %v", r.Dst, r.Via))
				}
			}
		}
		fmt.Fprintf(&b, "%s: %d installed, of those blocks: %v\n", h, len(rs.Installed), found)
	}
	return b.String()
}

// simHostsConcerned describes the simulated hosts that hold, advertise
// or are the next hop of a block on which host's routes and want differ.
func (l *simLab) simHostsConcerned(want map[netip.Prefix]netip.Addr, host string) string {
	have, err := l.kernelRoutes(host)
	if err != nil {
		return err.Error()
	}
	var hosts []sim.HostInfo
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := l.sim.Do(ctx, "GET", "/hosts", nil, &hosts); err != nil {
		return err.Error()
	}
	differs := map[netip.Prefix]bool{}
	hops := map[netip.Addr]bool{}
	for dst, via := range want {
		if !slices.Equal(have[dst], []netip.Addr{via}) {
			differs[dst] = true
			for _, a := range have[dst] {
				hops[a] = true
			}
		}
	}
	for dst, via := range have {
		if _, ok := want[dst]; !ok && netip.MustParsePrefix(simPool).Contains(dst.Addr()) && dst.Bits() < 32 {
			differs[dst] = true
			for _, a := range via {
				hops[a] = true
			}
		}
	}
	var out []string
	for _, h := range hosts {
		concerned := hops[h.Addr]
		for _, p := range append(slices.Clone(h.Blocks), h.Advertised...) {
			concerned = concerned || differs[p]
		}
		if concerned {
			out = append(out, fmt.Sprintf("%s %s dead=%v blocks=%v advertised=%v peers=%v up=%d", h.Name, h.Addr, h.Dead, h.Blocks, h.Advertised, h.Peers, h.Up))
		}
	}
	if len(out) == 0 {
		return "none (no live simulated host has those blocks or addresses)"
	}
	return strings.Join(out, "\n")
}

// checkSets waits until one of host's sets holds exactly the addresses of
// the endpoints with label app (the policy's selector).
func (l *simLab) checkSets(host, app string) {
	l.t.Helper()
	var want []string
	eventually(l.t, 60*time.Second, fmt.Sprintf("a set on %s to hold every endpoint of %s", host, app), func() bool {
		var err error
		if want, err = l.appAddrs(host, app); err != nil || len(want) == 0 {
			return false
		}
		sets, err := l.nftSets(host)
		if err != nil {
			return false
		}
		for _, elems := range sets {
			if slices.Equal(elems, want) {
				return true
			}
		}
		return false
	})
}

// watchRoutes polls host's routes until the test ends, and returns what
// reports each route of want that was ever missing or went elsewhere.
func (l *simLab) watchRoutes(host string, want map[netip.Prefix]netip.Addr) func() []string {
	var mu sync.Mutex
	var missing []string
	var stop atomic.Bool
	var wg sync.WaitGroup
	wg.Go(func() {
		for !stop.Load() {
			have, err := l.kernelRoutes(host)
			if err == nil {
				for dst, via := range want {
					if !slices.Equal(have[dst], []netip.Addr{via}) {
						mu.Lock()
						missing = append(missing, fmt.Sprintf("%s at %s (kernel: %v)", dst, time.Now().Format("15:04:05.000"), have[dst]))
						mu.Unlock()
					}
				}
			}
			time.Sleep(50 * time.Millisecond)
		}
	})
	l.t.Cleanup(func() { stop.Store(true); wg.Wait() })
	return func() []string {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(missing)
	}
}
