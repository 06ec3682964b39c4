// Command calico gives every workload on a fleet of Linux hosts its own
// routable address, routes between hosts with BGP and enforces Calico's
// policy model with nftables. Run by a container runtime with CNI_COMMAND
// set (or as calico-ipam), it is a CNI plugin. See README.md.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"calico/cli"
	"calico/cni"
)

func main() {
	started()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	var code int
	if cni.Invoked(os.Args) { // a container runtime runs the binary as a CNI plugin
		code = cni.Main(ctx, os.Args, "calico "+cli.Version+": Calico's CNI plugin for the calico node on this host")
	} else {
		code = cli.Run(ctx, os.Args, os.Stdout, os.Stderr)
	}
	stop()
	os.Exit(code)
}
