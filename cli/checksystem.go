package cli

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"calico/node/api"
	"calico/node/syscheck"

	ucli "github.com/urfave/cli/v3"
)

func checksystemCommand() *ucli.Command {
	return &ucli.Command{
		Name:  "checksystem",
		Usage: "check that this host can run a node: kernel, nftables features, netlink, IPv6, sysctls, ports, free disk, clock sync, other firewalls",
		Flags: []ucli.Flag{dataDirFlag(), outputFlag("json"),
			&ucli.StringFlag{Name: "metrics-addr", Usage: "the node's metrics `ADDR`, whose port must be free (default: calico up's config files)",
				Sources: ucli.NewValueSourceChain(configKey("metrics-addr"))},
			&ucli.StringFlag{Name: "health-addr", Value: "127.0.0.1:9099", Usage: "the node's health `ADDR`, whose port must be free (default: calico up's config files, else 127.0.0.1:9099)",
				Sources: ucli.NewValueSourceChain(configKey("health-addr"))},
		},
		Action: checksystem,
	}
}

// errChecksFailed is the error of a checksystem with a FAIL line; the
// lines say what.
var errChecksFailed = errors.New("checksystem: some checks failed (FAIL lines above)")

func checksystem(ctx context.Context, c *ucli.Command) error {
	if err := noArgs(c); err != nil {
		return err
	}
	cfg := syscheck.Config{DataDir: c.String("data-dir")}
	vctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	var v api.VersionInfo
	if api.NewClient(cfg.DataDir).Do(vctx, "GET", "/v1/version", nil, nil, &v) == nil {
		cfg.NodeRunning = true // it holds its ports
	} else {
		cfg.Ports = syscheck.NodePorts(c.String("metrics-addr"), c.String("health-addr"))
	}
	rs := syscheck.Run(ctx, cfg)
	w := c.Root().Writer
	if c.String("output") == "json" {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rs); err != nil {
			return err
		}
	} else {
		if cfg.NodeRunning {
			rs = append(rs, syscheck.Result{Status: syscheck.OK, Check: "ports", Detail: "a node runs on this host (data dir " + cfg.DataDir + ") and holds its ports: not checked"})
		}
		syscheck.Print(w, rs)
	}
	if syscheck.Failed(rs) {
		return &api.ClassError{Class: api.Internal, Err: errChecksFailed}
	}
	return nil
}
