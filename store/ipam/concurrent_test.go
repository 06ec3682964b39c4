package ipam

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"testing"
	"time"

	"calico/internal/testutil"
)

// TestConcurrent has eight hosts allocate at once from one etcd, then
// release everything at once, and checks that no address went out twice
// and the blocks agree exactly with what was handed out.
func TestConcurrent(t *testing.T) {
	for _, tc := range []struct {
		name    string
		pool    Pool
		perHost int
		// full: the allocations fill the pool and some hosts must borrow.
		full bool
	}{
		{name: "ipv4", pool: Pool{CIDR: netip.MustParsePrefix("10.80.0.0/20"), BlockSize: 26}, perHost: 500},
		// Four blocks for eight hosts: at least four hosts own no block and
		// must borrow every address they get, and the pool ends up full.
		{name: "ipv4-borrowing", pool: Pool{CIDR: netip.MustParsePrefix("10.81.0.0/24"), BlockSize: 26}, perHost: 32, full: true},
		{name: "ipv6", pool: Pool{CIDR: netip.MustParsePrefix("fd00:80::/48"), BlockSize: 122}, perHost: 500},
	} {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Now()
			m := New(testutil.StartEtcd(t))
			const hosts = 8
			got := concurrently(t, hosts, func(host int, got map[netip.Addr]string) error {
				for i := range tc.perHost {
					h := fmt.Sprintf("h%d-%d", host, i)
					a, err := m.AutoAssign(t.Context(), h, hostName(host), []Pool{tc.pool}, map[string]string{"node": hostName(host)})
					if err != nil {
						return err
					}
					got[a] = h
				}
				return nil
			})
			if len(got) != hosts*tc.perHost {
				t.Fatalf("%d distinct addresses for %d allocations", len(got), hosts*tc.perHost)
			}
			allocated := time.Since(start)

			blocks, err := m.Blocks(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			inBlocks, borrowed := 0, 0
			for _, b := range blocks {
				for _, a := range b.Allocations {
					inBlocks++
					if got[a.Addr] != a.Handle {
						t.Errorf("block %s says %s is %q's; AutoAssign gave it to %q", b.CIDR, a.Addr, a.Handle, got[a.Addr])
					}
					if !tc.pool.CIDR.Contains(a.Addr) {
						t.Errorf("%s is outside the pool", a.Addr)
					}
					if a.Attrs["node"] != b.Host {
						borrowed++
					}
				}
			}
			if inBlocks != len(got) {
				t.Errorf("blocks hold %d allocations; %d were handed out", inBlocks, len(got))
			}
			handles, err := m.Handles(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			if len(handles) != len(got) {
				t.Errorf("%d handles for %d allocations", len(handles), len(got))
			}
			if tc.full {
				if borrowed == 0 {
					t.Errorf("no address was borrowed from another host's block")
				}
				if _, err := m.AutoAssign(t.Context(), "extra", hostName(0), []Pool{tc.pool}, nil); !errors.Is(err, ErrNoAddresses) {
					t.Errorf("AutoAssign on the full pool = %v; want ErrNoAddresses", err)
				}
			}

			// Release everything at once, half by handle and half by
			// address.
			byHandle := map[string]netip.Addr{}
			for a, h := range got {
				byHandle[h] = a
			}
			concurrently(t, hosts, func(host int, _ map[netip.Addr]string) error {
				for i := range tc.perHost {
					h := fmt.Sprintf("h%d-%d", host, i)
					a := byHandle[h]
					if i%2 == 0 {
						freed, err := m.ReleaseByHandle(t.Context(), h)
						if err != nil {
							return err
						}
						if len(freed) != 1 || freed[0] != a {
							return fmt.Errorf("ReleaseByHandle(%s) freed %v; want %s", h, freed, a)
						}
					} else if err := m.Release(t.Context(), a); err != nil {
						return err
					}
				}
				return nil
			})
			blocks, err = m.Blocks(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			for _, b := range blocks {
				if len(b.Allocations) != 0 {
					t.Errorf("block %s still holds %d addresses", b.CIDR, len(b.Allocations))
				}
			}
			if handles, _ := m.Handles(t.Context()); len(handles) != 0 {
				t.Errorf("%d handles left after releasing everything", len(handles))
			}
			t.Logf("%d hosts x %d: allocated in %v, %d blocks, %d borrowed; all released in %v",
				hosts, tc.perHost, allocated.Round(time.Millisecond), len(blocks), borrowed, (time.Since(start) - allocated).Round(time.Millisecond))
		})
	}
}

func hostName(i int) string { return fmt.Sprintf("host%d", i) }

// concurrently runs f for hosts 0..n-1 at once and merges the addresses
// they record, failing the test on an error or an address recorded twice.
func concurrently(t *testing.T, n int, f func(host int, got map[netip.Addr]string) error) map[netip.Addr]string {
	t.Helper()
	var wg sync.WaitGroup
	results := make([]map[netip.Addr]string, n)
	errs := make([]error, n)
	for host := range n {
		results[host] = map[netip.Addr]string{}
		wg.Go(func() { errs[host] = f(host, results[host]) })
	}
	wg.Wait()
	all := map[netip.Addr]string{}
	for host, r := range results {
		if errs[host] != nil {
			t.Fatalf("%s: %v", hostName(host), errs[host])
		}
		for a, h := range r {
			if prev, dup := all[a]; dup {
				t.Errorf("%s handed out twice: to %s and %s", a, prev, h)
			}
			all[a] = h
		}
	}
	return all
}

func BenchmarkAutoAssign(b *testing.B) {
	m := New(testutil.StartEtcd(b))
	pool := Pool{CIDR: netip.MustParsePrefix("10.0.0.0/8"), BlockSize: 26}
	ctx := context.Background()
	i := 0
	for b.Loop() {
		if _, err := m.AutoAssign(ctx, fmt.Sprintf("h%d", i), "host1", []Pool{pool}, map[string]string{"node": "host1"}); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

// TestConcurrentOneHost has eight workers on one host allocate at once: the
// host claims a new block only when all its blocks are full, so it ends up
// with exactly as many blocks as the addresses need.
func TestConcurrentOneHost(t *testing.T) {
	m := New(testutil.StartEtcd(t))
	pool := Pool{CIDR: netip.MustParsePrefix("10.82.0.0/16"), BlockSize: 26}
	const workers, perWorker = 8, 40
	got := concurrently(t, workers, func(w int, got map[netip.Addr]string) error {
		for i := range perWorker {
			h := fmt.Sprintf("w%d-%d", w, i)
			a, err := m.AutoAssign(t.Context(), h, "host1", []Pool{pool}, nil)
			if err != nil {
				return err
			}
			got[a] = h
		}
		return nil
	})
	if len(got) != workers*perWorker {
		t.Fatalf("%d distinct addresses for %d allocations", len(got), workers*perWorker)
	}
	blocks, err := m.HostBlocks(t.Context(), "host1")
	if err != nil {
		t.Fatal(err)
	}
	if want := (workers*perWorker + 63) / 64; len(blocks) != want {
		t.Errorf("host1 claimed %d blocks for %d addresses; want %d", len(blocks), len(got), want)
	}
}

func TestContext(t *testing.T) {
	m := New(testutil.StartEtcd(t))
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := m.AutoAssign(ctx, "h", "host1", []Pool{v4Pool}, nil); !errors.Is(err, context.Canceled) {
		t.Errorf("AutoAssign with a cancelled context = %v; want context.Canceled", err)
	}
	ctx, cancel = context.WithTimeout(t.Context(), time.Nanosecond)
	defer cancel()
	<-ctx.Done()
	if _, err := m.ReleaseByHandle(ctx, "h"); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("ReleaseByHandle past its deadline = %v; want context.DeadlineExceeded", err)
	}
}
