package agent

import (
	"bytes"
	"errors"
	"log/slog"
	"net/netip"
	"strings"
	"testing"

	"calico/nft"
	"calico/node/calc"
	"calico/node/route"
)

// TestProblemsOnce: a problem is logged and counted once when it appears,
// is listed while it lasts, clears when fixed and counts again if it
// comes back.
func TestProblemsOnce(t *testing.T) {
	var buf bytes.Buffer
	p := newProblems(slog.New(slog.NewTextHandler(&buf, nil)))
	bad := Problem{Kind: ProblemBGP, Resource: "BGP peer 172.31.1.12", Message: "not established"}
	data := Problem{Kind: ProblemData, Resource: `GlobalNetworkPolicy "x"`, Field: "spec.selector", Message: "cannot be parsed"}
	p.set("bgp", []Problem{bad})
	p.set("agent", []Problem{data})
	p.set("bgp", []Problem{bad})
	if n := strings.Count(buf.String(), "level=WARN"); n != 2 {
		t.Errorf("%d lines logged, want 2:\n%s", n, buf.String())
	}
	if got := p.all(); len(got) != 2 || got[0] != bad || got[1] != data {
		t.Errorf("all: %v", got)
	}
	p.set("bgp", nil)
	if got := p.all(); len(got) != 1 {
		t.Errorf("after the fix: %v", got)
	}
	p.set("bgp", []Problem{bad})
	if c := p.counts(); c[ProblemBGP] != 2 || c[ProblemData] != 1 {
		t.Errorf("counts %v", c)
	}
}

func TestDataProblems(t *testing.T) {
	got := dataProblems(calc.Desired{Problems: []string{`GlobalNetworkPolicy "x": spec.selector: cannot be parsed: a: b`, `Profile "p": cannot be read`}})
	want := []Problem{
		{Kind: ProblemData, Resource: `GlobalNetworkPolicy "x"`, Field: "spec.selector", Message: "cannot be parsed: a: b"},
		{Kind: ProblemData, Resource: `Profile "p"`, Message: "cannot be read"},
	}
	if len(got) != 2 || got[0] != want[0] || got[1] != want[1] {
		t.Errorf("got %+v", got)
	}
	if got[0].String() != `GlobalNetworkPolicy "x": spec.selector: cannot be parsed: a: b` {
		t.Errorf("String: %s", got[0])
	}
}

func TestRouteProblems(t *testing.T) {
	dst, other := netip.MustParsePrefix("10.65.0.7/32"), netip.MustParsePrefix("10.65.0.8/32")
	ps, err := routeProblems(&route.Failed{Missing: []route.Route{{Dst: dst, Iface: "cali123"}}, Dsts: []netip.Prefix{dst}})
	if err != nil || len(ps) != 1 || ps[0].Kind != ProblemInterface || !strings.Contains(ps[0].Message, "cali123") {
		t.Errorf("missing interface: %v %v", ps, err)
	}
	if ps, err := routeProblems(errors.New("netlink down")); err == nil || ps != nil {
		t.Errorf("another error: %v %v", ps, err)
	}
	ps, err = routeProblems(&route.Failed{Dsts: []netip.Prefix{other}})
	if err == nil || len(ps) != 1 || ps[0].Kind != ProblemRoute || ps[0].Resource != "route 10.65.0.8/32" {
		t.Errorf("refused: %v %v", ps, err)
	}
}

func TestFailsafeProblems(t *testing.T) {
	rs := nft.Ruleset{HostEndpoints: []nft.HostEndpoint{{}}, FailsafeIn: []nft.ProtoPort{{Protocol: 6, Port: 22}}}
	for _, need := range needsFailsafe {
		rs.FailsafeOut = append(rs.FailsafeOut, need)
	}
	ps := failsafeProblems(rs)
	if len(ps) != 1 || ps[0].Field != "failsafeInboundHostPorts" || !strings.Contains(ps[0].Message, "tcp 2379") {
		t.Errorf("got %v", ps)
	}
	if ps := failsafeProblems(nft.Ruleset{}); ps != nil {
		t.Errorf("without host endpoints: %v", ps)
	}
}
