package e2e

// The node as a service, in the installer's sandbox (install_test.go):
// what install.sh writes into /etc/calico/config.yaml is what `calico up`
// reads, and a node started as the unit starts it (`calico up`, no
// flags) tells a notify socket READY=1 once it serves its API and has
// programmed the dataplane, pings the watchdog and says STOPPING=1.
// systemd is not PID 1 here: the test's own unixgram socket stands in
// for it.

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// A notifySocket records what arrives on a NOTIFY_SOCKET, as systemd
// would receive it.
type notifySocket struct {
	path string
	conn *net.UnixConn

	mu   sync.Mutex
	msgs []notifyMsg
}

type notifyMsg struct {
	at    time.Time
	state string // one line: READY=1, STATUS=…, WATCHDOG=1, STOPPING=1
}

func newNotifySocket(t *testing.T) *notifySocket {
	t.Helper()
	path := filepath.Join(t.TempDir(), "notify")
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	n := &notifySocket{path: path, conn: c}
	t.Cleanup(func() { c.Close() })
	go func() {
		buf := make([]byte, 4096)
		for {
			k, err := c.Read(buf)
			if err != nil {
				return
			}
			now := time.Now()
			n.mu.Lock()
			for _, line := range strings.Split(string(buf[:k]), "\n") {
				n.msgs = append(n.msgs, notifyMsg{now, line})
			}
			n.mu.Unlock()
		}
	}()
	return n
}

func (n *notifySocket) all() []notifyMsg {
	n.mu.Lock()
	defer n.mu.Unlock()
	return slices.Clone(n.msgs)
}

// first is when state (a prefix) first arrived after since, and whether it did.
func (n *notifySocket) first(state string, since time.Time) (time.Time, bool) {
	for _, m := range n.all() {
		if strings.HasPrefix(m.state, state) && !m.at.Before(since) {
			return m.at, true
		}
	}
	return time.Time{}, false
}

// wait waits for state after since and returns when it arrived.
func (n *notifySocket) wait(t *testing.T, state string, since time.Time, within time.Duration, proc *sandboxNode) time.Time {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		if at, ok := n.first(state, since); ok {
			return at
		}
		if proc != nil && proc.exited() {
			t.Fatalf("the node exited before it sent %s:\n%s", state, proc.log())
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %s within %s; the socket got %v", state, within, n.all())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// count counts the messages of state between from and to.
func (n *notifySocket) count(state string, from, to time.Time) int {
	k := 0
	for _, m := range n.all() {
		if m.state == state && !m.at.Before(from) && m.at.Before(to) {
			k++
		}
	}
	return k
}

// sandboxNet gives the sandbox an uplink with the address 172.31.9.11/24
// and a default route (the node detects nothing else; no packet leaves
// the sandbox).
func sandboxNet(t *testing.T, s *sandbox) {
	t.Helper()
	s.must(nil, `ip link add eth0 type veth peer name gw0 &&
ip addr add 172.31.9.11/24 dev eth0 && ip link set eth0 up && ip link set gw0 up &&
ip route add default via 172.31.9.1`)
}

// A sandboxNode is `calico up` running in a sandbox as the unit runs it.
type sandboxNode struct {
	cmd     *exec.Cmd
	logPath string
	done    chan struct{}
	err     error
}

// startSandboxNode starts /usr/local/bin/calico up (no flags: the config
// file says everything) in the sandbox, with NOTIFY_SOCKET and a 2 s
// watchdog.
func startSandboxNode(t *testing.T, s *sandbox, notify *notifySocket) *sandboxNode {
	t.Helper()
	logPath := filepath.Join(t.TempDir(), "node.log")
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := s.cmd([]string{"NOTIFY_SOCKET=" + notify.path, "WATCHDOG_USEC=2000000", "CALICO_VERIFY=1"}, "/usr/local/bin/calico", "up")
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	n := &sandboxNode{cmd: cmd, logPath: logPath, done: make(chan struct{})}
	go func() {
		n.err = cmd.Wait()
		logf.Close()
		close(n.done)
	}()
	t.Cleanup(func() {
		if !n.exited() {
			cmd.Process.Kill()
			<-n.done
		}
	})
	return n
}

func (n *sandboxNode) exited() bool {
	select {
	case <-n.done:
		return true
	default:
		return false
	}
}

func (n *sandboxNode) log() string {
	b, _ := os.ReadFile(n.logPath)
	return tail(string(b), 40)
}

// stop sends SIGTERM and waits for the node to exit.
func (n *sandboxNode) stop(t *testing.T) error {
	t.Helper()
	n.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-n.done:
		return n.err
	case <-time.After(30 * time.Second):
		t.Fatalf("the node did not stop within 30s of SIGTERM:\n%s", n.log())
	}
	return nil
}

// installForService installs the release into a fresh sandbox with an
// uplink as the first host of a cluster would (`sh install.sh --pool …`,
// INSTALL_CALICO_SKIP_START: systemd is not PID 1 here) and returns how
// long install.sh took.
func installForService(t *testing.T, s *sandbox, dist string) time.Duration {
	t.Helper()
	url := s.serve(dist)
	start := time.Now()
	s.must([]string{"CALICO_DOWNLOAD_URL=" + url, "INSTALL_CALICO_SKIP_START=true", "SCRIPT=" + installScript},
		shell()+` "$SCRIPT" --pool 10.65.0.0/16 --name sandbox1 --ip 172.31.9.11/24`)
	return time.Since(start)
}

// TestInstallReady installs calico, starts the node as the unit does and
// checks what it tells systemd: READY=1 once the API answers and the
// dataplane is programmed, STATUS= lines on the way, WATCHDOG=1 every
// half WATCHDOG_USEC from the start, STOPPING=1 on SIGTERM; started
// again, it is ready from its state cache.
func TestInstallReady(t *testing.T) {
	installPrereqs(t, "python3", "curl", "nft")
	s := newSandbox(t)
	sandboxNet(t, s)
	took := installForService(t, s, makeDist(t, calicoBin))
	t.Logf("install.sh took %s", took.Round(time.Millisecond))

	notify := newNotifySocket(t)
	began := time.Now()
	node := startSandboxNode(t, s, notify)
	ready := notify.wait(t, "READY=1", began, 60*time.Second, node)
	t.Logf("READY=1 %s after calico up started", ready.Sub(began).Round(time.Millisecond))

	// At READY=1 the API answers and the dataplane is programmed (the
	// node tests check the order: node/service_test.go).
	var st struct {
		Node      string `json:"node"`
		Dataplane struct {
			LastApply time.Time `json:"lastApply"`
			Revision  int64     `json:"revision"`
			Error     string    `json:"error"`
		} `json:"dataplane"`
	}
	if err := json.Unmarshal([]byte(s.must(nil, "calico status -o json")), &st); err != nil {
		t.Fatal(err)
	}
	if st.Node != "sandbox1" || st.Dataplane.LastApply.IsZero() || st.Dataplane.Revision == 0 || st.Dataplane.Error != "" {
		t.Errorf("status after READY=1: %+v; want node sandbox1 with its dataplane programmed", st)
	}
	s.must(nil, "nft list table inet calico >/dev/null")

	// The STATUS lines say what it did, in order, and the watchdog was
	// pinged from the start.
	var states []string
	for _, m := range notify.all() {
		if strings.HasPrefix(m.state, "STATUS=") || m.state == "READY=1" {
			states = append(states, m.state)
		}
	}
	want := []string{"STATUS=founding a new cluster", "STATUS=serving the API; programming the dataplane", "READY=1",
		"STATUS=ready: node sandbox1 (voter) of cluster "}
	if len(states) < len(want) {
		t.Fatalf("the node said %q; want %q first", states, want)
	}
	for i, w := range want {
		if !strings.HasPrefix(states[i], w) {
			t.Errorf("status %d = %q; want %q (all: %q)", i, states[i], w, states)
		}
	}
	if first, ok := notify.first("WATCHDOG=1", began); !ok || first.After(ready) {
		t.Errorf("the first watchdog ping (%v) came after READY=1", first)
	}
	time.Sleep(3 * time.Second)
	if n := notify.count("WATCHDOG=1", ready, ready.Add(3*time.Second)); n < 2 || n > 4 {
		t.Errorf("%d watchdog pings in 3 s with WATCHDOG_USEC=2000000; want one a second", n)
	}
	if v := s.must(nil, "calico version"); !strings.Contains(v, "sandbox1") {
		t.Errorf("calico version with the node running:\n%s", v)
	}

	stopAt := time.Now()
	if err := node.stop(t); err != nil {
		t.Errorf("the node exited with %v after SIGTERM:\n%s", err, node.log())
	}
	if _, ok := notify.first("STOPPING=1", stopAt); !ok {
		t.Errorf("no STOPPING=1 after SIGTERM: %v", notify.all())
	}
	if at, ok := notify.first("STOPPING=1", stopAt); ok && notify.count("WATCHDOG=1", at, time.Now()) > 0 {
		t.Errorf("watchdog pings after STOPPING=1")
	}

	// Again: ready from its state cache.
	again := time.Now()
	node = startSandboxNode(t, s, notify)
	readyAgain := notify.wait(t, "READY=1", again, 60*time.Second, node)
	t.Logf("restarted: READY=1 %s after calico up started", readyAgain.Sub(again).Round(time.Millisecond))
	if at, ok := notify.first("STATUS=ready: node sandbox1 (voter) of cluster", again); !ok || !strings.Contains(stateAt(notify, at), "from the state cache") {
		t.Errorf("the restarted node was not ready from its state cache: %v", notify.all())
	}
	if err := node.stop(t); err != nil {
		t.Errorf("the node exited with %v after SIGTERM", err)
	}
}

func stateAt(n *notifySocket, at time.Time) string {
	for _, m := range n.all() {
		if m.at.Equal(at) && strings.HasPrefix(m.state, "STATUS=ready") {
			return m.state
		}
	}
	return ""
}

// configLines parses `calico up --print-config`: key -> value and origin.
func configLines(out string) map[string][2]string {
	got := map[string][2]string{}
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "#") {
			continue
		}
		kv, from, _ := strings.Cut(line, " # ")
		k, v, _ := strings.Cut(kv, ": ")
		got[k] = [2]string{strings.TrimSpace(v), strings.TrimSpace(from)}
	}
	return got
}

// TestConfigFromInstaller checks that `calico up` reads what install.sh
// writes into /etc/calico/config.yaml, with drop-ins, the environment and
// flags over it, and names the file and key of a setting it refuses.
func TestConfigFromInstaller(t *testing.T) {
	installPrereqs(t, "python3", "curl")
	s := newSandbox(t)
	url := s.serve(makeDist(t, calicoBin))
	token := "K1" + strings.Repeat("0123456789abcdef", 4) + "::" + "fedcba9876543210"
	env := []string{"CALICO_DOWNLOAD_URL=" + url, "INSTALL_CALICO_SKIP_START=true", "SCRIPT=" + installScript}
	s.must(append(env, "CALICO_JOIN=172.31.1.11", "CALICO_TOKEN="+token), shell()+` "$SCRIPT"`+
		` --pool 10.65.0.0/16 --pool fd00:65::/48 --name host2 --as 64513 --voter-replace-after 90s`+
		` --log-level debug --ip 172.31.1.12/24 --ip6=fd00:31:1::12/64 --data-dir /var/lib/calico-x`)
	t.Logf("config.yaml:\n%s", s.read("/etc/calico/config.yaml"))

	const file = "/etc/calico/config.yaml"
	got := configLines(s.must(nil, "calico up --print-config"))
	want := map[string]string{
		"join": "172.31.1.11", "token": "(set, not shown)", "pool": `[10.65.0.0/16, "fd00:65::/48"]`,
		"name": "host2", "as": `"64513"`, "voter-replace-after": "90s", "log-level": "debug",
		"ip": "172.31.1.12/24", "ip6": `"fd00:31:1::12/64"`, "data-dir": "/var/lib/calico-x",
	}
	for k, w := range want {
		if got[k][0] != w || !strings.HasPrefix(got[k][1], file+":") {
			t.Errorf("%s = %q from %q; want %q from %s", k, got[k][0], got[k][1], w, file)
		}
	}

	// A drop-in, the environment and a flag, each over the one before.
	dropIn := s.path("/etc/calico/config.yaml.d/50-local.yaml")
	os.MkdirAll(filepath.Dir(dropIn), 0o700)
	if err := os.WriteFile(dropIn, []byte("log-level: warn\npool+: [10.70.0.0/16]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	got = configLines(s.must([]string{"CALICO_TOKEN=" + token}, "calico up --print-config --name host9"))
	for k, w := range map[string][2]string{
		"log-level": {"warn", "/etc/calico/config.yaml.d/50-local.yaml:1"},
		"pool":      {`[10.65.0.0/16, "fd00:65::/48", 10.70.0.0/16]`, "/etc/calico/config.yaml.d/50-local.yaml:2"},
		"token":     {"(set, not shown)", "CALICO_TOKEN"},
		"name":      {"host9", "--name"},
	} {
		if got[k] != w {
			t.Errorf("with a drop-in, CALICO_TOKEN and --name: %s = %q; want %q", k, got[k], w)
		}
	}

	// Running install.sh again changes its keys and keeps the drop-in.
	s.must(env, shell()+` "$SCRIPT" --pool 10.66.0.0/16`)
	got = configLines(s.must(nil, "calico up --print-config"))
	if got["pool"][0] != "[10.66.0.0/16, 10.70.0.0/16]" || got["name"][0] != "host2" {
		t.Errorf("after install.sh --pool 10.66.0.0/16: pool %q, name %q", got["pool"], got["name"])
	}

	// A setting calico up cannot use is refused in one line that names
	// the file and the key.
	s.must(env, shell()+` "$SCRIPT" --pools 10.67.0.0/16`)
	o, e, code := s.sh(nil, "calico up --print-config")
	if code != 2 || !strings.Contains(e, file+":") || !strings.Contains(e, `unknown key "pools"`) || strings.Count(strings.TrimSpace(e), "\n") > 0 {
		t.Errorf("with pools: in the config: exit %d, %q %q; want exit 2 and one line naming %s and the key", code, o, e, file)
	}
	s.must(nil, fmt.Sprintf("sed -i '/^pools:/d' %s", file))
	s.must(env, shell()+` "$SCRIPT" --voter-replace-after soon`)
	_, e, code = s.sh(nil, "calico up --print-config")
	if code != 2 || !strings.Contains(e, `voter-replace-after "soon" is not a duration`) || !strings.Contains(e, file+":") {
		t.Errorf("with voter-replace-after: soon: exit %d, %q", code, e)
	}
}
