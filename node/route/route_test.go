package route

import (
	"errors"
	"math/rand/v2"
	"net/netip"
	"slices"
	"testing"
)

func p(s string) netip.Prefix { return netip.MustParsePrefix(s) }
func a(s string) netip.Addr   { return netip.MustParseAddr(s) }

// states is a named list of desired route sets that the contract tests
// replay in several orders.
var states = []struct {
	name string
	want []Route
}{
	{"empty", nil},
	{"one workload", []Route{{Dst: p("10.65.0.1/32"), Iface: "cali1"}, {Dst: p("fd00:65::1/128"), Iface: "cali1"}}},
	{"blocks and two workloads", []Route{
		{Dst: p("10.65.0.0/26"), Blackhole: true},
		{Dst: p("fd00:65::/122"), Blackhole: true},
		{Dst: p("10.65.0.1/32"), Iface: "cali1"},
		{Dst: p("10.65.0.2/32"), Iface: "cali2"},
	}},
	{"moved workload and a learned route", []Route{
		{Dst: p("10.65.0.0/26"), Blackhole: true},
		{Dst: p("10.65.0.1/32"), Iface: "cali2"},
		{Dst: p("10.65.1.0/26"), Via: []netip.Addr{a("10.99.0.3")}},
	}},
	{"ECMP", []Route{
		{Dst: p("10.65.2.0/26"), Via: []netip.Addr{a("10.99.0.4"), a("10.99.0.3")}},
	}},
}

type applier interface {
	Apply([]Route) error
}

// testStates replays the states in order, reversed and shuffled, and
// checks the dump after each step and that a repeat changes nothing.
func testStates(t *testing.T, r applier, dump func() string) {
	t.Helper()
	order := make([]int, len(states))
	for i := range order {
		order[i] = i
	}
	rev := slices.Clone(order)
	slices.Reverse(rev)
	shuf := slices.Clone(order)
	rand.Shuffle(len(shuf), func(i, j int) { shuf[i], shuf[j] = shuf[j], shuf[i] })
	for _, seq := range [][]int{order, rev, shuf, shuf} {
		for _, i := range seq {
			st := states[i]
			if err := r.Apply(st.want); err != nil {
				t.Fatalf("Apply(%s): %v", st.name, err)
			}
			if got, want := dump(), Dump(st.want); got != want {
				t.Fatalf("after Apply(%s):\n%s\nwant:\n%s", st.name, got, want)
			}
			if err := r.Apply(st.want); err != nil || dump() != Dump(st.want) {
				t.Fatalf("repeating Apply(%s) changed something: %v", st.name, err)
			}
		}
	}
}

func TestFakeStates(t *testing.T) {
	f := NewFake()
	testStates(t, f, f.String)
}

func TestFakeMissingInterface(t *testing.T) {
	f := NewFake()
	f.Ifaces = map[string]bool{"cali1": true}
	err := f.Apply([]Route{{Dst: p("10.65.0.1/32"), Iface: "cali1"}, {Dst: p("10.65.0.2/32"), Iface: "cali9"}})
	var failed *Failed
	if !errors.As(err, &failed) || len(failed.Missing) != 1 || failed.Unwrap() != nil {
		t.Fatalf("Apply = %v; want the route to the missing interface waiting", err)
	}
	if got := f.String(); got != "10.65.0.1/32 dev cali1\n" {
		t.Errorf("the good route was not programmed: %q", got)
	}
}
