package e2e

import (
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestBenchInstall measures the installer to a ready node, five times,
// each in a fresh sandbox (install_test.go): from `sh install.sh` (the
// release served on 127.0.0.1, INSTALL_CALICO_SKIP_START since systemd
// is not PID 1 here) through `calico up` started as the unit starts it
// to READY=1 on a test NOTIFY_SOCKET (the API answers and the dataplane
// is programmed). The node founds a cluster. It also measures a restart
// of the same node to READY=1 (from its state cache).
func TestBenchInstall(t *testing.T) {
	if os.Getenv("CALICO_BENCH") != "1" {
		t.Skip("a benchmark: set CALICO_BENCH=1 (scripts/bench.sh does)")
	}
	installPrereqs(t, "python3", "curl", "nft")
	const runs = 5
	dist := makeDist(t, calicoBin)
	var install, ready, total, restart []time.Duration
	for i := range runs {
		t.Run(fmt.Sprintf("run %d", i+1), func(t *testing.T) {
			s := newSandbox(t)
			sandboxNet(t, s)
			notify := newNotifySocket(t)
			took := installForService(t, s, dist)
			began := time.Now()
			node := startSandboxNode(t, s, notify)
			at := notify.wait(t, "READY=1", began, 60*time.Second, node)
			install, ready, total = append(install, took), append(ready, at.Sub(began)), append(total, took+at.Sub(began))
			if err := node.stop(t); err != nil {
				t.Fatalf("the node exited with %v", err)
			}
			again := time.Now()
			node = startSandboxNode(t, s, notify)
			restart = append(restart, notify.wait(t, "READY=1", again, 60*time.Second, node).Sub(again))
			node.stop(t)
		})
	}
	if t.Failed() {
		return
	}
	row := func(what string, ds []time.Duration) string {
		s := slices.Sorted(slices.Values(ds))
		return fmt.Sprintf("| %s | %s | %s / %s |", what, ms(s[len(s)/2]), ms(s[0]), ms(s[len(s)-1]))
	}
	writeReport(t, []string{
		"## Installer to a ready node (issue 14)",
		"",
		"Five runs, each in a fresh sandbox (a mount and network namespace with tmpfs over",
		"/usr/local/bin, /etc/systemd/system and /run and overlays on /etc and /var/lib, as the",
		"installer's tests make it): `sh install.sh --pool 10.65.0.0/16 --name sandbox1 --ip …`",
		"downloads the release (served by python3 on 127.0.0.1), checks its checksum and writes the",
		"binary, unit, config and uninstaller, with INSTALL_CALICO_SKIP_START (systemd is not PID 1",
		"here); then `calico up` is started as the unit starts it (no flags: the config file",
		"says everything) with a test NOTIFY_SOCKET, and READY=1 (the API answers and the",
		"dataplane is programmed) ends the run. The node founds a one-node cluster (etcd, gossip,",
		"BGP). A restart of the same node is ready from its state cache.",
		"",
		"| measure | median | min / max |",
		"| --- | --- | --- |",
		row("`sh install.sh` to READY=1", total),
		row("`sh install.sh` alone", install),
		row("`calico up` to READY=1 (founding)", ready),
		row("`calico up` to READY=1 again (restart, from the state cache)", restart),
	})
}

// TestBenchUpgrade measures the rolling upgrade of TestUpgradeRolling:
// three hosts from the previous build to this one, one at a time, while
// workloads on every host keep TCP flows and pings going between hosts.
func TestBenchUpgrade(t *testing.T) {
	if os.Getenv("CALICO_BENCH") != "1" {
		t.Skip("a benchmark: set CALICO_BENCH=1 (scripts/bench.sh does)")
	}
	res := rollingUpgrade(t)
	if t.Failed() {
		return
	}
	lost := "0"
	if res.pingsLost > 0 {
		lost = fmt.Sprintf("%d (%s)", res.pingsLost, strings.Join(res.lostByPing, "; "))
	}
	flowState := "all intact"
	if res.flowErr != nil {
		flowState = "broke: " + res.flowErr.Error()
	}
	writeReport(t, []string{
		"## Rolling upgrade (issue 14)",
		"",
		"Three lab hosts in one cluster run the previous build (" + res.from + ", built from the",
		"commit before issue 14's node half); a workload on each keeps a TCP flow (8-byte messages",
		"echoed back, one every 5 ms) to the next host's workload and pings it every 50 ms over",
		"IPv4 and IPv6. Each host in turn gets SIGTERM, its binary is replaced (a copy renamed",
		"over it, as install.sh does) by this build (" + res.to + ") and it starts again; the next",
		"host waits until the restarted node's BGP is back in sync (every session up for 3 s; a",
		"session that went idle while the peer was away waits out GoBGP's idle hold, 5 s, first)",
		"and a workload added",
		"on it and one added on a host of the previous version reach each other both ways",
		"(IPv4 and IPv6). Goal: no packet lost.",
		"",
		"| measure | result |",
		"| --- | --- |",
		fmt.Sprintf("| three hosts, first SIGTERM to the last host back in BGP sync | %.1f s |", res.total.Seconds()),
		fmt.Sprintf("| per host: SIGTERM to its node back in BGP sync | %s |", secs(res.perHost)),
		fmt.Sprintf("| per host: SIGTERM to its API answering again (the old node's stop, the new one's start) | %s |", secs(res.downtime)),
		fmt.Sprintf("| pings lost | %s of %d (%d pingers) |", lost, res.pingsSent, res.pingers),
		fmt.Sprintf("| TCP flows | %d, %s; %d messages |", res.flows, flowState, res.messages),
		fmt.Sprintf("| longest gap between two TCP messages of a flow | %s |", ms(res.maxGap)),
		fmt.Sprintf("| checks of the two versions together (workload pairs, both ways) | %d, all connected |", res.mixedChecks),
	})
}

func secs(ds []time.Duration) string {
	parts := make([]string, len(ds))
	for i, d := range ds {
		parts[i] = fmt.Sprintf("%.1f s", d.Seconds())
	}
	return strings.Join(parts, ", ")
}
