package bgp

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"slices"

	api "github.com/osrg/gobgp/v3/api"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
)

// SetAdvertised makes the paths this node originates exactly prefixes:
// IPv4 ones with NextHop4, IPv6 ones with NextHop6 (in MP_REACH_NLRI),
// origin IGP. It adds the missing ones and withdraws the rest, from what
// the last call left (read back from GoBGP when that is not known: at
// the first call and after a failed one). Idempotent.
func (s *Speaker) SetAdvertised(ctx context.Context, prefixes []netip.Prefix) error {
	s.mu.Lock()
	defer s.mu.Unlock()

	var errs []error
	want := map[netip.Prefix]bool{}
	for _, p := range prefixes {
		if !p.IsValid() {
			errs = append(errs, fmt.Errorf("advertising %v: invalid prefix", p))
			continue
		}
		want[p.Masked()] = true
	}
	s.distrustRecords()
	have := s.local
	if have == nil {
		var err error
		if have, err = s.localPaths(ctx); err != nil {
			return errors.Join(append(errs, fmt.Errorf("listing advertised paths: %w", err))...)
		}
	}
	if maps.Equal(have, want) {
		s.local = have
		return errors.Join(errs...)
	}
	s.local = nil // unknown until every call below has succeeded

	var added, withdrawn int
	failed := false
	for _, p := range slices.SortedFunc(maps.Keys(want), comparePrefix) {
		if have[p] {
			continue
		}
		path, err := s.localPath(p)
		if err == nil {
			err = s.change(ctx, func() error {
				_, err := s.srv.AddPath(ctx, &api.AddPathRequest{TableType: api.TableType_GLOBAL, Path: path})
				return err
			})
		}
		if err != nil {
			errs, failed = append(errs, fmt.Errorf("advertising %s: %w", p, err)), true
			continue
		}
		added++
		s.log.Debug("advertising prefix", "prefix", p)
	}
	for _, p := range slices.SortedFunc(maps.Keys(have), comparePrefix) {
		if want[p] {
			continue
		}
		// The withdrawal is the path as it was added: GoBGP matches
		// local paths by prefix and (empty) source.
		path, err := s.localPath(p)
		if err == nil {
			err = s.change(ctx, func() error {
				return s.srv.DeletePath(ctx, &api.DeletePathRequest{TableType: api.TableType_GLOBAL, Path: path})
			})
		}
		if err != nil {
			errs, failed = append(errs, fmt.Errorf("withdrawing %s: %w", p, err)), true
			continue
		}
		withdrawn++
		s.log.Debug("withdrawing prefix", "prefix", p)
	}
	if !failed {
		s.local = want
	}
	if added+withdrawn > 0 {
		s.log.Info("BGP advertisements updated", "added", added, "withdrawn", withdrawn, "advertised", len(want))
	}
	return errors.Join(errs...)
}

// localPaths is the set of prefixes GoBGP holds a locally originated
// path for.
func (s *Speaker) localPaths(ctx context.Context) (map[netip.Prefix]bool, error) {
	have := map[netip.Prefix]bool{}
	for _, fam := range []*api.Family{family(netip.IPv4Unspecified()), family(netip.IPv6Unspecified())} {
		dsts, err := s.listPaths(ctx, fam, nil)
		if err != nil {
			return nil, err
		}
		for _, d := range dsts {
			for _, p := range d.Paths {
				if pfx, ok := pathPrefix(p); ok && isLocal(p) && !p.IsWithdraw {
					have[pfx] = true
				}
			}
		}
	}
	return have, nil
}

// listPaths reads destinations of one family from the global RIB: the
// given prefixes exactly, or the whole table if there are none.
func (s *Speaker) listPaths(ctx context.Context, fam *api.Family, prefixes []netip.Prefix) ([]*api.Destination, error) {
	req := &api.ListPathRequest{TableType: api.TableType_GLOBAL, Family: fam}
	for _, p := range prefixes {
		req.Prefixes = append(req.Prefixes, &api.TableLookupPrefix{Prefix: p.String(), Type: api.TableLookupPrefix_EXACT})
	}
	return call(ctx, func() ([]*api.Destination, error) {
		var l []*api.Destination
		err := s.srv.ListPath(ctx, req, func(d *api.Destination) { l = append(l, d) })
		return l, err
	})
}

// localPath is the path this node originates for p.
func (s *Speaker) localPath(p netip.Prefix) (*api.Path, error) {
	nlri, err := anypb.New(&api.IPAddressPrefix{Prefix: p.Addr().String(), PrefixLen: uint32(p.Bits())})
	if err != nil {
		return nil, err
	}
	origin, err := anypb.New(&api.OriginAttribute{Origin: 0}) // IGP
	if err != nil {
		return nil, err
	}
	fam := family(p.Addr())
	var nh proto.Message
	if p.Addr().Is4() {
		hop := netip.IPv4Unspecified() // GoBGP puts the session's address
		if s.cfg.NextHop4.IsValid() {
			hop = s.cfg.NextHop4
		}
		nh = &api.NextHopAttribute{NextHop: hop.String()}
	} else {
		hop := netip.IPv6Unspecified()
		if s.cfg.NextHop6.IsValid() {
			hop = s.cfg.NextHop6
		}
		nh = &api.MpReachNLRIAttribute{Family: fam, NextHops: []string{hop.String()}, Nlris: []*anypb.Any{nlri}}
	}
	nhAttr, err := anypb.New(nh)
	if err != nil {
		return nil, err
	}
	return &api.Path{Family: fam, Nlri: nlri, Pattrs: []*anypb.Any{origin, nhAttr}}, nil
}

// isLocal tells whether p is originated by this speaker: it has no
// neighbour it came from.
func isLocal(p *api.Path) bool {
	_, err := netip.ParseAddr(p.NeighborIp)
	return err != nil
}

// pathPrefix is p's destination, for IPv4 and IPv6 unicast paths.
func pathPrefix(p *api.Path) (netip.Prefix, bool) {
	if p.Nlri == nil {
		return netip.Prefix{}, false
	}
	var n api.IPAddressPrefix
	if err := p.Nlri.UnmarshalTo(&n); err != nil {
		return netip.Prefix{}, false
	}
	a, err := netip.ParseAddr(n.Prefix)
	if err != nil {
		return netip.Prefix{}, false
	}
	pfx, err := a.Unmap().Prefix(int(n.PrefixLen))
	if err != nil {
		return netip.Prefix{}, false
	}
	return pfx, true
}

// attrs is what best-path selection and ECMP look at in a path.
type attrs struct {
	nextHop   netip.Addr
	localPref uint32
	asPathLen int
	origin    uint32
	med       uint32
}

// pathAttrs reads p's attributes; ok is false if it has no usable next
// hop.
func pathAttrs(p *api.Path) (a attrs, ok bool) {
	a.localPref = 100 // GoBGP's default for a path without LOCAL_PREF
	for _, an := range p.Pattrs {
		m, err := an.UnmarshalNew()
		if err != nil {
			continue
		}
		switch v := m.(type) {
		case *api.NextHopAttribute:
			if h, err := netip.ParseAddr(v.NextHop); err == nil {
				a.nextHop = h.Unmap()
			}
		case *api.MpReachNLRIAttribute:
			// The first next hop is the global one; a second, if any,
			// is link-local.
			if len(v.NextHops) > 0 {
				if h, err := netip.ParseAddr(v.NextHops[0]); err == nil {
					a.nextHop = h.Unmap()
				}
			}
		case *api.LocalPrefAttribute:
			a.localPref = v.LocalPref
		case *api.OriginAttribute:
			a.origin = v.Origin
		case *api.MultiExitDiscAttribute:
			a.med = v.Med
		case *api.AsPathAttribute:
			for _, seg := range v.Segments {
				switch seg.Type {
				case 1: // AS_SET counts as one
					a.asPathLen++
				case 2: // AS_SEQUENCE
					a.asPathLen += len(seg.Numbers)
				}
			}
		}
	}
	return a, a.nextHop.IsValid() && !a.nextHop.IsUnspecified()
}

// ties tells whether a path with a is as good as one with b for ECMP:
// equal in the attributes best-path selection looks at before it falls
// back to tie-breakers.
func (a attrs) ties(b attrs) bool {
	return a.localPref == b.localPref && a.asPathLen == b.asPathLen && a.origin == b.origin && a.med == b.med
}

func comparePrefix(a, b netip.Prefix) int {
	if c := a.Addr().Compare(b.Addr()); c != 0 {
		return c
	}
	return a.Bits() - b.Bits()
}
