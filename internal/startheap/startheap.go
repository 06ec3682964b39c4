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
// about 7,000 and programs its table 30-100 ms sooner (docs/bench.md).
// Go's runtime does not ask for huge pages for its heap (it did in Go
// 1.21.0 and stopped: with the kernel's khugepaged and the runtime's
// scavenger returning pages, a long-running process's memory could
// bloat).
//
// So the advice is for the start only, and for no more huge pages than
// the kernel has free: Advise has the runtime map fresh heap address
// space (large allocations, never touched, dropped at once) and advises
// it MADV_HUGEPAGE; the runtime then allocates from that space, lowest
// addresses first, as the heap grows. End withdraws the advice
// (MADV_NOHUGEPAGE): from then on the kernel neither gives new huge pages
// there nor collapses small ones into them; the huge pages already given
// stay until the runtime returns their memory.
package startheap

import (
	"math"
	"math/bits"
	"os"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Region is heap address space advised for huge pages.
type Region struct {
	spans []span
	// Took is how long Advise took.
	Took time.Duration
	once sync.Once
}

// span is advised address space, [beg, end).
type span struct{ beg, end uintptr }

// piece is the size of the allocations Advise maps the space with. A
// fresh allocation is not zeroed unless another goroutine's allocation
// meanwhile took heap above its start, or it lands in heap used and freed
// before; then the runtime zeroes it whole, touching every page: a piece
// bounds that to 4 MiB.
const piece = 4 << 20

// Advise maps up to size bytes of fresh heap and asks for huge pages on
// them. It does nothing (an empty Region) unless the kernel's THP mode is
// "madvise"; nor when GODEBUG has disablethp=1 (the runtime's switch for
// huge pages) or a memory limit is set (GOMEMLIMIT: the pieces would
// press on it). It advises no more than half of what the kernel has free
// in blocks of a huge page: a fault in advised memory that finds no free
// huge page compacts memory while it waits (THP defrag "madvise", the
// default), which on a busy, fragmented host would slow the start down.
// Call it first thing, while the heap is small and little else allocates.
func Advise(size int) *Region {
	start := time.Now()
	r := &Region{}
	defer func() { r.Took = time.Since(start) }()
	huge := hugePageSize()
	if huge == 0 || huge > uintptr(size)/2 || thpMode() != "madvise" || disabled(os.Getenv("GODEBUG")) || debug.SetMemoryLimit(-1) != math.MaxInt64 {
		return r
	}
	if b, err := os.ReadFile("/proc/buddyinfo"); err == nil {
		size = min(size, freeBlocks(string(b), huge/uintptr(os.Getpagesize()))/2*int(huge))
	}
	if size < piece {
		return r
	}
	pieces := make([][]byte, 0, size/piece)
	addrs := make([]uintptr, 0, size/piece)
	gc := debug.SetGCPercent(-1) // a collection meanwhile would find every piece live
	for range size / piece {
		b := make([]byte, piece)
		addrs = append(addrs, uintptr(unsafe.Pointer(unsafe.SliceData(b))))
		pieces = append(pieces, b)
	}
	runtime.KeepAlive(pieces)
	debug.SetGCPercent(gc)
	// Collect them now, so that the heap grows into their space rather
	// than beyond it.
	runtime.GC()
	// Advise each run of adjacent pieces: only heap, whatever lies
	// between runs.
	for _, sp := range runs(addrs, piece) {
		beg, end := (sp.beg+huge-1)&^(huge-1), sp.end&^(huge-1)
		if beg < end && madvise(beg, end, unix.MADV_HUGEPAGE) == nil {
			r.spans = append(r.spans, span{beg, end})
		}
	}
	return r
}

// runs merges pieces of n bytes at addrs into runs of adjacent ones.
func runs(addrs []uintptr, n uintptr) []span {
	addrs = slices.Sorted(slices.Values(addrs))
	var out []span
	for _, a := range addrs {
		if k := len(out) - 1; k >= 0 && out[k].end == a {
			out[k].end = a + n
			continue
		}
		out = append(out, span{a, a + n})
	}
	return out
}

// Size is how many bytes are advised (0: none).
func (r *Region) Size() int {
	n := 0
	for _, sp := range r.spans {
		n += int(sp.end - sp.beg)
	}
	return n
}

// End withdraws the advice; later calls do nothing.
func (r *Region) End() {
	r.once.Do(func() {
		for _, sp := range r.spans {
			_ = madvise(sp.beg, sp.end, unix.MADV_NOHUGEPAGE)
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

// freeBlocks counts the free blocks of 2^order pages in /proc/buddyinfo's
// text ("Node 0, zone Normal" and the free blocks of each order from 0),
// a larger free block counting as as many as it holds.
func freeBlocks(buddyinfo string, pages uintptr) int {
	order := bits.TrailingZeros64(uint64(pages))
	n := 0
	for _, line := range strings.Split(buddyinfo, "\n") {
		f := strings.Fields(line)
		if len(f) < 4 || f[0] != "Node" || f[2] != "zone" {
			continue
		}
		for k, c := range f[4:] {
			v, err := strconv.Atoi(c)
			if err == nil && k >= order {
				n += v << (k - order)
			}
		}
	}
	return n
}
