package sim

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/osrg/gobgp/v3/pkg/packet/bgp"
)

// Speaker is a simulated host's BGP speaker: just enough BGP to be one
// of the mesh's or a reflector's peers. It connects from its own address
// to each peer (a node of ours with a greater address only listens),
// sends OPEN with IPv4 unicast and 4-octet AS numbers, advertises its
// prefixes with itself as next hop and sends End-of-RIB, keeps the
// session with keepalives and reads (and counts, without keeping) what
// the peer sends. A session that ends is tried again every second. It
// keeps no RIB: a simulated host routes nothing, so a thousand of them
// cost little more than their sockets. IPv4 only.
type Speaker struct {
	addr netip.Addr
	as   uint32
	port int
	log  *slog.Logger

	mu       sync.Mutex
	prefixes map[netip.Prefix]bool
	sessions map[netip.Addr]*session

	// Received counts UPDATE messages from every peer.
	received atomic.Int64
	// hostRoutes counts the single-address prefixes (a borrowed
	// address's /32) ever advertised.
	hostRoutes atomic.Int64
}

// holdTime is what the speaker offers (GoBGP's sessions here offer 9 s).
const holdTime = 9

// NewSpeaker is a speaker with no sessions.
func NewSpeaker(addr netip.Addr, as uint32, port int, log *slog.Logger) *Speaker {
	return &Speaker{addr: addr, as: as, port: port, log: log.With("host", addr),
		prefixes: map[netip.Prefix]bool{}, sessions: map[netip.Addr]*session{}}
}

// SetPeers makes the sessions exactly those to peers.
func (s *Speaker) SetPeers(peers []netip.Addr) {
	s.mu.Lock()
	defer s.mu.Unlock()
	want := map[netip.Addr]bool{}
	for _, p := range peers {
		want[p] = true
		if s.sessions[p] == nil {
			ss := &session{sp: s, peer: p, done: make(chan struct{}), stopped: make(chan struct{})}
			s.sessions[p] = ss
			go ss.run()
		}
	}
	for p, ss := range s.sessions {
		if !want[p] {
			ss.stop(true)
			delete(s.sessions, p)
		}
	}
}

// SetAdvertised makes what the speaker advertises exactly prefixes, on
// every established session.
func (s *Speaker) SetAdvertised(prefixes []netip.Prefix) {
	s.mu.Lock()
	defer s.mu.Unlock()
	next := map[netip.Prefix]bool{}
	for _, p := range prefixes {
		next[p] = true
	}
	var add, del []netip.Prefix
	for p := range next {
		if !s.prefixes[p] {
			add = append(add, p)
			if p.IsSingleIP() {
				s.hostRoutes.Add(1)
			}
		}
	}
	for p := range s.prefixes {
		if !next[p] {
			del = append(del, p)
		}
	}
	if len(add)+len(del) == 0 {
		return
	}
	s.prefixes = next
	for _, ss := range s.sessions {
		ss.update(add, del)
	}
}

// Stop ends every session: with a Cease notification when graceful (the
// host leaves), else by closing the connections (the host dies: peers
// see the connection drop, as when a process is killed).
func (s *Speaker) Stop(graceful bool) {
	s.mu.Lock()
	sessions := slices.Collect(maps.Values(s.sessions))
	s.sessions = map[netip.Addr]*session{}
	s.mu.Unlock()
	for _, ss := range sessions {
		ss.stop(graceful)
	}
}

// Established counts the sessions that are up.
func (s *Speaker) Established() (up, all int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, ss := range s.sessions {
		if ss.up.Load() {
			up++
		}
	}
	return up, len(s.sessions)
}

// Peers are the addresses of the sessions.
func (s *Speaker) Peers() []netip.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.SortedFunc(maps.Keys(s.sessions), netip.Addr.Compare)
}

// Received counts the UPDATE messages received so far.
func (s *Speaker) Received() int64 { return s.received.Load() }

// HostRoutes counts the single-address prefixes advertised so far.
func (s *Speaker) HostRoutes() int64 { return s.hostRoutes.Load() }

// advertised is what the speaker advertises now.
func (s *Speaker) advertised() []netip.Prefix {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Collect(maps.Keys(s.prefixes))
}

// session is one BGP session, kept up by run until stop.
type session struct {
	sp   *Speaker
	peer netip.Addr
	up   atomic.Bool

	wmu  sync.Mutex
	conn net.Conn // the established connection, nil between

	once     sync.Once
	done     chan struct{}
	stopped  chan struct{}
	graceful bool
}

func (ss *session) run() {
	defer close(ss.stopped)
	for {
		err := ss.connect()
		if err != nil && !errors.Is(err, net.ErrClosed) && !errors.Is(err, io.EOF) {
			ss.sp.log.Debug("BGP session ended", "peer", ss.peer, "err", err)
		}
		select {
		case <-ss.done:
			return
		case <-time.After(time.Second):
		}
	}
}

// connect runs one connection until it ends.
func (ss *session) connect() error {
	d := net.Dialer{LocalAddr: net.TCPAddrFromAddrPort(netip.AddrPortFrom(ss.sp.addr, 0)), Timeout: 5 * time.Second}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-ss.done:
		case <-ctx.Done():
		}
		cancel()
	}()
	c, err := d.DialContext(ctx, "tcp", netip.AddrPortFrom(ss.peer, uint16(ss.sp.port)).String())
	if err != nil {
		return err
	}
	// The connection is closed once, here, when the session stops or
	// the connection ends (a Cease goes first when the stop is graceful).
	closed := make(chan struct{})
	go func() {
		defer close(closed)
		<-ctx.Done()
		ss.closeConn(c)
	}()
	defer func() { cancel(); <-closed }()
	hold, err := ss.handshake(c)
	if err != nil {
		return err
	}
	ss.wmu.Lock()
	ss.conn = c
	ss.wmu.Unlock()
	defer func() {
		ss.up.Store(false)
		ss.wmu.Lock()
		ss.conn = nil
		ss.wmu.Unlock()
	}()
	if err := ss.sendAll(c); err != nil {
		return err
	}
	ss.up.Store(true)
	go ss.keepalive(ctx, c, hold)
	return ss.read(c, hold)
}

// closeConn ends c: with a Cease first when the stop is graceful, else
// with a reset (no FIN, no notification).
func (ss *session) closeConn(c net.Conn) {
	select {
	case <-ss.done:
	default:
		c.Close()
		return
	}
	if ss.graceful {
		ss.write(c, bgp.NewBGPNotificationMessage(bgp.BGP_ERROR_CEASE, bgp.BGP_ERROR_SUB_PEER_DECONFIGURED, nil))
	} else if tc, ok := c.(*net.TCPConn); ok {
		tc.SetLinger(0)
	}
	c.Close()
}

// handshake sends OPEN, reads the peer's and confirms it; it returns the
// negotiated hold time.
func (ss *session) handshake(c net.Conn) (time.Duration, error) {
	as2 := uint16(bgp.AS_TRANS)
	if ss.sp.as <= 0xffff {
		as2 = uint16(ss.sp.as)
	}
	caps := []bgp.ParameterCapabilityInterface{
		bgp.NewCapMultiProtocol(bgp.RF_IPv4_UC),
		bgp.NewCapRouteRefresh(),
		bgp.NewCapFourOctetASNumber(ss.sp.as),
	}
	open := bgp.NewBGPOpenMessage(as2, holdTime, ss.sp.addr.String(), []bgp.OptionParameterInterface{bgp.NewOptionParameterCapability(caps)})
	if err := ss.write(c, open); err != nil {
		return 0, err
	}
	c.SetReadDeadline(time.Now().Add(30 * time.Second))
	typ, body, err := readMessage(c)
	if err != nil {
		return 0, err
	}
	if typ != bgp.BGP_MSG_OPEN || len(body) < 10 {
		return 0, fmt.Errorf("expected OPEN from %s, got message type %d", ss.peer, typ)
	}
	hold := min(time.Duration(binary.BigEndian.Uint16(body[3:5]))*time.Second, holdTime*time.Second)
	if err := ss.write(c, bgp.NewBGPKeepAliveMessage()); err != nil {
		return 0, err
	}
	return hold, nil
}

// sendAll advertises everything and End-of-RIB.
func (ss *session) sendAll(c net.Conn) error {
	for _, m := range ss.updates(ss.sp.advertised(), nil) {
		if err := ss.write(c, m); err != nil {
			return err
		}
	}
	return ss.write(c, bgp.NewEndOfRib(bgp.RF_IPv4_UC))
}

// update sends a change on the session if it is up (one that is not
// sends everything when it comes up).
func (ss *session) update(add, del []netip.Prefix) {
	ss.wmu.Lock()
	c := ss.conn
	ss.wmu.Unlock()
	if c == nil {
		return
	}
	for _, m := range ss.updates(add, del) {
		if ss.write(c, m) != nil {
			return
		}
	}
}

// updates are the UPDATE messages that advertise add and withdraw del,
// at most 500 prefixes a message.
func (ss *session) updates(add, del []netip.Prefix) []*bgp.BGPMessage {
	nlri := func(ps []netip.Prefix) []*bgp.IPAddrPrefix {
		var out []*bgp.IPAddrPrefix
		for _, p := range ps {
			if p.Addr().Is4() {
				out = append(out, bgp.NewIPAddrPrefix(uint8(p.Bits()), p.Addr().String()))
			}
		}
		return out
	}
	attrs := []bgp.PathAttributeInterface{
		bgp.NewPathAttributeOrigin(bgp.BGP_ORIGIN_ATTR_TYPE_IGP),
		bgp.NewPathAttributeAsPath(nil),
		bgp.NewPathAttributeNextHop(ss.sp.addr.String()),
		bgp.NewPathAttributeLocalPref(100),
	}
	var out []*bgp.BGPMessage
	for chunk := range slices.Chunk(nlri(del), 500) {
		out = append(out, bgp.NewBGPUpdateMessage(chunk, nil, nil))
	}
	for chunk := range slices.Chunk(nlri(add), 500) {
		out = append(out, bgp.NewBGPUpdateMessage(nil, attrs, chunk))
	}
	return out
}

func (ss *session) keepalive(ctx context.Context, c net.Conn, hold time.Duration) {
	t := time.NewTicker(max(hold/3, time.Second))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if ss.write(c, bgp.NewBGPKeepAliveMessage()) != nil {
				return
			}
		}
	}
}

// read takes messages until the connection ends or the peer falls
// silent for the hold time.
func (ss *session) read(c net.Conn, hold time.Duration) error {
	for {
		c.SetReadDeadline(time.Now().Add(hold))
		typ, body, err := readMessage(c)
		if err != nil {
			return err
		}
		switch typ {
		case bgp.BGP_MSG_UPDATE:
			ss.sp.received.Add(1)
		case bgp.BGP_MSG_NOTIFICATION:
			if len(body) >= 2 {
				return fmt.Errorf("notification from %s: code %d/%d", ss.peer, body[0], body[1])
			}
			return fmt.Errorf("notification from %s", ss.peer)
		}
	}
}

func (ss *session) write(c net.Conn, m *bgp.BGPMessage) error {
	b, err := m.Serialize()
	if err != nil {
		return err
	}
	ss.wmu.Lock()
	defer ss.wmu.Unlock()
	c.SetWriteDeadline(time.Now().Add(10 * time.Second))
	_, err = c.Write(b)
	return err
}

// stop ends the session and waits for it.
func (ss *session) stop(graceful bool) {
	ss.once.Do(func() {
		ss.graceful = graceful
		close(ss.done)
	})
	<-ss.stopped
}

// readMessage reads one BGP message: its type and body.
func readMessage(r io.Reader) (uint8, []byte, error) {
	var h [bgp.BGP_HEADER_LENGTH]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return 0, nil, err
	}
	n := int(binary.BigEndian.Uint16(h[16:18]))
	if n < bgp.BGP_HEADER_LENGTH || n > bgp.BGP_MAX_MESSAGE_LENGTH {
		return 0, nil, fmt.Errorf("bad BGP message length %d", n)
	}
	body := make([]byte, n-bgp.BGP_HEADER_LENGTH)
	if _, err := io.ReadFull(r, body); err != nil {
		return 0, nil, err
	}
	return h[18], body, nil
}
