// Package route keeps the host's routes of our own protocol number equal to
// a desired list: a /32 or /128 towards each local workload's interface, a
// blackhole for each of the host's address blocks, and later the routes
// learned by BGP. It owns every route with protocol Protocol in the main
// table and nothing else.
package route

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Protocol marks our routes (rtm_protocol). 80 is not assigned to any
// routing daemon in /etc/iproute2/rt_protos.
const Protocol = 80

// Route is one desired route.
type Route struct {
	Dst netip.Prefix
	// Iface is the device of a direct route to a local workload.
	Iface string
	// Blackhole drops traffic for Dst (an address block of this host).
	Blackhole bool
	// Via are next hops (ECMP when there are several).
	Via []netip.Addr
}

func (r Route) String() string {
	switch {
	case r.Blackhole:
		return "blackhole " + r.Dst.String()
	case r.Iface != "":
		return r.Dst.String() + " dev " + r.Iface
	}
	via := make([]string, len(r.Via))
	for i, v := range r.Via {
		via[i] = v.String()
	}
	return r.Dst.String() + " via " + strings.Join(via, ",")
}

func (r Route) equal(o Route) bool {
	return r.Dst == o.Dst && r.Iface == o.Iface && r.Blackhole == o.Blackhole && slices.Equal(r.Via, o.Via)
}

// Table programs routes through netlink in the network namespace its
// handle was opened in.
type Table struct {
	h *netlink.Handle
	// dump reads the routes back, with strict checking: the kernel
	// itself keeps to the table and protocol asked for; without it a
	// read-back got every route of the host (each interface's IPv6
	// link-local ones too) for the library to drop. Kernels before 4.20
	// do not have it and filtering stays the library's.
	dump *netlink.Handle
	// back and ask are ReadBehind's, so that its reads never wait for
	// Apply's sockets nor Apply for them: back lists (strict, like
	// dump), ask asks for next hops' gateways (not strict: the kernel
	// refuses an IPv6 route lookup with strict checking on).
	back  *netlink.Handle
	ask   *netlink.Handle
	links *linkNamer
	log   *slog.Logger
	// ReadBack is how long Apply may trust its memory of what it
	// programmed before reading the kernel again; a route someone else
	// removed comes back within about that long. ReadBehind takes it
	// when it starts.
	ReadBack time.Duration
	// memMu guards mem, memAt and written, which ReadBehind reads and
	// renews beside Apply.
	memMu sync.Mutex
	// mem is what the kernel held after the last successful Apply, known
	// to be so at memAt; nil when unknown.
	mem   map[netip.Prefix]Route
	memAt time.Time
	// written are the destinations Apply changed in the kernel while
	// ReadBehind lists (nil when it does not): the listing vouches for
	// the others only.
	written map[netip.Prefix]bool
	// waiting are interfaces that did not exist, with when to look again:
	// a route through one waits, looked for with back-off.
	waiting map[string]*wait
	// linked are interfaces the kernel reported since the last Apply
	// (LinkChanged), under linkMu.
	linkMu sync.Mutex
	linked map[string]bool
	// lists and listNanos count the reads of the kernel's routes and
	// their time (Lists), for felix_route_table_list_seconds.
	lists, listNanos atomic.Int64
	// hops are the gateways the kernel reaches the next hops of the
	// last Apply through (resolve), under hopMu, asked of the kernel at
	// about hopsAt: again by ReadBehind once half of ReadBack old, by
	// resolve once ReadBack old. asked counts resolve's questions to the
	// kernel, for tests.
	hopMu  sync.Mutex
	hops   map[netip.Addr]netip.Addr
	hopsAt time.Time
	asked  int
	// hopsGen counts the refreshes that found a gateway moved (under
	// hopMu).
	hopsGen uint64
	// same is the input of the last Apply that programmed all of it,
	// resolved at hopsGen sameHops (sameOK: there is one): an Apply of
	// an equal input while the memory and the gateways are trusted and
	// unchanged has nothing to do. full counts the Applies that did not
	// stop there, for tests.
	same     []Route
	sameHops uint64
	sameOK   bool
	full     int
}

// Lists says how many times the table read the kernel's routes and links,
// and how long that took in all; safe from any goroutine.
func (t *Table) Lists() (int64, time.Duration) {
	return t.lists.Load(), time.Duration(t.listNanos.Load())
}

// wait is the back-off of a missing interface.
type wait struct {
	next  time.Time
	delay time.Duration
}

// New opens a Table in the calling thread's network namespace.
func New(log *slog.Logger) (*Table, error) {
	h, err := netlink.NewHandle(unix.NETLINK_ROUTE)
	if err != nil {
		return nil, err
	}
	t := &Table{h: h, log: log.With("component", "routes"), ReadBack: 5 * time.Second}
	for _, d := range []**netlink.Handle{&t.dump, &t.back, &t.ask} {
		if *d, err = netlink.NewHandle(unix.NETLINK_ROUTE); err != nil {
			t.Close()
			return nil, err
		}
	}
	_ = t.dump.SetStrictCheck(true)
	_ = t.back.SetStrictCheck(true)
	if t.links, err = newLinkNamer(); err != nil {
		t.Close()
		return nil, err
	}
	return t, nil
}

// Close releases the sockets.
func (t *Table) Close() {
	for _, h := range []*netlink.Handle{t.h, t.dump, t.back, t.ask} {
		if h != nil {
			h.Close()
		}
	}
	if t.links != nil {
		t.links.close()
	}
}

// Apply makes our routes in the kernel equal to want: it adds or replaces
// what differs and deletes ours that are not wanted. It may be called again
// with the same input, which changes nothing. A route that cannot be
// programmed (its interface is not there yet) does not stop the others; the
// errors are joined.
func (t *Table) Apply(want []Route) error {
	start := time.Now()
	t.takeLinks()
	if t.unchanged(want, start) {
		return nil
	}
	t.full++
	input := want
	t.sameOK = false
	t.hopMu.Lock()
	hopsGen := t.hopsGen
	t.hopMu.Unlock()
	t.memMu.Lock()
	have, at := t.mem, t.memAt
	t.mem = nil // unknown until this Apply is known to have succeeded
	t.memMu.Unlock()
	if have == nil || start.Sub(at) >= t.ReadBack {
		var err error
		if have, err = t.list(t.dump); err != nil {
			return err
		}
		at = start
	}
	want = normalize(t.resolve(want))
	wantBy := make(map[netip.Prefix]Route, len(want))
	for _, r := range want {
		wantBy[r.Dst] = r
	}
	var errs []error
	var failed []netip.Prefix
	var missing []Route
	added, deleted := 0, 0
	// Add before delete, so a moved route never leaves a gap.
	for _, r := range want {
		if h, ok := have[r.Dst]; ok && h.equal(r) {
			continue
		}
		switch err := t.program(r, start); {
		case errors.Is(err, errNoLink):
			missing = append(missing, r)
		case err != nil:
			errs = append(errs, fmt.Errorf("programming route %s: %w", r, err))
			failed = append(failed, r.Dst)
		default:
			added++
		}
	}
	for dst, r := range have {
		if _, ok := wantBy[dst]; ok {
			continue
		}
		t.wrote(dst)
		if err := t.h.RouteDel(t.deletion(r)); err != nil && !errors.Is(err, unix.ESRCH) {
			errs = append(errs, fmt.Errorf("deleting route %s: %w", r, err))
			continue
		}
		t.log.Debug("route deleted", "route", r.String())
		deleted++
	}
	if added+deleted > 0 {
		t.log.Info("applied routes", "added", added, "deleted", deleted, "took", time.Since(start).Round(time.Microsecond))
	}
	if len(errs) > 0 {
		return &Failed{Dsts: failed, Missing: missing, err: errors.Join(errs...)}
	}
	for _, r := range missing {
		// Not programmed: the kernel keeps what it had for it, if
		// anything (ReadBehind compares the memory with the kernel).
		if h, ok := have[r.Dst]; ok {
			wantBy[r.Dst] = h
		} else {
			delete(wantBy, r.Dst)
		}
	}
	t.memMu.Lock()
	t.mem, t.memAt = wantBy, at
	t.memMu.Unlock()
	if len(missing) > 0 {
		return &Failed{Missing: missing}
	}
	t.same, t.sameHops, t.sameOK = cloneRoutes(t.same[:0], input), hopsGen, true
	return nil
}

// unchanged says whether want is the input of the last Apply, which
// programmed all of it, and nothing since calls for a look: the memory
// of the kernel is there (no drift found, no interface changed) and
// younger than ReadBack, and so are the gateways, none found moved. A
// pass of the agent gives the same routes unless something routed
// changed: at a thousand hosts, sorting and comparing its 2,000 routes
// took a few milliseconds of every pass.
func (t *Table) unchanged(want []Route, now time.Time) bool {
	if !t.sameOK || !slices.EqualFunc(want, t.same, Route.equal) {
		return false
	}
	t.memMu.Lock()
	trusted := t.mem != nil && now.Sub(t.memAt) < t.ReadBack
	t.memMu.Unlock()
	t.hopMu.Lock()
	defer t.hopMu.Unlock()
	return trusted && t.hopsGen == t.sameHops && (len(t.hops) == 0 || now.Sub(t.hopsAt) < t.ReadBack)
}

// cloneRoutes appends copies of rs, next hops and all, to dst.
func cloneRoutes(dst, rs []Route) []Route {
	for _, r := range rs {
		r.Via = slices.Clone(r.Via)
		dst = append(dst, r)
	}
	return dst
}

// program adds or replaces one route. A route through an interface that
// is not there is errNoLink: it waits, and the interface is looked for
// again after a back-off.
func (t *Table) program(r Route, now time.Time) error {
	if w := t.waiting[r.Iface]; w != nil && now.Before(w.next) {
		return errNoLink
	}
	nr, err := t.toNetlink(r)
	if errors.Is(err, errNoLink) {
		t.wait(r.Iface, now)
		return err
	}
	delete(t.waiting, r.Iface)
	if err == nil {
		t.wrote(r.Dst)
		err = t.h.RouteReplace(nr)
	}
	if err == nil {
		t.log.Debug("route programmed", "route", r.String())
	}
	return err
}

// wrote notes a change Apply is about to make to the kernel's route to
// dst, for a listing of ReadBehind's under way.
func (t *Table) wrote(dst netip.Prefix) {
	t.memMu.Lock()
	if t.written != nil {
		t.written[dst] = true
	}
	t.memMu.Unlock()
}

// ReadBehind reads the kernel's routes back beside Apply until ctx ends,
// so that Apply need not: while the kernel holds what Apply left, Apply
// trusts its memory. It also asks again for the gateways of the next
// hops that resolve remembers. Listing a thousand routes took up to 20
// ms and 5.5 MB of garbage, which one pass in every ReadBack paid, a
// policy's change or not. When the routes drifted (someone else deleted
// or replaced one of ours), the next Apply reads them itself and
// repairs; when a gateway moved, it programs the routes through the new
// one; drifted is called to ask for that pass soon. Without ReadBehind,
// Apply reads the kernel once its memory is ReadBack old.
func (t *Table) ReadBehind(ctx context.Context, drifted func()) {
	every := t.ReadBack
	if every <= 0 {
		return // Apply reads the kernel every time
	}
	tick := time.NewTicker(max(every/4, time.Millisecond))
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		moved := t.refreshHops(every)
		if moved {
			t.log.Info("the gateway to a next hop moved; programming the routes again")
		}
		d, err := t.vouch(every)
		if err != nil {
			t.log.Debug("reading the routes back", "err", err)
		}
		if d {
			t.log.Info("the kernel's routes differ from those programmed; programming them again")
		}
		if moved || d {
			drifted()
		}
	}
}

// vouch reads the kernel's routes when Apply's memory of them is half
// of readBack old. When they are what Apply left, the memory is renewed
// from when the listing began; when they differ it is forgotten
// (drifted). A destination Apply changed during the listing is left out
// of the comparison (the memory has it as Apply wrote it); a listing
// during a pass, or after an interface changed, proves nothing either
// way.
func (t *Table) vouch(readBack time.Duration) (drifted bool, err error) {
	start, ok := t.vouchBegin(readBack)
	if !ok {
		return false, nil
	}
	got, err := t.list(t.back)
	return t.vouchEnd(start, got, err)
}

// vouchBegin says whether the memory is due for a listing, and if so
// starts noting Apply's writes.
func (t *Table) vouchBegin(readBack time.Duration) (time.Time, bool) {
	t.memMu.Lock()
	defer t.memMu.Unlock()
	start := time.Now()
	if t.mem == nil || start.Sub(t.memAt) < readBack/2 {
		return start, false // Apply reads or has just read; or fresh
	}
	t.written = map[netip.Prefix]bool{}
	return start, true
}

// vouchEnd compares the listing begun at start with the memory.
func (t *Table) vouchEnd(start time.Time, got map[netip.Prefix]Route, err error) (drifted bool, _ error) {
	t.linkMu.Lock()
	linked := len(t.linked)
	t.linkMu.Unlock()
	t.memMu.Lock()
	defer t.memMu.Unlock()
	written := t.written
	t.written = nil
	switch {
	case err != nil:
		return false, err
	case t.mem == nil || linked > 0:
		// A pass is under way or failed, or the next reads the routes
		// itself (an interface changed: the kernel drops the routes
		// through one that goes).
		return false, nil
	case sameExcept(got, t.mem, written):
		if start.After(t.memAt) {
			t.memAt = start
		}
		return false, nil
	}
	t.mem = nil
	return true, nil
}

// sameExcept says whether a and b hold the same routes, but for the
// destinations in skip.
func sameExcept(a, b map[netip.Prefix]Route, skip map[netip.Prefix]bool) bool {
	for dst, r := range a {
		if o, ok := b[dst]; !skip[dst] && (!ok || !o.equal(r)) {
			return false
		}
	}
	for dst := range b {
		if _, ok := a[dst]; !ok && !skip[dst] {
			return false
		}
	}
	return true
}

// LinkChanged tells the table that the kernel reported a change of an
// interface (it appeared, went, or changed): the next Apply reads the
// kernel's routes again rather than trust its memory (the kernel drops
// the routes through an interface that goes, and a tap recreated with
// the same name is a new interface), and looks at once for the interface
// if a route waits for it. It may be called from any goroutine.
func (t *Table) LinkChanged(name string) {
	t.linkMu.Lock()
	defer t.linkMu.Unlock()
	if t.linked == nil {
		t.linked = map[string]bool{}
	}
	t.linked[name] = true
}

// takeLinks acts on the interfaces reported since the last Apply.
func (t *Table) takeLinks() {
	t.linkMu.Lock()
	linked := t.linked
	t.linked = nil
	t.linkMu.Unlock()
	if len(linked) == 0 {
		return
	}
	t.memMu.Lock()
	t.mem = nil
	t.memMu.Unlock()
	for name := range linked {
		delete(t.waiting, name)
	}
}

// wait backs off looking for a missing interface: 1 s, doubling to a
// minute.
func (t *Table) wait(iface string, now time.Time) {
	if t.waiting == nil {
		t.waiting = map[string]*wait{}
	}
	w := t.waiting[iface]
	if w == nil {
		w = &wait{delay: time.Second / 2}
		t.waiting[iface] = w
	}
	w.delay = min(2*w.delay, time.Minute)
	w.next = now.Add(w.delay)
}

var errNoLink = errors.New("no such interface")

// Failed is Apply's error: Dsts are the routes that could not be
// programmed (the rest were), Missing those that wait for their
// interface to appear (looked for again with back-off).
type Failed struct {
	Dsts    []netip.Prefix
	Missing []Route
	err     error
}

func (f *Failed) Error() string {
	if f.err == nil {
		return fmt.Sprintf("%d routes wait for their interface", len(f.Missing))
	}
	return f.err.Error()
}
func (f *Failed) Unwrap() error { return f.err }

// resolve replaces next hops that are not on a directly connected network
// by the gateway the kernel would use to reach them, as BIRD's "gateway
// recursive" does: a route reflector passes on next hops in other racks,
// and the kernel takes a gateway only on a connected network. The
// answers are remembered: asking the kernel for each of a thousand hosts'
// next hops took about 70 ms of every pass. ReadBehind asks again beside
// the loop and reports a gateway that moved.
func (t *Table) resolve(want []Route) []Route {
	t.hopMu.Lock()
	known, at := t.hops, t.hopsAt
	t.hopMu.Unlock()
	snapped := at
	if now := time.Now(); now.Sub(at) >= t.ReadBack {
		known, at = nil, now // not asked again by ReadBehind: ask now
	}
	used := make(map[netip.Addr]netip.Addr, len(known))
	asked := map[netip.Addr]bool{}
	out := make([]Route, 0, len(want))
	for _, r := range want {
		if len(r.Via) == 0 {
			out = append(out, r)
			continue
		}
		var via []netip.Addr
		for _, v := range r.Via {
			g, ok := used[v]
			if !ok && !asked[v] {
				if g, ok = known[v]; !ok {
					t.asked++
					asked[v] = true
					g, ok = gateway(t.h, v)
				}
				if ok {
					used[v] = g
				}
			}
			if !ok {
				g = v // the kernel had no answer: as given, asked again next time
			}
			if !slices.Contains(via, g) {
				via = append(via, g)
			}
		}
		r.Via = via
		out = append(out, r)
	}
	t.hopMu.Lock()
	if !t.hopsAt.Equal(snapped) {
		// ReadBehind asked again meanwhile, and asks for another pass
		// if a gateway moved: that pass takes its answers, except for
		// the next hops this one asked itself, which are newer.
		for v := range used {
			if g, ok := t.hops[v]; ok && !asked[v] {
				used[v] = g
			}
		}
		at = t.hopsAt
	}
	t.hops, t.hopsAt = used, at // only the next hops in use are remembered
	t.hopMu.Unlock()
	return out
}

// gateway is the gateway through which the kernel reaches v, or v itself
// when v is on a connected network; false when the kernel has no answer
// (no route to v: programming a route through it then fails with the
// kernel's error).
func gateway(h *netlink.Handle, v netip.Addr) (netip.Addr, bool) {
	rs, err := h.RouteGet(v.AsSlice())
	if err != nil || len(rs) == 0 {
		return v, false
	}
	if rs[0].Gw != nil {
		if gw, ok := netip.AddrFromSlice(rs[0].Gw); ok {
			return gw.Unmap(), true
		}
	}
	return v, true
}

// refreshHops asks the kernel again for the gateway of each next hop
// resolve remembers, once they are half of readBack old, and says
// whether one moved (the remembered one is then the new one). A next hop
// the kernel has no answer for now is forgotten: the next pass asks
// again.
func (t *Table) refreshHops(readBack time.Duration) (moved bool) {
	t.hopMu.Lock()
	known, at := t.hops, t.hopsAt
	t.hopMu.Unlock()
	start := time.Now()
	if len(known) == 0 || start.Sub(at) < readBack/2 {
		return false
	}
	fresh := make(map[netip.Addr]netip.Addr, len(known))
	for v := range known {
		if g, ok := gateway(t.ask, v); ok {
			fresh[v] = g
		}
	}
	t.hopMu.Lock()
	defer t.hopMu.Unlock()
	if !maps.Equal(t.hops, known) {
		return false // a pass changed them meanwhile; asked again later
	}
	t.hops, t.hopsAt = fresh, start
	if maps.Equal(fresh, known) {
		return false
	}
	t.hopsGen++
	return true
}

// Current reads our routes as the kernel holds them now.
func (t *Table) Current() ([]Route, error) {
	m, err := t.list(t.dump)
	if err != nil {
		return nil, err
	}
	out := make([]Route, 0, len(m))
	for _, r := range m {
		out = append(out, r)
	}
	return normalize(out), nil
}

// list reads our routes, both families, from the main table, through h
// (t.dump or t.back).
func (t *Table) list(h *netlink.Handle) (map[netip.Prefix]Route, error) {
	start := time.Now()
	defer func() {
		t.lists.Add(1)
		t.listNanos.Add(int64(time.Since(start)))
	}()
	var all []netlink.Route
	for _, family := range []int{netlink.FAMILY_V4, netlink.FAMILY_V6} {
		rs, err := h.RouteListFiltered(family, &netlink.Route{Protocol: Protocol, Table: unix.RT_TABLE_MAIN},
			netlink.RT_FILTER_PROTOCOL|netlink.RT_FILTER_TABLE)
		if errors.Is(err, unix.ENOENT) {
			continue // strict checking: the family has no main table yet, so no routes
		}
		if err != nil {
			return nil, fmt.Errorf("listing routes: %w", err)
		}
		all = append(all, rs...)
	}
	var indexes []int
	for _, nr := range all {
		if nr.LinkIndex > 0 && nr.Type != unix.RTN_BLACKHOLE && nr.Gw == nil && len(nr.MultiPath) == 0 {
			indexes = append(indexes, nr.LinkIndex)
		}
	}
	names, err := t.links.names(indexes)
	if err != nil {
		return nil, fmt.Errorf("listing links: %w", err)
	}
	out := make(map[netip.Prefix]Route, len(all))
	for _, nr := range all {
		if r, ok := fromNetlink(nr, names); ok {
			out[r.Dst] = r
		}
	}
	return out, nil
}

func (t *Table) toNetlink(r Route) (*netlink.Route, error) {
	nr := &netlink.Route{Dst: ipNet(r.Dst), Protocol: Protocol, Table: unix.RT_TABLE_MAIN}
	switch {
	case r.Blackhole:
		nr.Type = unix.RTN_BLACKHOLE
	case r.Iface != "":
		link, err := t.h.LinkByName(r.Iface)
		var notFound netlink.LinkNotFoundError
		if errors.As(err, &notFound) {
			return nil, fmt.Errorf("finding %s: %w", r.Iface, errNoLink)
		}
		if err != nil {
			return nil, fmt.Errorf("finding %s: %w", r.Iface, err)
		}
		nr.LinkIndex = link.Attrs().Index
		nr.Scope = netlink.SCOPE_LINK
		t.links.learn(nr.LinkIndex, r.Iface)
	case len(r.Via) == 1:
		nr.Gw = r.Via[0].AsSlice()
	default:
		for _, v := range r.Via {
			nr.MultiPath = append(nr.MultiPath, &netlink.NexthopInfo{Gw: v.AsSlice()})
		}
	}
	return nr, nil
}

func fromNetlink(nr netlink.Route, names map[int]string) (Route, bool) {
	if nr.Dst == nil {
		return Route{}, false
	}
	a, _ := netip.AddrFromSlice(nr.Dst.IP)
	ones, _ := nr.Dst.Mask.Size()
	r := Route{Dst: netip.PrefixFrom(a.Unmap(), ones)}
	switch {
	case nr.Type == unix.RTN_BLACKHOLE:
		r.Blackhole = true
	case nr.Gw != nil:
		g, _ := netip.AddrFromSlice(nr.Gw)
		r.Via = []netip.Addr{g.Unmap()}
	case len(nr.MultiPath) > 0:
		for _, nh := range nr.MultiPath {
			g, _ := netip.AddrFromSlice(nh.Gw)
			r.Via = append(r.Via, g.Unmap())
		}
		slices.SortFunc(r.Via, netip.Addr.Compare)
	default:
		r.Iface = names[nr.LinkIndex]
	}
	return r, true
}

func (t *Table) deletion(r Route) *netlink.Route {
	// The library copies Scope into the request; "nowhere" matches a
	// route of any scope.
	nr := &netlink.Route{Dst: ipNet(r.Dst), Protocol: Protocol, Table: unix.RT_TABLE_MAIN, Scope: netlink.SCOPE_NOWHERE}
	if r.Blackhole {
		nr.Type = unix.RTN_BLACKHOLE
	}
	return nr
}

// normalize sorts routes by destination and each route's next hops, so
// that equal routes compare equal.
func normalize(rs []Route) []Route {
	out := slices.Clone(rs)
	for i := range out {
		out[i].Via = slices.Clone(out[i].Via)
		slices.SortFunc(out[i].Via, netip.Addr.Compare)
	}
	slices.SortFunc(out, func(a, b Route) int {
		return cmp.Or(a.Dst.Addr().Compare(b.Dst.Addr()), cmp.Compare(a.Dst.Bits(), b.Dst.Bits()))
	})
	return out
}

// Dump renders routes one per line, sorted: the form golden tests compare.
func Dump(rs []Route) string {
	var b strings.Builder
	for _, r := range normalize(rs) {
		b.WriteString(r.String() + "\n")
	}
	return b.String()
}

// Dump renders our routes as the kernel holds them.
func (t *Table) Dump() (string, error) {
	have, err := t.list(t.dump)
	if err != nil {
		return "", err
	}
	rs := make([]Route, 0, len(have))
	for _, r := range have {
		rs = append(rs, r)
	}
	return Dump(rs), nil
}

func ipNet(p netip.Prefix) *net.IPNet {
	return &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}
