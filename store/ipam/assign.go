package ipam

import (
	"cmp"
	"context"
	"fmt"
	"net/netip"
	"slices"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"

	"calico/store"
)

// AutoAssign gives handle one address on host from the first of pools (all
// of one family) that has room, and records attrs with it. It looks, in
// order:
//
//  1. in host's affine blocks, pool by pool;
//  2. for a block no one has claimed yet, which it claims for host (the
//     affinity and the block, holding the new address, in one
//     transaction). It walks each pool's blocks from an offset seeded by
//     the host name, against the list of existing block keys, so it never
//     enumerates a pool and hosts claiming at once rarely collide;
//  3. only when no pool has a free block, for a free address in any other
//     block of the pools (borrowing it from that block's host).
//
// Calico's IPAM settings (store.IPAMConfigKey) hold as in Calico:
// auto_allocate_blocks false claims no block (step 2), maxBlocksPerHost
// claims none past that many for the host, and strict_affinity never
// borrows (step 3). It fails with ErrNoAddresses if all are full.
func (m *IPAM) AutoAssign(ctx context.Context, handle, host string, pools []Pool, attrs map[string]string) (netip.Addr, error) {
	if err := checkAssign(handle, host, pools); err != nil {
		return netip.Addr{}, fmt.Errorf("assigning an address to %s: %w", handle, err)
	}
	var got netip.Addr
	err := m.retry(ctx, func() error {
		var err error
		got, err = m.autoAssign(ctx, handle, host, pools, attrs)
		return err
	})
	if err != nil {
		return netip.Addr{}, fmt.Errorf("assigning an address to %s on %s: %w", handle, host, err)
	}
	return got, nil
}

func checkAssign(handle, host string, pools []Pool) error {
	if err := checkName("handle", handle); err != nil {
		return err
	}
	if err := checkName("host", host); err != nil {
		return err
	}
	if len(pools) == 0 {
		return fmt.Errorf("no pools to assign from")
	}
	for _, p := range pools {
		if err := p.check(); err != nil {
			return err
		}
		if p.CIDR.Addr().Is4() != pools[0].CIDR.Addr().Is4() {
			return fmt.Errorf("pools %s mix IPv4 and IPv6", poolList(pools))
		}
	}
	return nil
}

// autoAssign is one attempt of AutoAssign: an address from one of the
// host's own blocks, else from a new block for the host, else borrowed
// from another host's block.
func (m *IPAM) autoAssign(ctx context.Context, id, host string, pools []Pool, attrs map[string]string) (netip.Addr, error) {
	at := &attempt{m: m, host: host, pools: pools, attrs: attrs, fam: pools[0].CIDR.Addr()}
	if err := at.read(ctx, id); err != nil {
		return netip.Addr{}, err
	}
	steps := []func(context.Context) (netip.Addr, bool, error){at.fromOwn}
	if at.cfg.AutoAllocateBlocks && (at.cfg.MaxBlocksPerHost <= 0 || at.blocks < at.cfg.MaxBlocksPerHost) {
		steps = append(steps, at.fromNew)
	} else {
		steps = append(steps, at.listBlocks)
	}
	if !at.cfg.StrictAffinity {
		steps = append(steps, at.borrow)
	}
	for _, step := range steps {
		if a, ok, err := step(ctx); err != nil || ok {
			return a, err
		}
	}
	return netip.Addr{}, fmt.Errorf("%w in %s%s", ErrNoAddresses, poolList(pools), at.cfg.limits(at.blocks))
}

// attempt is one attempt of AutoAssign, with what it read.
type attempt struct {
	m     *IPAM
	host  string
	pools []Pool
	attrs map[string]string
	fam   netip.Addr

	cfg Config
	// blocks counts the host's confirmed blocks of the family, in any
	// pool.
	blocks int
	h      *handle
	// mine are the host's confirmed blocks in pool order, newest first;
	// own the ones read so far; rev the revision the affinities were read
	// at; existing every block of the family, once read.
	mine     []affine
	own      map[netip.Prefix]*block
	rev      int64
	existing []netip.Prefix
}

type affine struct {
	cidr    netip.Prefix
	pool    int
	claimed int64
}

// read reads the host's affinities and the handle at one revision.
func (at *attempt) read(ctx context.Context, id string) error {
	resp, err := at.m.txn(ctx, nil, []clientv3.Op{
		clientv3.OpGet(hostFamilyAffinities(at.host, at.fam), clientv3.WithPrefix()),
		clientv3.OpGet(handleKey(id)),
		clientv3.OpGet(store.IPAMConfigKey),
	})
	if err != nil {
		return fmt.Errorf("reading affinities of %s: %w", at.host, err)
	}
	if at.cfg, err = decodeConfig(resp.Responses[2].GetResponseRange().Kvs); err != nil {
		return err
	}
	var hkv *mvccpb.KeyValue
	if kvs := resp.Responses[1].GetResponseRange().Kvs; len(kvs) > 0 {
		hkv = kvs[0]
	}
	if at.h, err = decodeHandle(id, hkv); err != nil {
		return err
	}
	at.rev = resp.Header.Revision
	for _, kv := range resp.Responses[0].GetResponseRange().Kvs {
		_, cidr, ok := parseAffinityKey(string(kv.Key))
		if !ok || !confirmedAffinity(kv.Value) {
			continue
		}
		at.blocks++
		if i := poolIndex(at.pools, cidr); i >= 0 {
			at.mine = append(at.mine, affine{cidr: cidr, pool: i, claimed: kv.CreateRevision})
		}
	}
	slices.SortFunc(at.mine, func(a, b affine) int {
		return cmp.Or(cmp.Compare(a.pool, b.pool), cmp.Compare(b.claimed, a.claimed), comparePrefix(a.cidr, b.cidr))
	})
	return nil
}

// fromOwn allocates in the host's own blocks: older blocks are usually
// full, so the newest is read alone, then the rest.
func (at *attempt) fromOwn(ctx context.Context) (netip.Addr, bool, error) {
	at.own = map[netip.Prefix]*block{}
	for i, n := 0, 1; i < len(at.mine); i, n = i+n, maxOps {
		chunk := make([]netip.Prefix, 0, n)
		for _, a := range at.mine[i:min(i+n, len(at.mine))] {
			chunk = append(chunk, a.cidr)
		}
		bs, err := at.m.blocks(ctx, chunk)
		if err != nil {
			return netip.Addr{}, false, err
		}
		for _, cidr := range chunk {
			b := bs[cidr]
			if b == nil {
				continue
			}
			at.own[cidr] = b
			if ord := b.free(); ord >= 0 && b.host() == at.host {
				a, err := at.m.allocate(ctx, &change{}, b, ord, at.h, at.attrs)
				return a, true, err
			}
		}
	}
	return netip.Addr{}, false, nil
}

// fromNew claims a new block. The guards make sure the host has claimed
// nothing meanwhile and its blocks are still full; otherwise the attempt
// fails with a conflict and AutoAssign starts over.
func (at *attempt) fromNew(ctx context.Context) (netip.Addr, bool, error) {
	var err error
	if at.existing, err = at.m.blockCIDRs(ctx, at.fam); err != nil {
		return netip.Addr{}, false, err
	}
	for _, p := range at.pools {
		cidr, ok := freeBlock(p, at.host, at.existing)
		if !ok {
			continue
		}
		c := &change{cmps: []clientv3.Cmp{
			clientv3.Compare(clientv3.ModRevision(hostFamilyAffinities(at.host, at.fam)), "<", at.rev+1).WithPrefix(),
		}}
		for _, b := range at.own {
			c.guard(blockKey(b.cidr), b.rev)
		}
		c.claim(at.host, cidr)
		a, err := at.m.allocate(ctx, c, newBlock(cidr, at.host), 0, at.h, at.attrs)
		return a, true, err
	}
	return netip.Addr{}, false, nil
}

// listBlocks reads the family's blocks for borrow when fromNew did not.
func (at *attempt) listBlocks(ctx context.Context) (netip.Addr, bool, error) {
	var err error
	at.existing, err = at.m.blockCIDRs(ctx, at.fam)
	return netip.Addr{}, false, err
}

// borrow allocates in another host's block, starting where the host's own
// walk of the pool would.
func (at *attempt) borrow(ctx context.Context) (netip.Addr, bool, error) {
	for _, p := range at.pools {
		var others []netip.Prefix
		for _, e := range at.existing {
			if poolIndex([]Pool{p}, e) == 0 && at.own[e] == nil {
				others = append(others, e)
			}
		}
		slices.SortFunc(others, comparePrefix)
		start := newBlockWalk(p, at.host).block()
		i, _ := slices.BinarySearchFunc(others, start, comparePrefix)
		others = slices.Concat(others[i:], others[:i])
		for chunk := range slices.Chunk(others, 16) {
			bs, err := at.m.blocks(ctx, chunk)
			if err != nil {
				return netip.Addr{}, false, err
			}
			for _, cidr := range chunk {
				if b := bs[cidr]; b != nil {
					if ord := b.free(); ord >= 0 {
						a, err := at.m.allocate(ctx, &change{}, b, ord, at.h, at.attrs)
						return a, true, err
					}
				}
			}
		}
	}
	return netip.Addr{}, false, nil
}

// freeBlock finds a block of pool p that does not exist yet, walking the
// pool in host's order and stopping once it has seen more blocks than
// exist: it reads no more than that however large the pool.
func freeBlock(p Pool, host string, existing []netip.Prefix) (netip.Prefix, bool) {
	const maxSteps = 1 << 40
	taken := make(map[netip.Prefix]bool)
	var odd []netip.Prefix // blocks of another size, from an older pool
	steps := 1
	for _, e := range existing {
		switch {
		case e.Bits() == p.BlockSize && p.CIDR.Contains(e.Addr()):
			taken[e] = true
			steps++
		case e.Overlaps(p.CIDR):
			odd = append(odd, e)
			steps = min(steps+blocksIn(e, p.BlockSize, maxSteps), maxSteps)
		}
	}
	w := newBlockWalk(p, host)
	for range blocksIn(p.CIDR, p.BlockSize, steps) {
		c := w.block()
		if !taken[c] && !slices.ContainsFunc(odd, c.Overlaps) {
			return c, true
		}
		w.next()
	}
	return netip.Prefix{}, false
}

// allocate gives ordinal ord of b to h and commits that with whatever c
// already holds.
func (m *IPAM) allocate(ctx context.Context, c *change, b *block, ord int, h *handle, attrs map[string]string) (netip.Addr, error) {
	b.allocate(ord, h.id, attrs)
	h.v.Block[b.cidr.String()]++
	c.saveBlock(b)
	c.saveHandle(h)
	if err := m.commit(ctx, c); err != nil {
		return netip.Addr{}, fmt.Errorf("writing block %s: %w", b.cidr, err)
	}
	return b.addr(ord), nil
}

// Assign gives the address addr of pool to handle, and records attrs with
// it. If no block holds addr yet it claims the pool's block around addr for
// host. It fails with ErrInUse if addr is taken.
func (m *IPAM) Assign(ctx context.Context, addr netip.Addr, handle, host string, pool Pool, attrs map[string]string) error {
	addr = addr.Unmap()
	if err := checkAssign(handle, host, []Pool{pool}); err != nil {
		return fmt.Errorf("assigning %s: %w", addr, err)
	}
	if !pool.CIDR.Contains(addr) {
		return fmt.Errorf("assigning %s: not in pool %s", addr, pool.CIDR)
	}
	err := m.retry(ctx, func() error { return m.assign(ctx, addr, handle, host, pool, attrs) })
	if err != nil {
		return fmt.Errorf("assigning %s to %s: %w", addr, handle, err)
	}
	return nil
}

// assign is one attempt of Assign.
func (m *IPAM) assign(ctx context.Context, addr netip.Addr, id, host string, pool Pool, attrs map[string]string) error {
	cidr := netip.PrefixFrom(addr, pool.BlockSize).Masked()
	aKey, hKey := affinityKey(host, cidr), handleKey(id)
	kvs, err := m.get(ctx, append(probeKeys(addr), aKey, hKey)...)
	if err != nil {
		return fmt.Errorf("reading the block of %s: %w", addr, err)
	}
	h, err := decodeHandle(id, kvs[hKey])
	if err != nil {
		return err
	}
	b, err := findBlock(addr, kvs)
	if err != nil {
		return err
	}
	c := &change{}
	if b != nil {
		ord := b.ordinal(addr)
		switch {
		case b.v.Allocations[ord] != nil:
			return fmt.Errorf("%w by handle %s", ErrInUse, b.handle(ord))
		case b.v.Deleted:
			return fmt.Errorf("block %s is being deleted", b.cidr)
		}
	} else {
		// Claim the block around addr, unless a block of another size
		// (from an older pool) overlaps it.
		existing, err := m.blockCIDRs(ctx, addr)
		if err != nil {
			return err
		}
		if i := slices.IndexFunc(existing, cidr.Overlaps); i >= 0 {
			return fmt.Errorf("block %s would overlap block %s", cidr, existing[i])
		}
		b = newBlock(cidr, host)
		var rev int64
		if kv := kvs[aKey]; kv != nil {
			rev = kv.ModRevision
		}
		c.guard(aKey, rev)
		c.claim(host, cidr)
	}
	_, err = m.allocate(ctx, c, b, b.ordinal(addr), h, attrs)
	return err
}
