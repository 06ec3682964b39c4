package ipam

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"
)

// blockValue is a block's value in etcd, with the JSON names of Calico's
// etcd model (libcalico-go model.AllocationBlock), which are not those of
// its IPAMBlock CRD: affinity_claim_time, handle_id. Members it does not
// know are kept in extra and written back.
type blockValue struct {
	CIDR     string  `json:"cidr"`
	Affinity *string `json:"affinity"`
	// AffinityClaimTime is when the host claimed the block (RFC 3339, as
	// Calico's metav1.Time), absent in blocks that predate it.
	AffinityClaimTime *string `json:"affinity_claim_time,omitempty"`
	// Allocations has one entry per address: nil is free, otherwise an
	// index into Attributes.
	Allocations []*int `json:"allocations"`
	// Unallocated is the free ordinals in the order they are to be handed
	// out: released addresses join the end, so the longest-free goes first.
	Unallocated []int       `json:"unallocated"`
	Attributes  []attribute `json:"attributes"`
	// SequenceNumber goes up with every write; each allocation records it
	// in SequenceNumberForAllocation (keyed by ordinal) when made.
	SequenceNumber              uint64            `json:"sequenceNumber"`
	SequenceNumberForAllocation map[string]uint64 `json:"sequenceNumberForAllocation"`
	Deleted                     bool              `json:"deleted"`
	// HostAffinity is Calico's deprecated form of Affinity (the host name
	// alone), kept as it came.
	HostAffinity *string `json:"hostAffinity,omitempty"`

	extra extra
}

// legacyClaimTime is the name an earlier version of ours gave
// affinity_claim_time (the CRD's). Calico does not read it and drops it
// when it rewrites a block; so do we, keeping its value under the right
// name.
const legacyClaimTime = "affinityClaimTime"

func (v blockValue) MarshalJSON() ([]byte, error) {
	type plain blockValue
	return encodeKeeping(plain(v), v.extra)
}

func (v *blockValue) UnmarshalJSON(b []byte) error {
	type plain blockValue
	x, err := decodeKeeping(b, (*plain)(v))
	if err != nil {
		return err
	}
	if raw, ok := x[legacyClaimTime]; ok {
		var t string
		if v.AffinityClaimTime == nil && json.Unmarshal(raw, &t) == nil && t != "" {
			v.AffinityClaimTime = &t
		}
		delete(x, legacyClaimTime)
	}
	v.extra = x
	return nil
}

// attribute says who holds an allocation (libcalico-go
// model.AllocationAttribute).
type attribute struct {
	HandleID  *string           `json:"handle_id,omitempty"`
	Secondary map[string]string `json:"secondary,omitempty"`
	// AlternateOwnerAttrs and ReleasedAt are Calico's: the other owner of
	// an address during a VM's live migration, and when an address went
	// into its cooldown after release (it is still taken until Calico's
	// IPAM frees it). Kept as they came.
	AlternateOwnerAttrs map[string]string `json:"alternateOwnerAttrs,omitempty"`
	ReleasedAt          *string           `json:"releasedAt,omitempty"`

	extra extra
}

func (a attribute) MarshalJSON() ([]byte, error) {
	type plain attribute
	return encodeKeeping(plain(a), a.extra)
}

func (a *attribute) UnmarshalJSON(b []byte) error {
	type plain attribute
	x, err := decodeKeeping(b, (*plain)(a))
	a.extra = x
	return err
}

// only is whether a holds handle's allocations with attrs and nothing
// more, so that a new allocation may share it.
func (a attribute) only(handle string, attrs map[string]string) bool {
	return a.HandleID != nil && *a.HandleID == handle && maps.Equal(a.Secondary, attrs) &&
		a.AlternateOwnerAttrs == nil && a.ReleasedAt == nil && a.extra == nil
}

// affinityValue is a block affinity's value (libcalico-go
// model.BlockAffinity). We only ever write confirmed affinities, in the
// same transaction as their block.
type affinityValue struct {
	State   string `json:"state"`
	Deleted bool   `json:"deleted"`

	extra extra
}

func (v affinityValue) MarshalJSON() ([]byte, error) {
	type plain affinityValue
	return encodeKeeping(plain(v), v.extra)
}

func (v *affinityValue) UnmarshalJSON(b []byte) error {
	type plain affinityValue
	x, err := decodeKeeping(b, (*plain)(v))
	v.extra = x
	return err
}

const confirmed = "confirmed"

// confirmedAffinity tells whether an affinity's value makes the block the
// host's, as Calico's IPAM reads it: state confirmed, or no state at all
// (an empty value, or state ""), which older Calico wrote and Calico
// still takes as confirmed. Pending and pendingDeletion are a claim or a
// release half done by Calico: not the host's (yet, or any more).
func confirmedAffinity(val []byte) bool {
	if len(bytes.TrimSpace(val)) == 0 {
		return true
	}
	var v affinityValue
	if json.Unmarshal(val, &v) != nil || v.Deleted {
		return false
	}
	return v.State == confirmed || v.State == ""
}

// handleValue is a handle's value (libcalico-go model.IPAMHandle): how
// many of its addresses each block (keyed by CIDR) holds. The handle's ID
// is its key alone.
type handleValue struct {
	Block   map[string]int `json:"block"`
	Deleted bool           `json:"deleted"`

	extra extra
}

// legacyHandleID is a member an earlier version of ours wrote into
// handles, which Calico does not have; it is dropped on rewrite.
const legacyHandleID = "handleID"

func (v handleValue) MarshalJSON() ([]byte, error) {
	type plain handleValue
	return encodeKeeping(plain(v), v.extra)
}

func (v *handleValue) UnmarshalJSON(b []byte) error {
	type plain handleValue
	x, err := decodeKeeping(b, (*plain)(v), legacyHandleID)
	v.extra = x
	return err
}

// block is a block as read, with the revision to guard its write with (0:
// it does not exist yet).
type block struct {
	cidr netip.Prefix
	rev  int64
	v    blockValue
}

// newBlock is an empty block affine to host, its free list in address
// order.
func newBlock(cidr netip.Prefix, host string) *block {
	n := 1 << (addrBits(cidr.Addr()) - cidr.Bits())
	claimed := time.Now().UTC().Format(time.RFC3339)
	b := &block{cidr: cidr, v: blockValue{
		CIDR:                        cidr.String(),
		AffinityClaimTime:           &claimed,
		Allocations:                 make([]*int, n),
		Unallocated:                 make([]int, n),
		Attributes:                  []attribute{},
		SequenceNumberForAllocation: map[string]uint64{},
	}}
	aff := "host:" + host
	b.v.Affinity = &aff
	for i := range b.v.Unallocated {
		b.v.Unallocated[i] = i
	}
	return b
}

// checkAllocations checks a decoded block's allocations: one for each
// address of cidr, each free or an index into its attrs attributes.
func checkAllocations(cidr netip.Prefix, allocs []*int, attrs int) error {
	if n := 1 << (addrBits(cidr.Addr()) - cidr.Bits()); len(allocs) != n {
		return fmt.Errorf("decoding block %s: %d allocations for %d addresses", cidr, len(allocs), n)
	}
	for o, a := range allocs {
		if a != nil && (*a < 0 || *a >= attrs) {
			return fmt.Errorf("decoding block %s: allocation %d points at attribute %d of %d", cidr, o, *a, attrs)
		}
	}
	return nil
}

// decodeBlock reads a block's value and checks that it is one we can work
// on: the right number of allocations, each pointing at an attribute.
func decodeBlock(cidr netip.Prefix, val []byte, rev int64) (*block, error) {
	b := &block{cidr: cidr, rev: rev}
	if err := json.Unmarshal(val, &b.v); err != nil {
		return nil, fmt.Errorf("decoding block %s: %w", cidr, err)
	}
	if err := checkAllocations(cidr, b.v.Allocations, len(b.v.Attributes)); err != nil {
		return nil, err
	}
	if b.v.SequenceNumberForAllocation == nil {
		b.v.SequenceNumberForAllocation = map[string]uint64{}
	}
	return b, nil
}

func (b *block) encode() string {
	out, _ := json.Marshal(b.v) // strings, ints, maps and valid JSON: cannot fail
	return string(out)
}

// host is the host the block is affine to, or "".
func (b *block) host() string {
	if b.v.Affinity == nil {
		return ""
	}
	h, _ := strings.CutPrefix(*b.v.Affinity, "host:")
	return h
}

func (b *block) addr(ord int) netip.Addr { return nth(b.cidr.Addr(), ord) }

func (b *block) ordinal(a netip.Addr) int { return offset(b.cidr.Addr(), a) }

// handle is the handle that holds ordinal ord, or "" if it is free.
func (b *block) handle(ord int) string {
	a := b.v.Allocations[ord]
	if a == nil || b.v.Attributes[*a].HandleID == nil {
		return ""
	}
	return *b.v.Attributes[*a].HandleID
}

func (b *block) attrs(ord int) map[string]string {
	if a := b.v.Allocations[ord]; a != nil {
		return maps.Clone(b.v.Attributes[*a].Secondary)
	}
	return nil
}

// free is the first ordinal in the free list, or -1 if the block is full.
func (b *block) free() int {
	if b.v.Deleted {
		return -1
	}
	for _, o := range b.v.Unallocated {
		if o >= 0 && o < len(b.v.Allocations) && b.v.Allocations[o] == nil {
			return o
		}
	}
	return -1
}

func (b *block) empty() bool {
	for _, a := range b.v.Allocations {
		if a != nil {
			return false
		}
	}
	return true
}

// allocate gives ordinal ord, which must be free, to handle.
func (b *block) allocate(ord int, handle string, attrs map[string]string) {
	idx := slices.IndexFunc(b.v.Attributes, func(a attribute) bool { return a.only(handle, attrs) })
	if idx < 0 {
		h := handle
		b.v.Attributes = append(b.v.Attributes, attribute{HandleID: &h, Secondary: maps.Clone(attrs)})
		idx = len(b.v.Attributes) - 1
	}
	b.v.Allocations[ord] = &idx
	b.v.Unallocated = deleteAll(b.v.Unallocated, ord)
	b.v.SequenceNumber++
	b.v.SequenceNumberForAllocation[strconv.Itoa(ord)] = b.v.SequenceNumber
}

// release frees the ordinals, putting them at the end of the free list, and
// drops the attributes nothing points at any more.
func (b *block) release(ords []int) {
	for _, o := range ords {
		b.v.Allocations[o] = nil
		b.v.Unallocated = append(deleteAll(b.v.Unallocated, o), o)
		delete(b.v.SequenceNumberForAllocation, strconv.Itoa(o))
	}
	b.v.SequenceNumber++
	used := make([]bool, len(b.v.Attributes))
	for _, a := range b.v.Allocations {
		if a != nil {
			used[*a] = true
		}
	}
	renumber := make([]int, len(b.v.Attributes))
	kept := []attribute{}
	for i, a := range b.v.Attributes {
		if used[i] {
			renumber[i] = len(kept)
			kept = append(kept, a)
		}
	}
	for o, a := range b.v.Allocations {
		if a != nil {
			n := renumber[*a]
			b.v.Allocations[o] = &n
		}
	}
	b.v.Attributes = kept
}

// deleteAll removes every v from s.
func deleteAll(s []int, v int) []int {
	out := s[:0]
	for _, x := range s {
		if x != v {
			out = append(out, x)
		}
	}
	return out
}

// allocations lists the block's allocated addresses in address order.
func (b *block) allocations() []Allocation {
	var out []Allocation
	for o, a := range b.v.Allocations {
		if a != nil {
			out = append(out, b.allocation(o))
		}
	}
	return out
}

func (b *block) allocation(ord int) Allocation {
	return Allocation{
		Addr:   b.addr(ord),
		Block:  b.cidr,
		Host:   b.host(),
		Handle: b.handle(ord),
		Attrs:  b.attrs(ord),
	}
}
