package nft

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// opKind is one kind of change in a transaction.
type opKind uint8

const (
	opAddTable opKind = iota + 1
	opDelTable
	opAddSet
	opDelSet
	opAddChain
	opFlushChain
	opDelChain
	opAddRule
	opAddElems
	opDelElems
)

func (k opKind) String() string {
	return [...]string{"", "add table", "delete table", "add set", "delete set", "add chain",
		"flush chain", "delete chain", "add rule", "add elements", "delete elements"}[k]
}

// op is one change. The Applier turns a list of them into one netlink
// batch; the Fake applies them to its model with the kernel's checks.
type op struct {
	kind  opKind
	name  string     // the set or chain
	set   *TableSet  // opAddSet, opAddElems, opDelElems: its type
	hook  *Hook      // opAddChain
	rule  *ChainRule // opAddRule
	elems []Element  // opAddElems, opDelElems
}

// diff lists the changes that turn have (nil: no table) into want, in an
// order the kernel accepts within one transaction:
//
//  1. the table (always first: it also wakes a dormant table);
//  2. new sets and chains, empty;
//  3. set elements to add (a verdict map element that changes target is
//     deleted and added again here);
//  4. chains whose rules differ: flushed and refilled, those with an
//     anonymous set first (the kernel binds each anonymous set by walking
//     the whole transaction so far, so binding early is cheap);
//  5. set elements to delete;
//  6. chains to delete are flushed, so no rule among them still jumps to
//     another or looks up a set;
//  7. sets to delete (a verdict map going away may still point at a
//     chain going away);
//  8. the chains to delete.
//
// When have cannot be patched (a set of another type, a base chain on
// another hook) the list deletes and recreates the whole table.
func diff(have, want *Table) []op {
	if have == nil {
		return append([]op{{kind: opAddTable}}, patch(&Table{}, want)...)
	}
	hs := map[string]*TableSet{}
	for i := range have.Sets {
		hs[have.Sets[i].Name] = &have.Sets[i]
	}
	hc := map[string]*Chain{}
	for i := range have.Chains {
		hc[have.Chains[i].Name] = &have.Chains[i]
	}
	for i := range want.Sets {
		if h, ok := hs[want.Sets[i].Name]; ok && h.Type != want.Sets[i].Type {
			return recreate(want)
		}
	}
	for i := range want.Chains {
		if h, ok := hc[want.Chains[i].Name]; ok && !sameHook(h.Hook, want.Chains[i].Hook) {
			return recreate(want)
		}
	}
	ops := patch(have, want)
	if len(ops) == 0 && !have.dormant {
		return nil
	}
	return append([]op{{kind: opAddTable}}, ops...)
}

// recreate deletes the table and builds want from nothing, in one batch.
func recreate(want *Table) []op {
	return append([]op{{kind: opAddTable}, {kind: opDelTable}, {kind: opAddTable}}, patch(&Table{}, want)...)
}

func sameHook(a, b *Hook) bool {
	if a == nil || b == nil {
		return a == b
	}
	return *a == *b
}

// patch is diff without the table op and the recreate check. Its order
// is the kernel's: new sets and chains first, then elements added (and
// repointed), then chains refilled (those with anonymous sets first: the
// kernel walks the transaction to bind each), then elements deleted, then
// chains that go are flushed, sets that go deleted, and the chains last.
func patch(have, want *Table) []op {
	hs := map[string]*TableSet{}
	for i := range have.Sets {
		hs[have.Sets[i].Name] = &have.Sets[i]
	}
	hc := map[string]*Chain{}
	for i := range have.Chains {
		hc[have.Chains[i].Name] = &have.Chains[i]
	}
	ops := addedSetsAndChains(hs, hc, want)
	elems, dels := elemOps(hs, want)
	ops = append(append(ops, elems...), refills(hc, want)...)
	ops = append(ops, dels...)
	return append(ops, removals(have, want)...)
}

// addedSetsAndChains adds what want has and have lacks.
func addedSetsAndChains(hs map[string]*TableSet, hc map[string]*Chain, want *Table) []op {
	var ops []op
	for i := range want.Sets {
		if w := &want.Sets[i]; hs[w.Name] == nil {
			ops = append(ops, op{kind: opAddSet, name: w.Name, set: w})
		}
	}
	for i := range want.Chains {
		if w := &want.Chains[i]; hc[w.Name] == nil {
			ops = append(ops, op{kind: opAddChain, name: w.Name, hook: w.Hook})
		}
	}
	return ops
}

// elemOps are the element changes of want's sets: additions and
// repointings now, deletions (dels) after the chains are refilled.
func elemOps(hs map[string]*TableSet, want *Table) (ops, dels []op) {
	for i := range want.Sets {
		w := &want.Sets[i]
		var old []Element
		if h, ok := hs[w.Name]; ok {
			old = h.Elems
		}
		add, repoint, del := elemDiff(old, w.Elems)
		if w.Type.interval() {
			// The kernel refuses a range that overlaps one it holds, even
			// one the same transaction deletes later: delete first.
			repoint, del = append(repoint, del...), nil
		}
		if len(repoint) > 0 {
			ops = append(ops, op{kind: opDelElems, name: w.Name, set: w, elems: repoint})
		}
		if len(add) > 0 {
			ops = append(ops, op{kind: opAddElems, name: w.Name, set: w, elems: add})
		}
		if len(del) > 0 {
			dels = append(dels, op{kind: opDelElems, name: w.Name, set: w, elems: del})
		}
	}
	return ops, dels
}

// refills are the chains of want whose rules changed, flushed and filled
// again: those with anonymous sets first.
func refills(hc map[string]*Chain, want *Table) []op {
	var plain, anon []op
	for i := range want.Chains {
		w := &want.Chains[i]
		h, ok := hc[w.Name]
		if ok && sameRules(h.Rules, w.Rules) {
			continue
		}
		to := &plain
		if slices.ContainsFunc(w.Rules, ChainRule.hasAnonSet) {
			to = &anon
		}
		if ok && len(h.Rules) > 0 {
			*to = append(*to, op{kind: opFlushChain, name: w.Name})
		}
		for j := range w.Rules {
			*to = append(*to, op{kind: opAddRule, name: w.Name, rule: &w.Rules[j]})
		}
	}
	return append(anon, plain...)
}

// removals take away what have has and want lacks: chains flushed, then
// sets (no rule refers to them any more, and a verdict map's elements may
// still refer to a chain about to go), then the chains.
func removals(have, want *Table) []op {
	var ops []op
	wc := map[string]bool{}
	for _, c := range want.Chains {
		wc[c.Name] = true
	}
	var doomed []string
	for _, c := range have.Chains {
		if wc[c.Name] {
			continue
		}
		if len(c.Rules) > 0 {
			ops = append(ops, op{kind: opFlushChain, name: c.Name})
		}
		doomed = append(doomed, c.Name)
	}
	ws := map[string]bool{}
	for _, s := range want.Sets {
		ws[s.Name] = true
	}
	for i := range have.Sets {
		if !ws[have.Sets[i].Name] {
			ops = append(ops, op{kind: opDelSet, name: have.Sets[i].Name, set: &have.Sets[i]})
		}
	}
	for _, n := range doomed {
		ops = append(ops, op{kind: opDelChain, name: n})
	}
	return ops
}

func sameRules(a, b []ChainRule) bool {
	return slices.EqualFunc(a, b, func(x, y ChainRule) bool { return x.Comment == y.Comment })
}

// elemDiff compares two sorted element lists: add holds elements new in
// want or with a new target or end, repoint the old versions of the
// latter (to delete first), del the elements only in have.
func elemDiff(have, want []Element) (add, repoint, del []Element) {
	if len(have) == len(want) && (len(have) == 0 || &have[0] == &want[0]) {
		return nil, nil, nil // the same slice: a set the renderer remembered
	}
	if slices.Equal(have, want) {
		return nil, nil, nil
	}
	i, j := 0, 0
	for i < len(have) || j < len(want) {
		switch {
		case j == len(want) || (i < len(have) && have[i].Key < want[j].Key):
			del = append(del, have[i])
			i++
		case i == len(have) || want[j].Key < have[i].Key:
			add = append(add, want[j])
			j++
		default:
			if have[i] != want[j] {
				repoint = append(repoint, have[i])
				add = append(add, want[j])
			}
			i++
			j++
		}
	}
	return add, repoint, del
}

// statsOf counts a list of changes.
func statsOf(ops []op) Stats {
	var s Stats
	for _, o := range ops {
		switch o.kind {
		case opDelTable:
			s.Recreated = true
		case opAddSet:
			s.SetsAdded++
		case opDelSet:
			s.SetsDeleted++
		case opAddChain:
			s.ChainsAdded++
		case opDelChain:
			s.ChainsDeleted++
		case opFlushChain:
			s.ChainsFlushed++
		case opAddRule:
			s.RulesAdded++
		case opAddElems:
			s.ElemsAdded += len(o.elems)
		case opDelElems:
			s.ElemsDeleted += len(o.elems)
		}
	}
	return s
}

// Counter is what the kernel counted for one rule of a policy: the sum
// over the kernel rules (one per family) that render it.
type Counter struct {
	Policy    string
	Direction Direction
	// Rule is the index into Policy.Ingress or Policy.Egress.
	Rule           int
	Packets, Bytes uint64
}

func (c Counter) String() string {
	return fmt.Sprintf("%s %s rule %d: %d packets, %d bytes", c.Policy, c.Direction, c.Rule, c.Packets, c.Bytes)
}

// ruleCount is one kernel rule's counter as read back.
type ruleCount struct {
	chain, comment string
	handle         uint64
	packets, bytes uint64
}

// sumCounters groups kernel rule counters by policy rule. owners names the
// policy of each policy chain; a chain it does not know is recognised by
// its suffix (exact unless the policy name was too long for a chain name).
func sumCounters(owners map[string]policyDir, rows []ruleCount) []Counter {
	type key struct {
		pd   policyDir
		rule int
	}
	sums := map[key]*Counter{}
	for _, r := range rows {
		pd, ok := owners[r.chain]
		if !ok {
			pd, ok = parsePolicyChain(r.chain)
		}
		idx, ok2 := parseLabel(r.comment)
		if !ok || !ok2 {
			continue
		}
		k := key{pd, idx}
		c := sums[k]
		if c == nil {
			c = &Counter{Policy: pd.name, Direction: pd.dir, Rule: idx}
			sums[k] = c
		}
		c.Packets += r.packets
		c.Bytes += r.bytes
	}
	out := make([]Counter, 0, len(sums))
	for _, c := range sums {
		out = append(out, *c)
	}
	slices.SortFunc(out, func(a, b Counter) int {
		if a.Policy != b.Policy {
			return strings.Compare(a.Policy, b.Policy)
		}
		if a.Direction != b.Direction {
			return int(a.Direction) - int(b.Direction)
		}
		return a.Rule - b.Rule
	})
	return out
}

func parsePolicyChain(chain string) (policyDir, bool) {
	if n, ok := strings.CutSuffix(chain, Ingress.suffix()); ok && n != "" {
		return policyDir{n, Ingress}, true
	}
	if n, ok := strings.CutSuffix(chain, Egress.suffix()); ok && n != "" {
		return policyDir{n, Egress}, true
	}
	return policyDir{}, false
}

// parseLabel reads "rule <index>" from a rule comment.
func parseLabel(comment string) (int, bool) {
	l, _, _ := strings.Cut(comment, "#")
	n, ok := strings.CutPrefix(strings.TrimSpace(l), "rule ")
	if !ok {
		return 0, false
	}
	i, err := strconv.Atoi(n)
	return i, err == nil
}

// hasAnonSet tells whether the rule carries an anonymous set.
func (r ChainRule) hasAnonSet() bool {
	for _, s := range r.stmts {
		switch s := s.(type) {
		case ports:
			if len(s.ranges) > 1 {
				return true
			}
		case addrNets:
			if len(s.cidrs) > 1 {
				return true
			}
		}
	}
	return false
}
