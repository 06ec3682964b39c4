package selector

import (
	"calico/internal/quote"
	"fmt"
	"slices"
	"strings"
)

// maxDepth bounds parenthesis nesting, and with it the recursion of the
// parser, the evaluator and the printer.
const maxDepth = 128

// Parse parses a selector. The empty selector, or one of only blanks, is
// all(). Errors name the selector, what was expected and the byte offset
// where it was expected.
func Parse(s string) (*Selector, error) {
	p := parser{src: s}
	root, err := p.parse()
	if err != nil {
		return nil, fmt.Errorf("selector %q: %w", quote.Clip(s), err)
	}
	var b strings.Builder
	root.write(&b, opAll)
	str := b.String()
	return &Selector{root: root, str: str, id: uniqueID(str)}, nil
}

// syntaxError is a parse failure at a byte offset of the selector.
type syntaxError struct {
	msg    string // what was expected, or what is wrong
	offset int
	detail string // optional, after the offset
}

func (e *syntaxError) Error() string {
	s := fmt.Sprintf("%s at offset %d", e.msg, e.offset)
	if e.detail != "" {
		s += ": " + e.detail
	}
	return s
}

// parser is a recursive-descent parser reading the source directly. It
// follows Calico's tokenizer: blanks are spaces and tabs; "has(", "all(" and
// "global(" are single tokens; the word operators after a label key are
// matched as prefixes, so `a startswith "x"` and `a in{"x"}` are accepted.
//
//	or      = and { "||" and }
//	and     = unary { "&&" unary }
//	unary   = { "!" } primary
//	primary = "(" or ")" | "all(" ")" | "global(" ")" | "has(" key ")" | key op
//	op      = ( "==" | "!=" | "contains" | "starts" "with" | "ends" "with" ) string
//	        | ( "in" | "not" "in" ) "{" [ string { "," string } [ "," ] ] "}"
type parser struct {
	src   string
	pos   int
	depth int
}

func (p *parser) parse() (node, error) {
	if p.skipBlanks(); p.pos == len(p.src) {
		return node{op: opAll}, nil
	}
	n, err := p.parseOr()
	if err != nil {
		return node{}, err
	}
	if p.skipBlanks(); p.pos != len(p.src) {
		return node{}, p.errorf(`expected "&&", "||" or end of selector`)
	}
	return n, nil
}

func (p *parser) parseOr() (node, error) {
	return p.parseList(opOr, "||", p.parseAnd)
}

func (p *parser) parseAnd() (node, error) {
	return p.parseList(opAnd, "&&", p.parseUnary)
}

// parseList parses operands separated by sep and joins them with o.
func (p *parser) parseList(o op, sep string, operand func() (node, error)) (node, error) {
	first, err := operand()
	if err != nil || !p.consume(sep) {
		return first, err
	}
	operands := []node{first}
	for {
		n, err := operand()
		if err != nil {
			return node{}, err
		}
		operands = append(operands, n)
		if !p.consume(sep) {
			return join(o, operands), nil
		}
	}
}

func (p *parser) parseUnary() (node, error) {
	negated := false
	for {
		p.skipBlanks()
		// "!=" is an operator, never a negation (as in Calico's tokenizer).
		if !p.has("!") || p.has("!=") {
			break
		}
		negated = !negated
		p.pos++
	}
	n, err := p.parsePrimary()
	if err != nil || !negated {
		return n, err
	}
	return negate(n), nil
}

func (p *parser) parsePrimary() (node, error) {
	p.skipBlanks()
	switch {
	case p.has("("):
		if p.depth >= maxDepth {
			return node{}, p.errorf("parentheses nested deeper than %d", maxDepth)
		}
		p.pos++
		p.depth++
		n, err := p.parseOr()
		if err != nil {
			return node{}, err
		}
		p.depth--
		if !p.consume(")") {
			return node{}, p.errorf(`expected "&&", "||" or ")"`)
		}
		return n, nil
	case p.has("all("):
		p.pos += len("all(")
		return node{op: opAll}, p.expect(")")
	case p.has("global("):
		p.pos += len("global(")
		return node{op: opGlobal}, p.expect(")")
	case p.has("has("):
		p.pos += len("has(")
		p.skipBlanks()
		key, err := p.parseKey("expected a label key")
		if err != nil {
			return node{}, err
		}
		return node{op: opHas, key: key}, p.expect(")")
	}
	key, err := p.parseKey(`expected a label key, has(), all(), global(), "!" or "("`)
	if err != nil {
		return node{}, err
	}
	return p.parseOperation(key)
}

// parseKey reads a label key at the current position and validates it.
func (p *parser) parseKey(expected string) (string, error) {
	start := p.pos
	for p.pos < len(p.src) && isKeyChar(p.src[p.pos]) {
		p.pos++
	}
	key := p.src[start:p.pos]
	if key == "" {
		return "", p.errorf("%s", expected)
	}
	if reason := keyProblem(key); reason != "" {
		return "", &syntaxError{msg: fmt.Sprintf("invalid label key %q", quote.Clip(key)), offset: start, detail: reason}
	}
	return key, nil
}

// parseOperation parses the operator and operand that follow a label key.
func (p *parser) parseOperation(key string) (node, error) {
	p.skipBlanks()
	var o op
	switch {
	case p.consume("=="):
		o = opEq
	case p.consume("!="):
		o = opNe
	case p.consume("contains"):
		o = opContains
	case p.consume("starts"):
		o = opStartsWith
		if err := p.expect("with"); err != nil {
			return node{}, err
		}
	case p.consume("ends"):
		o = opEndsWith
		if err := p.expect("with"); err != nil {
			return node{}, err
		}
	case p.consume("not"):
		if err := p.expect("in"); err != nil {
			return node{}, err
		}
		set, err := p.parseSet()
		return node{op: opNotIn, key: key, set: set}, err
	case p.consume("in"):
		set, err := p.parseSet()
		return node{op: opIn, key: key, set: set}, err
	default:
		return node{}, p.errorf("expected an operator (==, !=, in, not in, contains, starts with, ends with) after label key %q", quote.Clip(key))
	}
	v, err := p.parseString("expected a string literal")
	return node{op: o, key: key, value: v}, err
}

// parseSet parses a set literal; a trailing comma and the empty set are
// allowed, as in Calico.
func (p *parser) parseSet() ([]string, error) {
	if err := p.expect("{"); err != nil {
		return nil, err
	}
	var set []string
	for !p.consume("}") {
		v, err := p.parseString(`expected a string literal or "}"`)
		if err != nil {
			return nil, err
		}
		set = append(set, v)
		if p.consume(",") {
			continue
		}
		if !p.consume("}") {
			return nil, p.errorf(`expected "," or "}"`)
		}
		break
	}
	slices.Sort(set)
	return slices.Compact(set), nil
}

// parseString parses a literal in double or single quotes. There are no
// escapes: the literal ends at the next matching quote.
func (p *parser) parseString(expected string) (string, error) {
	p.skipBlanks()
	if !p.has(`"`) && !p.has("'") {
		return "", p.errorf("%s", expected)
	}
	start := p.pos
	end := strings.IndexByte(p.src[start+1:], p.src[start])
	if end < 0 {
		return "", p.errorf("unterminated string literal")
	}
	p.pos = start + 1 + end + 1
	return p.src[start+1 : start+1+end], nil
}

// skipBlanks skips spaces and tabs, the only blanks Calico allows.
func (p *parser) skipBlanks() {
	for p.pos < len(p.src) && (p.src[p.pos] == ' ' || p.src[p.pos] == '\t') {
		p.pos++
	}
}

// has reports whether the source continues with s at the current position.
func (p *parser) has(s string) bool {
	return strings.HasPrefix(p.src[p.pos:], s)
}

// consume skips blanks, then s if it comes next.
func (p *parser) consume(s string) bool {
	p.skipBlanks()
	if !p.has(s) {
		return false
	}
	p.pos += len(s)
	return true
}

// expect consumes s or fails saying it was expected.
func (p *parser) expect(s string) error {
	if !p.consume(s) {
		return p.errorf("expected %q", quote.Clip(s))
	}
	return nil
}

func (p *parser) errorf(format string, args ...any) error {
	return &syntaxError{msg: fmt.Sprintf(format, args...), offset: p.pos}
}
