package nft

import (
	"errors"
	"fmt"
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
// and lists longer than 500 entries. The errors are joined.
func (rs Ruleset) Validate() error {
	var errs []error
	sets := map[string]bool{}
	for _, s := range rs.Sets {
		if !validName(s.Name) {
			errs = append(errs, fmt.Errorf("set %q: name must be non-empty [A-Za-z0-9._-]", s.Name))
		}
		if sets[s.Name] {
			errs = append(errs, fmt.Errorf("set %s: duplicate name", s.Name))
		}
		sets[s.Name] = true
	}
	policies := map[string]bool{}
	for _, p := range rs.Policies {
		if !validName(p.Name) {
			errs = append(errs, fmt.Errorf("policy %q: name must be non-empty [A-Za-z0-9._-]", p.Name))
		}
		if policies[p.Name] {
			errs = append(errs, fmt.Errorf("policy %s: duplicate name", p.Name))
		}
		policies[p.Name] = true
		for _, d := range []Direction{Ingress, Egress} {
			rules := p.Ingress
			if d == Egress {
				rules = p.Egress
			}
			for i, r := range rules {
				if err := validateRule(r, sets); err != nil {
					errs = append(errs, fmt.Errorf("policy %s: %s rule %d: %w", p.Name, d, i, err))
				}
			}
		}
	}
	ifaces := map[string]bool{}
	for _, ep := range rs.Workloads {
		if !strings.HasPrefix(ep.Iface, IfacePrefix) || len(ep.Iface) >= ifNameSize || strings.ContainsRune(ep.Iface, 0) {
			errs = append(errs, fmt.Errorf("endpoint %q: interface must start with %q and be at most %d bytes", ep.Iface, IfacePrefix, ifNameSize-1))
		}
		if ifaces[ep.Iface] {
			errs = append(errs, fmt.Errorf("endpoint %s: duplicate interface", ep.Iface))
		}
		ifaces[ep.Iface] = true
		for _, a := range ep.Addrs {
			if !a.IsValid() {
				errs = append(errs, fmt.Errorf("endpoint %s: invalid address", ep.Iface))
			}
		}
		for _, n := range pathNames(ep.Ingress, ep.Egress) {
			if !policies[n] {
				errs = append(errs, fmt.Errorf("endpoint %s: unknown policy %s", ep.Iface, n))
			}
		}
	}
	hosts := map[string]bool{}
	for _, h := range rs.HostEndpoints {
		if h.Iface != AllInterfaces && (h.Iface == "" || strings.HasPrefix(h.Iface, IfacePrefix) || h.Iface == loopbackName ||
			len(h.Iface) >= ifNameSize || strings.ContainsRune(h.Iface, 0)) {
			errs = append(errs, fmt.Errorf("host endpoint %q: interface must be %q or a name of at most %d bytes, not %s or starting with %q",
				h.Iface, AllInterfaces, ifNameSize-1, loopbackName, IfacePrefix))
		}
		if hosts[h.Iface] {
			errs = append(errs, fmt.Errorf("host endpoint %s: duplicate interface", h.Iface))
		}
		hosts[h.Iface] = true
		for _, n := range pathNames(h.Ingress, h.Egress) {
			if !policies[n] {
				errs = append(errs, fmt.Errorf("host endpoint %s: unknown policy %s", h.Iface, n))
			}
		}
	}
	for _, pp := range slices.Concat(rs.FailsafeIn, rs.FailsafeOut) {
		if pp.Protocol != 6 && pp.Protocol != 17 && pp.Protocol != 132 {
			errs = append(errs, fmt.Errorf("failsafe port %d: protocol %d is not TCP, UDP or SCTP", pp.Port, pp.Protocol))
		}
		if pp.Net.IsValid() && pp.Net.Addr().Is4In6() {
			errs = append(errs, fmt.Errorf("failsafe port %d: invalid net %s", pp.Port, pp.Net))
		}
	}
	for _, nets := range [][]netip.Prefix{rs.NATOutgoing, rs.NATExcept} {
		for _, err := range validateNets(nets) {
			errs = append(errs, fmt.Errorf("NAT outgoing: %w", err))
		}
	}
	if rs.EndpointToHost > Return {
		errs = append(errs, fmt.Errorf("endpoint to host: unknown verdict %d", rs.EndpointToHost))
	}
	return errors.Join(errs...)
}

func pathNames(a, b Path) []string {
	out := make([]string, 0, len(a.Policies)+len(a.Profiles)+len(b.Policies)+len(b.Profiles))
	out = append(out, a.Policies...)
	out = append(out, a.Profiles...)
	out = append(out, b.Policies...)
	return append(out, b.Profiles...)
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

func validateRule(r Rule, sets map[string]bool) error {
	var errs []error
	if r.Action < Allow || r.Action > Log {
		errs = append(errs, fmt.Errorf("unknown action %d", r.Action))
	}
	if r.IPVersion != 0 && r.IPVersion != 4 && r.IPVersion != 6 {
		errs = append(errs, fmt.Errorf("ip version %d is not 4 or 6", r.IPVersion))
	}
	hasPorts := false
	for _, m := range []Match{r.Src, r.Dst} {
		for _, s := range []string{m.Set, m.NotSet} {
			if s != "" && !sets[s] {
				errs = append(errs, fmt.Errorf("unknown set %s", s))
			}
		}
		for _, nets := range [][]netip.Prefix{m.Nets, m.NotNets} {
			errs = append(errs, validateNets(nets)...)
		}
		for _, ps := range [][]PortRange{m.Ports, m.NotPorts} {
			if len(ps) > maxListLen {
				errs = append(errs, fmt.Errorf("%d port ranges, more than %d", len(ps), maxListLen))
			}
			hasPorts = hasPorts || len(ps) > 0
			for _, p := range ps {
				if p.First > p.Last {
					errs = append(errs, fmt.Errorf("port range %d-%d is reversed", p.First, p.Last))
				}
			}
		}
	}
	if hasPorts && (r.Protocol == nil || !portProtocols[*r.Protocol]) {
		errs = append(errs, errors.New("ports need protocol TCP, UDP, SCTP or UDPLite"))
	}
	if (r.ICMP != nil || r.NotICMP != nil) && (r.Protocol == nil || (*r.Protocol != 1 && *r.Protocol != 58)) {
		errs = append(errs, errors.New("an ICMP type needs protocol ICMP or ICMPv6"))
	}
	return errors.Join(errs...)
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
