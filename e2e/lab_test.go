// Package e2e runs real calico nodes in the lab (scripts/lab.sh) and
// checks what a user would see. The tests need root and CALICO_E2E=1 and
// the calico binary (CALICO, default ../calico); `make test` provides all
// three.
package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

var (
	calicoBin string
	probeBin  string
	labScript string
)

func TestMain(m *testing.M) {
	if os.Getenv("CALICO_E2E") != "1" {
		fmt.Println("SKIP: the e2e tests need CALICO_E2E=1 (as root; sudo make test sets it)")
		os.Exit(0)
	}
	for _, tool := range []string{"ip", "nsenter", "ping"} {
		if _, err := exec.LookPath(tool); err != nil {
			fmt.Fprintf(os.Stderr, "e2e tests need %s (Debian: apt-get install iproute2 util-linux iputils-ping)\n", tool)
			os.Exit(1)
		}
	}
	root, _ := filepath.Abs("..")
	labScript = filepath.Join(root, "scripts", "lab.sh")
	calicoBin = os.Getenv("CALICO")
	if calicoBin == "" {
		calicoBin = filepath.Join(root, "calico")
	}
	dir, err := os.MkdirTemp("", "calico-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	probeBin = filepath.Join(dir, "probe")
	build := exec.Command("go", "build", "-o", probeBin, "./probe")
	build.Stdout, build.Stderr = os.Stdout, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building the probe:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// labName is the prefix of the lab's namespaces: lab.sh's
// CALICO_LAB_NAME, so that a second lab can run beside another.
func labName() string {
	if n := os.Getenv("CALICO_LAB_NAME"); n != "" {
		return n
	}
	return "calico-lab"
}

// Lab is one lab for one test; it is torn down when the test ends, pass
// or fail.
type Lab struct {
	t   *testing.T
	dir string

	mu     sync.Mutex
	probes []*exec.Cmd
	// bins are the calico binaries of hosts that do not run $CALICO
	// (SetBinary).
	bins map[string]string
}

// SetBinary makes host run, and answer the CLI with, the calico binary at
// path instead of $CALICO (from its next start).
func (l *Lab) SetBinary(host, path string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.bins == nil {
		l.bins = map[string]string{}
	}
	l.bins[host] = path
}

// bin is the calico binary of host.
func (l *Lab) bin(host string) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	if b, ok := l.bins[host]; ok {
		return b
	}
	return calicoBin
}

// NewLab builds a lab of hosts hosts in racks racks.
func NewLab(t *testing.T, hosts, racks int) *Lab {
	t.Helper()
	l := &Lab{t: t, dir: filepath.Join(os.TempDir(), labName()+"-"+strings.ReplaceAll(strings.ToLower(t.Name()), "/", "-"))}
	t.Cleanup(func() {
		l.mu.Lock()
		for _, p := range l.probes {
			p.Process.Kill()
			p.Wait()
		}
		l.mu.Unlock()
		for i := 1; i <= hosts; i++ {
			if b, err := os.ReadFile(filepath.Join(l.dir, fmt.Sprintf("host%d.log", i))); err == nil && bytes.Contains(b, []byte("memo check:")) {
				t.Errorf("host%d's node found its memoised calculation or rendering stale (CALICO_VERIFY):\n%s", i, grepLines(string(b), "memo check:"))
			}
		}
		if t.Failed() || os.Getenv("CALICO_E2E_KEEP_LOGS") == "1" {
			// Keep the whole logs: the lab dir goes with the lab.
			keep := filepath.Join(os.TempDir(), "calico-e2e-logs", filepath.Base(l.dir))
			os.RemoveAll(keep)
			os.MkdirAll(keep, 0o755)
			for i := 1; i <= hosts; i++ {
				if b, err := os.ReadFile(filepath.Join(l.dir, fmt.Sprintf("host%d.log", i))); err == nil {
					t.Logf("host%d's log:\n%s", i, tail(string(b), 60))
					os.WriteFile(filepath.Join(keep, fmt.Sprintf("host%d.log", i)), b, 0o644)
				}
			}
			t.Logf("the hosts' logs are kept in %s", keep)
		}
		if out, err := l.script("down"); err != nil {
			t.Errorf("tearing the lab down: %v\n%s", err, out)
		}
	})
	l.mustScript("up", fmt.Sprint(hosts), fmt.Sprint(racks))
	return l
}

// grepLines are the lines of s that contain pattern.
func grepLines(s, pattern string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, pattern) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

func tail(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func (l *Lab) script(args ...string) (string, error) {
	cmd := exec.Command(labScript, args...)
	cmd.Env = append(os.Environ(), "CALICO="+calicoBin, "CALICO_LAB_DIR="+l.dir)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func (l *Lab) mustScript(args ...string) string {
	l.t.Helper()
	out, err := l.script(args...)
	if err != nil {
		l.t.Fatalf("lab.sh %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// Start starts host's node with extra `calico up` arguments.
func (l *Lab) Start(host string, args ...string) {
	l.t.Helper()
	if err := l.StartErr(host, args...); err != nil {
		l.t.Fatal(err)
	}
}

// Stop stops host's node with SIGTERM.
func (l *Lab) Stop(host string) { l.t.Helper(); l.mustScript("stop", host) }

// Calico runs the CLI against host's node and returns stdout, stderr and
// the error.
func (l *Lab) Calico(host string, args ...string) (string, string, error) {
	cmd := exec.Command(labScript, append([]string{"calico", host}, args...)...)
	cmd.Env = append(os.Environ(), "CALICO="+l.bin(host), "CALICO_LAB_DIR="+l.dir)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	return out.String(), errb.String(), err
}

// MustCalico is Calico that fails the test on error.
func (l *Lab) MustCalico(host string, args ...string) string {
	l.t.Helper()
	out, errs, err := l.Calico(host, args...)
	if err != nil {
		l.t.Fatalf("calico %s on %s: %v\n%s%s", strings.Join(args, " "), host, err, out, errs)
	}
	return out
}

// Exec runs a command in host's network namespace.
func (l *Lab) Exec(host string, args ...string) (string, error) {
	out, err := l.script(append([]string{"exec", host}, args...)...)
	return out, err
}

// Workload is a workload the test added.
type Workload struct {
	Name      string   `json:"name"`
	Addresses []string `json:"addresses"`
	Interface string   `json:"interface"`
	NetNS     string   `json:"netns"`
}

// AddWorkload adds a workload on host and starts a probe server in it.
func (l *Lab) AddWorkload(host, name string, args ...string) Workload {
	l.t.Helper()
	out := l.MustCalico(host, append([]string{"workload", "add", name, "-o", "json"}, args...)...)
	var w Workload
	if err := json.Unmarshal([]byte(out), &w); err != nil {
		l.t.Fatalf("workload add %s printed %q: %v", name, out, err)
	}
	l.serve(w)
	return w
}

// serve runs `probe serve 8080` in the workload's namespace.
func (l *Lab) serve(w Workload) {
	cmd := exec.Command("nsenter", "--net="+w.NetNS, probeBin, "serve", "8080")
	if err := cmd.Start(); err != nil {
		l.t.Fatalf("starting the probe server in %s: %v", w.Name, err)
	}
	l.mu.Lock()
	l.probes = append(l.probes, cmd)
	l.mu.Unlock()
}

// v4 and v6 pick a workload's address of one family.
func (w Workload) v4() string { return w.addr(false) }
func (w Workload) v6() string { return w.addr(true) }

func (w Workload) addr(v6 bool) string {
	for _, a := range w.Addresses {
		if strings.Contains(a, ":") == v6 {
			return a
		}
	}
	return ""
}

// connects reports whether a TCP connection from one workload to an
// address on port 8080 succeeds.
func connects(from Workload, addr string) bool {
	return exec.Command("nsenter", "--net="+from.NetNS, probeBin, "connect", addr, "8080").Run() == nil
}

// Expect is one cell of a connectivity matrix.
type Expect struct {
	From Workload
	To   string // address
	OK   bool
}

// CheckMatrix checks every cell until all hold or the deadline passes.
// Allowed cells are retried until they connect; denied cells must not
// connect once every allowed cell has (the dataplane is programmed then).
func CheckMatrix(t *testing.T, cells []Expect, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	var failed []string
	for {
		failed = failed[:0]
		for _, c := range cells {
			if c.OK && !connects(c.From, c.To) {
				failed = append(failed, fmt.Sprintf("%s -> %s should connect", c.From.Name, c.To))
			}
		}
		if len(failed) == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	for _, c := range cells {
		if !c.OK && connects(c.From, c.To) {
			failed = append(failed, fmt.Sprintf("%s -> %s should be refused", c.From.Name, c.To))
		}
	}
	for _, f := range failed {
		t.Error(f)
	}
}

// eventually retries cond until it holds or within passes.
func eventually(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), within)
	defer cancel()
	for !cond() {
		select {
		case <-ctx.Done():
			t.Fatalf("timed out after %s waiting for %s", within, what)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// Kill kills host's node with SIGKILL (lab.sh kill).
func (l *Lab) Kill(host string) { l.t.Helper(); l.mustScript("kill", host) }

// StartErr is Start for goroutines: it returns the error (with lab.sh's
// output) instead of failing the test.
func (l *Lab) StartErr(host string, args ...string) error {
	return l.StartWithin(90*time.Second, host, args...)
}

// StartWithin is StartErr with a bound on how long lab.sh start may wait
// for `calico status` to answer (its own bound counts tries, and one try
// can take seconds). On a timeout the node is left running.
func (l *Lab) StartWithin(within time.Duration, host string, args ...string) error {
	ctx, cancel := context.WithTimeout(context.Background(), within)
	defer cancel()
	cmd := exec.CommandContext(ctx, labScript, append([]string{"start", host}, args...)...)
	cmd.Env = append(os.Environ(), "CALICO="+l.bin(host), "CALICO_LAB_DIR="+l.dir)
	cmd.WaitDelay = 5 * time.Second
	b, err := cmd.CombinedOutput()
	out := string(b)
	if ctx.Err() != nil {
		_, errs, serr := l.CalicoWithin(10*time.Second, host, "status")
		return fmt.Errorf("lab.sh start %s %s did not return within %s; the node runs, and calico status says: %v %s", host, strings.Join(args, " "), within, serr, strings.TrimSpace(errs))
	}
	if err != nil && strings.Contains(out, "is not ready") {
		l.dump(host)
	}
	if err != nil {
		return fmt.Errorf("lab.sh start %s %s: %v\n%s", host, strings.Join(args, " "), err, out)
	}
	return nil
}

// CalicoWithin is Calico bounded by a timeout: a command that hangs (a
// datastore without quorum) is killed and reported as an error.
func (l *Lab) CalicoWithin(within time.Duration, host string, args ...string) (string, string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), within)
	defer cancel()
	cmd := exec.CommandContext(ctx, labScript, append([]string{"calico", host}, args...)...)
	cmd.Env = append(os.Environ(), "CALICO="+l.bin(host), "CALICO_LAB_DIR="+l.dir)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	if ctx.Err() != nil {
		err = fmt.Errorf("no answer within %s", within)
	}
	return out.String(), errb.String(), err
}

// Token prints the cluster's join token as host sees it.
func (l *Lab) Token(host string) string {
	l.t.Helper()
	return strings.TrimSpace(l.MustCalico(host, "token"))
}

// Addr is host's IPv4 address.
func (l *Lab) Addr(host string) string {
	l.t.Helper()
	return strings.TrimSpace(l.mustScript("addr", host))
}

// DataDir is host's data dir.
func (l *Lab) DataDir(host string) string { return filepath.Join(l.dir, host) }

// Log is host's node log so far.
func (l *Lab) Log(host string) string {
	b, _ := os.ReadFile(filepath.Join(l.dir, host+".log"))
	return string(b)
}

// NodeInfo is one row of `calico node list -o json`.
type NodeInfo struct {
	Name    string    `json:"name"`
	IPv4    string    `json:"ipv4"`
	IPv6    string    `json:"ipv6"`
	Role    string    `json:"role"`
	Gossip  string    `json:"gossip"`
	Reach   string    `json:"reach"`
	Since   time.Time `json:"since"`
	Version string    `json:"version"`
}

// Nodes is `calico node list -o json` on host.
func (l *Lab) Nodes(host string) ([]NodeInfo, error) {
	out, errs, err := l.CalicoWithin(10*time.Second, host, "node", "list", "-o", "json")
	if err != nil {
		return nil, fmt.Errorf("node list on %s: %v: %s", host, err, strings.TrimSpace(errs))
	}
	var nodes []NodeInfo
	if err := json.Unmarshal([]byte(out), &nodes); err != nil {
		return nil, fmt.Errorf("node list on %s printed %q: %v", host, out, err)
	}
	return nodes, nil
}

// NodeStatus is the part of `calico status -o json` the tests read.
type NodeStatus struct {
	Node      string `json:"node"`
	ClusterID string `json:"clusterID"`
	Role      string `json:"role"`
	Datastore struct {
		Healthy   bool     `json:"healthy"`
		Leader    string   `json:"leader"`
		Members   int      `json:"members"`
		Endpoints []string `json:"endpoints"`
		Error     string   `json:"error"`
	} `json:"datastore"`
}

// Status is `calico status -o json` on host.
func (l *Lab) Status(host string) (NodeStatus, error) {
	var st NodeStatus
	out, errs, err := l.CalicoWithin(10*time.Second, host, "status", "-o", "json")
	if err != nil {
		return st, fmt.Errorf("status on %s: %v: %s", host, err, strings.TrimSpace(errs))
	}
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		return st, fmt.Errorf("status on %s printed %q: %v", host, out, err)
	}
	return st, nil
}

// Up runs `calico up` on host in the foreground, directly rather than
// through lab.sh start (which gives up when the node exits), and returns
// its output and error once it exits. It is for `calico up` runs that
// are meant to fail: one still running after within gets SIGTERM (and
// SIGKILL 10s later), and exited is false.
func (l *Lab) Up(within time.Duration, host string, args ...string) (stdout, stderr string, exited bool, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), within)
	defer cancel()
	a, err := l.script("addr", host)
	if err != nil {
		return "", "", false, fmt.Errorf("lab.sh addr %s: %v: %s", host, err, a)
	}
	addr := strings.TrimSpace(a)
	cmd := exec.CommandContext(ctx, "nsenter", append([]string{"--net=/run/netns/" + labName() + "-" + host, l.bin(host), "up",
		"--data-dir", l.DataDir(host), "--name", host, "--ip", addr + "/24"}, args...)...)
	// Not the machine's /etc/calico/config.yaml, nor its Docker's plugin dir.
	cmd.Env = append(os.Environ(), "CALICO_CONFIG_FILE=", "CALICO_DOCKER_PLUGINS=false")
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 10 * time.Second
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err = cmd.Run()
	return out.String(), errb.String(), ctx.Err() == nil, err
}

// dump has a node that hangs write its goroutines to its log (SIGQUIT).
func (l *Lab) dump(host string) {
	pid, err := l.pid(host)
	if err != nil || syscall.Kill(pid, syscall.SIGQUIT) != nil {
		return
	}
	// The dump is written as the process dies.
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline) && !dead(pid); {
		time.Sleep(100 * time.Millisecond)
	}
}

// KillNow sends SIGKILL to host's node and returns as soon as it is dead,
// without lab.sh's own start (tens of milliseconds); call Kill
// afterwards, so that lab.sh forgets it.
func (l *Lab) KillNow(host string) {
	l.t.Helper()
	pid, err := l.pid(host)
	if err != nil {
		l.t.Fatal(err)
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		l.t.Fatalf("killing %s's node (pid %d): %v", host, pid, err)
	}
	for deadline := time.Now().Add(10 * time.Second); !dead(pid); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			l.t.Fatalf("%s's node (pid %d) still runs 10s after SIGKILL", host, pid)
		}
	}
}

// pid is the process id of host's node as lab.sh recorded it.
func (l *Lab) pid(host string) (int, error) {
	b, err := os.ReadFile(filepath.Join(l.dir, host+".pid"))
	if err != nil {
		return 0, err
	}
	var pid int
	if _, err := fmt.Sscan(string(b), &pid); err != nil || pid <= 0 {
		return 0, fmt.Errorf("%s.pid holds %q", host, b)
	}
	return pid, nil
}

// dead reports whether a process has exited: gone, or a zombie waiting
// for its reaper (the nodes lab.sh starts are orphans).
func dead(pid int) bool {
	if syscall.Kill(pid, 0) != nil {
		return true
	}
	st, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	return strings.Contains(string(st), ") Z ")
}
