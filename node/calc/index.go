package calc

import (
	"fmt"
	"hash/maphash"
	"maps"
	"net/netip"
	"slices"
	"strings"

	"calico/nft"
	"calico/store"
)

// index files the endpoints and network sets that selectors can pick
// under their groups, and keeps the members of the sets that rules refer
// to. Compute builds one afresh. A Calculator keeps its index from call to
// call and updates it by the workloads that changed (a new value or a new
// revision), so that a change to one endpoint among a fleet's costs the
// groups and sets it touches, not the fleet. What labels and groups also
// depend on (the profiles' labelsToApply, host endpoints, network sets)
// changing builds it afresh.
type index struct {
	// base names what the index was built from besides the workloads
	// (baseOf); "" in a fresh calculation.
	base    string
	entries map[*store.WorkloadEndpoint]*entry
	groups  map[string]*group
	// byAddr are the workloads that claim each address; local this
	// host's (base names the host); flawed those with problems.
	byAddr map[netip.Addr][]*store.WorkloadEndpoint
	local  map[*store.WorkloadEndpoint]bool
	flawed map[*store.WorkloadEndpoint]bool
	// broken are the network sets the node cannot use as written;
	// problems those found filing host endpoints and network sets.
	broken   []*group
	problems []string
	// sets are the members of the sets and port sets the last call used,
	// by name; dirty the keys of the groups changed since.
	sets  map[string]*members
	dirty map[string]bool
	pass  uint64
	// last is the last call's list of workloads (a copy).
	last []*store.WorkloadEndpoint
	// localGen counts the changes that can change this host's endpoints
	// as the calculation lists them: a local workload filed or removed,
	// or one that claims an address a local one claims (a conflict).
	localGen uint64
}

// entry is a workload in the index.
type entry struct {
	workload
	rv   string // its ResourceVersion (or, without one, version's hash)
	pass uint64 // the last call that found it in the input
	pos  int    // in its group's eps
}

// group is the endpoints and network sets, local or not, that selectors
// cannot tell apart: the same labels in the same namespace. Selectors are
// evaluated once per group, not once per endpoint: replicas share their
// labels.
type group struct {
	key    string // in index.groups
	labels map[string]string
	ns     string // "" for host endpoints and global network sets
	// Of host endpoints and network sets, fixed while the index lives.
	addrs []netip.Addr
	nets  []netip.Prefix
	ports map[string][]nft.NamedPort // named ports, by name
	// eps are its workloads, in the order they came (a removed one's
	// place taken by the last), so that a set's members come out in the
	// same order for the same input.
	eps       []*entry
	addrCount int // of addrs and eps
}

// members are a set's or port set's content.
type members struct {
	picked  map[string]bool // the keys of the groups the set picks
	addrs   []netip.Addr    // in the order fill gives, repeats kept
	nets    []netip.Prefix
	ports   []nft.NamedPort
	version string
}

// newIndex files the host endpoints and network sets of in; update adds
// the workloads.
func newIndex(c *calculation, in Input, base string) *index {
	x := &index{
		base:    base,
		entries: make(map[*store.WorkloadEndpoint]*entry, len(in.Workloads)),
		groups:  map[string]*group{},
		byAddr:  make(map[netip.Addr][]*store.WorkloadEndpoint, len(in.Workloads)),
		local:   map[*store.WorkloadEndpoint]bool{},
		flawed:  map[*store.WorkloadEndpoint]bool{},
		sets:    map[string]*members{},
		dirty:   map[string]bool{},
	}
	for _, h := range in.HostEndpoints {
		var addrs []netip.Addr
		for _, ip := range h.Spec.ExpectedIPs {
			if a, err := netip.ParseAddr(ip); err == nil {
				addrs = append(addrs, a.Unmap())
			}
		}
		g := x.group("", c.hostLabels(h))
		g.addrs = append(g.addrs, addrs...)
		g.addrCount += len(addrs)
		for name, ps := range namedPorts(addrs, h.Spec.Ports) {
			if g.ports == nil {
				g.ports = map[string][]nft.NamedPort{}
			}
			g.ports[name] = append(g.ports[name], ps...)
		}
	}
	for _, n := range in.GlobalSets {
		x.addNetSet(n, "", n.Metadata.Labels, n.Spec.Nets)
	}
	for _, n := range in.NetworkSets {
		ns := n.Metadata.Namespace
		labels := map[string]string{}
		if p := c.profiles["kns."+ns]; p != nil {
			maps.Copy(labels, p.Spec.LabelsToApply)
		}
		maps.Copy(labels, n.Metadata.Labels)
		labels[namespaceLabel] = ns
		x.addNetSet(n, ns, labels, n.Spec.Nets)
	}
	return x
}

// baseOf names what an index is built from besides the workloads: the
// host, the versions of the profiles, host endpoints and network sets.
func baseOf(in Input, profileVers map[string]string) string {
	vs := append(slices.Collect(maps.Values(profileVers)), "node="+in.Node)
	for _, h := range in.HostEndpoints {
		vs = append(vs, version(h))
	}
	for _, n := range in.NetworkSets {
		vs = append(vs, version(n))
	}
	for _, n := range in.GlobalSets {
		vs = append(vs, version(n))
	}
	slices.Sort(vs)
	return "index\x01" + strings.Join(vs, "\x00") // never "", which is a fresh index's
}

// group is the group of key ns and labels, made if new.
func (x *index) group(ns string, labels map[string]string) *group {
	key := groupKey(ns, labels)
	g := x.groups[key]
	if g == nil {
		g = &group{key: key, labels: labels, ns: ns}
		x.groups[key] = g
	}
	return g
}

// addNetSet files a network set's nets under its group. One the node
// cannot use as written is kept aside: rules that select it fail closed.
func (x *index) addNetSet(r store.Resource, ns string, labels map[string]string, nets []string) {
	var ps []netip.Prefix
	bad := len(problemsOf(r).policy) > 0
	for _, n := range nets {
		p, ok := parseNet(n)
		bad = bad || !ok
		if ok {
			ps = append(ps, p)
		}
	}
	if bad {
		x.broken = append(x.broken, &group{labels: labels, ns: ns})
		x.problems = append(x.problems, store.IDOf(r).String()+" cannot be used as written: rules that select it fail closed")
		return
	}
	g := x.group(ns, labels)
	g.nets = append(g.nets, ps...)
}

// update makes the index's workloads in's: those it holds at the same
// revision stay as they are; the others are removed or (re)filed, and
// their groups marked dirty. A list in the same order as the last call's
// but for what changed (the agent's cache keeps its order) is compared
// place by place; only the places that differ are looked up. A workload
// changed in place, the same value at the same place, is not seen: a
// change is a new value, as the agent's cache makes it (CALICO_VERIFY
// checks).
func (x *index) update(c *calculation, in Input, remember bool) {
	x.pass++
	ws := in.Workloads
	if remember && x.last != nil {
		n := min(len(ws), len(x.last))
		var now, was []*store.WorkloadEndpoint
		for i := range n {
			if ws[i] != x.last[i] {
				now, was = append(now, ws[i]), append(was, x.last[i])
			}
		}
		now, was = append(now, ws[n:]...), append(was, x.last[n:]...)
		if len(now)+len(was) < len(ws)/2 {
			x.file(c, now, true)
			listed := make(map[*store.WorkloadEndpoint]bool, len(now))
			for _, w := range now {
				listed[w] = true
			}
			for _, w := range was {
				if e := x.entries[w]; e != nil && !listed[w] {
					x.remove(w, e)
				}
			}
			x.last = append(x.last[:0], ws...)
			return
		}
	}
	if x.file(c, ws, remember) != len(x.entries) {
		for w, e := range x.entries {
			if e.pass != x.pass {
				x.remove(w, e)
			}
		}
	}
	if remember {
		x.last = append(x.last[:0], ws...)
	}
}

// file files the workloads ws that the index does not hold at the same
// revision, and marks all of ws found in this call; it returns how many
// distinct workloads ws holds.
func (x *index) file(c *calculation, ws []*store.WorkloadEndpoint, remember bool) int {
	found := 0
	for _, w := range ws {
		rv := ""
		if remember {
			if rv = w.Metadata.ResourceVersion; rv == "" {
				rv = version(w)
			}
		}
		if e := x.entries[w]; e != nil {
			if e.pass == x.pass {
				continue // listed twice
			}
			if e.rv == rv {
				e.pass = x.pass
				found++
				continue
			}
			x.remove(w, e)
		}
		x.add(c, w, rv)
		found++
	}
	return found
}

// add files a workload under its group and its addresses.
func (x *index) add(c *calculation, w *store.WorkloadEndpoint, rv string) {
	e := &entry{rv: rv, pass: x.pass}
	e.addrs = workloadAddrs(w)
	e.ports = namedPorts(e.addrs, w.Spec.NamedPorts())
	g := x.group(w.Metadata.Namespace, c.workloadLabels(w))
	// The group's labels and key, not copies: replicas share them, so
	// the index holds one copy of each per group, not per endpoint (a
	// remote endpoint's labels were about a third of the calculation's
	// memory of it).
	e.labels, e.group = g.labels, g.key
	e.pos = len(g.eps)
	g.eps = append(g.eps, e)
	g.addrCount += len(e.addrs)
	x.dirty[e.group] = true
	for _, a := range e.addrs {
		x.byAddr[a] = append(x.byAddr[a], w)
	}
	if w.Spec.Node == c.in.Node {
		x.local[w] = true
	}
	x.touch(w, e)
	if len(w.Metadata.Problems) > 0 {
		x.flawed[w] = true
	}
	x.entries[w] = e
}

// remove takes a workload out of its group and its addresses.
func (x *index) remove(w *store.WorkloadEndpoint, e *entry) {
	if g := x.groups[e.group]; g != nil {
		g.addrCount -= len(e.addrs)
		last := g.eps[len(g.eps)-1]
		g.eps[e.pos], last.pos = last, e.pos
		g.eps[len(g.eps)-1] = nil
		g.eps = g.eps[:len(g.eps)-1]
		if len(g.eps) == 0 && len(g.addrs) == 0 && len(g.nets) == 0 && len(g.ports) == 0 {
			delete(x.groups, e.group)
		}
	}
	x.dirty[e.group] = true
	x.touch(w, e)
	for _, a := range e.addrs {
		ws := slices.DeleteFunc(x.byAddr[a], func(o *store.WorkloadEndpoint) bool { return o == w })
		if len(ws) == 0 {
			delete(x.byAddr, a)
		} else {
			x.byAddr[a] = ws
		}
	}
	delete(x.local, w)
	delete(x.flawed, w)
	delete(x.entries, w)
}

// touch counts a change of w (filed as e, and still in byAddr) in
// localGen when it is local or shares an address with a local workload.
func (x *index) touch(w *store.WorkloadEndpoint, e *entry) {
	if x.local[w] {
		x.localGen++
		return
	}
	for _, a := range e.addrs {
		if slices.ContainsFunc(x.byAddr[a], func(o *store.WorkloadEndpoint) bool { return x.local[o] }) {
			x.localGen++
			return
		}
	}
}

// members are the content of the set (or, with port, the port set) of
// spec, named name: the last call's, brought up to date with the groups
// changed since, or computed from every group for a set it did not use.
// spec nil is a set that stays empty. A changed set gets new slices: the
// old ones may still be in a Ruleset given to nftables.
func (x *index) members(name string, spec *setSpec, port *portSetSpec) *members {
	m := x.sets[name]
	if m == nil {
		return newMembers(x, spec, port)
	}
	changed := false
	for k := range x.dirty {
		g := x.groups[k]
		now := g != nil && spec != nil && spec.picks(g)
		changed = changed || now || m.picked[k]
		if now {
			m.picked[k] = true
		} else {
			delete(m.picked, k)
		}
	}
	if changed {
		m.fill(x, port)
	}
	return m
}

// newMembers computes a set's content from every group.
func newMembers(x *index, spec *setSpec, port *portSetSpec) *members {
	m := &members{picked: map[string]bool{}}
	for k, g := range x.groups {
		if spec != nil && spec.picks(g) {
			m.picked[k] = true
		}
	}
	m.fill(x, port)
	return m
}

// fill computes the content from the groups the set picks, in the order
// of their keys and then of their workloads: the same for the same input,
// but not sorted (nftables sorts and removes repeats).
func (m *members) fill(x *index, port *portSetSpec) {
	keys := slices.Sorted(maps.Keys(m.picked))
	var addrs []netip.Addr
	var nets []netip.Prefix
	var ports []nft.NamedPort
	if port == nil {
		n := 0
		for _, k := range keys {
			n += x.groups[k].addrCount
		}
		addrs = make([]netip.Addr, 0, n)
	}
	for _, k := range keys {
		g := x.groups[k]
		if port != nil {
			ports = g.appendPorts(ports, port)
			continue
		}
		addrs = g.appendAddrs(addrs)
		nets = append(nets, g.nets...)
	}
	m.addrs, m.nets, m.ports = addrs, nets, ports
	var v contentVersion
	if port != nil {
		sum(&v, ports)
	} else {
		sum(&v, addrs)
		sum(&v, nets)
	}
	m.version = v.String()
}

// contentVersion names the content of a set whatever its order: sums of
// its elements' hashes under two seeds. The seeds are the process's own:
// a version is only ever compared with others of the same process (the
// renderer's memory).
type contentVersion struct{ n, a, b uint64 }

var versionSeeds = [2]maphash.Seed{maphash.MakeSeed(), maphash.MakeSeed()}

// sum adds es to v.
func sum[T comparable](v *contentVersion, es []T) {
	v.n += uint64(len(es)) + 1
	for _, e := range es {
		v.a += maphash.Comparable(versionSeeds[0], e)
		v.b += maphash.Comparable(versionSeeds[1], e)
	}
}

func (v contentVersion) String() string { return fmt.Sprintf("%x-%x-%x", v.n, v.a, v.b) }

// appendAddrs appends the group's addresses to out.
func (g *group) appendAddrs(out []netip.Addr) []netip.Addr {
	out = append(out, g.addrs...)
	for _, e := range g.eps {
		out = append(out, e.addrs...)
	}
	return out
}

// appendPorts appends the group's named ports that s picks to out.
func (g *group) appendPorts(out []nft.NamedPort, s *portSetSpec) []nft.NamedPort {
	add := func(ports map[string][]nft.NamedPort) {
		for _, name := range s.names {
			for _, p := range ports[name] {
				if s.proto == 0 || p.Protocol == s.proto {
					out = append(out, p)
				}
			}
		}
	}
	add(g.ports)
	for _, e := range g.eps {
		add(e.ports)
	}
	return out
}
