package startheap

import (
	"math"
	"os"
	"runtime/debug"
	"strconv"
	"strings"
	"testing"
	"unsafe"
)

// TestAdvise checks that the heap grows into the advised space, that the
// space is marked for huge pages (VmFlags hg) until End, and for none
// after (nh). Whether the kernel had a free huge page to give is logged,
// not asserted: that depends on the machine's memory.
func TestAdvise(t *testing.T) {
	needMadvise(t)
	defer debug.SetMemoryLimit(debug.SetMemoryLimit(math.MaxInt64)) // GOMEMLIMIT turns it off
	r := Advise(64 << 20)
	if r.Size() == 0 {
		t.Fatal("nothing advised")
	}
	var keep [][]byte
	in := 0
	for range 8 << 10 {
		b := make([]byte, 1024)
		b[0] = 1
		keep = append(keep, b)
		if a := uintptr(unsafe.Pointer(&b[0])); a >= r.beg && a < r.end {
			in++
		}
	}
	if in < len(keep)/2 {
		t.Errorf("%d of %d new objects in the advised space %#x-%#x", in, len(keep), r.beg, r.end)
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

func needMadvise(t *testing.T) {
	if hugePageSize() == 0 || thpMode() != "madvise" {
		t.Skipf("the kernel's transparent huge pages are %q, not madvise: nothing to advise", thpMode())
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
			inside = uintptr(a) < r.end && uintptr(z) > r.beg
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
		t.Fatalf("no mapping holds %#x-%#x", r.beg, r.end)
	}
	return flags, hugeKB
}

// TestAdviseNotUnderALimit checks that a memory limit (GOMEMLIMIT) turns
// the advice off: the pieces would press on it.
func TestAdviseNotUnderALimit(t *testing.T) {
	needMadvise(t)
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
