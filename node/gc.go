package node

import (
	"os"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"sync"
)

// gcHeadroom is how far above the live heap the garbage collector's heap
// goal is kept at least. With Go's default (GOGC=100) a node whose live
// heap is 70 MiB (the policy benchmark's: 3,000 endpoints, 500 policies)
// collects after every 70 MiB allocated; a policy change allocates about
// 10 MiB, so one change in seven pays for marking the whole heap, on the
// cores the change needs. Large heaps keep the default's goal of twice
// the live heap.
const gcHeadroom = 256 << 20

var tuneGCOnce sync.Once

// tuneGC keeps the heap goal at least gcHeadroom above the live heap:
// after every collection it sets GOGC to what gives that, never below
// Go's default of 100. GOGC or GOMEMLIMIT in the environment (the
// operator's choice) turns it off.
func tuneGC() {
	if os.Getenv("GOGC") != "" || os.Getenv("GOMEMLIMIT") != "" {
		return
	}
	tuneGCOnce.Do(func() {
		sample := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
		var arm func()
		arm = func() {
			// A finalizer runs after the collection that finds its
			// object unreachable: once per cycle, re-armed each time.
			runtime.SetFinalizer(new([16]byte), func(*[16]byte) {
				metrics.Read(sample)
				if sample[0].Value.Kind() == metrics.KindUint64 {
					debug.SetGCPercent(gcPercent(sample[0].Value.Uint64()))
				}
				arm()
			})
		}
		arm()
	})
}

// gcPercent is the GOGC that puts the heap goal gcHeadroom above a live
// heap of live bytes, at least 100 and at most 1,000.
func gcPercent(live uint64) int {
	if live == 0 {
		return 1000
	}
	return int(min(max(gcHeadroom*100/live, 100), 1000))
}
