package syscheck

import (
	"fmt"
	"runtime"
	"strings"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// throwaway makes a new network namespace and returns its descriptor
// (the caller closes it), without moving the caller into it.
func throwaway() (netns.NsHandle, error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	orig, err := netns.Get()
	if err != nil {
		return 0, err
	}
	defer orig.Close()
	ns, err := netns.New()
	if err != nil {
		return 0, err
	}
	if err := netns.Set(orig); err != nil {
		ns.Close()
		return 0, err
	}
	return ns, nil
}

// feature is one nftables feature the firewall uses, tried alone.
type feature struct {
	name string
	try  func(c *nftables.Conn, t *nftables.Table, ch *nftables.Chain) error
}

var features = []feature{
	{"counters", func(c *nftables.Conn, t *nftables.Table, ch *nftables.Chain) error {
		c.AddRule(&nftables.Rule{Table: t, Chain: ch, Exprs: []expr.Any{&expr.Counter{}}})
		return nil
	}},
	{"conntrack", func(c *nftables.Conn, t *nftables.Table, ch *nftables.Chain) error {
		c.AddRule(&nftables.Rule{Table: t, Chain: ch, Exprs: []expr.Any{&expr.Ct{Register: 1, Key: expr.CtKeySTATE}}})
		return nil
	}},
	{"sets with intervals", func(c *nftables.Conn, t *nftables.Table, _ *nftables.Chain) error {
		s := &nftables.Set{Table: t, Name: "nets", KeyType: nftables.TypeIPAddr, Interval: true}
		return c.AddSet(s, []nftables.SetElement{{Key: []byte{10, 0, 0, 0}}, {Key: []byte{10, 0, 1, 0}, IntervalEnd: true}})
	}},
	{"verdict maps", func(c *nftables.Conn, t *nftables.Table, ch *nftables.Chain) error {
		s := &nftables.Set{Table: t, Name: "dispatch", KeyType: nftables.TypeIFName, DataType: nftables.TypeVerdict, IsMap: true}
		return c.AddSet(s, []nftables.SetElement{{Key: ifname("cali0"), VerdictData: &expr.Verdict{Kind: expr.VerdictGoto, Chain: ch.Name}}})
	}},
	{"concatenations", func(c *nftables.Conn, t *nftables.Table, _ *nftables.Chain) error {
		s := &nftables.Set{Table: t, Name: "ports", KeyType: nftables.MustConcatSetType(nftables.TypeIPAddr, nftables.TypeInetService), Concatenation: true}
		return c.AddSet(s, []nftables.SetElement{{Key: append([]byte{10, 0, 0, 1}, binaryutil.BigEndian.PutUint16(80)[0], binaryutil.BigEndian.PutUint16(80)[1], 0, 0)}})
	}},
	{"fib", func(c *nftables.Conn, t *nftables.Table, _ *nftables.Chain) error {
		in := c.AddChain(&nftables.Chain{Table: t, Name: "in", Type: nftables.ChainTypeFilter, Hooknum: nftables.ChainHookInput, Priority: nftables.ChainPriorityFilter})
		c.AddRule(&nftables.Rule{Table: t, Chain: in, Exprs: []expr.Any{
			&expr.Fib{Register: 1, FlagSADDR: true, FlagIIF: true, ResultOIF: true},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{0, 0, 0, 0}},
		}})
		return nil
	}},
	{"masquerade", func(c *nftables.Conn, t *nftables.Table, _ *nftables.Chain) error {
		nat := c.AddChain(&nftables.Chain{Table: t, Name: "nat", Type: nftables.ChainTypeNAT, Hooknum: nftables.ChainHookPostrouting, Priority: nftables.ChainPriorityNATSource})
		c.AddRule(&nftables.Rule{Table: t, Chain: nat, Exprs: []expr.Any{&expr.Masq{}}})
		return nil
	}},
}

func ifname(s string) []byte {
	b := make([]byte, unix.IFNAMSIZ)
	copy(b, s)
	return b
}

// nftFeatures tries each feature of nftables the firewall uses in a
// throwaway network namespace (the host's ruleset is not touched), and
// the link types calico may use later.
func nftFeatures() []Result {
	ns, err := throwaway()
	if err != nil {
		return []Result{res(Fail, "nftables", "making a throwaway network namespace to try nftables in: "+err.Error()+" (checksystem needs root)")}
	}
	defer ns.Close()
	c, err := nftables.New(nftables.WithNetNSFd(int(ns)))
	if err != nil {
		return []Result{res(Fail, "nftables", "opening nftables: "+err.Error())}
	}
	var ok, missing []string
	for _, f := range features {
		t := c.AddTable(&nftables.Table{Family: nftables.TableFamilyINet, Name: "calico-check"})
		ch := c.AddChain(&nftables.Chain{Table: t, Name: "c"})
		err := f.try(c, t, ch)
		if err == nil {
			err = c.Flush()
		}
		c.DelTable(t)
		c.Flush()
		if err != nil {
			missing = append(missing, fmt.Sprintf("%s (%v)", f.name, err))
		} else {
			ok = append(ok, f.name)
		}
	}
	out := []Result{}
	if len(missing) > 0 {
		out = append(out, res(Fail, "nftables", "the kernel refused "+strings.Join(missing, ", ")+": the firewall needs them; load nf_tables and its modules (nft_ct, nft_fib_inet, nft_masq) or use a newer kernel"))
	}
	if len(ok) > 0 {
		out = append(out, res(OK, "nftables", strings.Join(ok, ", ")))
	}
	return append(out, links(ns)...)
}

// links tries the link types calico uses (veth) and those it may use
// later (VXLAN, IPIP, WireGuard): a missing one it does not use yet is a
// warning.
func links(ns netns.NsHandle) []Result {
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		return []Result{res(Fail, "netlink", "in a throwaway namespace: "+err.Error())}
	}
	defer h.Close()
	var out []Result
	for _, l := range []struct {
		name, use string
		link      netlink.Link
	}{
		{"veth", "", &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "chk0"}, PeerName: "chk1"}},
		{"vxlan", "not used by calico yet", &netlink.Vxlan{LinkAttrs: netlink.LinkAttrs{Name: "chk2"}, VxlanId: 1}},
		{"ipip", "not used by calico yet", &netlink.Iptun{LinkAttrs: netlink.LinkAttrs{Name: "chk3"}}},
		{"wireguard", "not used by calico yet", &netlink.GenericLink{LinkAttrs: netlink.LinkAttrs{Name: "chk4"}, LinkType: "wireguard"}},
	} {
		err := h.LinkAdd(l.link)
		switch {
		case err == nil:
			h.LinkDel(l.link)
			out = append(out, res(OK, "link type "+l.name, "available"))
		case l.use == "":
			out = append(out, res(Fail, "link type "+l.name, "the kernel refused it ("+err.Error()+"): workloads are wired with veth pairs"))
		default:
			r := res(Warn, "link type "+l.name, "not available ("+err.Error()+"); "+l.use)
			r.Optional = true
			out = append(out, r)
		}
	}
	return out
}

// conflicts lists the base chains of other tables in this network
// namespace that hook where ours do (forward, input, output) at the
// same priority: their verdicts apply to the same packets, in an order
// nobody chose, so a drop there drops what calico allows.
func conflicts() []Result {
	c, err := nftables.New()
	if err != nil {
		return []Result{res(Warn, "other firewalls", "cannot read nftables: "+err.Error())}
	}
	chains, err := c.ListChains()
	if err != nil {
		return []Result{res(Warn, "other firewalls", "cannot list nftables chains: "+err.Error())}
	}
	var found []string
	for _, ch := range chains {
		if ch.Hooknum == nil || ch.Priority == nil || ch.Table == nil || ch.Table.Name == "calico" {
			continue
		}
		hook := hookName(*ch.Hooknum)
		if hook == "" || *ch.Priority != *nftables.ChainPriorityFilter || ch.Type != nftables.ChainTypeFilter {
			continue
		}
		found = append(found, fmt.Sprintf("%s %s chain %s (%s, priority 0)", family(ch.Table.Family), ch.Table.Name, ch.Name, hook))
	}
	if len(found) == 0 {
		return []Result{res(OK, "other firewalls", "no other table hooks forward, input or output at filter priority")}
	}
	return []Result{res(Warn, "other firewalls", "hooked where calico's table is: "+strings.Join(found, "; ")+
		": their verdicts apply to the same packets (a drop there drops what calico allows); make sure they accept calico's traffic (iptables-nft and firewalld make such chains)")}
}

func hookName(h nftables.ChainHook) string {
	switch h {
	case *nftables.ChainHookForward:
		return "forward"
	case *nftables.ChainHookInput:
		return "input"
	case *nftables.ChainHookOutput:
		return "output"
	}
	return ""
}

func family(f nftables.TableFamily) string {
	switch f {
	case nftables.TableFamilyIPv4:
		return "ip"
	case nftables.TableFamilyIPv6:
		return "ip6"
	case nftables.TableFamilyINet:
		return "inet"
	case nftables.TableFamilyBridge:
		return "bridge"
	}
	return fmt.Sprint(f)
}
