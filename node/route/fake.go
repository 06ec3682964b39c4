package route

import (
	"errors"
	"net/netip"
	"sync"
	"time"
)

// Fake is an in-memory Table for tests of the code that drives it.
type Fake struct {
	mu     sync.Mutex
	routes map[netip.Prefix]Route
	// Ifaces are the interfaces that exist; a device route to another is
	// refused, as the kernel would.
	Ifaces   map[string]bool
	Applies  int
	linked   map[string]int
	failNext bool
}

var _ interface {
	Apply([]Route) error
	Current() ([]Route, error)
	LinkChanged(string)
	Lists() (int64, time.Duration)
} = (*Fake)(nil)

// NewFake returns an empty Fake in which every interface exists.
func NewFake() *Fake { return &Fake{routes: map[netip.Prefix]Route{}} }

// LinkChanged counts the interface changes reported (Table's looks for
// the interface at once).
func (f *Fake) LinkChanged(name string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.linked == nil {
		f.linked = map[string]int{}
	}
	f.linked[name]++
}

// LinkChanges is how often LinkChanged reported an interface.
func (f *Fake) LinkChanges(name string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.linked[name]
}

// FailNext makes the next Apply fail without changing anything.
func (f *Fake) FailNext() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.failNext = true
}

// Apply has Table.Apply's semantics.
func (f *Fake) Apply(want []Route) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.Applies++
	if f.failNext {
		f.failNext = false
		return errors.New("fake: injected failure")
	}
	want = normalize(want)
	keep := map[netip.Prefix]bool{}
	var missing []Route
	for _, r := range want {
		keep[r.Dst] = true
		if r.Iface != "" && f.Ifaces != nil && !f.Ifaces[r.Iface] {
			missing = append(missing, r) // it waits, as Table's
			continue
		}
		f.routes[r.Dst] = r
	}
	for dst := range f.routes {
		if !keep[dst] {
			delete(f.routes, dst)
		}
	}
	if len(missing) > 0 {
		return &Failed{Missing: missing}
	}
	return nil
}

// Close has nothing to release.
func (f *Fake) Close() {}

// Lists counts every Apply as a read of the kernel's routes, taking no
// time.
func (f *Fake) Lists() (int64, time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return int64(f.Applies), 0
}

// String dumps the routes as Dump does.
func (f *Fake) String() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	rs := make([]Route, 0, len(f.routes))
	for _, r := range f.routes {
		rs = append(rs, r)
	}
	return Dump(rs)
}

// Current lists the routes, as Table.Current does.
func (f *Fake) Current() ([]Route, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	rs := make([]Route, 0, len(f.routes))
	for _, r := range f.routes {
		rs = append(rs, r)
	}
	return normalize(rs), nil
}
