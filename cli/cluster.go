package cli

import (
	"context"
	"fmt"
	"io"
	"net/url"
	"strings"
	"time"

	"calico/cluster"
	"calico/node/api"
	"calico/store/ipam"

	ucli "github.com/urfave/cli/v2"
)

func tokenCommand() *ucli.Command {
	return &ucli.Command{
		Name:  "token",
		Usage: "print the cluster's join token (on any member)",
		Flags: []ucli.Flag{dataDirFlag()},
		Action: func(c *ucli.Context) error {
			if err := noArgs(c); err != nil {
				return err
			}
			tok, err := cluster.LoadToken(c.String("data-dir"))
			if err != nil {
				return err
			}
			fmt.Fprintln(c.App.Writer, tok)
			return nil
		},
	}
}

func nodeCommand() *ucli.Command {
	return &ucli.Command{
		Name:  "node",
		Usage: "the cluster's nodes",
		Subcommands: []*ucli.Command{
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
				Action: func(c *ucli.Context) error {
					name, err := oneArg(c, "a node NAME")
					if err != nil {
						return err
					}
					if err := api.NewClient(c.String("data-dir")).Do(c.Context, "DELETE", "/v1/nodes/"+url.PathEscape(name), nil, nil, nil); err != nil {
						return err
					}
					fmt.Fprintf(c.App.Writer, "node %s removed\n", name)
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
		Action: func(c *ucli.Context) error {
			if err := noArgs(c); err != nil {
				return err
			}
			q := url.Values{}
			if c.Bool("force") {
				q.Set("force", "true")
			}
			if err := api.NewClient(c.String("data-dir")).Do(c.Context, "POST", "/v1/leave", q, nil, nil); err != nil {
				return err
			}
			fmt.Fprintln(c.App.Writer, "left the cluster; the node has stopped")
			return nil
		},
	}
}

// membership adapts *cluster.Cluster to node.Membership.
type membership struct {
	c    *cluster.Cluster
	ipam *ipam.IPAM
}

func (m membership) Role() string { return m.c.Role() }

func (m membership) Nodes(ctx context.Context) ([]api.Node, error) {
	ns, err := m.c.Nodes(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]api.Node, len(ns))
	for i, n := range ns {
		out[i] = api.Node(n)
	}
	return out, nil
}

func (m membership) Leave(ctx context.Context) error { return m.c.Leave(ctx, m.ipam) }

func (m membership) RemoveNode(ctx context.Context, name string) error {
	return m.c.RemoveNode(ctx, m.ipam, name)
}
