package cli

import (
	"context"
	"fmt"
	"io"
	"net/netip"
	"net/url"
	"sort"
	"strings"

	"calico/node/api"

	ucli "github.com/urfave/cli/v3"
)

func workloadCommand() *ucli.Command {
	ns := &ucli.StringFlag{Name: "namespace", Aliases: []string{"n"}, Value: "default", Usage: "the workload's namespace"}
	return &ucli.Command{
		Name:  "workload",
		Usage: "add, remove and list workloads on this host",
		Commands: []*ucli.Command{
			{
				Name:      "add",
				Usage:     "wire a workload's network namespace (or a VM's existing interface) into this host and give it addresses",
				ArgsUsage: "NAME",
				Flags: []ucli.Flag{
					dataDirFlag(), ns,
					&ucli.StringFlag{Name: "netns", Usage: "an existing network namespace `PATH` (default: make one named NAME)"},
					&ucli.StringFlag{Name: "iface", Usage: "attach this existing `INTERFACE` of the host (a VM's tap) instead of a namespace; it stays when the workload is removed"},
					&ucli.StringFlag{Name: "mac", Usage: "with --iface, the guest's `MAC`: the only source MAC it may send from, and the only DHCP client answered"},
					&ucli.StringSliceFlag{Name: "ip", Usage: "take this `ADDRESS` instead of allocating (repeatable, one per family)"},
					&ucli.StringSliceFlag{Name: "pool", Usage: "allocate only from this pool (its `CIDR` or name; repeatable); it may be a Manual pool"},
					&ucli.StringSliceFlag{Name: "profile", Usage: "join this profile (repeatable; default: default; made if missing)"},
					&ucli.StringSliceFlag{Name: "label", Usage: "a label `key=value` (repeatable)"},
					outputFlag("json"),
				},
				Action: workloadAdd,
			},
			{
				Name:      "rm",
				Aliases:   []string{"remove"},
				Usage:     "remove a workload: its addresses, endpoint, the interface calico made (an attached one stays) and (if calico made it) network namespace",
				ArgsUsage: "NAME",
				Flags:     []ucli.Flag{dataDirFlag(), ns},
				Action:    workloadRemove,
			},
			{
				Name:    "list",
				Aliases: []string{"ls"},
				Usage:   "list the workloads of every host",
				Flags:   []ucli.Flag{dataDirFlag(), outputFlag("json")},
				Action:  show("/v1/workloads", workloadTable),
			},
		},
	}
}

func workloadAdd(ctx context.Context, c *ucli.Command) error {
	name, err := oneArg(c, "a workload NAME")
	if err != nil {
		return err
	}
	if err := checkFormat(c.String("output"), "json"); err != nil {
		return err
	}
	labels, err := parseLabels(c.StringSlice("label"))
	if err != nil {
		return err
	}
	req := api.WorkloadAdd{
		Name: name, Namespace: c.String("namespace"), NetNS: c.String("netns"),
		IPs: c.StringSlice("ip"), Pools: c.StringSlice("pool"), Profiles: c.StringSlice("profile"), Labels: labels,
		HostInterface: c.String("iface"), MAC: c.String("mac"),
	}
	var w api.Workload
	if err := api.NewClient(c.String("data-dir")).Do(ctx, "POST", "/v1/workloads", nil, req, &w); err != nil {
		return err
	}
	if c.String("output") == "json" {
		return printJSON(c.Root().Writer, w)
	}
	fmt.Fprintln(c.Root().Writer, joinAddrs(w.Addresses, " "))
	if w.Programmed != nil && !*w.Programmed {
		fmt.Fprintf(c.Root().ErrWriter, "calico: workload %s added, but the dataplane has not caught up yet; see `calico status`\n", name)
	}
	if w.State == "down" {
		fmt.Fprintf(c.Root().ErrWriter, "calico: workload %s added; it is down for now: %s\n", name, w.Why)
	}
	return nil
}

func workloadRemove(ctx context.Context, c *ucli.Command) error {
	name, err := oneArg(c, "a workload NAME")
	if err != nil {
		return err
	}
	path := "/v1/workloads/" + url.PathEscape(c.String("namespace")) + "/" + url.PathEscape(name)
	return api.NewClient(c.String("data-dir")).Do(ctx, "DELETE", path, nil, nil, nil)
}

func workloadTable(w io.Writer, ws []api.Workload) error {
	rows := [][]string{{"NAME", "NAMESPACE", "NODE", "ADDRESSES", "PROFILES", "INTERFACE", "STATE", "LABELS"}}
	for _, wl := range ws {
		var labels []string
		for k, v := range wl.Labels {
			labels = append(labels, k+"="+v)
		}
		sort.Strings(labels)
		state := orDash(wl.State)
		if wl.Why != "" {
			state += " (" + wl.Why + ")"
		}
		rows = append(rows, []string{wl.Name, wl.Namespace, wl.Node, joinAddrs(wl.Addresses, ","),
			strings.Join(wl.Profiles, ","), wl.Interface, state, orDash(strings.Join(labels, ","))})
	}
	return table(w, rows)
}

func joinAddrs(as []netip.Addr, sep string) string {
	s := make([]string, len(as))
	for i, a := range as {
		s[i] = a.String()
	}
	return strings.Join(s, sep)
}

func parseLabels(kvs []string) (map[string]string, error) {
	if len(kvs) == 0 {
		return nil, nil
	}
	out := map[string]string{}
	for _, kv := range kvs {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, usagef("--label %q is not key=value", kv)
		}
		out[k] = v
	}
	return out, nil
}
