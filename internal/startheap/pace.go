package startheap

import (
	"math"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"sync"
)

// Pacer has the garbage collector run less often while the start builds
// its heap. With the default GOGC of 100 a start that grows its heap
// from nothing to 70 MB within half a second collects about ten times on
// the way, each time marking what it has built so far, beside the work
// it is waiting for. A lab restart of 1,000 workloads and 500 policies
// with GOGC=400 in its environment programmed its table 40-90 ms sooner
// than with the default (medians of six restarts each, two labs;
// docs/bench.md).
type Pacer struct {
	mu      sync.Mutex
	percent int    // the most GOGC may be
	max     uint64 // the most the heap goal may be, in bytes
	old     int    // GOGC before; < 0 when the Pacer is not pacing
}

// defaultPercent is GOGC when nobody set it.
const defaultPercent = 100

// Pace raises GOGC to percent, as far as the heap goal that gives (live
// heap times 1 + percent/100) stays within max bytes: after each
// collection it sets GOGC again from the live heap, never below the
// default. It does nothing when GOGC (even GOGC=100) or a memory limit
// (GOMEMLIMIT) was set: the operator's tuning stands. End puts GOGC
// back.
func Pace(percent int, max uint64) *Pacer {
	p := &Pacer{percent: percent, max: max, old: -1}
	if os.Getenv("GOGC") != "" || debug.SetMemoryLimit(-1) != math.MaxInt64 {
		return p
	}
	if old := debug.SetGCPercent(p.target(liveHeap())); old != defaultPercent {
		debug.SetGCPercent(old)
		return p
	}
	p.old = defaultPercent
	p.arm()
	return p
}

// End puts GOGC back as it was; later calls do nothing.
func (p *Pacer) End() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.old >= 0 {
		debug.SetGCPercent(p.old)
		p.old = -1
	}
}

// target is the GOGC that keeps the heap goal within max for a live
// heap of live bytes, between the default and percent.
func (p *Pacer) target(live uint64) int {
	if live == 0 {
		return p.percent
	}
	t := int(min(p.max/live, math.MaxInt32/100))*100 - 100
	return max(defaultPercent, min(p.percent, t))
}

// sentinel is an object nothing refers to, whose finalizer runs after
// the collection that found it: once per collection, as each one arms
// the next.
type sentinel struct {
	_ [64]byte // not a tiny allocation, which may share a block with live ones
}

func (p *Pacer) arm() {
	runtime.SetFinalizer(&sentinel{}, func(*sentinel) { p.collected() })
}

// collected sets GOGC from the live heap the last collection found.
func (p *Pacer) collected() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.old < 0 {
		return
	}
	debug.SetGCPercent(p.target(liveHeap()))
	p.arm()
}

// liveHeap is the heap the last collection found live, in bytes.
func liveHeap() uint64 {
	s := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	metrics.Read(s)
	if s[0].Value.Kind() != metrics.KindUint64 {
		return 0
	}
	return s[0].Value.Uint64()
}
