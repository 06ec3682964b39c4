package bgp

import (
	"context"
	"maps"
	"math/rand/v2"
	"net/netip"
	"slices"
	"time"

	api "github.com/osrg/gobgp/v3/api"
)

// How learned routes are kept.
//
// GoBGP's best-path events carry one best path per destination, and fire
// only when that one changes: a second, equal path from another peer
// (ECMP) comes and goes without one. So events only say which
// destinations to look at again; the learner then reads each such
// destination whole from the global RIB (ListPath) and takes every path
// that ties with the best (see nextHops). The events watched:
//
//   - BEST: the best path of a destination changed (also when GoBGP itself
//     dropped paths, on a session going down or stale paths expiring);
//   - ADJIN: a peer sent an update or withdrawal for a destination, which
//     may change its set of equal paths without changing its best;
//   - EOR and peer state changes (into or out of Established): paths may
//     have gone without an update each, so everything is read again.
//
// Everything is also read again every resyncPeriod, in case an event was
// missed, and when too many destinations are dirty at once.

// maxDirty is how many dirty destinations are read one by one; beyond
// it, the whole table is read.
const maxDirty = 64

// watch subscribes to the GoBGP events above; they arrive on one
// goroutine of GoBGP's until ctx ends.
func (s *Speaker) watch(ctx context.Context) error {
	up := map[string]bool{} // sessions established, as seen by onEvent
	req := &api.WatchEventRequest{
		Peer: &api.WatchEventRequest_Peer{},
		Table: &api.WatchEventRequest_Table{Filters: []*api.WatchEventRequest_Table_Filter{
			{Type: api.WatchEventRequest_Table_Filter_BEST},
			{Type: api.WatchEventRequest_Table_Filter_ADJIN},
			{Type: api.WatchEventRequest_Table_Filter_EOR},
		}},
	}
	return do(ctx, func() error {
		return s.srv.WatchEvent(ctx, req, func(r *api.WatchEventResponse) { s.onEvent(r, up) })
	})
}

// onEvent marks what an event may have changed and wakes the learner. It
// never blocks: GoBGP queues events for it without bound.
func (s *Speaker) onEvent(r *api.WatchEventResponse, up map[string]bool) {
	switch ev := r.Event.(type) {
	case *api.WatchEventResponse_Peer:
		pe := ev.Peer
		if pe.GetType() != api.WatchEventResponse_PeerEvent_STATE {
			return
		}
		addr := pe.GetPeer().GetState().GetNeighborAddress()
		established := pe.GetPeer().GetState().GetSessionState() == api.PeerState_ESTABLISHED
		if established == up[addr] {
			return
		}
		if established {
			up[addr] = true
			s.log.Info("BGP session established", "peer", addr)
		} else {
			delete(up, addr)
			s.log.Info("BGP session down", "peer", addr,
				"state", pe.GetPeer().GetState().GetSessionState().String())
			s.sessionDown(addr)
		}
		s.markDirty(nil, true)
	case *api.WatchEventResponse_Table:
		var dirty []netip.Prefix
		full := false
		for _, p := range ev.Table.GetPaths() {
			if pfx, ok := pathPrefix(p); ok {
				dirty = append(dirty, pfx)
			} else if p.Nlri == nil { // End-of-RIB
				full = true
			}
		}
		s.markDirty(dirty, full)
	}
}

// signalChanges wakes whoever waits on Changes; it never blocks.
func (s *Speaker) signalChanges() {
	select {
	case s.changes <- struct{}{}:
	default:
	}
}

func (s *Speaker) markDirty(prefixes []netip.Prefix, full bool) {
	if len(prefixes) == 0 && !full {
		return
	}
	s.lmu.Lock()
	for _, p := range prefixes {
		s.dirty[p] = true
	}
	s.resync = s.resync || full
	s.lmu.Unlock()
	select {
	case s.poke <- struct{}{}:
	default:
	}
}

// learn keeps s.learned in step with GoBGP's RIB until ctx ends.
func (s *Speaker) learn(ctx context.Context) {
	jitter := func() time.Duration { return resyncPeriod + rand.N(resyncPeriod/10) }
	t := time.NewTimer(jitter())
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.poke:
		case <-t.C:
			t.Reset(jitter())
			s.markDirty(nil, true)
			continue
		}
		s.lmu.Lock()
		full, dirty := s.resync, s.dirty
		s.resync, s.dirty = false, map[netip.Prefix]bool{}
		s.lmu.Unlock()
		if len(dirty) > maxDirty {
			full = true
		}
		var changed bool
		var err error
		if full {
			changed, err = s.readAll(ctx)
		} else {
			changed, err = s.readSome(ctx, slices.Collect(maps.Keys(dirty)))
		}
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			// Try again, whole, at the next periodic resync rather than
			// spin against a server that is not answering.
			s.lmu.Lock()
			s.resync = true
			s.lmu.Unlock()
			s.log.Warn("reading learned BGP routes", "err", err)
		}
		if changed {
			s.signalChanges()
		}
	}
}

// readAll reads every IPv4 and IPv6 unicast destination and replaces the
// learned routes with what it finds.
func (s *Speaker) readAll(ctx context.Context) (changed bool, err error) {
	next := map[netip.Prefix][]netip.Addr{}
	for _, fam := range []*api.Family{family(netip.IPv4Unspecified()), family(netip.IPv6Unspecified())} {
		dsts, err := s.listPaths(ctx, fam, nil)
		if err != nil {
			return false, err
		}
		for _, d := range dsts {
			if pfx, hops := s.nextHops(d); len(hops) > 0 {
				next[pfx] = hops
			}
		}
	}
	s.lmu.Lock()
	defer s.lmu.Unlock()
	if maps.EqualFunc(s.learned, next, slices.Equal) {
		return false, nil
	}
	s.learned, s.sorted = next, nil
	return true, nil
}

// readSome reads the given destinations again.
func (s *Speaker) readSome(ctx context.Context, prefixes []netip.Prefix) (changed bool, err error) {
	for _, pfx := range prefixes {
		dsts, err := s.listPaths(ctx, family(pfx.Addr()), []netip.Prefix{pfx})
		if err != nil {
			return changed, err
		}
		var hops []netip.Addr
		for _, d := range dsts {
			if p, h := s.nextHops(d); p == pfx {
				hops = h
			}
		}
		s.lmu.Lock()
		if !slices.Equal(s.learned[pfx], hops) {
			changed, s.sorted = true, nil
			if len(hops) > 0 {
				s.learned[pfx] = hops
			} else {
				delete(s.learned, pfx)
			}
		}
		s.lmu.Unlock()
	}
	return changed, nil
}

// nextHops is where d's traffic should go, as learned from peers: the
// next hop of the best path and of every other path that ties with it
// (ECMP), sorted, one each. GoBGP lists a destination's paths best first.
// Nothing is learned for a destination whose best path is our own (GoBGP
// prefers a locally originated path, as BIRD prefers its static route),
// and a path whose next hop is one of our addresses is skipped.
func (s *Speaker) nextHops(d *api.Destination) (netip.Prefix, []netip.Addr) {
	var dst netip.Prefix
	var best *attrs
	var hops []netip.Addr
	for _, p := range d.Paths {
		if p.IsWithdraw || p.IsNexthopInvalid || p.Filtered {
			continue
		}
		pfx, ok := pathPrefix(p)
		if !ok {
			continue
		}
		dst = pfx
		if isLocal(p) {
			if best == nil {
				return dst, nil
			}
			continue
		}
		a, ok := pathAttrs(p)
		if !ok || s.own[a.nextHop] {
			continue
		}
		if best == nil {
			best = &a
		} else if !a.ties(*best) {
			continue
		}
		if !slices.Contains(hops, a.nextHop) {
			hops = append(hops, a.nextHop)
		}
	}
	slices.SortFunc(hops, netip.Addr.Compare)
	return dst, hops
}

// Learned is the routes learned from peers, sorted by destination. The
// answer is shared by every call until the routes change (the agent asks
// on every pass; at a thousand hosts sorting and copying them cost about
// as much as the pass's calculation): read it, never change it.
func (s *Speaker) Learned() []Route {
	s.lmu.Lock()
	defer s.lmu.Unlock()
	if s.sorted == nil {
		s.sorted = make([]Route, 0, len(s.learned))
		for _, dst := range slices.SortedFunc(maps.Keys(s.learned), comparePrefix) {
			// learned's next hops are replaced, never changed in place.
			s.sorted = append(s.sorted, Route{Dst: dst, NextHops: s.learned[dst]})
		}
	}
	return s.sorted
}
