package e2e

// The installer's tests. Each runs scripts/install.sh in a sandbox: a
// throwaway mount and network namespace (unshare) in which /etc and
// /var/lib are overlays whose upper layer is a tmpfs, /usr/local/bin,
// /etc/systemd/system and /run are empty tmpfs mounts, and lo is the only
// link. Whatever the installer writes vanishes with the sandbox, and it
// cannot reach or change the machine's own files, systemd or network.
//
// The release it installs is a dist dir made here for this machine's
// architecture alone: a copy of $CALICO with its sha256sum.txt (and, for
// the upgrade, one more build of the same source with another version
// stamped), served by python3 -m http.server on 127.0.0.1 inside the
// sandbox. The two-architecture `make release` is not run: it is slow, and
// the installer needs only some binary and a correct checksum file.

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"
)

// A sandbox is a mount and network namespace held open by a sleeping
// process; commands run in it through nsenter.
type sandbox struct {
	t    *testing.T
	pid  int
	root string // the sandbox's / as seen from outside (/proc/PID/root)
}

// sandboxScript makes the sandbox's mounts, brings lo up and sleeps. $1 is
// a host directory for the tmpfs that holds the overlays' upper layers.
const sandboxScript = `set -e
T=$1
mount -t tmpfs tmpfs "$T"
mkdir -p "$T/etc/up" "$T/etc/work" "$T/lib/up" "$T/lib/work"
mount -t overlay overlay -o "lowerdir=/etc,upperdir=$T/etc/up,workdir=$T/etc/work" /etc
mount -t overlay overlay -o "lowerdir=/var/lib,upperdir=$T/lib/up,workdir=$T/lib/work" /var/lib
# A machine with calico installed must still look fresh in here.
rm -rf /etc/calico /etc/default/calico /var/lib/calico
for d in /usr/local/bin /etc/systemd/system /run; do
	mount -t tmpfs -o mode=0755 tmpfs "$d"
done
ip link set lo up
# No DAD, so IPv6 addresses are stable from the start.
echo 0 > /proc/sys/net/ipv6/conf/all/accept_dad
echo 0 > /proc/sys/net/ipv6/conf/default/accept_dad
echo ready
exec sleep 100000
`

func installPrereqs(t *testing.T, tools ...string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("the installer tests need root (sudo make test)")
	}
	for _, tool := range append([]string{"unshare", "nsenter", "sh", "sha256sum", "awk"}, tools...) {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("the installer tests need %s, which is not installed (.ci/run installs it)", tool)
		}
	}
}

func newSandbox(t *testing.T) *sandbox {
	t.Helper()
	cmd := exec.Command("unshare", "--mount", "--net", "--propagation", "private", "sh", "-c", sandboxScript, "sh", t.TempDir())
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	ready := make(chan bool, 1)
	go func() {
		line, _ := bufio.NewReader(out).ReadString('\n')
		ready <- line == "ready\n"
	}()
	select {
	case ok := <-ready:
		if !ok {
			cmd.Wait()
			t.Skipf("cannot make the sandbox (mount and network namespace with tmpfs and overlayfs) on this machine: %s", strings.TrimSpace(stderr.String()))
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("the sandbox did not come up: %s", stderr.String())
	}
	return &sandbox{t: t, pid: cmd.Process.Pid, root: fmt.Sprintf("/proc/%d/root", cmd.Process.Pid)}
}

// cmd is a command in the sandbox with a clean environment plus env.
func (s *sandbox) cmd(env []string, name string, args ...string) *exec.Cmd {
	a := []string{"-t", strconv.Itoa(s.pid), "-m", "-n", "--", "env", "-i",
		"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME"), "LANG=C"}
	if v := os.Getenv("PYENV_ROOT"); v != "" {
		a = append(a, "PYENV_ROOT="+v)
	}
	a = append(append(append(a, env...), name), args...)
	return exec.Command("nsenter", a...)
}

// sh runs a shell command in the sandbox and returns its stdout, stderr
// and exit code.
func (s *sandbox) sh(env []string, script string, args ...string) (stdout, stderr string, code int) {
	s.t.Helper()
	cmd := s.cmd(env, "sh", append([]string{"-c", script, "sh"}, args...)...)
	var o, e strings.Builder
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	if err != nil {
		if ee, ok := err.(*exec.ExitError); ok {
			return o.String(), e.String(), ee.ExitCode()
		}
		s.t.Fatalf("running %q: %v", script, err)
	}
	return o.String(), e.String(), 0
}

// must runs a shell command in the sandbox and fails the test unless it
// succeeds.
func (s *sandbox) must(env []string, script string, args ...string) string {
	s.t.Helper()
	o, e, code := s.sh(env, script, args...)
	if code != 0 {
		s.t.Fatalf("%s: exit code %d\nstdout:\n%s\nstderr:\n%s", script, code, o, e)
	}
	return o
}

// path is where a file of the sandbox is seen from outside.
func (s *sandbox) path(p string) string { return filepath.Join(s.root, p) }

// serve serves dir over HTTP on 127.0.0.1 in the sandbox and returns its
// URL.
func (s *sandbox) serve(dir string) string {
	s.t.Helper()
	cmd := s.cmd(nil, "python3", "-u", "-m", "http.server", "0", "--bind", "127.0.0.1", "--directory", dir)
	out, err := cmd.StdoutPipe()
	if err != nil {
		s.t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		s.t.Fatal(err)
	}
	s.t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	port := make(chan string, 1)
	go func() {
		line, _ := bufio.NewReader(out).ReadString('\n')
		m := regexp.MustCompile(`port (\d+)`).FindStringSubmatch(line)
		if m == nil {
			port <- ""
			return
		}
		port <- m[1]
		io.Copy(io.Discard, out)
	}()
	select {
	case p := <-port:
		if p == "" {
			s.t.Fatal("python3 -m http.server did not say its port")
		}
		return "http://127.0.0.1:" + p
	case <-time.After(10 * time.Second):
		s.t.Fatal("python3 -m http.server did not start")
	}
	return ""
}

var (
	repoRoot, _   = filepath.Abs("..")
	installScript = filepath.Join(repoRoot, "scripts", "install.sh")
	releaseFile   = "calico-linux-" + runtime.GOARCH
)

func sha256File(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// makeDist makes a release dir for this machine's architecture: bin as
// calico-linux-<arch>, install.sh and sha256sum.txt.
func makeDist(t *testing.T, bin string) string {
	t.Helper()
	dir := t.TempDir()
	copyFile(t, bin, filepath.Join(dir, releaseFile), 0o755)
	copyFile(t, installScript, filepath.Join(dir, "install.sh"), 0o644)
	var sums strings.Builder
	for _, f := range []string{releaseFile, "install.sh"} {
		fmt.Fprintf(&sums, "%s  %s\n", sha256File(t, filepath.Join(dir, f)), f)
	}
	if err := os.WriteFile(filepath.Join(dir, "sha256sum.txt"), []byte(sums.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

func copyFile(t *testing.T, from, to string, mode os.FileMode) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, mode); err != nil {
		t.Fatal(err)
	}
}

// shell is dash when it is installed (the strictest POSIX sh at hand),
// else sh.
func shell() string {
	if _, err := exec.LookPath("dash"); err == nil {
		return "dash"
	}
	return "sh"
}

// checkMode fails the test unless the sandbox's file p exists with mode.
func (s *sandbox) checkMode(p string, mode os.FileMode) {
	s.t.Helper()
	fi, err := os.Stat(s.path(p))
	if err != nil {
		s.t.Errorf("%s: %v", p, err)
		return
	}
	if fi.Mode().Perm() != mode {
		s.t.Errorf("%s has mode %o; want %o", p, fi.Mode().Perm(), mode)
	}
}

func (s *sandbox) read(p string) string {
	s.t.Helper()
	b, err := os.ReadFile(s.path(p))
	if err != nil {
		s.t.Fatal(err)
	}
	return string(b)
}

func (s *sandbox) exists(p string) bool {
	_, err := os.Lstat(s.path(p))
	return err == nil
}

const testToken = "K1d2a8e1f0c0ffee00000000000000000000000000000000000000000000000000::s3cret"

// TestInstallFresh installs the way the README says, with curl piped to
// sh and flags after `sh -s -`, and checks every file it writes.
func TestInstallFresh(t *testing.T) {
	installPrereqs(t, "python3", "curl")
	s := newSandbox(t)
	url := s.serve(makeDist(t, calicoBin))

	out := s.must([]string{"URL=" + url, "CALICO_JOIN=172.31.1.11", "CALICO_TOKEN=" + testToken, "INSTALL_CALICO_SKIP_START=true"},
		`curl -sfL "$URL/install.sh" | CALICO_DOWNLOAD_URL="$URL" `+shell()+` -s - --pool 10.65.0.0/16 --pool fd00:65::/48 --name host2`)
	t.Logf("install.sh said:\n%s", out)
	if !strings.Contains(out, "systemd is not running here") {
		t.Errorf("install.sh without systemd as PID 1 did not say how to start the node:\n%s", out)
	}

	if got, want := sha256File(t, s.path("/usr/local/bin/calico")), sha256File(t, calicoBin); got != want {
		t.Errorf("installed binary's sha256 = %s; want %s (the release's)", got, want)
	}
	s.checkMode("/usr/local/bin/calico", 0o755)
	if v := s.must(nil, "/usr/local/bin/calico version"); !strings.HasPrefix(v, "calico ") {
		t.Errorf("calico version = %q", v)
	}

	wantConfig := `# calico up reads this file: its keys are calico up's flags without the --.
# install.sh sets only the keys it is given and keeps the others.
join: 172.31.1.11
token: "` + testToken + `"
pool: [10.65.0.0/16, "fd00:65::/48"]
name: host2
`
	if got := s.read("/etc/calico/config.yaml"); got != wantConfig {
		t.Errorf("config.yaml =\n%s\nwant\n%s", got, wantConfig)
	}
	s.checkMode("/etc/calico/config.yaml", 0o600)

	canonical, err := os.ReadFile(filepath.Join(repoRoot, "scripts", "calico.service"))
	if err != nil {
		t.Fatal(err)
	}
	if got := s.read("/etc/systemd/system/calico.service"); got != string(canonical) {
		t.Errorf("the unit install.sh wrote differs from scripts/calico.service:\n%s", got)
	}
	s.checkMode("/etc/systemd/system/calico.service", 0o644)
	s.checkMode("/usr/local/bin/calico-uninstall.sh", 0o755)
	if _, e, code := s.sh(nil, shell()+" -n /usr/local/bin/calico-uninstall.sh"); code != 0 {
		t.Errorf("calico-uninstall.sh does not parse: %s", e)
	}
	for _, p := range []string{"/etc/default/calico", "/var/lib/calico"} {
		if s.exists(p) {
			t.Errorf("install.sh made %s", p)
		}
	}

	t.Run("systemd-analyze verify", func(t *testing.T) {
		if _, err := exec.LookPath("systemd-analyze"); err != nil {
			t.Skip("systemd-analyze is not installed (Debian: apt-get install systemd)")
		}
		o, e, code := s.sh(nil, "systemd-analyze verify /etc/systemd/system/calico.service")
		if code != 0 || strings.TrimSpace(o+e) != "" {
			t.Errorf("systemd-analyze verify: exit code %d\n%s%s", code, o, e)
		}
	})
}

// TestInstallUpgrade runs install.sh again: with the same release it
// changes nothing, with a new build it replaces the binary, and it keeps
// the config's keys that it is not given.
func TestInstallUpgrade(t *testing.T) {
	installPrereqs(t, "python3", "curl", "go")
	s := newSandbox(t)
	dist1 := makeDist(t, calicoBin)
	url1 := s.serve(dist1)
	env := []string{"INSTALL_CALICO_SKIP_START=true", "SCRIPT=" + installScript}

	s.must(append(env, "CALICO_DOWNLOAD_URL="+url1, "CALICO_JOIN=172.31.1.11", "CALICO_TOKEN="+testToken),
		shell()+` "$SCRIPT" --pool 10.65.0.0/16`)
	// The user adds a key of their own.
	f, err := os.OpenFile(s.path("/etc/calico/config.yaml"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintln(f, "log-level: debug")
	f.Close()
	before, err := os.Stat(s.path("/usr/local/bin/calico"))
	if err != nil {
		t.Fatal(err)
	}

	// The same release again, from the local dir as file:// (air-gapped).
	out := s.must(append(env, "CALICO_DOWNLOAD_URL=file://"+dist1), shell()+` "$SCRIPT"`)
	if !strings.Contains(out, "nothing changed") || strings.Contains(out, "downloading") {
		t.Errorf("re-running with the same release did something:\n%s", out)
	}
	after, err := os.Stat(s.path("/usr/local/bin/calico"))
	if err != nil {
		t.Fatal(err)
	}
	if !os.SameFile(before, after) || !before.ModTime().Equal(after.ModTime()) {
		t.Errorf("re-running with the same release replaced the binary")
	}

	// A new build of the same source, stamped with another version.
	newBin := filepath.Join(t.TempDir(), "calico")
	build := exec.Command("go", "build", "-trimpath", "-buildvcs=false",
		"-ldflags", "-s -w -buildid= -X calico/cli.Version=e2e-upgrade", "-o", newBin, ".")
	build.Dir = repoRoot
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building the new release: %v\n%s", err, out)
	}
	url2 := s.serve(makeDist(t, newBin))
	out = s.must(append(env, "CALICO_DOWNLOAD_URL="+url2), shell()+` "$SCRIPT" --pool 10.66.0.0/16 --pool 10.67.0.0/16`)
	t.Logf("the upgrade said:\n%s", out)
	if got, want := sha256File(t, s.path("/usr/local/bin/calico")), sha256File(t, newBin); got != want {
		t.Errorf("after the upgrade the binary's sha256 = %s; want %s (the new release's)", got, want)
	}
	if v := s.must(nil, "/usr/local/bin/calico version"); v != "calico e2e-upgrade\n" {
		t.Errorf("after the upgrade calico version = %q", v)
	}
	s.checkMode("/usr/local/bin/calico", 0o755)
	wantConfig := `# calico up reads this file: its keys are calico up's flags without the --.
# install.sh sets only the keys it is given and keeps the others.
join: 172.31.1.11
token: "` + testToken + `"
pool: [10.66.0.0/16, 10.67.0.0/16]
log-level: debug
`
	if got := s.read("/etc/calico/config.yaml"); got != wantConfig {
		t.Errorf("after the upgrade config.yaml =\n%s\nwant\n%s", got, wantConfig)
	}
	s.checkMode("/etc/calico/config.yaml", 0o600)
	if s.exists("/usr/local/bin/.calico.new") {
		t.Errorf("the upgrade left /usr/local/bin/.calico.new")
	}
}

// TestInstallRefusals checks that install.sh refuses with one line and
// installs nothing when it cannot do its job.
func TestInstallRefusals(t *testing.T) {
	installPrereqs(t, "python3", "curl")
	s := newSandbox(t)
	good := makeDist(t, calicoBin)
	url := s.serve(good)

	bad := makeDist(t, calicoBin)
	sums := strings.Replace(readFile(t, filepath.Join(bad, "sha256sum.txt")), sha256File(t, calicoBin), strings.Repeat("0", 64), 1)
	if err := os.WriteFile(filepath.Join(bad, "sha256sum.txt"), []byte(sums), 0o644); err != nil {
		t.Fatal(err)
	}
	badURL := s.serve(bad)

	// A fake uname in front of the real one makes another machine.
	uname, err := exec.LookPath("uname")
	if err != nil {
		t.Skip("uname is not installed")
	}
	fake := t.TempDir()
	for name, script := range map[string]string{
		"not-linux/uname": "#!/bin/sh\n[ \"$1\" = -s ] && { echo Darwin; exit; }\nexec " + uname + " \"$@\"\n",
		"s390x/uname":     "#!/bin/sh\n[ \"$1\" = -m ] && { echo s390x; exit; }\nexec " + uname + " \"$@\"\n",
	} {
		os.MkdirAll(filepath.Join(fake, filepath.Dir(name)), 0o755)
		if err := os.WriteFile(filepath.Join(fake, name), []byte(script), 0o755); err != nil {
			t.Fatal(err)
		}
	}

	for _, tc := range []struct {
		name, script string
		env          []string
		want         string
		needs        string
	}{
		{name: "checksum mismatch", script: `sh "$SCRIPT"`, env: []string{"CALICO_DOWNLOAD_URL=" + badURL},
			want: "checksum mismatch for " + badURL + "/" + releaseFile + ": sha256 " + sha256File(t, calicoBin) + ", sha256sum.txt says " + strings.Repeat("0", 64)},
		{name: "unreachable download", script: `sh "$SCRIPT"`, env: []string{"CALICO_DOWNLOAD_URL=http://127.0.0.1:9/v1"},
			want: "cannot download http://127.0.0.1:9/v1/sha256sum.txt: cannot connect"},
		{name: "missing file", script: `sh "$SCRIPT"`, env: []string{"CALICO_DOWNLOAD_URL=" + url + "/nope"},
			want: "cannot download " + url + "/nope/sha256sum.txt: the server answered with an HTTP error"},
		{name: "missing local dir", script: `sh "$SCRIPT"`, env: []string{"CALICO_DOWNLOAD_URL=/nonexistent"},
			want: "cannot read /nonexistent/sha256sum.txt"},
		{name: "not root", script: `setpriv --reuid=65534 --regid=65534 --clear-groups sh -s - < "$SCRIPT"`, needs: "setpriv",
			env: []string{"CALICO_DOWNLOAD_URL=" + url}, want: "install.sh must run as root (curl -sfL … | sudo sh -)"},
		{name: "not Linux", script: `PATH=$FAKE/not-linux:$PATH sh "$SCRIPT"`, env: []string{"CALICO_DOWNLOAD_URL=" + url, "FAKE=" + fake},
			want: "calico runs on Linux only (this is Darwin)"},
		{name: "unsupported architecture", script: `PATH=$FAKE/s390x:$PATH sh "$SCRIPT"`, env: []string{"CALICO_DOWNLOAD_URL=" + url, "FAKE=" + fake},
			want: "unsupported architecture s390x: calico is built for x86_64 (amd64) and aarch64 (arm64)"},
		{name: "join without token", script: `sh "$SCRIPT"`, env: []string{"CALICO_DOWNLOAD_URL=" + url, "CALICO_JOIN=172.31.1.11"},
			want: "CALICO_JOIN needs CALICO_TOKEN (calico token on a member of the cluster prints it)"},
		{name: "positional argument", script: `sh "$SCRIPT" agent`, env: []string{"CALICO_DOWNLOAD_URL=" + url},
			want: "unexpected argument 'agent': the arguments after 'sh -s -' are calico up flags, such as --pool 10.65.0.0/16"},
		{name: "flag without value", script: `sh "$SCRIPT" --pool`, env: []string{"CALICO_DOWNLOAD_URL=" + url},
			want: "--pool needs a value"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.needs != "" {
				if _, err := exec.LookPath(tc.needs); err != nil {
					t.Skipf("needs %s, which is not installed", tc.needs)
				}
			}
			o, e, code := s.sh(append(tc.env, "SCRIPT="+installScript), tc.script)
			if code == 0 {
				t.Fatalf("install.sh succeeded:\n%s", o)
			}
			if got, want := e, "[ERROR] "+tc.want+"\n"; got != want {
				t.Errorf("stderr = %q; want one line %q", got, want)
			}
			for _, p := range []string{"/usr/local/bin/calico", "/usr/local/bin/calico-uninstall.sh", "/etc/systemd/system/calico.service", "/etc/calico", "/var/lib/calico"} {
				if s.exists(p) {
					t.Errorf("install.sh refused but made %s", p)
				}
			}
			if ents, _ := os.ReadDir(s.path("/usr/local/bin")); len(ents) > 0 {
				t.Errorf("install.sh refused but left %s in /usr/local/bin", ents[0].Name())
			}
		})
	}
}

func readFile(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// hostState is what the uninstaller must leave as it was.
const hostState = `ip -o addr; echo; ip -4 route show table all; echo; ip -6 route show table all; echo
ip -o link; echo; nft list ruleset; echo; ls -A /run/netns`

// TestInstallUninstall makes what a node makes (its nftables table, routes
// of protocol 80, cali… veths, a workload namespace it records) beside the
// host's own (another table, a static route, another veth pair, addresses,
// another namespace) and checks that calico-uninstall.sh removes exactly
// calico's.
func TestInstallUninstall(t *testing.T) {
	installPrereqs(t, "nft")
	s := newSandbox(t)
	dist := makeDist(t, calicoBin)
	s.must([]string{"CALICO_DOWNLOAD_URL=" + dist, "INSTALL_CALICO_SKIP_START=true", "SCRIPT=" + installScript},
		`sh "$SCRIPT" --pool 10.65.0.0/16`)

	// The host's own.
	s.must(nil, `set -e
ip link add eth-host0 type veth peer name eth-host1
ip addr add 192.0.2.1/24 dev eth-host0
ip addr add 2001:db8::1/64 dev eth-host0
ip link set eth-host0 up
ip link set eth-host1 up
ip route add 198.51.100.0/24 via 192.0.2.254 proto static
ip route add default via 192.0.2.254
ip -6 route add 2001:db8:1::/48 via 2001:db8::fe proto static
nft add table inet other
nft add chain inet other input '{ type filter hook input priority 0; policy accept; }'
nft add rule inet other input tcp dport 22 counter accept
nft add table ip filter
ip netns add other-ns
`)
	want := s.must(nil, hostState)

	// Calico's: a workload in a namespace it made (recorded in the data
	// dir), one in a namespace it was given (not recorded), their routes,
	// the blocks' blackholes and the table.
	s.must(nil, `set -e
ip netns add wl1
mkdir -p /var/lib/calico/netns
echo default/wl1 > /var/lib/calico/netns/wl1
ip link add cali0123456789a type veth peer name eth0 netns wl1
ip link add calibcdef012345 type veth peer name eth0 netns other-ns
ip link set cali0123456789a up
ip link set calibcdef012345 up
ip route add 10.65.0.7/32 dev cali0123456789a proto 80
ip route add 10.65.0.8/32 dev calibcdef012345 proto 80
ip route add blackhole 10.65.0.0/26 proto 80
ip -6 route add fd00:65::7/128 dev cali0123456789a proto 80
ip -6 route add blackhole fd00:65::/122 proto 80
nft add table inet calico
nft add chain inet calico forward '{ type filter hook forward priority 0; policy accept; }'
nft add rule inet calico forward iifname "cali*" counter accept
echo 'hello' > /var/lib/calico/identity
`)
	if got := s.must(nil, hostState); got == want {
		t.Fatal("making calico's dataplane changed nothing")
	}

	// --leave needs a running node: refused, nothing removed.
	o, e, code := s.sh(nil, "/usr/local/bin/calico-uninstall.sh --leave")
	if code == 0 || !strings.Contains(e, "calico leave failed (is the node running?): nothing was removed") {
		t.Errorf("--leave without a node: exit code %d\n%s%s", code, o, e)
	}
	if _, _, code := s.sh(nil, "nft list table inet calico"); code != 0 || !s.exists("/usr/local/bin/calico") {
		t.Errorf("a refused --leave removed something")
	}

	start := time.Now()
	out := s.must(nil, "/usr/local/bin/calico-uninstall.sh --purge")
	t.Logf("calico-uninstall.sh --purge (%v):\n%s", time.Since(start).Round(time.Millisecond), out)

	// A namespace's links go when the kernel cleans it up, a moment later.
	var got string
	for deadline := time.Now().Add(5 * time.Second); ; {
		if got = s.must(nil, hostState); got == want || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if got != want {
		t.Errorf("after uninstalling the host differs from before calico's dataplane was made:\n--- got\n%s\n--- want\n%s", got, want)
	}
	for _, p := range []string{"/usr/local/bin/calico", "/usr/local/bin/calico-uninstall.sh",
		"/etc/systemd/system/calico.service", "/etc/calico", "/var/lib/calico"} {
		if s.exists(p) {
			t.Errorf("%s is still there", p)
		}
	}
}

// TestInstallUninstallKeepsData: without --purge the uninstaller keeps the
// data dir (the cluster's state) but removes the node's binary that calico
// up unpacked into it (bin/calico-<16 hex digits>, and an unpack cut
// short): program, not data. Anything else in bin/ stays, and so does
// bin/ then (a data dir may be set to a directory with a bin/ of its own).
func TestInstallUninstallKeepsData(t *testing.T) {
	s := newSandbox(t)
	s.must([]string{"CALICO_DOWNLOAD_URL=" + makeDist(t, calicoBin), "INSTALL_CALICO_SKIP_START=true", "SCRIPT=" + installScript},
		`sh "$SCRIPT"`)
	s.must(nil, `set -e
mkdir -p /var/lib/calico/bin
echo state > /var/lib/calico/identity
echo binary > /var/lib/calico/bin/calico-0123456789abcdef
echo unfinished > /var/lib/calico/bin/.calico-123
echo theirs > /var/lib/calico/bin/calico-tool
`)
	out := s.must(nil, "/usr/local/bin/calico-uninstall.sh")
	if !s.exists("/var/lib/calico/identity") {
		t.Errorf("calico-uninstall.sh without --purge removed the data dir's state:\n%s", out)
	}
	for _, p := range []string{"/var/lib/calico/bin/calico-0123456789abcdef", "/var/lib/calico/bin/.calico-123", "/usr/local/bin/calico"} {
		if s.exists(p) {
			t.Errorf("calico-uninstall.sh left %s:\n%s", p, out)
		}
	}
	if !s.exists("/var/lib/calico/bin/calico-tool") {
		t.Errorf("calico-uninstall.sh removed /var/lib/calico/bin/calico-tool, which is not calico's:\n%s", out)
	}
}

// TestInstallScriptsLint parses install.sh and the calico-uninstall.sh it
// writes with dash (POSIX sh) and, where installed, checks both with
// shellcheck.
func TestInstallScriptsLint(t *testing.T) {
	installPrereqs(t, "dash")
	s := newSandbox(t)
	s.must([]string{"CALICO_DOWNLOAD_URL=" + makeDist(t, calicoBin), "INSTALL_CALICO_SKIP_START=true", "SCRIPT=" + installScript}, `sh "$SCRIPT"`)
	uninstall := filepath.Join(t.TempDir(), "calico-uninstall.sh")
	copyFile(t, s.path("/usr/local/bin/calico-uninstall.sh"), uninstall, 0o755)
	for _, f := range []string{installScript, uninstall} {
		if out, err := exec.Command("dash", "-n", f).CombinedOutput(); err != nil {
			t.Errorf("dash -n %s: %v\n%s", f, err, out)
		}
	}
	t.Run("shellcheck", func(t *testing.T) {
		if _, err := exec.LookPath("shellcheck"); err != nil {
			t.Skip("shellcheck is not installed (Debian: apt-get install shellcheck)")
		}
		for _, f := range []string{installScript, uninstall} {
			if out, err := exec.Command("shellcheck", "-s", "sh", f).CombinedOutput(); err != nil {
				t.Errorf("shellcheck %s: %v\n%s", f, err, out)
			}
		}
	})
}
