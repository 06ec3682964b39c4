package e2e

// The rolling upgrade: three lab hosts run the previous build, workloads
// on each keep TCP flows and pings going between hosts, and each host in
// turn is stopped (SIGTERM), gets the current binary and starts again.

import (
	"bufio"
	"fmt"
	"io"
	"maps"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// previousBuild builds calico from the commit before this branch's
// changes: $CALICO_UPGRADE_FROM, else where HEAD left main (HEAD's
// parent when HEAD is on main). The binary is kept in the temp dir, by
// commit, for the next run.
func previousBuild(t *testing.T) (bin, version string) {
	t.Helper()
	git := func(args ...string) string {
		out, err := exec.Command("git", append([]string{"-C", repoRoot}, args...)...).Output()
		if err != nil {
			t.Fatalf("git %s: %v", strings.Join(args, " "), err)
		}
		return strings.TrimSpace(string(out))
	}
	from := os.Getenv("CALICO_UPGRADE_FROM")
	if from == "" {
		from = git("merge-base", "HEAD", "main")
		if from == git("rev-parse", "HEAD") {
			from = git("rev-parse", "HEAD~1")
		}
	}
	commit := git("rev-parse", from+"^{commit}")
	version = git("describe", "--tags", "--always", commit)
	dir := filepath.Join(os.TempDir(), "calico-upgrade-from-"+commit)
	bin = filepath.Join(dir, "calico")
	if _, err := os.Stat(bin); err == nil {
		return bin, version
	}
	src := t.TempDir()
	archive := exec.Command("sh", "-c", `git -C "$1" archive "$2" | tar -x -C "$3"`, "sh", repoRoot, commit, src)
	if out, err := archive.CombinedOutput(); err != nil {
		t.Fatalf("extracting %s: %v\n%s", commit, err, out)
	}
	start := time.Now()
	build := exec.Command("go", "build", "-trimpath", "-ldflags", "-s -w -X calico/cli.Version="+version, "-o", bin+".tmp", ".")
	build.Dir = src
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building %s: %v\n%s", commit, err, out)
	}
	if err := os.Rename(bin+".tmp", bin); err != nil {
		t.Fatal(err)
	}
	t.Logf("built the previous calico (%s) in %s", version, time.Since(start).Round(time.Second))
	return bin, version
}

// binVersion is what `calico version` of bin says without a node.
func binVersion(t *testing.T, bin string) string {
	t.Helper()
	out, err := exec.Command(bin, "version", "--data-dir", t.TempDir()).Output()
	if err != nil {
		t.Fatalf("%s version: %v", bin, err)
	}
	return strings.TrimPrefix(strings.TrimSpace(string(out)), "calico ")
}

// installBinary puts bin at path the way install.sh does: a copy beside
// it, renamed over it.
func installBinary(t *testing.T, bin, path string) {
	t.Helper()
	os.MkdirAll(filepath.Dir(path), 0o755)
	copyFile(t, bin, path+".new", 0o755)
	if err := os.Rename(path+".new", path); err != nil {
		t.Fatal(err)
	}
}

// A pinger runs ping from a workload and records which echo requests
// were answered.
type pinger struct {
	name string
	cmd  *exec.Cmd
	done chan struct{}

	mu      sync.Mutex
	replied map[int]bool
	last    int
}

var icmpSeq = regexp.MustCompile(`icmp_seq=(\d+) `)

func startPinger(t *testing.T, from Workload, to string) *pinger {
	t.Helper()
	cmd := exec.Command("nsenter", "--net="+from.NetNS, "ping", "-n", "-O", "-i", "0.05", to)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &pinger{name: from.Name + " -> " + to, cmd: cmd, done: make(chan struct{}), replied: map[int]bool{}}
	go func() {
		defer close(p.done)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			line := sc.Text()
			m := icmpSeq.FindStringSubmatch(line)
			if m == nil || !strings.Contains(line, "bytes from") {
				continue
			}
			seq, _ := strconv.Atoi(m[1])
			p.mu.Lock()
			p.replied[seq] = true
			p.last = max(p.last, seq)
			p.mu.Unlock()
		}
		io.Copy(io.Discard, out)
	}()
	t.Cleanup(func() { p.stop() })
	return p
}

// stop ends ping and returns how many requests it sent up to the last one
// answered and how many of those went unanswered (the requests still in
// flight at the end are not counted).
func (p *pinger) stop() (sent, lost int) {
	if p.cmd.ProcessState == nil {
		p.cmd.Process.Signal(syscall.SIGINT)
		<-p.done
		p.cmd.Wait()
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for seq := 1; seq <= p.last; seq++ {
		if !p.replied[seq] {
			lost++
		}
	}
	return p.last, lost
}

// upgradeResult is what a rolling upgrade measured.
type upgradeResult struct {
	from, to    string
	total       time.Duration   // from the first stop to the last host back in sync
	perHost     []time.Duration // each host's stop to its node back in BGP sync
	downtime    []time.Duration // each host's stop to its API answering again
	pingsSent   int
	pingsLost   int
	pingers     int
	messages    int
	flows       int
	maxGap      time.Duration
	flowErr     error
	lostByPing  []string
	mixedChecks int
}

// rollingUpgrade runs the rolling upgrade and checks, as it goes, that
// the cluster works with both versions in it.
func rollingUpgrade(t *testing.T) upgradeResult {
	oldBin, oldV := previousBuild(t)
	newV := binVersion(t, calicoBin)
	if oldV == newV {
		t.Fatalf("the previous build and $CALICO both say version %s: build $CALICO with make, which stamps the commit", newV)
	}
	res := upgradeResult{from: oldV, to: newV}
	hosts := bgpHosts(3)
	lab := NewLab(t, 3, 1)
	bins := map[string]string{}
	for _, h := range hosts {
		bins[h] = filepath.Join(lab.dir, h+"-bin", "calico")
		installBinary(t, oldBin, bins[h])
		lab.SetBinary(h, bins[h])
	}
	bgpCluster(t, lab, hosts)
	checkVersions(t, lab, "host1", map[string]string{"host1": oldV, "host2": oldV, "host3": oldV})

	ws := make([]Workload, len(hosts))
	for i, h := range hosts {
		ws[i] = bgpAddWorkload(t, lab, h, fmt.Sprintf("up-w%d", i+1), "--profile", "up")
		lab.serve(ws[i])
		bgpServeIn(t, ws[i].NetNS, 9000, bgpEcho)
	}
	next := func(i int) Workload { return ws[(i+1)%len(ws)] }
	for i := range ws {
		bgpWaitFor(t, 30*time.Second, 50*time.Millisecond, ws[i].Name+" reaching "+next(i).Name, func() (bool, string) {
			return connects(ws[i], next(i).v4()) && connects(ws[i], next(i).v6()), ""
		})
	}
	var flows []*bgpFlow
	var pingers []*pinger
	for i := range ws {
		flows = append(flows, bgpStartFlow(t, ws[i].NetNS, net.JoinHostPort(next(i).v4(), "9000")))
		pingers = append(pingers, startPinger(t, ws[i], next(i).v4()), startPinger(t, ws[i], next(i).v6()))
	}
	progress := func(count int, what string) {
		t.Helper()
		for _, f := range flows {
			f.progress(t, count, 15*time.Second, what)
		}
	}
	progress(50, "before the upgrade")

	start := time.Now()
	for i, h := range hosts {
		synced := strings.Count(lab.Log(h), "BGP is in sync")
		stopAt := time.Now()
		lab.Stop(h)
		stopped := time.Since(stopAt)
		progress(20, "while "+h+" is stopped")
		installBinary(t, calicoBin, bins[h])
		// A build from before the data dir had a format (issue 14) leaves
		// none: the new node migrates it. A later build leaves its format.
		_, err := os.Stat(filepath.Join(lab.DataDir(h), "version"))
		formatted := err == nil
		startAt := time.Now()
		lab.Start(h)
		res.downtime = append(res.downtime, time.Since(stopAt))
		if migrated := strings.Contains(lab.Log(h), "migrated data dir "+lab.DataDir(h)+" from format 0 to 1"); migrated == formatted {
			t.Errorf("%s's new node (data dir with a format before: %v) migrated it: %v:\n%s", h, formatted, migrated, grepLines(lab.Log(h), "data dir"))
		}
		bgpWaitFor(t, 60*time.Second, 50*time.Millisecond, h+"'s BGP back in sync", func() (bool, string) {
			return strings.Count(lab.Log(h), "BGP is in sync") > synced, ""
		})
		res.perHost = append(res.perHost, time.Since(stopAt))
		t.Logf("%s: stopped in %s, down for %s (its API answered %s after its start), BGP in sync %s after its start",
			h, stopped.Round(time.Millisecond), res.downtime[i].Round(time.Millisecond), (stopAt.Add(res.downtime[i]).Sub(startAt)).Round(time.Millisecond),
			(stopAt.Add(res.perHost[i]).Sub(startAt)).Round(time.Millisecond))
		want := map[string]string{}
		for j, o := range hosts {
			want[o] = oldV
			if j <= i {
				want[o] = newV
			}
		}
		checkVersions(t, lab, h, want)
		if i < len(hosts)-1 {
			res.mixedChecks += mixedVersions(t, lab, h, hosts[i+1], i)
		}
		progress(50, "after "+h+" was upgraded")
	}
	res.total = time.Since(start)
	progress(50, "after the upgrade")
	for _, h := range hosts {
		checkVersions(t, lab, h, map[string]string{"host1": newV, "host2": newV, "host3": newV})
	}

	for _, p := range pingers {
		sent, lost := p.stop()
		res.pingsSent += sent
		res.pingsLost += lost
		if lost > 0 {
			res.lostByPing = append(res.lostByPing, fmt.Sprintf("%s: %d of %d", p.name, lost, sent))
		}
	}
	res.pingers = len(pingers)
	res.flows = len(flows)
	for _, f := range flows {
		n, gap, _, err := f.state()
		res.messages += n
		res.maxGap = max(res.maxGap, gap)
		if err != nil && res.flowErr == nil {
			res.flowErr = err
		}
	}
	return res
}

// checkVersions checks that host's `calico node list` (which both
// versions have) shows every node alive with the version want says, and
// that host's `calico version` shows its binary's, and on the new
// version every node's.
func checkVersions(t *testing.T, lab *Lab, host string, want map[string]string) {
	t.Helper()
	bgpWaitFor(t, 30*time.Second, 100*time.Millisecond, fmt.Sprintf("calico node list on %s showing %v", host, want), func() (bool, string) {
		nodes, err := lab.Nodes(host)
		if err != nil {
			return false, err.Error()
		}
		got := map[string]string{}
		for _, n := range nodes {
			if n.Gossip == "alive" {
				got[n.Name] = n.Version
			}
		}
		return maps.Equal(got, want), fmt.Sprint(got)
	})
	out := lab.MustCalico(host, "version")
	if !strings.HasPrefix(out, "calico "+want[host]+"\n") {
		t.Errorf("calico version on %s = %q; want calico %s", host, out, want[host])
	}
	if want[host] == binVersion(t, calicoBin) {
		for n, v := range want {
			if !regexp.MustCompile(`(?m)^` + n + ` +` + regexp.QuoteMeta(v) + ` +alive$`).MatchString(out) {
				t.Errorf("calico version on %s does not show %s at %s:\n%s", host, n, v, out)
			}
		}
		t.Logf("calico version on %s:\n%s", host, out)
	}
}

// mixedVersions checks that the upgraded host and a host still on the
// previous version work together: a workload added on either (through
// its own binary) reaches one on the other, both ways, over IPv4 and
// IPv6. It returns how many pairs it checked.
func mixedVersions(t *testing.T, lab *Lab, upgraded, old string, round int) int {
	t.Helper()
	wn := lab.AddWorkload(upgraded, fmt.Sprintf("up-new%d", round), "--profile", "up")
	wo := lab.AddWorkload(old, fmt.Sprintf("up-old%d", round), "--profile", "up")
	var cells []Expect
	for _, pair := range [][2]Workload{{wn, wo}, {wo, wn}} {
		cells = append(cells, Expect{From: pair[0], To: pair[1].v4(), OK: true}, Expect{From: pair[0], To: pair[1].v6(), OK: true})
	}
	CheckMatrix(t, cells, 30*time.Second)
	return len(cells)
}

// TestUpgradeRolling upgrades three hosts one at a time from the previous
// build to this one while workloads on every host keep TCP flows and
// pings (IPv4 and IPv6) going between hosts: no ping is lost, no flow
// breaks or stalls, both versions work together meanwhile, and every
// node ends on the new version.
func TestUpgradeRolling(t *testing.T) {
	res := rollingUpgrade(t)
	t.Logf("upgraded %s -> %s in %s (per host %v); %d pings, %d lost; %d TCP messages over %d flows, longest gap %s",
		res.from, res.to, res.total.Round(time.Millisecond), roundAll(res.perHost), res.pingsSent, res.pingsLost,
		res.messages, res.flows, res.maxGap.Round(time.Millisecond))
	if res.pingsLost > 0 {
		t.Errorf("%d of %d pings were lost: %s", res.pingsLost, res.pingsSent, strings.Join(res.lostByPing, "; "))
	}
	if res.flowErr != nil {
		t.Errorf("a TCP flow broke: %v", res.flowErr)
	}
	if res.maxGap > 2*time.Second {
		t.Errorf("a TCP flow stalled for %s", res.maxGap.Round(time.Millisecond))
	}
}

func roundAll(ds []time.Duration) []time.Duration {
	out := slices.Clone(ds)
	for i := range out {
		out[i] = out[i].Round(time.Millisecond)
	}
	return out
}
