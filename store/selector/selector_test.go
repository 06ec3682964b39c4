package selector

import (
	"regexp"
	"strings"
	"testing"
)

type labels = map[string]string

func TestEvaluate(t *testing.T) {
	ns := labels{NamespaceLabel: "default", "app": "web"}
	tests := []struct {
		sel   string
		match []labels
		miss  []labels
	}{
		// all() and the empty selector.
		{``, []labels{nil, {}, {"a": "b"}, ns}, nil},
		{" \t ", []labels{{}, {"a": "b"}}, nil},
		{`all()`, []labels{{}, {"a": "b"}, ns}, nil},
		{` all( ) `, []labels{{}, {"a": "b"}}, nil},
		{`!all()`, nil, []labels{{}, {"a": "b"}}},

		// global(): no namespace label.
		{`global()`, []labels{{}, {"a": "b"}, {"projectcalico.org/name": "x"}}, []labels{ns, {NamespaceLabel: ""}}},
		{`!global()`, []labels{ns}, []labels{{}, {"a": "b"}}},
		{`global() && a == "b"`, []labels{{"a": "b"}}, []labels{{"a": "c"}, {"a": "b", NamespaceLabel: "x"}}},

		// has.
		{`has(a)`, []labels{{"a": ""}, {"a": "b"}}, []labels{{}, {"b": "a"}}},
		{`has( a )`, []labels{{"a": "x"}}, []labels{{}}},
		{`!has(a)`, []labels{{}, {"b": "a"}}, []labels{{"a": ""}}},
		{`has(example.com/a-b_c.d)`, []labels{{"example.com/a-b_c.d": "1"}}, []labels{{"a-b_c.d": "1"}}},

		// == and !=; != matches an absent label.
		{`a == "b"`, []labels{{"a": "b"}, {"a": "b", "c": "d"}}, []labels{{}, {"a": "c"}, {"a": "B"}, {"c": "d"}, {"a": "bb"}}},
		{`a == 'b'`, []labels{{"a": "b"}}, []labels{{}, {"a": "c"}}},
		{`a == ""`, []labels{{"a": ""}}, []labels{{}, {"a": "b"}}},
		{`a != "b"`, []labels{{}, {"a": "c"}, {"a": ""}, {"c": "b"}}, []labels{{"a": "b"}}},
		{`a != ''`, []labels{{}, {"a": "x"}}, []labels{{"a": ""}}},
		{`a == "it's"`, []labels{{"a": "it's"}}, []labels{{"a": "its"}}},
		{`a == 'say "hi"'`, []labels{{"a": `say "hi"`}}, []labels{{"a": "say hi"}}},
		{"a == \"x y\tz\"", []labels{{"a": "x y\tz"}}, []labels{{"a": "x y z"}}},

		// in and not in; not in matches an absent label.
		{`a in {"x", "y"}`, []labels{{"a": "x"}, {"a": "y"}}, []labels{{}, {"a": "z"}, {"a": ""}, {"b": "x"}}},
		{`a in {"'", '"', "c"}`, []labels{{"a": "'"}, {"a": `"`}, {"a": "c"}}, []labels{{}, {"a": "e"}}},
		{`a in {}`, nil, []labels{{}, {"a": ""}, {"a": "x"}}},
		{`a in {"x",}`, []labels{{"a": "x"}}, []labels{{"a": ""}}},
		{`a not in {"x", "y"}`, []labels{{}, {"a": "z"}, {"a": ""}}, []labels{{"a": "x"}, {"a": "y"}}},
		{`a not in {}`, []labels{{}, {"a": "x"}}, nil},
		{`a in {"a","b","c","d","e","f","g","h","i","j","k"}`, []labels{{"a": "a"}, {"a": "f"}, {"a": "k"}}, []labels{{}, {"a": "0"}, {"a": "ff"}, {"a": "z"}}},
		{`a not in {"a","b","c","d","e","f","g","h","i","j","k"}`, []labels{{}, {"a": "0"}, {"a": "z"}}, []labels{{"a": "a"}, {"a": "k"}}},

		// contains, starts with, ends with: the label must be present.
		{`a contains "b"`, []labels{{"a": "b"}, {"a": "abc"}}, []labels{{}, {"a": "c"}, {"b": "b"}}},
		{`a contains ""`, []labels{{"a": ""}, {"a": "x"}}, []labels{{}}},
		{`a starts with "ab"`, []labels{{"a": "ab"}, {"a": "abc"}}, []labels{{}, {"a": "cab"}, {"a": "a"}}},
		{`a ends with "ab"`, []labels{{"a": "ab"}, {"a": "cab"}}, []labels{{}, {"a": "abc"}, {"a": "b"}}},
		{`!a contains "b"`, []labels{{}, {"a": "c"}}, []labels{{"a": "abc"}}},

		// Negation covers a whole operation and collapses in pairs.
		{`!a == "b"`, []labels{{}, {"a": "c"}}, []labels{{"a": "b"}}},
		{`!!a == "b"`, []labels{{"a": "b"}}, []labels{{}, {"a": "c"}}},
		{`!!!has(a)`, []labels{{}}, []labels{{"a": "b"}}},
		{`! ! has(a)`, []labels{{"a": "b"}}, []labels{{}}},
		{`!(!has(a))`, []labels{{"a": "b"}}, []labels{{}}},
		{`!a in {"x"}`, []labels{{}, {"a": "y"}}, []labels{{"a": "x"}}},
		{`!a != "b"`, []labels{{"a": "b"}}, []labels{{}, {"a": "c"}}},

		// && and ||, and their precedence.
		{`a == "1" && b == "2"`, []labels{{"a": "1", "b": "2"}}, []labels{{}, {"a": "1"}, {"b": "2"}, {"a": "1", "b": "3"}}},
		{`a == "1" || b == "2"`, []labels{{"a": "1"}, {"b": "2"}, {"a": "1", "b": "2"}}, []labels{{}, {"a": "2", "b": "1"}}},
		{`a == "1" || b == "2" && c == "3"`, []labels{{"a": "1"}, {"b": "2", "c": "3"}}, []labels{{"b": "2"}, {"c": "3"}}},
		{`a == "1" && b == "2" || c == "3"`, []labels{{"a": "1", "b": "2"}, {"c": "3"}}, []labels{{"a": "1"}, {"b": "2"}}},
		{`a == "1" && (b == "2" || c == "3")`, []labels{{"a": "1", "b": "2"}, {"a": "1", "c": "3"}}, []labels{{"c": "3"}, {"a": "1"}}},
		{`!has(a) && has(b)`, []labels{{"b": "x"}}, []labels{{"a": "x", "b": "x"}, {}}},
		{`!has(a) || has(b)`, []labels{{}, {"a": "x", "b": "x"}}, []labels{{"a": "x"}}},
		{`!(has(a) || has(b))`, []labels{{}, {"c": "x"}}, []labels{{"a": "x"}, {"b": "x"}}},
		{`!(has(a) && has(b))`, []labels{{}, {"a": "x"}}, []labels{{"a": "x", "b": "x"}}},
		{`!(!has(a) || has(b))`, []labels{{"a": "a"}}, []labels{{}, {"a": "a", "b": "b"}}},
		{`a != "1" && b != "2"`, []labels{{}, {"a": "2", "b": "1"}}, []labels{{"a": "1"}, {"b": "2"}}},
		{`((a == "1"))`, []labels{{"a": "1"}}, []labels{{}}},

		// Blanks are optional between tokens, and tabs count.
		{`a=="1"&&b!='2'||has(c)`, []labels{{"a": "1"}, {"c": ""}}, []labels{{"a": "1", "b": "2"}, {}}},
		{"\ta\t==\t\"1\"\t", []labels{{"a": "1"}}, []labels{{}}},
		{`a in{"1"}&&b not   in{"2"}`, []labels{{"a": "1"}}, []labels{{"a": "1", "b": "2"}}},
		{`a startswith "x" && b endswith "y" && c contains"z"`, []labels{{"a": "x1", "b": "1y", "c": "1z1"}}, []labels{{"a": "x1", "b": "1y"}}},
		{`a notin {"x"}`, []labels{{}}, []labels{{"a": "x"}}},
	}
	for _, tt := range tests {
		sel, err := Parse(tt.sel)
		if err != nil {
			t.Errorf("Parse(%q): %v", tt.sel, err)
			continue
		}
		again, err := Parse(sel.String())
		if err != nil {
			t.Errorf("Parse(%q) of canonical form of %q: %v", sel.String(), tt.sel, err)
			continue
		}
		for _, l := range tt.match {
			if !sel.Evaluate(l) {
				t.Errorf("%q does not match %v", tt.sel, l)
			}
			if !again.Evaluate(l) {
				t.Errorf("canonical %q does not match %v", again, l)
			}
		}
		for _, l := range tt.miss {
			if sel.Evaluate(l) {
				t.Errorf("%q matches %v", tt.sel, l)
			}
			if again.Evaluate(l) {
				t.Errorf("canonical %q matches %v", again, l)
			}
		}
	}
}

func TestString(t *testing.T) {
	tests := []struct{ in, want string }{
		{``, `all()`},
		{`   `, `all()`},
		{` ( all( ) ) `, `all()`},
		{`global()`, `global()`},
		{`has( a )`, `has(a)`},
		{`a=='b'`, `a == "b"`},
		{`a == '"'`, `a == '"'`},
		{`a == "'"`, `a == "'"`},
		{`a!='"'`, `a != '"'`},
		{`a contains 'x'`, `a contains "x"`},
		{`a startswith "x"`, `a starts with "x"`},
		{"a starts \t with 'x'", `a starts with "x"`},
		{`a endswith "x"`, `a ends with "x"`},
		{`a notin {'x'}`, `a not in {"x"}`},
		{`a in {}`, `a in {}`},
		{`a in {"z", "x", "y", "a", "x",}`, `a in {"a", "x", "y", "z"}`},
		{`a in {'"', "'"}`, `a in {'"', "'"}`},
		{`a == "b" && c == "d"`, `a == "b" && c == "d"`},
		{`(a == "b" && c == "d")`, `a == "b" && c == "d"`},
		{`a == "b" || c == "d"`, `a == "b" || c == "d"`},
		{`(a == "b") && ((c == "d"))`, `a == "b" && c == "d"`},
		// Grouping a chain of the same operator is redundant.
		{`(has(a) && has(b)) && has(c)`, `has(a) && has(b) && has(c)`},
		{`has(a) && (has(b) && has(c))`, `has(a) && has(b) && has(c)`},
		{`has(a) || (has(b) || has(c)) || has(d)`, `has(a) || has(b) || has(c) || has(d)`},
		// Parentheses stay where precedence needs them.
		{`has(a) || has(b) && has(c)`, `has(a) || has(b) && has(c)`},
		{`has(a) || (has(b) && has(c))`, `has(a) || has(b) && has(c)`},
		{`(has(a) || has(b)) && has(c)`, `(has(a) || has(b)) && has(c)`},
		{`has(a) && (has(b) || has(c)) && has(d)`, `has(a) && (has(b) || has(c)) && has(d)`},
		// Negation: one per operation, pairs dropped, parentheses kept for groups.
		{`!!has(a)`, `has(a)`},
		{`!(!has(a))`, `has(a)`},
		{`!(!(!has(a)))`, `!has(a)`},
		{`!(a == "b")`, `!a == "b"`},
		{`! (has( b)||! has(a ))`, `!(has(b) || !has(a))`},
		{`! (a == "b"&&! c != "d")`, `!(a == "b" && !c != "d")`},
		{`!(!(k == 'v' && has(t) || all()) && (a in {'b', 'c'}))`, `!(!(k == "v" && has(t) || all()) && a in {"b", "c"})`},
		{`!(has(a) && has(b)) || !(has(c) || has(d))`, `!(has(a) && has(b)) || !(has(c) || has(d))`},
	}
	for _, tt := range tests {
		sel, err := Parse(tt.in)
		if err != nil {
			t.Errorf("Parse(%q): %v", tt.in, err)
			continue
		}
		if got := sel.String(); got != tt.want {
			t.Errorf("Parse(%q).String() = %q, want %q", tt.in, got, tt.want)
		}
		again, err := Parse(sel.String())
		if err != nil {
			t.Errorf("Parse(%q): %v", sel.String(), err)
			continue
		}
		if again.String() != sel.String() || again.UniqueID() != sel.UniqueID() {
			t.Errorf("%q does not round-trip: %q %s, %q %s", tt.in, sel, sel.UniqueID(), again, again.UniqueID())
		}
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct{ in, want string }{
		{`a == `, `selector "a == ": expected a string literal at offset 5`},
		{`a == b`, `expected a string literal at offset 5`},
		{`a contains b`, `expected a string literal at offset 11`},
		{`a starts with b`, `expected a string literal at offset 14`},
		{`a ends with b`, `expected a string literal at offset 12`},
		{`'b' == a`, `expected a label key, has(), all(), global(), "!" or "(" at offset 0`},
		{`a == "b`, `unterminated string literal at offset 5`},
		{`a == 'b"`, `unterminated string literal at offset 5`},
		{`a in {"x", 'y}`, `unterminated string literal at offset 11`},
		{`"FOO`, `expected a label key, has(), all(), global(), "!" or "(" at offset 0`},
		{`a`, `expected an operator (==, !=, in, not in, contains, starts with, ends with) after label key "a" at offset 1`},
		{`a `, `expected an operator (==, !=, in, not in, contains, starts with, ends with) after label key "a" at offset 2`},
		{`a b`, `after label key "a" at offset 2`},
		{`a = "b"`, `after label key "a" at offset 2`},
		{`a starts "x"`, `expected "with" at offset 9`},
		{`a ends "x"`, `expected "with" at offset 7`},
		{`a not {"x"}`, `expected "in" at offset 6`},
		{`a in "x"`, `expected "{" at offset 5`},
		{`a in {"x" "y"}`, `expected "," or "}" at offset 10`},
		{`a in {,}`, `expected a string literal or "}" at offset 6`},
		{`a in {"x",,}`, `expected a string literal or "}" at offset 10`},
		{`a in {"x"`, `expected "," or "}" at offset 9`},
		{`!`, `expected a label key, has(), all(), global(), "!" or "(" at offset 1`},
		{`!= "a"`, `expected a label key, has(), all(), global(), "!" or "(" at offset 0`},
		{`has(a) &&`, `expected a label key, has(), all(), global(), "!" or "(" at offset 9`},
		{`has(a) ||`, `at offset 9`},
		{`has(a) & has(b)`, `expected "&&", "||" or end of selector at offset 7`},
		{`has(a) | has(b)`, `expected "&&", "||" or end of selector at offset 7`},
		{`has(a) has(b)`, `expected "&&", "||" or end of selector at offset 7`},
		{`a == "b" c`, `expected "&&", "||" or end of selector at offset 9`},
		{`a == "b")`, `expected "&&", "||" or end of selector at offset 8`},
		{`(`, `at offset 1`},
		{`()`, `at offset 1`},
		{`)`, `at offset 0`},
		{`(a == "b"`, `expected "&&", "||" or ")" at offset 9`},
		{`((has(a))`, `expected "&&", "||" or ")" at offset 9`},
		{`has()`, `expected a label key at offset 4`},
		{`has(a`, `expected ")" at offset 5`},
		{`has(a b)`, `expected ")" at offset 6`},
		{`has (a)`, `after label key "has" at offset 4`},
		{`all(x)`, `expected ")" at offset 4`},
		{`all ()`, `after label key "all" at offset 4`},
		{`global(`, `expected ")" at offset 7`},
		{`%`, `at offset 0`},
		{`a == "b" && %`, `at offset 12`},
		{"a == \"b\"\n", `expected "&&", "||" or end of selector at offset 8`},
		{`a.b == "c" && Foo/bar == "x"`, `invalid label key "Foo/bar" at offset 14: prefix must be a DNS subdomain`},
		{`has(-a)`, `invalid label key "-a" at offset 4: name must be`},
		{`a/b/c == "x"`, `invalid label key "a/b/c" at offset 0: more than one "/"`},
		{`/a == "x"`, `invalid label key "/a" at offset 0: empty prefix`},
		{`a/ == "x"`, `invalid label key "a/" at offset 0: empty name`},
		{strings.Repeat("k", 64) + ` == "x"`, `name longer than 63 characters`},
		{strings.Repeat("(", maxDepth+1) + `has(a)` + strings.Repeat(")", maxDepth+1), `parentheses nested deeper than 128 at offset 128`},
	}
	for _, tt := range tests {
		sel, err := Parse(tt.in)
		if err == nil {
			t.Errorf("Parse(%q) = %q, want error containing %q", tt.in, sel, tt.want)
			continue
		}
		if !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Parse(%q) error = %q, want it to contain %q", tt.in, err, tt.want)
		}
		if !strings.HasPrefix(err.Error(), "selector ") {
			t.Errorf("Parse(%q) error = %q, want it to name the selector", tt.in, err)
		}
	}
}

// TestNestingLimit checks that the limit itself is allowed and that the
// canonical form of a selector at the limit still parses: every && group
// used to be parenthesised, so alternating || and && doubled the depth.
func TestNestingLimit(t *testing.T) {
	for _, s := range []string{
		strings.Repeat("(", maxDepth) + `has(a)` + strings.Repeat(")", maxDepth),
		strings.Repeat(`has(a) || has(b) && (`, maxDepth) + `has(c)` + strings.Repeat(")", maxDepth),
		strings.Repeat(`!(has(a) && (`, maxDepth/2) + `has(c)` + strings.Repeat("))", maxDepth/2),
	} {
		sel, err := Parse(s)
		if err != nil {
			t.Errorf("Parse(%.40q...): %v", s, err)
			continue
		}
		again, err := Parse(sel.String())
		if err != nil {
			t.Errorf("Parse of canonical form of %.40q...: %v", s, err)
			continue
		}
		if again.String() != sel.String() {
			t.Errorf("canonical form of %.40q... is not stable", s)
		}
	}
}

func TestUniqueID(t *testing.T) {
	valid := regexp.MustCompile(`^[a-z][a-z0-9]{0,19}$`)
	seen := map[string]string{}
	for _, s := range []string{``, `has(a)`, `has(b)`, `a == "b"`, `a != "b"`, `a in {"b"}`, `global()`, `has(a) && has(b)`, `has(a) || has(b)`} {
		sel, err := Parse(s)
		if err != nil {
			t.Fatalf("Parse(%q): %v", s, err)
		}
		id := sel.UniqueID()
		if !valid.MatchString(id) || len(id) != 20 {
			t.Errorf("UniqueID of %q = %q, want 20 characters of [a-z0-9]", s, id)
		}
		if other, ok := seen[id]; ok {
			t.Errorf("%q and %q share UniqueID %q", s, other, id)
		}
		seen[id] = s
	}
	a, _ := Parse(` a=='b'&&(has(c)) `)
	b, _ := Parse(`a == "b" && has(c)`)
	if a.UniqueID() != b.UniqueID() {
		t.Errorf("equivalent selectors have UniqueIDs %q and %q", a.UniqueID(), b.UniqueID())
	}
	// A fixed value: the ID is stable across releases.
	if got, want := b.UniqueID(), uniqueID(`a == "b" && has(c)`); got != want {
		t.Errorf("UniqueID = %q, want %q", got, want)
	}
}

func TestZeroSelector(t *testing.T) {
	var nilSel *Selector
	all, _ := Parse("")
	for _, s := range []*Selector{nilSel, {}} {
		if !s.Evaluate(labels{"a": "b"}) || s.String() != "all()" || s.UniqueID() != all.UniqueID() {
			t.Errorf("zero selector: Evaluate false, or String %q, or UniqueID %q != %q", s.String(), s.UniqueID(), all.UniqueID())
		}
	}
}

func TestEvaluateDoesNotAllocate(t *testing.T) {
	sel, err := Parse(`(role == "db" || role starts with "cache") && env in {"a","b","c","d","e","f","g","h","i","prod"} && !has(quarantine) && global()`)
	if err != nil {
		t.Fatal(err)
	}
	l := labels{"role": "db", "env": "prod", "app": "x"}
	if !sel.Evaluate(l) {
		t.Fatalf("%q does not match %v", sel, l)
	}
	if n := testing.AllocsPerRun(100, func() { sel.Evaluate(l) }); n != 0 {
		t.Errorf("Evaluate allocates %v times per call", n)
	}
}

func TestValidateKey(t *testing.T) {
	good := []string{
		"a", "A", "0", "a-b_c.d", "app.kubernetes.io/name", "projectcalico.org/namespace",
		"example.com/A_b", "a/b", "1.2.3/x", strings.Repeat("a", 63),
		strings.Repeat("a", 253) + "/x", "pcns.kubernetes.io/metadata.name",
	}
	for _, k := range good {
		if err := ValidateKey(k); err != nil {
			t.Errorf("ValidateKey(%q): %v", k, err)
		}
	}
	bad := []string{
		"", "-a", "a-", "_a", ".a", "a.", "a b", "a=b", "a:b", "é", strings.Repeat("a", 64),
		"/a", "a/", "a/b/c", "Example.com/a", "example..com/a", "-example.com/a", "example-.com/a",
		"ex_ample.com/a", strings.Repeat("a", 254) + "/x", "example.com/-a",
	}
	for _, k := range bad {
		if err := ValidateKey(k); err == nil {
			t.Errorf("ValidateKey(%q) succeeded", k)
		} else if !strings.HasPrefix(err.Error(), "invalid label key ") {
			t.Errorf("ValidateKey(%q) error %q does not say what it checked", k, err)
		}
	}
}

func TestValidateValue(t *testing.T) {
	for _, v := range []string{"", "a", "Z9", "a-b_c.d", strings.Repeat("v", 63), "1.2.3"} {
		if err := ValidateValue(v); err != nil {
			t.Errorf("ValidateValue(%q): %v", v, err)
		}
	}
	for _, v := range []string{"-a", "a-", ".", "a b", "a/b", "é", strings.Repeat("v", 64), `"`} {
		if err := ValidateValue(v); err == nil {
			t.Errorf("ValidateValue(%q) succeeded", v)
		}
	}
}

func BenchmarkEvaluate(b *testing.B) {
	endpoint := labels{
		NamespaceLabel:                   "shop",
		"projectcalico.org/orchestrator": "k8s",
		"app.kubernetes.io/name":         "postgres",
		"role":                           "db",
		"env":                            "prod",
		"tier":                           "backend",
		"version":                        "v1.2.3",
		"pod-template-hash":              "7d9f8c6b5",
	}
	for _, bm := range []struct{ name, sel string }{
		{"eq", `role == "db"`},
		{"has", `has(role)`},
		{"and3", `role == "db" && env == "prod" && tier != "frontend"`},
		{"in", `env in {"prod", "staging"}`},
		{"in20", `env in {"a","b","c","d","e","f","g","h","i","j","k","l","m","n","o","p","q","r","s","prod"}`},
		{"complex", `(role == "db" || role starts with "cache") && env in {"prod", "staging"} && !has(quarantine) && projectcalico.org/namespace == "shop"`},
		{"miss", `app == "web" || role == "frontend" || has(quarantine)`},
	} {
		sel, err := Parse(bm.sel)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(bm.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				sel.Evaluate(endpoint)
			}
		})
	}
}

func BenchmarkParse(b *testing.B) {
	const s = `(role == "db" || role starts with "cache") && env in {"prod", "staging"} && !has(quarantine)`
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Parse(s); err != nil {
			b.Fatal(err)
		}
	}
}
