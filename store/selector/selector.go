// Package selector owns Calico's label selector language: parsing a selector
// such as `role == "db" && env in {"prod", "staging"}`, evaluating it against
// a set of labels, printing it in a canonical form, and checking label keys
// and values against the Kubernetes rules.
//
// The language is projectcalico.org/v3's, so selectors written for Calico work
// unchanged:
//
//	all()                  matches everything; so does the empty selector
//	global()               matches label sets without NamespaceLabel
//	has(k)                 k is present
//	k == "v", k != "v"     string literals in double or single quotes
//	k in {"a", "b"}        k is present and its value is in the set
//	k not in {"a", "b"}    k is absent or its value is not in the set
//	k contains "s"         k is present and its value contains s
//	k starts with "s"      k is present and its value starts with s
//	k ends with "s"        k is present and its value ends with s
//	!e, e && e, e || e, (e)
//
// `!` binds tightest, then `&&`, then `||`. A negation covers one whole
// operation: `!a == "b"` means `!(a == "b")`. As in Calico, `k != "v"` and
// `k not in {…}` match when k is absent.
package selector

import (
	"crypto/sha256"
	"encoding/base32"
	"slices"
	"strings"
)

// NamespaceLabel is the label that marks an endpoint or network set as
// belonging to a namespace; global() matches label sets without it.
const NamespaceLabel = "projectcalico.org/namespace"

// Selector is a parsed label selector. It is immutable and safe for
// concurrent use. A nil or zero Selector is all().
type Selector struct {
	root node
	str  string // canonical form, computed once by Parse
	id   string // UniqueID of str
}

// Evaluate reports whether labels match the selector. It does not allocate.
func (s *Selector) Evaluate(labels map[string]string) bool {
	if s == nil {
		return true
	}
	return s.root.eval(labels)
}

// String returns the selector's canonical form: single blanks around
// operators, double quotes unless the value holds one, parentheses only
// where precedence needs them, double negations dropped and set literals
// sorted without duplicates. It parses back to an equal selector.
func (s *Selector) String() string {
	if s == nil || s.str == "" {
		return "all()"
	}
	return s.str
}

// UniqueID returns a short stable hash of String(): "s" followed by 19
// characters of [a-z2-7], usable as part of an nftables set name.
func (s *Selector) UniqueID() string {
	if s == nil || s.id == "" {
		return uniqueID(s.String())
	}
	return s.id
}

// idEncoding is lower-case base32, so IDs are [a-z2-7].
var idEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// uniqueID hashes a canonical selector into 20 characters (95 bits of
// SHA-256). The leading letter keeps the ID a valid identifier on its own.
func uniqueID(canonical string) string {
	sum := sha256.Sum256([]byte(canonical))
	return "s" + idEncoding.EncodeToString(sum[:12])[:19]
}

// op is the kind of a node.
type op uint8

const (
	opAll op = iota // zero value, so a zero node matches everything
	opGlobal
	opHas
	opEq
	opNe
	opContains
	opStartsWith
	opEndsWith
	opIn
	opNotIn
	opNot
	opAnd
	opOr
)

// node is one operation of a parsed selector. Leaves use key, value and set;
// opNot has one kid, opAnd and opOr two or more, never of their own op.
type node struct {
	op    op
	key   string
	value string
	set   []string // sorted, without duplicates
	kids  []node
}

// eval is the hot path: one map lookup per leaf, no allocation.
func (n *node) eval(labels map[string]string) bool {
	switch n.op {
	case opAll:
		return true
	case opGlobal:
		_, ok := labels[NamespaceLabel]
		return !ok
	case opNot:
		return !n.kids[0].eval(labels)
	case opAnd:
		for i := range n.kids {
			if !n.kids[i].eval(labels) {
				return false
			}
		}
		return true
	case opOr:
		for i := range n.kids {
			if n.kids[i].eval(labels) {
				return true
			}
		}
		return false
	}
	v, ok := labels[n.key]
	return n.leaf(v, ok)
}

// leaf evaluates a leaf on the value of its key (ok: the key is there).
func (n *node) leaf(v string, ok bool) bool {
	switch n.op {
	case opHas:
		return ok
	case opEq:
		return ok && v == n.value
	case opNe:
		return !ok || v != n.value
	case opContains:
		return ok && strings.Contains(v, n.value)
	case opStartsWith:
		return ok && strings.HasPrefix(v, n.value)
	case opEndsWith:
		return ok && strings.HasSuffix(v, n.value)
	case opIn:
		return ok && setContains(n.set, v)
	case opNotIn:
		return !ok || !setContains(n.set, v)
	}
	return false
}

// setContains looks v up in a sorted set: a scan for small sets, a binary
// search for large ones.
func setContains(set []string, v string) bool {
	if len(set) <= 8 {
		for _, s := range set {
			if s == v {
				return true
			}
		}
		return false
	}
	lo, hi := 0, len(set)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if set[m] < v {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return lo < len(set) && set[lo] == v
}

// negate returns !n, dropping a double negation.
func negate(n node) node {
	if n.op == opNot {
		return n.kids[0]
	}
	return node{op: opNot, kids: []node{n}}
}

// join combines operands with && or ||, flattening operands of the same op
// so that grouping parentheses do not change the canonical form.
func join(o op, operands []node) node {
	if !slices.ContainsFunc(operands, func(k node) bool { return k.op == o }) {
		return node{op: o, kids: operands}
	}
	var kids []node
	for _, k := range operands {
		if k.op == o {
			kids = append(kids, k.kids...)
		} else {
			kids = append(kids, k)
		}
	}
	return node{op: o, kids: kids}
}

// write appends the canonical form of n to b. Parentheses go only where
// precedence needs them: around || under && or !, and around && under !.
// Each such pair stands for one the source must have had, so the canonical
// form never nests deeper than its source and always parses again.
func (n *node) write(b *strings.Builder, parent op) {
	switch n.op {
	case opAll:
		b.WriteString("all()")
	case opGlobal:
		b.WriteString("global()")
	case opHas:
		b.WriteString("has(")
		b.WriteString(n.key)
		b.WriteByte(')')
	case opEq, opNe, opContains, opStartsWith, opEndsWith:
		b.WriteString(n.key)
		b.WriteString(opText[n.op])
		writeQuoted(b, n.value)
	case opIn, opNotIn:
		b.WriteString(n.key)
		b.WriteString(opText[n.op])
		b.WriteByte('{')
		for i, v := range n.set {
			if i > 0 {
				b.WriteString(", ")
			}
			writeQuoted(b, v)
		}
		b.WriteByte('}')
	case opNot:
		b.WriteByte('!')
		n.kids[0].write(b, opNot)
	case opAnd, opOr:
		group := parent == opNot || n.op == opOr && parent == opAnd
		if group {
			b.WriteByte('(')
		}
		for i := range n.kids {
			if i > 0 {
				b.WriteString(opText[n.op])
			}
			n.kids[i].write(b, n.op)
		}
		if group {
			b.WriteByte(')')
		}
	}
}

var opText = [...]string{
	opEq:         " == ",
	opNe:         " != ",
	opContains:   " contains ",
	opStartsWith: " starts with ",
	opEndsWith:   " ends with ",
	opIn:         " in ",
	opNotIn:      " not in ",
	opAnd:        " && ",
	opOr:         " || ",
}

// writeQuoted writes s in double quotes, or in single quotes if s contains a
// double quote. The language has no escapes, and a literal that parsed
// cannot contain both.
func writeQuoted(b *strings.Builder, s string) {
	q := byte('"')
	if strings.IndexByte(s, '"') >= 0 {
		q = '\''
	}
	b.WriteByte(q)
	b.WriteString(s)
	b.WriteByte(q)
}

// UsesGlobal reports whether the selector has global() anywhere in it.
func (s *Selector) UsesGlobal() bool {
	return s != nil && s.root.usesGlobal()
}

func (n *node) usesGlobal() bool {
	return n.op == opGlobal || slices.ContainsFunc(n.kids, func(k node) bool { return k.usesGlobal() })
}
