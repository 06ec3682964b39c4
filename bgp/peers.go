package bgp

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"time"

	api "github.com/osrg/gobgp/v3/api"
)

// SetPeers makes the speaker's sessions exactly peers: it adds the
// missing ones, re-creates (delete, then add) those whose session
// settings changed (or that are newly marked Reflector: markedReflector)
// and deletes those no longer wanted. A change of Type or Name only, or
// a Reflector mark taken away, is taken without touching the session. It reads GoBGP's
// neighbours back when it does not know them (at the first call and
// after a call that failed), so an earlier call that was given up on is
// repaired. There is at most one session per address; a second entry for
// an address with different settings is an error, and the first one
// stays. Idempotent. Password files are read afresh on every call: a
// session whose file cannot be used is left out (so removed if it was
// there) and reported by Peers, and one whose password changed is
// re-created.
//
// After a graceful restart, call SetAdvertised before the first SetPeers:
// a session that comes up sends our routes and then End-of-RIB, and a
// peer drops whatever stale routes of ours that update did not carry.
func (s *Speaker) SetPeers(ctx context.Context, peers []Peer) error {
	s.mu.Lock()
	defer s.mu.Unlock()

	want, errs := s.wanted(peers)

	s.distrustRecords()
	have := s.neighbors
	if have == nil {
		var err error
		if have, err = s.readNeighbors(ctx); err != nil {
			return errors.Join(append(errs, fmt.Errorf("listing BGP peers: %w", err))...)
		}
	}
	s.neighbors = nil // unknown until every call below has succeeded
	failed := false
	now := maps.Clone(have)
	s.pmu.Lock()
	applied := maps.Clone(s.peers)
	s.pmu.Unlock()

	var added, replaced, deleted int
	for _, addr := range slices.SortedFunc(maps.Keys(want), netip.Addr.Compare) {
		p := want[addr]
		old, known := applied[addr]
		if have[addr] && known && sameSession(old, p) && !markedReflector(old, p) {
			if old != p {
				s.record(p)
			}
			continue
		}
		if have[addr] {
			if err := s.deletePeer(ctx, addr); err != nil {
				errs, failed = append(errs, err), true
				continue
			}
			s.forget(addr)
			delete(now, addr)
			replaced++
		} else {
			added++
		}
		if err := s.addPeer(ctx, p); err != nil {
			errs, failed = append(errs, err), true
			continue
		}
		s.record(p)
		now[addr] = true
		s.log.Debug("BGP peer configured", "peer", p.Addr, "as", p.AS, "type", p.Type, "name", p.Name)
	}
	for _, addr := range slices.SortedFunc(maps.Keys(have), netip.Addr.Compare) {
		if _, ok := want[addr]; ok {
			continue
		}
		if err := s.deletePeer(ctx, addr); err != nil {
			errs, failed = append(errs, err), true
			continue
		}
		s.forget(addr)
		delete(now, addr)
		deleted++
		s.log.Debug("BGP peer removed", "peer", addr)
	}
	if !failed {
		s.neighbors = now
	}
	if err := s.setReflectors(ctx, want); err != nil {
		errs = append(errs, err)
	}
	if replaced+deleted > 0 {
		// GoBGP dropped those peers' paths, and says so only for the
		// best ones (and not at all for a peer that was not
		// established): read everything again.
		s.markDirty(nil, true)
	}
	if added+replaced+deleted > 0 {
		s.log.Info("BGP peers updated", "added", added, "replaced", replaced, "deleted", deleted, "peers", len(want))
	}
	return errors.Join(errs...)
}

// wanted are the sessions peers ask for, one per address, each checked.
func (s *Speaker) wanted(peers []Peer) (map[netip.Addr]Peer, []error) {
	var errs []error
	want := map[netip.Addr]Peer{}
	for _, p := range s.withPasswords(peers) {
		p, err := s.checkPeer(p)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if first, dup := want[p.Addr]; dup {
			if first != p {
				errs = append(errs, fmt.Errorf("peer %s is given twice with different settings; keeping the first", p.Addr))
			}
			continue
		}
		want[p.Addr] = p
	}
	return want, errs
}

// checkPeer validates p and puts its addresses in canonical form.
func (s *Speaker) checkPeer(p Peer) (Peer, error) {
	if !p.Addr.IsValid() {
		return p, errors.New("peer with no address")
	}
	p.Addr, p.LocalAddr, p.ClusterID = p.Addr.Unmap(), p.LocalAddr.Unmap(), p.ClusterID.Unmap()
	if p.AS == 0 {
		return p, fmt.Errorf("peer %s: AS number is 0", p.Addr)
	}
	if p.Port < 0 || p.Port > 65535 {
		return p, fmt.Errorf("peer %s: port %d out of range", p.Addr, p.Port)
	}
	if p.LocalAddr.IsValid() && p.LocalAddr.Is4() != p.Addr.Is4() {
		return p, fmt.Errorf("peer %s: local address %s is of the other family", p.Addr, p.LocalAddr)
	}
	if p.ReflectorClient && p.ClusterID.IsValid() && !p.ClusterID.Is4() {
		return p, fmt.Errorf("peer %s: cluster id %s is not an IPv4 address", p.Addr, p.ClusterID)
	}
	return p, nil
}

// sameSession tells whether a and b make the same session: they differ
// at most in what is reported back only, or in Reflector (which is in the
// reflectors' set, not in the session).
func sameSession(a, b Peer) bool {
	a.Type, a.Name, b.Type, b.Name = "", "", "", ""
	a.Reflector, b.Reflector = false, false
	a.Port, b.Port = peerPort(a), peerPort(b)
	return a == b
}

// markedReflector: p is marked Reflector and was not. Its session is
// made again: while it was not marked, this node may have reflected
// routes to it, which the export policy now filters, and GoBGP withdraws
// neither those (a soft reset out sends only what passes) nor, later,
// one whose best path changes to another that the policy filters too.
// The peer would keep such a route for as long as the session lasted,
// its next hop perhaps gone (TestReflectorMarkedLater). Unmarking needs
// no new session: the soft reset out sends what the policy now lets by.
func markedReflector(old, p Peer) bool { return p.Reflector && !old.Reflector }

func (s *Speaker) record(p Peer) {
	s.pmu.Lock()
	defer s.pmu.Unlock()
	s.peers[p.Addr] = p
}

func (s *Speaker) forget(addr netip.Addr) {
	s.pmu.Lock()
	defer s.pmu.Unlock()
	delete(s.peers, addr)
}

func family(a netip.Addr) *api.Family {
	if a.Is4() {
		return &api.Family{Afi: api.Family_AFI_IP, Safi: api.Family_SAFI_UNICAST}
	}
	return &api.Family{Afi: api.Family_AFI_IP6, Safi: api.Family_SAFI_UNICAST}
}

// apiPeer is p as GoBGP configures it.
func (s *Speaker) apiPeer(p Peer) *api.Peer {
	ap := &api.Peer{
		Conf: &api.PeerConf{
			NeighborAddress: p.Addr.String(),
			PeerAsn:         p.AS,
			AuthPassword:    string(p.Password),
		},
		Transport: &api.Transport{RemotePort: uint32(peerPort(p))},
		Timers: &api.Timers{Config: &api.TimersConfig{
			ConnectRetry:      connectRetry,
			HoldTime:          holdTime,
			KeepaliveInterval: keepalive,
		}},
		AfiSafis: []*api.AfiSafi{{
			Config: &api.AfiSafiConfig{Family: family(p.Addr), Enabled: true},
		}},
	}
	if p.LocalAddr.IsValid() {
		ap.Transport.LocalAddress = p.LocalAddr.String()
	}
	// Between two of our nodes, the one with the greater address only
	// listens, as Calico's confd makes BIRD "passive". When both ends
	// connect, GoBGP can lock itself out after a session drops: each end
	// spends 5 s idle after a failed attempt and closes what arrives
	// meanwhile, and two ends that fall out of step keep failing each
	// other's attempts (seen here for minutes after a restart).
	if p.Name != "" && p.LocalAddr.IsValid() && p.LocalAddr.Compare(p.Addr) > 0 {
		ap.Transport.PassiveMode = true
	}
	if p.ReflectorClient {
		id := s.cfg.RouterID
		if p.ClusterID.IsValid() {
			id = p.ClusterID
		}
		ap.RouteReflector = &api.RouteReflector{RouteReflectorClient: true, RouteReflectorClusterId: id.String()}
	}
	if p.AS != s.cfg.AS {
		// Calico's BIRD sessions are all multihop: an external peer
		// need not be on the node's link.
		ap.EbgpMultihop = &api.EbgpMultihop{Enabled: true, MultihopTtl: 255}
	}
	if s.cfg.GracefulRestart {
		ap.GracefulRestart = &api.GracefulRestart{Enabled: true, RestartTime: restartTime}
		ap.AfiSafis[0].MpGracefulRestart = &api.MpGracefulRestart{
			Config: &api.MpGracefulRestartConfig{Enabled: true},
		}
	}
	return ap
}

func (s *Speaker) addPeer(ctx context.Context, p Peer) error {
	if p.Password != "" && s.port > 0 && mptcpListen() {
		s.log.Warn("TCP MD5 password cannot be set on the BGP listener, which Go made a multipath TCP socket: "+
			"the peer's connections to us will fail; set GODEBUG=multipathtcp=0", "peer", p.Addr)
	}
	err := s.change(ctx, func() error {
		return s.srv.AddPeer(ctx, &api.AddPeerRequest{Peer: s.apiPeer(p)})
	})
	if err != nil {
		return fmt.Errorf("adding BGP peer %s: %w", p.Addr, err)
	}
	s.pmu.Lock()
	s.made[p.Addr] = time.Now()
	s.pmu.Unlock()
	return nil
}

func (s *Speaker) deletePeer(ctx context.Context, addr netip.Addr) error {
	err := s.change(ctx, func() error {
		return s.srv.DeletePeer(ctx, &api.DeletePeerRequest{Address: addr.String()})
	})
	if err != nil {
		return fmt.Errorf("deleting BGP peer %s: %w", addr, err)
	}
	return nil
}

// listPeers is GoBGP's neighbours with their state.
func (s *Speaker) listPeers(ctx context.Context) ([]*api.Peer, error) {
	return call(ctx, func() ([]*api.Peer, error) {
		var l []*api.Peer
		err := s.srv.ListPeer(ctx, &api.ListPeerRequest{}, func(p *api.Peer) { l = append(l, p) })
		return l, err
	})
}

// readNeighbors is the set of addresses GoBGP has a neighbour for.
func (s *Speaker) readNeighbors(ctx context.Context) (map[netip.Addr]bool, error) {
	l, err := s.listPeers(ctx)
	if err != nil {
		return nil, err
	}
	have := map[netip.Addr]bool{}
	for _, p := range l {
		if a, err := netip.ParseAddr(p.GetConf().GetNeighborAddress()); err == nil {
			have[a.Unmap()] = true
		}
	}
	return have, nil
}

// Peers is the state of every configured session, sorted by address.
// Advertised is left 0: counting it costs a walk of the RIB per session
// (Advertised), which on a reflector of N hosts is O(N²) and held
// GoBGP's loop for seconds at 300 hosts; Peers is read every few
// seconds (problems, metrics).
func (s *Speaker) Peers(ctx context.Context) ([]PeerStatus, error) {
	l, err := s.listPeers(ctx)
	if err != nil {
		return nil, fmt.Errorf("listing BGP peers: %w", err)
	}
	s.pmu.Lock()
	recs := maps.Clone(s.peers)
	s.pmu.Unlock()

	var out []PeerStatus
	for _, ap := range l {
		addr, err := netip.ParseAddr(ap.GetConf().GetNeighborAddress())
		if err != nil {
			continue
		}
		addr = addr.Unmap()
		st := PeerStatus{Peer: recs[addr]}
		if !st.Addr.IsValid() {
			st.Peer = Peer{Addr: addr, AS: ap.GetConf().GetPeerAsn()}
		}
		state := ap.GetState().GetSessionState()
		st.State = strings.ToLower(state.String())
		timers := ap.GetTimers().GetState()
		since := timers.GetDowntime()
		if state == api.PeerState_ESTABLISHED {
			since = timers.GetUptime()
		}
		if since.GetSeconds() > 0 {
			st.Since = since.AsTime()
		}
		for _, af := range ap.GetAfiSafis() {
			st.Received += int(af.GetState().GetAccepted())
		}
		out = append(out, st)
	}
	out = append(out, s.refusedStatus()...)
	slices.SortFunc(out, func(a, b PeerStatus) int { return a.Addr.Compare(b.Addr) })
	return out, nil
}

// Advertised counts the paths GoBGP sends to the peer at addr, from its
// Adj-RIB-Out (GoBGP's own count, ListPeer's EnableAdvertised, includes
// the End-of-RIB marker when graceful restart is on): O(routes).
func (s *Speaker) Advertised(ctx context.Context, addr netip.Addr) (int, error) {
	n, err := call(ctx, func() (int, error) {
		n := 0
		err := s.srv.ListPath(ctx, &api.ListPathRequest{
			TableType: api.TableType_ADJ_OUT,
			Name:      addr.String(),
			Family:    family(addr),
		}, func(d *api.Destination) { n += len(d.Paths) })
		return n, err
	})
	if err != nil {
		return 0, fmt.Errorf("listing paths advertised to %s: %w", addr, err)
	}
	return n, nil
}
