package store

import (
	"bytes"
	"calico/internal/quote"
	"encoding/json"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"sync"
)

// Protocol is an IP protocol given by name (TCP, UDP, ICMP, ICMPv6, SCTP,
// UDPLite) or by number (1-255), as in Calico.
type Protocol struct {
	Name string
	Num  uint8
}

var protocolNumbers = map[string]uint8{
	"TCP": 6, "UDP": 17, "ICMP": 1, "ICMPv6": 58, "SCTP": 132, "UDPLite": 136,
}

// ParseProtocol reads a protocol name (any case) or number.
func ParseProtocol(s string) (Protocol, error) {
	for name, num := range protocolNumbers {
		if strings.EqualFold(s, name) {
			return Protocol{Name: name, Num: num}, nil
		}
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > 255 {
		return Protocol{}, fmt.Errorf("%q is not a protocol (TCP, UDP, ICMP, ICMPv6, SCTP, UDPLite or 1-255)", quote.Clip(s))
	}
	return Protocol{Num: uint8(n)}, nil
}

func (p Protocol) String() string {
	if p.Name != "" {
		return p.Name
	}
	return strconv.Itoa(int(p.Num))
}

// HasPorts reports whether the protocol has ports.
func (p Protocol) HasPorts() bool {
	return p.Num == 6 || p.Num == 17 || p.Num == 132 || p.Num == 136
}

func (p Protocol) MarshalJSON() ([]byte, error) {
	if p.Name != "" {
		return json.Marshal(p.Name)
	}
	return json.Marshal(p.Num)
}

func (p *Protocol) UnmarshalJSON(b []byte) error {
	s, err := numOrString(b)
	if err != nil {
		return fmt.Errorf("protocol: %w", err)
	}
	*p, err = ParseProtocol(s)
	return err
}

// Port is a port number, a range "first:last", or a named port: the port
// an endpoint gives that name (in its spec.ports).
type Port struct {
	First, Last uint16
	Name        string
}

var portNameRE = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[a-zA-Z0-9_.-]{1,128}$`) })

// ParsePort reads "80", "6000:6010" or a port's name ("http").
func ParsePort(s string) (Port, error) {
	if portNameRE().MatchString(s) && strings.ContainsFunc(s, func(r rune) bool { return r < '0' || r > '9' }) {
		return Port{Name: s}, nil
	}
	first, last, isRange := strings.Cut(s, ":")
	a, err1 := strconv.ParseUint(first, 10, 16)
	b, err2 := a, error(nil)
	if isRange {
		b, err2 = strconv.ParseUint(last, 10, 16)
	}
	switch {
	case err1 != nil || err2 != nil:
		return Port{}, fmt.Errorf("%q is not a port (0-65535) or a range \"first:last\"", quote.Clip(s))
	case a > b:
		return Port{}, fmt.Errorf("port range %q ends before it starts", quote.Clip(s))
	}
	return Port{First: uint16(a), Last: uint16(b)}, nil
}

func (p Port) String() string {
	if p.Name != "" {
		return p.Name
	}
	if p.First == p.Last {
		return strconv.Itoa(int(p.First))
	}
	return fmt.Sprintf("%d:%d", p.First, p.Last)
}

func (p Port) MarshalJSON() ([]byte, error) {
	if p.Name == "" && p.First == p.Last {
		return json.Marshal(p.First)
	}
	return json.Marshal(p.String())
}

func (p *Port) UnmarshalJSON(b []byte) error {
	s, err := numOrString(b)
	if err != nil {
		return fmt.Errorf("port: %w", err)
	}
	*p, err = ParsePort(s)
	return err
}

// ASNumber is a BGP AS number, given as a number or in dotted form
// ("1.10").
type ASNumber uint32

// ParseASNumber reads "64512" or "1.10".
func ParseASNumber(s string) (ASNumber, error) {
	if hi, lo, ok := strings.Cut(s, "."); ok {
		h, err1 := strconv.ParseUint(hi, 10, 16)
		l, err2 := strconv.ParseUint(lo, 10, 16)
		if err1 != nil || err2 != nil {
			return 0, fmt.Errorf("%q is not an AS number", quote.Clip(s))
		}
		return ASNumber(h<<16 | l), nil
	}
	n, err := strconv.ParseUint(s, 10, 32)
	if err != nil {
		return 0, fmt.Errorf("%q is not an AS number (1-4294967295)", quote.Clip(s))
	}
	return ASNumber(n), nil
}

func (a *ASNumber) UnmarshalJSON(b []byte) error {
	s, err := numOrString(b)
	if err != nil {
		return fmt.Errorf("AS number: %w", err)
	}
	*a, err = ParseASNumber(s)
	return err
}

// numOrString returns a JSON number or string as a string.
func numOrString(b []byte) (string, error) {
	b = bytes.TrimSpace(b)
	if len(b) > 0 && b[0] == '"' {
		var s string
		err := json.Unmarshal(b, &s)
		return s, err
	}
	var n json.Number
	if err := json.Unmarshal(b, &n); err != nil {
		return "", fmt.Errorf("%s is neither a number nor a string", b)
	}
	return n.String(), nil
}
