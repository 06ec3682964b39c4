// Package quote keeps what error messages quote of a user's input short:
// a bad value is named, not echoed whole (a 10 MB label gives a short
// error, not a 10 MB one).
package quote

import "fmt"

// max is how many bytes of a value a message quotes.
const max = 40

// Clip is s, or its first bytes and how long it was when it is longer
// than a message should quote.
func Clip(s string) string {
	if len(s) <= max {
		return s
	}
	cut := max
	for cut > 0 && s[cut]&0xc0 == 0x80 { // not in the middle of a rune
		cut--
	}
	return fmt.Sprintf("%s… (%d bytes)", s[:cut], len(s))
}
