package cluster

import (
	"bytes"
	"context"
	"net/netip"
	"sync"
	"testing"
	"time"
)

// liveLab is a few liveness checks on 127.0.0.1 that watch each other.
type liveLab struct {
	t       *testing.T
	checks  map[string]*Liveness
	cancels map[string]context.CancelFunc
	wg      sync.WaitGroup

	mu      sync.Mutex
	changed map[string][]string        // by watcher: peers whose verdict changed
	ignored map[string]map[string]bool // by watcher: peers it does not watch
}

func newLiveLab(t *testing.T, key []byte, names ...string) *liveLab {
	l := &liveLab{t: t, checks: map[string]*Liveness{}, cancels: map[string]context.CancelFunc{}, changed: map[string][]string{}, ignored: map[string]map[string]bool{}}
	addrs := map[string]netip.AddrPort{}
	for _, n := range names {
		c, err := StartLiveness(LivenessConfig{
			Name: n, Bind: netip.MustParseAddr("127.0.0.1"), Port: -1, Key: key,
			Interval: 20 * time.Millisecond, Detect: 400 * time.Millisecond,
			Peers: func() map[string]netip.AddrPort {
				l.mu.Lock()
				defer l.mu.Unlock()
				out := map[string]netip.AddrPort{}
				for p, a := range addrs {
					if !l.ignored[n][p] {
						out[p] = a
					}
				}
				return out
			},
			Changed: func(peer string) {
				l.mu.Lock()
				l.changed[n] = append(l.changed[n], peer)
				l.mu.Unlock()
			},
		})
		if err != nil {
			t.Fatal(err)
		}
		l.checks[n] = c
		addrs[n] = netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(c.Port()))
	}
	for n, c := range l.checks {
		ctx, cancel := context.WithCancel(t.Context())
		l.cancels[n] = cancel
		l.wg.Go(func() { c.Run(ctx) })
	}
	t.Cleanup(func() {
		for _, cancel := range l.cancels {
			cancel()
		}
		l.wg.Wait()
	})
	return l
}

// settle lets every check hear every other a few times.
func (l *liveLab) settle() { time.Sleep(200 * time.Millisecond) }

// eventually waits (generously) until cond holds.
func (l *liveLab) eventually(what string, cond func() bool) {
	l.t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if cond() {
			return
		}
	}
	l.t.Fatalf("never: %s", what)
}

func TestLivenessFindsSilentHost(t *testing.T) {
	l := newLiveLab(t, make([]byte, 32), "a", "b", "c")
	l.settle()
	for _, w := range []string{"a", "b"} {
		for _, p := range []string{"a", "b", "c"} {
			if l.checks[w].Down(p) {
				t.Errorf("%s finds %s down while all run", w, p)
			}
		}
	}
	l.cancels["c"]() // like kill -9: no word
	l.eventually("a and b find c down", func() bool { return l.checks["a"].Down("c") && l.checks["b"].Down("c") })
	if l.checks["a"].Down("b") || l.checks["b"].Down("a") {
		t.Error("a live host found down")
	}
	if !l.checks["a"].Heard("b") || l.checks["a"].Heard("c") {
		t.Errorf("a heard b lately: %v (want true), c: %v (want false)", l.checks["a"].Heard("b"), l.checks["a"].Heard("c"))
	}
	l.mu.Lock()
	if got := l.changed["a"]; len(got) != 1 || got[0] != "c" {
		t.Errorf("a's changes: %v, want [c]", got)
	}
	l.mu.Unlock()
}

func TestLivenessHostBack(t *testing.T) {
	key := make([]byte, 32)
	l := newLiveLab(t, key, "a", "b", "c")
	l.settle()
	c := l.checks["c"]
	l.cancels["c"]()
	l.eventually("a finds c down", func() bool { return l.checks["a"].Down("c") })
	// c starts again on the same port.
	c2, err := StartLiveness(LivenessConfig{Name: "c", Bind: netip.MustParseAddr("127.0.0.1"), Port: c.Port(), Key: key,
		Interval: 20 * time.Millisecond, Detect: 400 * time.Millisecond, Peers: c.cfg.Peers})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	l.wg.Go(func() { c2.Run(ctx) })
	l.eventually("a finds c up again", func() bool { return !l.checks["a"].Down("c") })
}

func TestLivenessStoppingIsNotDown(t *testing.T) {
	l := newLiveLab(t, make([]byte, 32), "a", "b", "c")
	l.settle()
	l.checks["c"].Stop()
	l.cancels["c"]()
	time.Sleep(time.Second) // well past the detect time
	if l.checks["a"].Down("c") || l.checks["b"].Down("c") {
		t.Error("a host that said it is stopping is found down")
	}
}

// ignore makes watcher stop watching peer (or watch it again).
func (l *liveLab) ignore(watcher, peer string, ignored bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.ignored[watcher] == nil {
		l.ignored[watcher] = map[string]bool{}
	}
	l.ignored[watcher][peer] = ignored
}

// A host that stops watching another (it is no longer a BGP neighbour)
// stops heartbeating it too, and says so first: the other, which may
// still watch it for a while, gives no verdict on it. Watched again, it
// is judged again.
func TestLivenessFarewellToUnwatched(t *testing.T) {
	l := newLiveLab(t, make([]byte, 32), "a", "b", "c")
	l.settle()
	l.ignore("c", "a", true)
	l.eventually("c no longer watching a", func() bool { return !l.checks["c"].Watched("a") })
	time.Sleep(time.Second) // well past the detect time; c's farewells have ended
	if l.checks["a"].Down("c") {
		t.Error("a finds c down after c stopped watching it (no farewell heard)")
	}
	if l.checks["c"].Down("a") || l.checks["b"].Down("c") || l.checks["c"].Down("b") {
		t.Error("a live host found down")
	}
	if !l.checks["a"].Watched("c") || !l.checks["c"].Watched("b") {
		t.Error("a host's watching changed without its peers changing")
	}
	l.ignore("c", "a", false)
	l.eventually("c watching a again", func() bool { return l.checks["c"].Watched("a") })
	l.settle() // a hears c's heartbeats, not only its farewells
	l.cancels["c"]()
	l.eventually("a finds c, watching it again, down once it is gone", func() bool { return l.checks["a"].Down("c") })
}

// With no other host to compare with, silence is no evidence.
func TestLivenessTwoHostsNoVerdict(t *testing.T) {
	l := newLiveLab(t, make([]byte, 32), "a", "b")
	l.settle()
	l.cancels["b"]()
	time.Sleep(time.Second)
	if l.checks["a"].Down("b") {
		t.Error("a finds b down with no other host heard")
	}
}

func TestHeartbeatSigned(t *testing.T) {
	key := make([]byte, 32)
	l := &Liveness{cfg: LivenessConfig{Name: "host1"}, key: key}
	b := l.heartbeat(livenessAlive, time.Unix(1, 0))
	if kind, err := parseHeartbeat(key, b); err != nil || kind != livenessAlive {
		t.Fatalf("parse: %c %v", kind, err)
	}
	if bytes.Contains(b, []byte("host1")) {
		t.Errorf("the name travels in clear: %q", b)
	}
	other := make([]byte, 32)
	other[0] = 1
	if _, err := parseHeartbeat(other, b); err == nil {
		t.Error("a heartbeat signed with another key was accepted")
	}
	b[len(livenessMagic)] = livenessStopping
	if _, err := parseHeartbeat(key, b); err == nil {
		t.Error("a changed heartbeat was accepted")
	}
	for _, short := range [][]byte{nil, []byte("CLV1"), b[:len(b)-1]} {
		if _, err := parseHeartbeat(key, short); err == nil {
			t.Errorf("%q accepted", short)
		}
	}
}

func TestLivenessScope(t *testing.T) {
	c := &Cluster{}
	v4, v6 := Member{Meta: Meta{IPv4: "172.31.1.12"}}, Member{Meta: Meta{IPv4: "172.31.1.13", IPv6: "fd00::13"}}
	if !c.inLiveScope(v4) || !c.inLiveScope(v6) {
		t.Error("with no scope set, every member is watched")
	}
	c.SetLivenessScope([]netip.Addr{netip.MustParseAddr("fd00::13"), netip.MustParseAddr("10.9.9.9")})
	if c.inLiveScope(v4) || !c.inLiveScope(v6) {
		t.Errorf("scope of fd00::13: 172.31.1.12 watched %v (want false), 172.31.1.13/fd00::13 %v (want true)", c.inLiveScope(v4), c.inLiveScope(v6))
	}
	c.SetLivenessScope([]netip.Addr{})
	if c.inLiveScope(v6) {
		t.Error("an empty scope watches a member")
	}
	c.SetLivenessScope(nil)
	if !c.inLiveScope(v4) {
		t.Error("a nil scope does not watch every member")
	}
}
