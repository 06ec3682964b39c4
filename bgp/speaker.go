package bgp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	api "github.com/osrg/gobgp/v3/api"
	"github.com/osrg/gobgp/v3/pkg/server"
)

// Config is how the speaker starts.
type Config struct {
	RouterID   netip.Addr // the node's IPv4
	AS         uint32
	ListenAddr []netip.Addr // addresses to listen on (the node's IPv4 and IPv6)
	ListenPort int          // 179 by default; -1 = do not listen (tests)
	// NextHop4/NextHop6 are the next hops put on advertised IPv4/IPv6
	// prefixes (the node's addresses). Unset, GoBGP puts each session's
	// own local address there.
	NextHop4, NextHop6 netip.Addr
	// GracefulRestart enables RFC 4724 graceful restart (restart time
	// 120 s) on every session so that peers keep our routes while we
	// restart.
	GracefulRestart bool
	Log             *slog.Logger
}

// Peer is one BGP session this node wants.
type Peer struct {
	Addr     netip.Addr // the peer's address; the session's family follows it: an IPv4 peer carries IPv4 unicast, an IPv6 peer IPv6 unicast
	AS       uint32
	Port     int      // 179 by default
	Password Password // TCP MD5, empty = none
	// PasswordFile, when set, is where the password is: SetPeers reads it
	// every time (see ReadPasswordFile), so a change of the file reaches
	// the session at the next SetPeers. A session whose file cannot be
	// used is not configured at all, and Peers says why.
	PasswordFile string
	// PasswordOptional: a PasswordFile that does not exist means no
	// password (Calico's secretKeyRef with optional: true); any other
	// problem with the file still leaves the session out.
	PasswordOptional bool
	// Refused, when set, says why the session must not be configured (its
	// password cannot be used as given); Peers reports it as it reports a
	// password file that cannot be used.
	Refused string
	// ReflectorClient: this node is a route reflector and the peer is its
	// client (the node's routeReflectorClusterID goes in ClusterID).
	ReflectorClient bool
	ClusterID       netip.Addr // route reflector cluster id (an IPv4), with ReflectorClient
	// Reflector: the peer is one of the route reflectors that serve the
	// same clients as this node (see setReflectors): no route learned
	// over iBGP is sent to it. A change of it alone keeps the session.
	Reflector bool
	Type      string // "mesh", "global", "node", "reflector": reported back in status only
	// Name is the peer node's name, if it is one of ours. It is reported
	// back in status, and it marks a session between two of our nodes:
	// of those two, only the end with the lower address connects (see
	// apiPeer).
	Name string
	// LocalAddr is the address to connect from (the node's address of the
	// peer's family).
	LocalAddr netip.Addr
}

// Route is one learned destination with its best next hops (several when
// ECMP: equal best paths from different peers).
type Route struct {
	Dst      netip.Prefix
	NextHops []netip.Addr
}

// PeerStatus is a session as `calico status` shows it.
type PeerStatus struct {
	Peer
	// State is idle, connect, active, opensent, openconfirm, established,
	// or "refused: <problem>" for a session not configured because its
	// password file cannot be used.
	State string
	// Problem is why the session is refused, or "".
	Problem    string
	Since      time.Time // last state change (zero if unknown)
	Received   int       // prefixes received (accepted)
	Advertised int
}

const (
	defaultPort = 179
	// restartTime is the RFC 4724 restart time we ask peers to keep our
	// routes for, BIRD's default and Calico's nodeMeshMaxRestartTime.
	restartTime = 120
	// Session timers, in seconds: a LAN choice. Dead hosts are found by
	// gossip, not by the hold timer.
	connectRetry = 1 // the lower address connects; the mesh forms within a second or two of a start
	holdTime     = 9
	keepalive    = 3
	// opTimeout bounds every GoBGP call whose caller's context has no
	// earlier deadline.
	opTimeout = 30 * time.Second
	// resyncPeriod is how often the learned routes are re-read whole, in
	// case an event was missed.
	resyncPeriod = time.Minute
)

// Speaker is the node's BGP speaker: one GoBGP server in this process.
type Speaker struct {
	cfg  Config
	log  *slog.Logger
	srv  *server.BgpServer
	own  map[netip.Addr]bool // our addresses: a path with one as next hop is not learned
	port int                 // the port we listen on, 0 if none

	cancel   context.CancelFunc // ends the event watcher and the learner
	wg       sync.WaitGroup
	stopOnce sync.Once

	mu sync.Mutex // serialises SetPeers and SetAdvertised
	// reflectors are the addresses in the reflectors' neighbour set (nil
	// until the set is made); under mu.
	reflectors map[netip.Addr]bool
	// local and neighbors are what GoBGP holds of our own paths and its
	// neighbours' addresses, as our last calls left them; nil when not
	// known (before the first call, and after a call to GoBGP failed, so
	// that the next one reads them back). Only this package changes
	// either, so a pass that changes nothing asks GoBGP nothing: reading
	// them back costs O(routes) and O(peers) of GoBGP's own loop, which
	// on a reflector of hundreds of hosts is most of its work. Under mu.
	local     map[netip.Prefix]bool
	neighbors map[netip.Addr]bool
	// lateChange is set when a change given up on was made after all;
	// abandoned counts those given up on that have not ended (for tests).
	lateChange atomic.Bool
	abandoned  atomic.Int64

	pmu     sync.Mutex
	peers   map[netip.Addr]Peer      // the sessions as configured in GoBGP
	made    map[netip.Addr]time.Time // when each was configured (see revive)
	refused map[netip.Addr]refusal   // sessions left out for their password files

	lmu     sync.Mutex
	learned map[netip.Prefix][]netip.Addr
	// sorted is Learned's answer for learned as it is; nil when it
	// changed since.
	sorted  []Route
	dirty   map[netip.Prefix]bool // destinations to re-read
	resync  bool                  // re-read everything
	poke    chan struct{}         // wakes the learner; capacity 1
	changes chan struct{}         // capacity 1, see Changes
	downs   chan down             // sessions that went down, for the reviver
}

// Start starts the speaker: a GoBGP server with no gRPC listener, serving
// in the background, with the global configuration applied. ctx bounds
// the start only; the speaker runs until Stop.
func Start(ctx context.Context, cfg Config) (*Speaker, error) {
	if !cfg.RouterID.Is4() {
		return nil, fmt.Errorf("router id %v is not an IPv4 address", cfg.RouterID)
	}
	if cfg.AS == 0 {
		return nil, errors.New("AS number is 0")
	}
	port := cfg.ListenPort
	switch {
	case port == 0:
		port = defaultPort
	case port < 0:
		port = -1
	}
	log := cfg.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("component", "bgp")

	s := &Speaker{
		cfg:     cfg,
		log:     log,
		own:     map[netip.Addr]bool{},
		peers:   map[netip.Addr]Peer{},
		made:    map[netip.Addr]time.Time{},
		learned: map[netip.Prefix][]netip.Addr{},
		dirty:   map[netip.Prefix]bool{},
		poke:    make(chan struct{}, 1),
		changes: make(chan struct{}, 1),
		downs:   make(chan down, 64),
	}
	if port > 0 {
		s.port = port
	}
	for _, a := range append([]netip.Addr{cfg.RouterID, cfg.NextHop4, cfg.NextHop6}, cfg.ListenAddr...) {
		if a.IsValid() {
			s.own[a.Unmap()] = true
		}
	}

	// No GrpcListenAddress: the speaker is reachable only through this
	// package. Serve never returns (GoBGP v3 has no way to end it); after
	// Stop it idles.
	s.srv = server.NewBgpServer(server.LoggerOption(gobgpLogger{log}))
	go s.srv.Serve()

	global := &api.Global{
		Asn:        cfg.AS,
		RouterId:   cfg.RouterID.String(),
		ListenPort: int32(port),
	}
	for _, a := range cfg.ListenAddr {
		global.ListenAddresses = append(global.ListenAddresses, a.String())
	}
	err := do(ctx, func() error {
		return s.srv.StartBgp(ctx, &api.StartBgpRequest{Global: global})
	})
	if err != nil {
		s.srv.Stop()
		return nil, fmt.Errorf("starting BGP (AS %d, router id %s, port %d): %w", cfg.AS, cfg.RouterID, port, err)
	}

	wctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	s.cancel = cancel
	if err := s.watch(wctx); err != nil {
		cancel()
		s.srv.Stop()
		return nil, fmt.Errorf("watching BGP events: %w", err)
	}
	s.wg.Go(func() { s.learn(wctx) })
	s.wg.Go(func() { s.reviver(wctx) })
	log.Info("BGP speaker started", "as", cfg.AS, "router_id", cfg.RouterID, "port", port,
		"graceful_restart", cfg.GracefulRestart)
	return s, nil
}

// Changes is signalled (without blocking, capacity 1) whenever Learned
// may have changed.
func (s *Speaker) Changes() <-chan struct{} { return s.changes }

// Stop stops the speaker. It is safe to call more than once.
//
// Without graceful restart, GoBGP closes every session with a Cease
// notification and peers withdraw our routes at once.
//
// With graceful restart, a notification would defeat it: RFC 4724 ends
// graceful restart when one arrives, and GoBGP sends one (Cease, "peer
// de-configured", or Hard Reset if RFC 8538 was negotiated) on every
// established session it stops, with no option to skip it. So Stop first
// shuts down the TCP connections of our sessions underneath GoBGP (see
// shutdownSessions): peers see the connection end without a notification,
// which is a restart to them, and keep our routes, marked stale, for the
// restart time we advertised (120 s) or until we come back and send
// End-of-RIB. Only then is GoBGP stopped; by that time its writes fail, so
// the notification it tries to send never leaves. Where that cannot be
// done (not Linux), Stop just stops GoBGP.
//
// Learned stops changing, and Changes stops firing, before the sessions
// go down: the routes the node has installed are left alone.
func (s *Speaker) Stop() {
	s.stopOnce.Do(func() {
		s.cancel()
		s.wg.Wait()
		if s.cfg.GracefulRestart {
			n, err := shutdownSessions(s.sessionSocket)
			if err != nil {
				s.log.Warn("closing BGP connections for graceful restart", "err", err)
			}
			s.log.Debug("closed BGP connections without notification", "count", n)
		}
		s.srv.Stop()
		s.log.Info("BGP speaker stopped")
	})
}

// sessionSocket tells whether a TCP connection from local to remote is
// one of our BGP sessions: to a peer's address and port, or to our
// listening port from a peer's address (and from our own address, when
// we know it: several speakers may share a process in tests).
func (s *Speaker) sessionSocket(local, remote netip.AddrPort) bool {
	s.pmu.Lock()
	defer s.pmu.Unlock()
	p, ok := s.peers[remote.Addr()]
	if !ok {
		return false
	}
	if int(remote.Port()) == peerPort(p) && (!p.LocalAddr.IsValid() || p.LocalAddr.Unmap() == local.Addr()) {
		return true
	}
	if s.port == 0 || int(local.Port()) != s.port {
		return false
	}
	if len(s.cfg.ListenAddr) == 0 {
		return true
	}
	for _, a := range s.cfg.ListenAddr {
		if a.Unmap() == local.Addr() {
			return true
		}
	}
	return false
}

// call runs f, one GoBGP call, and gives up when ctx ends (or after
// opTimeout if ctx has no deadline). GoBGP v3 takes a context on every
// call but ignores it: each call is a message to its one event loop. A
// call given up on may still complete later; see change.
func call[T any](ctx context.Context, f func() (T, error)) (T, error) {
	return callThen(ctx, f, nil)
}

// callThen is call that, when it gives up on f, calls abandon, and then
// what abandon returned once f has ended after all. A call whose f has
// ended by the time ctx ends returns f's result.
func callThen[T any](ctx context.Context, f func() (T, error), abandon func() (late func())) (T, error) {
	ctx, cancel := context.WithTimeout(ctx, opTimeout)
	defer cancel()
	type result struct {
		v   T
		err error
	}
	var mu sync.Mutex
	var ended bool
	var late func()
	done := make(chan result, 1)
	go func() {
		v, err := f()
		mu.Lock()
		ended = true
		l := late
		mu.Unlock()
		done <- result{v, err}
		if l != nil {
			l()
		}
	}()
	select {
	case r := <-done:
		return r.v, r.err
	case <-ctx.Done():
		mu.Lock()
		defer mu.Unlock()
		if ended {
			r := <-done
			return r.v, r.err
		}
		if abandon != nil {
			late = abandon()
		}
		var zero T
		return zero, ctx.Err()
	}
}

// do is call for a GoBGP call that returns only an error.
func do(ctx context.Context, f func() error) error {
	_, err := call(ctx, func() (struct{}, error) { return struct{}{}, f() })
	return err
}

// change is do for a change to GoBGP's own paths or its neighbours,
// which SetAdvertised and SetPeers keep a record of. One given up on may
// still be made later: when it is, both records are dropped (the next
// call reads GoBGP back) and the agent is woken for that call.
func (s *Speaker) change(ctx context.Context, f func() error) error {
	_, err := callThen(ctx, func() (struct{}, error) { return struct{}{}, f() }, func() func() {
		s.abandoned.Add(1)
		return func() {
			s.lateChange.Store(true)
			s.abandoned.Add(-1)
			s.signalChanges()
		}
	})
	return err
}

// distrustRecords drops the records of our own paths and neighbours if
// a change given up on has been made since. Under mu.
func (s *Speaker) distrustRecords() {
	if s.lateChange.Swap(false) {
		s.local, s.neighbors = nil, nil
	}
}

// mptcpListen tells whether Go makes listening sockets multipath TCP:
// its default on Linux since Go 1.24 (GODEBUG multipathtcp). GoBGP's
// listener is then one, and the kernel refuses TCP MD5 keys (and IP_TTL)
// on it, so a session with a password can be opened by us but never
// accepted from the peer. The binary should be built with
// `godebug multipathtcp=0` (go.mod) or run with GODEBUG=multipathtcp=0.
func mptcpListen() bool { return (&net.ListenConfig{}).MultipathTCP() }

func peerPort(p Peer) int {
	if p.Port == 0 {
		return defaultPort
	}
	return p.Port
}
