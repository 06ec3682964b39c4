package cli

import (
	"fmt"
	"io"
	"strings"
	"time"

	"calico/node/api"

	ucli "github.com/urfave/cli/v3"
)

func statusCommand() *ucli.Command {
	return &ucli.Command{
		Name:   "status",
		Usage:  "show this node, the datastore and the dataplane",
		Flags:  []ucli.Flag{dataDirFlag(), outputFlag("json")},
		Action: show("/v1/status", printStatus),
	}
}

// printStatus is `calico status` for people.
func printStatus(w io.Writer, st api.Status) error {
	fmt.Fprintf(w, "Node:       %s (%s) %s\n", st.Node, st.Role, strings.Join(nonEmpty(st.IPv4, st.IPv6), " "))
	fmt.Fprintf(w, "Cluster:    %s\n", st.ClusterID)
	fmt.Fprintf(w, "Version:    %s, up %s\n", st.Version, st.Uptime)
	if h := st.Health; h != nil {
		fmt.Fprintf(w, "Health:     %s, %s\n", verdict(h.Live, "live", h.LiveReason), verdict(h.Ready, "ready", h.Reason))
	}
	ds := st.Datastore
	health := "healthy"
	if !ds.Healthy {
		health = "UNHEALTHY"
	}
	fmt.Fprintf(w, "Datastore:  %s, %d member(s), leader %s, revision %d, endpoints %s\n", health, ds.Members, orDash(ds.Leader), ds.Revision, strings.Join(ds.Endpoints, ","))
	if !ds.InSync {
		fmt.Fprintf(w, "            NOT IN SYNC: enforcing the last known state\n")
	}
	switch {
	case ds.Error != "" && ds.Healthy:
		fmt.Fprintf(w, "            not answering: %s\n", strings.ReplaceAll(ds.Error, "\n", "; "))
	case ds.Error != "":
		fmt.Fprintf(w, "            error: %s\n", strings.ReplaceAll(ds.Error, "\n", "; "))
	}
	dp := st.Dataplane
	if dp.LastApply.IsZero() {
		fmt.Fprintf(w, "Dataplane:  not programmed yet\n")
	} else {
		fmt.Fprintf(w, "Dataplane:  programmed %s ago in %s at revision %d: %d endpoint(s), %d policy chain(s), %d set(s), %d route(s)\n",
			time.Since(dp.LastApply).Round(time.Second), dp.Took.Round(time.Microsecond), dp.Revision, dp.Endpoints, dp.Policies, dp.Sets, dp.Routes)
	}
	if dp.Error != "" {
		fmt.Fprintf(w, "            error: %s\n", dp.Error)
	}
	fmt.Fprintf(w, "Workloads:  %d on this node", st.Workloads)
	if n := len(st.WorkloadsDown); n > 0 {
		fmt.Fprintf(w, ", %d down", n)
	}
	fmt.Fprintln(w)
	for _, d := range st.WorkloadsDown {
		fmt.Fprintf(w, "            down: %s\n", d)
	}
	for i, p := range st.Problems {
		label := "Problems:  "
		if i > 0 {
			label = "           "
		}
		fmt.Fprintf(w, "%s %s\n", label, p)
	}
	if len(st.BGP) > 0 {
		fmt.Fprintln(w)
		if err := bgpTable(w, st.BGP); err != nil {
			return err
		}
	}
	if len(st.Nodes) > 0 {
		fmt.Fprintln(w)
		if err := nodeTable(w, st.Nodes); err != nil {
			return err
		}
	}
	if len(st.Pools) > 0 {
		fmt.Fprintln(w)
		return poolTable(w, st.Pools)
	}
	return nil
}

func nonEmpty(ss ...string) []string {
	var out []string
	for _, s := range ss {
		if s != "" {
			out = append(out, s)
		}
	}
	return out
}

// verdict is one of the node's health verdicts, with the reason when it
// is bad: as /liveness and /readiness answer.
func verdict(ok bool, what, reason string) string {
	if ok {
		return what
	}
	return "NOT " + strings.ToUpper(what) + " (" + reason + ")"
}
