package testutil

import "runtime"

// LiveHeap is the heap in use after a full collection: what a benchmark
// measures before and after building what it keeps.
func LiveHeap() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}
