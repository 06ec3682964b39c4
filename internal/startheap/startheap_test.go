package startheap

import (
	"math"
	"os"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"testing"
	"unsafe"

	"calico/internal/testutil"
)

// TestAdvise checks that the heap grows into the advised space, that the
// space is marked for huge pages (VmFlags hg) until End, and for none
// after (nh). Whether the kernel had a free huge page to give is logged,
// not asserted: that depends on the machine's memory.
func TestAdvise(t *testing.T) {
	// Advise is for a fresh heap (a node's start): in a process whose
	// heap has free space below the advised one (an earlier test's, or
	// the same test's under -count=2) new objects go there first.
	if !testutil.Rerun(t, freshHeapEnv, nil) {
		return
	}
	needMadvise(t, 64<<20)
	defer debug.SetMemoryLimit(debug.SetMemoryLimit(math.MaxInt64)) // GOMEMLIMIT turns it off
	gc := debug.SetGCPercent(150)
	defer debug.SetGCPercent(gc)
	r := Advise(64 << 20)
	if r.Size() == 0 {
		t.Fatal("nothing advised")
	}
	if got := debug.SetGCPercent(150); got != 150 {
		t.Errorf("GOGC %d after Advise, want 150 as before", got)
	}
	var keep [][]byte
	in := 0
	for range 8 << 10 {
		b := make([]byte, 1024)
		b[0] = 1
		keep = append(keep, b)
		a := uintptr(unsafe.Pointer(&b[0]))
		if slices.ContainsFunc(r.spans, func(sp span) bool { return a >= sp.beg && a < sp.end }) {
			in++
		}
	}
	if in < len(keep)/2 {
		t.Errorf("%d of %d new objects in the advised space %#x", in, len(keep), r.spans)
	}
	flags, huge := vmas(t, r)
	if !strings.Contains(flags, " hg") {
		t.Errorf("advised space's VmFlags %q, want hg", flags)
	}
	t.Logf("%d of %d objects in the advised space; AnonHugePages there %d kB", in, len(keep), huge)
	r.End()
	r.End()
	if flags, _ := vmas(t, r); !strings.Contains(flags, " nh") || strings.Contains(flags, " hg") {
		t.Errorf("after End, VmFlags %q, want nh and no hg", flags)
	}
}

// freshHeapEnv marks the process of the test binary in which TestAdvise
// runs alone (testutil.Rerun).
const freshHeapEnv = "STARTHEAP_TEST_FRESH"

// needMadvise skips a test of Advise(size) where it would advise nothing
// by design: the kernel's mode, GODEBUG, or too few free huge pages.
func needMadvise(t *testing.T, size int) {
	huge := hugePageSize()
	if huge == 0 || thpMode() != "madvise" {
		t.Skipf("the kernel's transparent huge pages are %q, not madvise: nothing to advise", thpMode())
	}
	if disabled(os.Getenv("GODEBUG")) {
		t.Skip("GODEBUG has disablethp=1: nothing to advise")
	}
	if b, err := os.ReadFile("/proc/buddyinfo"); err == nil {
		if free := freeBlocks(string(b), huge/uintptr(os.Getpagesize())); free/2*int(huge) < size {
			t.Skipf("the kernel has %d free huge pages: too few to advise %d bytes", free, size)
		}
	}
}

// vmas reads the mappings that hold the region from /proc/self/smaps:
// their VmFlags (joined) and AnonHugePages (summed, kB).
func vmas(t *testing.T, r *Region) (flags string, hugeKB int) {
	b, err := os.ReadFile("/proc/self/smaps")
	if err != nil {
		t.Fatal(err)
	}
	inside := false
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		if len(f) > 0 && strings.Contains(f[0], "-") && !strings.HasSuffix(f[0], ":") {
			lo, hi, _ := strings.Cut(f[0], "-")
			a, _ := strconv.ParseUint(lo, 16, 64)
			z, _ := strconv.ParseUint(hi, 16, 64)
			inside = slices.ContainsFunc(r.spans, func(sp span) bool { return uintptr(a) < sp.end && uintptr(z) > sp.beg })
			continue
		}
		if !inside || len(f) < 2 {
			continue
		}
		switch f[0] {
		case "VmFlags:":
			flags += " " + strings.Join(f[1:], " ")
		case "AnonHugePages:":
			n, _ := strconv.Atoi(f[1])
			hugeKB += n
		}
	}
	if flags == "" {
		t.Fatalf("no mapping holds %#x", r.spans)
	}
	return flags, hugeKB
}

// TestAdviseNotUnderALimit checks that a memory limit (GOMEMLIMIT) turns
// the advice off: the pieces would press on it.
func TestAdviseNotUnderALimit(t *testing.T) {
	needMadvise(t, 64<<20)
	defer debug.SetMemoryLimit(debug.SetMemoryLimit(1 << 30))
	if r := Advise(64 << 20); r.Size() != 0 {
		t.Errorf("%d bytes advised under a memory limit", r.Size())
	}
}

func TestDisabled(t *testing.T) {
	for _, c := range []struct {
		godebug string
		want    bool
	}{
		{"", false},
		{"disablethp=1", true},
		{"madvdontneed=1,disablethp=1", true},
		{"disablethp=0", false},
		{"disablethp=1,disablethp=0", false},
		{"xdisablethp=1", false},
	} {
		if got := disabled(c.godebug); got != c.want {
			t.Errorf("disabled(%q) = %v, want %v", c.godebug, got, c.want)
		}
	}
}

func TestRuns(t *testing.T) {
	got := runs([]uintptr{0x5000, 0x1000, 0x2000, 0x9000, 0x4000}, 0x1000)
	want := []span{{0x1000, 0x3000}, {0x4000, 0x6000}, {0x9000, 0xa000}}
	if !slices.Equal(got, want) {
		t.Errorf("runs = %#x, want %#x", got, want)
	}
}

func TestFreeBlocks(t *testing.T) {
	const buddyinfo = `Node 0, zone      DMA      0      0      0      0      0      0      0      0      1      1      3
Node 0, zone    DMA32      0      4      2      2      1      2      0      3      3      1    753
Node 0, zone   Normal   5288   4416   5525   3381   2140   1570    814    675    480     92   1549
`
	// Blocks of 512 pages (2 MiB of 4 KiB): order 9 counts once, order 10 twice.
	if got, want := freeBlocks(buddyinfo, 512), (1+1+92)+2*(3+753+1549); got != want {
		t.Errorf("freeBlocks(512 pages) = %d, want %d", got, want)
	}
	if got, want := freeBlocks(buddyinfo, 1024), 3+753+1549; got != want {
		t.Errorf("freeBlocks(1024 pages) = %d, want %d", got, want)
	}
	if got := freeBlocks("garbage\n", 512); got != 0 {
		t.Errorf("freeBlocks(garbage) = %d", got)
	}
}
