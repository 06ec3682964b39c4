package bgp

import (
	"context"
	"fmt"
	"maps"
	"net/netip"
	"slices"

	api "github.com/osrg/gobgp/v3/api"
)

// Reflectors that serve the same clients.
//
// Several route reflectors that reflect for the same clients also peer
// with each other. GoBGP picks a best path by the router id of the peer it
// came from (it ignores ORIGINATOR_ID and the CLUSTER_LIST's length), so a
// reflector may prefer a copy of a client's route that another reflector
// reflected to it over the client's own; it does not reflect that copy
// (its cluster id is in it), and the client's route then reaches the
// clients through one reflector only, or the reflectors' choices chase
// each other. So no speaker sends a route it learned over iBGP to a peer
// marked Reflector: reflectors exchange only their own routes, each
// reflects every client's route as the client sent it, and the clients
// have one copy from every reflector. (To a node that is not a reflector
// the rule changes nothing: it never sends iBGP-learned routes to iBGP
// peers.)
const (
	reflectorSet    = "calico-reflectors"
	reflectorPolicy = "calico-no-reflected-routes-to-reflectors"
	// noNeighbor is always in reflectorSet and is no peer's address:
	// GoBGP's neighbour condition matches every peer when its set is
	// empty, and a reflector whose other reflectors all went would
	// reflect nothing.
	noNeighbor = "0.0.0.0/32"
)

// setReflectors makes the neighbour set of the policy above exactly the
// addresses of the peers marked Reflector, and re-sends (soft reset out)
// to the peers whose membership changed what they should have been sent.
// The policy is made on first use.
func (s *Speaker) setReflectors(ctx context.Context, peers map[netip.Addr]Peer) error {
	want := map[netip.Addr]bool{}
	for addr, p := range peers {
		if p.Reflector {
			want[addr] = true
		}
	}
	if maps.Equal(want, s.reflectors) {
		return nil
	}
	if s.reflectors == nil {
		if err := s.addReflectorPolicy(ctx); err != nil {
			return err
		}
		s.reflectors = map[netip.Addr]bool{}
	}
	var add, del []string
	var changed []netip.Addr
	for a := range want {
		if !s.reflectors[a] {
			add, changed = append(add, hostPrefix(a)), append(changed, a)
		}
	}
	for a := range s.reflectors {
		if !want[a] {
			del, changed = append(del, hostPrefix(a)), append(changed, a)
		}
	}
	if len(add) > 0 {
		err := do(ctx, func() error {
			return s.srv.AddDefinedSet(ctx, &api.AddDefinedSetRequest{DefinedSet: &api.DefinedSet{
				DefinedType: api.DefinedType_NEIGHBOR, Name: reflectorSet, List: add,
			}})
		})
		if err != nil {
			return fmt.Errorf("adding %v to the reflectors' set: %w", add, err)
		}
	}
	if len(del) > 0 {
		err := do(ctx, func() error {
			return s.srv.DeleteDefinedSet(ctx, &api.DeleteDefinedSetRequest{DefinedSet: &api.DefinedSet{
				DefinedType: api.DefinedType_NEIGHBOR, Name: reflectorSet, List: del,
			}})
		})
		if err != nil {
			return fmt.Errorf("removing %v from the reflectors' set: %w", del, err)
		}
	}
	s.reflectors = maps.Clone(want)
	for _, a := range slices.SortedFunc(slices.Values(changed), netip.Addr.Compare) {
		err := do(ctx, func() error {
			return s.srv.ResetPeer(ctx, &api.ResetPeerRequest{Address: a.String(), Soft: true, Direction: api.ResetPeerRequest_OUT})
		})
		if err != nil {
			s.log.Debug("re-sending routes to a peer whose reflector mark changed", "peer", a, "err", err)
		}
	}
	s.log.Info("BGP automatic reflectors among the peers", "reflectors", len(want))
	return nil
}

// addReflectorPolicy makes the (empty) neighbour set and the export
// policy that sends it no iBGP-learned route.
func (s *Speaker) addReflectorPolicy(ctx context.Context) error {
	err := do(ctx, func() error {
		return s.srv.AddDefinedSet(ctx, &api.AddDefinedSetRequest{DefinedSet: &api.DefinedSet{
			DefinedType: api.DefinedType_NEIGHBOR, Name: reflectorSet, List: []string{noNeighbor},
		}})
	})
	if err != nil {
		return fmt.Errorf("adding the reflectors' set: %w", err)
	}
	pol := &api.Policy{Name: reflectorPolicy, Statements: []*api.Statement{{
		Name: reflectorPolicy,
		Conditions: &api.Conditions{
			NeighborSet: &api.MatchSet{Type: api.MatchSet_ANY, Name: reflectorSet},
			RouteType:   api.Conditions_ROUTE_TYPE_INTERNAL,
		},
		Actions: &api.Actions{RouteAction: api.RouteAction_REJECT},
	}}}
	if err := do(ctx, func() error { return s.srv.AddPolicy(ctx, &api.AddPolicyRequest{Policy: pol}) }); err != nil {
		return fmt.Errorf("adding the reflectors' policy: %w", err)
	}
	err = do(ctx, func() error {
		return s.srv.AddPolicyAssignment(ctx, &api.AddPolicyAssignmentRequest{Assignment: &api.PolicyAssignment{
			Name: "global", Direction: api.PolicyDirection_EXPORT,
			Policies: []*api.Policy{{Name: reflectorPolicy}}, DefaultAction: api.RouteAction_ACCEPT,
		}})
	})
	if err != nil {
		return fmt.Errorf("assigning the reflectors' policy: %w", err)
	}
	return nil
}

func hostPrefix(a netip.Addr) string { return netip.PrefixFrom(a, a.BitLen()).String() }
