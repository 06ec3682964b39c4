package sim

import (
	"context"
	"log/slog"
	"net/netip"
	"sync"
	"testing"

	"calico/internal/testutil"
	"calico/store"
	"calico/store/etcdv3"
	"calico/store/ipam"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// TestGrowAdvertisesOnlyBlocks: a host grown with more workloads than
// one write holds never advertises a workload's address on its own (a
// /32, as for a borrowed address) while its blocks are being read, even
// when it reconciles all the time (in a lab every Node's change makes
// every host reconcile): such a /32 and its withdrawal went from the
// reflectors to every other host, O(N) updates per workload added.
func TestGrowAdvertisesOnlyBlocks(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	cli := testutil.StartEtcd(t)
	st := etcdv3.New(cli)
	pool := store.KindIPPool.New().(*store.IPPool)
	pool.Metadata.Name = "sim"
	pool.Spec = store.IPPoolSpec{CIDR: "10.64.0.0/16", BlockSize: 26}
	if err := st.Create(ctx, pool); err != nil {
		t.Fatal(err)
	}
	s, err := New(ctx, Config{
		Clients: []*clientv3.Client{cli}, Store: st, IPAM: ipam.New(cli),
		Subnet: netip.MustParsePrefix("127.0.1.0/24"), Log: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Stop()
	var wg sync.WaitGroup
	busy, stop := context.WithCancel(ctx)
	wg.Go(func() {
		for busy.Err() == nil {
			for _, h := range s.Hosts() {
				h.reconcile()
			}
		}
	})
	const perHost = 4*growBatch + 10
	err = s.Grow(ctx, 3, perHost, 3, func(host, i int) map[string]string { return map[string]string{"app": "a"} })
	stop()
	wg.Wait()
	if err != nil {
		t.Fatal(err)
	}
	if n := s.Stats().HostRoutes; n != 0 {
		t.Errorf("the hosts advertised %d single-address prefixes while growing, want 0", n)
	}
	for _, h := range s.Hosts() {
		h.reconcile()
		h.sp.mu.Lock()
		n := len(h.sp.prefixes)
		for p := range h.sp.prefixes {
			if p.Bits() != 26 {
				t.Errorf("%s advertises %s, not a block", h.Name, p)
			}
		}
		h.sp.mu.Unlock()
		if len(h.Workloads()) != perHost || n != 2 {
			t.Errorf("%s has %d workloads and advertises %d blocks, want %d and 2", h.Name, len(h.Workloads()), n, perHost)
		}
	}
}
