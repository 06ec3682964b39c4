package node

import (
	"context"
	"sync"
	"time"

	"calico/nft"
	"calico/node/agent"
	"calico/node/calc"
	"calico/node/metrics"
	"calico/store"
)

// profileTier is the tier label of profile rules: profiles are in no
// tier; they decide after every tier.
const profileTier = "__profile__"

// ruleCache keeps the per-rule counters between scrapes: reading them
// dumps every rule of the table from the kernel (about 0.1 s of CPU for
// 11,000 rules), so they are read at most every rulesEvery, or 100 times
// as long as the last read took: never more than 1% of a core, however
// often Prometheus scrapes.
type ruleCache struct {
	mu      sync.Mutex
	at      time.Time
	next    time.Duration
	rules   []metrics.Rule
	dropped int
}

const rulesEvery = 10 * time.Second

func (c *ruleCache) get(ctx context.Context, a *agent.Agent, in calc.Input) ([]metrics.Rule, int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.at.IsZero() && time.Since(c.at) < c.next {
		return c.rules, c.dropped
	}
	start := time.Now()
	c.rules, c.dropped = ruleCounters(ctx, a, in)
	c.at = time.Now()
	c.next = max(rulesEvery, 100*c.at.Sub(start))
	return c.rules, c.dropped
}

// ruleCounters are the kernel's counters of every policy rule on this
// host, labelled with the policy's tier and the rule's action as the
// node's copy of the datastore has them; at most MaxRuleSeries/2 rules.
func ruleCounters(ctx context.Context, a *agent.Agent, in calc.Input) (out []metrics.Rule, dropped int) {
	cctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	counters, err := a.Counters(cctx)
	if err != nil {
		return nil, 0
	}
	type rules struct {
		tier    string
		in, out []store.Rule
	}
	byKey := map[string]rules{}
	for _, p := range in.GlobalPolicies {
		byKey[store.KindGlobalNetworkPolicy.Name+"//"+p.Metadata.Name] = rules{tierOf(p.Spec.Tier), p.Spec.Ingress, p.Spec.Egress}
	}
	for _, p := range in.Policies {
		byKey[store.KindNetworkPolicy.Name+"/"+p.Metadata.Namespace+"/"+p.Metadata.Name] = rules{tierOf(p.Spec.Tier), p.Spec.Ingress, p.Spec.Egress}
	}
	for _, p := range in.Profiles {
		byKey[store.KindProfile.Name+"//"+p.Metadata.Name] = rules{profileTier, p.Spec.Ingress, p.Spec.Egress}
	}
	for _, c := range counters {
		if len(out) >= metrics.MaxRuleSeries/2 {
			dropped++
			continue
		}
		kind, ns, name := calc.PolicyOf(c.Policy)
		rs := byKey[kind+"/"+ns+"/"+name]
		list := rs.in
		if c.Direction == nft.Egress {
			list = rs.out
		}
		r := metrics.Rule{Tier: rs.tier, Kind: kind, Policy: name, Direction: c.Direction.String(), Index: c.Rule, Packets: c.Packets, Bytes: c.Bytes}
		if ns != "" {
			r.Policy = ns + "/" + name
		}
		if c.Rule < len(list) {
			r.Action = list[c.Rule].Action
		}
		out = append(out, r)
	}
	return out, dropped
}

func tierOf(t string) string {
	if t == "" {
		return "default"
	}
	return t
}
