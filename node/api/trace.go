package api

import "net/netip"

// TraceRequest asks how policy treats the first packet of a new flow
// from one workload to another (POST /v1/policy/trace).
type TraceRequest struct {
	From WorkloadRef `json:"from"`
	To   WorkloadRef `json:"to"`
	// Protocol is a name (TCP, UDP, SCTP, UDPLite, ICMP, ICMPv6, any
	// case) or a number; "" is TCP.
	Protocol string `json:"protocol,omitempty"`
	// Port is the destination port, which TCP, UDP, SCTP and UDPLite
	// need and no other protocol takes; SourcePort is optional.
	Port       *int `json:"port,omitempty"`
	SourcePort *int `json:"sourcePort,omitempty"`
	// ICMPType and ICMPCode go with ICMP and ICMPv6 only; the default is
	// an echo request (a ping).
	ICMPType *int `json:"icmpType,omitempty"`
	ICMPCode *int `json:"icmpCode,omitempty"`
	// IPVersion is 4 or 6; 0 is IPv4 when both workloads have an IPv4
	// address, else IPv6 (ICMP is IPv4's, ICMPv6 IPv6's).
	IPVersion int `json:"ipVersion,omitempty"`
}

// WorkloadRef names a workload: its name as `calico workload add` gave
// it (or its WorkloadEndpoint's name) in a namespace ("" is default).
type WorkloadRef struct {
	Namespace string `json:"namespace,omitempty"`
	Name      string `json:"name"`
}

// Trace is how policy treats a packet: the source workload's egress,
// then the destination's ingress, each as the policies and profiles that
// apply in evaluation order.
type Trace struct {
	IPVersion   int        `json:"ipVersion"`
	Protocol    string     `json:"protocol"`
	Source      netip.Addr `json:"source"`
	Destination netip.Addr `json:"destination"`
	Port        *int       `json:"port,omitempty"`
	SourcePort  *int       `json:"sourcePort,omitempty"`
	ICMPType    *int       `json:"icmpType,omitempty"`
	ICMPCode    *int       `json:"icmpCode,omitempty"`

	Egress  TraceDirection `json:"egress"`
	Ingress TraceDirection `json:"ingress"`
	Allowed bool           `json:"allowed"`
	// Reason says which direction decided, and how.
	Reason string `json:"reason"`

	// Revision is the datastore revision of the node's copy that was
	// traced; Live is false when that copy is not following the datastore
	// right now (it is then the node's saved state).
	Revision int64 `json:"revision"`
	Live     bool  `json:"live"`
	// Problems are resources the calculation could not use.
	Problems []string `json:"problems,omitempty"`
}

// TraceDirection is one direction of a Trace.
type TraceDirection struct {
	Direction string `json:"direction"` // egress, ingress
	Workload  string `json:"workload"`  // namespace/name
	Node      string `json:"node"`
	Allowed   bool   `json:"allowed"`
	Reason    string `json:"reason"`
	// Steps are the policies, then the profiles, in evaluation order, and
	// any profile the workload names that does not exist.
	Steps []TraceStep `json:"steps"`
}

// TraceStep is one policy or profile of a direction.
type TraceStep struct {
	Kind      string `json:"kind"`
	Namespace string `json:"namespace,omitempty"`
	Name      string `json:"name"`
	// Outcome is allow, deny, pass, "no rule matched", "skipped (an
	// earlier policy passed)", "not reached" or "does not exist (allows
	// nothing)".
	Outcome string `json:"outcome"`
	// Rules are the rules that matched, in order: Log rules, which log
	// and continue, then the one that decided, if any.
	Rules []TraceRule `json:"rules,omitempty"`
	// Notes say where the trace had to assume something.
	Notes []string `json:"notes,omitempty"`
}

// TraceRule is one rule that matched.
type TraceRule struct {
	Index  int    `json:"index"`
	Action string `json:"action"`
	// Match describes what the rule matches.
	Match string `json:"match"`
}
