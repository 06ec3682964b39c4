package cli

import (
	ucli "github.com/urfave/cli/v3"
)

// `calico up` runs the node's code in this process: its action, up, is in
// up.go. In a build with the split tag (`make calico`) it is in
// up_split.go instead, which runs the full binary embedded in this one
// (internal/nodebin), so that the other commands and the CNI plugin do not
// link etcd, GoBGP and the rest (docs/bench.md, process start).

// upCommand is `calico up`.
func upCommand() *ucli.Command {
	flags := append(settingFlags(),
		&ucli.StringFlag{Name: "config", Value: DefaultConfigFile, Sources: ucli.EnvVars("CALICO_CONFIG_FILE"),
			Usage: "read settings from this YAML `FILE` and FILE.d/*.yaml (keys: the flags without --); '' reads none"},
		&ucli.BoolFlag{Name: "print-config", Usage: "print the settings from flags, environment, config files and defaults, and exit"},
	)
	return &ucli.Command{
		Name:   "up",
		Usage:  "run this host's node in the foreground (founds a cluster, or resumes the one in --data-dir)",
		Flags:  flags,
		Action: up,
	}
}
