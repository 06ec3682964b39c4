package e2e

import (
	"crypto/rand"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// The chaos test's faults. Each injects its fault, calls during while it
// lasts, heals it, and says what it did.

// fabric runs a command in the lab's fabric namespace.
func fabric(args ...string) error {
	out, err := exec.Command("ip", append([]string{"netns", "exec", labName() + "-fabric"}, args...)...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s in the fabric: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// inHost runs a command in a host's namespace.
func inHost(host string, args ...string) error {
	out, err := exec.Command("ip", append([]string{"netns", "exec", hostNS(host)}, args...)...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s in %s: %v: %s", strings.Join(args, " "), host, err, strings.TrimSpace(string(out)))
	}
	return nil
}

// must fails the test on a fault that cannot be injected or healed: the
// lab itself is broken then.
func (c *chaos) must(err error) {
	c.t.Helper()
	if err != nil {
		c.fatal("%v", err)
	}
}

// haveNetem says whether this kernel has the netem qdisc.
func (c *chaos) haveNetem() bool {
	if fabric("tc", "qdisc", "add", "dev", "lab-host1", "root", "netem", "delay", "1ms") != nil {
		return false
	}
	c.must(fabric("tc", "qdisc", "del", "dev", "lab-host1", "root"))
	return true
}

// start starts a node the test stopped; a node that does not start ends
// the test.
func (c *chaos) start(h string) {
	c.t.Helper()
	if err := c.lab.StartWithin(90*time.Second, h, c.extra...); err != nil {
		c.fatal("%s's node does not start again: %v", h, err)
	}
	c.setDown(h, false)
}

// restart kills (kill -9) or stops (SIGTERM) a node, and starts it again
// after hold.
func (c *chaos) restart(h, kind string, hold time.Duration, during func()) string {
	verb := "killed (kill -9)"
	if kind == "kill" {
		c.lab.Kill(h)
	} else {
		verb = "stopped (SIGTERM)"
		c.lab.Stop(h)
	}
	c.setDown(h, true)
	at := time.Now()
	during()
	wrote := c.writable(h, at)
	c.hold(hold - time.Since(at))
	c.start(h)
	return fmt.Sprintf("%s %s's node (%s), started it again", verb, h, wrote)
}

// cut takes a host off the fabric, its link down or every packet
// dropped, and puts it back after hold.
func (c *chaos) cut(h string, rng *mrand.Rand, hold time.Duration, during func()) string {
	link := "lab-" + h
	var how string
	var heal func() error
	if rng.IntN(2) == 0 {
		how = "link down"
		c.must(fabric("ip", "link", "set", link, "down"))
		heal = func() error { return fabric("ip", "link", "set", link, "up") }
	} else {
		how = "100% loss"
		c.must(dropPackets(link, 100))
		heal = func() error { return fabric("nft", "delete", "table", "netdev", "chaos-"+link) }
	}
	at := time.Now()
	during()
	wrote := c.writable(h, at)
	c.hold(hold - time.Since(at))
	c.must(heal())
	return fmt.Sprintf("cut %s off the fabric (%s on %s; %s), healed", h, how, link, wrote)
}

// dropPackets drops percent of the packets both ways through a host's
// link, in the fabric (an nftables table chaos-LINK).
func dropPackets(link string, percent int) error {
	rule := fmt.Sprintf("numgen random mod 100 < %d drop", percent)
	if percent >= 100 {
		rule = "drop"
	}
	cmd := exec.Command("ip", "netns", "exec", labName()+"-fabric", "nft", "-f", "-")
	cmd.Stdin = strings.NewReader(fmt.Sprintf(`table netdev chaos-%[1]s {
	chain in { type filter hook ingress device "%[1]s" priority 0; %[2]s; }
	chain out { type filter hook egress device "%[1]s" priority 0; %[2]s; }
}
`, link, rule))
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("nft in the fabric: %v: %s", err, out)
	}
	return nil
}

// lossy drops and delays packets on a host's link for hold: netem where
// the kernel has it; else a random drop in nftables and a tbf rate limit
// whose queue delays bursts.
func (c *chaos) lossy(h string, rng *mrand.Rand, hold time.Duration, during func()) string {
	link := "lab-" + h
	loss, delay := 5+rng.IntN(26), 20+rng.IntN(130)
	var how string
	if c.netem {
		q := []string{"root", "netem", "delay", fmt.Sprintf("%dms", delay), fmt.Sprintf("%dms", delay/4), "loss", fmt.Sprintf("%d%%", loss)}
		c.must(fabric(append([]string{"tc", "qdisc", "replace", "dev", link}, q...)...))
		c.must(inHost(h, append([]string{"tc", "qdisc", "replace", "dev", "eth0"}, q...)...))
		how = fmt.Sprintf("netem: %d ms delay, %d%% loss each way", delay, loss)
	} else {
		q := []string{"root", "tbf", "rate", "1mbit", "burst", "4kb", "latency", fmt.Sprintf("%dms", delay)}
		c.must(dropPackets(link, loss))
		c.must(fabric(append([]string{"tc", "qdisc", "replace", "dev", link}, q...)...))
		c.must(inHost(h, append([]string{"tc", "qdisc", "replace", "dev", "eth0"}, q...)...))
		how = fmt.Sprintf("%d%% dropped each way, a 1 Mbit/s limit queueing up to %d ms", loss, delay)
	}
	during()
	c.hold(hold)
	c.must(fabric("tc", "qdisc", "del", "dev", link, "root"))
	c.must(inHost(h, "tc", "qdisc", "del", "dev", "eth0", "root"))
	if !c.netem {
		c.must(fabric("nft", "delete", "table", "netdev", "chaos-"+link))
	}
	return fmt.Sprintf("made %s's link lossy (%s), healed", h, how)
}

// diskFull fills a voter's data dir (its own tmpfs), leaving a little or
// nothing free, and frees it after hold. The node must notice (status
// says "data dir full") and stay up.
func (c *chaos) diskFull(h string, rng *mrand.Rand, hold time.Duration, during func()) string {
	dir := c.lab.DataDir(h)
	leave := []uint64{0, 16 << 20, 64 << 20}[rng.IntN(3)]
	before, err := freeSpace(dir)
	c.must(err)
	fill := filepath.Join(dir, "chaos-fill")
	c.must(fillUp(fill, before, leave))
	after, _ := freeSpace(dir)
	start := time.Now()
	during()
	noticed := "never said so"
	for time.Since(start) < hold+10*time.Second {
		if st, err := c.statusOf(h); err == nil && strings.Contains(strings.Join(st.Problems, " "), "data dir full") {
			noticed = fmt.Sprintf("said data dir full after %s", time.Since(start).Round(100*time.Millisecond))
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if strings.HasPrefix(noticed, "never") {
		c.violation("%s's data dir has %d MiB free (below the 96 MiB at which its etcd member stops), and its status did not say data dir full within %s", h, after>>20, hold+10*time.Second)
	}
	wrote := c.writable(h, start)
	c.hold(hold - time.Since(start))
	c.must(os.Remove(fill))
	return fmt.Sprintf("filled voter %s's data dir from %d MiB free to %d MiB; the node %s; %s; freed it", h, before>>20, after>>20, noticed, wrote)
}

// freeSpace is the space free for root in dir's file system, as the node
// counts it.
func freeSpace(dir string) (uint64, error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return 0, err
	}
	return st.Bfree * uint64(st.Bsize), nil
}

// fillUp writes a file that leaves leave bytes of free free; with leave 0
// it writes until the disk is full, like a runaway log.
func fillUp(path string, free, leave uint64) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	if leave > 0 {
		return syscall.Fallocate(int(f.Fd()), 0, 0, int64(free-leave))
	}
	buf := make([]byte, 1<<20)
	for {
		if _, err := f.Write(buf); err != nil {
			if errors.Is(err, syscall.ENOSPC) {
				return nil
			}
			return err
		}
	}
}

// corrupt stops a node, damages its state cache (state.db) and starts it.
func (c *chaos) corrupt(h string, rng *mrand.Rand, during func()) string {
	c.lab.Stop(h)
	c.setDown(h, true)
	during()
	db := filepath.Join(c.lab.DataDir(h), "state.db")
	b, err := os.ReadFile(db)
	c.must(err)
	var how string
	switch rng.IntN(3) {
	case 0:
		rand.Read(b)
		how = fmt.Sprintf("overwrote all %d bytes of", len(b))
	case 1:
		pages := len(b) / 4096
		n := 1 + rng.IntN(3)
		for range n {
			p := rng.IntN(pages)
			rand.Read(b[p*4096 : (p+1)*4096])
		}
		how = fmt.Sprintf("overwrote %d of the %d pages of", n, pages)
	default:
		n := rng.IntN(len(b))
		how = fmt.Sprintf("cut to %d of its %d bytes", n, len(b))
		b = b[:n]
	}
	c.must(os.WriteFile(db, b, 0o600))
	from := len(c.lab.Log(h))
	c.start(h)
	said := "started as if nothing were wrong"
	if strings.Contains(c.lab.Log(h)[from:], "state cache cannot be read") {
		said = "moved it aside and rebuilt it"
	}
	return fmt.Sprintf("stopped %s, %s its state.db; the node %s", h, how, said)
}

// killOp kills a node (kill -9) while it adds or removes a workload, and
// starts it again; resolve then makes the add or the remove again.
func (c *chaos) killOp(h string, rng *mrand.Rand) string {
	var victim *chaosWorkload
	for _, w := range c.live() {
		if w.host == h && strings.HasPrefix(w.name, labName()+"-c") {
			victim = w
		}
	}
	var op func() error
	var what string
	if victim == nil || rng.IntN(2) == 0 {
		c.mu.Lock()
		c.seq++
		name := fmt.Sprintf("%s-c%d", labName(), c.seq)
		c.mu.Unlock()
		p := []string{"a", "b"}[rng.IntN(2)]
		op = func() error { return c.add(h, name, p) }
		what = fmt.Sprintf("add %s (%s)", name, p)
	} else {
		c.mu.Lock()
		victim.leaving = true
		c.mu.Unlock()
		c.must(c.waitGen(c.writeTargets(), 15*time.Second))
		c.stopProbe(victim)
		op = func() error { return c.rm(victim) }
		what = "rm " + victim.name
	}
	done := make(chan error, 1)
	go func() { done <- op() }()
	// The CLI reaches the node after some 50 ms (lab.sh, nsenter); an
	// add or a remove takes about 100 ms more.
	after := time.Duration(50+rng.IntN(150)) * time.Millisecond
	time.Sleep(after) // into the operation
	c.lab.Kill(h)
	c.setDown(h, true)
	err := <-done
	c.hold(time.Duration(500+rng.IntN(2000)) * time.Millisecond)
	c.start(h)
	outcome := "it completed"
	if err != nil {
		outcome = "it failed: " + firstLine(err.Error())
	}
	return fmt.Sprintf("killed %s's node %s into workload %s (%s), started it again", h, after, what, outcome)
}

func firstLine(s string) string {
	l, _, _ := strings.Cut(s, "\n")
	return l
}

// voterLoss kills a voter's node for longer than --voter-replace-after,
// waits until a client has its seat, and starts it again (it comes back
// as a client).
func (c *chaos) voterLoss(v string, during func()) string {
	c.lab.Kill(v)
	c.setDown(v, true)
	killed := time.Now()
	during()
	wrote := c.writable(v, killed)
	var voters string
	within := chaosReplaceAfter + 90*time.Second
	for voters == "" {
		if time.Since(killed) > within {
			c.violation("voter %s's node has been dead %s and no client has its seat", v, within)
			break
		}
		c.hold(time.Second)
		voters = c.votersWithout(v)
	}
	took := time.Since(killed)
	c.start(v)
	return fmt.Sprintf("killed voter %s's node (%s); %s later the voters were %s; started it again", v, wrote, took.Round(100*time.Millisecond), voters)
}

// votersWithout lists three live voters other than v, once a host sees
// them; "" until then.
func (c *chaos) votersWithout(v string) string {
	for _, h := range c.up() {
		st, err := c.statusOf(h)
		if err != nil {
			continue
		}
		var voters []string
		for _, n := range st.Nodes {
			if n.Role == "voter" && n.Gossip == "alive" && n.Name != v {
				voters = append(voters, n.Name)
			}
		}
		if len(voters) == 3 {
			return strings.Join(voters, ",")
		}
	}
	return ""
}
