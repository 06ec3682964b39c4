package ipam

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// ReleaseByHandle frees every address handle holds and deletes the handle,
// in one transaction, and returns the addresses freed. A handle that does
// not exist holds nothing: releasing it again is not an error.
func (m *IPAM) ReleaseByHandle(ctx context.Context, handle string) ([]netip.Addr, error) {
	if err := checkName("handle", handle); err != nil {
		return nil, fmt.Errorf("releasing: %w", err)
	}
	var freed []netip.Addr
	err := m.retry(ctx, func() error {
		var err error
		freed, err = m.releaseByHandle(ctx, handle)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("releasing handle %s: %w", handle, err)
	}
	return freed, nil
}

// releaseByHandle is one attempt of ReleaseByHandle.
func (m *IPAM) releaseByHandle(ctx context.Context, id string) ([]netip.Addr, error) {
	key := handleKey(id)
	kvs, err := m.get(ctx, key)
	if err != nil {
		return nil, fmt.Errorf("reading handle: %w", err)
	}
	if kvs[key] == nil {
		return nil, nil
	}
	h, err := decodeHandle(id, kvs[key])
	if err != nil {
		return nil, err
	}
	var cidrs []netip.Prefix
	for s := range h.v.Block {
		c, err := netip.ParsePrefix(s)
		if err != nil || c != c.Masked() {
			return nil, fmt.Errorf("handle %s names block %q, which is not a CIDR", id, s)
		}
		cidrs = append(cidrs, c)
	}
	slices.SortFunc(cidrs, comparePrefix)
	blocks, err := m.blocks(ctx, cidrs)
	if err != nil {
		return nil, err
	}
	var freed []netip.Addr
	c := &change{}
	for _, cidr := range cidrs {
		b := blocks[cidr]
		if b == nil {
			c.guard(blockKey(cidr), 0)
			continue
		}
		var ords []int
		for o := range b.v.Allocations {
			if b.handle(o) == id {
				ords = append(ords, o)
				freed = append(freed, b.addr(o))
			}
		}
		if len(ords) == 0 {
			c.guard(blockKey(cidr), b.rev)
			continue
		}
		b.release(ords)
		c.saveBlock(b)
	}
	h.v.Block = nil
	c.saveHandle(h)
	if err := m.commit(ctx, c); err != nil {
		return nil, err
	}
	return freed, nil
}

// Release frees one address, taking it off its handle's count. It fails
// with ErrNotAllocated if the address is free.
func (m *IPAM) Release(ctx context.Context, addr netip.Addr) error {
	addr = addr.Unmap()
	err := m.retry(ctx, func() error { return m.release(ctx, addr) })
	if err != nil {
		return fmt.Errorf("releasing %s: %w", addr, err)
	}
	return nil
}

// release is one attempt of Release.
func (m *IPAM) release(ctx context.Context, addr netip.Addr) error {
	b, err := m.blockOf(ctx, addr)
	if err != nil {
		return err
	}
	if b == nil || b.v.Allocations[b.ordinal(addr)] == nil {
		return ErrNotAllocated
	}
	ord := b.ordinal(addr)
	c := &change{}
	if id := b.handle(ord); id != "" {
		kvs, err := m.get(ctx, handleKey(id))
		if err != nil {
			return fmt.Errorf("reading handle %s: %w", id, err)
		}
		h, err := decodeHandle(id, kvs[handleKey(id)])
		if err != nil {
			return err
		}
		if n := h.v.Block[b.cidr.String()]; n > 1 {
			h.v.Block[b.cidr.String()] = n - 1
		} else {
			delete(h.v.Block, b.cidr.String())
		}
		c.saveHandle(h)
	}
	b.release([]int{ord})
	c.saveBlock(b)
	return m.commit(ctx, c)
}

// ReleaseHost drops every block affinity host has, for a host that leaves
// the cluster. Empty blocks are deleted; blocks that still hold addresses
// keep them but are affine to no host, and are deleted once the last one is
// released.
func (m *IPAM) ReleaseHost(ctx context.Context, host string) error {
	if err := checkName("host", host); err != nil {
		return fmt.Errorf("releasing blocks: %w", err)
	}
	resp, err := m.list(ctx, hostAffinities(host), clientv3.WithKeysOnly())
	if err != nil {
		return fmt.Errorf("listing blocks of %s: %w", host, err)
	}
	var errs []error
	for _, kv := range resp.Kvs {
		h, cidr, ok := parseAffinityKey(string(kv.Key))
		if !ok || h != host {
			continue
		}
		if err := m.retry(ctx, func() error { return m.releaseAffinity(ctx, host, cidr) }); err != nil {
			errs = append(errs, fmt.Errorf("releasing block %s of %s: %w", cidr, host, err))
		}
	}
	return errors.Join(errs...)
}

// releaseAffinity is one attempt to drop host's affinity to cidr.
func (m *IPAM) releaseAffinity(ctx context.Context, host string, cidr netip.Prefix) error {
	aKey, bKey := affinityKey(host, cidr), blockKey(cidr)
	kvs, err := m.get(ctx, aKey, bKey)
	if err != nil {
		return fmt.Errorf("reading block: %w", err)
	}
	if kvs[aKey] == nil {
		return nil
	}
	c := &change{}
	c.guard(aKey, kvs[aKey].ModRevision)
	c.ops = append(c.ops, clientv3.OpDelete(aKey))
	if kv := kvs[bKey]; kv != nil {
		b, err := decodeBlock(cidr, kv.Value, kv.ModRevision)
		if err != nil {
			return err
		}
		if b.host() == host {
			b.v.Affinity = nil
			b.v.AffinityClaimTime = nil
			b.v.SequenceNumber++
			c.saveBlock(b)
		} else {
			c.guard(bKey, b.rev)
		}
	}
	return m.commit(ctx, c)
}
