package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"calico/node/api"

	ucli "github.com/urfave/cli/v3"
)

// versions is what `calico version` shows: this binary's version and,
// when a node runs, the node's and every node's in the cluster.
type versions struct {
	Version string           `json:"version"`
	Node    *api.VersionInfo `json:"node,omitempty"`
	Nodes   []nodeVersion    `json:"nodes,omitempty"`
	// Unknown says why the node's or the cluster's versions are missing.
	Unknown string `json:"unknown,omitempty"`
}

type nodeVersion struct {
	Name    string `json:"name"`
	Version string `json:"version"`
	Gossip  string `json:"gossip"`
}

func versionCommand() *ucli.Command {
	return &ucli.Command{
		Name:  "version",
		Usage: "print this binary's version and, when a node runs, every node's",
		Flags: []ucli.Flag{dataDirFlag(), outputFlag("json")},
		Action: func(ctx context.Context, c *ucli.Command) error {
			if err := noArgs(c); err != nil {
				return err
			}
			format := c.String("output")
			if err := checkFormat(format, "json"); err != nil {
				return err
			}
			v := askVersions(ctx, api.NewClient(c.String("data-dir")))
			w := c.Root().Writer
			if format == "json" {
				enc := json.NewEncoder(w)
				enc.SetIndent("", "  ")
				return enc.Encode(v)
			}
			fmt.Fprintf(w, "calico %s\n", v.Version)
			if v.Node == nil {
				if v.Unknown != "" {
					fmt.Fprintf(c.Root().ErrWriter, "calico: the node's version is unknown: %s\n", v.Unknown)
				}
				return nil
			}
			if len(v.Nodes) == 0 {
				fmt.Fprintf(w, "this host's node: %s (data dir format %d); the other nodes' versions are unknown: %s\n", v.Node.Version, v.Node.DataFormat, v.Unknown)
				return nil
			}
			rows := [][]string{{"NODE", "VERSION", "GOSSIP"}}
			for _, n := range v.Nodes {
				rows = append(rows, []string{n.Name, orDash(n.Version), n.Gossip})
			}
			return table(w, rows)
		},
	}
}

// askVersions asks the node of the data dir, if one runs, for its
// version and the cluster's nodes. A node that does not answer leaves
// the binary's version alone.
func askVersions(ctx context.Context, client *api.Client) versions {
	v := versions{Version: Version}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	var info api.VersionInfo
	err := client.Do(ctx, "GET", "/v1/version", nil, nil, &info)
	var st *api.StatusError
	if errors.As(err, &st) && st.Status == http.StatusNotFound {
		// A node of a version before /v1/version.
		var status api.Status
		if err = client.Do(ctx, "GET", "/v1/status", nil, nil, &status); err == nil {
			info.Version = status.Version
		}
	}
	if err != nil {
		if !errors.Is(err, api.ErrNoNode) {
			v.Unknown = err.Error()
		}
		return v
	}
	v.Node = &info
	var nodes []api.Node
	if err := client.Do(ctx, "GET", "/v1/nodes", nil, nil, &nodes); err != nil {
		v.Unknown = err.Error()
		return v
	}
	for _, n := range nodes {
		v.Nodes = append(v.Nodes, nodeVersion{Name: n.Name, Version: n.Version, Gossip: n.Gossip})
	}
	return v
}
