package selector

import (
	"maps"
	"regexp"
	"slices"
	"strings"
	"testing"
)

var validID = regexp.MustCompile(`^[a-z0-9]{1,20}$`)

// FuzzParse checks that Parse never panics and that the canonical form is a
// fixed point: it parses, prints the same, and evaluates the same on label
// sets built from the selector's own keys and values.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		``, ` `, `all()`, `global()`, `!global()`, `has(a)`, `!has(a)`, `!!has(a)`, `!(!has(a))`,
		`a == "b"`, `a == 'b'`, `a != "b"`, `a == '"'`, `a == "'"`,
		`a in {"x", "y"}`, `a not in {'x', "y",}`, `a in {}`, `a notin{}`,
		`a contains "b"`, `a starts with "b"`, `a ends with "b"`, `a startswith 'b'`, `a endswith "b"`,
		`a == "1" || b == "2" && c == "3"`, `(a == "1" || b == "2") && !(c == "3")`,
		`(has(a) && has(b)) && has(c)`, `!(!(k == 'v' && has(t) || all()) && (a in {'b', 'c'}))`,
		`example.com/a-b_c.d == "x" && projectcalico.org/namespace in {"default"}`,
		"\ta\t==\t'b'\t", `a=="b"&&c!='d'||has(e)`,
		// Malformed.
		`a == `, `a == "b`, `(`, `)`, `()`, `a`, `a b`, `!`, `has(`, `has()`, `a in {`, `a in {,}`,
		`Foo/bar == "x"`, `a == "b" &`, `a == "b" |`, `%`, `(((((has(a)))))`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		sel, err := Parse(s)
		if err != nil {
			if sel != nil {
				t.Fatalf("Parse(%q) returned a selector and error %v", s, err)
			}
			if !strings.HasPrefix(err.Error(), "selector ") || !strings.Contains(err.Error(), " at offset ") {
				t.Fatalf("Parse(%q) error %q lacks selector or offset", s, err)
			}
			return
		}
		canon := sel.String()
		again, err := Parse(canon)
		if err != nil {
			t.Fatalf("Parse(%q) ok, but its canonical form %q fails: %v", s, canon, err)
		}
		if got := again.String(); got != canon {
			t.Fatalf("canonical form of %q is not stable: %q then %q", s, canon, got)
		}
		if again.UniqueID() != sel.UniqueID() || !validID.MatchString(sel.UniqueID()) {
			t.Fatalf("UniqueID of %q: %q then %q", s, sel.UniqueID(), again.UniqueID())
		}
		for _, l := range labelSets(&sel.root) {
			if a, b := sel.Evaluate(l), again.Evaluate(l); a != b {
				t.Fatalf("%q evaluates to %v on %v but its canonical form %q to %v", s, a, l, canon, b)
			}
		}
	})
}

// labelSets builds label maps that exercise n: none, every key with an empty
// value, every key with each value mentioned for it, and some keys only,
// each with and without the namespace label.
func labelSets(n *node) []map[string]string {
	values := map[string][]string{}
	var walk func(n *node)
	walk = func(n *node) {
		if n.key != "" {
			values[n.key] = append(values[n.key], n.value)
			values[n.key] = append(values[n.key], n.set...)
			if n.value != "" {
				values[n.key] = append(values[n.key], "x"+n.value+"x")
			}
		}
		for i := range n.kids {
			walk(&n.kids[i])
		}
	}
	walk(n)

	sets := []map[string]string{{}}
	for round := 0; round < 4; round++ {
		l := map[string]string{}
		for i, k := range slices.Sorted(maps.Keys(values)) {
			if round == 3 && i%2 == 1 {
				continue
			}
			vs := values[k]
			l[k] = vs[round%len(vs)]
		}
		sets = append(sets, l)
	}
	for _, l := range sets[:len(sets):len(sets)] {
		withNS := map[string]string{NamespaceLabel: "ns"}
		for k, v := range l {
			withNS[k] = v
		}
		sets = append(sets, withNS)
	}
	return sets
}
