package e2e

import (
	"bufio"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestBenchDocker measures `docker run` on a calico network until the
// container's first packet reaches another host, against `docker run
// --net none` until the container's process runs, 50 of each interleaved
// on one lab host (CALICO_BENCH=1; scripts/bench.sh runs it), and the
// time the node's plugins take per container (the sum of their calls,
// from the node's debug log). Goal: the plugins' p50 <= 30 ms.
func TestBenchDocker(t *testing.T) {
	if os.Getenv("CALICO_BENCH") != "1" {
		t.Skip("a benchmark: set CALICO_BENCH=1 (scripts/bench.sh does)")
	}
	const n = 50
	lab, hosts := newDockerLab(t, 2)
	d := hosts[0]
	d.startNode("--pool", "10.65.0.0/16", "--pool", "fd00:65::/48", "--log-level", "debug")
	d.startDockerd()
	d.mustDocker("network", "create", "--driver", "calico", "--ipam-driver", "calico-ipam", "bench")
	d.mustDocker("network", "create", "--driver", "bridge", "--subnet", "192.168.99.0/24", "benchbr")
	loadBefore := loadAverage()
	target := lab.Addr("host2")
	arrivals := watchPings(t, hostNS("host2"))
	fifos := t.TempDir()

	var toPacket, toStartCalico, toStartNone, toStartBridge, plugins []time.Duration
	byCall := map[string][]time.Duration{}
	for i := range n {
		// --net none, and Docker's own bridge driver and IPAM: until
		// the container's process runs.
		start := time.Now()
		ran := d.benchRun(fifos, fmt.Sprintf("none-%02d", i), "none", "exec sleep 3600")
		toStartNone = append(toStartNone, ran.Sub(start))
		start = time.Now()
		ran = d.benchRun(fifos, fmt.Sprintf("br-%02d", i), "benchbr", "exec sleep 3600")
		toStartBridge = append(toStartBridge, ran.Sub(start))

		// A calico network: until its first packet is on host2.
		from := logSize(lab, d.name)
		start = time.Now()
		ran = d.benchRun(fifos, fmt.Sprintf("cal-%02d", i), "bench", "exec ping -i 0.5 "+target)
		toStartCalico = append(toStartCalico, ran.Sub(start))
		addr := netip.MustParseAddr(d.container(fmt.Sprintf("cal-%02d", i), "bench").v4())
		first, ok := waitPing(arrivals, addr, 30*time.Second)
		if !ok {
			logs, _ := d.docker("logs", fmt.Sprintf("cal-%02d", i))
			routes, _ := d.docker("exec", fmt.Sprintf("cal-%02d", i), "ip", "route")
			t.Fatalf("cal-%02d's packets (from %s) did not reach host2 within 30s; its output:\n%s\nits routes:\n%s", i, addr, logs, routes)
		}
		toPacket = append(toPacket, first.Sub(start))
		var sum time.Duration
		for call, took := range pluginCalls(t, lab, d.name, from) {
			sum += took
			byCall[call] = append(byCall[call], took)
		}
		plugins = append(plugins, sum)
	}
	medPacket, medNone := medianOf(toPacket), medianOf(toStartNone)
	sorted := slices.Sorted(slices.Values(plugins))
	var calls []string
	for _, c := range slices.Sorted(maps.Keys(byCall)) {
		calls = append(calls, fmt.Sprintf("%s %s", strings.TrimPrefix(strings.TrimPrefix(c, "/NetworkDriver."), "/IpamDriver."), ms(medianOf(byCall[c]))))
	}
	writeReport(t, []string{
		"## Docker containers (issue 13)",
		"",
		"One lab host runs Docker's engine (Debian's docker.io 20.10, started by the test in the host's",
		"namespaces) and the node, which serves its network and IPAM plugins. 50 containers on a calico",
		"network (`docker run -d --net bench`, busybox pinging another lab host), 50 with `--net none` and",
		"50 on a network of Docker's own bridge driver and IPAM, interleaved, one after another. A calico",
		"container is timed from `docker run` until its first packet reaches the other host (a capture",
		"there), the others until their process runs (it writes to a fifo; so does the calico one, for",
		"the third row). The plugins' time per container is the sum of the node's plugin calls for",
		"it (RequestAddress, CreateEndpoint, Join, ProgramExternalConnectivity, EndpointOperInfo), each",
		"timed by the node. Goal: the plugins' p50 <= 30 ms.",
		"",
		"| measure | median | p99 |",
		"| --- | --- | --- |",
		fmt.Sprintf("| `docker run --net bench` to the first packet on another host | %s | %s |", ms(medPacket), ms(percentile(slices.Sorted(slices.Values(toPacket)), 0.99))),
		fmt.Sprintf("| `docker run --net none` to the container's process | %s | %s |", ms(medNone), ms(percentile(slices.Sorted(slices.Values(toStartNone)), 0.99))),
		fmt.Sprintf("| ratio of the medians (calico / none) | %.2f | |", float64(medPacket)/float64(medNone)),
		fmt.Sprintf("| `docker run --net bench` to the container's process | %s | %s |", ms(medianOf(toStartCalico)), ms(percentile(slices.Sorted(slices.Values(toStartCalico)), 0.99))),
		fmt.Sprintf("| `docker run --net benchbr` (Docker's bridge) to the container's process | %s | %s |", ms(medianOf(toStartBridge)), ms(percentile(slices.Sorted(slices.Values(toStartBridge)), 0.99))),
		fmt.Sprintf("| the plugins' time per container | %s | %s |", ms(percentile(sorted, 0.5)), ms(percentile(sorted, 0.99))),
		"",
		"The plugins' calls, median per container: " + strings.Join(calls, ", ") + ".",
		fmt.Sprintf("The machine's load average (1 min) was %s before and %s after.", loadBefore, loadAverage()),
	})
}

// waitPing waits for the first ping from addr.
func waitPing(arrivals func(netip.Addr) (time.Time, bool), addr netip.Addr, within time.Duration) (time.Time, bool) {
	for deadline := time.Now().Add(within); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if at, ok := arrivals(addr); ok {
			return at, true
		}
	}
	return time.Time{}, false
}

// benchRun starts a container that writes to a fifo as its process
// starts, then runs script; it returns when the fifo was written.
func (d *dockerHost) benchRun(dir, name, network, script string) time.Time {
	d.t.Helper()
	fifo := filepath.Join(dir, name)
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		d.t.Fatal(err)
	}
	got := make(chan time.Time, 1)
	go func() {
		f, err := os.Open(fifo) // blocks until the container opens it
		if err == nil {
			bufio.NewReader(f).ReadString('\n')
			f.Close()
		}
		got <- time.Now()
	}()
	d.mustDocker("run", "-d", "--name", name, "--net", network, "-v", fifo+":/ready", dockerImage, "sh", "-c", "echo > /ready; "+script)
	select {
	case at := <-got:
		return at
	case <-time.After(30 * time.Second):
		d.t.Fatalf("container %s did not start within 30s", name)
		return time.Time{}
	}
}

// watchPings records when the first ICMP echo request from each IPv4
// source arrives in network namespace ns, until the test ends.
func watchPings(t *testing.T, ns string) func(netip.Addr) (time.Time, bool) {
	fd, err := packetSocket(ns)
	if err != nil {
		t.Fatal(err)
	}
	tv := unix.NsecToTimeval((100 * time.Millisecond).Nanoseconds())
	unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)
	var mu sync.Mutex
	first := map[netip.Addr]time.Time{}
	done := make(chan struct{})
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		buf := make([]byte, 1<<16)
		for {
			select {
			case <-done:
				return
			default:
			}
			n, _, err := unix.Recvfrom(fd, buf, 0)
			now := time.Now()
			if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EINTR) || err != nil {
				continue
			}
			f := buf[:n]
			// IPv4 (no VLAN), ICMP, echo request.
			if n < 35 || f[12] != 0x08 || f[13] != 0x00 || f[23] != 1 || f[14+int(f[14]&0x0f)*4] != 8 {
				continue
			}
			src := netip.AddrFrom4([4]byte(f[26:30]))
			mu.Lock()
			if _, ok := first[src]; !ok {
				first[src] = now
			}
			mu.Unlock()
		}
	}()
	t.Cleanup(func() { close(done); <-stopped; unix.Close(fd) })
	return func(a netip.Addr) (time.Time, bool) {
		mu.Lock()
		defer mu.Unlock()
		at, ok := first[a]
		return at, ok
	}
}

// pluginCalls are the durations of the node's plugin calls logged since
// offset from in host's log, by call.
func pluginCalls(t *testing.T, lab *Lab, host string, from int64) map[string]time.Duration {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(lab.dir, host+".log"))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]time.Duration{}
	for _, line := range strings.Split(string(b[min(from, int64(len(b))):]), "\n") {
		if !strings.Contains(line, `msg="Docker plugin call"`) {
			continue
		}
		_, call, _ := strings.Cut(line, " call=")
		_, took, ok := strings.Cut(line, " took=")
		if !ok || call == "" {
			continue
		}
		d, err := time.ParseDuration(strings.Fields(took)[0])
		if err != nil {
			t.Fatalf("a plugin call's duration in %q: %v", line, err)
		}
		out[strings.Fields(call)[0]] += d
	}
	return out
}

// loadAverage is the machine's 1-minute load average.
func loadAverage() string {
	b, _ := os.ReadFile("/proc/loadavg")
	if f := strings.Fields(string(b)); len(f) > 0 {
		return f[0]
	}
	return "?"
}
