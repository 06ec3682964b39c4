package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"

	"calico/node/api"
	"calico/store"

	ucli "github.com/urfave/cli/v3"
)

func profileCommand() *ucli.Command {
	return &ucli.Command{
		Name:  "profile",
		Usage: "add, list and remove profiles (groups whose members may reach each other)",
		Commands: []*ucli.Command{
			{
				Name:      "add",
				Usage:     "add a profile whose members may reach each other, and nothing else may reach them",
				ArgsUsage: "NAME",
				Flags:     []ucli.Flag{dataDirFlag()},
				Action: func(ctx context.Context, c *ucli.Command) error {
					name, err := oneArg(c, "a profile NAME")
					if err != nil {
						return err
					}
					b, err := store.Encode(store.ClassicProfile(name), store.JSON)
					if err != nil {
						return err
					}
					return sendData(ctx, c, b, "create")
				},
			},
			{
				Name:    "list",
				Aliases: []string{"ls"},
				Usage:   "list profiles",
				Flags:   []ucli.Flag{dataDirFlag()},
				Action: func(ctx context.Context, c *ucli.Command) error {
					if err := noArgs(c); err != nil {
						return err
					}
					var res api.Resources
					if err := api.NewClient(c.String("data-dir")).Do(ctx, "GET", "/v1/resources/profiles", nil, nil, &res); err != nil {
						return err
					}
					rows := [][]string{{"NAME", "LABELS", "INGRESS RULES", "EGRESS RULES"}}
					for _, item := range res.Items {
						var p store.Profile
						if err := json.Unmarshal(item, &p); err != nil {
							return err
						}
						var labels []string
						for _, k := range slices.Sorted(maps.Keys(p.Spec.LabelsToApply)) {
							labels = append(labels, k+"="+p.Spec.LabelsToApply[k])
						}
						rows = append(rows, []string{p.Metadata.Name, orDash(strings.Join(labels, ",")), fmt.Sprint(len(p.Spec.Ingress)), fmt.Sprint(len(p.Spec.Egress))})
					}
					return table(c.Root().Writer, rows)
				},
			},
			{
				Name:      "rm",
				Aliases:   []string{"remove"},
				Usage:     "remove a profile (refused while a workload uses it)",
				ArgsUsage: "NAME",
				Flags:     []ucli.Flag{dataDirFlag()},
				Action: func(ctx context.Context, c *ucli.Command) error {
					name, err := oneArg(c, "a profile NAME")
					if err != nil {
						return err
					}
					return deleteResource(ctx, c, store.KindProfile, name)
				},
			},
		},
	}
}
