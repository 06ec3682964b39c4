package nft

import (
	"net"
	"strings"

	"github.com/google/nftables/expr"
)

// Workload interfaces that something else made (a VM's tap, named by
// libvirt or QEMU) keep their own names, which need not start with
// IfacePrefix. The base chains send them to the dispatch chains through
// the set wl-ifaces: every rule that tests for the prefix gets a twin that
// tests for membership of the set. An endpoint with a MAC may send only
// from it: wl-from-dispatch drops what comes in through an interface of
// wl-mac-ifaces from a source MAC that is not the interface's in
// wl-src-mac. These sets and rules exist only while some endpoint needs
// them, so the table of a host without such endpoints is what it was.
const (
	setIfaces    = "wl-ifaces"
	setMACIfaces = "wl-mac-ifaces"
	setSrcMAC    = "wl-src-mac"
)

// renderAttached adds the sets and rules of endpoints named without the
// prefix or with a MAC; it is called once the other chains are complete.
func renderAttached(eps []Endpoint, sets []TableSet, chains []Chain) ([]TableSet, []Chain) {
	var named, withMAC, macs []Element
	for _, ep := range eps {
		if !strings.HasPrefix(ep.Iface, IfacePrefix) {
			named = append(named, Element{Key: ifaceKey(ep.Iface)})
		}
		if len(ep.MAC) == 6 {
			withMAC = append(withMAC, Element{Key: ifaceKey(ep.Iface)})
			macs = append(macs, Element{Key: macKey(ep.Iface, ep.MAC)})
		}
	}
	if len(named) > 0 {
		sets = append(sets, TableSet{Name: setIfaces, Type: SetIface, Elems: sortElems(named)})
		for i := range chains {
			chains[i].Rules = withTwins(chains[i].Rules)
		}
	}
	if len(withMAC) > 0 {
		sets = append(sets,
			TableSet{Name: setMACIfaces, Type: SetIface, Elems: sortElems(withMAC)},
			TableSet{Name: setSrcMAC, Type: SetIfaceMAC, Elems: sortElems(macs)})
		for i := range chains {
			if chains[i].Name == chainFromDispatch {
				check := newRule("anti-spoofing", ifaceSet{set: setMACIfaces}, ifaceMACSet{set: setSrcMAC}, counter{}, vDrop)
				chains[i].Rules = append([]ChainRule{check}, chains[i].Rules...)
			}
		}
	}
	return sets, chains
}

// withTwins follows every rule that starts by testing for the workload
// interface prefix with the same rule testing for membership of
// wl-ifaces instead.
func withTwins(rules []ChainRule) []ChainRule {
	var out []ChainRule
	for _, r := range rules {
		out = append(out, r)
		if len(r.stmts) == 0 {
			continue
		}
		if p, ok := r.stmts[0].(ifacePrefix); ok && p.prefix == IfacePrefix {
			stmts := append([]stmt{ifaceSet{out: p.out, set: setIfaces}}, r.stmts[1:]...)
			out = append(out, newRule(r.label(), stmts...))
		}
	}
	return out
}

// macKey is the key of an (interface, MAC) pair: the MAC is padded to a
// whole register, as in any concatenation.
func macKey(iface string, mac net.HardwareAddr) string {
	return ifaceKey(iface) + string(mac) + "\x00\x00"
}

// ifaceSet: iifname|oifname @set.
type ifaceSet struct {
	out bool
	set string
}

func (s ifaceSet) appendText(b []byte) []byte {
	n, _ := ifnameKey(s.out)
	return append(b, n+" @"+s.set...)
}

func (s ifaceSet) exprs(anonSets) []expr.Any {
	_, k := ifnameKey(s.out)
	return []expr.Any{
		&expr.Meta{Key: k, Register: reg1},
		&expr.Lookup{SourceRegister: reg1, SetName: s.set},
	}
}

// ifaceMACSet: iifname . ether saddr != @set (anti-spoofing by MAC).
type ifaceMACSet struct{ set string }

func (s ifaceMACSet) appendText(b []byte) []byte {
	return append(b, "iifname . ether saddr != @"+s.set...)
}

func (s ifaceMACSet) exprs(anonSets) []expr.Any {
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyIIFNAME, Register: reg1},
		// The source MAC: 6 bytes at offset 6 of the link-layer header.
		&expr.Payload{DestRegister: regConcat, Base: expr.PayloadBaseLLHeader, Offset: 6, Len: 6},
		&expr.Lookup{SourceRegister: reg1, SetName: s.set, Invert: true},
	}
}
