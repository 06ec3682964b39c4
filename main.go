// Command calico gives every workload on a fleet of Linux hosts its own
// routable address, routes between hosts with BGP and enforces Calico's
// policy model with nftables. See README.md.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"calico/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Run(ctx, os.Args, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
