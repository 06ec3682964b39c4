package nft

import (
	"cmp"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
)

// TableName is the one nftables table this package owns, in family inet.
const TableName = "calico"

// Table is the rendered content of table inet calico: what Render produces
// and what Apply makes the kernel hold. Sets and Chains are sorted by name,
// set elements by key; rules keep their order.
type Table struct {
	Sets   []TableSet
	Chains []Chain

	// dormant is set on a read-back of a table someone made dormant.
	dormant bool
	// owners maps each policy chain to the policy it renders; Render fills
	// it, a read-back leaves it nil.
	owners map[string]policyDir
}

// Chain is one chain of the table.
type Chain struct {
	Name string
	// Hook is nil for a regular chain.
	Hook  *Hook
	Rules []ChainRule
}

// Hook makes a chain a base chain on a netfilter hook.
type Hook struct {
	// Name is "prerouting", "forward", "input", "output" or
	// "postrouting".
	Name string
	// NAT makes it a chain of type nat; otherwise it is of type filter.
	NAT bool
	// Priority 0 is nft's "filter", 100 its "srcnat", -150 "mangle" and
	// -300 "raw".
	Priority int32
	// Accept is the chain policy: accept when true, drop otherwise.
	Accept bool
}

// ChainRule is one kernel rule. Its statements are private: they render to
// nft-like text (String) and to netlink expressions (Apply).
type ChainRule struct {
	// Comment is the rule's user data as the kernel stores it (nft shows it
	// as a comment): an optional identity label such as "rule 3" and a hash
	// of the rule's text, so a read-back tells whether the kernel's rule is
	// the one we want without parsing its expressions.
	Comment string
	stmts   []stmt
}

// SetType is the key (and data) type of a named set or map.
type SetType uint8

// The set types the table uses.
const (
	setUnknown SetType = iota
	// SetIPv4 is a set of IPv4 addresses (type ipv4_addr).
	SetIPv4
	// SetIPv6 is a set of IPv6 addresses (type ipv6_addr).
	SetIPv6
	// SetIfaceIPv4 is a set of interface name and IPv4 address pairs.
	SetIfaceIPv4
	// SetIfaceIPv6 is a set of interface name and IPv6 address pairs.
	SetIfaceIPv6
	// MapIfaceVerdict is a verdict map keyed by interface name.
	MapIfaceVerdict
	// SetIPv4Net is an interval set of IPv4 addresses (type ipv4_addr,
	// flags interval): the ranges of a Set with Nets.
	SetIPv4Net
	// SetIPv6Net is SetIPv4Net for IPv6.
	SetIPv6Net
	// SetIPv4Port is a set of IPv4 address, IP protocol and port triples
	// (a PortSet's).
	SetIPv4Port
	// SetIPv6Port is SetIPv4Port for IPv6.
	SetIPv6Port
	// SetIface is a set of interface names.
	SetIface
	// SetIfaceMAC is a set of interface name and MAC address pairs.
	SetIfaceMAC
)

func (t SetType) String() string {
	switch t {
	case SetIPv4:
		return "ipv4_addr"
	case SetIPv6:
		return "ipv6_addr"
	case SetIfaceIPv4:
		return "ifname . ipv4_addr"
	case SetIfaceIPv6:
		return "ifname . ipv6_addr"
	case MapIfaceVerdict:
		return "ifname : verdict"
	case SetIPv4Net:
		return "ipv4_addr; flags interval"
	case SetIPv6Net:
		return "ipv6_addr; flags interval"
	case SetIPv4Port:
		return "ipv4_addr . inet_proto . inet_service"
	case SetIPv6Port:
		return "ipv6_addr . inet_proto . inet_service"
	case SetIface:
		return "ifname"
	case SetIfaceMAC:
		return "ifname . ether_addr"
	}
	return "unknown"
}

// interval tells whether the set holds ranges (Element.End).
func (t SetType) interval() bool { return t == SetIPv4Net || t == SetIPv6Net }

// TableSet is a named set or verdict map of the table.
type TableSet struct {
	Name  string
	Type  SetType
	Elems []Element
}

// Element is one set or map element.
type Element struct {
	// Key is the key as the kernel stores it: addresses in network byte
	// order, interface names zero-padded to IFNAMSIZ. In an interval set
	// it is the first address of a range.
	Key string
	// End, in an interval set, is the address after the range's last,
	// which the kernel holds as an element of its own flagged as an
	// interval end; "" when the range reaches the top of the address
	// space.
	End string
	// Goto is the chain a verdict map element jumps to (goto).
	Goto string
	// endOnly marks an interval end that the read-back found without
	// its start (someone deleted that by hand): the diff deletes it.
	endOnly bool
}

const ifNameSize = 16

// ifaceKey is an interface name as a set key.
func ifaceKey(name string) string {
	return name + strings.Repeat("\x00", ifNameSize-len(name))
}

func (s *TableSet) isMap() bool { return s.Type == MapIfaceVerdict }

// elemString formats one element in nft syntax.
func (s *TableSet) elemString(e Element) string {
	k := e.Key
	iface := func() string {
		if len(k) < ifNameSize {
			return fmt.Sprintf("%x", k)
		}
		n, _, _ := strings.Cut(k[:ifNameSize], "\x00")
		k = k[ifNameSize:]
		return fmt.Sprintf("%q", n)
	}
	addr := func() string {
		a, ok := netip.AddrFromSlice([]byte(k))
		if !ok {
			return fmt.Sprintf("%x", k)
		}
		return a.String()
	}
	switch s.Type {
	case SetIPv4, SetIPv6:
		return addr()
	case SetIfaceIPv4, SetIfaceIPv6:
		i := iface()
		return i + " . " + addr()
	case MapIfaceVerdict:
		return iface() + " : goto " + e.Goto
	case SetIPv4Net, SetIPv6Net:
		return rangeString(e)
	case SetIPv4Port, SetIPv6Port:
		if n := len(k) - 8; n == 4 || n == 16 {
			a, _ := netip.AddrFromSlice([]byte(k[:n]))
			return fmt.Sprintf("%s . %s . %d", a, protoName(k[n]), uint16(k[n+4])<<8|uint16(k[n+5]))
		}
	case SetIface:
		return iface()
	case SetIfaceMAC:
		i := iface()
		if len(k) < 6 {
			return i + " . " + fmt.Sprintf("%x", k)
		}
		return i + " . " + net.HardwareAddr(k[:6]).String()
	}
	return fmt.Sprintf("%x", k)
}

// rangeString formats an interval element as nft does: an address, a
// prefix, or first-last.
func rangeString(e Element) string {
	lo, ok := netip.AddrFromSlice([]byte(e.Key))
	if !ok {
		return fmt.Sprintf("%x", e.Key)
	}
	if e.endOnly {
		return "end " + lo.String()
	}
	hi := maxAddr(lo)
	if e.End != "" {
		end, ok := netip.AddrFromSlice([]byte(e.End))
		if !ok {
			return fmt.Sprintf("%s-%x", lo, e.End)
		}
		hi = end.Prev()
	}
	if lo == hi {
		return lo.String()
	}
	for bits := lo.BitLen(); bits >= 0; bits-- {
		p := netip.PrefixFrom(lo, bits)
		if p.Masked().Addr() != lo {
			break
		}
		if lastAddr(p) == hi {
			return p.String()
		}
	}
	return lo.String() + "-" + hi.String()
}

// maxAddr is the highest address of a's family.
func maxAddr(a netip.Addr) netip.Addr {
	if a.Is4() {
		return netip.AddrFrom4([4]byte{255, 255, 255, 255})
	}
	var b [16]byte
	for i := range b {
		b[i] = 0xff
	}
	return netip.AddrFrom16(b)
}

// String is the rule in nft syntax, with its identity label (not the
// content hash) as comment.
func (r ChainRule) String() string {
	b := appendStmts(nil, r.stmts)
	if l := r.label(); l != "" {
		b = strconv.AppendQuote(append(b, " comment "...), l)
	}
	return string(b)
}

// label is the identity part of the comment.
func (r ChainRule) label() string {
	l, _, _ := strings.Cut(r.Comment, "#")
	return strings.TrimSpace(l)
}

// String dumps the table in nft-like syntax. Golden tests compare it.
func (t *Table) String() string {
	var b strings.Builder
	b.WriteString("table inet " + TableName + " {\n")
	for i := range t.Sets {
		s := &t.Sets[i]
		kind := "set"
		if s.isMap() {
			kind = "map"
		}
		typ, flags, _ := strings.Cut(s.Type.String(), "; ")
		fmt.Fprintf(&b, "\t%s %s {\n\t\ttype %s\n", kind, s.Name, typ)
		if flags != "" {
			b.WriteString("\t\t" + flags + "\n")
		}
		if len(s.Elems) > 0 {
			b.WriteString("\t\telements = {\n")
			for _, e := range s.Elems {
				b.WriteString("\t\t\t" + s.elemString(e) + "\n")
			}
			b.WriteString("\t\t}\n")
		}
		b.WriteString("\t}\n")
	}
	for _, c := range t.Chains {
		fmt.Fprintf(&b, "\tchain %s {\n", c.Name)
		if h := c.Hook; h != nil {
			fmt.Fprintf(&b, "\t\t%s\n", h)
		}
		for _, r := range c.Rules {
			b.WriteString("\t\t" + r.String() + "\n")
		}
		b.WriteString("\t}\n")
	}
	b.WriteString("}\n")
	return b.String()
}

func (h *Hook) String() string {
	typ, prio := "filter", "filter"
	switch {
	case h.NAT && h.Priority == prioSrcNAT:
		typ, prio = "nat", "srcnat"
	case h.NAT:
		typ, prio = "nat", fmt.Sprintf("%d", h.Priority)
	case h.Priority == prioRaw:
		prio = "raw"
	case h.Priority == prioMangle:
		prio = "mangle"
	case h.Priority != 0:
		prio = fmt.Sprintf("filter %+d", h.Priority)
	}
	policy := "drop"
	if h.Accept {
		policy = "accept"
	}
	return fmt.Sprintf("type %s hook %s priority %s; policy %s;", typ, h.Name, prio, policy)
}

// prioSrcNAT is nft's "srcnat" priority.
const prioSrcNAT = 100

// summary is what a read-back can see of the table: sets with their
// elements, chains with their hooks and rule comments. Tests compare the
// kernel's summary with the desired one.
func (t *Table) summary() string {
	var b strings.Builder
	if t.dormant {
		b.WriteString("dormant\n")
	}
	for i := range t.Sets {
		s := &t.Sets[i]
		fmt.Fprintf(&b, "set %s %s\n", s.Name, s.Type)
		for _, e := range s.Elems {
			b.WriteString("\t" + s.elemString(e) + "\n")
		}
	}
	for _, c := range t.Chains {
		fmt.Fprintf(&b, "chain %s", c.Name)
		if c.Hook != nil {
			fmt.Fprintf(&b, " %s", c.Hook)
		}
		b.WriteString("\n")
		for _, r := range c.Rules {
			b.WriteString("\t" + r.Comment + "\n")
		}
	}
	return b.String()
}

// Stats counts what one Apply changed.
type Stats struct {
	// Recreated is set when the whole table was deleted and rebuilt.
	Recreated                  bool
	SetsAdded, SetsDeleted     int
	ElemsAdded, ElemsDeleted   int
	ChainsAdded, ChainsDeleted int
	// ChainsFlushed counts chains emptied to be refilled or deleted.
	ChainsFlushed int
	RulesAdded    int
}

func (s Stats) changed() bool { return s != Stats{} }

// appendStmts appends the statements' text, separated by spaces.
func appendStmts(b []byte, stmts []stmt) []byte {
	for i, s := range stmts {
		if i > 0 {
			b = append(b, ' ')
		}
		b = s.appendText(b)
	}
	return b
}

func sortChains(cs []Chain) {
	slices.SortFunc(cs, func(a, b Chain) int { return cmp.Compare(a.Name, b.Name) })
}
