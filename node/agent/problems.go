package agent

import (
	"cmp"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"

	"calico/nft"
	"calico/node/calc"
	"calico/node/route"
)

// A Problem is something the node had to refuse, skip or retry: data it
// cannot use as written, a route the kernel refused or that waits for its
// interface, a BGP session that does not establish, a clock that drifts.
// Each is logged once when it appears, counted in the node's metrics and
// listed by `calico status` until it is fixed.
type Problem struct {
	// Kind groups problems for the metrics: data, interface, route, bgp,
	// failsafe, clock, disk.
	Kind string `json:"kind"`
	// Resource is what the problem concerns ("GlobalNetworkPolicy
	// \"web\"", "route 10.65.0.7/32", "BGP peer 172.31.1.12").
	Resource string `json:"resource"`
	// Field is the field of the resource at fault, if one is.
	Field   string `json:"field,omitempty"`
	Message string `json:"message"`
}

func (p Problem) String() string {
	if p.Field == "" {
		return p.Resource + ": " + p.Message
	}
	return p.Resource + ": " + p.Field + ": " + p.Message
}

// Problem kinds.
const (
	ProblemData      = "data"
	ProblemInterface = "interface"
	ProblemRoute     = "route"
	ProblemBGP       = "bgp"
	ProblemFailsafe  = "failsafe"
	ProblemClock     = "clock"
	ProblemDisk      = "disk"
)

// problems are the problems of every source (the agent's passes, and
// what the node's other loops report), each logged once when it appears.
type problems struct {
	log *slog.Logger

	mu       sync.Mutex
	bySource map[string][]Problem
	logged   map[string]bool // by String(), of every source
	// reported counts the problems that appeared, by kind.
	reported map[string]uint64
}

func newProblems(log *slog.Logger) *problems {
	return &problems{log: log, bySource: map[string][]Problem{}, logged: map[string]bool{}, reported: map[string]uint64{}}
}

// set replaces one source's problems, logging those that are new.
func (p *problems) set(source string, ps []Problem) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.bySource[source] = ps
	now := make(map[string]bool, len(p.logged))
	for _, list := range p.bySource {
		for _, x := range list {
			s := x.String()
			if !p.logged[s] && !now[s] {
				p.log.Warn("problem: "+problemVerb(x.Kind), "kind", x.Kind, "problem", s)
				p.reported[x.Kind]++
			}
			now[s] = true
		}
	}
	p.logged = now
}

// problemVerb is what the node does about a kind of problem.
func problemVerb(kind string) string {
	switch kind {
	case ProblemData:
		return "data the node cannot use as written; enforced fail-closed"
	case ProblemInterface, ProblemRoute:
		return "a route the node cannot program yet; retried"
	}
	return "reported until it is fixed"
}

// all are the problems of every source, sorted.
func (p *problems) all() []Problem {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []Problem
	for _, list := range p.bySource {
		out = append(out, list...)
	}
	slices.SortFunc(out, func(a, b Problem) int {
		return cmp.Or(strings.Compare(a.Kind, b.Kind), strings.Compare(a.String(), b.String()))
	})
	return slices.CompactFunc(out, func(a, b Problem) bool { return a == b })
}

// counts are how many problems appeared so far, by kind.
func (p *problems) counts() map[string]uint64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make(map[string]uint64, len(p.reported))
	for k, v := range p.reported {
		out[k] = v
	}
	return out
}

// dataProblems are the calculation's problems: "<resource>: <field>:
// <message>", or "<resource>: <message>".
func dataProblems(d calc.Desired) []Problem {
	out := make([]Problem, 0, len(d.Problems))
	for _, s := range d.Problems {
		parts := strings.SplitN(s, ": ", 3)
		switch len(parts) {
		case 3:
			out = append(out, Problem{Kind: ProblemData, Resource: parts[0], Field: parts[1], Message: parts[2]})
		case 2:
			out = append(out, Problem{Kind: ProblemData, Resource: parts[0], Message: parts[1]})
		default:
			out = append(out, Problem{Kind: ProblemData, Resource: "datastore", Message: s})
		}
	}
	return out
}

// routeProblems takes the routes that wait for their interface and those
// the kernel refused out of a route error, as problems: another tool may
// have written a workload endpoint whose interface is not on this host.
// The route driver looks for the interface again with back-off and
// retries the rest every pass; the rest of the node goes on. What is left
// of the error is returned.
func routeProblems(err error) ([]Problem, error) {
	var f *route.Failed
	if !errors.As(err, &f) {
		return nil, err
	}
	var out []Problem
	missing := map[string]bool{}
	for _, r := range f.Missing {
		missing[r.Dst.String()] = true
		out = append(out, Problem{Kind: ProblemInterface, Resource: "route " + r.Dst.String(), Field: "interface",
			Message: fmt.Sprintf("waits for interface %s, which does not exist on this host (a WorkloadEndpoint without its interface?); looked for again with back-off", r.Iface)})
	}
	why := "the kernel refused it"
	if f.Unwrap() != nil {
		why += " (" + firstLine(f.Unwrap().Error()) + ")"
	}
	for _, d := range f.Dsts {
		if !missing[d.String()] {
			out = append(out, Problem{Kind: ProblemRoute, Resource: "route " + d.String(), Message: why + "; retried every pass"})
		}
	}
	if len(f.Missing) > 0 && f.Unwrap() == nil {
		return out, nil
	}
	return out, err
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return s
}

// SetProblems replaces the problems one of the node's loops reports
// (source names the loop: "bgp", "clock"); they are listed with the
// agent's own.
func (a *Agent) SetProblems(source string, ps []Problem) { a.problems.set(source, ps) }

// Problems are every problem the node has now, sorted by kind.
func (a *Agent) Problems() []Problem { return a.problems.all() }

// ProblemsReported counts the problems that appeared since the start, by
// kind (one that is fixed and comes back counts again).
func (a *Agent) ProblemsReported() map[string]uint64 { return a.problems.counts() }

// needsFailsafe are the ports the cluster itself needs open while host
// endpoints are under policy: BGP, etcd, gossip, the join API and the
// liveness check.
var needsFailsafe = []nft.ProtoPort{{Protocol: 6, Port: 179}, {Protocol: 6, Port: 2379}, {Protocol: 6, Port: 2380},
	{Protocol: 6, Port: 7946}, {Protocol: 17, Port: 7946}, {Protocol: 6, Port: 7947}, {Protocol: 17, Port: 7948}}

// failsafeProblems reports a failsafe override that leaves out a port
// the cluster needs: a host endpoint policy may then cut this host off
// its peers, unless a policy allows the port.
func failsafeProblems(rs nft.Ruleset) []Problem {
	if len(rs.HostEndpoints) == 0 {
		return nil
	}
	var out []Problem
	for _, dir := range []struct {
		field string
		pps   []nft.ProtoPort
	}{{"failsafeInboundHostPorts", rs.FailsafeIn}, {"failsafeOutboundHostPorts", rs.FailsafeOut}} {
		var missing []string
		for _, need := range needsFailsafe {
			if !slices.ContainsFunc(dir.pps, func(p nft.ProtoPort) bool {
				return p.Protocol == need.Protocol && p.Port == need.Port && (!p.Net.IsValid() || p.Net.Bits() == 0)
			}) {
				missing = append(missing, fmt.Sprintf("%s %d", protoName(need.Protocol), need.Port))
			}
		}
		if len(missing) > 0 {
			out = append(out, Problem{Kind: ProblemFailsafe, Resource: "FelixConfiguration", Field: dir.field,
				Message: "the failsafe ports in force leave out " + strings.Join(missing, ", ") + ", which the cluster uses: host endpoint policy must allow them or this host may lose its peers"})
		}
	}
	return out
}

func protoName(p uint8) string {
	if p == 17 {
		return "udp"
	}
	return "tcp"
}
