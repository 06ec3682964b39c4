package nft

import (
	"errors"
	"testing"
	"time"

	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"

	"calico/internal/testutil"
)

// TestPrivilegedCommitOutcome: a batch sent without per-message
// acknowledgements still reports whatever the kernel refuses, in the
// middle of the batch, in its last message, or at commit, and then
// nothing of it is in the kernel; a batch the kernel takes is there.
func TestPrivilegedCommitOutcome(t *testing.T) {
	testutil.Privileged(t)
	jump := func(from, to string) op {
		r := newRule("", verdict{kind: expr.VerdictJump, chain: to})
		return op{kind: opAddRule, name: from, rule: &r}
	}
	base := op{kind: opAddChain, name: "base", hook: &Hook{Name: "forward", Priority: 0, Accept: true}}
	set := &TableSet{Name: "s", Type: SetIPv4}
	elem := func(name string) op {
		return op{kind: opAddElems, name: name, set: set, elems: []Element{{Key: string(addr("10.0.0.1").AsSlice())}}}
	}
	tests := []struct {
		name string
		ops  []op
		want error // nil: committed
	}{
		{"accepted", []op{{kind: opAddTable}, {kind: opAddSet, name: "s", set: set}, base, {kind: opAddChain, name: "a"}, elem("s"), jump("base", "a")}, nil},
		{"refused in the middle", []op{{kind: opAddTable}, {kind: opAddSet, name: "s", set: set}, elem("nope"), {kind: opAddChain, name: "a"}, elem("s")}, unix.ENOENT},
		{"refused last", []op{{kind: opAddTable}, {kind: opAddSet, name: "s", set: set}, {kind: opAddChain, name: "a"}, elem("nope")}, unix.ENOENT},
		// Each message is fine alone; the loop is found when the last jump
		// goes in or at commit, and reported either way.
		{"refused at commit (a loop)", []op{{kind: opAddTable}, {kind: opAddSet, name: "s", set: set}, base, {kind: opAddChain, name: "a"}, {kind: opAddChain, name: "b"},
			jump("base", "a"), jump("a", "b"), jump("b", "a"), elem("s")}, unix.EMLINK},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ns := testutil.NewNetNS(t)
			_, gen := readBack(t, ns)
			var ids uint32
			msgs, err := marshal(tt.ops, &ids)
			if err != nil {
				t.Fatal(err)
			}
			a := New(testLogger(t), WithNetNS(int(ns.Handle())))
			defer a.Close()
			c, err := a.socket(time.Now().Add(10 * time.Second))
			if err != nil {
				t.Fatal(err)
			}
			err = commit(c, msgs)
			table, after := readBack(t, ns)
			switch {
			case tt.want == nil && err != nil:
				t.Fatalf("commit: %v", err)
			case tt.want == nil:
				if after != nextGen(gen) || table == nil || len(table.Chains) != 2 || len(table.Sets) != 1 || len(table.Sets[0].Elems) != 1 {
					t.Errorf("generation %d -> %d, table %+v", gen, after, table)
				}
			case !errors.Is(err, tt.want):
				t.Fatalf("commit: %v, want %v", err, tt.want)
			case after != gen || table != nil:
				t.Errorf("a refused batch changed the kernel: generation %d -> %d, table %+v", gen, after, table)
			}
		})
	}
}
