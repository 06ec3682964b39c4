package ipam

import (
	"calico/store/etcdv3"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// Errors that callers branch on. The errors returned wrap them with the
// address or pools concerned.
var (
	ErrNoAddresses  = errors.New("no free addresses")
	ErrInUse        = errors.New("address in use")
	ErrNotAllocated = errors.New("address not allocated")
)

// errConflict is a transaction that lost a race: read again and retry.
var errConflict = errors.New("IPAM keys changed concurrently")

// Pool is a range the caller lets IPAM allocate from.
type Pool struct {
	// Name is the IPPool's, for messages; IPAM does not read it.
	Name string
	CIDR netip.Prefix
	// BlockSize is the prefix length of the pool's blocks: 20-32 for IPv4
	// (26 in Calico's default pools), 116-128 for IPv6 (122).
	BlockSize int
}

func (p Pool) check() error {
	if !p.CIDR.IsValid() || p.CIDR != p.CIDR.Masked() {
		return fmt.Errorf("pool %s is not a network prefix", p.CIDR)
	}
	lo, hi := blockSizes(p.CIDR.Addr())
	if p.BlockSize < lo || p.BlockSize > hi || p.BlockSize < p.CIDR.Bits() {
		return fmt.Errorf("pool %s: block size /%d is not between /%d and /%d", p.CIDR, p.BlockSize, max(lo, p.CIDR.Bits()), hi)
	}
	return nil
}

// poolIndex is the index of the pool that cidr is a block of, or -1.
func poolIndex(pools []Pool, cidr netip.Prefix) int {
	for i, p := range pools {
		if p.CIDR.Contains(cidr.Addr()) && cidr.Bits() >= p.CIDR.Bits() {
			return i
		}
	}
	return -1
}

func poolList(pools []Pool) string {
	s := make([]string, len(pools))
	for i, p := range pools {
		s[i] = p.CIDR.String()
	}
	return strings.Join(s, ", ")
}

// Allocation is one allocated address.
type Allocation struct {
	Addr  netip.Addr
	Block netip.Prefix
	// Host is the host the block is affine to ("" if none). An address
	// borrowed from another host's block has that host here; Attrs usually
	// say who really uses it.
	Host   string
	Handle string
	Attrs  map[string]string
}

// Block is one block and its allocations.
type Block struct {
	CIDR netip.Prefix
	// Host is the host the block is affine to, "" once that host let go
	// of it.
	Host        string
	Allocations []Allocation // in address order
}

// Handle is what one handle holds: how many addresses in each block.
type Handle struct {
	ID     string
	Blocks map[netip.Prefix]int
}

// IPAM allocates addresses in etcd.
type IPAM struct {
	cli *clientv3.Client
	// claims counts the changes that claimed a block (see Claims).
	claims atomic.Uint64
	// timeout bounds each etcd call (a shorter deadline on ctx wins).
	timeout time.Duration
	// attempts bounds the transactions one change tries before giving up.
	attempts int
}

// New returns an IPAM over an etcd client.
func New(cli *clientv3.Client) *IPAM {
	return &IPAM{cli: cli, timeout: 10 * time.Second, attempts: 100}
}

// maxOps is how many reads go in one transaction (etcd allows 128 by
// default).
const maxOps = 64

func checkName(what, s string) error {
	if s == "" || strings.Contains(s, "/") {
		return fmt.Errorf("%s %q is not valid: it must be non-empty and contain no '/'", what, s)
	}
	return nil
}

// retry runs f until it does not report a conflict, at most m.attempts
// times, backing off a little more (with jitter) after each conflict.
func (m *IPAM) retry(ctx context.Context, f func() error) error {
	for attempt := 1; ; attempt++ {
		err := f()
		if !errors.Is(err, errConflict) {
			return err
		}
		if attempt >= m.attempts {
			return fmt.Errorf("giving up after %d attempts: %w", attempt, err)
		}
		t := time.NewTimer(rand.N(time.Duration(min(attempt, 20)) * time.Millisecond))
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
}

// txn commits one transaction, bounded by m.timeout.
func (m *IPAM) txn(ctx context.Context, cmps []clientv3.Cmp, ops []clientv3.Op) (*clientv3.TxnResponse, error) {
	ctx, cancel := context.WithTimeout(ctx, m.timeout)
	defer cancel()
	return m.cli.Txn(ctx).If(cmps...).Then(ops...).Commit()
}

// list reads a key range, bounded by m.timeout.
func (m *IPAM) list(ctx context.Context, prefix string, opts ...clientv3.OpOption) (*clientv3.GetResponse, error) {
	ctx, cancel := context.WithTimeout(ctx, m.timeout)
	defer cancel()
	return m.cli.Get(ctx, prefix, append(opts, clientv3.WithPrefix())...)
}

// get reads keys, up to maxOps at a time each at one revision. Absent keys
// are absent from the map.
func (m *IPAM) get(ctx context.Context, keys ...string) (map[string]*mvccpb.KeyValue, error) {
	out := make(map[string]*mvccpb.KeyValue, len(keys))
	for chunk := range slices.Chunk(keys, maxOps) {
		ops := make([]clientv3.Op, len(chunk))
		for i, k := range chunk {
			ops[i] = clientv3.OpGet(k)
		}
		resp, err := m.txn(ctx, nil, ops)
		if err != nil {
			return nil, err
		}
		for _, r := range resp.Responses {
			for _, kv := range r.GetResponseRange().Kvs {
				out[string(kv.Key)] = kv
			}
		}
	}
	return out, nil
}

// blocks reads the blocks with these CIDRs; absent ones are absent from
// the map.
func (m *IPAM) blocks(ctx context.Context, cidrs []netip.Prefix) (map[netip.Prefix]*block, error) {
	keys := make([]string, len(cidrs))
	for i, c := range cidrs {
		keys[i] = blockKey(c)
	}
	kvs, err := m.get(ctx, keys...)
	if err != nil {
		return nil, fmt.Errorf("reading blocks: %w", err)
	}
	out := make(map[netip.Prefix]*block, len(kvs))
	for _, c := range cidrs {
		if kv := kvs[blockKey(c)]; kv != nil {
			b, err := decodeBlock(c, kv.Value, kv.ModRevision)
			if err != nil {
				return nil, err
			}
			out[c] = b
		}
	}
	return out, nil
}

// blockCIDRs lists every block of a's family, reading keys only.
func (m *IPAM) blockCIDRs(ctx context.Context, a netip.Addr) ([]netip.Prefix, error) {
	resp, err := m.list(ctx, blocksPrefix(a), clientv3.WithKeysOnly())
	if err != nil {
		return nil, fmt.Errorf("listing %s blocks: %w", family(a), err)
	}
	out := make([]netip.Prefix, 0, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		if c, ok := parseBlockKey(string(kv.Key)); ok {
			out = append(out, c)
		}
	}
	return out, nil
}

// blockSizes is the range of block prefix lengths for a's family, as
// Calico allows them.
func blockSizes(a netip.Addr) (lo, hi int) {
	if a.Is4() {
		return 20, 32
	}
	return 116, 128
}

// probeKeys are the keys of every block that could hold a: one per block
// size, so that a block is found without listing any.
func probeKeys(a netip.Addr) []string {
	lo, hi := blockSizes(a)
	keys := make([]string, 0, hi-lo+1)
	for bits := lo; bits <= hi; bits++ {
		keys = append(keys, blockKey(netip.PrefixFrom(a, bits).Masked()))
	}
	return keys
}

// findBlock picks the block that holds a out of kvs, which include what
// probeKeys(a) read. It returns nil if there is none.
func findBlock(a netip.Addr, kvs map[string]*mvccpb.KeyValue) (*block, error) {
	lo, hi := blockSizes(a)
	for bits := lo; bits <= hi; bits++ {
		cidr := netip.PrefixFrom(a, bits).Masked()
		if kv := kvs[blockKey(cidr)]; kv != nil {
			return decodeBlock(cidr, kv.Value, kv.ModRevision)
		}
	}
	return nil, nil
}

// blockOf reads the block that holds a, or returns nil if there is none.
func (m *IPAM) blockOf(ctx context.Context, a netip.Addr) (*block, error) {
	kvs, err := m.get(ctx, probeKeys(a)...)
	if err != nil {
		return nil, fmt.Errorf("reading the block of %s: %w", a, err)
	}
	return findBlock(a, kvs)
}

// handle is a handle as read, with the revision to guard its write with
// (0: it does not exist).
type handle struct {
	id  string
	rev int64
	v   handleValue
}

// decodeHandle reads a handle's value; kv nil is a handle that does not
// exist yet.
func decodeHandle(id string, kv *mvccpb.KeyValue) (*handle, error) {
	h := &handle{id: id}
	if kv != nil {
		h.rev = kv.ModRevision
		if err := json.Unmarshal(kv.Value, &h.v); err != nil {
			return nil, fmt.Errorf("decoding handle %s: %w", id, err)
		}
	}
	if h.v.Block == nil {
		h.v.Block = map[string]int{}
	}
	return h, nil
}

// change is one transaction: the revisions it requires and what it writes.
type change struct {
	cmps    []clientv3.Cmp
	ops     []clientv3.Op
	claimed bool // it claims a block for a host
}

// guard requires key to be still at rev (0: still absent).
func (c *change) guard(key string, rev int64) {
	c.cmps = append(c.cmps, clientv3.Compare(clientv3.ModRevision(key), "=", rev))
}

func (c *change) put(key, val string) { c.ops = append(c.ops, clientv3.OpPut(key, val)) }

// saveBlock writes b back; a block that is empty and affine to no host is
// deleted instead, as Calico does.
func (c *change) saveBlock(b *block) {
	key := blockKey(b.cidr)
	c.guard(key, b.rev)
	switch {
	case b.host() == "" && b.empty():
		if b.rev != 0 {
			c.ops = append(c.ops, clientv3.OpDelete(key))
		}
	default:
		c.put(key, b.encode())
	}
}

// saveHandle writes h back; a handle that holds nothing is deleted.
func (c *change) saveHandle(h *handle) {
	key := handleKey(h.id)
	c.guard(key, h.rev)
	switch {
	case len(h.v.Block) == 0:
		if h.rev != 0 {
			c.ops = append(c.ops, clientv3.OpDelete(key))
		}
	default:
		out, _ := json.Marshal(h.v) // strings, ints and valid JSON: cannot fail
		c.put(key, string(out))
	}
}

// claim writes a confirmed affinity of cidr to host.
func (c *change) claim(host string, cidr netip.Prefix) {
	out, _ := json.Marshal(affinityValue{State: confirmed})
	c.put(affinityKey(host, cidr), string(out))
	c.claimed = true
}

// commit applies c, or reports errConflict if a guard failed.
func (m *IPAM) commit(ctx context.Context, c *change) error {
	ctx, cancel := context.WithTimeout(ctx, m.timeout)
	defer cancel()
	ok, _, err := etcdv3.Commit(ctx, m.cli, c.cmps, c.ops)
	if c.claimed && (ok || err != nil) { // an error may hide a commit
		m.claims.Add(1)
	}
	if err != nil {
		return err
	}
	if !ok {
		return errConflict
	}
	return nil
}

// Claims counts the changes through m that claimed an address block for
// a host (or may have: one whose commit failed without an answer), since
// m was made. A change of it is when a host's blocks may have changed.
func (m *IPAM) Claims() uint64 { return m.claims.Load() }

func comparePrefix(a, b netip.Prefix) int {
	if c := a.Addr().Compare(b.Addr()); c != 0 {
		return c
	}
	return cmp.Compare(a.Bits(), b.Bits())
}
