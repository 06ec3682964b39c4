package ipam

import (
	"crypto/sha256"
	"encoding/binary"
	"math/bits"
	"net/netip"
)

// u128 is an address, or an index of a block within a pool, as a number.
// IPv6 pools can hold more than 2^64 blocks, so plain ints do not do.
type u128 struct{ hi, lo uint64 }

func addrNum(a netip.Addr) u128 {
	if a.Is4() {
		b := a.As4()
		return u128{lo: uint64(binary.BigEndian.Uint32(b[:]))}
	}
	b := a.As16()
	return u128{hi: binary.BigEndian.Uint64(b[:8]), lo: binary.BigEndian.Uint64(b[8:])}
}

// addr is u as an address of the family v6 says.
func (u u128) addr(v6 bool) netip.Addr {
	if !v6 {
		var b [4]byte
		binary.BigEndian.PutUint32(b[:], uint32(u.lo))
		return netip.AddrFrom4(b)
	}
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], u.hi)
	binary.BigEndian.PutUint64(b[8:], u.lo)
	return netip.AddrFrom16(b)
}

func (u u128) add(v u128) u128 {
	lo, carry := bits.Add64(u.lo, v.lo, 0)
	return u128{hi: u.hi + v.hi + carry, lo: lo}
}

func (u u128) sub(v u128) u128 {
	lo, borrow := bits.Sub64(u.lo, v.lo, 0)
	return u128{hi: u.hi - v.hi - borrow, lo: lo}
}

func (u u128) and(v u128) u128 { return u128{hi: u.hi & v.hi, lo: u.lo & v.lo} }

func (u u128) shl(n int) u128 {
	switch {
	case n >= 128:
		return u128{}
	case n >= 64:
		return u128{hi: u.lo << (n - 64)}
	case n == 0:
		return u
	}
	return u128{hi: u.hi<<n | u.lo>>(64-n), lo: u.lo << n}
}

// lowBits is the number whose n low bits are set.
func lowBits(n int) u128 {
	switch {
	case n >= 128:
		return u128{hi: ^uint64(0), lo: ^uint64(0)}
	case n >= 64:
		return u128{hi: 1<<(n-64) - 1, lo: ^uint64(0)}
	}
	return u128{lo: 1<<n - 1}
}

// addrBits is the length of an address of a's family.
func addrBits(a netip.Addr) int { return a.BitLen() }

// offset is the ordinal of a within the block that starts at base.
func offset(base, a netip.Addr) int {
	return int(addrNum(a).sub(addrNum(base)).lo)
}

// nth is the address n places after base.
func nth(base netip.Addr, n int) netip.Addr {
	return addrNum(base).add(u128{lo: uint64(n)}).addr(base.Is6())
}

// blockWalk visits the blocks of a pool in a pseudo-random order that
// depends only on the host: it starts at a block picked by hashing the host
// name and goes up from there, wrapping at the end of the pool. Hosts that
// claim blocks at the same moment therefore start in different places and
// rarely collide, and one host always fills the pool in the same order.
type blockWalk struct {
	pool netip.Prefix
	size int  // the blocks' prefix length
	idx  u128 // the current block's index within the pool
	mask u128 // lowBits(number of index bits)
}

func newBlockWalk(p Pool, host string) *blockWalk {
	sum := sha256.Sum256([]byte(host))
	seed := u128{hi: binary.BigEndian.Uint64(sum[:8]), lo: binary.BigEndian.Uint64(sum[8:16])}
	mask := lowBits(p.BlockSize - p.CIDR.Bits())
	return &blockWalk{pool: p.CIDR, size: p.BlockSize, idx: seed.and(mask), mask: mask}
}

// block is the block the walk is at.
func (w *blockWalk) block() netip.Prefix {
	base := w.pool.Addr()
	step := w.idx.shl(addrBits(base) - w.size)
	return netip.PrefixFrom(addrNum(base).add(step).addr(base.Is6()), w.size)
}

func (w *blockWalk) next() { w.idx = w.idx.add(u128{lo: 1}).and(w.mask) }

// blocksIn is how many blocks of size bits the prefix p covers (at least
// one: a smaller p still takes up a block), capped at max.
func blocksIn(p netip.Prefix, size, max int) int {
	n := size - p.Bits()
	switch {
	case n <= 0:
		return min(1, max)
	case n >= 62 || 1<<n > max:
		return max
	}
	return 1 << n
}
