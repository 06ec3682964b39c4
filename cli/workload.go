package cli

import (
	"fmt"
	"net/url"
	"sort"
	"strings"

	"calico/node/api"

	ucli "github.com/urfave/cli/v2"
)

func workloadCommand() *ucli.Command {
	ns := &ucli.StringFlag{Name: "namespace", Aliases: []string{"n"}, Value: "default", Usage: "the workload's namespace"}
	return &ucli.Command{
		Name:  "workload",
		Usage: "add, remove and list workloads on this host",
		Subcommands: []*ucli.Command{
			{
				Name:      "add",
				Usage:     "wire a workload's network namespace into this host and give it addresses",
				ArgsUsage: "NAME",
				Flags: []ucli.Flag{
					dataDirFlag(), ns,
					&ucli.StringFlag{Name: "netns", Usage: "an existing network namespace `PATH` (default: make one named NAME)"},
					&ucli.StringSliceFlag{Name: "ip", Usage: "take this `ADDRESS` instead of allocating (repeatable, one per family)"},
					&ucli.StringSliceFlag{Name: "pool", Usage: "allocate only from this pool `CIDR` (repeatable)"},
					&ucli.StringSliceFlag{Name: "profile", Usage: "join this profile (repeatable; default: default; made if missing)"},
					&ucli.StringSliceFlag{Name: "label", Usage: "a label `key=value` (repeatable)"},
					outputFlag("json"),
				},
				Action: func(c *ucli.Context) error {
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
					}
					var w api.Workload
					if err := api.NewClient(c.String("data-dir")).Do(c.Context, "POST", "/v1/workloads", nil, req, &w); err != nil {
						return err
					}
					if c.String("output") == "json" {
						return printJSON(c.App.Writer, w)
					}
					addrs := make([]string, len(w.Addresses))
					for i, a := range w.Addresses {
						addrs[i] = a.String()
					}
					fmt.Fprintln(c.App.Writer, strings.Join(addrs, " "))
					if !w.Programmed {
						fmt.Fprintf(c.App.ErrWriter, "calico: workload %s added, but the dataplane has not caught up yet; see `calico status`\n", name)
					}
					return nil
				},
			},
			{
				Name:      "rm",
				Aliases:   []string{"remove"},
				Usage:     "remove a workload: its addresses, interface, endpoint and (if calico made it) network namespace",
				ArgsUsage: "NAME",
				Flags:     []ucli.Flag{dataDirFlag(), ns},
				Action: func(c *ucli.Context) error {
					name, err := oneArg(c, "a workload NAME")
					if err != nil {
						return err
					}
					path := "/v1/workloads/" + url.PathEscape(c.String("namespace")) + "/" + url.PathEscape(name)
					return api.NewClient(c.String("data-dir")).Do(c.Context, "DELETE", path, nil, nil, nil)
				},
			},
			{
				Name:    "list",
				Aliases: []string{"ls"},
				Usage:   "list the workloads of every host",
				Flags:   []ucli.Flag{dataDirFlag(), outputFlag("json")},
				Action: func(c *ucli.Context) error {
					if err := noArgs(c); err != nil {
						return err
					}
					if err := checkFormat(c.String("output"), "json"); err != nil {
						return err
					}
					var ws []api.Workload
					if err := api.NewClient(c.String("data-dir")).Do(c.Context, "GET", "/v1/workloads", nil, nil, &ws); err != nil {
						return err
					}
					if c.String("output") == "json" {
						return printJSON(c.App.Writer, ws)
					}
					rows := [][]string{{"NAME", "NAMESPACE", "NODE", "ADDRESSES", "PROFILES", "INTERFACE", "LABELS"}}
					for _, w := range ws {
						addrs := make([]string, len(w.Addresses))
						for i, a := range w.Addresses {
							addrs[i] = a.String()
						}
						var labels []string
						for k, v := range w.Labels {
							labels = append(labels, k+"="+v)
						}
						sort.Strings(labels)
						rows = append(rows, []string{w.Name, w.Namespace, w.Node, strings.Join(addrs, ","),
							strings.Join(w.Profiles, ","), w.Interface, orDash(strings.Join(labels, ","))})
					}
					return table(c.App.Writer, rows)
				},
			},
		},
	}
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
