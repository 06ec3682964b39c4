package e2e

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
)

// bgpFlow is a TCP connection that exchanges numbered messages with an echo
// server without pause until stopped.
type bgpFlow struct {
	c    net.Conn
	stop chan struct{}
	done chan struct{}

	mu     sync.Mutex
	n      int
	last   time.Time
	maxGap time.Duration
	gapAt  time.Time
	err    error
}

func bgpStartFlow(t *testing.T, from, addr string) *bgpFlow {
	t.Helper()
	c, err := bgpDialIn(from, addr, 5*time.Second)
	if err != nil {
		t.Fatalf("connecting to %s: %v", addr, err)
	}
	f := &bgpFlow{c: c, stop: make(chan struct{}), done: make(chan struct{}), last: time.Now()}
	t.Cleanup(f.close)
	go f.run()
	return f
}

func (f *bgpFlow) run() {
	defer close(f.done)
	out, in := make([]byte, 8), make([]byte, 8)
	for i := uint64(1); ; i++ {
		select {
		case <-f.stop:
			return
		default:
		}
		binary.BigEndian.PutUint64(out, i)
		f.c.SetDeadline(time.Now().Add(30 * time.Second))
		_, err := f.c.Write(out)
		if err == nil {
			_, err = io.ReadFull(f.c, in)
		}
		if err == nil && !bytes.Equal(in, out) {
			err = fmt.Errorf("message %d came back as %d", i, binary.BigEndian.Uint64(in))
		}
		now := time.Now()
		f.mu.Lock()
		if err != nil {
			f.err = fmt.Errorf("message %d: %w", i, err)
			f.mu.Unlock()
			return
		}
		if gap := now.Sub(f.last); gap > f.maxGap {
			f.maxGap, f.gapAt = gap, now
		}
		f.n, f.last = int(i), now
		f.mu.Unlock()
		time.Sleep(5 * time.Millisecond)
	}
}

func (f *bgpFlow) state() (n int, maxGap time.Duration, gapAt time.Time, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.n, f.maxGap, f.gapAt, f.err
}

// progress waits until count more messages have gone both ways.
func (f *bgpFlow) progress(t *testing.T, count int, within time.Duration, what string) {
	t.Helper()
	n0, _, _, _ := f.state()
	bgpWaitFor(t, within, 10*time.Millisecond, fmt.Sprintf("%d more messages %s", count, what), func() (bool, string) {
		n, gap, _, err := f.state()
		if err != nil {
			t.Fatalf("the flow broke %s: %v", what, err)
		}
		return n >= n0+count, fmt.Sprintf("%d messages, longest gap %s", n-n0, gap)
	})
}

func (f *bgpFlow) close() {
	select {
	case <-f.stop:
	default:
		close(f.stop)
	}
	f.c.Close()
	<-f.done
}

// TestBGPRestartKeepsFlow: a TCP connection between workloads on host1 and
// host3 keeps exchanging data while either host's node stops (SIGTERM) and
// starts again: graceful restart keeps the routes on both sides.
func TestBGPRestartKeepsFlow(t *testing.T) {
	lab := NewLab(t, 3, 1)
	bgpCluster(t, lab, bgpHosts(3))
	f1 := bgpAddWorkload(t, lab, "host1", "bg-f1", "--profile", "a")
	f3 := bgpAddWorkload(t, lab, "host3", "bg-f3", "--profile", "a")
	bgpServeIn(t, f3.NetNS, 9000, bgpEcho)
	bgpWaitFor(t, 30*time.Second, 50*time.Millisecond, "bg-f1 reaching bg-f3", func() (bool, string) {
		c, err := bgpDialIn(f1.NetNS, net.JoinHostPort(f3.v4(), "9000"), 500*time.Millisecond)
		if err != nil {
			return false, err.Error()
		}
		c.Close()
		return true, ""
	})
	fl := bgpStartFlow(t, f1.NetNS, net.JoinHostPort(f3.v4(), "9000"))
	fl.progress(t, 50, 10*time.Second, "before any restart")

	for _, h := range []string{"host3", "host1"} {
		synced := strings.Count(lab.Log(h), "BGP is in sync")
		lab.Stop(h)
		fl.progress(t, 50, 10*time.Second, "while "+h+" is stopped")
		lab.Start(h)
		startedAt := time.Now()
		fl.progress(t, 50, 10*time.Second, "after "+h+" started")
		// Keep the flow going until the restarted node's BGP has caught
		// up and it has swept the routes it kept from its last run (it
		// logs that), or for 30s.
		for strings.Count(lab.Log(h), "BGP is in sync") == synced && time.Since(startedAt) < 30*time.Second {
			fl.progress(t, 1, 10*time.Second, "after "+h+" started")
			time.Sleep(100 * time.Millisecond)
		}
		if strings.Count(lab.Log(h), "BGP is in sync") > synced {
			t.Logf("%s's BGP back in sync %s after lab.sh start returned", h, time.Since(startedAt).Round(time.Millisecond))
		} else {
			t.Logf("%s did not log that its BGP is in sync within %s of its start", h, time.Since(startedAt).Round(time.Millisecond))
		}
		fl.progress(t, 100, 10*time.Second, "after "+h+"'s BGP synced")
	}
	n, gap, gapAt, err := fl.state()
	if err != nil {
		t.Fatalf("the flow broke: %v", err)
	}
	t.Logf("the flow exchanged %d messages through both restarts; longest gap between two %s (at %s)", n, gap.Round(time.Millisecond), gapAt.Format("15:04:05.000"))
	if gap > 2*time.Second {
		t.Errorf("the flow stalled for %s (at %s): packets were lost across a restart", gap.Round(time.Millisecond), gapAt.Format("15:04:05.000"))
	}
}
