package nft

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
)

// Fake is an in-memory Applier for tests of the code that drives it. It
// computes the same changes as the Applier and applies them to a model of
// the kernel table that refuses what the kernel refuses (a rule jumping to
// a missing chain or set, deleting a chain or set still in use, adding an
// element twice with another target, a range overlapping one an interval
// set holds, deleting a missing element), so a wrong order of changes
// fails here too. A rejected transaction changes nothing.
type Fake struct {
	mu     sync.Mutex
	k      *model
	owners map[string]policyDir
	counts map[counterKey]Counter

	// Applies counts calls to Apply; Changes those that changed the model.
	Applies, Changes int
	// Last counts what the last successful Apply changed.
	Last     Stats
	failNext bool
}

// The Fake and the Applier answer the same calls.
var _, _ interface {
	Apply(context.Context, Ruleset) error
	Counters(context.Context) ([]Counter, error)
	Close() error
} = (*Fake)(nil), (*Applier)(nil)

type counterKey struct {
	pd   policyDir
	rule int
}

// NewFake returns a Fake with no table, as on a fresh host.
func NewFake() *Fake { return &Fake{k: &model{}, counts: map[counterKey]Counter{}} }

// FailNext makes the next Apply fail without changing anything.
func (f *Fake) FailNext() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.failNext = true
}

// Apply has Applier.Apply's semantics.
func (f *Fake) Apply(ctx context.Context, rs Ruleset) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.Applies++
	if err := ctx.Err(); err != nil {
		return err
	}
	want, err := Render(rs)
	if err != nil {
		return fmt.Errorf("rendering ruleset: %w", err)
	}
	if f.failNext {
		f.failNext = false
		return errors.New("fake: injected failure")
	}
	ops := diff(f.k.table(), want)
	next := f.k.clone()
	if err := next.apply(ops); err != nil {
		return fmt.Errorf("fake kernel rejected the transaction: %w", err)
	}
	if got, w := next.table().summary(), want.summary(); got != w {
		return fmt.Errorf("fake: table after the transaction differs from the desired one:\n%s\nwant:\n%s", got, w)
	}
	f.k, f.owners = next, want.owners
	f.Last = statsOf(ops)
	if f.Last.changed() {
		f.Changes++
	}
	return nil
}

// Count adds packets and bytes to one policy rule's counter, as traffic
// would.
func (f *Fake) Count(c Counter) {
	f.mu.Lock()
	defer f.mu.Unlock()
	k := counterKey{policyDir{c.Policy, c.Direction}, c.Rule}
	old := f.counts[k]
	old.Packets += c.Packets
	old.Bytes += c.Bytes
	f.counts[k] = old
}

// Counters has Applier.Counters' semantics: one Counter per policy rule
// that has a kernel rule, with what Count added.
func (f *Fake) Counters(ctx context.Context) ([]Counter, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var rows []ruleCount
	for _, name := range slices.Sorted(maps.Keys(f.k.chains)) {
		for _, r := range f.k.chains[name].rules {
			rows = append(rows, ruleCount{chain: name, comment: r.Comment})
		}
	}
	out := sumCounters(f.owners, rows)
	for i, c := range out {
		n := f.counts[counterKey{policyDir{c.Policy, c.Direction}, c.Rule}]
		out[i].Packets, out[i].Bytes = n.Packets, n.Bytes
	}
	return out, nil
}

// Close is Applier.Close; the Fake holds nothing to release.
func (f *Fake) Close() error { return nil }

// Remove deletes the table, as Applier.Remove does.
func (f *Fake) Remove(ctx context.Context) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.k = &model{}
	return nil
}

// String dumps the modelled table like Table.String, or "" when there is
// none.
func (f *Fake) String() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	t := f.k.table()
	if t == nil {
		return ""
	}
	return t.String()
}

// model is the kernel's view of the table.
type model struct {
	exists bool
	sets   map[string]*modelSet
	chains map[string]*modelChain
}

type modelSet struct {
	typ   SetType
	elems map[string]Element // by key
}

type modelChain struct {
	hook  *Hook
	rules []ChainRule
}

func (m *model) clone() *model {
	n := &model{exists: m.exists, sets: map[string]*modelSet{}, chains: map[string]*modelChain{}}
	for k, s := range m.sets {
		n.sets[k] = &modelSet{typ: s.typ, elems: maps.Clone(s.elems)}
	}
	for k, c := range m.chains {
		n.chains[k] = &modelChain{hook: c.hook, rules: slices.Clone(c.rules)}
	}
	return n
}

// table is the model as a sorted Table, nil without a table.
func (m *model) table() *Table {
	if !m.exists {
		return nil
	}
	t := &Table{}
	for _, name := range slices.Sorted(maps.Keys(m.sets)) {
		s := m.sets[name]
		ts := TableSet{Name: name, Type: s.typ}
		for _, e := range s.elems {
			ts.Elems = append(ts.Elems, e)
		}
		slices.SortFunc(ts.Elems, func(a, b Element) int { return cmp.Compare(a.Key, b.Key) })
		t.Sets = append(t.Sets, ts)
	}
	for _, name := range slices.Sorted(maps.Keys(m.chains)) {
		c := m.chains[name]
		t.Chains = append(t.Chains, Chain{Name: name, Hook: c.hook, Rules: slices.Clone(c.rules)})
	}
	return t
}

// inUse reports whether a rule or map element (outside chain self) refers
// to chain, or a rule refers to set.
func (m *model) inUse(chain, set, self string) bool {
	for name, c := range m.chains {
		if name == self {
			continue
		}
		for _, r := range c.rules {
			chains, sets := r.refs()
			if (chain != "" && slices.Contains(chains, chain)) || (set != "" && slices.Contains(sets, set)) {
				return true
			}
		}
	}
	if chain == "" {
		return false
	}
	for _, s := range m.sets {
		for _, e := range s.elems {
			if e.Goto == chain {
				return true
			}
		}
	}
	return false
}

// apply performs ops in order with the kernel's checks.
func (m *model) apply(ops []op) error {
	for _, o := range ops {
		if err := m.applyOne(o); err != nil {
			return fmt.Errorf("%s %s: %w", o.kind, o.name, err)
		}
	}
	return nil
}

func (m *model) applyOne(o op) error {
	if o.kind == opAddTable {
		if !m.exists {
			*m = model{exists: true, sets: map[string]*modelSet{}, chains: map[string]*modelChain{}}
		}
		return nil
	}
	if !m.exists {
		return errors.New("no such table")
	}
	switch o.kind {
	case opDelTable:
		*m = model{}
	case opAddSet, opDelSet, opAddElems, opDelElems:
		return m.applySetOp(o)
	case opAddChain, opFlushChain, opDelChain, opAddRule:
		return m.applyChainOp(o)
	}
	return nil
}

// applySetOp adds or deletes a set or its elements.
func (m *model) applySetOp(o op) error {
	s, ok := m.sets[o.name]
	switch {
	case o.kind == opAddSet:
		if ok && s.typ != o.set.Type {
			return errors.New("exists with another type")
		}
		if !ok {
			m.sets[o.name] = &modelSet{typ: o.set.Type, elems: map[string]Element{}}
		}
		return nil
	case !ok:
		return errors.New("no such set")
	case o.kind == opDelSet:
		if m.inUse("", o.name, "") {
			return errors.New("set in use")
		}
		delete(m.sets, o.name)
	case o.kind == opAddElems:
		for _, e := range o.elems {
			if err := s.add(e); err != nil {
				return fmt.Errorf("element %s: %w", o.set.elemString(e), err)
			}
			if _, ok := m.chains[e.Goto]; e.Goto != "" && !ok {
				return fmt.Errorf("element refers to missing chain %s", e.Goto)
			}
		}
	case o.kind == opDelElems:
		for _, e := range o.elems {
			if old, ok := s.elems[e.Key]; !ok || old.End != e.End {
				return fmt.Errorf("no element %s", o.set.elemString(e))
			}
			delete(s.elems, e.Key)
		}
	}
	return nil
}

// add adds one element as the kernel does: the same element again is no
// change, the same key with another target is refused, and in an
// interval set so is a range that overlaps one the set holds.
func (s *modelSet) add(e Element) error {
	if old, ok := s.elems[e.Key]; ok && old == e {
		return nil
	} else if ok {
		return errors.New("exists with another target or end")
	}
	if s.typ.interval() {
		for _, old := range s.elems {
			if overlaps(old, e) {
				return fmt.Errorf("overlaps %s", rangeString(old))
			}
		}
	}
	s.elems[e.Key] = e
	return nil
}

// overlaps tells whether two ranges of an interval set share an address.
func overlaps(a, b Element) bool {
	below := func(x, y Element) bool { return x.End != "" && x.End <= y.Key } // x ends before y starts
	return !below(a, b) && !below(b, a)
}

// applyChainOp adds, flushes or deletes a chain, or adds a rule to it.
func (m *model) applyChainOp(o op) error {
	c, ok := m.chains[o.name]
	switch {
	case o.kind == opAddChain:
		if ok && !sameHook(c.hook, o.hook) {
			return errors.New("exists with another hook")
		}
		if !ok {
			m.chains[o.name] = &modelChain{hook: o.hook}
		}
		return nil
	case !ok:
		return errors.New("no such chain")
	case o.kind == opFlushChain:
		c.rules = nil
	case o.kind == opDelChain:
		if m.inUse(o.name, "", o.name) {
			return errors.New("chain in use")
		}
		delete(m.chains, o.name)
	case o.kind == opAddRule:
		chains, sets := o.rule.refs()
		for _, n := range chains {
			if _, ok := m.chains[n]; !ok {
				return fmt.Errorf("rule refers to missing chain %s", n)
			}
		}
		for _, n := range sets {
			if _, ok := m.sets[n]; !ok {
				return fmt.Errorf("rule refers to missing set %s", n)
			}
		}
		c.rules = append(c.rules, *o.rule)
	}
	return nil
}
