package cli

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"

	"calico/node/api"

	ucli "github.com/urfave/cli/v3"
)

func policyTraceCommand() *ucli.Command {
	return &ucli.Command{
		Name:  "trace",
		Usage: "which policies and profiles a new flow from one workload to another meets, which rules match, and whether it is allowed",
		Description: "The egress of --from, then the ingress of --to, evaluated from the node's copy of the datastore by the\n" +
			"agent's own calculation. Workloads are named as `workload add` names them, as NAMESPACE/NAME, or by their\n" +
			"WorkloadEndpoint's name; they may be on any host.",
		Flags: []ucli.Flag{
			dataDirFlag(),
			&ucli.StringFlag{Name: "from", Usage: "the source workload `NAME` (or NAMESPACE/NAME)"},
			&ucli.StringFlag{Name: "to", Usage: "the destination workload `NAME` (or NAMESPACE/NAME)"},
			&ucli.StringFlag{Name: "namespace", Aliases: []string{"n"}, Value: "default", Usage: "the namespace of both workloads"},
			&ucli.StringFlag{Name: "from-namespace", Usage: "the source workload's namespace (default: --namespace)"},
			&ucli.StringFlag{Name: "to-namespace", Usage: "the destination workload's namespace (default: --namespace)"},
			&ucli.StringFlag{Name: "protocol", Aliases: []string{"p"}, Value: "tcp", Usage: "tcp, udp, sctp, udplite, icmp, icmpv6 or a number"},
			&ucli.IntFlag{Name: "port", Usage: "the destination port (TCP, UDP, SCTP, UDPLite)"},
			&ucli.IntFlag{Name: "source-port", Usage: "the source port (default: unknown; a rule on source ports then does not match)"},
			&ucli.IntFlag{Name: "icmp-type", Usage: "the ICMP or ICMPv6 type (default: echo request)"},
			&ucli.IntFlag{Name: "icmp-code", Usage: "the ICMP or ICMPv6 code (default 0)"},
			&ucli.IntFlag{Name: "ip-version", Usage: "4 or 6 (default: IPv4 if both workloads have an IPv4 address, else IPv6)"},
			outputFlag("json"),
		},
		Action: func(ctx context.Context, c *ucli.Command) error {
			if err := noArgs(c); err != nil {
				return err
			}
			format := c.String("output")
			if err := checkFormat(format, "json"); err != nil {
				return err
			}
			req, err := traceRequest(c)
			if err != nil {
				return err
			}
			var tr api.Trace
			if err := api.NewClient(c.String("data-dir")).Do(ctx, "POST", "/v1/policy/trace", nil, req, &tr); err != nil {
				return err
			}
			if format == "json" {
				return printJSON(c.Root().Writer, tr)
			}
			return printTrace(c.Root().Writer, tr)
		},
	}
}

// traceRequest turns the flags into a request and checks its packet as
// the node will.
func traceRequest(c *ucli.Command) (api.TraceRequest, error) {
	var req api.TraceRequest
	for _, end := range []struct {
		flag string
		ref  *api.WorkloadRef
	}{{"from", &req.From}, {"to", &req.To}} {
		name := c.String(end.flag)
		if name == "" {
			return req, usagef("%s needs --%s NAME", cmdName(c), end.flag)
		}
		ns := c.String("namespace")
		if c.IsSet(end.flag + "-namespace") {
			ns = c.String(end.flag + "-namespace")
		}
		if n, w, ok := strings.Cut(name, "/"); ok {
			if c.IsSet(end.flag+"-namespace") && n != ns {
				return req, usagef("--%s %s and --%s-namespace %s disagree", end.flag, name, end.flag, ns)
			}
			ns, name = n, w
		}
		*end.ref = api.WorkloadRef{Namespace: ns, Name: name}
	}
	req.Protocol = c.String("protocol")
	req.IPVersion = c.Int("ip-version")
	for _, f := range []struct {
		flag string
		to   **int
	}{{"port", &req.Port}, {"source-port", &req.SourcePort}, {"icmp-type", &req.ICMPType}, {"icmp-code", &req.ICMPCode}} {
		if c.IsSet(f.flag) {
			v := c.Int(f.flag)
			*f.to = &v
		}
	}
	return req, nil
}

// printTrace writes a trace for people: the packet, each direction with
// its policies and profiles in order and the rules that matched, and the
// verdict.
func printTrace(w io.Writer, tr api.Trace) error {
	fmt.Fprintf(w, "%s (IPv%d, the first packet of a new flow)\n", packetText(tr), tr.IPVersion)
	for _, d := range []api.TraceDirection{tr.Egress, tr.Ingress} {
		fmt.Fprintf(w, "\n%s of %s (node %s): %s\n", d.Direction, d.Workload, d.Node, d.Reason)
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "  #\tPOLICY OR PROFILE\tRESULT\tRULE\tMATCHES")
		for i, s := range d.Steps {
			name := s.Name
			if s.Namespace != "" {
				name = s.Namespace + "/" + name
			}
			ref := strings.TrimSpace(s.Kind + " " + name)
			num := strconv.Itoa(i + 1)
			row := func(result, rule, match string) {
				fmt.Fprintln(tw, strings.TrimRight(strings.Join([]string{"  " + num, ref, result, rule, match}, "\t"), "\t"))
				num, ref = "", ""
			}
			for _, r := range s.Rules {
				result := s.Outcome
				if r.Action == "Log" {
					result = "logged, continues"
				}
				row(result, fmt.Sprintf("%d %s", r.Index, r.Action), r.Match)
			}
			if len(s.Rules) == 0 || s.Rules[len(s.Rules)-1].Action == "Log" {
				row(s.Outcome, "-", "")
			}
			for _, n := range s.Notes {
				row("", "", "note: "+n)
			}
		}
		if len(d.Steps) == 0 {
			fmt.Fprintln(tw, "  -\tnone\t\t\t")
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	fmt.Fprintf(w, "\n%s\n", tr.Reason)
	if !tr.Live {
		fmt.Fprintf(w, "note: the node is not following the datastore right now; this is its saved copy at revision %d\n", tr.Revision)
	}
	for _, p := range tr.Problems {
		fmt.Fprintf(w, "problem: %s\n", p)
	}
	return nil
}

func packetText(tr api.Trace) string {
	s := tr.Protocol + " " + tr.Source.String() + " -> " + tr.Destination.String()
	if _, err := strconv.Atoi(tr.Protocol); err == nil {
		s = "protocol " + s
	}
	if tr.Port != nil {
		s += fmt.Sprintf(" port %d", *tr.Port)
	}
	if tr.SourcePort != nil {
		s += fmt.Sprintf(" from port %d", *tr.SourcePort)
	}
	if tr.ICMPType != nil {
		s += fmt.Sprintf(" type %d", *tr.ICMPType)
		if tr.ICMPCode != nil {
			s += fmt.Sprintf(" code %d", *tr.ICMPCode)
		}
	}
	return s
}
