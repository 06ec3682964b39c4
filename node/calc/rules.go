package calc

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"calico/nft"
	"calico/store"
	"calico/store/selector"
)

// compileRules compiles one direction of a policy or profile. A rule the
// node cannot enforce exactly as written is made deny-safe: an Allow or
// Log matches nothing; a Deny or Pass becomes a Deny without the
// constraints it cannot evaluate, so that it denies at least what it
// names. (A Pass cannot simply match nothing: the policies after it in
// its tier could then allow what it would have sent on to a tier that
// denies.)
func (c *calculation) compileRules(p policy, dir string, rules []store.Rule) []nft.Rule {
	out := make([]nft.Rule, 0, len(rules))
	for i, r := range rules {
		known := p.problems.rules[ruleRef{dir, i}]
		rc := ruleCompile{c: c, ns: p.ns}
		rule := rc.compile(r, known)
		if len(rc.bad) > 0 {
			rule = c.failClosed(p, dir, i, r, rc.bad)
		}
		out = append(out, rule)
	}
	return out
}

// failClosed is the deny-safe form of a rule with problems.
func (c *calculation) failClosed(p policy, dir string, i int, r store.Rule, bad []store.FieldError) nft.Rule {
	what := fmt.Sprintf("%s: spec.%s[%d]", p.id, dir, i)
	var fields []string
	for _, b := range bad {
		f := what
		if b.Field != "" {
			f += "." + b.Field
		}
		fields = append(fields, f+": "+b.Msg)
	}
	if r.Action == "Allow" || r.Action == "Log" {
		c.problems = append(c.problems, strings.Join(fields, "; ")+"; the rule matches nothing")
		return nft.Rule{Action: actions[r.Action], Src: nft.Match{Set: c.nothing()}}
	}
	w := r
	for _, b := range bad {
		dropField(&w, b.Field)
	}
	fixup(&w)
	w.Action = "Deny"
	rc := ruleCompile{c: c, ns: p.ns}
	rule := rc.compile(w, nil)
	if len(rc.bad) > 0 { // cannot happen: what failed was dropped; deny every packet
		rule = nft.Rule{Action: nft.Deny}
	}
	c.problems = append(c.problems, strings.Join(fields, "; ")+"; the rule denies without "+strings.Join(dropped(bad), ", "))
	return rule
}

// dropped names the constraints a fail-closed Deny leaves out.
func dropped(bad []store.FieldError) []string {
	var out []string
	for _, b := range bad {
		f, _, _ := strings.Cut(b.Field, "[")
		if f == "" || f == "action" {
			f = "nothing"
		}
		if !slices.Contains(out, f) {
			out = append(out, f)
		}
	}
	return out
}

// dropField removes the constraint at field (relative to the rule) from
// r. Every constraint it removes narrows what the rule matches, positive
// or negated, so a Deny without it denies more.
func dropField(r *store.Rule, field string) {
	field, _, _ = strings.Cut(field, "[")
	end, sub, _ := strings.Cut(field, ".")
	switch end {
	case "ipVersion":
		r.IPVersion = nil
	case "protocol":
		r.Protocol = nil
	case "notProtocol":
		r.NotProtocol = nil
	case "icmp":
		r.ICMP = nil
	case "notICMP":
		r.NotICMP = nil
	case "source":
		dropEntity(&r.Source, sub)
	case "destination":
		dropEntity(&r.Destination, sub)
	}
}

func dropEntity(e *store.EntityRule, field string) {
	field, _, _ = strings.Cut(field, ".")
	switch field {
	case "nets":
		e.Nets = nil
	case "notNets":
		e.NotNets = nil
	case "selector":
		e.Selector = ""
	case "notSelector":
		e.NotSelector = ""
	case "namespaceSelector":
		e.NamespaceSelector = ""
	case "ports":
		e.Ports = nil
	case "notPorts":
		e.NotPorts = nil
	}
}

// fixup removes what a rule without some of its constraints can no
// longer have: ports without a port protocol, ICMP fields without ICMP,
// an IP version its nets or protocol contradict.
func fixup(r *store.Rule) {
	ports := r.Protocol != nil && r.Protocol.HasPorts()
	for _, e := range []*store.EntityRule{&r.Source, &r.Destination} {
		if !ports {
			e.Ports = slices.DeleteFunc(e.Ports, func(p store.Port) bool { return p.Name == "" })
			e.NotPorts = slices.DeleteFunc(e.NotPorts, func(p store.Port) bool { return p.Name == "" })
		}
	}
	if r.Protocol == nil || (r.Protocol.Num != 1 && r.Protocol.Num != 58) {
		r.ICMP, r.NotICMP = nil, nil
	}
}

// ruleCompile compiles one rule, collecting what it cannot evaluate.
type ruleCompile struct {
	c   *calculation
	ns  string // a NetworkPolicy's namespace; "" for global ones
	bad []store.FieldError
}

func (rc *ruleCompile) fail(field, msg string) {
	rc.bad = append(rc.bad, store.FieldError{Field: field, Msg: msg})
}

func (rc *ruleCompile) compile(r store.Rule, known []store.FieldError) nft.Rule {
	rc.bad = append(rc.bad, known...)
	action, ok := actions[r.Action]
	if !ok {
		rc.fail("action", fmt.Sprintf("%q is not Allow, Deny, Log or Pass", r.Action))
		action = nft.Deny
	}
	out := nft.Rule{Action: action}
	if r.IPVersion != nil {
		if v := *r.IPVersion; v == 4 || v == 6 {
			out.IPVersion = v
		} else {
			rc.fail("ipVersion", fmt.Sprintf("%d is not 4 or 6", v))
		}
	}
	if r.Protocol != nil {
		out.Protocol = &r.Protocol.Num
	}
	if r.NotProtocol != nil {
		out.NotProtocol = &r.NotProtocol.Num
	}
	out.ICMP, out.NotICMP = icmp(r.ICMP), icmp(r.NotICMP)
	out.Src = rc.entity("source", r.Source, r.Protocol)
	out.Dst = rc.entity("destination", r.Destination, r.Protocol)
	return out
}

func icmp(i *store.ICMP) *nft.ICMP {
	if i == nil || i.Type == nil {
		return nil
	}
	out := &nft.ICMP{Type: uint8(*i.Type)}
	if i.Code != nil {
		code := uint8(*i.Code)
		out.Code = &code
	}
	return out
}

func (rc *ruleCompile) entity(end string, e store.EntityRule, proto *store.Protocol) nft.Match {
	var m nft.Match
	c := rc.c
	nsSel, nsOK := rc.namespaceSelector(end, e.NamespaceSelector)
	if e.Selector != "" || e.NamespaceSelector != "" {
		sel, ok := rc.selector(end+".selector", e.Selector)
		if ok && nsOK {
			m.Set = rc.set(end+".selector", sel, nsSel)
		}
	}
	if e.NotSelector != "" {
		if sel, ok := rc.selector(end+".notSelector", e.NotSelector); ok && nsOK {
			m.NotSet = rc.set(end+".notSelector", sel, nsSel)
		}
	}
	m.Nets = rc.prefixes(end+".nets", e.Nets)
	m.NotNets = rc.prefixes(end+".notNets", e.NotNets)
	m.Ports, m.PortSet = rc.ports(end+".ports", e, e.Ports, proto, nsSel)
	m.NotPorts, m.NotPortSet = rc.ports(end+".notPorts", e, e.NotPorts, proto, nsSel)
	_ = c
	return m
}

// nsSelector is how a rule limits its selectors to namespaces.
type nsSelector struct {
	sel    *selector.Selector // nil: no namespaceSelector
	global bool               // global(): only what has no namespace
	ns     string             // without a namespaceSelector, a NetworkPolicy's own
}

func (rc *ruleCompile) namespaceSelector(end, s string) (nsSelector, bool) {
	switch {
	case strings.TrimSpace(s) == "global()":
		return nsSelector{global: true}, true
	case s != "":
		sel, ok := rc.selector(end+".namespaceSelector", s)
		if ok && sel.UsesGlobal() {
			rc.fail(end+".namespaceSelector", "global() may only be the whole namespaceSelector")
			ok = false
		}
		return nsSelector{sel: sel}, ok
	}
	return nsSelector{ns: rc.ns}, true
}

func (rc *ruleCompile) selector(field, s string) (*selector.Selector, bool) {
	sel, err := rc.c.parse(s)
	if err != nil {
		rc.fail(field, err.Error())
		return nil, false
	}
	if field != "" && !strings.HasSuffix(field, "namespaceSelector") && sel.UsesGlobal() {
		rc.fail(field, "global() may only be a rule's whole namespaceSelector")
		return nil, false
	}
	return sel, true
}

// set names the address set of the endpoints and network sets that sel
// picks in the namespaces ns allows. A set that picks a network set the
// node cannot read whole is a problem of the rule.
func (rc *ruleCompile) set(field string, sel *selector.Selector, ns nsSelector) string {
	spec := &setSpec{sel: sel, nsSel: ns.sel, global: ns.global, ns: ns.ns}
	if bad := rc.c.brokenNetSet(spec); bad != "" {
		rc.fail(field, "selects "+bad+", which cannot be used as written")
	}
	return rc.c.addSet(spec)
}

// prefixes parses a rule's nets leniently (see parseNet); one that does
// not parse is a problem of the rule.
func (rc *ruleCompile) prefixes(field string, nets []string) []netip.Prefix {
	var out []netip.Prefix
	for _, n := range nets {
		p, ok := parseNet(n)
		if !ok {
			rc.fail(field, fmt.Sprintf("%q is not a CIDR", n))
			continue
		}
		out = append(out, p)
	}
	return out
}

// ports splits a rule's ports into numeric ranges and the port set of
// its named ports: the named ports of the endpoints its selector picks
// (all endpoints without one), with the rule's protocol if it has one.
// As in Calico, a port in either matches (nft.Match.PortSet); in notPorts
// a port in neither.
func (rc *ruleCompile) ports(field string, e store.EntityRule, ports []store.Port, proto *store.Protocol, ns nsSelector) ([]nft.PortRange, string) {
	var ranges []nft.PortRange
	var names []string
	for _, p := range ports {
		if p.Name != "" {
			names = append(names, p.Name)
		} else {
			ranges = append(ranges, nft.PortRange{First: p.First, Last: p.Last})
		}
	}
	if len(names) == 0 {
		return ranges, ""
	}
	sel, ok := rc.selector("", e.Selector)
	if !ok {
		return ranges, "" // reported as the selector's problem
	}
	var num uint8
	if proto != nil {
		num = proto.Num
	}
	return ranges, rc.c.addPortSet(&portSetSpec{setSpec: setSpec{sel: sel, nsSel: ns.sel, global: ns.global, ns: ns.ns}, names: names, proto: num})
}
