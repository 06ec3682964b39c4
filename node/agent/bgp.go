package agent

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"sync"

	"calico/bgp"
	"calico/node/calc"
	"calico/node/route"
)

// Speaker is the BGP speaker as the agent uses it; *bgp.Speaker is one.
type Speaker interface {
	SetPeers(ctx context.Context, peers []bgp.Peer) error
	SetAdvertised(ctx context.Context, prefixes []netip.Prefix) error
	Learned() []bgp.Route
	Changes() <-chan struct{}
	Peers(ctx context.Context) ([]bgp.PeerStatus, error)
	Advertised(ctx context.Context, addr netip.Addr) (int, error)
	Stop()
}

// StartSpeaker starts a speaker; tests replace it.
type StartSpeaker func(ctx context.Context, cfg bgp.Config) (Speaker, error)

// RealSpeaker starts GoBGP, logging to log unless cfg has a logger (the
// agent gives one with the speaker's own level).
func RealSpeaker(log *slog.Logger) StartSpeaker {
	return func(ctx context.Context, cfg bgp.Config) (Speaker, error) {
		if cfg.Log == nil {
			cfg.Log = log
		}
		return bgp.Start(ctx, cfg)
	}
}

// bgpDriver runs the host's speaker as calc.ComputeBGP says: it starts it
// once this host's Node is known, restarts it when its AS, router id,
// addresses or port change, and keeps its peers and advertised prefixes in
// step. Learned paths come back through learned(). The speaker logs at
// the level BGPConfiguration logSeverityScreen says, or else as the node
// does; passwords in the datastore are warned about once.
type bgpDriver struct {
	start   StartSpeaker
	log     *slog.Logger
	spLog   *slog.Logger // the speaker's: the node's handler at level
	level   *logLevel
	changed chan struct{} // relays the speaker's Changes
	warned  map[string]bool
	topo    string // the mesh's layout, as last logged

	// mu is held through an apply or a stop, which may take long (a
	// route reflector adding a thousand peers); sp and accept are
	// changed under spMu too, and readers from other goroutines (the
	// API's status, the metrics) take spMu alone, so that they never
	// wait for an apply.
	mu     sync.Mutex
	spMu   sync.Mutex
	sp     Speaker
	key    string
	cancel context.CancelFunc
	accept []netip.Prefix
}

// speaker is the running speaker (nil when none) and the prefixes routes
// may be learned for.
func (d *bgpDriver) speaker() (Speaker, []netip.Prefix) {
	d.spMu.Lock()
	defer d.spMu.Unlock()
	return d.sp, d.accept
}

func newBGPDriver(start StartSpeaker, log *slog.Logger) *bgpDriver {
	level := &logLevel{}
	spLog := slog.New(levelHandler{log.Handler(), level})
	return &bgpDriver{
		start: start, log: spLog.With("component", "bgp"), spLog: spLog, level: level,
		changed: make(chan struct{}, 1), warned: map[string]bool{},
	}
}

// note takes what the calculation says beyond sessions and prefixes: the
// speaker's log level, and warnings, each logged once while it lasts.
func (d *bgpDriver) note(want calc.BGP) {
	if d.level.Set(want.LogSeverity) {
		d.log.Info("BGP log level set from BGPConfiguration logSeverityScreen", "level", cmp.Or(want.LogSeverity, "as the node's"))
	}
	now := map[string]bool{}
	for _, w := range want.Warnings {
		if !d.warned[w] {
			d.log.Warn(w)
		}
		now[w] = true
	}
	d.warned = now
	topo := "full mesh"
	if !want.Meshed {
		topo = "route reflectors"
	}
	if len(want.Reflectors) > 0 {
		topo += fmt.Sprintf(" (automatic reflectors: %s)", strings.Join(want.Reflectors, ", "))
	}
	if want.Enabled && topo != d.topo {
		d.log.Info("BGP topology", "topology", topo, "sessions", len(want.Peers))
		d.topo = topo
	}
}

// apply runs the speaker as want says. Sessions to peers that are down
// (gossip declared their hosts dead) are left out: the paths they sent
// go with them, stale ones included. Graceful restart keeps a dead
// peer's paths for its restart time, and a dead route reflector's would
// keep routes alive that its siblings have withdrawn since.
func (d *bgpDriver) apply(ctx context.Context, want calc.BGP, down func(netip.Addr) bool) error {
	if d == nil || d.start == nil {
		return nil
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.note(want)
	d.spMu.Lock()
	d.accept = want.Accept
	d.spMu.Unlock()
	key := fmt.Sprint(want.Enabled, want.AS, want.RouterID, want.IPv4, want.IPv6, want.ListenPort)
	if key != d.key {
		d.stopLocked()
		if !want.Enabled {
			return nil
		}
		cfg := bgp.Config{
			RouterID: want.RouterID, AS: want.AS, ListenPort: want.ListenPort,
			NextHop4: want.IPv4, NextHop6: want.IPv6, GracefulRestart: true, Log: d.spLog,
		}
		for _, a := range []netip.Addr{want.IPv4, want.IPv6} {
			if a.IsValid() {
				cfg.ListenAddr = append(cfg.ListenAddr, a)
			}
		}
		sctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
		sp, err := d.start(sctx, cfg)
		if err != nil {
			cancel()
			return fmt.Errorf("starting the BGP speaker: %w", err)
		}
		d.spMu.Lock()
		d.sp, d.key, d.cancel = sp, key, cancel
		d.spMu.Unlock()
		go d.relay(sctx, sp)
		d.log.Info("BGP speaker started", "as", want.AS, "router_id", want.RouterID, "port", want.ListenPort)
	}
	// Advertise first: after a graceful restart the first session up sends
	// End-of-RIB, and a peer drops whatever stale route of ours it lacks.
	if err := d.sp.SetAdvertised(ctx, want.Advertise); err != nil {
		return fmt.Errorf("BGP advertisements: %w", err)
	}
	peers := want.Peers
	if down != nil {
		peers = slices.DeleteFunc(slices.Clone(peers), func(p bgp.Peer) bool { return down(p.Addr) })
	}
	if err := d.sp.SetPeers(ctx, peers); err != nil {
		return fmt.Errorf("BGP peers: %w", err)
	}
	return nil
}

func (d *bgpDriver) relay(ctx context.Context, sp Speaker) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-sp.Changes():
			select {
			case d.changed <- struct{}{}:
			default:
			}
		}
	}
}

// learned are the routes to install: pool prefixes only, next hops of
// hosts that are down left out.
func (d *bgpDriver) learned(down func(netip.Addr) bool) []route.Route {
	if d == nil {
		return nil
	}
	sp, accept := d.speaker()
	if sp == nil {
		return nil
	}
	return calc.LearnedRoutes(sp.Learned(), accept, down)
}

// peers reports the sessions.
func (d *bgpDriver) peers(ctx context.Context) ([]bgp.PeerStatus, error) {
	if d == nil {
		return nil, nil
	}
	sp, _ := d.speaker()
	if sp == nil {
		return nil, nil
	}
	ps, err := sp.Peers(ctx)
	slices.SortFunc(ps, func(a, b bgp.PeerStatus) int { return a.Addr.Compare(b.Addr) })
	return ps, err
}

// advertised counts the paths sent to one peer.
func (d *bgpDriver) advertised(ctx context.Context, addr netip.Addr) (int, error) {
	if d == nil {
		return 0, nil
	}
	sp, _ := d.speaker()
	if sp == nil {
		return 0, nil
	}
	return sp.Advertised(ctx, addr)
}

func (d *bgpDriver) stop() {
	if d == nil {
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.stopLocked()
}

func (d *bgpDriver) stopLocked() {
	if d.sp != nil {
		d.spMu.Lock()
		sp := d.sp
		d.sp, d.key = nil, ""
		d.spMu.Unlock()
		sp.Stop()
		d.cancel()
	}
}
