// Package startheap lets a starting node build its heap on transparent
// huge pages where the kernel gives them only on request (THP "madvise",
// Debian's and Ubuntu's default).
//
// A node that starts builds most of its heap at once: the state cache,
// the calculation, the rendered table, the etcd member's log replay;
// about 150 MB at 1,000 workloads and 500 policies. Each 4 KiB page's
// first touch is a page fault: about 40,000 of them, dear on a virtual
// machine (up to 12 µs each on the one this project is benchmarked on). A
// 2 MiB huge page is one fault: with this package a restart there takes
// about 7,000 and programs its table about 50 ms sooner (docs/bench.md).
// Go's runtime does not ask for huge pages for its heap (it did in Go
// 1.21.0 and stopped: with the kernel's khugepaged and the runtime's
// scavenger returning pages, a long-running process's memory could
// bloat).
//
// So the advice is for the start only: Advise has the runtime map fresh
// heap address space (large allocations, never touched, dropped at once)
// and advises it MADV_HUGEPAGE; the runtime then allocates from
// that space, lowest addresses first, as the heap grows. End withdraws
// the advice (MADV_NOHUGEPAGE): from then on the kernel neither gives new
// huge pages there nor collapses small ones into them, as for any Go
// program; the huge pages already given stay until the runtime returns
// their memory.
package startheap

import (
	"math"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Region is heap address space advised for huge pages.
type Region struct {
	beg, end uintptr
	// Took is how long Advise took.
	Took time.Duration
	once sync.Once
}

// piece is the size of the allocations Advise maps the space with. A
// fresh allocation is not zeroed unless another goroutine's allocation
// meanwhile took heap above its start; then the runtime zeroes it whole,
// touching every page: a piece bounds that to 4 MiB.
const piece = 4 << 20

// Advise maps size bytes of fresh heap and asks for huge pages on them.
// It does nothing (an empty Region) unless the kernel's THP mode is
// "madvise"; nor when GODEBUG has disablethp=1 (the runtime's switch for
// huge pages) or a memory limit is set (GOMEMLIMIT: the pieces would
// press on it). Call it first thing, while the heap is small and little
// else allocates.
func Advise(size int) *Region {
	start := time.Now()
	r := &Region{}
	defer func() { r.Took = time.Since(start) }()
	huge := hugePageSize()
	if huge == 0 || thpMode() != "madvise" || disabled(os.Getenv("GODEBUG")) || debug.SetMemoryLimit(-1) != math.MaxInt64 {
		return r
	}
	pieces := make([][]byte, 0, size/piece)
	lo, hi := ^uintptr(0), uintptr(0)
	gc := debug.SetGCPercent(-1) // a collection meanwhile would find every piece live
	for range size / piece {
		b := make([]byte, piece)
		a := uintptr(unsafe.Pointer(unsafe.SliceData(b)))
		lo, hi = min(lo, a), max(hi, a+piece)
		pieces = append(pieces, b)
	}
	runtime.KeepAlive(pieces)
	debug.SetGCPercent(gc)
	// Collect them now, so that the heap grows into their space rather
	// than beyond it.
	runtime.GC()
	beg := (lo + huge - 1) &^ (huge - 1)
	end := hi &^ (huge - 1)
	// Pieces spread wider than twice the size are not the fresh space
	// this is for.
	if beg >= end || end-beg > 2*uintptr(size) || madvise(beg, end, unix.MADV_HUGEPAGE) != nil {
		return r
	}
	r.beg, r.end = beg, end
	return r
}

// Size is how many bytes are advised (0: none).
func (r *Region) Size() int { return int(r.end - r.beg) }

// End withdraws the advice; later calls do nothing.
func (r *Region) End() {
	r.once.Do(func() {
		if r.beg < r.end {
			_ = madvise(r.beg, r.end, unix.MADV_NOHUGEPAGE)
		}
	})
}

func madvise(beg, end uintptr, advice int) error {
	// The range is heap the runtime has mapped; a uintptr keeps it from
	// looking like a Go pointer.
	_, _, errno := unix.Syscall(unix.SYS_MADVISE, beg, end-beg, uintptr(advice))
	if errno != 0 {
		return errno
	}
	return nil
}

// hugePageSize is the size of a transparent huge page, 0 when the kernel
// has none.
func hugePageSize() uintptr {
	b, err := os.ReadFile("/sys/kernel/mm/transparent_hugepage/hpage_pmd_size")
	if err != nil {
		return 0
	}
	n, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
	if err != nil || n&(n-1) != 0 {
		return 0
	}
	return uintptr(n)
}

// thpMode is the kernel's THP mode: the bracketed word of
// "always [madvise] never".
func thpMode() string {
	b, err := os.ReadFile("/sys/kernel/mm/transparent_hugepage/enabled")
	if err != nil {
		return ""
	}
	s := string(b)
	i, j := strings.IndexByte(s, '['), strings.IndexByte(s, ']')
	if i < 0 || j < i {
		return ""
	}
	return s[i+1 : j]
}

// disabled says whether a GODEBUG value turns the runtime's huge pages
// off (disablethp=1; the last setting wins, as in the runtime).
func disabled(godebug string) bool {
	off := false
	for _, kv := range strings.Split(godebug, ",") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(kv), "disablethp="); ok {
			off = v == "1"
		}
	}
	return off
}
