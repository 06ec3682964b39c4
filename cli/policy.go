package cli

import (
	"context"
	"fmt"
	"net/url"

	"calico/node/api"

	ucli "github.com/urfave/cli/v3"
)

func policyCommand() *ucli.Command {
	return &ucli.Command{
		Name:  "policy",
		Usage: "policies and profiles as this host enforces them",
		Commands: []*ucli.Command{
			{
				Name:      "stats",
				Usage:     "packet and byte counts of each rule on this host, of every policy and profile in use or of NAME",
				ArgsUsage: "[NAME]",
				Flags:     []ucli.Flag{dataDirFlag(), outputFlag("json")},
				Action: func(ctx context.Context, c *ucli.Command) error {
					if c.NArg() > 1 {
						return usagef("policy stats takes at most one NAME (got %q)", c.Args().Slice())
					}
					format := c.String("output")
					if err := checkFormat(format, "json"); err != nil {
						return err
					}
					q := url.Values{}
					if name := c.Args().First(); name != "" {
						q.Set("name", name)
					}
					var stats []api.RuleStats
					if err := api.NewClient(c.String("data-dir")).Do(ctx, "GET", "/v1/policy/stats", q, nil, &stats); err != nil {
						return err
					}
					if format == "json" {
						return printJSON(c.Root().Writer, stats)
					}
					if len(stats) == 0 && c.NArg() == 1 {
						return fmt.Errorf("no policy or profile %s is in use on this host", c.Args().First())
					}
					rows := [][]string{{"KIND", "NAME", "DIRECTION", "RULE", "ACTION", "PACKETS", "BYTES"}}
					for _, s := range stats {
						name := s.Name
						if s.Namespace != "" {
							name = s.Namespace + "/" + s.Name
						}
						rows = append(rows, []string{orDash(s.Kind), name, s.Direction, fmt.Sprint(s.Rule), orDash(s.Action), fmt.Sprint(s.Packets), fmt.Sprint(s.Bytes)})
					}
					return table(c.Root().Writer, rows)
				},
			},
			policyTraceCommand(),
		},
	}
}
