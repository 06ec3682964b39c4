package cli

import (
	"context"
	"fmt"
	"io"
	"net/url"
	"strings"
	"time"

	"calico/cluster/token"
	"calico/node/api"

	ucli "github.com/urfave/cli/v3"
)

func tokenCommand() *ucli.Command {
	return &ucli.Command{
		Name:  "token",
		Usage: "print the cluster's join token (on any member)",
		Flags: []ucli.Flag{dataDirFlag()},
		Action: func(ctx context.Context, c *ucli.Command) error {
			if err := noArgs(c); err != nil {
				return err
			}
			tok, err := token.Load(c.String("data-dir"))
			if err != nil {
				return err
			}
			fmt.Fprintln(c.Root().Writer, tok)
			return nil
		},
	}
}

func nodeCommand() *ucli.Command {
	return &ucli.Command{
		Name:  "node",
		Usage: "the cluster's nodes",
		Commands: []*ucli.Command{
			{
				Name:   "list",
				Usage:  "list the nodes: addresses, role, gossip state, version",
				Flags:  []ucli.Flag{dataDirFlag(), outputFlag("json")},
				Action: show("/v1/nodes", nodeTable),
			},
			{
				Name:      "rm",
				Usage:     "remove a node that is gone for good (its etcd seat, workloads, addresses and blocks)",
				ArgsUsage: "NAME",
				Flags:     []ucli.Flag{dataDirFlag()},
				Action: func(ctx context.Context, c *ucli.Command) error {
					name, err := oneArg(c, "a node NAME")
					if err != nil {
						return err
					}
					if err := api.NewClient(c.String("data-dir")).Do(ctx, "DELETE", "/v1/nodes/"+url.PathEscape(name), nil, nil, nil); err != nil {
						return err
					}
					fmt.Fprintf(c.Root().Writer, "node %s removed\n", name)
					return nil
				},
			},
		},
	}
}

func nodeTable(w io.Writer, nodes []api.Node) error {
	rows := [][]string{{"NAME", "ADDRESSES", "ROLE", "GOSSIP", "SINCE", "VERSION"}}
	for _, n := range nodes {
		since := "-"
		if !n.Since.IsZero() {
			since = time.Since(n.Since).Round(time.Second).String() + " ago"
		}
		rows = append(rows, []string{n.Name, strings.Join(nonEmpty(n.IPv4, n.IPv6), ","), n.Role, n.Gossip, since, orDash(n.Version)})
	}
	return table(w, rows)
}

func leaveCommand() *ucli.Command {
	return &ucli.Command{
		Name:  "leave",
		Usage: "take this host out of the cluster for good (hands over its etcd seat; refused while workloads remain)",
		Flags: []ucli.Flag{dataDirFlag(), &ucli.BoolFlag{Name: "force", Usage: "remove this host's workloads first"}},
		Action: func(ctx context.Context, c *ucli.Command) error {
			if err := noArgs(c); err != nil {
				return err
			}
			q := url.Values{}
			if c.Bool("force") {
				q.Set("force", "true")
			}
			if err := api.NewClient(c.String("data-dir")).Do(ctx, "POST", "/v1/leave", q, nil, nil); err != nil {
				return err
			}
			fmt.Fprintln(c.Root().Writer, "left the cluster; the node has stopped")
			return nil
		},
	}
}
