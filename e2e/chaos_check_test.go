package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"calico/node/api"
)

// The chaos test's invariants, checked after every step (healed at
// healed) and at the end.

// check checks the invariants after a step and reports what broke.
func (c *chaos) check(healed time.Time) {
	c.checkRunning()
	c.checkAddrs()
	c.settle()
	c.checkRoutes()
	c.checkIPAM()
	if bad := c.waitReach(healed, chaosReach); len(bad) > 0 {
		c.violation("within %s of the step's end, these allowed cells still do not answer:\n%s", chaosReach, capLines(bad, 20))
	}
	c.report()
}

// final checks, once the faults have stopped, that everything answers
// again and reports the run.
func (c *chaos) final() {
	c.mon.stepStarts(c.step.n+1, "end", time.Now())
	c.step = chaosStep{n: c.step.n + 1, kind: "end"}
	c.check(time.Now())
	n := c.mon.totals()
	c.t.Logf("chaos: %d probe lines read: %d tries on allowed cells (%d answered), %d on denied cells (%d got through)",
		n.lines, n.allowed, n.allowedAnswered, n.denied, n.deniedAnswered)
	if n.denied == 0 || n.allowed == 0 {
		c.t.Errorf("chaos: the probes tried %d allowed and %d denied cells: the run checked nothing", n.allowed, n.denied)
	}
}

// report fails the test with every broken invariant not reported yet,
// with its step and the seed.
func (c *chaos) report() {
	recs := c.mon.unreported()
	shown := 0
	for _, r := range recs {
		if shown == 20 {
			c.t.Errorf("… and %d more broken invariants", len(recs)-shown)
			break
		}
		c.t.Errorf("chaos: seed %d, step %d (%s): %s", c.seed, r.step, r.kind, r.what)
		shown++
	}
}

// fatal reports what broke so far and ends the test: the lab cannot go on.
func (c *chaos) fatal(format string, args ...any) {
	c.t.Helper()
	c.report()
	c.t.Fatalf("chaos: seed %d, step %d (%s): %s", c.seed, c.step.n, c.step.kind, fmt.Sprintf(format, args...))
}

// checkRunning finds nodes that exited without the test stopping them,
// and starts them again so the run can go on.
func (c *chaos) checkRunning() {
	for _, h := range c.up() {
		pid, err := c.lab.pid(h)
		if err == nil && !dead(pid) {
			continue
		}
		c.violation("%s's node exited by itself (pid %d, %v); its log ends:\n%s", h, pid, err, tail(c.lab.Log(h), 30))
		c.lab.Kill(h) // lab.sh's bookkeeping
		c.start(h)
	}
}

// checkAddrs: no two workloads the test holds have an address in common.
func (c *chaos) checkAddrs() {
	seen := map[string]string{}
	for _, w := range c.live() {
		for _, a := range w.addrs {
			if other, ok := seen[a]; ok {
				c.violation("%s and %s were both given %s", other, w.name, a)
			}
			seen[a] = w.name
		}
	}
}

// checkIPAM: `ipam check` finds no address used twice, at once, and
// nothing leaked or unallocated within chaosIPAM.
func (c *chaos) checkIPAM() {
	deadline := time.Now().Add(chaosIPAM)
	for {
		rep, err := c.ipamCheck(c.hosts[0])
		if err == nil && len(rep.Duplicate) > 0 {
			c.violation("ipam check finds addresses used twice: %+v", rep.Duplicate)
			return
		}
		if err == nil && len(rep.Leaked)+len(rep.Unallocated) == 0 {
			return
		}
		if time.Now().After(deadline) {
			c.violation("ipam check is not clean %s after the step: %v, leaked %+v, unallocated %+v", chaosIPAM, err, rep.Leaked, rep.Unallocated)
			return
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// settle waits until every host is healthy, in sync and programmed at
// the datastore's revision, with one cluster id, five live hosts, three
// voters and two clients, and the workloads the test made, or reports
// what is wrong after chaosSettle. A host of another cluster, or a node
// the test never started, is reported at once.
//
// The datastore's revision is that of a fence written once every host
// is healthy: etcd's own revision also counts writes the dataplane does
// not follow (IPAM), so no dataplane need ever reach it.
func (c *chaos) settle() {
	deadline := time.Now().Add(chaosSettle)
	var target int64
	for {
		problems, healthy := c.unsettled(target)
		if healthy && target == 0 {
			rev, err := c.fence()
			if err == nil {
				target = rev
				continue
			}
			problems = append(problems, "writing the fence: "+err.Error())
		}
		if len(problems) == 0 && target > 0 {
			return
		}
		if time.Now().After(deadline) {
			c.violation("%s after the step's end:\n%s", chaosSettle, strings.Join(problems, "\n"))
			return
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// fence writes the profile chaos-fence (no workload uses it) and returns
// its revision: every change made before it has a lower one.
func (c *chaos) fence() (int64, error) {
	c.fences++
	doc := fmt.Sprintf("apiVersion: projectcalico.org/v3\nkind: Profile\nmetadata: {name: chaos-fence}\nspec: {labelsToApply: {fence: \"%d\"}}\n", c.fences)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cl := api.NewClient(c.lab.DataDir(c.hosts[0]))
	if err := cl.DoRaw(ctx, "POST", "/v1/resources", url.Values{"mode": {"apply"}}, []byte(doc), nil); err != nil {
		return 0, err
	}
	var res api.Resources
	if err := cl.Do(ctx, "GET", "/v1/resources/profiles", url.Values{"name": {"chaos-fence"}}, nil, &res); err != nil {
		return 0, err
	}
	var p struct {
		Metadata struct {
			ResourceVersion string `json:"resourceVersion"`
		} `json:"metadata"`
	}
	if len(res.Items) != 1 || json.Unmarshal(res.Items[0], &p) != nil {
		return 0, fmt.Errorf("reading profile chaos-fence back: %d items", len(res.Items))
	}
	return strconv.ParseInt(p.Metadata.ResourceVersion, 10, 64)
}

// unsettled lists what is not settled yet, and whether every host
// answered with a healthy datastore in sync.
func (c *chaos) unsettled(target int64) ([]string, bool) {
	var problems []string
	healthy := true
	mine := map[string]int{}
	for _, w := range c.live() {
		mine[w.host]++
	}
	for _, h := range c.hosts {
		st, err := c.statusOf(h)
		if err != nil {
			problems = append(problems, fmt.Sprintf("%s: status: %v", h, err))
			healthy = false
			continue
		}
		if st.ClusterID != c.clusterID {
			c.fatal("%s is in cluster %s; the lab's cluster is %s: a second cluster", h, st.ClusterID, c.clusterID)
		}
		for _, n := range st.Nodes {
			if !slices.Contains(c.hosts, n.Name) {
				c.fatal("%s lists node %s, which the test never started", h, n.Name)
			}
		}
		var p []string
		if !st.Datastore.Healthy || !st.Datastore.InSync {
			healthy = false
			p = append(p, fmt.Sprintf("datastore healthy %v, in sync %v (%s)", st.Datastore.Healthy, st.Datastore.InSync, st.Datastore.Error))
		}
		if st.Dataplane.Error != "" {
			p = append(p, "dataplane error: "+st.Dataplane.Error)
		}
		if target > 0 && st.Dataplane.Revision < target {
			p = append(p, fmt.Sprintf("dataplane at revision %d, the fence at %d", st.Dataplane.Revision, target))
		}
		if st.Dataplane.Endpoints != mine[h] {
			p = append(p, fmt.Sprintf("programs %d endpoints; the test made %d here", st.Dataplane.Endpoints, mine[h]))
		}
		for _, pr := range st.Problems {
			if strings.Contains(pr, "data dir full") {
				p = append(p, pr)
			}
		}
		if v := checkView(apiNodes(st.Nodes), c.hosts, nil); v != "" {
			p = append(p, "sees "+v)
		}
		for _, x := range p {
			problems = append(problems, h+": "+x)
		}
	}
	return problems, healthy
}

// waitReach waits until every allowed cell among the live workloads has
// answered since since, and returns the cells that did not within.
func (c *chaos) waitReach(since time.Time, within time.Duration) []string {
	deadline := time.Now().Add(within)
	for {
		bad := c.mon.unreached(c.live(), since)
		if len(bad) == 0 || time.Now().After(deadline) {
			return bad
		}
		time.Sleep(250 * time.Millisecond)
	}
}

func capLines(lines []string, n int) string {
	if len(lines) <= n {
		return strings.Join(lines, "\n")
	}
	return strings.Join(lines[:n], "\n") + fmt.Sprintf("\n… and %d more", len(lines)-n)
}

// apiNodes are a status's nodes as `calico node list -o json` gives them.
func apiNodes(ns []api.Node) []NodeInfo {
	out := make([]NodeInfo, len(ns))
	for i, n := range ns {
		out[i] = NodeInfo{Name: n.Name, Role: n.Role, Gossip: n.Gossip}
	}
	return out
}

// hold lets a fault last d, checking every second what must hold while
// it lasts (during).
func (c *chaos) hold(d time.Duration) {
	end := time.Now().Add(d)
	for {
		c.during()
		rest := time.Until(end)
		if rest <= 0 {
			return
		}
		time.Sleep(min(rest, time.Second))
	}
}

// during checks what must hold while a fault lasts: every host that
// answers is in the lab's cluster and lists no node the test did not
// start, and every host whose datastore answers sees three voters (a
// seat changing hands may take chaosSeat).
func (c *chaos) during() {
	up := c.up()
	sts := make([]api.Status, len(up))
	errs := make([]error, len(up))
	var wg sync.WaitGroup
	for i, h := range up {
		wg.Go(func() { sts[i], errs[i] = c.statusOf(h) })
	}
	wg.Wait()
	var off []string
	for i, st := range sts {
		if errs[i] != nil {
			continue
		}
		if st.ClusterID != c.clusterID {
			c.fatal("%s is in cluster %s; the lab's cluster is %s: a second cluster", up[i], st.ClusterID, c.clusterID)
		}
		voters := 0
		for _, n := range st.Nodes {
			if !slices.Contains(c.hosts, n.Name) {
				c.fatal("%s lists node %s, which the test never started", up[i], n.Name)
			}
			if n.Role == "voter" {
				voters++
			}
		}
		if st.Datastore.Healthy && voters != 3 {
			off = append(off, fmt.Sprintf("%s sees %s", up[i], describe(apiNodes(st.Nodes))))
		}
	}
	switch {
	case len(off) == 0 || len(up) < 3:
		c.seatOff = time.Time{}
	case c.seatOff.IsZero():
		c.seatOff = time.Now()
	case time.Since(c.seatOff) > chaosSeat:
		c.violation("with %d hosts up, not three voters for %s: %s", len(up), chaosSeat, strings.Join(off, "; "))
		c.seatOff = time.Time{}
	}
}

// writable checks that every host whose node runs, but the one at fault,
// writes to the datastore within chaosWritable of the fault (one voter
// down leaves a quorum), and says how long the slowest took.
func (c *chaos) writable(fault string, since time.Time) string {
	hosts := slices.DeleteFunc(c.up(), func(h string) bool { return h == fault })
	took := make([]time.Duration, len(hosts))
	errs := make([]error, len(hosts))
	var wg sync.WaitGroup
	for i, h := range hosts {
		wg.Go(func() { took[i], errs[i] = c.writeFrom(h, since) })
	}
	wg.Wait()
	var slowest time.Duration
	for i, h := range hosts {
		switch {
		case errs[i] != nil:
			c.violation("with %s at fault, %s cannot write to the datastore for %s: %v", fault, h, took[i].Round(100*time.Millisecond), errs[i])
		case took[i] > chaosWritable:
			c.violation("with %s at fault, %s's first write succeeded %s after the fault; want within %s", fault, h, took[i].Round(100*time.Millisecond), chaosWritable)
		}
		slowest = max(slowest, took[i])
	}
	return fmt.Sprintf("the others wrote within %s", slowest.Round(100*time.Millisecond))
}

// writeFrom writes the profile chaos-write-HOST from host until a write
// succeeds, and returns how long after since it did.
func (c *chaos) writeFrom(host string, since time.Time) (time.Duration, error) {
	cl := api.NewClient(c.lab.DataDir(host))
	for {
		doc := fmt.Sprintf("apiVersion: projectcalico.org/v3\nkind: Profile\nmetadata: {name: chaos-write-%s}\nspec: {labelsToApply: {at: %q}}\n",
			host, time.Now().Format("150405.000"))
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err := cl.DoRaw(ctx, "POST", "/v1/resources", url.Values{"mode": {"apply"}}, []byte(doc), nil)
		cancel()
		if err == nil || time.Since(since) > 2*chaosWritable {
			return time.Since(since), err
		}
		time.Sleep(200 * time.Millisecond)
	}
}
