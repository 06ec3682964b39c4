package nft

import (
	"context"
	"fmt"
	"log/slog"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"calico/internal/testutil"

	"github.com/google/nftables"
	"golang.org/x/sys/unix"
)

func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelInfo}))
}

// newKernelApplier returns an Applier working in a fresh namespace.
func newKernelApplier(t testing.TB) (*Applier, *testutil.NetNS) {
	ns := testutil.NewNetNS(t)
	a := New(testLogger(t), WithNetNS(int(ns.Handle())))
	t.Cleanup(func() { a.Close() })
	return a, ns
}

// readBack reads the generation and the table from the namespace.
func readBack(t testing.TB, ns *testutil.NetNS) (*Table, uint32) {
	t.Helper()
	r, err := dialReader(int(ns.Handle()), time.Now().Add(10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer r.close()
	gen, err := r.genID()
	if err != nil {
		t.Fatal(err)
	}
	tbl, err := r.readTable()
	if err != nil {
		t.Fatal(err)
	}
	return tbl, gen
}

// nftList is `nft list table inet calico` in the namespace, or "" when nft
// is not installed. Tests use it only to show more when they fail.
func nftList(ns *testutil.NetNS) string {
	if _, err := exec.LookPath("nft"); err != nil {
		return ""
	}
	out, _ := exec.Command("ip", "netns", "exec", ns.Name, "nft", "list", "table", "inet", TableName).CombinedOutput()
	return string(out)
}

// checkKernel asserts that the kernel's table is what rs renders to.
func checkKernel(t testing.TB, ns *testutil.NetNS, rs Ruleset, step string) {
	t.Helper()
	want, err := Render(rs)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := readBack(t, ns)
	if got == nil {
		t.Fatalf("%s: no table in the kernel", step)
	}
	if g, w := got.summary(), want.summary(); g != w {
		t.Fatalf("%s: kernel table differs from the desired one:\n%s\nnft says:\n%s", step, lineDiff(w, g), nftList(ns))
	}
}

// nftConn is a google/nftables connection into the namespace, for tests
// that tamper with the table by hand.
func nftConn(t testing.TB, ns *testutil.NetNS) *nftables.Conn {
	c, err := nftables.New(nftables.WithNetNSFd(int(ns.Handle())))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestPrivilegedApplyEachState(t *testing.T) {
	testutil.Privileged(t)
	ctx := context.Background()
	for _, s := range states {
		t.Run(s.name, func(t *testing.T) {
			a, ns := newKernelApplier(t)
			if err := a.Apply(ctx, s.rs); err != nil {
				t.Fatalf("Apply: %v\n", err)
			}
			checkKernel(t, ns, s.rs, "first apply")
			if testing.Verbose() {
				t.Log(nftList(ns))
			}
			_, gen := readBack(t, ns)
			if err := a.Apply(ctx, s.rs); err != nil {
				t.Fatal(err)
			}
			if _, again := readBack(t, ns); again != gen {
				t.Errorf("re-apply committed a transaction: generation %d -> %d", gen, again)
			}
			if a.last.changed() {
				t.Errorf("re-apply changed %+v", a.last)
			}
			// A fresh Applier (a restart) reads back and finds nothing to do.
			b := New(testLogger(t), WithNetNS(int(ns.Handle())))
			defer b.Close()
			if err := b.Apply(ctx, s.rs); err != nil {
				t.Fatal(err)
			}
			if _, again := readBack(t, ns); again != gen {
				t.Errorf("apply after restart committed a transaction: generation %d -> %d; %+v", gen, again, b.last)
			}
			if out := nftList(ns); out != "" && !strings.Contains(out, "table inet calico") {
				t.Errorf("nft cannot list the table:\n%s", out)
			}
		})
	}
}

// ruleHandles lists chain/handle/comment of every kernel rule.
func ruleHandles(t testing.TB, ns *testutil.NetNS) []string {
	t.Helper()
	r, err := dialReader(int(ns.Handle()), time.Now().Add(10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer r.close()
	rows, err := r.readRules()
	if err != nil {
		t.Fatal(err)
	}
	out := make([]string, len(rows))
	for i, row := range rows {
		out[i] = fmt.Sprintf("%s/%d/%s", row.chain, row.handle, row.comment)
	}
	return out
}

func TestPrivilegedReplay(t *testing.T) {
	testutil.Privileged(t)
	ctx := context.Background()
	for name, order := range orders() {
		t.Run(name, func(t *testing.T) {
			a, ns := newKernelApplier(t)
			for _, i := range order {
				s := states[i]
				if err := a.Apply(ctx, s.rs); err != nil {
					t.Fatalf("applying %q: %v", s.name, err)
				}
				checkKernel(t, ns, s.rs, "after applying "+s.name)
				if a.last.Recreated {
					t.Errorf("applying %q recreated the table", s.name)
				}
				handles := ruleHandles(t, ns)
				_, gen := readBack(t, ns)
				if err := a.Apply(ctx, s.rs); err != nil {
					t.Fatal(err)
				}
				if _, again := readBack(t, ns); again != gen || a.last.changed() || a.lastSource != "memory" {
					t.Fatalf("re-applying %q: generation %d -> %d, changed %+v, state from %s", s.name, gen, again, a.last, a.lastSource)
				}
				if again := ruleHandles(t, ns); !slices.Equal(handles, again) {
					t.Fatalf("re-applying %q changed rule handles:\n%s", s.name, lineDiff(strings.Join(handles, "\n"), strings.Join(again, "\n")))
				}
			}
		})
	}
}

// TestPrivilegedUnchangedRulesSurvive checks that a policy change rewrites
// that policy's chain alone: every other rule keeps its handle (and so
// its counter).
func TestPrivilegedUnchangedRulesSurvive(t *testing.T) {
	testutil.Privileged(t)
	ctx := context.Background()
	a, ns := newKernelApplier(t)
	base := big(50, 10)
	if err := a.Apply(ctx, base); err != nil {
		t.Fatal(err)
	}
	before := ruleHandles(t, ns)
	changed := big(50, 10)
	changed.Policies[3].Ingress[0].Dst.Ports = []PortRange{{8080, 8080}}
	if err := a.Apply(ctx, changed); err != nil {
		t.Fatal(err)
	}
	checkKernel(t, ns, changed, "after the change")
	after := ruleHandles(t, ns)
	for _, h := range before {
		if !strings.HasPrefix(h, "policy-3-in/") && !slices.Contains(after, h) {
			t.Errorf("rule %s was rewritten", h)
		}
	}
	if a.last != (Stats{ChainsFlushed: 1, RulesAdded: 5}) {
		t.Errorf("changed %+v", a.last)
	}
}

func TestPrivilegedDriftRepair(t *testing.T) {
	testutil.Privileged(t)
	ctx := context.Background()
	rs := states[2].rs // several endpoints sharing a path
	tests := []struct {
		name   string
		tamper func(c *nftables.Conn) error
		want   Stats
	}{
		{"table deleted", func(c *nftables.Conn) error {
			c.DelTable(calicoTable)
			return nil
		}, Stats{SetsAdded: 8, ChainsAdded: 13, RulesAdded: 37, ElemsAdded: 16}},
		{"chain flushed", func(c *nftables.Conn) error {
			c.FlushChain(&nftables.Chain{Table: calicoTable, Name: chainFromDispatch})
			return nil
		}, Stats{RulesAdded: 4}},
		{"set element deleted", func(c *nftables.Conn) error {
			s := kernelSet(SetIfaceIPv4, calicoTable)
			s.Name = setSrc4
			return c.SetDeleteElements(s, []nftables.SetElement{{Key: []byte(ifaceKey("cali2") + string(addr("10.65.0.2").AsSlice()))}})
		}, Stats{ElemsAdded: 1}},
		{"map element deleted", func(c *nftables.Conn) error {
			s := kernelSet(MapIfaceVerdict, calicoTable)
			s.Name = mapTo
			return c.SetDeleteElements(s, []nftables.SetElement{{Key: []byte(ifaceKey("cali1"))}})
		}, Stats{ElemsAdded: 1}},
		{"chain and set added", func(c *nftables.Conn) error {
			c.AddChain(&nftables.Chain{Table: calicoTable, Name: "intruder"})
			return c.AddSet(&nftables.Set{Table: calicoTable, Name: "intruder", KeyType: nftables.TypeInetService}, nil)
		}, Stats{ChainsDeleted: 1, SetsDeleted: 1}},
		{"rule added", func(c *nftables.Conn) error {
			c.AddRule(&nftables.Rule{Table: calicoTable, Chain: &nftables.Chain{Name: chainForward}, Exprs: vAccept.exprs(nil)})
			return nil
		}, Stats{ChainsFlushed: 1, RulesAdded: 4}},
		{"set of another type", func(c *nftables.Conn) error {
			c.DelTable(calicoTable)
			c.AddTable(calicoTable)
			return c.AddSet(&nftables.Set{Table: calicoTable, Name: mapTo, KeyType: nftables.TypeInetService}, nil)
		}, Stats{Recreated: true, SetsAdded: 8, ChainsAdded: 13, RulesAdded: 37, ElemsAdded: 16}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, ns := newKernelApplier(t)
			if err := a.Apply(ctx, rs); err != nil {
				t.Fatal(err)
			}
			c := nftConn(t, ns)
			if err := tt.tamper(c); err != nil {
				t.Fatal(err)
			}
			if err := c.Flush(); err != nil {
				t.Fatalf("tampering: %v", err)
			}
			if err := a.Apply(ctx, rs); err != nil {
				t.Fatal(err)
			}
			checkKernel(t, ns, rs, "after repair")
			if a.lastSource != "read-back" || a.last != tt.want {
				t.Errorf("repair from %s changed %+v, want %+v", a.lastSource, a.last, tt.want)
			}
		})
	}
}

// TestPrivilegedForeignTransaction checks that commits elsewhere in the
// namespace cost no read-back while the event socket can vouch for them,
// that one that touches our table does, and that other tables are left
// alone.
func TestPrivilegedForeignTransaction(t *testing.T) {
	testutil.Privileged(t)
	ctx := context.Background()
	a, ns := newKernelApplier(t)
	if err := a.Apply(ctx, states[1].rs); err != nil {
		t.Fatal(err)
	}
	c := nftConn(t, ns)
	other := &nftables.Table{Name: "other", Family: nftables.TableFamilyINet}
	commitElsewhere := func(chain string) {
		t.Helper()
		c.AddTable(other)
		c.AddChain(&nftables.Chain{Table: other, Name: chain})
		if err := c.Flush(); err != nil {
			t.Fatal(err)
		}
	}
	step := func(rs Ruleset, source string) {
		t.Helper()
		_, gen := readBack(t, ns)
		if err := a.Apply(ctx, rs); err != nil {
			t.Fatal(err)
		}
		checkKernel(t, ns, rs, "after a foreign commit")
		if a.lastSource != source {
			t.Errorf("state from %s, want %s", a.lastSource, source)
		}
		if _, next := readBack(t, ns); next != gen+1 {
			t.Errorf("generation %d -> %d, want one transaction", gen, next)
		}
	}

	// Nobody else has committed: no event socket, the generation alone
	// vouches.
	if a.mon != nil {
		t.Error("subscribed to nftables events before anyone else committed")
	}
	// A commit in another table costs one read-back, and subscribes;
	// then two more, and a change of ours.
	commitElsewhere("zero")
	step(states[2].rs, "read-back")
	if a.mon == nil {
		t.Error("not subscribed to nftables events after a commit elsewhere")
	}
	commitElsewhere("one")
	commitElsewhere("two")
	step(states[1].rs, "memory+events")
	step(states[2].rs, "memory")

	// A commit that touches our table.
	commitElsewhere("three")
	del := kernelSet(SetIPv4, calicoTable)
	del.Name = "net-b-v4"
	if err := c.SetDeleteElements(del, []nftables.SetElement{{Key: addr("10.65.0.2").AsSlice()}}); err != nil {
		t.Fatal(err)
	}
	if err := c.Flush(); err != nil {
		t.Fatal(err)
	}
	commitElsewhere("four")
	step(states[1].rs, "read-back")

	// Without the event socket (closed, or lost events) the generation
	// alone decides: a foreign commit costs a read-back, after which the
	// new socket vouches again.
	a.Close()
	commitElsewhere("five")
	step(states[2].rs, "read-back")
	commitElsewhere("six")
	step(states[1].rs, "memory+events")

	for _, name := range []string{"zero", "one", "two", "three", "four", "five", "six"} {
		if _, err := c.ListChain(other, name); err != nil {
			t.Errorf("the other table lost chain %s: %v", name, err)
		}
	}
}

// TestPrivilegedEventsExpire: the event socket stays open while others
// commit in the namespace and closes once they have not for eventsHold;
// a commit elsewhere after that costs one read-back again.
func TestPrivilegedEventsExpire(t *testing.T) {
	testutil.Privileged(t)
	ctx := context.Background()
	a, ns := newKernelApplier(t)
	a.eventsHold = 300 * time.Millisecond
	c := nftConn(t, ns)
	other := &nftables.Table{Name: "other", Family: nftables.TableFamilyINet}
	chains := 0
	commitElsewhere := func() {
		t.Helper()
		chains++
		c.AddTable(other)
		c.AddChain(&nftables.Chain{Table: other, Name: fmt.Sprint("c", chains)})
		if err := c.Flush(); err != nil {
			t.Fatal(err)
		}
	}
	step := func(rs Ruleset, source string, subscribed bool) {
		t.Helper()
		if err := a.Apply(ctx, rs); err != nil {
			t.Fatal(err)
		}
		checkKernel(t, ns, rs, "after "+source)
		if a.lastSource != source || (a.mon != nil) != subscribed {
			t.Errorf("state from %s, subscribed %v; want %s, %v", a.lastSource, a.mon != nil, source, subscribed)
		}
	}
	step(states[1].rs, "read-back", false)
	step(states[2].rs, "memory", false)
	commitElsewhere()
	step(states[1].rs, "read-back", true)
	commitElsewhere()
	step(states[2].rs, "memory+events", true)
	time.Sleep(a.eventsHold)
	step(states[1].rs, "memory", false)
	commitElsewhere()
	step(states[2].rs, "read-back", true)
}

// TestPrivilegedFailedTransactions walks the fallbacks: after a failure
// Apply retries from a read-back, then recreates the table; when all fail
// it returns the errors and the next Apply starts from a read-back.
func TestPrivilegedFailedTransactions(t *testing.T) {
	testutil.Privileged(t)
	ctx := context.Background()
	a, ns := newKernelApplier(t)
	if err := a.Apply(ctx, states[1].rs); err != nil {
		t.Fatal(err)
	}
	a.failSends = 1
	if err := a.Apply(ctx, states[2].rs); err != nil {
		t.Fatal(err)
	}
	if a.lastSource != "read-back" || a.last.Recreated {
		t.Errorf("after one failure: from %s, %+v", a.lastSource, a.last)
	}
	checkKernel(t, ns, states[2].rs, "after one failure")
	a.failSends = 2
	if err := a.Apply(ctx, states[3].rs); err != nil {
		t.Fatal(err)
	}
	if a.lastSource != "recreate" || !a.last.Recreated {
		t.Errorf("after two failures: from %s, %+v", a.lastSource, a.last)
	}
	checkKernel(t, ns, states[3].rs, "after two failures")
	a.failSends = 3
	err := a.Apply(ctx, states[4].rs)
	if err == nil || strings.Count(err.Error(), "injected failure") != 3 {
		t.Fatalf("after three failures: %v", err)
	}
	checkKernel(t, ns, states[3].rs, "after a failed Apply")
	if err := a.Apply(ctx, states[4].rs); err != nil {
		t.Fatal(err)
	}
	if a.lastSource != "read-back" {
		t.Errorf("after a failed Apply: from %s", a.lastSource)
	}
	checkKernel(t, ns, states[4].rs, "after recovery")
}

func TestPrivilegedCountersIdentity(t *testing.T) {
	testutil.Privileged(t)
	ctx := context.Background()
	a, ns := newKernelApplier(t)
	var got []Counter
	for _, s := range states {
		if err := a.Apply(ctx, s.rs); err != nil {
			t.Fatal(err)
		}
		cs, err := a.Counters(ctx)
		if err != nil {
			t.Fatal(err)
		}
		f := NewFake()
		if err := f.Apply(ctx, s.rs); err != nil {
			t.Fatal(err)
		}
		want, _ := f.Counters(ctx)
		if !slices.Equal(cs, want) {
			t.Errorf("%s: Counters = %v, want %v", s.name, cs, want)
		}
		got = cs
	}
	// A fresh Applier has no memory; names short enough for a chain name
	// still come out whole.
	b := New(testLogger(t), WithNetNS(int(ns.Handle())))
	defer b.Close()
	if err := b.Apply(ctx, states[5].rs); err != nil {
		t.Fatal(err)
	}
	c := New(testLogger(t), WithNetNS(int(ns.Handle())))
	cs, err := c.Counters(ctx)
	if err != nil || len(cs) == 0 || cs[0].Policy != "ports" {
		t.Errorf("counters without memory: %v, %v", cs, err)
	}
	_ = got
}

func TestPrivilegedRemove(t *testing.T) {
	testutil.Privileged(t)
	a, ns := newKernelApplier(t)
	if err := a.Remove(t.Context()); err != nil {
		t.Fatalf("removing a table that is not there: %v", err)
	}
	rs := states[len(states)-1].rs
	if err := a.Apply(t.Context(), rs); err != nil {
		t.Fatal(err)
	}
	if err := a.Remove(t.Context()); err != nil {
		t.Fatal(err)
	}
	if tbl, _ := readBack(t, ns); tbl != nil {
		t.Errorf("table still there after Remove:\n%s", nftList(ns))
	}
	// And the Applier programs it again afterwards.
	if err := a.Apply(t.Context(), rs); err != nil {
		t.Fatal(err)
	}
	checkKernel(t, ns, rs, "apply after remove")
}

// TestPrivilegedNewKindsChangeOnlyTheDifference makes one change of each
// new kind (ranges of interval sets, named ports, host endpoint stages)
// and checks that the transaction carries only it, that re-applying sends
// nothing and that a restart's read-back finds nothing to do.
func TestPrivilegedNewKindsChangeOnlyTheDifference(t *testing.T) {
	testutil.Privileged(t)
	ctx := context.Background()
	for _, c := range newKindChanges() {
		t.Run(c.name, func(t *testing.T) {
			a, ns := newKernelApplier(t)
			if err := a.Apply(ctx, stagesBase()); err != nil {
				t.Fatal(err)
			}
			to := stagesBase()
			c.change(&to)
			if err := a.Apply(ctx, to); err != nil {
				t.Fatal(err)
			}
			checkKernel(t, ns, to, "after the change")
			if a.last != c.want {
				t.Errorf("changed %+v, want %+v", a.last, c.want)
			}
			_, gen := readBack(t, ns)
			if err := a.Apply(ctx, to); err != nil {
				t.Fatal(err)
			}
			b := New(testLogger(t), WithNetNS(int(ns.Handle())))
			defer b.Close()
			if err := b.Apply(ctx, to); err != nil {
				t.Fatal(err)
			}
			if _, again := readBack(t, ns); again != gen || a.last.changed() || b.last.changed() {
				t.Errorf("re-applying: generation %d -> %d, changed %+v, after a restart %+v", gen, again, a.last, b.last)
			}
		})
	}
}

// TestPrivilegedIntervalDriftRepair deletes half of a range of an interval
// set by hand: the read-back sees a lone end, or a start without its end
// (a range to the top), and the repair deletes it and adds the range
// again.
func TestPrivilegedIntervalDriftRepair(t *testing.T) {
	testutil.Privileged(t)
	ctx := context.Background()
	rs := stagesBase()
	for _, tc := range []struct {
		name       string
		elem       nftables.SetElement
		recreateOK bool
	}{
		{"start deleted", nftables.SetElement{Key: addr("10.2.0.0").AsSlice()}, true},
		{"end deleted", nftables.SetElement{Key: addr("10.2.1.0").AsSlice(), IntervalEnd: true}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, ns := newKernelApplier(t)
			if err := a.Apply(ctx, rs); err != nil {
				t.Fatal(err)
			}
			c := nftConn(t, ns)
			s := kernelSet(SetIPv4Net, calicoTable)
			s.Name = "nets-n4"
			if err := c.SetDeleteElements(s, []nftables.SetElement{tc.elem}); err != nil {
				t.Fatal(err)
			}
			if err := c.Flush(); err != nil {
				t.Fatalf("tampering: %v", err)
			}
			if err := a.Apply(ctx, rs); err != nil {
				t.Fatal(err)
			}
			checkKernel(t, ns, rs, "after repair")
			want := Stats{ElemsAdded: 1, ElemsDeleted: 1}
			if tc.recreateOK && a.lastSource == "recreate" && a.last.Recreated {
				// Linux 6.18 refuses (ENOENT) the deletion of the end
				// the read-back found alone after its start was deleted;
				// the applier then recreates the table, which
				// checkKernel has found right (docs/notes.md).
				t.Logf("the kernel (%s) refused the read-back's repair; the table was recreated", kernelRelease(t))
				return
			}
			if a.lastSource != "read-back" || a.last != want {
				t.Errorf("repair from %s changed %+v, want %+v", a.lastSource, a.last, want)
			}
		})
	}
}

// kernelRelease is the running kernel's release (uname -r).
func kernelRelease(t *testing.T) string {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		t.Fatal(err)
	}
	return unix.ByteSliceToString(u.Release[:])
}

// TestPrivilegedPrime: an Applier primed with the kernel's table (a node
// restarted) applies the same ruleset from memory, sending nothing; one
// primed before a commit elsewhere reads the table back; a namespace
// without our table primes nothing.
func TestPrivilegedPrime(t *testing.T) {
	testutil.Privileged(t)
	ctx := context.Background()
	a, ns := newKernelApplier(t)
	if err := a.Apply(ctx, states[1].rs); err != nil {
		t.Fatal(err)
	}
	restarted := func() *Applier {
		b := New(testLogger(t), WithNetNS(int(ns.Handle())))
		t.Cleanup(func() { b.Close() })
		if err := b.Prime(ctx); err != nil {
			t.Fatal(err)
		}
		return b
	}

	b := restarted()
	if b.mem == nil {
		t.Fatal("primed with nothing, though the table is there")
	}
	_, gen := readBack(t, ns)
	if err := b.Apply(ctx, states[1].rs); err != nil {
		t.Fatal(err)
	}
	if _, again := readBack(t, ns); again != gen || b.lastSource != "memory" || b.last.changed() {
		t.Errorf("the same ruleset after priming: generation %d -> %d, state from %s, changed %+v; want nothing sent, from memory", gen, again, b.lastSource, b.last)
	}
	checkKernel(t, ns, states[1].rs, "after priming")

	c := restarted()
	conn := nftConn(t, ns)
	conn.AddTable(&nftables.Table{Name: "other", Family: nftables.TableFamilyINet})
	if err := conn.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := c.Apply(ctx, states[2].rs); err != nil {
		t.Fatal(err)
	}
	if c.lastSource != "read-back" {
		t.Errorf("a commit elsewhere after priming: state from %s, want read-back", c.lastSource)
	}
	checkKernel(t, ns, states[2].rs, "a commit elsewhere after priming")

	if err := a.Remove(ctx); err != nil {
		t.Fatal(err)
	}
	if d := restarted(); d.mem != nil {
		t.Error("primed with a table that is not there")
	}
}
