package ipam

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"calico/internal/testutil"

	clientv3 "go.etcd.io/etcd/client/v3"
)

var (
	v4Pool = Pool{CIDR: netip.MustParsePrefix("10.65.0.0/16"), BlockSize: 26}
	v6Pool = Pool{CIDR: netip.MustParsePrefix("fd00:65::/48"), BlockSize: 122}
)

func newIPAM(t testing.TB) (*IPAM, *clientv3.Client) {
	t.Helper()
	cli := testutil.StartEtcd(t)
	return New(cli), cli
}

func mustAuto(t testing.TB, m *IPAM, handle, host string, pools ...Pool) netip.Addr {
	t.Helper()
	a, err := m.AutoAssign(context.Background(), handle, host, pools, map[string]string{"node": host})
	if err != nil {
		t.Fatalf("AutoAssign(%s, %s): %v", handle, host, err)
	}
	return a
}

func mustHostBlocks(t testing.TB, m *IPAM, host string) []netip.Prefix {
	t.Helper()
	bs, err := m.HostBlocks(context.Background(), host)
	if err != nil {
		t.Fatalf("HostBlocks(%s): %v", host, err)
	}
	return bs
}

// rawJSON reads key and decodes its value into a generic map.
func rawJSON(t *testing.T, cli *clientv3.Client, key string) map[string]any {
	t.Helper()
	resp, err := cli.Get(t.Context(), key)
	if err != nil || len(resp.Kvs) != 1 {
		t.Fatalf("get %s = %v, %v; want one key", key, resp, err)
	}
	var v map[string]any
	if err := json.Unmarshal(resp.Kvs[0].Value, &v); err != nil {
		t.Fatalf("decoding %s: %v", key, err)
	}
	return v
}

func fieldNames(m map[string]any) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

func TestAutoAssign(t *testing.T) {
	m, _ := newIPAM(t)
	ctx := t.Context()
	for _, pool := range []Pool{v4Pool, v6Pool} {
		t.Run(family(pool.CIDR.Addr()), func(t *testing.T) {
			a := mustAuto(t, m, "a-"+family(pool.CIDR.Addr()), "host1", pool)
			blocks := mustHostBlocks(t, m, "host1")
			var blk netip.Prefix
			for _, b := range blocks {
				if b.Contains(a) {
					blk = b
				}
			}
			if !pool.CIDR.Contains(a) || blk.Bits() != pool.BlockSize {
				t.Fatalf("got %s in block %v; want an address of %s in a /%d of host1 (host1 has %v)", a, blk, pool.CIDR, pool.BlockSize, blocks)
			}
			if a != blk.Addr() {
				t.Errorf("first address of a new block is %s; want its first address %s", a, blk.Addr())
			}
			// The next address comes from the same block, in order.
			b := mustAuto(t, m, "b-"+family(pool.CIDR.Addr()), "host1", pool)
			if b != a.Next() {
				t.Errorf("second address = %s; want %s", b, a.Next())
			}
			got, err := m.Lookup(ctx, a)
			if err != nil {
				t.Fatal(err)
			}
			want := Allocation{Addr: a, Block: blk, Host: "host1", Handle: "a-" + family(pool.CIDR.Addr()), Attrs: map[string]string{"node": "host1"}}
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Errorf("Lookup(%s) = %+v; want %+v", a, got, want)
			}
		})
	}
}

func TestAffinity(t *testing.T) {
	m, _ := newIPAM(t)
	var h1, h2 []netip.Addr
	for i := range 5 {
		h1 = append(h1, mustAuto(t, m, fmt.Sprintf("h1-%d", i), "host1", v4Pool))
		h2 = append(h2, mustAuto(t, m, fmt.Sprintf("h2-%d", i), "host2", v4Pool))
	}
	b1, b2 := mustHostBlocks(t, m, "host1"), mustHostBlocks(t, m, "host2")
	if len(b1) != 1 || len(b2) != 1 || b1[0] == b2[0] {
		t.Fatalf("host1 has blocks %v, host2 %v; want one block each, different", b1, b2)
	}
	for i := range 5 {
		if !b1[0].Contains(h1[i]) || !b2[0].Contains(h2[i]) {
			t.Errorf("allocation %d: host1 got %s, host2 %s; want them in their own blocks %s and %s", i, h1[i], h2[i], b1[0], b2[0])
		}
	}
}

func TestBlockExhaustion(t *testing.T) {
	m, _ := newIPAM(t)
	pool := Pool{CIDR: netip.MustParsePrefix("10.66.0.0/24"), BlockSize: 26}
	seen := map[netip.Addr]bool{}
	for i := range 65 {
		a := mustAuto(t, m, fmt.Sprintf("h%d", i), "host1", pool)
		if seen[a] {
			t.Fatalf("%s handed out twice", a)
		}
		seen[a] = true
		// Claims counts the blocks claimed: the first address and the
		// 65th claimed one each (the agent reads the host's blocks
		// again when it changes).
		if want := map[bool]uint64{true: 1, false: 2}[i < 64]; m.Claims() != want {
			t.Fatalf("after %d allocations Claims() = %d; want %d", i+1, m.Claims(), want)
		}
	}
	blocks := mustHostBlocks(t, m, "host1")
	if len(blocks) != 2 {
		t.Fatalf("host1 has blocks %v after 65 allocations; want 2 /26s", blocks)
	}
	n := 0
	for a := range seen {
		if blocks[0].Contains(a) || blocks[1].Contains(a) {
			n++
		}
	}
	if n != 65 {
		t.Errorf("%d of 65 addresses are in host1's blocks", n)
	}
}

func TestBorrowing(t *testing.T) {
	m, _ := newIPAM(t)
	ctx := t.Context()
	// Four blocks of four addresses.
	pool := Pool{CIDR: netip.MustParsePrefix("10.67.0.0/28"), BlockSize: 30}
	for i := range 4 {
		mustAuto(t, m, fmt.Sprintf("own-%d", i), fmt.Sprintf("host%d", i), pool)
	}
	// The pool has no free block: host9 borrows, one address at a time.
	seen := map[netip.Addr]bool{}
	for i := range 12 {
		a := mustAuto(t, m, fmt.Sprintf("borrowed-%d", i), "host9", pool)
		got, err := m.Lookup(ctx, a)
		if err != nil {
			t.Fatal(err)
		}
		if seen[a] || got.Host == "host9" || !strings.HasPrefix(got.Host, "host") {
			t.Fatalf("host9 got %s from %s's block %s; want a new address from another host's block", a, got.Host, got.Block)
		}
		seen[a] = true
	}
	if bs := mustHostBlocks(t, m, "host9"); len(bs) != 0 {
		t.Errorf("host9 has blocks %v; want none (it only borrows)", bs)
	}
	_, err := m.AutoAssign(ctx, "one-too-many", "host9", []Pool{pool}, nil)
	if !errors.Is(err, ErrNoAddresses) || !strings.Contains(err.Error(), "10.67.0.0/28") {
		t.Errorf("AutoAssign on a full pool = %v; want ErrNoAddresses naming the pool", err)
	}
	// A second pool with room is used once the first is full.
	second := Pool{CIDR: netip.MustParsePrefix("10.68.0.0/24"), BlockSize: 26}
	if a := mustAuto(t, m, "overflow", "host9", pool, second); !second.CIDR.Contains(a) {
		t.Errorf("with the first pool full, got %s; want an address of %s", a, second.CIDR)
	}
}

func TestAssign(t *testing.T) {
	m, _ := newIPAM(t)
	ctx := t.Context()
	addr := netip.MustParseAddr("10.65.3.7")
	if err := m.Assign(ctx, addr, "fixed", "host1", v4Pool, map[string]string{"pod": "p1"}); err != nil {
		t.Fatal(err)
	}
	blk := netip.MustParsePrefix("10.65.3.0/26")
	if bs := mustHostBlocks(t, m, "host1"); !slices.Equal(bs, []netip.Prefix{blk}) {
		t.Errorf("host1 has blocks %v; want the block around the address, %s", bs, blk)
	}
	got, err := m.Lookup(ctx, addr)
	if err != nil || got.Handle != "fixed" || got.Attrs["pod"] != "p1" || got.Block != blk {
		t.Errorf("Lookup(%s) = %+v, %v", addr, got, err)
	}

	err = m.Assign(ctx, addr, "other", "host2", v4Pool, nil)
	if !errors.Is(err, ErrInUse) || !strings.Contains(err.Error(), "10.65.3.7") || !strings.Contains(err.Error(), "fixed") {
		t.Errorf("Assign of a taken address = %v; want ErrInUse naming the address and its holder", err)
	}
	err = m.Assign(ctx, netip.MustParseAddr("10.99.0.1"), "other", "host1", v4Pool, nil)
	if err == nil || errors.Is(err, ErrInUse) || !strings.Contains(err.Error(), "not in pool") {
		t.Errorf("Assign outside the pool = %v; want a not-in-pool error", err)
	}
	// Another host may take a specific address in host1's block; the block
	// stays host1's.
	if err := m.Assign(ctx, addr.Next(), "other", "host2", v4Pool, nil); err != nil {
		t.Fatal(err)
	}
	if got, _ := m.Lookup(ctx, addr.Next()); got.Host != "host1" {
		t.Errorf("address assigned by host2 in host1's block says host %q; want host1", got.Host)
	}
	// AutoAssign on host1 uses the block and steps over the taken addresses.
	for i := range 62 {
		a := mustAuto(t, m, fmt.Sprintf("auto-%d", i), "host1", v4Pool)
		if !blk.Contains(a) || a == addr || a == addr.Next() {
			t.Fatalf("AutoAssign %d got %s; want a free address of %s", i, a, blk)
		}
	}
	// IPv6 too.
	a6 := netip.MustParseAddr("fd00:65::1:2")
	if err := m.Assign(ctx, a6, "fixed6", "host1", v6Pool, nil); err != nil {
		t.Fatal(err)
	}
	if err := m.Assign(ctx, a6, "again", "host1", v6Pool, nil); !errors.Is(err, ErrInUse) {
		t.Errorf("Assign of a taken IPv6 address = %v; want ErrInUse", err)
	}
}

func TestRelease(t *testing.T) {
	m, cli := newIPAM(t)
	ctx := t.Context()
	var mine []netip.Addr
	for range 3 {
		mine = append(mine, mustAuto(t, m, "multi", "host1", v4Pool))
	}
	other := mustAuto(t, m, "other", "host1", v4Pool)
	blk := mustHostBlocks(t, m, "host1")[0]

	if err := m.Release(ctx, mine[0]); err != nil {
		t.Fatal(err)
	}
	if err := m.Release(ctx, mine[0]); !errors.Is(err, ErrNotAllocated) || !strings.Contains(err.Error(), mine[0].String()) {
		t.Errorf("second Release = %v; want ErrNotAllocated naming the address", err)
	}
	if _, err := m.Lookup(ctx, mine[0]); !errors.Is(err, ErrNotAllocated) {
		t.Errorf("Lookup of a released address = %v; want ErrNotAllocated", err)
	}
	hs, err := m.Handles(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(hs) != fmt.Sprintf("[{multi map[%s:2]} {other map[%s:1]}]", blk, blk) {
		t.Errorf("Handles() = %v; want multi holding 2 and other 1 in %s", hs, blk)
	}

	freed, err := m.ReleaseByHandle(ctx, "multi")
	if err != nil || !slices.Equal(freed, mine[1:]) {
		t.Errorf("ReleaseByHandle(multi) = %v, %v; want %v", freed, err, mine[1:])
	}
	for _, h := range []string{"multi", "never-existed"} {
		if freed, err := m.ReleaseByHandle(ctx, h); err != nil || len(freed) != 0 {
			t.Errorf("ReleaseByHandle(%s) of an unknown handle = %v, %v; want nothing, no error", h, freed, err)
		}
	}
	if resp, _ := cli.Get(ctx, handleKey("multi")); len(resp.Kvs) != 0 {
		t.Errorf("handle key of multi is still there")
	}
	// Released addresses go to the back of the free list, in the order
	// they were released: the next allocation is a fresh one.
	raw := rawJSON(t, cli, blockKey(blk))
	un := raw["unallocated"].([]any)
	tail := fmt.Sprint(un[len(un)-3:])
	want := fmt.Sprint([]int{blkOrd(blk, mine[0]), blkOrd(blk, mine[1]), blkOrd(blk, mine[2])})
	if tail != want {
		t.Errorf("free list ends %s; want the released ordinals %s", tail, want)
	}
	if a := mustAuto(t, m, "next", "host1", v4Pool); slices.Contains(mine, a) || a != other.Next() {
		t.Errorf("next allocation = %s; want the never-used %s", a, other.Next())
	}
	// Attributes nothing points at are dropped and the rest renumbered.
	raw = rawJSON(t, cli, blockKey(blk))
	if attrs := raw["attributes"].([]any); len(attrs) != 2 {
		t.Errorf("block attributes = %v; want two (other, next)", attrs)
	}
}

func blkOrd(b netip.Prefix, a netip.Addr) int { return offset(b.Addr(), a) }

func TestJSONShapes(t *testing.T) {
	m, cli := newIPAM(t)
	ctx := t.Context()
	if err := m.Assign(ctx, netip.MustParseAddr("10.65.0.1"), "k8s-pod-network.abc", "node-1", v4Pool, map[string]string{"pod": "p"}); err != nil {
		t.Fatal(err)
	}
	blk := rawJSON(t, cli, "/calico/ipam/v2/assignment/ipv4/block/10.65.0.0-26")
	want := []string{"affinity", "affinity_claim_time", "allocations", "attributes", "cidr", "deleted", "sequenceNumber", "sequenceNumberForAllocation", "unallocated"}
	if got := fieldNames(blk); !slices.Equal(got, want) {
		t.Errorf("block fields = %v; want %v", got, want)
	}
	if blk["cidr"] != "10.65.0.0/26" || blk["affinity"] != "host:node-1" || blk["deleted"] != false {
		t.Errorf("block = %v", blk)
	}
	allocs := blk["allocations"].([]any)
	if len(allocs) != 64 || allocs[0] != nil || allocs[1] != 0.0 {
		t.Errorf("allocations = %v; want 64 entries, only [1] set (to attribute 0)", allocs)
	}
	if un := blk["unallocated"].([]any); len(un) != 63 || un[0] != 0.0 || un[1] != 2.0 {
		t.Errorf("unallocated = %v; want 0, 2, 3, ...", un)
	}
	attr := blk["attributes"].([]any)[0].(map[string]any)
	if fmt.Sprint(attr) != "map[handle_id:k8s-pod-network.abc secondary:map[pod:p]]" {
		t.Errorf("attribute = %v", attr)
	}
	if seq := blk["sequenceNumberForAllocation"].(map[string]any); seq["1"] != blk["sequenceNumber"] {
		t.Errorf("sequenceNumberForAllocation = %v; want ordinal 1 at the block's sequence number %v", seq, blk["sequenceNumber"])
	}

	for key, want := range map[string]string{
		"/calico/ipam/v2/host/node-1/ipv4/block/10.65.0.0-26": `{"state":"confirmed","deleted":false}`,
		"/calico/ipam/v2/handle/k8s-pod-network.abc":          `{"block":{"10.65.0.0/26":1},"deleted":false}`,
	} {
		resp, err := cli.Get(ctx, key)
		if err != nil || len(resp.Kvs) != 1 || string(resp.Kvs[0].Value) != want {
			t.Errorf("%s = %v, %v; want %s", key, resp.Kvs, err, want)
		}
	}

	if err := m.Assign(ctx, netip.MustParseAddr("fd00:65::5"), "h6", "node-1", v6Pool, nil); err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{
		"/calico/ipam/v2/assignment/ipv6/block/fd00:65::-122",
		"/calico/ipam/v2/host/node-1/ipv6/block/fd00:65::-122",
		"/calico/ipam/v2/handle/h6",
	} {
		rawJSON(t, cli, key)
	}
}

func TestReleaseHost(t *testing.T) {
	m, cli := newIPAM(t)
	ctx := t.Context()
	pool := Pool{CIDR: netip.MustParsePrefix("10.70.0.0/24"), BlockSize: 26}
	var addrs []netip.Addr
	for i := range 65 {
		addrs = append(addrs, mustAuto(t, m, fmt.Sprintf("h%d", i), "host1", pool))
	}
	mustAuto(t, m, "v6", "host1", v6Pool)
	mustAuto(t, m, "elsewhere", "host2", pool)
	blocks := mustHostBlocks(t, m, "host1")
	if len(blocks) != 3 {
		t.Fatalf("host1 has blocks %v; want two IPv4 and one IPv6", blocks)
	}
	// Empty the second IPv4 block and the IPv6 one.
	full, emptied := blocks[0], blocks[1]
	if !full.Contains(addrs[0]) {
		full, emptied = emptied, full
	}
	if _, err := m.ReleaseByHandle(ctx, "h64"); err != nil {
		t.Fatal(err)
	}
	if _, err := m.ReleaseByHandle(ctx, "v6"); err != nil {
		t.Fatal(err)
	}
	// An empty block stays with its host until the host goes.
	if bs := mustHostBlocks(t, m, "host1"); len(bs) != 3 {
		t.Errorf("after emptying, host1 has blocks %v; want all three still", bs)
	}

	for range 2 {
		if err := m.ReleaseHost(ctx, "host1"); err != nil {
			t.Fatal(err)
		}
	}
	if bs := mustHostBlocks(t, m, "host1"); len(bs) != 0 {
		t.Errorf("after ReleaseHost, host1 has blocks %v", bs)
	}
	if resp, _ := cli.Get(ctx, hostAffinities("host1"), clientv3.WithPrefix()); len(resp.Kvs) != 0 {
		t.Errorf("affinity keys left: %v", resp.Kvs)
	}
	all, err := m.Blocks(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var summary []string
	for _, b := range all {
		summary = append(summary, fmt.Sprintf("%s host=%q n=%d", b.CIDR, b.Host, len(b.Allocations)))
	}
	host2 := mustHostBlocks(t, m, "host2")[0]
	want := []string{
		fmt.Sprintf("%s host=%q n=64", full, ""),
		fmt.Sprintf("%s host=%q n=1", host2, "host2"),
	}
	slices.Sort(summary)
	slices.Sort(want)
	if !slices.Equal(summary, want) {
		t.Errorf("blocks = %v; want %v (%s and the IPv6 block deleted)", summary, want, emptied)
	}
	// The orphaned block's addresses still resolve and release; the last
	// release deletes it.
	if got, err := m.Lookup(ctx, addrs[0]); err != nil || got.Handle != "h0" || got.Host != "" {
		t.Errorf("Lookup(%s) = %+v, %v", addrs[0], got, err)
	}
	for i := range 64 {
		if err := m.Release(ctx, addrs[i]); err != nil {
			t.Fatal(err)
		}
	}
	if resp, _ := cli.Get(ctx, blockKey(full)); len(resp.Kvs) != 0 {
		t.Errorf("orphaned block %s is still there once empty", full)
	}
	if hs, _ := m.Handles(ctx); len(hs) != 1 || hs[0].ID != "elsewhere" {
		t.Errorf("handles = %v; want only elsewhere", hs)
	}
}

func TestInUse(t *testing.T) {
	m, cli := newIPAM(t)
	ctx := t.Context()
	for i := range 10 {
		mustAuto(t, m, fmt.Sprintf("a%d", i), "host1", v4Pool)
		mustAuto(t, m, fmt.Sprintf("b%d", i), "host2", v6Pool)
	}
	blk := mustHostBlocks(t, m, "host1")[0]
	for _, tc := range []struct {
		prefix string
		want   int
	}{
		{v4Pool.CIDR.String(), 10},
		{v6Pool.CIDR.String(), 10},
		{blk.String(), 10},
		{netip.PrefixFrom(blk.Addr(), 30).String(), 4},
		{"10.0.0.0/8", 10},
		{"192.168.0.0/16", 0},
		{"fd00:66::/48", 0},
	} {
		n, err := m.InUse(ctx, netip.MustParsePrefix(tc.prefix))
		if err != nil || n != tc.want {
			t.Errorf("InUse(%s) = %d, %v; want %d", tc.prefix, n, err, tc.want)
		}
	}
	// A block whose allocation points past its attributes is an error,
	// not a count.
	if _, err := cli.Put(ctx, blockKey(blk), `{"cidr":"`+blk.String()+`","allocations":[5`+strings.Repeat(",null", 63)+`],"attributes":[{}]}`); err != nil {
		t.Fatal(err)
	}
	if n, err := m.InUse(ctx, v4Pool.CIDR); err == nil || !strings.Contains(err.Error(), "points at attribute 5 of 1") {
		t.Errorf("InUse over a corrupt block = %d, %v; want the block's error", n, err)
	}
}

func TestInvalid(t *testing.T) {
	m, _ := newIPAM(t)
	ctx := t.Context()
	for name, pools := range map[string][]Pool{
		"none":          nil,
		"mixed":         {v4Pool, v6Pool},
		"small block":   {{CIDR: v4Pool.CIDR, BlockSize: 19}},
		"block > pool":  {{CIDR: netip.MustParsePrefix("10.0.0.0/28"), BlockSize: 26}},
		"v6 block size": {{CIDR: v6Pool.CIDR, BlockSize: 64}},
		"not masked":    {{CIDR: netip.MustParsePrefix("10.0.0.1/24"), BlockSize: 26}},
	} {
		if _, err := m.AutoAssign(ctx, "h", "host1", pools, nil); err == nil {
			t.Errorf("%s: AutoAssign succeeded", name)
		}
	}
	for _, n := range []string{"", "a/b"} {
		if _, err := m.AutoAssign(ctx, n, "host1", []Pool{v4Pool}, nil); err == nil {
			t.Errorf("AutoAssign with handle %q succeeded", n)
		}
		if _, err := m.AutoAssign(ctx, "h", n, []Pool{v4Pool}, nil); err == nil {
			t.Errorf("AutoAssign with host %q succeeded", n)
		}
	}
}

func TestFreeBlock(t *testing.T) {
	// A /48 of /122s has 2^74 blocks: the walk must not care.
	p := v6Pool
	w := newBlockWalk(p, "host1")
	first := w.block()
	if !p.CIDR.Contains(first.Addr()) || first.Bits() != 122 || first != first.Masked() {
		t.Fatalf("first block %s is not a /122 of %s", first, p.CIDR)
	}
	got, ok := freeBlock(p, "host1", nil)
	if !ok || got != first {
		t.Errorf("freeBlock with nothing taken = %s, %v; want %s", got, ok, first)
	}
	w.next()
	second := w.block()
	got, ok = freeBlock(p, "host1", []netip.Prefix{first})
	if !ok || got != second {
		t.Errorf("freeBlock with the first taken = %s, %v; want %s", got, ok, second)
	}
	if other, _ := freeBlock(p, "host2", nil); other == first {
		t.Errorf("host1 and host2 start at the same block %s", first)
	}
	// The walk wraps at the end of the pool.
	last := Pool{CIDR: netip.MustParsePrefix("10.0.0.0/24"), BlockSize: 26}
	w = newBlockWalk(last, "h")
	seen := map[netip.Prefix]bool{}
	for range 4 {
		seen[w.block()] = true
		w.next()
	}
	if len(seen) != 4 {
		t.Errorf("walk over 4 blocks visited %v", seen)
	}
	// A full pool has no free block; blocks of another size count too.
	all := []netip.Prefix{
		netip.MustParsePrefix("10.0.0.0/26"), netip.MustParsePrefix("10.0.0.64/26"),
		netip.MustParsePrefix("10.0.0.128/25"),
	}
	if got, ok := freeBlock(last, "h", all); ok {
		t.Errorf("freeBlock of a full pool = %s", got)
	}
	if got, ok := freeBlock(last, "h", all[:2]); !ok || got.Addr().As4()[3] < 128 {
		t.Errorf("freeBlock with the low half taken = %s, %v", got, ok)
	}
	small := []netip.Prefix{all[0], all[1], netip.MustParsePrefix("10.0.0.128/27"), netip.MustParsePrefix("10.0.0.224/28")}
	if got, ok := freeBlock(last, "h", small); ok {
		t.Errorf("freeBlock with smaller blocks in the free /26s = %s; want none", got)
	}
}

func TestKeys(t *testing.T) {
	for _, s := range []string{"10.65.0.0/26", "fd00:65::/122", "fd00:65::40/122"} {
		c := netip.MustParsePrefix(s)
		if got, ok := parseBlockKey(blockKey(c)); !ok || got != c {
			t.Errorf("parseBlockKey(%s) = %s, %v", blockKey(c), got, ok)
		}
		if h, got, ok := parseAffinityKey(affinityKey("n1", c)); !ok || got != c || h != "n1" {
			t.Errorf("parseAffinityKey(%s) = %s, %s, %v", affinityKey("n1", c), h, got, ok)
		}
	}
	for _, k := range []string{
		"/calico/ipam/v2/assignment/ipv4/block/10.65.0.1-26",
		"/calico/ipam/v2/assignment/ipv6/block/10.65.0.0-26",
		"/calico/ipam/v2/assignment/ipv4/block/junk",
	} {
		if _, ok := parseBlockKey(k); ok {
			t.Errorf("parseBlockKey(%s) accepted it", k)
		}
	}
}

func TestRetryGivesUp(t *testing.T) {
	m := &IPAM{attempts: 3}
	n := 0
	err := m.retry(t.Context(), func() error { n++; return errConflict })
	if n != 3 || !errors.Is(err, errConflict) || !strings.Contains(err.Error(), "3 attempts") {
		t.Errorf("retry of a change that always conflicts ran %d times and returned %v; want 3 runs and a conflict error", n, err)
	}
	n = 0
	err = m.retry(t.Context(), func() error {
		if n++; n < 2 {
			return fmt.Errorf("writing: %w", errConflict)
		}
		return nil
	})
	if n != 2 || err != nil {
		t.Errorf("retry of a change that conflicts once ran %d times and returned %v; want 2 runs, no error", n, err)
	}
}
