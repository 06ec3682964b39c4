package agent

import (
	"context"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"calico/bgp"
	"calico/internal/testutil"
	"calico/node/calc"
)

// fakeSpeaker records how it was started and what it was given.
type fakeSpeaker struct {
	cfg     bgp.Config
	peers   []bgp.Peer
	changes chan struct{}
}

func (f *fakeSpeaker) SetPeers(_ context.Context, p []bgp.Peer) error      { f.peers = p; return nil }
func (f *fakeSpeaker) SetAdvertised(context.Context, []netip.Prefix) error { return nil }
func (f *fakeSpeaker) Learned() []bgp.Route                                { return nil }
func (f *fakeSpeaker) Changes() <-chan struct{}                            { return f.changes }
func (f *fakeSpeaker) Peers(context.Context) ([]bgp.PeerStatus, error)     { return nil, nil }
func (f *fakeSpeaker) Advertised(context.Context, netip.Addr) (int, error) { return 0, nil }
func (f *fakeSpeaker) Stop()                                               {}

// TestBGPDriverLogLevelAndWarnings: the speaker logs at BGPConfiguration's
// level whatever the node's, and as the node does without one; warnings
// are logged once while they last.
func TestBGPDriverLogLevelAndWarnings(t *testing.T) {
	var out testutil.SyncBuffer
	nodeLevel := new(slog.LevelVar) // Info
	base := slog.New(slog.NewTextHandler(&out, &slog.HandlerOptions{Level: nodeLevel}))
	sp := &fakeSpeaker{changes: make(chan struct{})}
	d := newBGPDriver(func(_ context.Context, cfg bgp.Config) (Speaker, error) { sp.cfg = cfg; return sp, nil }, base)
	t.Cleanup(d.stop)
	want := calc.BGP{Enabled: true, AS: 64512, RouterID: netip.MustParseAddr("10.0.0.1"), IPv4: netip.MustParseAddr("10.0.0.1"), ListenPort: 179}
	apply := func(severity string, warnings ...string) {
		t.Helper()
		want.LogSeverity, want.Warnings = severity, warnings
		if err := d.apply(t.Context(), want, nil); err != nil {
			t.Fatal(err)
		}
	}
	enabled := func(l slog.Level) bool { return sp.cfg.Log.Enabled(context.Background(), l) }

	apply("Debug", "stored password")
	apply("Debug", "stored password")
	if sp.cfg.Log == nil || !enabled(slog.LevelDebug) {
		t.Fatal("the speaker's logger does not log Debug with BGPConfiguration at Debug")
	}
	if base.Enabled(context.Background(), slog.LevelDebug) {
		t.Error("the node's own level changed")
	}
	if n := strings.Count(out.String(), "stored password"); n != 1 {
		t.Errorf("the warning was logged %d times; want once:\n%s", n, out.String())
	}
	apply("")
	if enabled(slog.LevelDebug) || !enabled(slog.LevelInfo) {
		t.Error("without BGPConfiguration's level the speaker does not log as the node does (Info)")
	}
	nodeLevel.Set(slog.LevelDebug)
	if !enabled(slog.LevelDebug) {
		t.Error("the speaker does not follow the node's level")
	}
	apply("Error")
	if enabled(slog.LevelWarn) || !enabled(slog.LevelError) {
		t.Error("the speaker's logger at Error lets Warn through, or not Error")
	}
	apply("Warning", "stored password")
	if n := strings.Count(out.String(), "stored password"); n != 2 {
		t.Errorf("a warning that went and came back was logged %d times; want twice", n)
	}
}

// TestBGPDriverLeavesOutDownPeers: a session to a peer whose host gossip
// declared dead is removed (its stale paths with it), and comes back
// when the host does.
func TestBGPDriverLeavesOutDownPeers(t *testing.T) {
	sp := &fakeSpeaker{changes: make(chan struct{})}
	d := newBGPDriver(func(_ context.Context, cfg bgp.Config) (Speaker, error) { return sp, nil }, slog.New(slog.DiscardHandler))
	t.Cleanup(d.stop)
	a, b := netip.MustParseAddr("10.0.0.2"), netip.MustParseAddr("10.0.0.3")
	want := calc.BGP{Enabled: true, AS: 64512, RouterID: netip.MustParseAddr("10.0.0.1"), IPv4: netip.MustParseAddr("10.0.0.1"), ListenPort: 179,
		Peers: []bgp.Peer{{Addr: a, AS: 64512}, {Addr: b, AS: 64512}}}
	dead := map[netip.Addr]bool{b: true}
	if err := d.apply(t.Context(), want, func(x netip.Addr) bool { return dead[x] }); err != nil {
		t.Fatal(err)
	}
	if len(sp.peers) != 1 || sp.peers[0].Addr != a {
		t.Errorf("peers %v; want only %s", sp.peers, a)
	}
	delete(dead, b)
	if err := d.apply(t.Context(), want, func(x netip.Addr) bool { return dead[x] }); err != nil {
		t.Fatal(err)
	}
	if len(sp.peers) != 2 {
		t.Errorf("peers %v; want both again", sp.peers)
	}
}

// The hosts the liveness check watches: every peer and next hop in a
// mesh; on a client of the automatic reflectors past the mesh's size,
// its reflectors only (they judge the other hosts and withdraw their
// routes); everyone while BGP is not running.
func TestLivenessScope(t *testing.T) {
	a := netip.MustParseAddr
	peers := []bgp.Peer{{Addr: a("10.0.0.1")}, {Addr: a("10.0.0.2")}}
	hops := map[netip.Addr]bool{a("10.0.0.1"): true, a("10.0.0.9"): true}
	for _, c := range []struct {
		name string
		want calc.BGP
		out  []netip.Addr
	}{
		{"not running", calc.BGP{Peers: peers}, nil},
		{"mesh", calc.BGP{Enabled: true, Meshed: true, Reflectors: []string{"h1"}, Peers: peers},
			[]netip.Addr{a("10.0.0.1"), a("10.0.0.2"), a("10.0.0.9")}},
		{"peers by hand", calc.BGP{Enabled: true, Peers: peers}, []netip.Addr{a("10.0.0.1"), a("10.0.0.2"), a("10.0.0.9")}},
		{"client of automatic reflectors", calc.BGP{Enabled: true, Reflectors: []string{"h1", "h2"}, Peers: peers},
			[]netip.Addr{a("10.0.0.1"), a("10.0.0.2")}},
	} {
		got := livenessScope(c.want, hops)
		slices.SortFunc(got, netip.Addr.Compare)
		if got := slices.Compact(got); !slices.Equal(got, c.out) || (got == nil) != (c.out == nil) {
			t.Errorf("%s: %v, want %v", c.name, got, c.out)
		}
	}
}

// slowSpeaker's SetPeers waits until release is closed, as GoBGP adding
// a thousand peers on a route reflector does.
type slowSpeaker struct {
	fakeSpeaker
	entered, release chan struct{}
}

func (s *slowSpeaker) SetPeers(ctx context.Context, p []bgp.Peer) error {
	close(s.entered)
	<-s.release
	return nil
}

// The sessions are readable (the API's status, the metrics) while an
// apply waits on the speaker.
func TestBGPDriverPeersDuringApply(t *testing.T) {
	sp := &slowSpeaker{fakeSpeaker: fakeSpeaker{changes: make(chan struct{})}, entered: make(chan struct{}), release: make(chan struct{})}
	d := newBGPDriver(func(context.Context, bgp.Config) (Speaker, error) { return sp, nil }, slog.New(slog.DiscardHandler))
	t.Cleanup(d.stop)
	want := calc.BGP{Enabled: true, AS: 64512, RouterID: netip.MustParseAddr("10.0.0.1"), IPv4: netip.MustParseAddr("10.0.0.1"), ListenPort: 179}
	applied := make(chan error, 1)
	go func() { applied <- d.apply(t.Context(), want, nil) }()
	<-sp.entered
	read := make(chan struct{})
	go func() {
		d.peers(t.Context())
		d.advertised(t.Context(), netip.MustParseAddr("10.0.0.2"))
		d.learned(nil)
		close(read)
	}()
	select {
	case <-read:
	case <-time.After(10 * time.Second):
		t.Error("reading the sessions waited for the apply")
	}
	close(sp.release)
	if err := <-applied; err != nil {
		t.Fatal(err)
	}
}
