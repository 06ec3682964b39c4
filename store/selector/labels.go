package selector

import (
	"calico/internal/quote"
	"fmt"
	"strings"
)

// ValidateKey checks a label key against the Kubernetes rules for qualified
// names: an optional prefix that is a DNS subdomain of at most 253
// characters followed by "/", then a name of at most 63 characters of
// letters, digits, '-', '_' and '.', starting and ending with a letter or
// digit.
func ValidateKey(k string) error {
	if reason := keyProblem(k); reason != "" {
		return fmt.Errorf("invalid label key %q: %s", quote.Clip(k), reason)
	}
	return nil
}

// ValidateValue checks a label value against the Kubernetes rules: empty, or
// at most 63 characters of letters, digits, '-', '_' and '.', starting and
// ending with a letter or digit.
func ValidateValue(v string) error {
	switch {
	case v == "":
		return nil
	case len(v) > 63:
		return fmt.Errorf("invalid label value %q: longer than 63 characters", quote.Clip(v))
	case !isName(v):
		return fmt.Errorf("invalid label value %q: must be letters, digits, '-', '_' and '.', starting and ending with a letter or digit", quote.Clip(v))
	}
	return nil
}

// keyProblem says what is wrong with a label key, or returns "".
func keyProblem(k string) string {
	name := k
	if prefix, rest, found := strings.Cut(k, "/"); found {
		name = rest
		switch {
		case strings.IndexByte(rest, '/') >= 0:
			return `more than one "/"`
		case prefix == "":
			return `empty prefix before "/"`
		case len(prefix) > 253:
			return "prefix longer than 253 characters"
		case !isDNSSubdomain(prefix):
			return "prefix must be a DNS subdomain: lower-case letters, digits, '-' and '.', each part starting and ending with a letter or digit"
		}
	}
	switch {
	case name == "":
		return "empty name"
	case len(name) > 63:
		return "name longer than 63 characters"
	case !isName(name):
		return "name must be letters, digits, '-', '_' and '.', starting and ending with a letter or digit"
	}
	return ""
}

// isName reports whether s is non-empty, made of [A-Za-z0-9_.-], and starts
// and ends with [A-Za-z0-9].
func isName(s string) bool {
	if s == "" || !isAlnum(s[0]) || !isAlnum(s[len(s)-1]) {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !isAlnum(c) && c != '-' && c != '_' && c != '.' {
			return false
		}
	}
	return true
}

// isDNSSubdomain reports whether s is dot-separated parts of [a-z0-9-],
// each starting and ending with [a-z0-9]. The caller checks the length.
func isDNSSubdomain(s string) bool {
	for part := range strings.SplitSeq(s, ".") {
		if part == "" || !isLowerAlnum(part[0]) || !isLowerAlnum(part[len(part)-1]) {
			return false
		}
		for i := 0; i < len(part); i++ {
			if c := part[i]; !isLowerAlnum(c) && c != '-' {
				return false
			}
		}
	}
	return true
}

func isAlnum(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9'
}

func isLowerAlnum(c byte) bool {
	return 'a' <= c && c <= 'z' || '0' <= c && c <= '9'
}

// isKeyChar reports whether c can appear in a label key as Calico's
// tokenizer reads one; the key is then checked with keyProblem.
func isKeyChar(c byte) bool {
	return isAlnum(c) || c == '_' || c == '.' || c == '/' || c == '-'
}
