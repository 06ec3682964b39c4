package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"net/url"
	"strings"

	"calico/node/api"

	ucli "github.com/urfave/cli/v3"
)

func ipamCommand() *ucli.Command {
	return &ucli.Command{
		Name:  "ipam",
		Usage: "inspect and repair address allocation",
		Commands: []*ucli.Command{
			{
				Name:   "show",
				Usage:  "show the blocks of every pool, or what one address is allocated to",
				Flags:  []ucli.Flag{dataDirFlag(), &ucli.StringFlag{Name: "ip", Usage: "show this `ADDRESS`"}, outputFlag("json")},
				Action: ipamShow,
			},
			{
				Name:   "check",
				Usage:  "find leaked, unallocated and doubly used addresses",
				Flags:  []ucli.Flag{dataDirFlag(), outputFlag("json")},
				Action: show("/v1/ipam/check", printIPAMReport),
			},
			{
				Name:   "release",
				Usage:  "free an address that no workload uses",
				Flags:  []ucli.Flag{dataDirFlag(), &ucli.StringFlag{Name: "ip", Usage: "the `ADDRESS` to free", Required: true}},
				Action: ipamRelease,
			},
		},
	}
}

func ipamShow(ctx context.Context, c *ucli.Command) error {
	ip := c.String("ip")
	if ip == "" {
		return show("/v1/ipam/blocks", blockTable)(ctx, c)
	}
	if _, err := netip.ParseAddr(ip); err != nil {
		return usagef("--ip %q is not an address", ip)
	}
	return showQuery("/v1/ipam/address", url.Values{"ip": {ip}}, printIPAMAddress)(ctx, c)
}

func printIPAMAddress(w io.Writer, a api.IPAMAddress) error {
	if !a.Allocated {
		fmt.Fprintf(w, "%s is not allocated\n", a.Address)
		return nil
	}
	fmt.Fprintf(w, "%s is allocated in block %s (affinity %s), handle %s\n", a.Address, a.Block, orDash(a.Affinity), a.Handle)
	if a.Workload != "" {
		fmt.Fprintf(w, "used by workload %s\n", a.Workload)
	}
	return nil
}

func blockTable(w io.Writer, blocks []api.IPAMBlock) error {
	rows := [][]string{{"BLOCK", "AFFINITY", "ALLOCATED", "SIZE"}}
	for _, b := range blocks {
		rows = append(rows, []string{b.CIDR, orDash(b.Affinity), fmt.Sprint(b.Allocated), fmt.Sprint(b.Size)})
	}
	return table(w, rows)
}

// printIPAMReport is `calico ipam check` for people; it fails when the
// check found problems.
func printIPAMReport(w io.Writer, rep api.IPAMReport) error {
	fmt.Fprintf(w, "%d addresses allocated, %d used by workloads\n", rep.Allocated, rep.InUse)
	for _, sec := range []struct {
		what string
		ps   []api.IPAMProblem
	}{
		{"allocated but used by no workload (leaked; free with `calico ipam release --ip`)", rep.Leaked},
		{"used by a workload but not allocated", rep.Unallocated},
		{"used by more than one workload", rep.Duplicate},
	} {
		fmt.Fprintf(w, "%d %s\n", len(sec.ps), sec.what)
		for _, p := range sec.ps {
			fmt.Fprintf(w, "  %s %s %s\n", p.Address, p.Handle, strings.Join(p.Owners, " "))
		}
	}
	if len(rep.Leaked)+len(rep.Unallocated)+len(rep.Duplicate) > 0 {
		return errors.New("ipam check found problems")
	}
	return nil
}

func ipamRelease(ctx context.Context, c *ucli.Command) error {
	if err := noArgs(c); err != nil {
		return err
	}
	ip := c.String("ip")
	if _, err := netip.ParseAddr(ip); err != nil {
		return usagef("--ip %q is not an address", ip)
	}
	if err := api.NewClient(c.String("data-dir")).Do(ctx, "POST", "/v1/ipam/release", url.Values{"ip": {ip}}, nil, nil); err != nil {
		return err
	}
	fmt.Fprintf(c.Root().Writer, "released %s\n", ip)
	return nil
}
