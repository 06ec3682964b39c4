package cli

import (
	"context"
	"fmt"
	"os"
	"strings"
	"time"

	"calico/node/diags"

	ucli "github.com/urfave/cli/v3"
)

func diagsCommand() *ucli.Command {
	return &ucli.Command{
		Name: "diags",
		Usage: "write one tar.gz with what is needed to understand this node from afar: version, settings, status, nodes, log, " +
			"nftables, addresses, routes, rules, neighbours, links, sysctls, etcd members, BGP, resources, IPAM, metrics, checksystem (secrets redacted)",
		Flags: []ucli.Flag{dataDirFlag(),
			&ucli.StringFlag{Name: "out", Usage: "the `FILE` to write (default: calico-diags-HOST-TIME.tar.gz in the current directory)"},
			&ucli.IntFlag{Name: "log-lines", Value: 5000, Usage: "how many `LINES` of the node's log to take"},
		},
		Action: diagsAction,
	}
}

func diagsAction(ctx context.Context, c *ucli.Command) error {
	if err := noArgs(c); err != nil {
		return err
	}
	out := c.String("out")
	if out == "" {
		host, _ := os.Hostname()
		out = fmt.Sprintf("calico-diags-%s-%s.tar.gz", host, time.Now().UTC().Format("20060102-150405"))
	}
	var settings strings.Builder
	if s, err := fileSettings(); err != nil {
		fmt.Fprintf(&settings, "# calico up's config files cannot be read: %v\n", err)
	} else {
		printConfig(&settings, s)
	}
	dir := c.String("data-dir")
	files, err := diags.Collect(ctx, diags.Config{
		DataDir: dir, Out: out, Version: Version, Settings: settings.String(),
		LogLines: int(c.Int("log-lines")), Secrets: diags.Secrets(dir),
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(c.Root().ErrWriter, "calico diags: %d files (secrets redacted); send this file with your report:\n", len(files))
	fmt.Fprintln(c.Root().Writer, out)
	return nil
}

// fileSettings are `calico up`'s settings from its config files, the
// environment and the defaults (no flags: diags does not know them).
func fileSettings() (settings, error) {
	file, given := os.LookupEnv("CALICO_CONFIG_FILE")
	if !given {
		file = DefaultConfigFile
	}
	return unflagged(file, given)
}
