package store

import (
	"fmt"
	"maps"
	"net"
	"net/netip"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"sync"

	"calico/internal/quote"
	"calico/store/selector"
)

// InvalidError is a resource that failed validation. Its message names the
// resource and every field that is wrong.
type InvalidError struct {
	ID     ID
	Fields []FieldError
}

// FieldError is one field that is wrong, and why.
type FieldError struct {
	Field string `json:"field"` // spec.cidr
	Msg   string `json:"message"`
}

func (e *InvalidError) Error() string {
	msgs := make([]string, len(e.Fields))
	for i, f := range e.Fields {
		msgs[i] = f.Field + ": " + f.Msg
	}
	return e.ID.String() + ": " + strings.Join(msgs, "; ")
}

// Validate checks r on its own (not against other resources) after filling
// in defaults, as `calico apply` does. It returns an *InvalidError naming
// every bad field.
func Validate(r Resource) error {
	errs := check(r, false)
	if len(errs) == 0 {
		return nil
	}
	return &InvalidError{ID: IDOf(r), Fields: errs}
}

// check validates r after filling in its defaults. fromStore relaxes what
// is refused on apply but read from older data (a BGP password given as
// its value).
func check(r Resource, fromStore bool) []FieldError {
	r.setDefaults()
	c := &checker{fromStore: fromStore}
	t := r.Type()
	if t.APIVersion != APIVersion {
		c.errorf("apiVersion", "must be %s", APIVersion)
	}
	k := KindOf(r)
	if t.Kind != k.Name {
		c.errorf("kind", "must be %s", k.Name)
	}
	if k.Unsupported != "" {
		c.errorf("kind", "%s is not supported here: %s", k.Name, k.Unsupported)
	}
	m := r.Meta()
	if k.Namespaced {
		c.dnsLabel("metadata.namespace", m.Namespace)
	} else if m.Namespace != "" {
		c.errorf("metadata.namespace", "%s is not namespaced", k.Name)
	}
	c.labels("metadata.labels", m.Labels)
	if !fromStore && IsBuiltin(IDOf(r)) {
		c.errorf("metadata.name", "%s is built in (it allows everything) and cannot be written", m.Name)
	}
	r.validate(c)
	c.unsupported("", reflect.ValueOf(r))
	return c.errs
}

type checker struct {
	errs      []FieldError
	fromStore bool
}

func (c *checker) errorf(field, format string, args ...any) {
	c.errs = append(c.errs, FieldError{Field: field, Msg: fmt.Sprintf(format, args...)})
}

// The patterns are compiled on first use, not at every process start: each
// CLI command and CNI call links this package (issue 18).
var (
	dnsLabelRE     = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`) })
	dnsSubdomainRE = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$`) })
	ifaceRE        = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[A-Za-z0-9_.:-]{1,15}$`) })
)

func (c *checker) dnsLabel(field, s string) {
	switch {
	case s == "":
		c.errorf(field, "is required")
	case len(s) > 63:
		c.errorf(field, "%q is %d characters long: at most 63", quote.Clip(s), len(s))
	case !dnsLabelRE().MatchString(s):
		c.errorf(field, "%q must be lower-case letters, digits and '-', starting and ending with a letter or digit", quote.Clip(s))
	}
}

func (c *checker) name(field, s string) {
	switch {
	case s == "":
		c.errorf(field, "is required")
	case len(s) > 253:
		c.errorf(field, "%q is %d characters long: at most 253", quote.Clip(s), len(s))
	case !dnsSubdomainRE().MatchString(s):
		c.errorf(field, "%q must be lower-case letters, digits, '-' and '.', starting and ending with a letter or digit", quote.Clip(s))
	case slices.ContainsFunc(strings.Split(s, "."), func(l string) bool { return !dnsLabelRE().MatchString(l) }):
		c.errorf(field, "%q has a part between dots that is empty or does not start and end with a letter or digit", quote.Clip(s))
	}
}

func (c *checker) labels(field string, labels map[string]string) {
	for _, k := range sortedKeys(labels) {
		if err := selector.ValidateKey(k); err != nil {
			c.errorf(field, "%v", err)
		}
		if err := selector.ValidateValue(labels[k]); err != nil {
			c.errorf(field+"."+k, "%v", err)
		}
	}
}

func (c *checker) selector(field, s string) {
	if _, err := selector.Parse(s); err != nil {
		c.errorf(field, "%v", err)
	}
}

// cidr checks a CIDR and returns it; a bare address is a /32 or /128.
func (c *checker) cidr(field, s string) (netip.Prefix, bool) {
	p, err := ParseCIDR(s)
	if q, err2 := netip.ParsePrefix(s); err != nil && err2 == nil && c.fromStore && !q.Addr().Is4In6() {
		return q.Masked(), true // Calico's tools store host bits; they mean the network
	}
	if err != nil {
		c.errorf(field, "%v", err)
		return netip.Prefix{}, false
	}
	return p, true
}

// ParseCIDR reads a CIDR, or a bare address as a /32 or /128. It refuses a
// CIDR with host bits set, naming the network that was probably meant.
func ParseCIDR(s string) (netip.Prefix, error) {
	if a, err := netip.ParseAddr(s); err == nil && a.Zone() == "" {
		if a.Is4In6() {
			return netip.Prefix{}, fmt.Errorf("%q is an IPv4-mapped IPv6 address; write it as IPv4 (%s)", quote.Clip(s), a.Unmap())
		}
		return netip.PrefixFrom(a, a.BitLen()), nil
	}
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("%q is not a CIDR", quote.Clip(s))
	}
	if p.Addr().Is4In6() {
		return netip.Prefix{}, fmt.Errorf("%q is an IPv4-mapped IPv6 CIDR; write it as IPv4", quote.Clip(s))
	}
	if p.Masked() != p {
		return netip.Prefix{}, fmt.Errorf("%q has host bits set (did you mean %s?)", quote.Clip(s), p.Masked())
	}
	return p, nil
}

func (n *Node) validate(c *checker) {
	c.name("metadata.name", n.Metadata.Name)
	if b := n.Spec.BGP; b != nil {
		if b.IPv4Address != "" {
			if p, err := netip.ParsePrefix(b.IPv4Address); err != nil || !p.Addr().Is4() {
				c.errorf("spec.bgp.ipv4Address", "%q is not an IPv4 address with prefix length (like 172.31.1.11/24)", quote.Clip(b.IPv4Address))
			}
		}
		if b.IPv6Address != "" {
			if p, err := netip.ParsePrefix(b.IPv6Address); err != nil || !p.Addr().Is6() {
				c.errorf("spec.bgp.ipv6Address", "%q is not an IPv6 address with prefix length (like fd00::11/64)", quote.Clip(b.IPv6Address))
			}
		}
		if b.ASNumber != nil && *b.ASNumber == 0 {
			c.errorf("spec.bgp.asNumber", "must not be 0")
		}
		if id := b.RouteReflectorClusterID; id != "" {
			if a, err := netip.ParseAddr(id); err != nil || !a.Is4() {
				c.errorf("spec.bgp.routeReflectorClusterID", "%q must be in IPv4 form (like 224.0.0.1)", quote.Clip(id))
			}
		}
	}
	for i, a := range n.Spec.Addresses {
		if _, err := netip.ParseAddr(strings.Split(a.Address, "/")[0]); err != nil {
			c.errorf(fmt.Sprintf("spec.addresses[%d].address", i), "%q is not an address", quote.Clip(a.Address))
		}
	}
}

func (n *Node) setDefaults() {}

// DefaultBlockSize is the block size of a pool that does not set one.
func DefaultBlockSize(p netip.Prefix) int {
	if p.Addr().Is4() {
		return 26
	}
	return 122
}

var reservedNets = []struct {
	net  netip.Prefix
	what string
}{
	{netip.MustParsePrefix("127.0.0.0/8"), "loopback"},
	{netip.MustParsePrefix("169.254.0.0/16"), "link-local"},
	{netip.MustParsePrefix("224.0.0.0/4"), "multicast"},
	{netip.MustParsePrefix("0.0.0.0/8"), "\"this network\""},
	{netip.MustParsePrefix("::1/128"), "loopback"},
	{netip.MustParsePrefix("fe80::/10"), "link-local"},
	{netip.MustParsePrefix("ff00::/8"), "multicast"},
}

func (p *IPPool) validate(c *checker) {
	c.name("metadata.name", p.Metadata.Name)
	s := &p.Spec
	cidr, ok := c.cidr("spec.cidr", s.CIDR)
	if ok {
		for _, r := range reservedNets {
			if r.net.Overlaps(cidr) {
				c.errorf("spec.cidr", "%s overlaps the %s range %s", cidr, r.what, r.net)
			}
		}
		lo, hi := 20, 32
		if cidr.Addr().Is6() {
			lo, hi = 116, 128
		}
		switch {
		case s.BlockSize < lo || s.BlockSize > hi:
			c.errorf("spec.blockSize", "%d is out of range for an IPv%d pool (%d-%d)", s.BlockSize, ipVersion(cidr), lo, hi)
		case cidr.Bits() > s.BlockSize:
			c.errorf("spec.cidr", "%s is smaller than one block (/%d): use a shorter prefix or a larger blockSize", cidr, s.BlockSize)
		}
	}
	if s.IPIPMode != "Never" {
		c.errorf("spec.ipipMode", "%q is not supported: calico routes without encapsulation (use Never)", quote.Clip(s.IPIPMode))
	}
	if s.VXLANMode != "Never" {
		c.errorf("spec.vxlanMode", "%q is not supported: calico routes without encapsulation (use Never)", quote.Clip(s.VXLANMode))
	}
	c.notGlobal("spec.nodeSelector", s.NodeSelector)
	for i, u := range s.AllowedUses {
		if u != "Workload" && u != "Tunnel" && u != "LoadBalancer" {
			c.errorf(fmt.Sprintf("spec.allowedUses[%d]", i), "%q is not Workload, Tunnel or LoadBalancer", quote.Clip(u))
		}
	}
	if slices.Contains(s.AllowedUses, "LoadBalancer") && len(s.AllowedUses) > 1 {
		c.errorf("spec.allowedUses", "a LoadBalancer pool has no other use")
	}
	if m := s.AssignmentMode; m != "Automatic" && m != "Manual" {
		c.errorf("spec.assignmentMode", "%q is not Automatic or Manual", quote.Clip(m))
	}
}

func (p *IPPool) setDefaults() {
	if p.Spec.BlockSize == 0 {
		if cidr, err := ParseCIDR(p.Spec.CIDR); err == nil {
			p.Spec.BlockSize = DefaultBlockSize(cidr)
		}
	}
	if p.Spec.NodeSelector == "" {
		p.Spec.NodeSelector = "all()"
	}
	if p.Spec.IPIPMode == "" {
		p.Spec.IPIPMode = "Never"
	}
	if p.Spec.VXLANMode == "" {
		p.Spec.VXLANMode = "Never"
	}
	if len(p.Spec.AllowedUses) == 0 {
		p.Spec.AllowedUses = []string{"Workload", "Tunnel"}
	}
	if p.Spec.AssignmentMode == "" {
		p.Spec.AssignmentMode = "Automatic"
	}
}

func ipVersion(p netip.Prefix) int {
	if p.Addr().Is4() {
		return 4
	}
	return 6
}

func (w *WorkloadEndpoint) validate(c *checker) {
	c.name("metadata.name", w.Metadata.Name)
	s := &w.Spec
	c.name("spec.node", s.Node)
	if s.Workload == "" && s.Pod == "" {
		c.errorf("spec.workload", "is required (or spec.pod)")
	}
	if !ifaceRE().MatchString(s.InterfaceName) {
		c.errorf("spec.interfaceName", "%q is not an interface name (1-15 characters)", quote.Clip(s.InterfaceName))
	}
	for i, n := range s.IPNetworks {
		if p, ok := c.cidr(fmt.Sprintf("spec.ipNetworks[%d]", i), n); ok && !p.IsSingleIP() {
			c.errorf(fmt.Sprintf("spec.ipNetworks[%d]", i), "%s must be a single address (/32 or /128)", n)
		}
	}
	for i, gw := range []string{s.IPv4Gateway, s.IPv6Gateway} {
		if a, err := netip.ParseAddr(gw); gw != "" && (err != nil || a.Is4() != (i == 0)) {
			c.errorf([]string{"spec.ipv4Gateway", "spec.ipv6Gateway"}[i], "%q is not an IPv%d address", quote.Clip(gw), []int{4, 6}[i])
		}
	}
	for i, p := range s.Profiles {
		c.name(fmt.Sprintf("spec.profiles[%d]", i), p)
	}
	if s.MAC != "" {
		if _, err := net.ParseMAC(s.MAC); err != nil {
			c.errorf("spec.mac", "%q is not a MAC address", quote.Clip(s.MAC))
		}
	}
	c.endpointPorts(s.NamedPorts())
}

func (w *WorkloadEndpoint) setDefaults() {
	if w.Metadata.Namespace == "" {
		w.Metadata.Namespace = "default"
	}
	// The labels Calico's client stores on every endpoint.
	m := &w.Metadata
	if m.Labels[NamespaceLabel] != m.Namespace || m.Labels[OrchestratorLabel] != w.Spec.Orchestrator {
		m.Labels = maps.Clone(m.Labels)
		if m.Labels == nil {
			m.Labels = map[string]string{}
		}
		m.Labels[NamespaceLabel], m.Labels[OrchestratorLabel] = m.Namespace, w.Spec.Orchestrator
	}
}

// The labels Calico keeps on endpoints.
const (
	NamespaceLabel    = selector.NamespaceLabel
	OrchestratorLabel = "projectcalico.org/orchestrator"
)

// UserLabels are an endpoint's labels without those Calico keeps on it
// (projectcalico.org/…).
func UserLabels(labels map[string]string) map[string]string {
	out := maps.Clone(labels)
	maps.DeleteFunc(out, func(k, _ string) bool { return strings.HasPrefix(k, "projectcalico.org/") })
	return out
}

func (h *HostEndpoint) validate(c *checker) {
	c.name("metadata.name", h.Metadata.Name)
	s := &h.Spec
	c.name("spec.node", s.Node)
	switch {
	case s.InterfaceName == "" && len(s.ExpectedIPs) == 0:
		c.errorf("spec.interfaceName", "give the interface's name, \"*\" for all of the host's interfaces, or expectedIPs to find the interface by its addresses")
	case s.InterfaceName == "":
	case s.InterfaceName == "lo" || strings.HasPrefix(s.InterfaceName, "cali"):
		c.errorf("spec.interfaceName", "%q cannot be a host endpoint: loopback and workload interfaces are never policed as the host's", quote.Clip(s.InterfaceName))
	case s.InterfaceName != "*" && !ifaceRE().MatchString(s.InterfaceName):
		c.errorf("spec.interfaceName", "%q is not an interface name or \"*\"", quote.Clip(s.InterfaceName))
	}
	for i, ip := range s.ExpectedIPs {
		if _, err := netip.ParseAddr(ip); err != nil {
			c.errorf(fmt.Sprintf("spec.expectedIPs[%d]", i), "%q is not an address", quote.Clip(ip))
		}
	}
	for i, p := range s.Profiles {
		c.name(fmt.Sprintf("spec.profiles[%d]", i), p)
	}
	c.endpointPorts(s.Ports)
}

var endpointPortRE = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`) })

// endpointPorts checks the named ports of an endpoint.
func (c *checker) endpointPorts(ports []EndpointPort) {
	seen := map[string]bool{}
	for i, p := range ports {
		f := fmt.Sprintf("spec.ports[%d]", i)
		switch {
		case len(p.Name) > 15 || !endpointPortRE().MatchString(p.Name) || !strings.ContainsFunc(p.Name, func(r rune) bool { return r >= 'a' && r <= 'z' }):
			c.errorf(f+".name", "%q is not a port name (at most 15 lower-case letters, digits and '-', with a letter)", quote.Clip(p.Name))
		case seen[p.Name+"/"+p.Protocol.String()]:
			c.errorf(f+".name", "%q is given twice for %s", p.Name, p.Protocol)
		}
		seen[p.Name+"/"+p.Protocol.String()] = true
		if n := p.Protocol.Num; n != 6 && n != 17 && n != 132 {
			c.errorf(f+".protocol", "%s is not TCP, UDP or SCTP", p.Protocol)
		}
		if p.Port == 0 {
			c.errorf(f+".port", "is required (1-65535)")
		}
	}
}

func (h *HostEndpoint) setDefaults() {}

func (p *Profile) validate(c *checker) {
	c.name("metadata.name", p.Metadata.Name)
	c.labels("spec.labelsToApply", p.Spec.LabelsToApply)
	c.rules("spec.ingress", p.Spec.Ingress)
	c.rules("spec.egress", p.Spec.Egress)
}

func (p *Profile) setDefaults() {}

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

func (p *BGPPeer) validate(c *checker) {
	c.name("metadata.name", p.Metadata.Name)
	s := &p.Spec
	if s.Node != "" && s.NodeSelector != "" {
		c.errorf("spec.node", "give node or nodeSelector, not both")
	}
	if s.NodeSelector != "" {
		c.selector("spec.nodeSelector", s.NodeSelector)
	}
	switch {
	case s.PeerIP == "" && s.PeerSelector == "":
		c.errorf("spec", "give peerIP (with asNumber) or peerSelector")
	case s.PeerIP != "" && s.PeerSelector != "":
		c.errorf("spec.peerIP", "give peerIP or peerSelector, not both")
	case s.PeerIP != "":
		if ap, err := ParsePeerIP(s.PeerIP); err != nil {
			c.errorf("spec.peerIP", "%v", err)
		} else if why := unroutable(ap.Addr()); why != "" {
			c.errorf("spec.peerIP", "%s is %s: a BGP peer needs a unicast address another host can reach", ap.Addr(), why)
		}
		if s.ASNumber == nil || *s.ASNumber == 0 {
			c.errorf("spec.asNumber", "is required with peerIP")
		}
	default:
		c.selector("spec.peerSelector", s.PeerSelector)
	}
	c.password("spec.password", s.Password)
}

var secretKeyRE = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[-._a-zA-Z0-9]+$`) })

// password checks a BGP password. Only a reference to a secret may be
// written: a file on each node (SecretPath), so that no password is in
// the datastore. A password given as its value is still read from data
// an older version wrote.
func (c *checker) password(field string, pw *BGPPassword) {
	switch {
	case pw == nil:
	case pw.SecretKeyRef != nil:
		r := pw.SecretKeyRef
		c.dnsLabel(field+".secretKeyRef.name", r.Name)
		if !secretKeyRE().MatchString(r.Key) || r.Key == "." || r.Key == ".." {
			c.errorf(field+".secretKeyRef.key", "%q is not a secret's key (letters, digits, '-', '_' and '.')", quote.Clip(r.Key))
		}
		if pw.Value != "" {
			c.errorf(field+".value", "give secretKeyRef or value, not both")
		}
	case !c.fromStore:
		c.errorf(field+".value", "a password is not stored in the datastore: write it to %s on every node (mode 0600) and give %s.secretKeyRef {name: <name>, key: <key>}", SecretPath("<name>", "<key>"), field)
	case pw.Value == "":
		c.errorf(field+".value", "is empty")
	case len(pw.Value) > 80:
		c.errorf(field+".value", "is longer than 80 characters (the kernel's TCP MD5 limit)")
	}
}

// Redacted replaces a password's value in what the node shows.
const Redacted = "(redacted: move it to a secretKeyRef)"

// Redact hides the passwords an older version stored as their value, so
// that reading a resource never shows a secret. (Such a resource cannot
// be applied back: a value is refused on apply.)
func Redact(r Resource) {
	var pws []*BGPPassword
	switch r := r.(type) {
	case *BGPPeer:
		pws = append(pws, r.Spec.Password)
	case *BGPConfiguration:
		pws = append(pws, r.Spec.NodeMeshPassword)
	}
	for _, pw := range pws {
		if pw != nil && pw.Value != "" {
			pw.Value = Redacted
		}
	}
}

// SecretsDir holds the secrets a node reads, one directory per secret
// and one file per key, as Kubernetes mounts them.
const SecretsDir = "/etc/calico/secrets"

// SecretPath is the file of a secret's key.
func SecretPath(name, key string) string { return SecretsDir + "/" + name + "/" + key }

func (p *BGPPeer) setDefaults() {}

// unroutable says why an address cannot be a peer's, or "".
func unroutable(a netip.Addr) string {
	a = a.Unmap()
	switch {
	case a.IsUnspecified():
		return "unspecified"
	case a.IsLoopback():
		return "a loopback address"
	case a.IsMulticast():
		return "a multicast address"
	case a.IsLinkLocalUnicast():
		return "link-local"
	case a == netip.AddrFrom4([4]byte{255, 255, 255, 255}):
		return "the broadcast address"
	}
	return ""
}

// ParsePeerIP reads a BGPPeer's "ip" or "ip:port" ("[v6]:port").
func ParsePeerIP(s string) (netip.AddrPort, error) {
	if a, err := netip.ParseAddr(s); err == nil {
		return netip.AddrPortFrom(a, 179), nil
	}
	ap, err := netip.ParseAddrPort(s)
	if err != nil || ap.Port() == 0 {
		return netip.AddrPort{}, fmt.Errorf("%q is not an address or address:port", quote.Clip(s))
	}
	return ap, nil
}

// configName checks the name of a singleton configuration: "default" or
// "node.<node name>".
func (c *checker) configName(name string) {
	if name == "default" {
		return
	}
	node, ok := strings.CutPrefix(name, "node.")
	if !ok {
		c.errorf("metadata.name", "%q must be \"default\" or \"node.<node name>\"", quote.Clip(name))
		return
	}
	c.name("metadata.name", node)
}

var logSeverities = []string{"Debug", "Info", "Warning", "Error", "Fatal"}

func (b *BGPConfiguration) validate(c *checker) {
	c.configName(b.Metadata.Name)
	s := &b.Spec
	if s.LogSeverityScreen != "" && !slices.Contains(logSeverities, s.LogSeverityScreen) {
		c.errorf("spec.logSeverityScreen", "%q is not one of %s", quote.Clip(s.LogSeverityScreen), strings.Join(logSeverities, ", "))
	}
	if s.ListenPort != nil && *s.ListenPort == 0 {
		c.errorf("spec.listenPort", "must not be 0")
	}
	if s.ASNumber != nil && *s.ASNumber == 0 {
		c.errorf("spec.asNumber", "must not be 0")
	}
	c.password("spec.nodeMeshPassword", s.NodeMeshPassword)
	if b.Metadata.Name != "default" && (s.NodeToNodeMeshEnabled != nil || s.ASNumber != nil) {
		c.errorf("spec", "a per-node BGPConfiguration may set only listenPort and logSeverityScreen")
	}
}

func (b *BGPConfiguration) setDefaults() {}

func (f *FelixConfiguration) validate(c *checker) {
	c.configName(f.Metadata.Name)
	s := &f.Spec
	if s.LogSeverityScreen != "" && !slices.Contains(logSeverities, s.LogSeverityScreen) {
		c.errorf("spec.logSeverityScreen", "%q is not one of %s", quote.Clip(s.LogSeverityScreen), strings.Join(logSeverities, ", "))
	}
	if a := s.DefaultEndpointToHostAction; a != "" && a != "Drop" && a != "Return" && a != "Accept" {
		c.errorf("spec.defaultEndpointToHostAction", "%q is not Drop, Return or Accept", quote.Clip(a))
	}
	for _, fs := range []struct {
		name  string
		ports *[]ProtoPort
	}{{"spec.failsafeInboundHostPorts", s.FailsafeInboundHostPorts}, {"spec.failsafeOutboundHostPorts", s.FailsafeOutboundHostPorts}} {
		if fs.ports == nil {
			continue
		}
		for i, pp := range *fs.ports {
			f := fmt.Sprintf("%s[%d]", fs.name, i)
			if p := strings.ToLower(pp.Protocol); p != "tcp" && p != "udp" && p != "sctp" {
				c.errorf(f+".protocol", "%q is not tcp, udp or sctp", quote.Clip(pp.Protocol))
			}
			if pp.Port == 0 {
				c.errorf(f+".port", "is required (1-65535)")
			}
			if pp.Net != "" {
				c.cidr(f+".net", pp.Net)
			}
		}
	}
}

func (f *FelixConfiguration) setDefaults() {}

// notGlobal checks a selector that may not use global(): every selector
// but a rule's namespaceSelector, which may be global() and nothing else.
func (c *checker) notGlobal(field, s string) {
	if s == "" {
		return
	}
	sel, err := selector.Parse(s)
	switch {
	case err != nil:
		c.errorf(field, "%v", err)
	case sel.UsesGlobal():
		c.errorf(field, "global() may only be a rule's whole namespaceSelector")
	}
}
