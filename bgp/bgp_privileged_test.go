package bgp

import (
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"calico/internal/testutil"
)

// inNetNSEnv marks the test binary re-run inside a network namespace.
const inNetNSEnv = "CALICO_BGP_TEST_IN_NETNS"

// inNetNS runs the calling test again, alone, in a test binary started
// inside a fresh network namespace, and reports whether the caller is
// that copy (and should go on) rather than the original (which should
// return). A whole process is needed, not NetNS.Do on one locked
// thread: GoBGP opens its listeners and connections on goroutines of
// its own, on whatever thread they land.
//
// The copy runs with GODEBUG=multipathtcp=0: with Go's default multipath
// TCP listener the kernel refuses TCP MD5 keys on GoBGP's listening
// socket (see mptcpListen).
func inNetNS(t *testing.T) bool {
	t.Helper()
	testutil.Privileged(t)
	if os.Getenv(inNetNSEnv) == "1" {
		return true
	}
	ns := testutil.NewNetNS(t)
	return testutil.Rerun(t, inNetNSEnv, []string{"ip", "netns", "exec", ns.Name}, "PRIVILEGED_TESTS=1", "GODEBUG=multipathtcp=0")
}

func run(t *testing.T, args ...string) {
	t.Helper()
	if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
		t.Fatalf("%s: %v: %s", strings.Join(args, " "), err, out)
	}
}

// TestPrivilegedPasswordAndIPv6: two speakers on addresses of their own
// peer over IPv4 and IPv6 with TCP MD5 passwords; B learns A's IPv4 and
// IPv6 prefixes. A connection to A from an address A has a password for
// is refused unless signed; from any other address it is accepted.
func TestPrivilegedPasswordAndIPv6(t *testing.T) {
	if !inNetNS(t) {
		return
	}
	run(t, "ip", "link", "set", "lo", "up")
	for _, a := range []string{"192.0.2.1/32", "192.0.2.2/32", "192.0.2.3/32", "192.0.2.4/32"} {
		run(t, "ip", "addr", "add", a, "dev", "lo")
	}
	for _, a := range []string{"2001:db8::1/128", "2001:db8::2/128"} {
		run(t, "ip", "-6", "addr", "add", a, "dev", "lo", "nodad")
	}
	a4, b4, c4, d4 := netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("192.0.2.2"),
		netip.MustParseAddr("192.0.2.3"), netip.MustParseAddr("192.0.2.4")
	a6, b6 := netip.MustParseAddr("2001:db8::1"), netip.MustParseAddr("2001:db8::2")

	startNode := func(v4, v6 netip.Addr) *Speaker {
		s, err := Start(t.Context(), Config{
			RouterID: v4, AS: testAS, ListenAddr: []netip.Addr{v4, v6}, ListenPort: 179,
			NextHop4: v4, NextHop6: v6, Log: testLog(t).With("node", v4),
		})
		if err != nil {
			t.Fatalf("starting speaker on %s: %v", v4, err)
		}
		t.Cleanup(s.Stop)
		return s
	}
	a, b := startNode(a4, a6), startNode(b4, b6)
	setPeers(t, a,
		Peer{Addr: b4, AS: testAS, Password: "v4-secret", LocalAddr: a4},
		Peer{Addr: b6, AS: testAS, Password: "v6-secret", LocalAddr: a6},
		Peer{Addr: c4, AS: testAS, Password: "c-secret", LocalAddr: a4})
	setPeers(t, b,
		Peer{Addr: a4, AS: testAS, Password: "v4-secret", LocalAddr: b4},
		Peer{Addr: a6, AS: testAS, Password: "v6-secret", LocalAddr: b6})
	advertise(t, a, "10.65.10.0/26", "fd00:65::/122")

	waitLearned(t, b, route("10.65.10.0/26", "192.0.2.1"), route("fd00:65::/122", "2001:db8::1"))
	waitState(t, b, a4, "established", false)
	waitState(t, b, a6, "established", false)

	dial := func(from netip.Addr) error {
		d := net.Dialer{Timeout: 2 * time.Second, LocalAddr: net.TCPAddrFromAddrPort(netip.AddrPortFrom(from, 0))}
		c, err := d.Dial("tcp", "192.0.2.1:179")
		if err == nil {
			c.Close()
		}
		return err
	}
	if err := dial(c4); err == nil {
		t.Error("an unsigned connection from 192.0.2.3, which A has a password for, was accepted")
	}
	if err := dial(d4); err != nil {
		t.Errorf("a connection from 192.0.2.4, which A has no password for: %v", err)
	}
}

// TestPrivilegedPasswordFiles: two speakers whose sessions take their
// passwords from files. With the same password the session comes up; when
// one end's file changes to another password (and peers are set again, as
// the agent does on every pass) the session goes down and stays down;
// with the right one again it comes back; a file others may read is
// refused (no session, Peers says why).
func TestPrivilegedPasswordFiles(t *testing.T) {
	if !inNetNS(t) {
		return
	}
	run(t, "ip", "link", "set", "lo", "up")
	for _, a := range []string{"192.0.2.1/32", "192.0.2.2/32"} {
		run(t, "ip", "addr", "add", a, "dev", "lo")
	}
	a4, b4 := netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("192.0.2.2")
	startNode := func(v4 netip.Addr) *Speaker {
		s, err := Start(t.Context(), Config{
			RouterID: v4, AS: testAS, ListenAddr: []netip.Addr{v4}, ListenPort: 179,
			NextHop4: v4, Log: testLog(t).With("node", v4),
		})
		if err != nil {
			t.Fatalf("starting speaker on %s: %v", v4, err)
		}
		t.Cleanup(s.Stop)
		return s
	}
	dir := t.TempDir()
	fileA := writeSecret(t, dir, "a", "same-secret\n", 0o600)
	fileB := writeSecret(t, dir, "b", "same-secret", 0o600)
	a, b := startNode(a4), startNode(b4)
	toB := Peer{Addr: b4, AS: testAS, Name: "b", LocalAddr: a4, PasswordFile: fileA}
	toA := Peer{Addr: a4, AS: testAS, Name: "a", LocalAddr: b4, PasswordFile: fileB}
	setPeers(t, a, toB)
	setPeers(t, b, toA)
	advertise(t, a, "10.65.10.0/26")
	waitState(t, a, b4, "established", false)
	waitLearned(t, b, route("10.65.10.0/26", "192.0.2.1"))

	writeSecret(t, dir, "b", "another-secret", 0o600)
	setPeers(t, b, toA)
	waitState(t, a, b4, "established", true)
	// Give it several connect retries (1 s each): it must not come up.
	deadline := time.Now().Add(8 * time.Second)
	for time.Now().Before(deadline) {
		for _, s := range []*Speaker{a, b} {
			st, _ := s.Peers(t.Context())
			for _, p := range st {
				if p.State == "established" {
					t.Fatalf("a session with mismatched passwords is established: %+v", p)
				}
			}
		}
		time.Sleep(200 * time.Millisecond)
	}

	writeSecret(t, dir, "b", "same-secret", 0o600)
	setPeers(t, b, toA)
	waitState(t, a, b4, "established", false)
	waitLearned(t, b, route("10.65.10.0/26", "192.0.2.1"))

	os.Chmod(fileA, 0o644)
	setPeers(t, a, toB)
	st := waitState(t, a, b4, "established", true)
	if !strings.HasPrefix(st.State, "refused: ") || !strings.Contains(st.Problem, fileA) {
		t.Errorf("A's session to B with a file others may read: %+v; want it refused, naming the file", st)
	}
	waitState(t, b, a4, "established", true)
}
