package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"calico/node/api"
)

// The chaos test's world: the lab, the workloads and their probes, and
// the workload changes the steps make.

// chaosWorkload is a workload of the chaos test and the probe in it.
type chaosWorkload struct {
	name, host, profile string
	addrs               []string
	netns               string
	probe               *exec.Cmd
	read                sync.WaitGroup // the probe's output
	// leaving: taken out of the targets, to be removed.
	leaving bool
}

// chaosAdd is an add whose outcome is unknown.
type chaosAdd struct{ name, host, profile string }

// chaos is the state of one chaos run.
type chaos struct {
	t     *testing.T
	lab   *Lab
	seed  uint64
	hosts []string
	extra []string // every node's further `calico up` arguments
	mon   *chaosMonitor
	// targets is the file every probe reads its targets from.
	targets   string
	clusterID string
	netem     bool
	step      chaosStep
	faults    map[string]int

	mu        sync.Mutex
	workloads map[string]*chaosWorkload
	gen       int
	seq       int // of churn workloads' names
	fences    int
	seatOff   time.Time       // since when a host has seen other than three voters
	down      map[string]bool // nodes the test stopped
	// pendingAdd and pendingRm are changes whose outcome is unknown (the
	// command failed): resolve retries them once the fault is healed.
	pendingAdd map[string]chaosAdd
	pendingRm  map[string]*chaosWorkload
	policy     chaosPolicy
}

func newChaos(t *testing.T, seed uint64) *chaos {
	// A tmpfs per data dir, so that a disk can be filled for real.
	t.Setenv("CALICO_LAB_TMPFS", chaosTmpfs)
	c := &chaos{
		t: t, seed: seed, hosts: hostNames(5), faults: map[string]int{},
		extra:     []string{"--voter-replace-after", chaosReplaceAfter.String()},
		workloads: map[string]*chaosWorkload{}, down: map[string]bool{},
		pendingAdd: map[string]chaosAdd{}, pendingRm: map[string]*chaosWorkload{},
	}
	c.lab = NewLab(t, len(c.hosts), 1)
	c.mon = newChaosMonitor()
	c.targets = filepath.Join(t.TempDir(), "targets")
	// Probes end before the lab goes (cleanups run last first).
	t.Cleanup(func() {
		c.mu.Lock()
		ws := slices.Collect(func(yield func(*chaosWorkload) bool) {
			for _, w := range c.workloads {
				if !yield(w) {
					return
				}
			}
		})
		c.mu.Unlock()
		for _, w := range ws {
			c.stopProbe(w)
		}
	})
	return c
}

// setup forms the cluster, writes the policy, adds a workload of each
// profile on every host, starts their probes and waits until every
// allowed cell answers.
func (c *chaos) setup() {
	t := c.t
	formCluster(t, c.lab, c.hosts, false, c.extra...)
	c.clusterID = clusterID(t, c.lab, c.hosts)
	c.netem = c.haveNetem()
	if !c.netem {
		t.Logf("chaos: this kernel has no netem qdisc (tc qdisc add … netem fails): lossy links drop with an nftables rule (numgen random) and delay by queueing in a tbf rate limit")
	}
	c.policy = chaosPolicy{order: 100, selector: chaosSelectors[0], ports: chaosDenyPorts[0]}
	if err := c.applyPolicy(c.hosts[0], c.policy); err != nil {
		t.Fatal(err)
	}
	c.writeTargets()
	var wg sync.WaitGroup
	errs := make([]error, 2*len(c.hosts))
	for i, h := range c.hosts {
		for j, p := range []string{"a", "b"} {
			wg.Go(func() { errs[2*i+j] = c.add(h, fmt.Sprintf("%s-%s%d", labName(), p, i+1), p) })
		}
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	if bad := c.waitReach(time.Now(), chaosReach); len(bad) > 0 {
		t.Fatalf("before any fault, these cells do not answer within %s:\n%s", chaosReach, strings.Join(bad, "\n"))
	}
}

// live lists the workloads that are not leaving, by name.
func (c *chaos) live() []*chaosWorkload {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []*chaosWorkload
	for _, w := range c.workloads {
		if !w.leaving {
			out = append(out, w)
		}
	}
	slices.SortFunc(out, func(a, b *chaosWorkload) int { return strings.Compare(a.name, b.name) })
	return out
}

// up lists the hosts whose node runs (as far as the test knows).
func (c *chaos) up() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.DeleteFunc(slices.Clone(c.hosts), func(h string) bool { return c.down[h] })
}

func (c *chaos) setDown(h string, down bool) {
	c.mu.Lock()
	c.down[h] = down
	c.mu.Unlock()
}

// voter is the (pick%3)th voter as host1's… first answering host sees it.
func (c *chaos) voter(pick int) string {
	for _, h := range c.up() {
		st, err := tryStatus(c.lab, h)
		if err != nil {
			continue
		}
		var voters []string
		for _, n := range st.Nodes {
			if n.Role == "voter" {
				voters = append(voters, n.Name)
			}
		}
		if len(voters) > 0 {
			slices.Sort(voters)
			return voters[pick%len(voters)]
		}
	}
	c.t.Fatalf("step %d: no host says who the voters are", c.step.n)
	return ""
}

// add adds a workload and starts its probe; the workload joins the
// targets. An error leaves the add pending: resolve tries it again.
func (c *chaos) add(host, name, profile string) error {
	out, errs, err := c.lab.CalicoWithin(60*time.Second, host, "workload", "add", name, "--profile", profile, "-o", "json")
	if err != nil {
		c.mu.Lock()
		c.pendingAdd[name] = chaosAdd{name: name, host: host, profile: profile}
		c.mu.Unlock()
		return fmt.Errorf("workload add %s on %s: %v: %s", name, host, err, strings.TrimSpace(errs))
	}
	var wl api.Workload
	if err := json.Unmarshal([]byte(out), &wl); err != nil || len(wl.Addresses) != 2 {
		return fmt.Errorf("workload add %s on %s printed %q: %v", name, host, out, err)
	}
	w := &chaosWorkload{name: name, host: host, profile: profile, netns: wl.NetNS}
	for _, a := range wl.Addresses {
		w.addrs = append(w.addrs, a.String())
	}
	c.mu.Lock()
	delete(c.pendingAdd, name)
	if old, ok := c.workloads[name]; ok {
		c.mu.Unlock()
		if !slices.Equal(old.addrs, w.addrs) {
			return fmt.Errorf("workload add %s again gave %v; it has %v", name, w.addrs, old.addrs)
		}
		return nil
	}
	c.workloads[name] = w
	c.mu.Unlock()
	c.mon.own(w, time.Now())
	if err := c.startProbe(w); err != nil {
		return err
	}
	c.writeTargets()
	return nil
}

// remove takes a workload out of the targets, waits until every probe
// has stopped probing it, stops its probe and removes it. An error
// leaves the remove pending: resolve tries it again.
func (c *chaos) remove(w *chaosWorkload) error {
	c.mu.Lock()
	w.leaving = true
	c.mu.Unlock()
	gen := c.writeTargets()
	if err := c.waitGen(gen, 15*time.Second); err != nil {
		return err
	}
	c.stopProbe(w)
	return c.rm(w)
}

// rm is `calico workload rm`; a workload already gone counts as removed.
func (c *chaos) rm(w *chaosWorkload) error {
	_, errs, err := c.lab.CalicoWithin(60*time.Second, w.host, "workload", "rm", w.name)
	if err != nil && !strings.Contains(errs, "does not exist") {
		c.mu.Lock()
		c.pendingRm[w.name] = w
		c.mu.Unlock()
		return fmt.Errorf("workload rm %s on %s: %v: %s", w.name, w.host, err, strings.TrimSpace(errs))
	}
	c.mu.Lock()
	delete(c.pendingRm, w.name)
	delete(c.workloads, w.name)
	c.mu.Unlock()
	c.mon.disown(w, time.Now())
	return nil
}

// resolve settles the changes whose outcome a fault left unknown: an add
// is made again (it is idempotent by name: it gives the same workload or
// makes it afresh), a remove is done again. Both must succeed within a
// minute of the fault's end.
func (c *chaos) resolve() {
	deadline := time.Now().Add(time.Minute)
	for {
		c.mu.Lock()
		adds, rms := slices.Collect(mapValues(c.pendingAdd)), slices.Collect(mapValues(c.pendingRm))
		c.mu.Unlock()
		if len(adds)+len(rms) == 0 {
			return
		}
		var errs []error
		for _, w := range adds {
			errs = append(errs, c.add(w.host, w.name, w.profile))
		}
		for _, w := range rms {
			errs = append(errs, c.rm(w))
		}
		err := errors.Join(errs...)
		if err == nil {
			continue
		}
		if time.Now().After(deadline) {
			c.violation("a workload change cut short by the fault still fails a minute after it was healed: %v", err)
			return
		}
		time.Sleep(time.Second)
	}
}

func mapValues[K comparable, V any](m map[K]V) func(func(V) bool) {
	return func(yield func(V) bool) {
		for _, v := range m {
			if !yield(v) {
				return
			}
		}
	}
}

// churn adds adds workloads and removes rms of the ones churn added, on
// hosts whose node runs, all at once.
func (c *chaos) churn(rng *rand.Rand, adds, rms int) string {
	up := c.up()
	if len(up) == 0 {
		return "no host up to churn on"
	}
	var victims []*chaosWorkload
	for _, w := range c.live() {
		if strings.HasPrefix(w.name, labName()+"-c") && slices.Contains(up, w.host) {
			victims = append(victims, w)
		}
	}
	rng.Shuffle(len(victims), func(i, j int) { victims[i], victims[j] = victims[j], victims[i] })
	victims = victims[:min(rms, len(victims))]
	var did []string
	var wg sync.WaitGroup
	var mu sync.Mutex
	note := func(s string) { mu.Lock(); did = append(did, s); mu.Unlock() }
	for range adds {
		c.mu.Lock()
		c.seq++
		name := fmt.Sprintf("%s-c%d", labName(), c.seq)
		c.mu.Unlock()
		h, p := up[rng.IntN(len(up))], []string{"a", "b"}[rng.IntN(2)]
		wg.Go(func() {
			if err := c.add(h, name, p); err != nil {
				note(fmt.Sprintf("add %s (%s) on %s failed: %v", name, p, h, err))
				return
			}
			note(fmt.Sprintf("added %s (%s) on %s", name, p, h))
		})
	}
	for _, w := range victims {
		wg.Go(func() {
			if err := c.remove(w); err != nil {
				note(fmt.Sprintf("rm %s on %s failed: %v", w.name, w.host, err))
				return
			}
			note(fmt.Sprintf("removed %s from %s", w.name, w.host))
		})
	}
	wg.Wait()
	slices.Sort(did)
	return strings.Join(did, "; ")
}

// writeTargets writes the targets file, a new generation of it, and
// returns its generation.
func (c *chaos) writeTargets() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	var b strings.Builder
	fmt.Fprintf(&b, "gen %d\n", c.gen)
	for _, w := range c.workloads {
		if !w.leaving {
			for _, a := range w.addrs {
				fmt.Fprintf(&b, "%s %s\n", w.name, a)
			}
		}
	}
	tmp := c.targets + ".tmp"
	if err := os.WriteFile(tmp, []byte(b.String()), 0o644); err != nil {
		c.t.Errorf("writing the targets: %v", err)
	}
	if err := os.Rename(tmp, c.targets); err != nil {
		c.t.Errorf("writing the targets: %v", err)
	}
	return c.gen
}

// waitGen waits until every running probe probes generation gen or later.
func (c *chaos) waitGen(gen int, within time.Duration) error {
	deadline := time.Now().Add(within)
	for {
		var behind []string
		for _, w := range c.live() {
			if g := c.mon.gen(w.name); g < gen {
				behind = append(behind, fmt.Sprintf("%s at %d", w.name, g))
			}
		}
		if len(behind) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("probes still on an older target list after %s: %s", within, strings.Join(behind, ", "))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// startProbe runs `probe chaos` in the workload and feeds its output to
// the monitor.
func (c *chaos) startProbe(w *chaosWorkload) error {
	cmd := exec.Command("nsenter", "--net="+w.netns, probeBin, "chaos", w.name, c.targets, chaosInterval)
	// A test that dies (go test's -timeout) takes its probes along.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting the probe in %s: %v", w.name, err)
	}
	w.probe = cmd
	w.read.Go(func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			c.mon.line(w, sc.Text())
		}
		c.mu.Lock()
		stopped := w.probe == nil
		c.mu.Unlock()
		if !stopped {
			c.violation("the probe in workload %s (%s) exited by itself: its namespace %s is gone or broken", w.name, w.host, w.netns)
		}
	})
	return nil
}

// stopProbe ends a workload's probe.
func (c *chaos) stopProbe(w *chaosWorkload) {
	c.mu.Lock()
	p := w.probe
	w.probe = nil
	c.mu.Unlock()
	if p == nil {
		return
	}
	p.Process.Kill()
	w.read.Wait()
	p.Wait()
}

// violation records a broken invariant; check reports it with its step
// and the seed.
func (c *chaos) violation(format string, args ...any) {
	c.mon.record(time.Now(), format, args...)
}

func (c *chaos) violations() int { return c.mon.violations() }

// summary counts the steps of each kind.
func (c *chaos) summary() string {
	var out []string
	for _, k := range chaosKinds {
		if n := c.faults[k]; n > 0 {
			out = append(out, fmt.Sprintf("%s %d", k, n))
		}
	}
	return strings.Join(out, ", ")
}

// statusOf is host's status through its API, bounded.
func (c *chaos) statusOf(host string) (api.Status, error) {
	return tryStatus(c.lab, host)
}

// ipamCheck is `calico ipam check` through host's API.
func (c *chaos) ipamCheck(host string) (api.IPAMReport, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var rep api.IPAMReport
	err := api.NewClient(c.lab.DataDir(host)).Do(ctx, "GET", "/v1/ipam/check", nil, nil, &rep)
	return rep, err
}
