package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// BGP passwords through secrets: every node reads the mesh's password from
// its own /etc/calico/secrets/<name>/<key>. Each lab host here runs its
// node in a mount namespace of its own, with an overlay on /etc whose
// changes go to the lab's directory, so that the hosts' secrets differ as
// on real hosts and the machine's /etc is never written.

// secretNode starts host's node (with `calico up` args) in a mount
// namespace of its own where /etc is an overlay, and waits until it
// answers. lab.sh's stop, kill and down find it by its pid file.
func secretNode(t *testing.T, lab *Lab, host string, args ...string) {
	t.Helper()
	etc := filepath.Join(lab.dir, host+"-etc")
	for _, d := range []string{"upper", "work"} {
		if err := os.MkdirAll(filepath.Join(etc, d), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	log, err := os.OpenFile(filepath.Join(lab.dir, host+".log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer log.Close()
	script := fmt.Sprintf(`mount -t overlay overlay -o lowerdir=/etc,upperdir=%s/upper,workdir=%s/work /etc && exec "$@"`, etc, etc)
	up := append([]string{"--net=" + bgpNS(host), "unshare", "--mount", "--propagation", "private", "sh", "-c", script, "sh",
		calicoBin, "up", "--data-dir", lab.DataDir(host), "--name", host,
		"--ip", lab.Addr(host) + "/24", "--ip6", strings.TrimSpace(lab.mustScript("addr", host, "6")) + "/64"}, args...)
	cmd := exec.Command("nsenter", up...)
	// Its /run is the machine's: no Docker plugin sockets there.
	cmd.Env = append(os.Environ(), "CALICO_DOCKER_PLUGINS=false")
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting %s's node: %v", host, err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }() // reaped whenever it ends; lab.sh stops it
	if err := os.WriteFile(filepath.Join(lab.dir, host+".pid"), fmt.Appendf(nil, "%d\n", cmd.Process.Pid), 0o644); err != nil {
		t.Fatal(err)
	}
	bgpWaitFor(t, 90*time.Second, 200*time.Millisecond, host+"'s node answering", func() (bool, string) {
		select {
		case err := <-exited:
			t.Fatalf("%s's node exited (%v):\n%s", host, err, tail(lab.Log(host), 30))
		default:
		}
		_, errs, err := lab.CalicoWithin(5*time.Second, host, "status")
		return err == nil, errs
	})
}

// inNodeMounts runs a command in host's node's network and mount
// namespaces (where its /etc/calico/secrets is), with stdin.
func inNodeMounts(lab *Lab, host, stdin string, args ...string) (string, error) {
	pid, err := lab.pid(host)
	if err != nil {
		return "", err
	}
	cmd := exec.Command("nsenter", append([]string{fmt.Sprintf("--mount=/proc/%d/ns/mnt", pid), "--net=" + bgpNS(host)}, args...)...)
	cmd.Env = append(os.Environ(), "CALICO_DATA_DIR="+lab.DataDir(host))
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// setSecret is `calico bgp secret set ref` on host with the password pw.
func setSecret(t *testing.T, lab *Lab, host, ref, pw string) {
	t.Helper()
	out, err := inNodeMounts(lab, host, pw+"\n", calicoBin, "bgp", "secret", "set", ref)
	if err != nil || !strings.Contains(out, "set it on every node") {
		t.Fatalf("calico bgp secret set %s on %s: %v\n%s", ref, host, err, out)
	}
}

// session is one row of `calico status -o json`'s bgp.
type session struct {
	Peer  string `json:"peer"`
	Type  string `json:"type"`
	Node  string `json:"node"`
	State string `json:"state"`
}

// sessions are host's BGP sessions by peer node ("" for a router), one
// state per family, sorted.
func sessions(lab *Lab, host string) (map[string][]string, error) {
	out, errs, err := lab.CalicoWithin(10*time.Second, host, "status", "-o", "json")
	if err != nil {
		return nil, fmt.Errorf("status on %s: %v: %s", host, err, errs)
	}
	var st struct {
		BGP []session `json:"bgp"`
	}
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		return nil, err
	}
	m := map[string][]string{}
	for _, s := range st.BGP {
		m[s.Node] = append(m[s.Node], s.State)
	}
	for _, v := range m {
		slices.Sort(v)
	}
	return m, nil
}

// waitSessions waits until every one of host's sessions to each node in
// want is in a state that want's function accepts.
func waitSessions(t *testing.T, lab *Lab, host string, within time.Duration, want map[string]func(string) bool) {
	t.Helper()
	bgpWaitFor(t, within, 300*time.Millisecond, host+"'s BGP sessions", func() (bool, string) {
		m, err := sessions(lab, host)
		if err != nil {
			return false, err.Error()
		}
		for node, ok := range want {
			if len(m[node]) == 0 {
				return false, fmt.Sprintf("no session to %s: %v", node, m)
			}
			for _, s := range m[node] {
				if !ok(s) {
					return false, fmt.Sprintf("%v", m)
				}
			}
		}
		return true, ""
	})
}

// holdSessions checks for a while that host's sessions stay as want
// says (a session with the wrong password must not come up on a later
// connect retry).
func holdSessions(t *testing.T, lab *Lab, host string, d time.Duration, want map[string]func(string) bool) {
	t.Helper()
	for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(300 * time.Millisecond) {
		m, err := sessions(lab, host)
		if err != nil {
			t.Fatal(err)
		}
		for node, ok := range want {
			for _, s := range m[node] {
				if !ok(s) {
					t.Fatalf("%s's sessions to %s: %v", host, node, m[node])
				}
			}
		}
	}
}

func established(s string) bool { return s == "established" }
func notUp(s string) bool       { return s != "established" }

// TestBGPSecrets: the mesh's password comes from each node's secret file.
// Nodes whose files match have their sessions (IPv4 and IPv6) up; a node
// with another password has none, and gets them once its file is fixed;
// a file others may read is refused and `calico status` says why; the
// password is in no log, and the datastore holds only the reference; a
// password given as a value is refused on apply.
func TestBGPSecrets(t *testing.T) {
	lab := NewLab(t, 3, 1)
	secretNode(t, lab, "host1", bgpPools...)
	join := []string{"--join", lab.Addr("host1"), "--token", lab.Token("host1")}
	secretNode(t, lab, "host2", join...)
	secretNode(t, lab, "host3", join...)
	waitSessions(t, lab, "host1", 60*time.Second, map[string]func(string) bool{"host2": established, "host3": established})

	const good, bad = "Same-Secret-of-the-mesh", "an0ther-Secret"
	setSecret(t, lab, "host1", "mesh/password", good)
	setSecret(t, lab, "host2", "mesh/password", good)
	setSecret(t, lab, "host3", "mesh/password", bad)
	cfg := "apiVersion: projectcalico.org/v3\nkind: BGPConfiguration\nmetadata: {name: default}\n" +
		"spec: {nodeMeshPassword: {secretKeyRef: {name: mesh, key: password}}}\n"
	if out, err := inNodeMounts(lab, "host1", cfg, calicoBin, "apply", "-f", "-"); err != nil {
		t.Fatalf("applying the mesh password: %v\n%s", err, out)
	}
	waitSessions(t, lab, "host3", 60*time.Second, map[string]func(string) bool{"host1": notUp, "host2": notUp})
	waitSessions(t, lab, "host1", 60*time.Second, map[string]func(string) bool{"host2": established, "host3": notUp})
	waitSessions(t, lab, "host2", 30*time.Second, map[string]func(string) bool{"host1": established, "host3": notUp})
	// Several connect retries (1 s) later, still no session with host3.
	holdSessions(t, lab, "host1", 6*time.Second, map[string]func(string) bool{"host2": established, "host3": notUp})

	setSecret(t, lab, "host3", "mesh/password", good)
	waitSessions(t, lab, "host3", 60*time.Second, map[string]func(string) bool{"host1": established, "host2": established})

	if out, err := inNodeMounts(lab, "host2", "", "chmod", "644", "/etc/calico/secrets/mesh/password"); err != nil {
		t.Fatalf("chmod on host2: %v %s", err, out)
	}
	refused := func(s string) bool {
		return strings.HasPrefix(s, "refused: ") && strings.Contains(s, "others may read it")
	}
	waitSessions(t, lab, "host2", 30*time.Second, map[string]func(string) bool{"host1": refused, "host3": refused})
	if n := strings.Count(lab.Log("host2"), "their password cannot be used"); n != 1 {
		t.Errorf("host2 logged the refusal %d times; want once", n)
	}

	for _, h := range bgpHosts(3) {
		if strings.Contains(lab.Log(h), good) || strings.Contains(lab.Log(h), bad) {
			t.Errorf("%s's log shows a password", h)
		}
	}
	got := lab.MustCalico("host1", "get", "bgpconfigurations", "default", "-o", "json")
	if !strings.Contains(got, `"secretKeyRef"`) || strings.Contains(got, good) {
		t.Errorf("BGPConfiguration default as stored:\n%s", got)
	}
	value := strings.Replace(cfg, "{secretKeyRef: {name: mesh, key: password}}", "{value: "+good+"}", 1)
	out, err := inNodeMounts(lab, "host1", value, calicoBin, "apply", "-f", "-")
	if err == nil || !strings.Contains(out, "a password is not stored in the datastore") || strings.Contains(out, good) {
		t.Errorf("apply of a password value: %v\n%s", err, out)
	}

	// A BGPPeer's password: refused while host1 lacks the file, then
	// configured (nothing answers at the gateway: it never comes up).
	out, err = inNodeMounts(lab, "host1", "", calicoBin, "bgp", "peer", "add", "172.31.1.1", "--as", "65001", "--node", "host1", "--password-secret", "tor/md5")
	if err != nil || !strings.Contains(out, "/etc/calico/secrets/tor/md5 does not exist on this node") {
		t.Errorf("bgp peer add --password-secret: %v\n%s", err, out)
	}
	if list := lab.MustCalico("host1", "bgp", "peer", "list"); !strings.Contains(list, "secret tor/md5") {
		t.Errorf("bgp peer list does not name the secret:\n%s", list)
	}
	missing := func(s string) bool { return strings.HasPrefix(s, "refused: ") && strings.Contains(s, "does not exist") }
	waitSessions(t, lab, "host1", 30*time.Second, map[string]func(string) bool{"": missing})
	setSecret(t, lab, "host1", "tor/md5", "t0r-Secret")
	waitSessions(t, lab, "host1", 30*time.Second, map[string]func(string) bool{"": func(s string) bool { return !strings.HasPrefix(s, "refused") }})

	secretsLogLevels(t, lab)
}

// secretsLogLevels: FelixConfiguration node.host2 logSeverityScreen Debug
// makes host2's node log at Debug, and no other; BGPConfiguration
// node.host3's sets host3's BGP speaker's level.
func secretsLogLevels(t *testing.T, lab *Lab) {
	t.Helper()
	levels := "apiVersion: projectcalico.org/v3\nkind: FelixConfiguration\nmetadata: {name: node.host2}\nspec: {logSeverityScreen: Debug}\n---\n" +
		"apiVersion: projectcalico.org/v3\nkind: BGPConfiguration\nmetadata: {name: node.host3}\nspec: {logSeverityScreen: Debug}\n"
	if out, err := inNodeMounts(lab, "host1", levels, calicoBin, "apply", "-f", "-"); err != nil {
		t.Fatalf("applying log levels: %v\n%s", err, out)
	}
	bgpWaitFor(t, 30*time.Second, 200*time.Millisecond, "host2 logging at Debug", func() (bool, string) {
		l := lab.Log("host2")
		return strings.Contains(l, "log level set from FelixConfiguration logSeverityScreen") && strings.Contains(l, "level=DEBUG"), tail(l, 5)
	})
	bgpWaitFor(t, 30*time.Second, 200*time.Millisecond, "host3's BGP speaker at Debug", func() (bool, string) {
		l := lab.Log("host3")
		return strings.Contains(l, "BGP log level set from BGPConfiguration logSeverityScreen"), tail(l, 5)
	})
	for _, h := range []string{"host1", "host3"} {
		if l := lab.Log(h); strings.Contains(l, "level=DEBUG msg=applied") {
			t.Errorf("%s's agent logs at Debug, which only host2's should", h)
		}
	}
}
