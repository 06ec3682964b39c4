package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"strings"

	"calico/node/api"
	"calico/store"

	ucli "github.com/urfave/cli/v3"
)

func applyCommand(name, usage string) *ucli.Command {
	return &ucli.Command{
		Name:  name,
		Usage: usage,
		Flags: []ucli.Flag{
			dataDirFlag(),
			&ucli.StringFlag{Name: "filename", Aliases: []string{"f"}, Usage: "the `FILE` to read (- for stdin)", Required: true},
		},
		Action: func(ctx context.Context, c *ucli.Command) error {
			if err := noArgs(c); err != nil {
				return err
			}
			data, err := stdinOr(c.String("filename"))
			if err != nil {
				return err
			}
			return sendData(ctx, c, data, name)
		},
	}
}

// sendData hands a document to the node to apply, create or delete, and
// reports what it did.
func sendData(ctx context.Context, c *ucli.Command, data []byte, mode string) error {
	var out api.Applied
	q := url.Values{"mode": {mode}}
	client := api.NewClient(c.String("data-dir"))
	if err := client.DoRaw(ctx, "POST", "/v1/resources", q, data, &out); err != nil {
		return err
	}
	printApplied(c.Root().Writer, out)
	return nil
}

func printApplied(w io.Writer, out api.Applied) {
	for _, r := range out.Results {
		name := r.Name
		if r.Namespace != "" {
			name = r.Namespace + "/" + r.Name
		}
		fmt.Fprintf(w, "%s %s %s\n", r.Kind, name, r.Action)
	}
}

func getCommand() *ucli.Command {
	return &ucli.Command{
		Name:      "get",
		Usage:     "show resources of one kind (Calico's kind names: ippools, profiles, nodes, workloadendpoints, …)",
		ArgsUsage: "KIND [NAME]",
		Flags: []ucli.Flag{
			dataDirFlag(), outputFlag("yaml, json, wide (the table with more columns)"),
			&ucli.StringFlag{Name: "namespace", Aliases: []string{"n"}, Usage: "only this namespace (namespaced kinds; default: all, or default with a NAME)"},
		},
		Action: getResources,
	}
}

func getResources(ctx context.Context, c *ucli.Command) error {
	if c.NArg() < 1 || c.NArg() > 2 {
		return usagef("get needs KIND and optionally NAME (got %q)", c.Args().Slice())
	}
	format := c.String("output")
	if err := checkFormat(format, "yaml", "json", "wide"); err != nil {
		return err
	}
	kind, err := store.LookupKind(c.Args().Get(0))
	if err != nil {
		return usageError{err.Error()}
	}
	q := url.Values{"namespace": {c.String("namespace")}, "name": {c.Args().Get(1)}}
	var res api.Resources
	if err := api.NewClient(c.String("data-dir")).Do(ctx, "GET", "/v1/resources/"+kind.Plural, q, nil, &res); err != nil {
		return err
	}
	var rs []store.Resource
	for _, item := range res.Items {
		r := kind.New()
		if err := json.Unmarshal(item, r); err != nil {
			return err
		}
		rs = append(rs, r)
	}
	if format == "" || format == "wide" {
		return resourceTable(c.Root().Writer, kind, rs, format == "wide")
	}
	var b []byte
	if c.NArg() == 2 {
		b, err = store.Encode(rs[0], store.Format(format))
	} else {
		b, err = store.EncodeList(kind, rs, store.Format(format))
	}
	if err != nil {
		return err
	}
	_, err = c.Root().Writer.Write(b)
	return err
}

// resourceTable prints resources as a table; wide adds columns for some
// kinds (workload endpoints: orchestrator and MAC).
func resourceTable(w io.Writer, kind *store.Kind, rs []store.Resource, wide bool) error {
	header := []string{"NAME"}
	if kind.Namespaced {
		header = []string{"NAMESPACE", "NAME"}
	}
	extra := func(store.Resource) []string { return nil }
	switch kind {
	case store.KindIPPool:
		header = append(header, "CIDR", "BLOCKSIZE", "NAT", "DISABLED", "SELECTOR")
		extra = func(r store.Resource) []string {
			s := r.(*store.IPPool).Spec
			return []string{s.CIDR, fmt.Sprint(s.BlockSize), fmt.Sprint(s.NATOutgoing), fmt.Sprint(s.Disabled), s.NodeSelector}
		}
	case store.KindNode:
		header = append(header, "IPV4", "IPV6", "ASN")
		extra = func(r store.Resource) []string {
			b := r.(*store.Node).Spec.BGP
			if b == nil {
				return []string{"-", "-", "-"}
			}
			asn := "(64512)"
			if b.ASNumber != nil {
				asn = fmt.Sprint(*b.ASNumber)
			}
			return []string{orDash(b.IPv4Address), orDash(b.IPv6Address), asn}
		}
	case store.KindWorkloadEndpoint:
		header = append(header, "WORKLOAD", "NODE", "NETWORKS", "INTERFACE", "PROFILES")
		extra = func(r store.Resource) []string {
			s := r.(*store.WorkloadEndpoint).Spec
			row := []string{s.Workload, s.Node, strings.Join(s.IPNetworks, ","), s.InterfaceName, strings.Join(s.Profiles, ",")}
			if wide {
				row = append(row, s.Orchestrator, orDash(s.MAC))
			}
			return row
		}
		if wide {
			header = append(header, "ORCHESTRATOR", "MAC")
		}
	case store.KindHostEndpoint:
		header = append(header, "NODE", "INTERFACE", "EXPECTED IPS", "PROFILES")
		extra = func(r store.Resource) []string {
			s := r.(*store.HostEndpoint).Spec
			return []string{s.Node, s.InterfaceName, orDash(strings.Join(s.ExpectedIPs, ",")), orDash(strings.Join(s.Profiles, ","))}
		}
	case store.KindGlobalNetworkPolicy, store.KindNetworkPolicy:
		header = append(header, "ORDER", "SELECTOR")
		extra = func(r store.Resource) []string {
			var order *float64
			var sel string
			switch p := r.(type) {
			case *store.GlobalNetworkPolicy:
				order, sel = p.Spec.Order, p.Spec.Selector
			case *store.NetworkPolicy:
				order, sel = p.Spec.Order, p.Spec.Selector
			}
			o := "-"
			if order != nil {
				o = fmt.Sprint(*order)
			}
			return []string{o, orDash(sel)}
		}
	}
	rows := [][]string{header}
	for _, r := range rs {
		row := []string{r.Meta().Name}
		if kind.Namespaced {
			row = []string{r.Meta().Namespace, r.Meta().Name}
		}
		rows = append(rows, append(row, extra(r)...))
	}
	return table(w, rows)
}

func deleteCommand() *ucli.Command {
	return &ucli.Command{
		Name:      "delete",
		Usage:     "delete a resource by kind and name, or the resources in a file",
		ArgsUsage: "KIND NAME | -f FILE",
		Flags: []ucli.Flag{
			dataDirFlag(),
			&ucli.StringFlag{Name: "filename", Aliases: []string{"f"}, Usage: "delete the resources in `FILE` (- for stdin)"},
			&ucli.StringFlag{Name: "namespace", Aliases: []string{"n"}, Usage: "the namespace (namespaced kinds; default: default)"},
		},
		Action: func(ctx context.Context, c *ucli.Command) error {
			if f := c.String("filename"); f != "" {
				if err := noArgs(c); err != nil {
					return err
				}
				data, err := stdinOr(f)
				if err != nil {
					return err
				}
				return sendData(ctx, c, data, "delete")
			}
			if c.NArg() != 2 {
				return usagef("delete needs KIND and NAME, or -f FILE (got %q)", c.Args().Slice())
			}
			kind, err := store.LookupKind(c.Args().Get(0))
			if err != nil {
				return usageError{err.Error()}
			}
			return deleteResource(ctx, c, kind, c.Args().Get(1))
		},
	}
}

func deleteResource(ctx context.Context, c *ucli.Command, kind *store.Kind, name string) error {
	var out api.Applied
	path := "/v1/resources/" + kind.Plural + "/" + url.PathEscape(name)
	q := url.Values{"namespace": {c.String("namespace")}}
	if err := api.NewClient(c.String("data-dir")).Do(ctx, "DELETE", path, q, nil, &out); err != nil {
		return err
	}
	printApplied(c.Root().Writer, out)
	return nil
}
