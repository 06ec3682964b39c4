//go:build linux

package agent_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"calico/internal/testutil"
	"calico/nft"
	"calico/node/agent"
	"calico/node/agent/agenttest"
	"calico/node/route"
	"calico/node/veth"
	"calico/store"
	"calico/store/etcdv3"
	"calico/store/ipam"

	"github.com/vishvananda/netlink"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// TestPrivilegedAgentRestartKeepsFlow runs the agent with its real drivers
// in a test "host" namespace with two workloads, keeps a TCP flow going
// between them, and replaces the agent with a new one (no memory, same
// data dir) in the middle of it: the flow must not notice.
func TestPrivilegedAgentRestartKeepsFlow(t *testing.T) {
	testutil.Privileged(t)
	host := testutil.NewNetNS(t)
	cli := testutil.StartEtcd(t)
	s := etcdv3.New(cli)
	ds := agent.FromStore(s, ipam.New(cli))
	log := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelInfo}))
	ctx := t.Context()

	suffix := host.Name[len("calico-test-"):]
	wls := []struct{ ns, iface, ip string }{
		{"calico-test-a-" + suffix, "calitesta", "10.65.0.1"},
		{"calico-test-b-" + suffix, "calitestb", "10.65.0.2"},
	}
	s.Create(ctx, store.ClassicProfile("a"))
	var tbl *route.Table
	err := host.Do(func() error {
		if err := veth.EnableForwarding(); err != nil {
			return err
		}
		if err := uplink(); err != nil {
			return err
		}
		for _, w := range wls {
			if err := veth.CreateNetNS(w.ns); err != nil {
				return err
			}
			t.Cleanup(func() { veth.DeleteNetNS(w.ns) })
			if _, err := veth.Add(veth.Spec{NetNS: veth.NetNSPath(w.ns), HostIface: w.iface, Iface: "eth0", Addrs: []netip.Addr{netip.MustParseAddr(w.ip)}}); err != nil {
				return err
			}
		}
		var err error
		tbl, err = route.New(log)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	defer tbl.Close()
	var last store.Resource
	for _, w := range wls {
		r := agenttest.Workload(w.ns, w.iface, w.ip)
		if err := s.Create(ctx, r); err != nil {
			t.Fatal(err)
		}
		last = r
	}

	dir := t.TempDir()
	start := func() (*agent.Agent, func()) {
		a, err := agent.New(agent.Config{Name: "n1", DataDir: dir, Log: log}, nft.New(log, nft.WithNetNS(int(host.Handle()))), tbl)
		if err != nil {
			t.Fatal(err)
		}
		actx, cancel := context.WithCancel(ctx)
		var wg sync.WaitGroup
		wg.Go(func() { a.Run(actx) })
		a.Connect(ds)
		agenttest.WaitApplied(t, a, last)
		return a, func() { cancel(); wg.Wait() }
	}
	_, stop := start()

	// The flow: b echoes, a sends and reads back, counting round trips.
	a, b := testutil.OpenNetNS(t, wls[0].ns), testutil.OpenNetNS(t, wls[1].ns)
	var ln net.Listener
	if err := b.Do(func() (err error) { ln, err = net.Listen("tcp", "10.65.0.2:7000"); return err }); err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go io.Copy(c, c)
		}
	}()
	var conn net.Conn
	if err := a.Do(func() (err error) { conn, err = net.DialTimeout("tcp", "10.65.0.2:7000", 5*time.Second); return err }); err != nil {
		t.Fatalf("connecting a to b through the agent's dataplane: %v", err)
	}
	defer conn.Close()
	var trips atomic.Int64
	flowErr := make(chan error, 1)
	done := make(chan struct{})
	go func() {
		buf := make([]byte, 1024)
		for {
			select {
			case <-done:
				flowErr <- nil
				return
			default:
			}
			conn.SetDeadline(time.Now().Add(5 * time.Second))
			if _, err := conn.Write(buf); err != nil {
				flowErr <- err
				return
			}
			if _, err := io.ReadFull(conn, buf); err != nil {
				flowErr <- err
				return
			}
			trips.Add(1)
		}
	}()
	waitTrips := func(n int64) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for trips.Load() < n {
			if time.Now().After(deadline) {
				t.Fatalf("the flow stalled at %d round trips", trips.Load())
			}
			time.Sleep(time.Millisecond)
		}
	}
	waitTrips(100)
	stop()
	before := trips.Load()
	_, stop2 := start()
	defer stop2()
	waitTrips(before + 1000)
	close(done)
	if err := <-flowErr; err != nil {
		t.Fatalf("the flow broke across the agent's restart after %d round trips: %v", trips.Load(), err)
	}
	// And a new connection works with the new agent.
	if err := a.Do(func() error {
		c, err := net.DialTimeout("tcp", "10.65.0.2:7000", 5*time.Second)
		if err == nil {
			c.Close()
		}
		return err
	}); err != nil {
		t.Errorf("a new connection after the restart: %v", err)
	}
}

// uplink gives the calling thread's namespace an interface with a default
// route, without which the kernel answers no proxy ARP.
func uplink() error {
	h, err := netlink.NewHandle()
	if err != nil {
		return err
	}
	defer h.Close()
	if err := h.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "uplink"}, PeerName: "uplink-peer"}); err != nil {
		return err
	}
	l, err := h.LinkByName("uplink")
	if err != nil {
		return err
	}
	if err := h.AddrAdd(l, &netlink.Addr{IPNet: &net.IPNet{IP: net.ParseIP("10.99.0.1"), Mask: net.CIDRMask(24, 32)}}); err != nil {
		return err
	}
	peer, _ := h.LinkByName("uplink-peer")
	for _, x := range []netlink.Link{l, peer} {
		if err := h.LinkSetUp(x); err != nil {
			return err
		}
	}
	return errors.Join(h.RouteAdd(&netlink.Route{LinkIndex: l.Attrs().Index, Gw: net.ParseIP("10.99.0.254")}))
}

// A route of a workload's deleted by someone else comes back without a
// change in the datastore nor a resync: the route table's reader finds
// it and asks the loop for a pass. Without the reader (a table that only
// applies), nothing brings it back: the control that no other pass does.
func TestPrivilegedAgentRepairsDeletedRoute(t *testing.T) {
	testutil.Privileged(t)
	cli := testutil.StartEtcd(t)
	s := etcdv3.New(cli)
	s.Create(t.Context(), store.ClassicProfile("a"))
	w := agenttest.Workload("calico-test-a", "calitesta", "10.65.0.1")
	if err := s.Create(t.Context(), w); err != nil {
		t.Fatal(err)
	}
	t.Run("without the reader", func(t *testing.T) {
		if repairsDeletedRoute(t, s, cli, w, false, 2*time.Second) {
			t.Error("the route came back without the table's reader: another pass ran")
		}
	})
	t.Run("with the reader", func(t *testing.T) {
		if !repairsDeletedRoute(t, s, cli, w, true, 10*time.Second) {
			t.Error("the route deleted by hand did not come back within 10 s")
		}
	})
}

// applyOnly hides a route table's reader from the agent.
type applyOnly struct{ agent.Routes }

// repairsDeletedRoute runs an agent (its timer a resync of an hour away)
// over a fresh host namespace with w's interface, deletes w's route once
// the agent is idle, and says whether it came back within wait.
func repairsDeletedRoute(t *testing.T, s *etcdv3.Store, cli *clientv3.Client, w store.Resource, reader bool, wait time.Duration) bool {
	host := testutil.NewNetNS(t)
	log := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelInfo}))
	var tbl *route.Table
	err := host.Do(func() (err error) {
		if err := netlink.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "calitesta"}, PeerName: "calitesta-peer"}); err != nil {
			return err
		}
		for _, name := range []string{"calitesta", "calitesta-peer"} {
			l, err := netlink.LinkByName(name)
			if err == nil {
				err = netlink.LinkSetUp(l)
			}
			if err != nil {
				return err
			}
		}
		tbl, err = route.New(log)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	defer tbl.Close()
	tbl.ReadBack = 200 * time.Millisecond
	var routes agent.Routes = tbl
	if !reader {
		routes = applyOnly{tbl}
	}
	a, err := agent.New(agent.Config{Name: "n1", DataDir: t.TempDir(), Log: log, Resync: time.Hour}, nft.New(log, nft.WithNetNS(int(host.Handle()))), routes)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	var wg sync.WaitGroup
	wg.Go(func() { a.Run(ctx) })
	defer func() { cancel(); wg.Wait() }()
	a.Connect(agent.FromStore(s, ipam.New(cli)))
	agenttest.WaitApplied(t, a, w)
	// WaitApplied may leave a pass queued: let it run first.
	time.Sleep(300 * time.Millisecond)
	if err := a.Alive(ctx); err != nil {
		t.Fatal(err)
	}

	const workload = "10.65.0.1/32 dev calitesta\n"
	dump := func() string {
		d, err := tbl.Dump()
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	if d := dump(); d != workload {
		t.Fatalf("routes after the first pass:\n%s\nwant:\n%s", d, workload)
	}
	if err := host.Do(func() error {
		return netlink.RouteDel(&netlink.Route{Dst: &net.IPNet{IP: net.ParseIP("10.65.0.1"), Mask: net.CIDRMask(32, 32)}, Protocol: route.Protocol, Scope: netlink.SCOPE_NOWHERE})
	}); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(wait); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if dump() == workload {
			return true
		}
	}
	return false
}
