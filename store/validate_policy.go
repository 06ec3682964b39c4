package store

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	"calico/internal/quote"
)

// Validation of policies and their rules.

func (p *GlobalNetworkPolicy) validate(c *checker) {
	c.name("metadata.name", p.Metadata.Name)
	s := &p.Spec
	c.policy(s.Tier, s.Selector, s.Types, s.Ingress, s.Egress)
	if s.NamespaceSelector != "" {
		c.notGlobal("spec.namespaceSelector", s.NamespaceSelector)
	}
	switch {
	case s.DoNotTrack && s.PreDNAT:
		c.errorf("spec.preDNAT", "a policy cannot be both preDNAT and doNotTrack")
	case (s.DoNotTrack || s.PreDNAT) && !s.ApplyOnForward:
		c.errorf("spec.applyOnForward", "must be true for a doNotTrack or preDNAT policy")
	}
	if s.PreDNAT && (len(s.Egress) > 0 || slices.Contains(s.Types, "Egress")) {
		c.errorf("spec.egress", "a preDNAT policy has ingress rules only (and types [Ingress])")
	}
}

func (p *GlobalNetworkPolicy) setDefaults() {
	p.Spec.Types = inferTypes(p.Spec.Types, p.Spec.Ingress, p.Spec.Egress)
	p.Spec.Tier = tierDefaults(&p.Metadata, p.Spec.Tier)
}

func (p *NetworkPolicy) validate(c *checker) {
	c.name("metadata.name", p.Metadata.Name)
	s := &p.Spec
	c.policy(s.Tier, s.Selector, s.Types, s.Ingress, s.Egress)
}

func (p *NetworkPolicy) setDefaults() {
	if p.Metadata.Namespace == "" {
		p.Metadata.Namespace = "default"
	}
	p.Spec.Types = inferTypes(p.Spec.Types, p.Spec.Ingress, p.Spec.Egress)
	p.Spec.Tier = tierDefaults(&p.Metadata, p.Spec.Tier)
}

// TierLabel names a policy's tier among its labels, as Calico's client
// sets it.
const TierLabel = "projectcalico.org/tier"

// tierDefaults returns a policy's tier, "default" when it names none, and
// labels the policy with it.
func tierDefaults(m *ObjectMeta, tier string) string {
	if tier == "" {
		tier = DefaultTier
	}
	if m.Labels[TierLabel] != tier {
		m.Labels = maps.Clone(m.Labels)
		if m.Labels == nil {
			m.Labels = map[string]string{}
		}
		m.Labels[TierLabel] = tier
	}
	return tier
}

// inferTypes applies Calico's rule for policies without types: Ingress,
// plus Egress when there are egress rules, or Egress alone when there are
// only egress rules.
func inferTypes(types []string, ingress, egress []Rule) []string {
	switch {
	case len(types) > 0:
		return types
	case len(egress) > 0 && len(ingress) > 0:
		return []string{"Ingress", "Egress"}
	case len(egress) > 0:
		return []string{"Egress"}
	}
	return []string{"Ingress"}
}

func (c *checker) policy(tier, sel string, types []string, ingress, egress []Rule) {
	c.dnsLabel("spec.tier", tier)
	c.notGlobal("spec.selector", sel)
	seen := map[string]bool{}
	for i, t := range types {
		if t != "Ingress" && t != "Egress" {
			c.errorf(fmt.Sprintf("spec.types[%d]", i), "%q is not Ingress or Egress", quote.Clip(t))
		}
		if seen[t] {
			c.errorf(fmt.Sprintf("spec.types[%d]", i), "%q is listed twice", quote.Clip(t))
		}
		seen[t] = true
	}
	if len(ingress) > 0 && !seen["Ingress"] {
		c.errorf("spec.ingress", "has rules but spec.types does not include Ingress")
	}
	if len(egress) > 0 && !seen["Egress"] {
		c.errorf("spec.egress", "has rules but spec.types does not include Egress")
	}
	c.rules("spec.ingress", ingress)
	c.rules("spec.egress", egress)
}

func (c *checker) rules(field string, rules []Rule) {
	if len(rules) > 1024 {
		c.errorf(field, "has %d rules; at most 1024 are allowed", len(rules))
	}
	for i := range rules {
		c.rule(fmt.Sprintf("%s[%d]", field, i), &rules[i])
	}
}

func (c *checker) rule(field string, r *Rule) {
	if !slices.Contains([]string{"Allow", "Deny", "Log", "Pass"}, r.Action) {
		if r.Action == "" {
			c.errorf(field+".action", "is required (Allow, Deny, Log or Pass)")
		} else {
			c.errorf(field+".action", "%q is not Allow, Deny, Log or Pass", quote.Clip(r.Action))
		}
	}
	version := 0
	if r.IPVersion != nil {
		version = *r.IPVersion
		if version != 4 && version != 6 {
			c.errorf(field+".ipVersion", "%d is not 4 or 6", version)
		}
	}
	if p := r.Protocol; p != nil && (p.Num == 1 && version == 6 || p.Num == 58 && version == 4) {
		c.errorf(field+".protocol", "%s does not match ipVersion %d", p, version)
	}
	c.icmp(field+".icmp", r.ICMP, r.Protocol, version)
	c.icmp(field+".notICMP", r.NotICMP, r.Protocol, version)
	for _, e := range []struct {
		name string
		rule *EntityRule
	}{{".source", &r.Source}, {".destination", &r.Destination}} {
		c.entity(field+e.name, e.rule, r.Protocol, version)
	}
}

func (c *checker) icmp(field string, icmp *ICMP, proto *Protocol, version int) {
	if icmp == nil {
		return
	}
	switch {
	case proto == nil || (proto.Num != 1 && proto.Num != 58):
		c.errorf(field, "needs protocol ICMP or ICMPv6")
	case proto.Num == 1 && version == 6, proto.Num == 58 && version == 4:
		c.errorf(field, "protocol %s does not match ipVersion %d", proto, version)
	}
	if icmp.Type == nil && icmp.Code != nil {
		c.errorf(field+".code", "needs a type")
	}
	if icmp.Type != nil && (*icmp.Type < 0 || *icmp.Type > 254) {
		c.errorf(field+".type", "%d is out of range (0-254)", *icmp.Type)
	}
	if icmp.Code != nil && (*icmp.Code < 0 || *icmp.Code > 255) {
		c.errorf(field+".code", "%d is out of range (0-255)", *icmp.Code)
	}
}

func (c *checker) entity(field string, e *EntityRule, proto *Protocol, version int) {
	for _, nets := range []struct {
		name string
		list []string
	}{{".nets", e.Nets}, {".notNets", e.NotNets}} {
		if len(nets.list) > 256 {
			c.errorf(field+nets.name, "has %d entries; at most 256 are allowed", len(nets.list))
		}
		for i, n := range nets.list {
			f := fmt.Sprintf("%s%s[%d]", field, nets.name, i)
			if p, ok := c.cidr(f, n); ok && version != 0 && ipVersion(p) != version {
				c.errorf(f, "%s is not an IPv%d CIDR but the rule has ipVersion %d", n, version, version)
			}
		}
	}
	c.notGlobal(field+".selector", e.Selector)
	c.notGlobal(field+".notSelector", e.NotSelector)
	if ns := strings.TrimSpace(e.NamespaceSelector); ns != "global()" {
		c.notGlobal(field+".namespaceSelector", ns)
	}
	for i, n := range e.NotNets {
		if p, err := ParseCIDR(n); err == nil && p.Bits() == 0 {
			c.errorf(fmt.Sprintf("%s.notNets[%d]", field, i), "%s matches no address: leave the rule out", n)
		}
	}
	for _, ports := range []struct {
		name string
		list []Port
	}{{".ports", e.Ports}, {".notPorts", e.NotPorts}} {
		if len(ports.list) == 0 {
			continue
		}
		named := !slices.ContainsFunc(ports.list, func(p Port) bool { return p.Name == "" })
		if proto != nil && !proto.HasPorts() || proto == nil && !named {
			c.errorf(field+ports.name, "needs protocol TCP, UDP, SCTP or UDPLite")
		}
		if len(ports.list) > 50 {
			c.errorf(field+ports.name, "has %d entries; at most 50 are allowed", len(ports.list))
		}
	}
}
