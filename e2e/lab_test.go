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
		fmt.Println("e2e tests skipped: set CALICO_E2E=1 (as root; make test does)")
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

// Lab is one lab for one test; it is torn down when the test ends, pass
// or fail.
type Lab struct {
	t   *testing.T
	dir string

	mu     sync.Mutex
	probes []*exec.Cmd
}

// NewLab builds a lab of hosts hosts in racks racks.
func NewLab(t *testing.T, hosts, racks int) *Lab {
	t.Helper()
	l := &Lab{t: t, dir: filepath.Join(os.TempDir(), "calico-lab-"+strings.ReplaceAll(strings.ToLower(t.Name()), "/", "-"))}
	t.Cleanup(func() {
		l.mu.Lock()
		for _, p := range l.probes {
			p.Process.Kill()
			p.Wait()
		}
		l.mu.Unlock()
		if t.Failed() {
			for i := 1; i <= hosts; i++ {
				if b, err := os.ReadFile(filepath.Join(l.dir, fmt.Sprintf("host%d.log", i))); err == nil {
					t.Logf("host%d's log:\n%s", i, tail(string(b), 60))
				}
			}
		}
		if out, err := l.script("down"); err != nil {
			t.Errorf("tearing the lab down: %v\n%s", err, out)
		}
	})
	l.mustScript("up", fmt.Sprint(hosts), fmt.Sprint(racks))
	return l
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
	l.mustScript(append([]string{"start", host}, args...)...)
}

// Stop stops host's node with SIGTERM.
func (l *Lab) Stop(host string) { l.t.Helper(); l.mustScript("stop", host) }

// Calico runs the CLI against host's node and returns stdout, stderr and
// the error.
func (l *Lab) Calico(host string, args ...string) (string, string, error) {
	cmd := exec.Command(labScript, append([]string{"calico", host}, args...)...)
	cmd.Env = append(os.Environ(), "CALICO="+calicoBin, "CALICO_LAB_DIR="+l.dir)
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
