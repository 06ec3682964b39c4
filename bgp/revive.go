package bgp

import (
	"context"
	"net/netip"
	"time"

	api "github.com/osrg/gobgp/v3/api"
)

// Reviving a session a peer closed.
//
// When a session goes down, GoBGP keeps its side Idle for a fixed 5 s
// before it connects again, and closes whatever connection the peer makes
// meanwhile. A peer that makes its side of the session again (one of our
// nodes whose sessions' settings changed: it became an automatic route
// reflector) closes the session with a notification, and the routes of
// both sides are gone until it is back: 5 s or more, for nothing. So a
// session that went down and holds no route of the peer's (none kept,
// stale, for a graceful restart: those must stay while the peer
// restarts) is made again at once on our side too, which starts it
// without the wait. Not a session made (by SetPeers) within reviveFresh
// of going down, which is one SetPeers made again itself, and at most
// once per reviveEvery per peer, so a session that keeps failing does
// not churn.
const (
	// reviveAfter lets GoBGP finish with the session that went down.
	reviveAfter = 50 * time.Millisecond
	reviveFresh = time.Second
	reviveEvery = 10 * time.Second
)

type down struct {
	addr string
	at   time.Time
}

// sessionDown is called for every session that left Established; it never
// blocks.
func (s *Speaker) sessionDown(addr string) {
	select {
	case s.downs <- down{addr, time.Now()}:
	default:
	}
}

// reviver revives the sessions sessionDown reports until ctx ends.
func (s *Speaker) reviver(ctx context.Context) {
	last := map[netip.Addr]time.Time{}
	for {
		var d down
		select {
		case <-ctx.Done():
			return
		case d = <-s.downs:
		}
		a, err := netip.ParseAddr(d.addr)
		if err != nil || time.Since(last[a.Unmap()]) < reviveEvery {
			continue
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(reviveAfter):
		}
		if s.revive(ctx, a.Unmap(), d.at) {
			last[a.Unmap()] = time.Now()
		}
	}
}

// revive makes the session to addr, which went down at downAt, again if
// it is configured, was not made within reviveFresh before that, is not
// established and holds none of the peer's routes; it reports whether
// it did.
func (s *Speaker) revive(ctx context.Context, addr netip.Addr, downAt time.Time) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.pmu.Lock()
	p, ok := s.peers[addr]
	fresh := s.made[addr].After(downAt.Add(-reviveFresh))
	s.pmu.Unlock()
	if !ok || fresh {
		return false
	}
	l, err := s.listPeers(ctx)
	if err != nil {
		return false
	}
	var ap *api.Peer
	for _, x := range l {
		if a, err := netip.ParseAddr(x.GetConf().GetNeighborAddress()); err == nil && a.Unmap() == addr {
			ap = x
		}
	}
	if ap == nil || ap.GetState().GetSessionState() == api.PeerState_ESTABLISHED {
		return false
	}
	for _, af := range ap.GetAfiSafis() {
		if af.GetState().GetReceived() > 0 {
			return false // kept for a graceful restart
		}
	}
	if err := s.deletePeer(ctx, addr); err != nil {
		s.neighbors = nil // read back at the next SetPeers
		s.log.Debug("reviving a BGP session", "peer", addr, "err", err)
		return false
	}
	if err := s.addPeer(ctx, p); err != nil {
		// The next SetPeers adds it again (it reads GoBGP's neighbours
		// back, now that they are not known); wake the agent so that
		// one comes now.
		s.neighbors = nil
		s.forget(addr)
		s.log.Warn("reviving a BGP session", "peer", addr, "err", err)
		s.signalChanges()
		return false
	}
	s.log.Info("BGP session made again at once after it went down", "peer", addr)
	return true
}
