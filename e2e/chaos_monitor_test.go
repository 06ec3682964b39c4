package e2e

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// The chaos monitor reads every probe's lines as they come: it finds a
// packet through a denied pair at once, and keeps the last outcome of
// every cell for the reachability checks.
//
// A cell is (source workload, target workload, what, family), what being
// tcp/8080, tcp/8081 or ping. Allowed: tcp/8080 and ping between two
// workloads of one profile. Denied: everything between the profiles, and
// tcp/8081 everywhere (the GlobalNetworkPolicy chaos-deny).

type chaosCell struct {
	src, dst, what string
	v6             bool
}

func (k chaosCell) String() string {
	fam := "IPv4"
	if k.v6 {
		fam = "IPv6"
	}
	return fmt.Sprintf("%s -> %s %s %s", k.src, k.dst, k.what, fam)
}

type chaosOutcome struct {
	at     time.Time
	ok     bool
	tries  int
	okSeen int
}

// chaosSpan is a time during which a workload held an address.
type chaosSpan struct {
	name, profile string
	from, to      time.Time // to is zero while it holds it
}

// chaosRecord is a broken invariant, with the step it broke in.
type chaosRecord struct {
	at       time.Time
	step     int
	kind     string
	what     string
	reported bool
}

type chaosMonitor struct {
	mu       sync.Mutex
	cells    map[chaosCell]*chaosOutcome
	owners   map[string][]chaosSpan // by address
	profiles map[string]string      // workload -> profile (names are never reused)
	gens     map[string]int         // workload -> the target generation its probe is at
	records  []chaosRecord
	// steps are the starts of the steps, in order.
	steps  []chaosStepStart
	denied int // denied packets seen
	lines  int
}

type chaosStepStart struct {
	n    int
	kind string
	at   time.Time
}

func newChaosMonitor() *chaosMonitor {
	return &chaosMonitor{
		cells: map[chaosCell]*chaosOutcome{}, owners: map[string][]chaosSpan{},
		profiles: map[string]string{}, gens: map[string]int{},
		steps: []chaosStepStart{{0, "setup", time.Time{}}},
	}
}

func (m *chaosMonitor) stepStarts(n int, kind string, at time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.steps = append(m.steps, chaosStepStart{n, kind, at})
}

// stepAt is the step running at a time.
func (m *chaosMonitor) stepAt(at time.Time) chaosStepStart {
	i := len(m.steps) - 1
	for i > 0 && m.steps[i].at.After(at) {
		i--
	}
	return m.steps[i]
}

// record notes a broken invariant seen at a time.
func (m *chaosMonitor) record(at time.Time, format string, args ...any) {
	m.mu.Lock()
	defer m.mu.Unlock()
	s := m.stepAt(at)
	m.records = append(m.records, chaosRecord{at: at, step: s.n, kind: s.kind, what: fmt.Sprintf(format, args...)})
}

// unreported returns the records not returned before.
func (m *chaosMonitor) unreported() []chaosRecord {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []chaosRecord
	for i := range m.records {
		if !m.records[i].reported {
			m.records[i].reported = true
			out = append(out, m.records[i])
		}
	}
	return out
}

func (m *chaosMonitor) violations() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.records)
}

// own records that w holds its addresses from a time on.
func (m *chaosMonitor) own(w *chaosWorkload, from time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.profiles[w.name] = w.profile
	for _, a := range w.addrs {
		m.owners[a] = append(m.owners[a], chaosSpan{name: w.name, profile: w.profile, from: from.Truncate(time.Millisecond)})
	}
}

// disown records that w no longer holds its addresses from a time on.
func (m *chaosMonitor) disown(w *chaosWorkload, to time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, a := range w.addrs {
		for i, s := range m.owners[a] {
			if s.name == w.name && s.to.IsZero() {
				m.owners[a][i].to = to
			}
		}
	}
}

// owner is the workload that held addr at a time, if any.
func (m *chaosMonitor) owner(addr string, at time.Time) (chaosSpan, bool) {
	for _, s := range slices.Backward(m.owners[addr]) {
		if !at.Before(s.from) && (s.to.IsZero() || !at.After(s.to)) {
			return s, true
		}
	}
	return chaosSpan{}, false
}

func (m *chaosMonitor) gen(name string) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.gens[name]
}

// line takes one line of w's probe (probe chaos's format).
func (m *chaosMonitor) line(w *chaosWorkload, l string) {
	f := strings.Fields(l)
	if len(f) < 3 {
		return
	}
	ms, err := strconv.ParseInt(f[1], 10, 64)
	if err != nil {
		return
	}
	at := time.UnixMilli(ms)
	m.mu.Lock()
	defer m.mu.Unlock()
	m.lines++
	switch {
	case f[0] == "G":
		m.gens[w.name], _ = strconv.Atoi(f[2])
	case f[0] == "T" && len(f) >= 6: // T MS TARGET ADDR PORT ok|fail [PEER]
		ok := f[5] == "ok" && len(f) == 7
		m.outcome(chaosCell{w.name, f[2], "tcp/" + f[4], strings.Contains(f[3], ":")}, at, ok)
		if ok {
			m.judgeTCP(w, f[2], f[3], f[4], f[6], at)
		}
	case f[0] == "I" && len(f) == 5: // I MS TARGET ADDR ok|fail
		ok := f[4] == "ok"
		m.outcome(chaosCell{w.name, f[2], "ping", strings.Contains(f[3], ":")}, at, ok)
		if ok {
			m.judgePing(w, f[2], f[3], at)
		}
	case f[0] == "A" && len(f) == 4: // A MS PORT SRC
		m.judgeAccept(w, f[2], f[3], at)
	}
}

func (m *chaosMonitor) outcome(k chaosCell, at time.Time, ok bool) {
	o := m.cells[k]
	if o == nil {
		o = &chaosOutcome{}
		m.cells[k] = o
	}
	o.tries++
	if at.After(o.at) {
		o.at, o.ok = at, ok
	}
	if ok {
		o.okSeen++
	}
}

// deny records a packet through a denied pair (m.mu held).
func (m *chaosMonitor) deny(at time.Time, format string, args ...any) {
	m.denied++
	s := m.stepAt(at)
	m.records = append(m.records, chaosRecord{at: at, step: s.n, kind: s.kind,
		what: fmt.Sprintf("at %s, a packet through a denied pair: ", at.Format("15:04:05.000")) + fmt.Sprintf(format, args...)})
}

func (m *chaosMonitor) judgeTCP(w *chaosWorkload, target, addr, port, peer string, at time.Time) {
	pp, known := m.profiles[peer]
	switch {
	case port == "8081":
		m.deny(at, "%s (%s) connected to %s (%s) at %s port 8081, which chaos-deny denies", w.name, w.profile, peer, pp, addr)
	case !known:
		m.deny(at, "%s (%s) connected to %s port %s and was answered by %q, no workload of the test", w.name, w.profile, addr, port, peer)
	case pp != w.profile:
		m.deny(at, "%s (%s) connected to %s (%s) at %s port %s (meant for %s)", w.name, w.profile, peer, pp, addr, port, target)
	}
}

func (m *chaosMonitor) judgePing(w *chaosWorkload, target, addr string, at time.Time) {
	o, held := m.owner(addr, at)
	switch {
	case !held:
		m.deny(at, "%s (%s) pinged %s (meant for %s) and was answered, though no workload held it", w.name, w.profile, addr, target)
	case o.profile != w.profile:
		m.deny(at, "%s (%s) pinged %s (%s) at %s and was answered", w.name, w.profile, o.name, o.profile, addr)
	}
}

func (m *chaosMonitor) judgeAccept(w *chaosWorkload, port, src string, at time.Time) {
	o, held := m.owner(src, at)
	switch {
	case port == "8081":
		m.deny(at, "%s (%s) accepted a connection to port 8081 from %s (%s), which chaos-deny denies", w.name, w.profile, src, o.name)
	case !held:
		m.deny(at, "%s (%s) accepted a connection to port %s from %s, which no workload held", w.name, w.profile, port, src)
	case o.profile != w.profile:
		m.deny(at, "%s (%s) accepted a connection to port %s from %s (%s) at %s", w.name, w.profile, port, o.name, o.profile, src)
	}
}

// unreached lists the allowed cells among ws whose last outcome is not a
// success after since.
func (m *chaosMonitor) unreached(ws []*chaosWorkload, since time.Time) []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	var bad []string
	for _, s := range ws {
		for _, d := range ws {
			if s == d || s.profile != d.profile {
				continue
			}
			for _, what := range []string{"tcp/8080", "ping"} {
				for _, v6 := range []bool{false, true} {
					k := chaosCell{s.name, d.name, what, v6}
					o := m.cells[k]
					switch {
					case o == nil:
						bad = append(bad, k.String()+": never probed")
					case !o.at.After(since):
						bad = append(bad, fmt.Sprintf("%s: not probed since %s (last at %s)", k, since.Format("15:04:05.000"), o.at.Format("15:04:05.000")))
					case !o.ok:
						bad = append(bad, fmt.Sprintf("%s: no answer at %s (%d of %d tries answered)", k, o.at.Format("15:04:05.000"), o.okSeen, o.tries))
					}
				}
			}
		}
	}
	slices.Sort(bad)
	return bad
}

// chaosTotals count what the probes did.
type chaosTotals struct {
	lines int
	// allowed and denied are the attempts on allowed and denied cells;
	// answered those of them that were answered.
	allowed, allowedAnswered, denied, deniedAnswered int
}

func (m *chaosMonitor) totals() chaosTotals {
	m.mu.Lock()
	defer m.mu.Unlock()
	t := chaosTotals{lines: m.lines, deniedAnswered: m.denied}
	for k, o := range m.cells {
		if k.what == "tcp/8081" || m.profiles[k.src] != m.profiles[k.dst] {
			t.denied += o.tries
		} else {
			t.allowed += o.tries
			t.allowedAnswered += o.okSeen
		}
	}
	return t
}
