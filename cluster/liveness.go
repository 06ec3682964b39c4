package cluster

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
)

// The liveness check: every host sends every other a small signed UDP
// datagram each LivenessInterval, and a host that has not been heard from
// for the detect time, while others were heard meanwhile, is
// unreachable, and the routes via it go. Like BFD's asynchronous mode
// (RFC 5880) with a fixed interval and no sessions. Gossip stays the
// authority on who is dead (etcd seats, voter replacement); this only
// withdraws routes sooner than gossip's failure detector can (about 2 s,
// see memberlistConfig) without making gossip itself twitchier.
//
// Evidence, not a guess: a host is unreachable only if (1) it was heard
// at least once since it last came up, (2) it did not say it is stopping
// to start again, (3) nothing from it arrived for the detect time, and (4)
// some other host was heard within the last half of it, so the silence
// is the peer's and not ours (a stalled process, a host cut off). With no
// other host to compare with (a two-host cluster) the check gives no
// verdict and gossip decides.
//
// With the default 50 ms and 12 intervals (600 ms), a false verdict
// needs 12 heartbeats in a row lost: with 20% of the packets lost on a
// link that is 0.2^12 = 4e-9 per heartbeat, at 20 a second about once in
// six months per pair of hosts; with 30% lost (the chaos test's worst),
// about once in a day and a half of such loss.

const (
	defaultLivenessPort     = 7948
	defaultLivenessInterval = 50 * time.Millisecond
	defaultLivenessDetect   = 600 * time.Millisecond
	livenessMagic           = "CLV1"
	livenessMACSize         = 16
	livenessAlive           = 'a'
	livenessStopping        = 's'
	// livenessAfterDead is how long a host gossip calls dead or stopped
	// stays watched.
	livenessAfterDead = time.Minute
)

// LivenessConfig is how to start the liveness check.
type LivenessConfig struct {
	Name string
	Bind netip.Addr
	Port int    // default 7948 (udp); negative: any free port (tests)
	Key  []byte // the gossip key; heartbeats are signed with a key derived from it
	// Interval between heartbeats (default 50ms) and Detect, the silence
	// after which a peer is unreachable (default 600ms).
	Interval, Detect time.Duration
	// Peers names the hosts to check now and where their liveness
	// check listens; called every interval.
	Peers func() map[string]netip.AddrPort
	// Changed is called (from the check's loop) when a peer's verdict
	// changes.
	Changed func(name string)
	Log     *slog.Logger
}

// Liveness is a running liveness check.
type Liveness struct {
	cfg  LivenessConfig
	conn *net.UDPConn
	key  []byte
	log  *slog.Logger

	stopped atomic.Bool // Stop was called: no more "alive"

	mu     sync.Mutex
	peers  map[string]*livePeer
	byAddr map[netip.AddrPort]string // the peers' names by address
	// farewell are the addresses of peers no longer watched, told until
	// the time given that this host is stopping (to them), so that
	// they give no verdict on it: a peer stops being watched when it
	// stops being a BGP neighbour, which the two hosts may learn a pass
	// apart. Each interval until then, against loss.
	farewell map[netip.AddrPort]time.Time
}

type livePeer struct {
	addr     netip.AddrPort
	heard    time.Time // zero: not since it was added
	stopping bool
	down     bool
}

// StartLiveness binds the check's socket; Run sends and listens.
func StartLiveness(cfg LivenessConfig) (*Liveness, error) {
	if cfg.Port == 0 {
		cfg.Port = defaultLivenessPort
	}
	if cfg.Interval <= 0 {
		cfg.Interval = defaultLivenessInterval
	}
	if cfg.Detect <= 0 {
		cfg.Detect = defaultLivenessDetect
	}
	if cfg.Detect < 4*cfg.Interval {
		return nil, fmt.Errorf("liveness detect time %s is under four intervals of %s", cfg.Detect, cfg.Interval)
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Changed == nil {
		cfg.Changed = func(string) {}
	}
	bind := netip.AddrPortFrom(cfg.Bind, uint16(max(cfg.Port, 0)))
	conn, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(bind))
	if err != nil {
		return nil, fmt.Errorf("listening for heartbeats on %s: %w", bind, err)
	}
	mac := hmac.New(sha256.New, cfg.Key)
	mac.Write([]byte("calico liveness"))
	return &Liveness{cfg: cfg, conn: conn, key: mac.Sum(nil), log: cfg.Log.With("component", "liveness"), peers: map[string]*livePeer{}, byAddr: map[netip.AddrPort]string{}, farewell: map[netip.AddrPort]time.Time{}}, nil
}

// Port is the UDP port the check listens on.
func (l *Liveness) Port() int { return l.conn.LocalAddr().(*net.UDPAddr).Port }

// Run sends heartbeats and judges the peers until ctx ends, then closes
// the socket.
func (l *Liveness) Run(ctx context.Context) {
	var wg sync.WaitGroup
	wg.Go(l.receive)
	t := time.NewTicker(l.cfg.Interval)
	defer t.Stop()
	var last, settle time.Time
	for {
		select {
		case <-ctx.Done():
			l.conn.Close()
			wg.Wait()
			return
		case <-t.C:
			now := time.Now()
			if !last.IsZero() && now.Sub(last) > 3*l.cfg.Interval {
				// This process was not running (a busy machine, a
				// pause): what arrived meanwhile is still in the socket
				// buffer, so the receiver gets two intervals to read it
				// before anyone is judged.
				l.log.Debug("the liveness loop was late", "by", now.Sub(last)-l.cfg.Interval)
				settle = now.Add(2 * l.cfg.Interval)
			}
			last = now
			l.sync(l.cfg.Peers())
			if !l.stopped.Load() {
				l.send(livenessAlive)
			}
			if now.After(settle) {
				l.judge(now)
			}
		}
	}
}

// Stop tells the peers this host is stopping to start again: they give
// no verdict on it until they hear it again (gossip's "stopped"; its
// routes stay for BGP's graceful restart). Sent three times against loss.
func (l *Liveness) Stop() {
	l.stopped.Store(true)
	for range 3 {
		l.send(livenessStopping)
	}
}

// Down says whether the check has found the named host unreachable.
func (l *Liveness) Down(name string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	p, ok := l.peers[name]
	return ok && p.down
}

// Watched says whether the check watches the named host.
func (l *Liveness) Watched(name string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	_, ok := l.peers[name]
	return ok
}

// Heard says whether the named host was heard within the detect time.
func (l *Liveness) Heard(name string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	p, ok := l.peers[name]
	return ok && !p.heard.IsZero() && time.Since(p.heard) <= l.cfg.Detect
}

// sync makes the peer set match want, keeping what was heard of peers
// that stay at the same address; a peer no longer wanted gets farewells
// for twice the detect time.
func (l *Liveness) sync(want map[string]netip.AddrPort) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := time.Now()
	for name, p := range l.peers {
		if a, ok := want[name]; !ok || a != p.addr {
			delete(l.peers, name)
			delete(l.byAddr, p.addr)
			l.farewell[p.addr] = now.Add(2 * l.cfg.Detect)
		}
	}
	for name, a := range want {
		if _, ok := l.peers[name]; !ok && name != l.cfg.Name && a.IsValid() {
			l.peers[name] = &livePeer{addr: a}
			l.byAddr[a] = name
		}
		delete(l.farewell, a)
	}
	for a, until := range l.farewell {
		if now.After(until) {
			delete(l.farewell, a)
		}
	}
}

func (l *Liveness) send(kind byte) {
	l.mu.Lock()
	addrs := make([]netip.AddrPort, 0, len(l.peers))
	for _, p := range l.peers {
		addrs = append(addrs, p.addr)
	}
	var bye []netip.AddrPort
	if kind == livenessAlive {
		for a := range l.farewell {
			bye = append(bye, a)
		}
	}
	l.mu.Unlock()
	now := time.Now()
	l.sendTo(addrs, l.heartbeat(kind, now))
	l.sendTo(bye, l.heartbeat(livenessStopping, now))
}

func (l *Liveness) sendTo(addrs []netip.AddrPort, b []byte) {
	for _, a := range addrs {
		// A lost heartbeat is what the check is for; a send error
		// (no route yet) is one too.
		_, _ = l.conn.WriteToUDPAddrPort(b, a)
	}
}

// heartbeat is magic, kind, send time (ns), then the first bytes of an
// HMAC-SHA256 of all that: 29 bytes. The sender is known by its address
// (the check sends from the port it listens on); no name travels in
// clear.
func (l *Liveness) heartbeat(kind byte, now time.Time) []byte {
	b := append([]byte(livenessMagic), kind)
	b = binary.BigEndian.AppendUint64(b, uint64(now.UnixNano()))
	mac := hmac.New(sha256.New, l.key)
	mac.Write(b)
	return mac.Sum(b)[:len(b)+livenessMACSize]
}

// parseHeartbeat returns the kind of a heartbeat signed with key.
func parseHeartbeat(key, b []byte) (byte, error) {
	head := len(livenessMagic) + 1 + 8
	if len(b) != head+livenessMACSize || string(b[:len(livenessMagic)]) != livenessMagic {
		return 0, errors.New("not a heartbeat")
	}
	mac := hmac.New(sha256.New, key)
	mac.Write(b[:head])
	if !hmac.Equal(mac.Sum(nil)[:livenessMACSize], b[head:]) {
		return 0, errors.New("heartbeat with a bad signature")
	}
	return b[len(livenessMagic)], nil
}

func (l *Liveness) receive() {
	buf := make([]byte, 512)
	for {
		n, from, err := l.conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		kind, err := parseHeartbeat(l.key, buf[:n])
		if err != nil {
			l.log.Debug("dropping a datagram", "from", from, "err", err)
			continue
		}
		l.heard(netip.AddrPortFrom(from.Addr().Unmap(), from.Port()), kind, time.Now())
	}
}

// heard records a heartbeat from a peer's address; one heard again is
// reachable.
func (l *Liveness) heard(from netip.AddrPort, kind byte, now time.Time) {
	l.mu.Lock()
	name := l.byAddr[from]
	p, ok := l.peers[name]
	if !ok {
		l.mu.Unlock()
		return
	}
	p.heard, p.stopping = now, kind == livenessStopping
	back, addr := p.down, p.addr.Addr()
	p.down = false
	l.mu.Unlock()
	if back {
		l.log.Info("host reachable again", "peer", name, "addr", addr)
		l.cfg.Changed(name)
	}
}

// judge finds the peers that have gone silent (see the evidence rules
// above).
func (l *Liveness) judge(now time.Time) {
	var changed []*livePeer
	var names []string
	l.mu.Lock()
	for name, p := range l.peers {
		if p.down || p.stopping || p.heard.IsZero() || now.Sub(p.heard) <= l.cfg.Detect {
			continue
		}
		if !l.heardOther(name, now.Add(-l.cfg.Detect/2)) {
			continue
		}
		p.down = true
		changed, names = append(changed, p), append(names, name)
	}
	l.mu.Unlock()
	for i, p := range changed {
		l.log.Info("host unreachable", "peer", names[i], "addr", p.addr.Addr(), "silent", now.Sub(p.heard).Round(time.Millisecond))
		l.cfg.Changed(names[i])
	}
}

// heardOther says whether a peer other than name was heard after since.
// The caller holds l.mu.
func (l *Liveness) heardOther(name string, since time.Time) bool {
	for o, p := range l.peers {
		if o != name && p.heard.After(since) {
			return true
		}
	}
	return false
}
