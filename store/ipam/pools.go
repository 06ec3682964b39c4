package ipam

import (
	"cmp"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"calico/internal/quote"
	"calico/store"
	"calico/store/selector"
)

// What a pool's addresses may be for (IPPool allowedUses).
const (
	UseWorkload     = "Workload"
	UseTunnel       = "Tunnel"
	UseLoadBalancer = "LoadBalancer"
)

// ErrPoolNotUsable is a pool, or an address's pool, that a workload may
// not take an address from: there is none, it is disabled, it is not for
// workloads, or it cannot be read as written. The errors returned wrap it
// and say which.
var ErrPoolNotUsable = errors.New("IP pool not usable for workloads")

// PoolsFor are the pools that automatic assignment of a workload address
// on a node with nodeLabels may use, in name order, as Calico's IPAM
// picks them: enabled, assignmentMode Automatic, allowedUses holding
// Workload, and a nodeSelector that selects the node. A pool whose
// nodeSelector does not parse, or that was read from the datastore with
// problems (Metadata.Problems), selects nothing; problems says why, one
// line per pool. Pools of both families come back: AutoAssign takes one
// family at a time.
//
// An address or a pool asked for by name is PoolForAddr's and
// RequestedPool's: those may be Manual and need not select the node.
func PoolsFor(pools []*store.IPPool, nodeLabels map[string]string) (auto []Pool, problems []string) {
	for _, p := range sortedPools(pools) {
		pool, perr := usable(p)
		if perr != nil {
			if !perr.bySettings {
				problems = append(problems, perr.Error())
			}
			continue
		}
		if assignmentMode(p) != "Automatic" {
			continue
		}
		sel, err := selector.Parse(cmp.Or(p.Spec.NodeSelector, "all()"))
		if err != nil {
			problems = append(problems, fmt.Sprintf("IP pool %q: nodeSelector: %v (it selects no node)", quote.Clip(p.Metadata.Name), err))
			continue
		}
		if sel.Evaluate(nodeLabels) {
			auto = append(auto, pool)
		}
	}
	return auto, problems
}

// PoolForAddr is the pool a workload asking for addr by address takes it
// from: the enabled pool that holds it, whatever its assignmentMode and
// nodeSelector (as Calico's AssignIP), if its allowedUses hold Workload.
// The error wraps ErrPoolNotUsable and says why there is none.
func PoolForAddr(pools []*store.IPPool, addr netip.Addr) (Pool, error) {
	addr = addr.Unmap()
	for _, p := range sortedPools(pools) {
		if c, err := store.ParseCIDR(p.Spec.CIDR); err == nil && c.Contains(addr) {
			pool, err := usable(p)
			if err != nil {
				return Pool{}, &poolError{msg: fmt.Sprintf("address %s: %s", addr, err.msg)}
			}
			return pool, nil
		}
	}
	return Pool{}, &poolError{msg: fmt.Sprintf("address %s is not in any IP pool", addr)}
}

// RequestedPool is the pool with this CIDR, for a workload that asks for
// an address from it: enabled, whatever its assignmentMode and
// nodeSelector (as Calico's IPAM takes requested pools), if its
// allowedUses hold Workload. The error wraps ErrPoolNotUsable and says
// why not.
func RequestedPool(pools []*store.IPPool, cidr netip.Prefix) (Pool, error) {
	for _, p := range sortedPools(pools) {
		if c, err := store.ParseCIDR(p.Spec.CIDR); err == nil && c == cidr.Masked() {
			pool, err := usable(p)
			if err != nil {
				return Pool{}, err
			}
			return pool, nil
		}
	}
	return Pool{}, &poolError{msg: fmt.Sprintf("no IP pool has CIDR %s", cidr)}
}

// poolError says why a workload may not use a pool; it is
// ErrPoolNotUsable.
type poolError struct {
	msg string
	// bySettings: the pool is left out by its own settings (disabled, or
	// not for workloads), which PoolsFor does not report as a problem.
	bySettings bool
}

func (e *poolError) Error() string        { return e.msg }
func (e *poolError) Is(target error) bool { return target == ErrPoolNotUsable }

// usable is p as a Pool, if a workload may take an address from it at
// all (assignmentMode and nodeSelector aside).
func usable(p *store.IPPool) (Pool, *poolError) {
	name := quote.Clip(p.Metadata.Name)
	if probs := p.Metadata.Problems; len(probs) > 0 {
		msgs := make([]string, len(probs))
		for i, f := range probs {
			msgs[i] = strings.TrimPrefix(f.Field+": "+f.Msg, ": ")
		}
		return Pool{}, &poolError{msg: fmt.Sprintf("IP pool %q cannot be used as written: %s", name, strings.Join(msgs, "; "))}
	}
	cidr, err := store.ParseCIDR(p.Spec.CIDR)
	if err != nil {
		return Pool{}, &poolError{msg: fmt.Sprintf("IP pool %q: cidr: %v", name, err)}
	}
	if p.Spec.Disabled {
		return Pool{}, &poolError{msg: fmt.Sprintf("IP pool %q (%s) is disabled", name, cidr), bySettings: true}
	}
	if uses := allowedUses(p); !slices.Contains(uses, UseWorkload) {
		return Pool{}, &poolError{msg: fmt.Sprintf("IP pool %q (%s) is not for workloads (allowedUses: %s)", name, cidr, strings.Join(uses, ", ")), bySettings: true}
	}
	size := p.Spec.BlockSize
	if size == 0 {
		size = store.DefaultBlockSize(cidr)
	}
	pool := Pool{Name: p.Metadata.Name, CIDR: cidr, BlockSize: size}
	if err := pool.check(); err != nil {
		return Pool{}, &poolError{msg: fmt.Sprintf("IP pool %q: %v", name, err)}
	}
	return pool, nil
}

// allowedUses and assignmentMode read the pool's settings with Calico's
// defaults (the store fills them in; a value made in code may not have).
func allowedUses(p *store.IPPool) []string {
	if len(p.Spec.AllowedUses) == 0 {
		return []string{UseWorkload, UseTunnel}
	}
	return p.Spec.AllowedUses
}

func assignmentMode(p *store.IPPool) string { return cmp.Or(p.Spec.AssignmentMode, "Automatic") }

func sortedPools(pools []*store.IPPool) []*store.IPPool {
	return slices.SortedFunc(slices.Values(pools), func(a, b *store.IPPool) int {
		return strings.Compare(a.Metadata.Name, b.Metadata.Name)
	})
}
