package localapi

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"calico/node/api"
	"calico/node/calc"
	"calico/store"
)

func (s *Server) traceRoutes(mux *http.ServeMux) {
	mux.HandleFunc("POST /v1/policy/trace", handleBody(s, s.PolicyTrace))
}

// PolicyTrace says how policy treats the first packet of a new flow
// between two workloads, computed from the node's copy of the datastore
// by the agent's own calculation.
func (s *Server) PolicyTrace(_ context.Context, req api.TraceRequest) (*api.Trace, error) {
	pkt, proto, err := TracePacket(req)
	if err != nil {
		return nil, api.Errorf(api.BadRequest, "%w", err)
	}
	in, rev, ok := s.Agent.View()
	if !ok {
		return nil, api.Errorf(api.Unavailable, "the node has no copy of the datastore yet (see `calico status`)")
	}
	live := s.Agent.Sync().Live
	from, err := findWorkload(in, req.From)
	if err != nil {
		return nil, err
	}
	to, err := findWorkload(in, req.To)
	if err != nil {
		return nil, err
	}
	r, err := calc.Trace(in, from, to, pkt)
	if err != nil {
		return nil, api.Errorf(api.BadRequest, "%w", err)
	}
	out := &api.Trace{
		IPVersion: r.IPVersion, Protocol: proto.String(), Source: r.Src, Destination: r.Dst,
		Port: req.Port, SourcePort: req.SourcePort,
		Egress:  traceDirection("egress", from, r.Egress),
		Ingress: traceDirection("ingress", to, r.Ingress),
		Allowed: r.Allowed, Reason: r.Reason, Revision: rev, Live: live, Problems: r.Problems,
	}
	if pkt.Protocol == 1 || pkt.Protocol == 58 {
		typ, code := int(pkt.ICMPType), int(pkt.ICMPCode)
		out.ICMPType, out.ICMPCode = &typ, &code
	}
	return out, nil
}

func traceDirection(dir string, w *store.WorkloadEndpoint, p calc.PathTrace) api.TraceDirection {
	out := api.TraceDirection{Direction: dir, Workload: p.Endpoint, Node: w.Spec.Node, Allowed: p.Allowed, Reason: p.Reason, Steps: []api.TraceStep{}}
	for _, s := range p.Steps {
		st := api.TraceStep{Kind: s.Kind, Namespace: s.Namespace, Name: s.Name, Outcome: string(s.Outcome), Notes: s.Notes}
		for _, h := range s.Rules {
			st.Rules = append(st.Rules, api.TraceRule{Index: h.Index, Action: h.Action, Match: h.Rule})
		}
		out.Steps = append(out.Steps, st)
	}
	return out
}

// TracePacket checks a trace request's packet and fills in its defaults:
// TCP, and an echo request for ICMP. It needs no node, so the CLI checks
// its flags with it too.
func TracePacket(req api.TraceRequest) (calc.Packet, store.Protocol, error) {
	proto := store.Protocol{Name: "TCP", Num: 6}
	if req.Protocol != "" {
		var err error
		if proto, err = store.ParseProtocol(req.Protocol); err != nil {
			return calc.Packet{}, proto, fmt.Errorf("--protocol: %w", err)
		}
	}
	pkt := calc.Packet{Protocol: proto.Num, IPVersion: req.IPVersion}
	if v := req.IPVersion; v != 0 && v != 4 && v != 6 {
		return pkt, proto, fmt.Errorf("--ip-version %d is not 4 or 6", v)
	}
	if err := tracePorts(req, proto, &pkt); err != nil {
		return pkt, proto, err
	}
	return pkt, proto, traceICMP(req, proto, &pkt)
}

// tracePorts reads --port and --source-port, which go with the protocols
// that have ports.
func tracePorts(req api.TraceRequest, proto store.Protocol, pkt *calc.Packet) error {
	if !calc.HasPorts(proto.Num) {
		if req.Port != nil || req.SourcePort != nil {
			return fmt.Errorf("%s has no ports: --port and --source-port go with TCP, UDP, SCTP and UDPLite", proto)
		}
		return nil
	}
	if req.Port == nil {
		return fmt.Errorf("%s needs --port (the destination port)", proto)
	}
	for _, f := range []struct {
		flag string
		v    *int
		to   *uint16
	}{{"port", req.Port, &pkt.DstPort}, {"source-port", req.SourcePort, &pkt.SrcPort}} {
		if f.v == nil {
			continue
		}
		if *f.v < 1 || *f.v > 65535 {
			return fmt.Errorf("--%s %d is not a port (1-65535)", f.flag, *f.v)
		}
		*f.to = uint16(*f.v)
	}
	return nil
}

// traceICMP reads --icmp-type and --icmp-code, which go with ICMP and
// ICMPv6 (default: an echo request).
func traceICMP(req api.TraceRequest, proto store.Protocol, pkt *calc.Packet) error {
	icmp := proto.Num == 1 || proto.Num == 58
	switch {
	case !icmp && (req.ICMPType != nil || req.ICMPCode != nil):
		return fmt.Errorf("--icmp-type and --icmp-code go with ICMP and ICMPv6, not %s", proto)
	case req.ICMPCode != nil && req.ICMPType == nil:
		return errors.New("--icmp-code needs --icmp-type")
	case req.ICMPType == nil && proto.Num == 1:
		pkt.ICMPType = 8 // echo request
	case req.ICMPType == nil && proto.Num == 58:
		pkt.ICMPType = 128
	}
	for _, f := range []struct {
		flag string
		v    *int
		to   *uint8
	}{{"icmp-type", req.ICMPType, &pkt.ICMPType}, {"icmp-code", req.ICMPCode, &pkt.ICMPCode}} {
		if f.v == nil {
			continue
		}
		if *f.v < 0 || *f.v > 255 {
			return fmt.Errorf("--%s %d is not 0-255", f.flag, *f.v)
		}
		*f.to = uint8(*f.v)
	}
	return nil
}

// findWorkload is the endpoint of a workload named as `calico workload
// add` names it, or by its WorkloadEndpoint's name, on any node.
func findWorkload(in calc.Input, ref api.WorkloadRef) (*store.WorkloadEndpoint, error) {
	if ref.Name == "" {
		return nil, errors.New("give a workload name")
	}
	ns := ref.Namespace
	if ns == "" {
		ns = "default"
	}
	var found []*store.WorkloadEndpoint
	var elsewhere []string
	for _, w := range in.Workloads {
		if w.Spec.Workload != ref.Name && w.Metadata.Name != ref.Name {
			continue
		}
		if w.Metadata.Namespace == ns {
			found = append(found, w)
		} else if !slices.Contains(elsewhere, w.Metadata.Namespace) {
			elsewhere = append(elsewhere, w.Metadata.Namespace)
		}
	}
	switch len(found) {
	case 1:
		return found[0], nil
	case 0:
		err := fmt.Sprintf("workload %s does not exist in namespace %s", ref.Name, ns)
		if len(elsewhere) > 0 {
			slices.Sort(elsewhere)
			err += fmt.Sprintf(" (found in namespace %s)", strings.Join(elsewhere, ", "))
		}
		return nil, api.Errorf(api.NotFound, "%s", err)
	}
	var names []string
	for _, w := range found {
		names = append(names, w.Metadata.Name+" on "+w.Spec.Node)
	}
	slices.Sort(names)
	return nil, api.Errorf(api.BadRequest, "workload %s is on several nodes in namespace %s: give its endpoint's name (%s)", ref.Name, ns, strings.Join(names, ", "))
}
