package e2e

import (
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// The chaos test: a five-host lab (three voters, two clients) with
// workloads of two profiles on every host, probing each other all the
// time, while a seeded random schedule of faults runs. The invariants
// (chaos_check_test.go), with their bounds:
//
//   - always: never a packet through a denied pair (every probe line is
//     judged as it comes); one cluster id on every host that answers, and
//     no node the test did not start; three voters as seen by every host
//     whose datastore answers, a seat changing hands allowed chaosSeat;
//   - while one host is at fault: every other host writes to the
//     datastore within chaosWritable;
//   - after every step and at the end: no two workloads with one address
//     and `ipam check` finding none used twice; no node that exited
//     unless the test stopped it; the cut short workload changes done
//     again within a minute; within chaosIPAM `ipam check` clean; within
//     chaosSettle every host's datastore healthy and in sync, its
//     dataplane at a fence's revision without error and with the
//     endpoints the test made there, no data dir full, five hosts alive,
//     three voters and two clients, and then every host's kernel
//     routing every workload as the datastore says (its own to its
//     interface, the others' via their host); within chaosReach every workload
//     answering every peer of its profile (TCP and ping, IPv4 and IPv6).
//
// A broken invariant fails the test with the step, its kind and the seed.
// CHAOS_SEED (a number, or "random") and CHAOS_STEPS choose the schedule;
// the default is the short fixed one CI runs. `make chaos` runs a longer
// random one.

const (
	// chaosDefaultSeed and chaosDefaultSteps are CI's schedule: the
	// first steps of any schedule are the short kinds, each once.
	chaosDefaultSeed  = 17
	chaosDefaultSteps = 12
	// chaosReplaceAfter is every node's --voter-replace-after: short,
	// so that the voterloss step sees a seat change hands.
	chaosReplaceAfter = 15 * time.Second
	// chaosTmpfs is the size of every host's data dir (a disk that can be
	// filled for real): room for the etcd member (123 MiB with its
	// preallocated log) and the 192 MiB free it needs to start.
	chaosTmpfs = "384m"
	// chaosInterval is how often every workload probes every other.
	chaosInterval = "1s"
	// chaosSettle bounds how long after a step every host may take to be
	// healthy, in sync and programmed, with three voters.
	chaosSettle = 60 * time.Second
	// chaosReach bounds how long after a step every allowed cell may take
	// to answer again.
	chaosReach = 30 * time.Second
	// chaosSeat bounds how long a host with a healthy datastore may see
	// other than three voters (a seat changing hands) while three or
	// more hosts are up.
	chaosSeat = 45 * time.Second
	// chaosWritable bounds how long after one host fails (killed,
	// stopped, cut off, its disk full) every other host may take to
	// write to the datastore again.
	chaosWritable = 10 * time.Second
	// chaosIPAM bounds how long after a step `ipam check` may take to be
	// clean (a node reconciling a cut short add).
	chaosIPAM = 30 * time.Second
)

// The kinds of step. The short ones make up the first steps of every
// schedule, in a seeded order, so that CI's twelve steps try each at least once.
var (
	chaosShortKinds = []string{"kill", "term", "cut", "lossy", "diskfull", "corrupt", "churn", "killop", "policy"}
	chaosKinds      = append(slices.Clone(chaosShortKinds), "voterloss")
)

// chaosStep is one step of the schedule.
type chaosStep struct {
	n    int
	kind string
	// pick chooses the host: hosts[pick%5], or the (pick%3)th voter.
	pick int
	// hold is how long the fault lasts.
	hold time.Duration
	// churn and policy run workload adds and removes, and a policy
	// change, while the fault lasts.
	churn, policy bool
	// rng makes the step's own choices (how to cut, what to corrupt …).
	rng *rand.Rand
}

func (s chaosStep) String() string {
	var with []string
	if s.churn {
		with = append(with, "churn")
	}
	if s.policy {
		with = append(with, "policy")
	}
	extra := ""
	if len(with) > 0 && s.kind != "churn" && s.kind != "policy" {
		extra = " with " + strings.Join(with, " and ")
	}
	return fmt.Sprintf("%s for %s%s", s.kind, s.hold.Round(100*time.Millisecond), extra)
}

// chaosPlan is the schedule a seed gives.
func chaosPlan(seed uint64, steps int) []chaosStep {
	rng := rand.New(rand.NewPCG(seed, 0x63616c69636f))
	short := slices.Clone(chaosShortKinds)
	rng.Shuffle(len(short), func(i, j int) { short[i], short[j] = short[j], short[i] })
	plan := make([]chaosStep, steps)
	for i := range plan {
		kind := short[i%len(short)]
		if i >= len(short) {
			kind = chaosKinds[rng.IntN(len(chaosKinds))]
		}
		plan[i] = chaosStep{
			n: i + 1, kind: kind, pick: rng.IntN(1 << 20),
			hold:  time.Duration(2000+rng.IntN(6000)) * time.Millisecond,
			churn: rng.IntN(2) == 0, policy: rng.IntN(3) == 0,
			rng: rand.New(rand.NewPCG(seed, uint64(i+1))),
		}
	}
	return plan
}

// chaosParams reads CHAOS_SEED and CHAOS_STEPS.
func chaosParams(t *testing.T) (uint64, int) {
	t.Helper()
	seed, steps := uint64(chaosDefaultSeed), chaosDefaultSteps
	switch s := os.Getenv("CHAOS_SEED"); s {
	case "":
	case "random":
		seed = uint64(time.Now().UnixNano()) % 1_000_000
	default:
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("CHAOS_SEED=%q: want a number or random", s)
		}
		seed = n
	}
	if s := os.Getenv("CHAOS_STEPS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			t.Fatalf("CHAOS_STEPS=%q: want a positive number", s)
		}
		steps = n
	}
	return seed, steps
}

// TestChaos runs the schedule and checks the invariants after every step
// and at the end.
func TestChaos(t *testing.T) {
	for _, tool := range []string{"nft", "tc", "mount", "umount"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("SKIP: the chaos test needs %s (Debian: apt-get install nftables iproute2 mount)", tool)
		}
	}
	seed, steps := chaosParams(t)
	plan := chaosPlan(seed, steps)
	t.Logf("chaos: seed %d, %d steps; CHAOS_SEED=%d CHAOS_STEPS=%d replays this schedule", seed, steps, seed, steps)
	start := time.Now()
	c := newChaos(t, seed)
	c.setup()
	t.Logf("chaos: the lab is up, %d workloads probe each other, every allowed cell answers (%s)", len(c.live()), time.Since(start).Round(time.Second))
	for _, s := range plan {
		c.run(s)
	}
	c.final()
	t.Logf("chaos: %d steps in %s; faults: %s; %d violations", steps, time.Since(start).Round(time.Second), c.summary(), c.violations())
}

// run runs one step: its fault, with churn and a policy change while it
// lasts, then the checks.
func (c *chaos) run(s chaosStep) {
	c.step = s
	began := time.Now()
	c.mon.stepStarts(s.n, s.kind, began)
	var ops sync.WaitGroup
	// The concurrent changes draw from sources of their own.
	churnRng, policyRng := rand.New(rand.NewPCG(s.rng.Uint64(), 1)), rand.New(rand.NewPCG(s.rng.Uint64(), 2))
	var concurrent []string
	var mu sync.Mutex
	during := func() {
		if s.churn {
			ops.Go(func() {
				did := c.churn(churnRng, 1+churnRng.IntN(2), churnRng.IntN(2))
				mu.Lock()
				concurrent = append(concurrent, "churn: "+did)
				mu.Unlock()
			})
		}
		if s.policy {
			ops.Go(func() {
				did := c.policyChange(policyRng)
				mu.Lock()
				concurrent = append(concurrent, "policy: "+did)
				mu.Unlock()
			})
		}
	}
	what := c.fault(s, during)
	ops.Wait()
	c.resolve()
	healed := time.Now()
	c.faults[s.kind]++
	c.check(healed)
	c.t.Logf("step %d: %s: %s (%s, checked in %s)", s.n, s, what, healed.Sub(began).Round(100*time.Millisecond), time.Since(healed).Round(100*time.Millisecond))
	for _, d := range concurrent {
		c.t.Logf("step %d:   meanwhile %s", s.n, d)
	}
}

// fault injects the step's fault, calls during while it lasts, and heals
// it. It says what it did.
func (c *chaos) fault(s chaosStep, during func()) string {
	h := c.hosts[s.pick%len(c.hosts)]
	switch s.kind {
	case "kill", "term":
		return c.restart(h, s.kind, s.hold, during)
	case "cut":
		return c.cut(h, s.rng, s.hold, during)
	case "lossy":
		return c.lossy(h, s.rng, s.hold, during)
	case "diskfull":
		return c.diskFull(c.voter(s.pick), s.rng, s.hold, during)
	case "corrupt":
		return c.corrupt(h, s.rng, during)
	case "churn":
		return c.churn(s.rng, 1+s.rng.IntN(3), 1+s.rng.IntN(2))
	case "killop":
		return c.killOp(h, s.rng)
	case "policy":
		return c.policyChange(s.rng)
	case "voterloss":
		return c.voterLoss(c.voter(s.pick), during)
	}
	c.t.Fatalf("unknown step kind %q", s.kind)
	return ""
}
