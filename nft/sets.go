package nft

import (
	"cmp"
	"net/netip"
	"slices"
)

// A Set is one kernel set per family. While it has only Members it is a
// hash set of addresses, <name>-v4 and <name>-v6; a Set with Nets is an
// interval set of ranges, <name>-n4 and <name>-n6, holding its members
// and nets merged (the kernel refuses overlapping intervals). The two
// kinds have different names rather than one name and two types, so
// that a Set gaining its first net is an ordinary change: the new sets
// are added, the chains of the policies that refer to it are refilled,
// and the old sets are deleted, all in one transaction. Every Set is not
// an interval set because a lookup in one costs a packet far more
// (DESIGN.md has the numbers). A PortSet is <name>-p4 and <name>-p6,
// hash sets of address . protocol . port.
//
// A family with no elements has no kernel set: a lookup in an empty set
// matches nothing, so the kernel rule of that family of a rule that
// needs the set to match is left out, and a rule that needs an address
// not in it loses only that test (policyRules). In a cluster of IPv4
// workloads that is every -v6 set and a third of the policy rules: the
// kernel's load of a whole table costs about 2 us per expression. A
// family gaining its first element is then a change like a Set gaining
// its first net.

// setKinds says, of each Set and PortSet by name, what its kernel sets
// are.
type setKinds struct {
	sets, ports map[string]setKind
}

// setKind is whether a Set has nets and which families have elements.
type setKind uint8

const (
	kindNets setKind = 1 << iota // interval sets
	kindHas4
	kindHas6
)

func (k setKind) has(fam family) bool {
	if fam == 6 {
		return k&kindHas6 != 0
	}
	return k&kindHas4 != 0
}

func kindOf(nets bool, e [2][]Element) setKind {
	var k setKind
	if nets {
		k |= kindNets
	}
	if len(e[0]) > 0 {
		k |= kindHas4
	}
	if len(e[1]) > 0 {
		k |= kindHas6
	}
	return k
}

// of is the kind of a Set or PortSet a policy refers to.
func (k setKinds) of(ref setRef) setKind {
	if ref.port {
		return k.ports[ref.name]
	}
	return k.sets[ref.name]
}

// name names the kernel set holding one family of a Set.
func (k setKinds) name(set string, fam family) string {
	nets := k.sets[set]&kindNets != 0
	switch {
	case nets && fam == 6:
		return objName(set, "-n6")
	case nets:
		return objName(set, "-n4")
	case fam == 6:
		return objName(set, "-v6")
	}
	return objName(set, "-v4")
}

// portSetName names the kernel set holding one family of a PortSet.
func portSetName(name string, fam family) string {
	if fam == 6 {
		return objName(name, "-p6")
	}
	return objName(name, "-p4")
}

// sets renders the Sets and PortSets, each family that has elements, and
// says what it rendered.
func (r *renderer) sets(rs Ruleset) ([]TableSet, setKinds) {
	out := make([]TableSet, 0, 2*(len(rs.Sets)+len(rs.PortSets)))
	kinds := setKinds{sets: make(map[string]setKind, len(rs.Sets)), ports: make(map[string]setKind, len(rs.PortSets))}
	add := func(name4, name6 string, typ4, typ6 SetType, e [2][]Element) {
		if len(e[0]) > 0 {
			out = append(out, TableSet{Name: name4, Type: typ4, Elems: e[0]})
		}
		if len(e[1]) > 0 {
			out = append(out, TableSet{Name: name6, Type: typ6, Elems: e[1]})
		}
	}
	for _, s := range rs.Sets {
		typ4, typ6 := SetIPv4, SetIPv6
		render := func() [2][]Element {
			v4, v6 := addrElems(s.Members)
			return [2][]Element{v4, v6}
		}
		nets := len(s.Nets) > 0
		if nets {
			typ4, typ6 = SetIPv4Net, SetIPv6Net
			render = func() [2][]Element {
				v4, v6 := netElems(s.Members, s.Nets)
				return [2][]Element{v4, v6}
			}
		}
		e := r.elems(setKey{name: s.Name, version: s.Version}, render)
		kinds.sets[s.Name] = kindOf(nets, e)
		add(kinds.name(s.Name, 4), kinds.name(s.Name, 6), typ4, typ6, e)
	}
	for _, ps := range rs.PortSets {
		e := r.elems(setKey{port: true, name: ps.Name, version: ps.Version}, func() [2][]Element {
			v4, v6 := portElems(ps.Members)
			return [2][]Element{v4, v6}
		})
		kinds.ports[ps.Name] = kindOf(false, e)
		add(portSetName(ps.Name, 4), portSetName(ps.Name, 6), SetIPv4Port, SetIPv6Port, e)
	}
	return out, kinds
}

// elems is render's result, remembered by version (none: every time).
func (r *renderer) elems(k setKey, render func() [2][]Element) [2][]Element {
	if k.version == "" {
		return render()
	}
	e, ok := r.last.sets[k]
	if !ok {
		e = render()
	}
	r.next.sets[k] = e
	return e
}

// addrElems splits addresses by family into sorted, unique set elements.
// The keys of each family share one backing string, so a set of 100,000
// costs a handful of allocations.
func addrElems(members []netip.Addr) (v4, v6 []Element) {
	n4 := 0
	for _, a := range members {
		if a.Unmap().Is4() {
			n4++
		}
	}
	a4 := make([]netip.Addr, 0, n4)
	a6 := make([]netip.Addr, 0, len(members)-n4)
	for _, a := range members {
		a = a.Unmap().WithZone("")
		if a.Is4() {
			a4 = append(a4, a)
		} else if a.Is6() {
			a6 = append(a6, a)
		}
	}
	return keyElems(a4, 4), keyElems(a6, 16)
}

func keyElems(as []netip.Addr, size int) []Element {
	if len(as) == 0 {
		return nil
	}
	if !slices.IsSortedFunc(as, netip.Addr.Compare) {
		slices.SortFunc(as, netip.Addr.Compare)
	}
	as = slices.Compact(as)
	buf := make([]byte, 0, len(as)*size)
	for _, a := range as {
		if size == 4 {
			b := a.As4()
			buf = append(buf, b[:]...)
		} else {
			b := a.As16()
			buf = append(buf, b[:]...)
		}
	}
	keys := string(buf)
	out := make([]Element, len(as))
	for i := range as {
		out[i] = Element{Key: keys[i*size : (i+1)*size]}
	}
	return out
}

// netElems is the interval set elements of members and nets: per
// family, the ranges they cover, overlapping and adjacent ones merged.
func netElems(members []netip.Addr, nets []netip.Prefix) (v4, v6 []Element) {
	n4 := 0
	for _, a := range members {
		if a.Unmap().Is4() {
			n4++
		}
	}
	r4 := make([]addrRange, 0, n4+len(nets))
	r6 := make([]addrRange, 0, len(members)-n4+len(nets))
	for _, a := range members {
		a = a.Unmap().WithZone("")
		if a.Is4() {
			r4 = append(r4, addrRange{a, a})
		} else if a.Is6() {
			r6 = append(r6, addrRange{a, a})
		}
	}
	r4 = append(r4, prefixRanges(netsOf(nets, 4))...)
	r6 = append(r6, prefixRanges(netsOf(nets, 6))...)
	return rangeElems(mergeRanges(r4), 4), rangeElems(mergeRanges(r6), 16)
}

// rangeElems is ranges of addresses of size bytes as elements, their
// keys sharing one backing string.
func rangeElems(rs []addrRange, size int) []Element {
	if len(rs) == 0 {
		return nil
	}
	buf := make([]byte, 0, 2*size*len(rs))
	top := make([]bool, len(rs)) // the range reaches the top: no end
	var zero [16]byte
	for i, r := range rs {
		buf = appendAddr(buf, r.lo)
		if next := r.hi.Next(); next.IsValid() {
			buf = appendAddr(buf, next)
		} else {
			top[i], buf = true, append(buf, zero[:size]...)
		}
	}
	keys := string(buf)
	out := make([]Element, len(rs))
	for i := range rs {
		k := keys[2*i*size : 2*(i+1)*size]
		out[i].Key = k[:size]
		if !top[i] {
			out[i].End = k[size:]
		}
	}
	return out
}

// appendAddr appends a's bytes in network order.
func appendAddr(b []byte, a netip.Addr) []byte {
	if a.Is4() {
		v := a.As4()
		return append(b, v[:]...)
	}
	v := a.As16()
	return append(b, v[:]...)
}

// addrRange is the addresses lo..hi.
type addrRange struct{ lo, hi netip.Addr }

// prefixRanges is the range of each CIDR.
func prefixRanges(cidrs []netip.Prefix) []addrRange {
	rs := make([]addrRange, 0, len(cidrs))
	for _, p := range cidrs {
		lo := p.Masked().Addr()
		hi := lo
		if !p.IsSingleIP() {
			hi = lastAddr(p)
		}
		rs = append(rs, addrRange{lo, hi})
	}
	return rs
}

// mergeRanges sorts ranges of one family and joins those that overlap or
// touch, in place.
func mergeRanges(rs []addrRange) []addrRange {
	byLo := func(a, b addrRange) int { return cmp.Or(a.lo.Compare(b.lo), a.hi.Compare(b.hi)) }
	if !slices.IsSortedFunc(rs, byLo) {
		slices.SortFunc(rs, byLo)
	}
	out := rs[:0]
	for _, r := range rs {
		if n := len(out); n > 0 {
			last := &out[n-1]
			if next := last.hi.Next(); !next.IsValid() || r.lo.Compare(next) <= 0 {
				if r.hi.Compare(last.hi) > 0 {
					last.hi = r.hi
				}
				continue
			}
		}
		out = append(out, r)
	}
	return out
}

// portElems splits named ports by family into sorted, unique elements of
// the concatenation address . protocol . port, each field padded to four
// bytes as the kernel's registers hold them.
func portElems(ms []NamedPort) (v4, v6 []Element) {
	for _, m := range ms {
		a := m.Addr.Unmap().WithZone("")
		if !a.IsValid() {
			continue
		}
		k := append(a.AsSlice(), m.Protocol, 0, 0, 0, byte(m.Port>>8), byte(m.Port), 0, 0)
		if a.Is4() {
			v4 = append(v4, Element{Key: string(k)})
		} else {
			v6 = append(v6, Element{Key: string(k)})
		}
	}
	return sortElems(v4), sortElems(v6)
}

func sortElems(es []Element) []Element {
	slices.SortFunc(es, func(a, b Element) int { return cmp.Compare(a.Key, b.Key) })
	return slices.CompactFunc(es, func(a, b Element) bool { return a.Key == b.Key })
}
