package e2e

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// The BGP tests: workloads on different hosts reach each other over plain
// routed IP, routes follow workloads and hosts within seconds, a restart
// keeps flows going, and hosts in two racks peer with a route reflector
// on the top-of-rack router instead of with each other.

// bgpPools are the pools every BGP test founds its cluster with.
var bgpPools = []string{"--pool", "10.65.0.0/16", "--pool", "fd00:65::/48"}

// bgpRouteProto is the route protocol number calico marks its routes with.
const bgpRouteProto = 80

// bgpNS is the path of a lab namespace: a host's ("host1") or the
// fabric's ("fabric").
func bgpNS(name string) string { return "/run/netns/" + labName() + "-" + name }

// bgpHosts is host1 … hostN.
func bgpHosts(n int) []string {
	hs := make([]string, n)
	for i := range hs {
		hs[i] = fmt.Sprintf("host%d", i+1)
	}
	return hs
}

// bgpCluster founds a cluster on hosts[0] with extra `calico up`
// arguments and joins the other hosts to it one by one; it returns once
// hosts[0] sees every host alive.
func bgpCluster(t *testing.T, lab *Lab, hosts []string, extra ...string) {
	t.Helper()
	start := time.Now()
	lab.Start(hosts[0], append(slices.Clone(bgpPools), extra...)...)
	join := []string{"--join", lab.Addr(hosts[0]), "--token", lab.Token(hosts[0])}
	for _, h := range hosts[1:] {
		lab.Start(h, join...)
	}
	bgpWaitFor(t, 60*time.Second, 200*time.Millisecond, "every host alive", func() (bool, string) {
		nodes, err := lab.Nodes(hosts[0])
		if err != nil {
			return false, err.Error()
		}
		alive := 0
		for _, n := range nodes {
			if slices.Contains(hosts, n.Name) && n.Gossip == "alive" {
				alive++
			}
		}
		return alive == len(hosts), fmt.Sprintf("%+v", nodes)
	})
	t.Logf("cluster of %d hosts up in %s", len(hosts), time.Since(start).Round(time.Millisecond))
	bgpSettled(t, lab, hosts)
}

// bgpSettled waits, in a cluster of three hosts or more, until the first
// three are the etcd voters and so the automatic route reflectors on
// every host, and every host's BGP sessions are up. A host promoted to
// voter makes its sessions again (GoBGP takes a route-reflector-client
// mark only when it makes a session), and its peers lose its routes for
// a second or more meanwhile: a test that starts flows before that would
// see them stall.
func bgpSettled(t *testing.T, lab *Lab, hosts []string) {
	t.Helper()
	if len(hosts) < 3 {
		return
	}
	start := time.Now()
	want := "automatic reflectors: " + strings.Join(hosts[:3], ", ") + ")"
	// For a second in a row: a host logs its topology just before it
	// makes its sessions again.
	var since time.Time
	bgpWaitFor(t, 60*time.Second, 100*time.Millisecond, "the voters reflecting and every BGP session up on every host, for a second", func() (bool, string) {
		ok, seen := bgpAllUp(lab, hosts, want)
		if !ok {
			since = time.Time{}
			return false, seen
		}
		if since.IsZero() {
			since = time.Now()
		}
		return time.Since(since) >= time.Second, ""
	})
	t.Logf("BGP settled (voters reflecting, every session up) %s later", time.Since(start).Round(time.Millisecond))
}

// bgpAllUp says whether every host's last topology has reflectors as
// want says and all its sessions to the other hosts are up.
func bgpAllUp(lab *Lab, hosts []string, want string) (bool, string) {
	for _, h := range hosts {
		log := lab.Log(h)
		i := strings.LastIndex(log, `msg="BGP topology"`)
		line, _, _ := strings.Cut(log[max(i, 0):], "\n")
		if i < 0 || !strings.Contains(line, want) {
			return false, h + ": " + line
		}
		ss, err := sessions(lab, h)
		if err != nil {
			return false, err.Error()
		}
		for node, states := range ss {
			for _, st := range states {
				if st != "established" {
					return false, fmt.Sprintf("%s's session to %s: %s", h, node, st)
				}
			}
		}
		if len(ss) != len(hosts)-1 {
			return false, fmt.Sprintf("%s's sessions: %v", h, ss)
		}
	}
	return true, ""
}

// bgpWaitFor polls check every interval until it holds or within passes,
// and returns how long it took. check returns what it saw, for the
// failure message.
func bgpWaitFor(t *testing.T, within, interval time.Duration, what string, check func() (bool, string)) time.Duration {
	t.Helper()
	start := time.Now()
	for {
		ok, seen := check()
		if ok {
			return time.Since(start)
		}
		if time.Since(start) > within {
			t.Fatalf("timed out after %s waiting for %s; last seen: %s", within, what, seen)
		}
		time.Sleep(interval)
	}
}

// bgpInNS runs fn on an OS thread in the network namespace at path. Sockets
// fn makes belong to that namespace for good. The thread stays locked
// (and dies with its goroutine) if it cannot return to its own namespace.
func bgpInNS(path string, fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			errc <- fmt.Errorf("reading this thread's namespace: %w", err)
			return
		}
		defer orig.Close()
		target, err := netns.GetFromPath(path)
		if err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("opening namespace %s: %w", path, err)
			return
		}
		defer target.Close()
		if err := netns.Set(target); err != nil {
			errc <- fmt.Errorf("entering namespace %s: %w", path, err)
			return
		}
		ferr := fn()
		if err := netns.Set(orig); err != nil {
			errc <- errors.Join(ferr, fmt.Errorf("leaving namespace %s: %w", path, err))
			return
		}
		runtime.UnlockOSThread()
		errc <- ferr
	}()
	return <-errc
}

// bgpDialIn connects over TCP from the network namespace at path.
func bgpDialIn(path, addr string, timeout time.Duration) (net.Conn, error) {
	var c net.Conn
	err := bgpInNS(path, func() error {
		var err error
		c, err = net.DialTimeout("tcp", addr, timeout)
		return err
	})
	return c, err
}

// bgpServeIn listens on TCP port (IPv4 and IPv6) in the network namespace
// at path and hands every connection to handle, until the test ends or
// the returned function is called.
func bgpServeIn(t *testing.T, path string, port int, handle func(net.Conn)) (stop func()) {
	t.Helper()
	var ln net.Listener
	err := bgpInNS(path, func() error {
		var err error
		ln, err = net.Listen("tcp", fmt.Sprintf(":%d", port))
		return err
	})
	if err != nil {
		t.Fatalf("listening in %s: %v", path, err)
	}
	var wg sync.WaitGroup
	var once sync.Once
	var mu sync.Mutex
	var conns []net.Conn
	stop = func() {
		once.Do(func() {
			ln.Close()
			mu.Lock()
			for _, c := range conns {
				c.Close()
			}
			mu.Unlock()
			wg.Wait()
		})
	}
	t.Cleanup(stop)
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Go(func() { defer c.Close(); handle(c) })
		}
	})
	return stop
}

// bgpSayOK answers like `probe serve`.
func bgpSayOK(c net.Conn) { c.Write([]byte("ok")) }

// bgpEcho sends back whatever arrives.
func bgpEcho(c net.Conn) { io.Copy(c, c) }

// bgpAddWorkload is `calico workload add NAME ARGS... -o json` on host,
// without a probe server.
func bgpAddWorkload(t *testing.T, lab *Lab, host, name string, args ...string) Workload {
	t.Helper()
	out := lab.MustCalico(host, append([]string{"workload", "add", name, "-o", "json"}, args...)...)
	var w Workload
	if err := json.Unmarshal([]byte(out), &w); err != nil {
		t.Fatalf("workload add %s printed %q: %v", name, out, err)
	}
	if w.v4() == "" || w.v6() == "" {
		t.Fatalf("workload %s got addresses %v; want an IPv4 and an IPv6 one", name, w.Addresses)
	}
	return w
}

// bgpHostRoutes are host's routes of protocol 80 (calico's), both families.
func bgpHostRoutes(host string) ([]netlink.Route, error) {
	ns, err := netns.GetFromPath(bgpNS(host))
	if err != nil {
		return nil, err
	}
	defer ns.Close()
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		return nil, err
	}
	defer h.Close()
	return h.RouteListFiltered(netlink.FAMILY_ALL, &netlink.Route{Protocol: bgpRouteProto}, netlink.RT_FILTER_PROTOCOL)
}

// bgpRouteVia tells whether r forwards through gw (alone or among its next
// hops).
func bgpRouteVia(r netlink.Route, gw netip.Addr) bool {
	if a, ok := netip.AddrFromSlice(r.Gw); ok && a.Unmap() == gw {
		return true
	}
	for _, nh := range r.MultiPath {
		if a, ok := netip.AddrFromSlice(nh.Gw); ok && a.Unmap() == gw {
			return true
		}
	}
	return false
}

// bgpRoutesVia are host's calico routes through any of gws, as text.
func bgpRoutesVia(host string, gws ...netip.Addr) ([]string, error) {
	rs, err := bgpHostRoutes(host)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, r := range rs {
		for _, gw := range gws {
			if bgpRouteVia(r, gw) {
				out = append(out, r.String())
				break
			}
		}
	}
	return out, nil
}

// bgpRouteTo is host's calico route whose destination contains addr, as
// `ip route get` would pick among them (longest prefix), or nil.
func bgpRouteTo(host string, addr netip.Addr) (*netlink.Route, error) {
	rs, err := bgpHostRoutes(host)
	if err != nil {
		return nil, err
	}
	var best *netlink.Route
	bestBits := -1
	for i, r := range rs {
		if r.Dst == nil {
			continue
		}
		a, ok := netip.AddrFromSlice(r.Dst.IP)
		ones, _ := r.Dst.Mask.Size()
		if !ok || !netip.PrefixFrom(a.Unmap(), ones).Contains(addr) || ones <= bestBits {
			continue
		}
		best, bestBits = &rs[i], ones
	}
	return best, nil
}

// bgpShowRoutes is `ip route show proto 80` (and -6) on host, for messages.
func bgpShowRoutes(lab *Lab, host string) string {
	v4, _ := lab.Exec(host, "ip", "route", "show", "proto", "80")
	v6, _ := lab.Exec(host, "ip", "-6", "route", "show", "proto", "80")
	return v4 + v6
}

// bgpHostAddrs are host's IPv4 and IPv6 addresses.
func bgpHostAddrs(t *testing.T, lab *Lab, host string) []netip.Addr {
	t.Helper()
	var out []netip.Addr
	for _, fam := range []string{"4", "6"} {
		s, err := lab.script("addr", host, fam)
		if err != nil {
			t.Fatalf("lab.sh addr %s %s: %v", host, fam, err)
		}
		out = append(out, netip.MustParseAddr(strings.TrimSpace(s)))
	}
	return out
}

// TestBGPMatrix: three hosts in one rack, workloads of two profiles
// spread over them; across hosts the same profile connects and the other
// is refused, over IPv4 and IPv6, and the packets cross the fabric with
// the workloads' own addresses: no encapsulation.
func TestBGPMatrix(t *testing.T) {
	lab := NewLab(t, 3, 1)
	bgpCluster(t, lab, bgpHosts(3))

	a1 := lab.AddWorkload("host1", "bg-a1", "--profile", "a")
	a3 := lab.AddWorkload("host3", "bg-a3", "--profile", "a")
	b2 := lab.AddWorkload("host2", "bg-b2", "--profile", "b")
	a2 := lab.AddWorkload("host2", "bg-a2", "--profile", "a")
	var cells []Expect
	for _, fam := range []func(Workload) string{Workload.v4, Workload.v6} {
		for _, p := range [][2]Workload{{a1, a3}, {a1, a2}, {a3, a2}} {
			cells = append(cells, Expect{p[0], fam(p[1]), true}, Expect{p[1], fam(p[0]), true})
		}
		for _, a := range []Workload{a1, a2, a3} {
			cells = append(cells, Expect{b2, fam(a), false}, Expect{a, fam(b2), false})
		}
	}
	start := time.Now()
	CheckMatrix(t, cells, 30*time.Second)
	t.Logf("matrix of %d cells checked in %s", len(cells), time.Since(start).Round(time.Millisecond))
	if t.Failed() {
		for _, h := range bgpHosts(3) {
			t.Logf("%s's routes:\n%s", h, bgpShowRoutes(lab, h))
		}
		t.FailNow()
	}

	// The routes between hosts go straight to the other host's address.
	h3 := bgpHostAddrs(t, lab, "host3")
	for i, a := range []string{a3.v4(), a3.v6()} {
		r, err := bgpRouteTo("host1", netip.MustParseAddr(a))
		if err != nil || r == nil || !bgpRouteVia(*r, h3[i]) {
			t.Errorf("host1's route to %s is %v (%v); want one via host3's %s\n%s", a, r, err, h3[i], bgpShowRoutes(lab, "host1"))
		}
	}

	frames, err := bgpCaptureWhile(bgpNS("fabric"), func() {
		for range 3 {
			connects(a1, a3.v4())
			connects(a1, a3.v6())
		}
	})
	if err != nil {
		t.Fatalf("capturing on the fabric: %v", err)
	}
	src4, dst4 := netip.MustParseAddr(a1.v4()), netip.MustParseAddr(a3.v4())
	src6, dst6 := netip.MustParseAddr(a1.v6()), netip.MustParseAddr(a3.v6())
	var plain4, plain6, encapsulated int
	protos := map[string]int{}
	for _, f := range frames {
		p, ok := bgpParseIP(f)
		if !ok {
			continue
		}
		protos[p.describe()]++
		switch {
		case p.src == src4 && p.dst == dst4 && p.proto == unix.IPPROTO_TCP:
			plain4++
		case p.src == src6 && p.dst == dst6 && p.proto == unix.IPPROTO_TCP:
			plain6++
		case p.proto == unix.IPPROTO_IPIP, p.proto == unix.IPPROTO_IPV6, p.proto == unix.IPPROTO_GRE,
			p.proto == unix.IPPROTO_UDP && (p.dport == 4789 || p.dport == 8472):
			encapsulated++
		}
	}
	t.Logf("captured %d frames on the fabric: %d TCP %s -> %s, %d TCP %s -> %s; by kind %v",
		len(frames), plain4, src4, dst4, plain6, src6, dst6, protos)
	if plain4 == 0 {
		t.Errorf("no IPv4 TCP frame from %s to %s crossed the fabric: workload traffic is not routed unencapsulated", src4, dst4)
	}
	if plain6 == 0 {
		t.Errorf("no IPv6 TCP frame from %s to %s crossed the fabric", src6, dst6)
	}
	if encapsulated > 0 {
		t.Errorf("%d encapsulated frames (IPIP, 6in4, GRE, VXLAN) crossed the fabric", encapsulated)
	}
	bgpNoExport(t, lab, a1, a2)
}

// bgpNoExport: host1 advertises nothing of a pool with disableBGPExport,
// so a workload of it is reached from its own host (a1) but from no other
// (a2 on host2, whose hosts learn no route to it).
func bgpNoExport(t *testing.T, lab *Lab, a1, a2 Workload) {
	t.Helper()
	lab.MustCalico("host1", "pool", "add", "10.70.0.0/16", "--disable-bgp-export")
	if got := lab.MustCalico("host1", "get", "ippools", "-o", "json"); !strings.Contains(strings.ReplaceAll(got, " ", ""), `"disableBGPExport":true`) {
		t.Fatalf("pool add --disable-bgp-export made:\n%s", got)
	}
	hidden := lab.AddWorkload("host1", "bg-hidden", "--profile", "a", "--pool", "10.70.0.0/16")
	CheckMatrix(t, []Expect{{a1, hidden.v4(), true}, {a2, hidden.v4(), false}}, 30*time.Second)
	var routes struct {
		Advertised []string `json:"advertised"`
	}
	if err := json.Unmarshal([]byte(lab.MustCalico("host1", "bgp", "routes", "-o", "json")), &routes); err != nil {
		t.Fatal(err)
	}
	if slices.ContainsFunc(routes.Advertised, func(p string) bool { return strings.HasPrefix(p, "10.70.") }) ||
		!slices.ContainsFunc(routes.Advertised, func(p string) bool { return strings.HasPrefix(p, "10.65.") }) {
		t.Errorf("host1 advertises %v; want its block of 10.65.0.0/16 and nothing of 10.70.0.0/16", routes.Advertised)
	}
	for _, h := range []string{"host2", "host3"} {
		if r := bgpShowRoutes(lab, h); strings.Contains(r, "10.70.") {
			t.Errorf("%s has a route into the pool host1 does not export:\n%s", h, r)
		}
	}
}

// bgpPacket is what the tests read from a captured frame.
type bgpPacket struct {
	src, dst     netip.Addr
	proto        byte
	sport, dport uint16
}

func (p bgpPacket) describe() string {
	fam := "ipv4"
	if p.src.Is6() {
		fam = "ipv6"
	}
	switch p.proto {
	case unix.IPPROTO_TCP:
		return fam + "/tcp"
	case unix.IPPROTO_UDP:
		return fmt.Sprintf("%s/udp/%d", fam, min(p.sport, p.dport))
	default:
		return fmt.Sprintf("%s/proto-%d", fam, p.proto)
	}
}

// bgpParseIP reads the IP header (and ports) of an Ethernet frame, IPv6
// without extension headers.
func bgpParseIP(f []byte) (p bgpPacket, ok bool) {
	if len(f) < 14 {
		return p, false
	}
	var l4 int
	switch binary.BigEndian.Uint16(f[12:14]) {
	case 0x0800:
		if len(f) < 34 {
			return p, false
		}
		p.src, _ = netip.AddrFromSlice(f[26:30])
		p.dst, _ = netip.AddrFromSlice(f[30:34])
		p.proto, l4 = f[23], 14+int(f[14]&0x0f)*4
	case 0x86dd:
		if len(f) < 54 {
			return p, false
		}
		p.src, _ = netip.AddrFromSlice(f[22:38])
		p.dst, _ = netip.AddrFromSlice(f[38:54])
		p.proto, l4 = f[20], 54
	default:
		return p, false
	}
	if (p.proto == unix.IPPROTO_TCP || p.proto == unix.IPPROTO_UDP) && len(f) >= l4+4 {
		p.sport, p.dport = binary.BigEndian.Uint16(f[l4:]), binary.BigEndian.Uint16(f[l4+2:])
	}
	return p, true
}

// bgpCaptureWhile reads every frame on every interface of the network
// namespace at path, through an AF_PACKET socket made inside it, while do
// runs.
func bgpCaptureWhile(path string, do func()) ([][]byte, error) {
	fd := -1
	err := bgpInNS(path, func() error {
		var err error
		fd, err = unix.Socket(unix.AF_PACKET, unix.SOCK_RAW, int(bgpHtons(unix.ETH_P_ALL)))
		return err
	})
	if err != nil {
		if fd >= 0 {
			unix.Close(fd)
		}
		return nil, fmt.Errorf("opening a packet socket: %w", err)
	}
	defer unix.Close(fd)
	tv := unix.NsecToTimeval((100 * time.Millisecond).Nanoseconds())
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		return nil, err
	}
	var frames [][]byte
	var rerr error
	done := make(chan struct{})
	var stopped sync.WaitGroup
	stopped.Go(func() {
		buf := make([]byte, 1<<16)
		for {
			select {
			case <-done:
				return
			default:
			}
			n, _, err := unix.Recvfrom(fd, buf, 0)
			if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EINTR) {
				continue
			}
			if err != nil {
				rerr = fmt.Errorf("reading frames: %w", err)
				return
			}
			frames = append(frames, bytes.Clone(buf[:n]))
		}
	})
	do()
	time.Sleep(100 * time.Millisecond) // the last frames in flight
	close(done)
	stopped.Wait()
	return frames, rerr
}

func bgpHtons(v uint16) uint16 { return v<<8 | v>>8 }

// bgpFirstConnect tries a TCP connection from the namespace at path to addr
// every 20 ms (each try waits up to 500 ms, so a lost SYN does not hold
// up the next) and returns when one has connected and read "ok", or
// within has passed.
func bgpFirstConnect(path, addr string, within time.Duration) (time.Time, error) {
	ctx, cancel := context.WithTimeout(context.Background(), within)
	defer cancel()
	won := make(chan time.Time, 1)
	var wg sync.WaitGroup
	defer wg.Wait()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	try := func() {
		c, err := bgpDialIn(path, addr, 500*time.Millisecond)
		if err != nil {
			return
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(500 * time.Millisecond))
		buf := make([]byte, 2)
		if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "ok" {
			return
		}
		select {
		case won <- time.Now():
		default:
		}
	}
	wg.Go(try)
	for {
		select {
		case at := <-won:
			return at, nil
		case <-ctx.Done():
			return time.Time{}, fmt.Errorf("no connection to %s within %s", addr, within)
		case <-tick.C:
			wg.Go(try)
		}
	}
}

// TestBGPConvergence: a new workload is reachable from another host
// within a second of `workload add` returning, both the first one on a
// host (its block's route comes by BGP) and later ones (the block's route
// is there already); after `workload rm` it is unreachable.
func TestBGPConvergence(t *testing.T) {
	lab := NewLab(t, 3, 1)
	bgpCluster(t, lab, bgpHosts(3))

	client := bgpAddWorkload(t, lab, "host3", "bg-cc", "--profile", "a")
	// Wait until hosts 1 and 2 route the client's block: replies must
	// find their way back before anything is measured.
	for _, h := range []string{"host1", "host2"} {
		bgpWaitFor(t, 30*time.Second, 20*time.Millisecond, h+" routing "+client.Name+"'s block", func() (bool, string) {
			r4, err4 := bgpRouteTo(h, netip.MustParseAddr(client.v4()))
			r6, err6 := bgpRouteTo(h, netip.MustParseAddr(client.v6()))
			return r4 != nil && r6 != nil, fmt.Sprint(r4, r6, err4, err6)
		})
	}

	type sample struct {
		name, host string
		fresh      bool // the first workload on its host
		v4, v6     time.Duration
	}
	var samples []sample
	var added []Workload
	on := map[string]string{} // workload -> host
	const n = 10
	for i := range n {
		host, fresh := "host1", i == 0
		if i == 1 {
			host, fresh = "host2", true
		}
		name := fmt.Sprintf("bg-c%d", i+1)
		tAdd := time.Now()
		w := bgpAddWorkload(t, lab, host, name, "--profile", "a")
		addTook := time.Since(tAdd)
		// Whether host3 routes the new address through its host already
		// (by its block's route) as workload add returns.
		r, _ := bgpRouteTo("host3", netip.MustParseAddr(w.v4()))
		routed := r != nil && bgpRouteVia(*r, bgpHostAddrs(t, lab, host)[0])
		added = append(added, w)
		on[w.Name] = host
		t0 := time.Now()
		bgpServeIn(t, w.NetNS, 8080, bgpSayOK)
		s := sample{name: name, host: host, fresh: fresh}
		var wg sync.WaitGroup
		var err4, err6 error
		wg.Go(func() {
			var at time.Time
			at, err4 = bgpFirstConnect(client.NetNS, net.JoinHostPort(w.v4(), "8080"), 10*time.Second)
			s.v4 = at.Sub(t0)
		})
		wg.Go(func() {
			var at time.Time
			at, err6 = bgpFirstConnect(client.NetNS, net.JoinHostPort(w.v6(), "8080"), 10*time.Second)
			s.v6 = at.Sub(t0)
		})
		wg.Wait()
		if err := errors.Join(err4, err6); err != nil {
			t.Fatalf("%s on %s (%v) from %s: %v\n%s's routes:\n%s", name, host, w.Addresses, client.Name, err, "host3", bgpShowRoutes(lab, "host3"))
		}
		t.Logf("%s on %s (first on its host: %v): workload add took %s, host3 routed it when add returned: %v; reachable from host3 %s (IPv4) and %s (IPv6) after add returned, %s after it began",
			name, host, fresh, addTook.Round(time.Millisecond), routed, s.v4.Round(time.Millisecond), s.v6.Round(time.Millisecond), (addTook + max(s.v4, s.v6)).Round(time.Millisecond))
		samples = append(samples, s)
	}
	var all, fresh, later []time.Duration
	for _, s := range samples {
		d := max(s.v4, s.v6)
		all = append(all, d)
		if s.fresh {
			fresh = append(fresh, d)
		} else {
			later = append(later, d)
		}
	}
	med, worst := bgpMedianMax(all)
	t.Logf("convergence over %d workloads (slower family of each): median %s, max %s; first on a host %v; later ones median %s, max %s",
		len(all), med.Round(time.Millisecond), worst.Round(time.Millisecond), bgpRoundAll(fresh), bgpMedian(later).Round(time.Millisecond), slices.Max(later).Round(time.Millisecond))
	if med > time.Second {
		t.Errorf("median time to reachable %s > 1s", med)
	}

	// Removed workloads become unreachable.
	var gone []time.Duration
	for _, w := range added {
		lab.MustCalico(on[w.Name], "workload", "rm", w.Name)
		t0 := time.Now()
		for _, a := range []string{w.v4(), w.v6()} {
			bgpWaitFor(t, 10*time.Second, 20*time.Millisecond, w.Name+" at "+a+" to become unreachable", func() (bool, string) {
				c, err := bgpDialIn(client.NetNS, net.JoinHostPort(a, "8080"), 300*time.Millisecond)
				if err != nil {
					return true, ""
				}
				c.Close()
				return false, "connected"
			})
		}
		gone = append(gone, time.Since(t0))
	}
	med, worst = bgpMedianMax(gone)
	t.Logf("after workload rm, unreachable over IPv4 and IPv6 (each check includes a 300 ms connect timeout): median %s, max %s", med.Round(time.Millisecond), worst.Round(time.Millisecond))
}

func bgpMedianMax(ds []time.Duration) (time.Duration, time.Duration) {
	return bgpMedian(ds), slices.Max(ds)
}

func bgpMedian(ds []time.Duration) time.Duration {
	s := slices.Sorted(slices.Values(ds))
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func bgpRoundAll(ds []time.Duration) []time.Duration {
	out := make([]time.Duration, len(ds))
	for i, d := range ds {
		out[i] = d.Round(time.Millisecond)
	}
	return out
}

// TestBGPFailover: a host killed with SIGKILL loses its routes on the
// others within 3 s (gossip declares it dead); started again, its routes
// and its workload's connectivity come back.
func TestBGPFailover(t *testing.T) {
	lab := NewLab(t, 3, 1)
	bgpCluster(t, lab, bgpHosts(3))
	a1 := lab.AddWorkload("host1", "bg-a1", "--profile", "a")
	a3 := lab.AddWorkload("host3", "bg-a3", "--profile", "a")
	CheckMatrix(t, []Expect{{a1, a3.v4(), true}, {a1, a3.v6(), true}, {a3, a1.v4(), true}}, 30*time.Second)
	if t.Failed() {
		t.FailNow()
	}
	h3 := bgpHostAddrs(t, lab, "host3")
	others := []string{"host1", "host2"}
	for _, h := range others {
		bgpWaitFor(t, 30*time.Second, 50*time.Millisecond, h+" routing via host3", func() (bool, string) {
			rs, err := bgpRoutesVia(h, h3...)
			return len(rs) >= 2, fmt.Sprint(rs, err)
		})
	}

	// The clock starts at the SIGKILL itself: lab.sh kill returns only
	// once the process is gone, which can take a while.
	pid := bgpPid(t, lab, "host3")
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatalf("killing host3's node (pid %d): %v", pid, err)
	}
	killed := time.Now()
	// lab.sh kill then waits for the process and forgets its pid.
	var reaped sync.WaitGroup
	var killOut string
	var killErr error
	reaped.Go(func() { killOut, killErr = lab.script("kill", "host3") })
	took := map[string]time.Duration{}
	for len(took) < len(others) && time.Since(killed) < 15*time.Second {
		for _, h := range others {
			if _, done := took[h]; done {
				continue
			}
			if rs, err := bgpRoutesVia(h, h3...); err == nil && len(rs) == 0 {
				took[h] = time.Since(killed)
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	for _, h := range others {
		d, ok := took[h]
		switch {
		case !ok:
			t.Errorf("%s still routes via host3 %s after it was killed:\n%s", h, time.Since(killed).Round(time.Millisecond), bgpShowRoutes(lab, h))
		case d > 3*time.Second:
			t.Errorf("%s dropped its routes via host3 %s after it was killed; want within 3s", h, d.Round(time.Millisecond))
		default:
			t.Logf("%s dropped its routes via host3 %s after kill -9", h, d.Round(time.Millisecond))
		}
	}

	reaped.Wait()
	if killErr != nil {
		t.Fatalf("lab.sh kill host3: %v\n%s", killErr, killOut)
	}
	restarted := time.Now()
	lab.Start("host3")
	started := time.Since(restarted)
	bgpWaitFor(t, 60*time.Second, 20*time.Millisecond, "host1 routing via host3 again", func() (bool, string) {
		rs, err := bgpRoutesVia("host1", h3...)
		return len(rs) >= 2, fmt.Sprint(rs, err)
	})
	back := time.Since(restarted)
	CheckMatrix(t, []Expect{{a1, a3.v4(), true}, {a1, a3.v6(), true}, {a3, a1.v4(), true}}, 30*time.Second)
	t.Logf("host3 restarted: lab.sh start took %s, its routes were back on host1 %s and bg-a1 reached bg-a3 %s after it began",
		started.Round(time.Millisecond), back.Round(time.Millisecond), time.Since(restarted).Round(time.Millisecond))
}

// bgpPid is the pid of host's node, as lab.sh recorded it.
func bgpPid(t *testing.T, lab *Lab, host string) int {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(lab.dir, host+".pid"))
	if err != nil {
		t.Fatalf("reading %s's pid: %v", host, err)
	}
	var pid int
	if _, err := fmt.Sscan(string(b), &pid); err != nil || pid <= 0 {
		t.Fatalf("%s's pid file holds %q", host, b)
	}
	return pid
}
