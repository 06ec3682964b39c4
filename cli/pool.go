package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/url"

	"calico/node/api"
	"calico/store"

	ucli "github.com/urfave/cli/v3"
)

func poolCommand() *ucli.Command {
	return &ucli.Command{
		Name:  "pool",
		Usage: "add, list and remove IP pools",
		Commands: []*ucli.Command{
			{
				Name:      "add",
				Usage:     "add an IP pool",
				ArgsUsage: "CIDR",
				Flags: []ucli.Flag{
					dataDirFlag(),
					&ucli.StringFlag{Name: "name", Usage: "the pool's name (default: from the CIDR)"},
					&ucli.IntFlag{Name: "block-size", Usage: "prefix length of the blocks hosts claim (default 26 for IPv4, 122 for IPv6)"},
					&ucli.BoolFlag{Name: "nat-outgoing", Usage: "masquerade traffic from the pool to destinations outside every pool"},
					&ucli.BoolFlag{Name: "disabled", Usage: "allocate nothing from the pool"},
					&ucli.StringFlag{Name: "node-selector", Usage: "only nodes matching this selector allocate from the pool"},
					&ucli.StringFlag{Name: "assignment-mode", Usage: "Automatic (default), or Manual: only workloads that ask for the pool or one of its addresses get one"},
					&ucli.StringSliceFlag{Name: "allowed-use", Usage: "what the addresses are for: Workload, Tunnel or LoadBalancer (repeatable; default Workload and Tunnel)"},
					&ucli.BoolFlag{Name: "disable-bgp-export", Usage: "advertise nothing of the pool to BGP peers"},
				},
				Action: poolAdd,
			},
			{
				Name:    "list",
				Aliases: []string{"ls"},
				Usage:   "list IP pools and how many addresses each has in use",
				Flags:   []ucli.Flag{dataDirFlag(), outputFlag("json")},
				Action:  show("/v1/pools", poolTable),
			},
			{
				Name:      "rm",
				Aliases:   []string{"remove"},
				Usage:     "remove an IP pool (refused while any of its addresses is in use)",
				ArgsUsage: "CIDR|NAME",
				Flags:     []ucli.Flag{dataDirFlag()},
				Action:    poolRemove,
			},
		},
	}
}

func poolAdd(ctx context.Context, c *ucli.Command) error {
	arg, err := oneArg(c, "a pool CIDR")
	if err != nil {
		return err
	}
	cidr, err := store.ParseCIDR(arg)
	if err != nil {
		return usageError{err.Error()}
	}
	name := c.String("name")
	if name == "" {
		name = store.PoolName(cidr)
	}
	p := store.NewPool(name, cidr)
	p.Spec.BlockSize, p.Spec.NATOutgoing, p.Spec.Disabled, p.Spec.NodeSelector = c.Int("block-size"), c.Bool("nat-outgoing"), c.Bool("disabled"), c.String("node-selector")
	p.Spec.AssignmentMode, p.Spec.AllowedUses, p.Spec.DisableBGPExport = c.String("assignment-mode"), c.StringSlice("allowed-use"), c.Bool("disable-bgp-export")
	b, err := store.Encode(p, store.JSON)
	if err != nil {
		return err
	}
	return sendData(ctx, c, b, "create")
}

func poolRemove(ctx context.Context, c *ucli.Command) error {
	arg, err := oneArg(c, "a pool CIDR or name")
	if err != nil {
		return err
	}
	name := arg
	if cidr, err := store.ParseCIDR(arg); err == nil {
		if name, err = poolByCIDR(ctx, c, cidr.String()); err != nil {
			return err
		}
	}
	return deleteResource(ctx, c, store.KindIPPool, name)
}

// poolByCIDR finds the name of the pool with a CIDR.
func poolByCIDR(ctx context.Context, c *ucli.Command, cidr string) (string, error) {
	var res api.Resources
	if err := api.NewClient(c.String("data-dir")).Do(ctx, "GET", "/v1/resources/ippools", url.Values{}, nil, &res); err != nil {
		return "", err
	}
	for _, item := range res.Items {
		var p store.IPPool
		if err := json.Unmarshal(item, &p); err == nil && p.Spec.CIDR == cidr {
			return p.Metadata.Name, nil
		}
	}
	return "", api.Errorf(api.NotFound, "no IP pool has CIDR %s", cidr)
}

func poolTable(w io.Writer, pools []api.Pool) error {
	rows := [][]string{{"NAME", "CIDR", "BLOCKSIZE", "IN USE", "NAT", "DISABLED"}}
	for _, p := range pools {
		inUse := fmt.Sprint(p.InUse)
		if p.InUse < 0 {
			inUse = "unknown" // not counted in time (calico status says why)
		}
		rows = append(rows, []string{p.Name, p.CIDR, fmt.Sprint(p.BlockSize), inUse, fmt.Sprint(p.NAT), fmt.Sprint(p.Disabled)})
	}
	return table(w, rows)
}
