package nft

import (
	"errors"
	"fmt"
	"iter"
	"net/netip"
	"slices"
	"strings"
)

// maxListLen bounds the nets and ports of one rule field: each list
// becomes an anonymous set that travels in one netlink attribute, which
// holds at most 64 KiB. Larger groups of addresses belong in a Set.
const maxListLen = 500

// Validate reports everything in rs that Render cannot turn into a
// faithful table: unknown or duplicate names, interfaces outside
// IfacePrefix, ports without a port protocol, ICMP matches without ICMP,
// lists longer than 500 entries, named ports of other protocols than
// TCP, UDP and SCTP, untracked paths for all interfaces and profiles in
// pre-DNAT or untracked paths. The errors are joined.
func (rs Ruleset) Validate() error { return rs.validate(nil, nil, nil) }

// validate is Validate that, given the checked policies of the previous
// call (last), checks the rules of a policy version found there only for
// the sets they name, and records in next the versions whose rules are
// valid; given validated, the paths of the same Workloads when last
// found valid, it checks only that their policies are still there.
func (rs Ruleset) validate(last, next map[versionKey]checkedPolicy, validated []pathUse) error {
	v := validation{last: last, next: next}
	names := setNames{addrs: v.sets(rs.Sets), ports: v.portSets(rs.PortSets)}
	policies := v.policies(rs.Policies, names)
	// The same Workloads as last time need only their paths' policies
	// checked; when one is missing, the whole check names the endpoints.
	if validated == nil || slices.ContainsFunc(validated, func(u pathUse) bool { return !allIn(all(u.p), policies) }) {
		v.workloads(rs.Workloads, policies)
	}
	v.hostEndpoints(rs.HostEndpoints, policies)
	for _, pp := range slices.Concat(rs.FailsafeIn, rs.FailsafeOut) {
		if pp.Protocol != 6 && pp.Protocol != 17 && pp.Protocol != 132 {
			v.add("failsafe port %d: protocol %d is not TCP, UDP or SCTP", pp.Port, pp.Protocol)
		}
		if pp.Net.IsValid() && pp.Net.Addr().Is4In6() {
			v.add("failsafe port %d: invalid net %s", pp.Port, pp.Net)
		}
	}
	for _, nets := range [][]netip.Prefix{rs.NATOutgoing, rs.NATExcept} {
		for _, err := range validateNets(nets) {
			v.add("NAT outgoing: %w", err)
		}
	}
	if rs.EndpointToHost > Return {
		v.add("endpoint to host: unknown verdict %d", rs.EndpointToHost)
	}
	return errors.Join(v.errs...)
}

// validation collects what Validate finds.
type validation struct {
	errs       []error
	last, next map[versionKey]checkedPolicy
	// paths are the endpoint paths whose policies are known, by their
	// slices: the calculation gives endpoints that share a path the same
	// slices, and nothing changes them while Validate runs.
	paths map[pathID]bool
}

// versionKey is one version of a policy (Policy.Version).
type versionKey struct{ name, version string }

// checkedPolicy is a policy version whose rules are valid wherever the
// sets and port sets they name exist.
type checkedPolicy struct{ sets, portSets []string }

// pathID identifies a Path by its slices' first elements and lengths:
// within one pass over a Ruleset, which nothing changes meanwhile, paths
// with the same id are the same path.
type pathID struct {
	tiers     *Tier
	nTiers    int
	profiles  *string
	nProfiles int
}

func idOf(p Path) pathID {
	id := pathID{nTiers: len(p.Tiers), nProfiles: len(p.Profiles)}
	if len(p.Tiers) > 0 {
		id.tiers = &p.Tiers[0]
	}
	if len(p.Profiles) > 0 {
		id.profiles = &p.Profiles[0]
	}
	return id
}

func (v *validation) add(format string, args ...any) {
	v.errs = append(v.errs, fmt.Errorf(format, args...))
}

// unique checks that a name is valid and unseen, and records it.
func (v *validation) unique(what, name string, seen map[string]bool) {
	if !validName(name) {
		v.add("%s %q: name must be non-empty [A-Za-z0-9._-]", what, name)
	}
	if seen[name] {
		v.add("%s %s: duplicate name", what, name)
	}
	seen[name] = true
}

// setNames are the names of the Sets and PortSets, which rules refer
// to.
type setNames struct{ addrs, ports map[string]bool }

func (v *validation) sets(sets []Set) map[string]bool {
	names := map[string]bool{}
	for _, s := range sets {
		v.unique("set", s.Name, names)
		for _, p := range s.Nets {
			if !p.IsValid() || p.Addr().Is4In6() {
				v.add("set %s: invalid net %s", s.Name, p)
			}
		}
	}
	return names
}

func (v *validation) portSets(sets []PortSet) map[string]bool {
	names := map[string]bool{}
	for _, s := range sets {
		v.unique("port set", s.Name, names)
		for _, m := range s.Members {
			if !m.Addr.IsValid() {
				v.add("port set %s: invalid address", s.Name)
			}
			if m.Protocol != 6 && m.Protocol != 17 && m.Protocol != 132 {
				v.add("port set %s: protocol %d of port %d is not TCP, UDP or SCTP", s.Name, m.Protocol, m.Port)
			}
		}
	}
	return names
}

func (v *validation) policies(ps []Policy, sets setNames) map[string]bool {
	names := make(map[string]bool, len(ps))
	for _, p := range ps {
		v.unique("policy", p.Name, names)
		k := versionKey{p.Name, p.Version}
		if c, ok := v.last[k]; ok && p.Version != "" && c.valid(sets) {
			v.next[k] = c
			continue
		}
		failed := false
		for _, d := range []Direction{Ingress, Egress} {
			rules := p.Ingress
			if d == Egress {
				rules = p.Egress
			}
			for i, r := range rules {
				if err := validateRule(r, sets); err != nil {
					v.add("policy %s: %s rule %d: %w", p.Name, d, i, err)
					failed = true
				}
			}
		}
		if v.next != nil && p.Version != "" && !failed {
			v.next[k] = checked(p)
		}
	}
	return names
}

// checked records the sets a valid policy's rules name.
func checked(p Policy) checkedPolicy {
	var c checkedPolicy
	for _, r := range slices.Concat(p.Ingress, p.Egress) {
		for _, m := range []Match{r.Src, r.Dst} {
			for _, s := range []string{m.Set, m.NotSet} {
				if s != "" {
					c.sets = append(c.sets, s)
				}
			}
			for _, s := range []string{m.PortSet, m.NotPortSet} {
				if s != "" {
					c.portSets = append(c.portSets, s)
				}
			}
		}
	}
	return c
}

// valid tells whether every set the policy names exists.
func (c checkedPolicy) valid(sets setNames) bool {
	for _, s := range c.sets {
		if !sets.addrs[s] {
			return false
		}
	}
	for _, s := range c.portSets {
		if !sets.ports[s] {
			return false
		}
	}
	return true
}

func (v *validation) workloads(eps []Endpoint, policies map[string]bool) {
	ifaces := map[string]bool{}
	for _, ep := range eps {
		if ep.Iface == "" || ep.Iface == loopbackName || ep.Iface == AllInterfaces || len(ep.Iface) >= ifNameSize || strings.ContainsRune(ep.Iface, 0) {
			v.add("endpoint %q: interface must be a name of at most %d bytes, not %s", ep.Iface, ifNameSize-1, loopbackName)
		}
		if len(ep.MAC) != 0 && len(ep.MAC) != 6 {
			v.add("endpoint %s: MAC %s is not an Ethernet address", ep.Iface, ep.MAC)
		}
		if ifaces[ep.Iface] {
			v.add("endpoint %s: duplicate interface", ep.Iface)
		}
		ifaces[ep.Iface] = true
		for _, a := range ep.Addrs {
			if !a.IsValid() {
				v.add("endpoint %s: invalid address", ep.Iface)
			}
		}
		for _, p := range []Path{ep.Ingress, ep.Egress} {
			id := idOf(p)
			if v.paths[id] {
				continue
			}
			if v.known("endpoint", ep.Iface, all(p), policies) {
				if v.paths == nil {
					v.paths = map[pathID]bool{}
				}
				v.paths[id] = true
			}
		}
	}
}

func (v *validation) hostEndpoints(hs []HostEndpoint, policies map[string]bool) {
	seen := map[string]bool{}
	for _, h := range hs {
		if h.Iface == AllInterfaces && len(h.UntrackedIngress.Names())+len(h.UntrackedEgress.Names()) > 0 {
			v.add("host endpoint %s: untracked policy is not for all interfaces", h.Iface)
		}
		if len(h.PreDNAT.Profiles)+len(h.UntrackedIngress.Profiles)+len(h.UntrackedEgress.Profiles) > 0 {
			v.add("host endpoint %s: pre-DNAT and untracked paths have no profiles", h.Iface)
		}
		if h.Iface != AllInterfaces && (h.Iface == "" || strings.HasPrefix(h.Iface, IfacePrefix) || h.Iface == loopbackName ||
			len(h.Iface) >= ifNameSize || strings.ContainsRune(h.Iface, 0)) {
			v.add("host endpoint %q: interface must be %q or a name of at most %d bytes, not %s or starting with %q",
				h.Iface, AllInterfaces, ifNameSize-1, loopbackName, IfacePrefix)
		}
		if seen[h.Iface] {
			v.add("host endpoint %s: duplicate interface", h.Iface)
		}
		seen[h.Iface] = true
		v.known("host endpoint", h.Iface, all(h.Ingress, h.Egress, h.ForwardIngress, h.ForwardEgress,
			h.PreDNAT, h.UntrackedIngress, h.UntrackedEgress), policies)
	}
}

// allIn reports whether every name is in set.
func allIn(names iter.Seq[string], set map[string]bool) bool {
	for n := range names {
		if !set[n] {
			return false
		}
	}
	return true
}

// known checks that an endpoint's paths name only known policies, and
// says whether they do.
func (v *validation) known(what, iface string, names iter.Seq[string], policies map[string]bool) bool {
	ok := true
	for n := range names {
		if !policies[n] {
			v.add("%s %s: unknown policy %s", what, iface, n)
			ok = false
		}
	}
	return ok
}

func validName(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range s {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '.', c == '_', c == '-':
		default:
			return false
		}
	}
	return true
}

var portProtocols = map[uint8]bool{6: true, 17: true, 132: true, 136: true}

func validateRule(r Rule, sets setNames) error {
	var errs []error
	if r.Action < Allow || r.Action > Log {
		errs = append(errs, fmt.Errorf("unknown action %d", r.Action))
	}
	if r.IPVersion != 0 && r.IPVersion != 4 && r.IPVersion != 6 {
		errs = append(errs, fmt.Errorf("ip version %d is not 4 or 6", r.IPVersion))
	}
	hasPorts := false
	for _, m := range []Match{r.Src, r.Dst} {
		errs = append(errs, validateMatch(m, sets)...)
		hasPorts = hasPorts || len(m.Ports)+len(m.NotPorts) > 0
	}
	if hasPorts && (r.Protocol == nil || !portProtocols[*r.Protocol]) {
		errs = append(errs, errors.New("ports need protocol TCP, UDP, SCTP or UDPLite"))
	}
	if (r.ICMP != nil || r.NotICMP != nil) && (r.Protocol == nil || (*r.Protocol != 1 && *r.Protocol != 58)) {
		errs = append(errs, errors.New("an ICMP type needs protocol ICMP or ICMPv6"))
	}
	return errors.Join(errs...)
}

// validateMatch checks one side of a rule: sets, port sets, nets and
// ports.
func validateMatch(m Match, sets setNames) []error {
	var errs []error
	for _, s := range []string{m.Set, m.NotSet} {
		if s != "" && !sets.addrs[s] {
			errs = append(errs, fmt.Errorf("unknown set %s", s))
		}
	}
	for _, s := range []string{m.PortSet, m.NotPortSet} {
		if s != "" && !sets.ports[s] {
			errs = append(errs, fmt.Errorf("unknown port set %s", s))
		}
	}
	for _, nets := range [][]netip.Prefix{m.Nets, m.NotNets} {
		errs = append(errs, validateNets(nets)...)
	}
	for _, ps := range [][]PortRange{m.Ports, m.NotPorts} {
		if len(ps) > maxListLen {
			errs = append(errs, fmt.Errorf("%d port ranges, more than %d", len(ps), maxListLen))
		}
		for _, p := range ps {
			if p.First > p.Last {
				errs = append(errs, fmt.Errorf("port range %d-%d is reversed", p.First, p.Last))
			}
		}
	}
	return errs
}

// validateNets checks a list of nets that becomes one rule field.
func validateNets(nets []netip.Prefix) []error {
	var errs []error
	if len(nets) > maxListLen {
		errs = append(errs, fmt.Errorf("%d nets, more than %d", len(nets), maxListLen))
	}
	for _, p := range nets {
		if !p.IsValid() || p.Addr().Is4In6() {
			errs = append(errs, fmt.Errorf("invalid net %s", p))
		}
	}
	return errs
}
