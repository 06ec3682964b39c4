package localapi

import (
	"cmp"
	"context"
	"net/http"
	"slices"
	"strings"

	"calico/nft"
	"calico/node/api"
	"calico/node/calc"
	"calico/store"
	"calico/store/etcdv3"
)

func (s *Server) statsRoutes(mux *http.ServeMux) {
	mux.HandleFunc("GET /v1/policy/stats", func(w http.ResponseWriter, r *http.Request) {
		out, err := s.policyStats(r.Context(), r.URL.Query().Get("name"))
		s.reply(w, out, err)
	})
}

// policyStats are the counters of the rules of the policies and profiles
// in use on this host, optionally of one name, with each rule's action as
// the datastore says.
func (s *Server) policyStats(ctx context.Context, name string) ([]api.RuleStats, error) {
	counters, err := s.Agent.Counters(ctx)
	if err != nil {
		return nil, err
	}
	out := []api.RuleStats{}
	rules := map[string][2][]store.Rule{} // by kind/ns/name: ingress, egress
	for _, c := range counters {
		kind, ns, n := calc.PolicyOf(c.Policy)
		if name != "" && n != name {
			continue
		}
		st := api.RuleStats{Kind: kind, Namespace: ns, Name: n, Direction: c.Direction.String(), Rule: c.Rule, Packets: c.Packets, Bytes: c.Bytes}
		key := kind + "/" + ns + "/" + n
		rs, ok := rules[key]
		if !ok {
			rs = s.policyRules(ctx, kind, ns, n)
			rules[key] = rs
		}
		list := rs[0]
		if c.Direction == nft.Egress {
			list = rs[1]
		}
		if c.Rule < len(list) {
			st.Action = list[c.Rule].Action
		}
		out = append(out, st)
	}
	slices.SortFunc(out, func(a, b api.RuleStats) int {
		return cmp.Or(strings.Compare(a.Kind+"/"+a.Namespace+"/"+a.Name+"/"+a.Direction, b.Kind+"/"+b.Namespace+"/"+b.Name+"/"+b.Direction), cmp.Compare(a.Rule, b.Rule))
	})
	return out, nil
}

// policyRules reads a policy's or profile's rules; none if it is gone.
func (s *Server) policyRules(ctx context.Context, kind, ns, name string) [2][]store.Rule {
	switch kind {
	case store.KindGlobalNetworkPolicy.Name:
		if p, err := etcdv3.GetOf[*store.GlobalNetworkPolicy](ctx, s.Store, "", name); err == nil {
			return [2][]store.Rule{p.Spec.Ingress, p.Spec.Egress}
		}
	case store.KindNetworkPolicy.Name:
		if p, err := etcdv3.GetOf[*store.NetworkPolicy](ctx, s.Store, ns, name); err == nil {
			return [2][]store.Rule{p.Spec.Ingress, p.Spec.Egress}
		}
	case store.KindProfile.Name:
		if p, err := etcdv3.GetOf[*store.Profile](ctx, s.Store, "", name); err == nil {
			return [2][]store.Rule{p.Spec.Ingress, p.Spec.Egress}
		}
	}
	return [2][]store.Rule{}
}
