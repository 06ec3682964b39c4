package startheap

import (
	"runtime"
	"runtime/debug"
	"testing"
	"time"
)

// gogc reads GOGC without changing it.
func gogc() int {
	g := debug.SetGCPercent(100)
	debug.SetGCPercent(g)
	return g
}

// TestPace raises GOGC, lowers it as the live heap grows towards the
// cap, and puts the default back at End, where it stays.
func TestPace(t *testing.T) {
	if g := gogc(); g != defaultPercent {
		t.Fatalf("GOGC is %d before the test", g)
	}
	p := Pace(400, 256<<20)
	defer p.End()
	if g := gogc(); g != 400 {
		t.Fatalf("GOGC %d with a small heap, want 400", g)
	}
	// 64 MiB live: 256 MiB over a little more than 64 MiB is 3 whole
	// heaps, so GOGC 200.
	live := make([][]byte, 64)
	for i := range live {
		live[i] = make([]byte, 1<<20)
	}
	waitGOGC(t, 200)
	runtime.KeepAlive(live)
	waitGOGC(t, 400)
	p.End()
	if g := gogc(); g != defaultPercent {
		t.Errorf("GOGC %d after End, want the default", g)
	}
	runtime.GC()
	runtime.GC()
	time.Sleep(10 * time.Millisecond) // a finalizer that ran now would show
	if g := gogc(); g != defaultPercent {
		t.Errorf("GOGC %d after End and two collections, want the default", g)
	}
}

// waitGOGC collects until the pacer has set GOGC to want.
func waitGOGC(t *testing.T, want int) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); {
		runtime.GC()
		time.Sleep(time.Millisecond) // the finalizer runs on its own goroutine
		if gogc() == want {
			return
		}
	}
	t.Fatalf("GOGC %d, want %d (live heap %d bytes)", gogc(), want, liveHeap())
}

// TestPaceKeepsTheOperatorsTuning: a GOGC or a memory limit set
// otherwise stands, and so does GOGC=100 in the environment.
func TestPaceKeepsTheOperatorsTuning(t *testing.T) {
	defer debug.SetGCPercent(debug.SetGCPercent(50))
	p := Pace(400, 256<<20)
	if g := gogc(); g != 50 {
		t.Errorf("GOGC %d after Pace, want the operator's 50", g)
	}
	p.End()
	if g := gogc(); g != 50 {
		t.Errorf("GOGC %d after End, want the operator's 50", g)
	}
	debug.SetGCPercent(defaultPercent)
	t.Setenv("GOGC", "100")
	p = Pace(400, 256<<20)
	if g := gogc(); g != defaultPercent {
		t.Errorf("GOGC %d after Pace with GOGC=100 in the environment, want 100", g)
	}
	p.End()
	t.Setenv("GOGC", "")
	defer debug.SetMemoryLimit(debug.SetMemoryLimit(1 << 30))
	p = Pace(400, 256<<20)
	defer p.End()
	if g := gogc(); g != defaultPercent {
		t.Errorf("GOGC %d under a memory limit, want the default", g)
	}
}

func TestPacerTarget(t *testing.T) {
	p := &Pacer{percent: 400, max: 256 << 20}
	for _, c := range []struct {
		live uint64
		want int
	}{
		{0, 400},
		{1 << 20, 400},
		{50 << 20, 400}, // 5 heaps fit
		{60 << 20, 300},
		{100 << 20, 100},
		{300 << 20, 100}, // over the cap: the default, never less
		{1 << 62, 100},
	} {
		if got := p.target(c.live); got != c.want {
			t.Errorf("target(%d MiB) = %d, want %d", c.live>>20, got, c.want)
		}
	}
}
