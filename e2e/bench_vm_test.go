package e2e

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

// vmSample is one start of a VM's tap: when the tap was made, the
// guest's DHCP discover and the node's ack went through it, and the
// guest's first datagram reached a workload on another host.
type vmSample struct {
	tap, discover, offer, request, ack, arrived time.Time
}

// TestBenchVM measures, 20 times, from a VM's tap coming up (made and
// opened, as libvirt and QEMU do when a VM starts; its workload was
// added before) to the guest's first packet reaching a workload on
// another host: the DHCP exchange (discover to ack, on the tap) and the
// total. The stand-in's guest starts its DHCP client at once; a real
// guest (QEMU, software emulation) boots its kernel first.
func TestBenchVM(t *testing.T) {
	if os.Getenv("CALICO_BENCH") != "1" {
		t.Skip("a benchmark: set CALICO_BENCH=1 (scripts/bench.sh does)")
	}
	const n = 20
	lab := NewLab(t, 2, 1)
	lab.Start("host1", vmFlags...)
	lab.Start("host2", append(vmFlags, "--join", lab.Addr("host1"), "--token", lab.Token("host1"))...)
	sink := lab.AddWorkload("host2", "vmb-sink", "--profile", "bench")
	makeTap(t, lab, "host1", "vnet3")
	addVM(t, lab, "host1", "vmb", "vnet3", guestMAC, "--profile", "bench")
	deleteTap(t, lab, "host1", "vnet3")
	// BGP first: host1 routes to the receiver's block; then one run
	// untimed.
	eventually(t, 60*time.Second, "host1's route to host2's workloads", func() bool {
		out, _ := lab.Exec("host1", "ip", "route", "get", sink.v4())
		return strings.Contains(out, "via 172.31.1.12")
	})
	benchVMRuns(t, lab, sink, "stand-in", 1)

	out := []string{
		"## Virtual machines: tap up to the first packet on another host (issue 16)",
		"",
		"Two lab hosts; a VM's workload added on host1 (`workload add --iface vnet3 --mac`)",
		"before its tap exists; then, each time: the tap is made and set up (tap up), and the",
		"guest opens it (as libvirt and QEMU do when the VM starts), gets its lease by DHCP (busybox udhcpc) and",
		"sends a UDP datagram every 5 ms to a workload on host2 until one arrives. Timed on",
		"the tap (a packet socket) and at the receiver; one clock. Median (and slowest) of 20.",
		"",
		"| guest | tap up to discover | DHCP exchange: discover to ack | the node's answer (offer, ack) | ack to first packet on host2 | total: tap up to first packet on host2 |",
		"| --- | --- | --- | --- | --- | --- |",
	}
	out = append(out, vmRow("the stand-in (probe tapbridge; the client starts at once)", benchVMRuns(t, lab, sink, "stand-in", n)))
	if k, why := findKernel(); why == "" {
		if _, err := exec.LookPath("qemu-system-x86_64"); err == nil {
			out = append(out, vmRow("QEMU, software emulation (the kernel boots first)", benchVMRuns(t, lab, sink, "qemu", n, k)))
		}
	} else {
		out = append(out, "| QEMU | not run: "+why+" | | | | |")
	}
	writeReport(t, append(out, "",
		"The node's answer is from a client's message to the node's reply on the tap (both the",
		"offer and the ack count); the rest of the exchange is the client's. The route and policy",
		"for the tap are programmed as soon as the kernel reports it (TestVMTapRecreated logs",
		"how long after the tap is made its route is there: tens of milliseconds here)."))
}

func vmRow(guest string, ss []vmSample) string {
	var toDiscover, dhcp, answer, toFirst, total []time.Duration
	for _, s := range ss {
		toDiscover = append(toDiscover, s.discover.Sub(s.tap))
		dhcp = append(dhcp, s.ack.Sub(s.discover))
		answer = append(answer, s.offer.Sub(s.discover), s.ack.Sub(s.request))
		toFirst = append(toFirst, s.arrived.Sub(s.ack))
		total = append(total, s.arrived.Sub(s.tap))
	}
	cell := func(d []time.Duration) string {
		return fmt.Sprintf("%s (%s)", ms(medianOf(d)), ms(maxOf(d)))
	}
	return fmt.Sprintf("| %s | %s | %s | %s | %s | %s |", guest, cell(toDiscover), cell(dhcp), cell(answer), cell(toFirst), cell(total))
}

func maxOf(d []time.Duration) time.Duration {
	m := d[0]
	for _, x := range d {
		m = max(m, x)
	}
	return m
}

// benchVMRuns starts the VM's tap and guest n times.
func benchVMRuns(t *testing.T, lab *Lab, sink Workload, kind string, n int, k ...vmKernel) []vmSample {
	var out []vmSample
	for i := range n {
		s, err := benchVMOnce(t, lab, sink, kind, k...)
		if err != nil {
			t.Fatalf("%s, run %d: %v", kind, i+1, err)
		}
		out = append(out, s)
	}
	return out
}

func benchVMOnce(t *testing.T, lab *Lab, sink Workload, kind string, k ...vmKernel) (vmSample, error) {
	recv := exec.Command("nsenter", "--net="+sink.NetNS, probeBin, "udprecv", "9999")
	var got bytes.Buffer
	recv.Stdout = &got
	if err := recv.Start(); err != nil {
		return vmSample{}, err
	}
	received := make(chan error, 1)
	go func() { received <- recv.Wait() }()
	defer recv.Process.Kill()

	makeTap(t, lab, "host1", "vnet3")
	s := vmSample{tap: time.Now()} // made and up: the node has seen it or will at once
	defer deleteTap(t, lab, "host1", "vnet3")
	sniff := exec.Command(probeBin, "dhcpsniff", hostNS("host1"), "vnet3")
	pipe, _ := sniff.StdoutPipe()
	if err := sniff.Start(); err != nil {
		return s, err
	}
	defer func() { sniff.Process.Kill(); sniff.Wait() }()
	lines := bufio.NewScanner(pipe)
	if !lines.Scan() || lines.Text() != "ready" {
		return s, fmt.Errorf("dhcpsniff did not start")
	}
	dhcp := make(chan string, 64)
	go func() {
		for lines.Scan() {
			dhcp <- lines.Text()
		}
		close(dhcp)
	}()

	dst := sink.v4() + ":9999"
	var g guest
	if kind == "qemu" {
		g = startQEMU(t, lab, "host1", "vnet3", guestMAC, k[0], "calico.send="+dst)
	} else {
		g = startStandIn(t, "host1", "vnet3", guestMAC)
		sender := exec.Command("ip", "netns", "exec", g.(*standIn).ns, "sh", "-c",
			"busybox udhcpc -i eth0 -f -q -t 100 -T 1 -s "+g.Path("lease.sh")+" >/dev/null 2>&1 && exec "+probeBin+" udpsend "+dst)
		if err := sender.Start(); err != nil {
			return s, err
		}
		defer func() { sender.Process.Kill(); sender.Wait() }()
	}
	defer g.Stop()
	select {
	case err := <-received:
		if err != nil {
			return s, fmt.Errorf("udprecv: %v", err)
		}
	case <-time.After(3 * time.Minute):
		return s, fmt.Errorf("no datagram reached host2 within 3 minutes")
	}
	ns, err := strconv.ParseInt(strings.TrimSpace(got.String()), 10, 64)
	if err != nil {
		return s, fmt.Errorf("udprecv printed %q", got.String())
	}
	s.arrived = time.Unix(0, ns)
	return s, dhcpTimes(&s, dhcp)
}

// dhcpTimes reads dhcpsniff's lines: the first discover from the guest
// and the first ack after it.
func dhcpTimes(s *vmSample, lines <-chan string) error {
	timeout := time.After(5 * time.Second)
	for s.ack.IsZero() {
		select {
		case l, ok := <-lines:
			if !ok {
				return fmt.Errorf("dhcpsniff stopped before an ack")
			}
			f := strings.Fields(l)
			if len(f) != 3 {
				continue
			}
			v, _ := strconv.ParseInt(f[0], 10, 64)
			at := time.Unix(0, v)
			switch {
			case f[1] == "out" && f[2] == "DHCP1" && s.discover.IsZero():
				s.discover = at
			case f[1] == "in" && f[2] == "DHCP2" && !s.discover.IsZero() && s.offer.IsZero():
				s.offer = at
			case f[1] == "out" && f[2] == "DHCP3" && !s.offer.IsZero() && s.request.IsZero():
				s.request = at
			case f[1] == "in" && f[2] == "DHCP5" && !s.request.IsZero():
				s.ack = at
			}
		case <-timeout:
			return fmt.Errorf("dhcpsniff saw no discover and ack")
		}
	}
	return nil
}
