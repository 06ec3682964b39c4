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

// The names' shapes are checked by hand, not with regular expressions: a
// fresh node checks every endpoint of the cluster, and the expressions
// were a tenth of decoding one. TestNameShapes holds them to the
// expressions in their comments.

// dnsLabelShape: ^[a-z0-9]([-a-z0-9]*[a-z0-9])?$
func dnsLabelShape(s string) bool { return dnsShape(s, false) }

// dnsSubdomainShape: ^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$
func dnsSubdomainShape(s string) bool { return dnsShape(s, true) }

func dnsShape(s string, dots bool) bool {
	if s == "" || !lowerAlnum(s[0]) || !lowerAlnum(s[len(s)-1]) {
		return false
	}
	for i := 1; i < len(s)-1; i++ {
		if b := s[i]; !lowerAlnum(b) && b != '-' && (!dots || b != '.') {
			return false
		}
	}
	return true
}

func lowerAlnum(b byte) bool { return 'a' <= b && b <= 'z' || '0' <= b && b <= '9' }

// ifaceShape: ^[A-Za-z0-9_.:-]{1,15}$
func ifaceShape(s string) bool {
	if s == "" || len(s) > 15 {
		return false
	}
	for i := range len(s) {
		if b := s[i]; !lowerAlnum(b) && !('A' <= b && b <= 'Z') && !strings.ContainsRune("_.:-", rune(b)) {
			return false
		}
	}
	return true
}

func (c *checker) dnsLabel(field, s string) {
	switch {
	case s == "":
		c.errorf(field, "is required")
	case len(s) > 63:
		c.errorf(field, "%q is %d characters long: at most 63", quote.Clip(s), len(s))
	case !dnsLabelShape(s):
		c.errorf(field, "%q must be lower-case letters, digits and '-', starting and ending with a letter or digit", quote.Clip(s))
	}
}

func (c *checker) name(field, s string) {
	switch {
	case s == "":
		c.errorf(field, "is required")
	case len(s) > 253:
		c.errorf(field, "%q is %d characters long: at most 253", quote.Clip(s), len(s))
	case !dnsSubdomainShape(s):
		c.errorf(field, "%q must be lower-case letters, digits, '-' and '.', starting and ending with a letter or digit", quote.Clip(s))
	case slices.ContainsFunc(strings.Split(s, "."), func(l string) bool { return !dnsLabelShape(l) }):
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
	if !ifaceShape(s.InterfaceName) {
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
	case s.InterfaceName != "*" && !ifaceShape(s.InterfaceName):
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
