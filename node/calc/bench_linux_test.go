package calc

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"

	"calico/internal/testutil"
	"calico/nft"
	"calico/store"
)

// BenchmarkPrivilegedFullLoad is a node's first apply after a restart
// that found its table gone, at the lab benchmark's scale: the
// calculation, then the read-back and the load of the whole table in one
// transaction, each time into a fresh network namespace.
func BenchmarkPrivilegedFullLoad(b *testing.B) { benchFullLoad(b, false) }

// BenchmarkPrivilegedFullLoadListened is the same with a socket
// subscribed to nftables events in another network namespace, as every
// lab host's node keeps one (nft.monitor) and `nft monitor` is one: the
// kernel then builds an event for every rule and element of every
// transaction in every namespace (netlink_has_listeners is not per
// namespace), and throws away those nobody in the namespace reads.
func BenchmarkPrivilegedFullLoadListened(b *testing.B) { benchFullLoad(b, true) }

func benchFullLoad(b *testing.B, listened bool) {
	testutil.Privileged(b)
	if listened {
		ns := testutil.NewNetNS(b)
		c, err := netlink.Dial(unix.NETLINK_NETFILTER, &netlink.Config{NetNS: int(ns.Handle())})
		if err != nil {
			b.Fatal(err)
		}
		defer c.Close()
		if err := c.JoinGroup(unix.NFNLGRP_NFTABLES); err != nil {
			b.Fatal(err)
		}
	}
	in := benchInput()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	var calcTook, nftTook time.Duration
	for b.Loop() {
		b.StopTimer()
		ns := testutil.NewNetNS(b)
		b.StartTimer()
		start := time.Now()
		d := Compute(in)
		computed := time.Now()
		a := nft.New(log, nft.WithNetNS(int(ns.Handle())))
		if err := a.Apply(context.Background(), d.Ruleset); err != nil {
			b.Fatal(err)
		}
		calcTook += computed.Sub(start)
		nftTook += time.Since(computed)
		b.StopTimer()
		a.Close()
		b.StartTimer()
	}
	b.ReportMetric(float64(calcTook.Milliseconds())/float64(b.N), "calc-ms/op")
	b.ReportMetric(float64(nftTook.Milliseconds())/float64(b.N), "nft-ms/op")
}

// BenchmarkPrivilegedPolicyChange is what a node does for a change of one
// rule of one policy at the lab benchmark's scale: the calculation with
// its memory of the previous state, then one Apply.
func BenchmarkPrivilegedPolicyChange(b *testing.B) {
	testutil.Privileged(b)
	in := benchInput()
	deny := *in.GlobalPolicies[0]
	deny.Metadata.ResourceVersion = "2"
	deny.Spec.Ingress = append([]store.Rule{{Action: "Deny"}}, deny.Spec.Ingress...)
	versions := []*store.GlobalNetworkPolicy{in.GlobalPolicies[0], &deny}
	benchApplyChanges(b, &in, func(i int) { in.GlobalPolicies[0] = versions[i%2] })
}

// BenchmarkPrivilegedEndpointChange is what a node does when one remote
// workload's labels change among 100 hosts of 1,000 workloads (the
// fleet-scale shape): the calculation with its memory, then one Apply.
func BenchmarkPrivilegedEndpointChange(b *testing.B) {
	testutil.Privileged(b)
	in := benchInputSized(100, 1000, 25)
	benchApplyChanges(b, &in, toggleLastWorkload(in))
}

// benchApplyChanges programs in into a fresh network namespace, then
// times each change (change(i) alters *in) through the Calculator and one
// Apply, reporting both parts.
func benchApplyChanges(b *testing.B, in *Input, change func(i int)) {
	ns := testutil.NewNetNS(b)
	a := nft.New(slog.New(slog.NewTextHandler(io.Discard, nil)), nft.WithNetNS(int(ns.Handle())))
	b.Cleanup(func() { a.Close() })
	var k Calculator
	ctx := context.Background()
	if err := a.Apply(ctx, k.Compute(*in).Ruleset); err != nil {
		b.Fatal(err)
	}
	var calcTook, nftTook time.Duration
	i := 0
	for b.Loop() {
		i++
		change(i)
		start := time.Now()
		d := k.Compute(*in)
		computed := time.Now()
		if err := a.Apply(ctx, d.Ruleset); err != nil {
			b.Fatal(err)
		}
		calcTook += computed.Sub(start)
		nftTook += time.Since(computed)
	}
	b.ReportMetric(float64(calcTook.Microseconds())/float64(b.N)/1000, "calc-ms/op")
	b.ReportMetric(float64(nftTook.Microseconds())/float64(b.N)/1000, "nft-ms/op")
}
