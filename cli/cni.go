package cli

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"calico/cni"
	"calico/node/api"

	ucli "github.com/urfave/cli/v3"
)

func installCNICommand() *ucli.Command {
	return &ucli.Command{
		Name:  "install-cni",
		Usage: "install calico as this host's CNI plugin: link calico and calico-ipam into the plugin dir, write the network's conflist and <data-dir>/nodename",
		Flags: []ucli.Flag{
			dataDirFlag(),
			&ucli.StringFlag{Name: "bin-dir", Value: "/opt/cni/bin", Usage: "the CNI plugin `DIR`"},
			&ucli.StringFlag{Name: "conf-dir", Value: "/etc/cni/net.d", Usage: "the CNI config `DIR`"},
			&ucli.StringFlag{Name: "network", Value: "calico", Usage: "the CNI network's `NAME` (and its profile's)"},
			&ucli.StringFlag{Name: "name", Usage: "the node's name (default: the running node's, else the host name)"},
			outputFlag("json"),
		},
		Action: installCNI,
	}
}

func installCNI(ctx context.Context, c *ucli.Command) error {
	if err := noArgs(c); err != nil {
		return err
	}
	if err := checkFormat(c.String("output"), "json"); err != nil {
		return err
	}
	self, err := os.Executable()
	if err == nil {
		self, err = filepath.EvalSymlinks(self)
	}
	if err != nil {
		return fmt.Errorf("finding the calico binary: %w", err)
	}
	cfg := cni.InstallConfig{BinDir: c.String("bin-dir"), ConfDir: c.String("conf-dir"), Network: c.String("network"),
		Self: self, DataDir: c.String("data-dir"), Node: c.String("name")}
	var st api.Status
	note := ""
	if err := api.NewClient(cfg.DataDir).Do(ctx, "GET", "/v1/status", nil, nil, &st); err == nil {
		if cfg.Node == "" {
			cfg.Node = st.Node
		}
		for _, p := range st.Pools {
			cfg.IPv6 = cfg.IPv6 || (!p.Disabled && strings.Contains(p.CIDR, ":"))
		}
	} else if cfg.Node == "" {
		if cfg.Node, err = os.Hostname(); err != nil {
			return err
		}
		note = fmt.Sprintf("no node answers (%v): the conflist names node %s and asks IPv4 addresses only; run install-cni again once the node is up", err, cfg.Node)
	}
	out, err := cni.Install(cfg)
	if err != nil {
		return err
	}
	if c.String("output") == "json" {
		return printJSON(c.Root().Writer, out)
	}
	w := c.Root().Writer
	for _, l := range out.Links {
		fmt.Fprintf(w, "linked %s -> %s\n", l, self)
	}
	fmt.Fprintf(w, "wrote %s (network %s, node %s)\nwrote %s\n", out.Conflist, cfg.Network, cfg.Node, out.Nodename)
	if note != "" {
		fmt.Fprintln(c.Root().ErrWriter, "calico: "+note)
	}
	return nil
}
