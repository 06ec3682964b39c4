package cli

import (
	"context"
	"fmt"
	"strings"

	"calico/node/api"

	ucli "github.com/urfave/cli/v3"
)

func datastoreCommand() *ucli.Command {
	return &ucli.Command{
		Name:  "datastore",
		Usage: "the cluster's etcd, for Calico's own tools",
		Commands: []*ucli.Command{{
			Name:  "env",
			Usage: "print the environment Calico's CLI (calicoctl, etcd mode) needs to use this cluster's datastore from this host",
			Description: "eval \"$(calico datastore env)\" && calicoctl get nodes\n" +
				"With --etcdctl, the same for etcdctl. The key file is this host's own: keep it on this host.",
			Flags: []ucli.Flag{dataDirFlag(), &ucli.BoolFlag{Name: "etcdctl", Usage: "print etcdctl's variables instead"}},
			Action: func(ctx context.Context, c *ucli.Command) error {
				if err := noArgs(c); err != nil {
					return err
				}
				var st api.Status
				if err := api.NewClient(c.String("data-dir")).Do(ctx, "GET", "/v1/status", nil, nil, &st); err != nil {
					return err
				}
				return printDatastoreEnv(c, st.Datastore, c.Bool("etcdctl"))
			},
		}},
	}
}

func printDatastoreEnv(c *ucli.Command, d api.Datastore, etcdctl bool) error {
	if len(d.Endpoints) == 0 {
		return fmt.Errorf("the node knows no datastore endpoint yet: try again once `calico status` shows one")
	}
	names := []string{"ETCD_ENDPOINTS", "ETCD_CA_CERT_FILE", "ETCD_CERT_FILE", "ETCD_KEY_FILE"}
	if etcdctl {
		names = []string{"ETCDCTL_ENDPOINTS", "ETCDCTL_CACERT", "ETCDCTL_CERT", "ETCDCTL_KEY"}
	} else {
		fmt.Fprintln(c.Root().Writer, "export DATASTORE_TYPE=etcdv3")
	}
	for i, v := range []string{strings.Join(d.Endpoints, ","), d.CAFile, d.CertFile, d.KeyFile} {
		if v != "" {
			fmt.Fprintf(c.Root().Writer, "export %s=%s\n", names[i], shellQuote(v))
		}
	}
	return nil
}

// shellQuote quotes s for a POSIX shell when it needs it.
func shellQuote(s string) string {
	if !strings.ContainsAny(s, " \t\n'\"$`\\*?[]#~=%;&|<>(){}!") {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
