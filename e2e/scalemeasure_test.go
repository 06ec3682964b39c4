package e2e

import (
	"bufio"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// This file holds what the scale benchmark measures with: a process's
// CPU time and memory, event monitors in a lab host's namespace, the
// agent's own timings from its log, and the SVG plots.

// procUsage is a process's CPU time (user and system) and resident
// memory.
func procUsage(pid int) (cpu time.Duration, rss int64, err error) {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, 0, err
	}
	// The fields after the command name (which may hold spaces).
	f := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+2:]))
	if len(f) < 22 {
		return 0, 0, fmt.Errorf("short /proc/%d/stat", pid)
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	pages, _ := strconv.ParseInt(f[21], 10, 64)
	const hz = 100 // USER_HZ
	return time.Duration(ut+st) * time.Second / hz, pages * int64(os.Getpagesize()), nil
}

// usage samples a process's CPU (in cores) over a window and its memory
// at the end: RSS, and of it the file pages mapped (RSSFile: for a node,
// its binary's pages and its state cache's bbolt file, which the kernel
// can drop).
type usage struct {
	Cores   float64
	RSS     int64
	RSSFile int64
}

func measureUsage(pid int, window time.Duration) (usage, error) {
	c0, _, err := procUsage(pid)
	if err != nil {
		return usage{}, err
	}
	start := time.Now()
	time.Sleep(window)
	c1, rss, err := procUsage(pid)
	if err != nil {
		return usage{}, err
	}
	return usage{Cores: (c1 - c0).Seconds() / time.Since(start).Seconds(), RSS: rss, RSSFile: rssFile(pid)}, nil
}

// rssFile is the RssFile of /proc/PID/status, in bytes (0 when unknown).
func rssFile(pid int) int64 {
	status, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	for line := range strings.Lines(string(status)) {
		if v, ok := strings.CutPrefix(line, "RssFile:"); ok {
			var kb int64
			fmt.Sscanf(strings.TrimSpace(v), "%d", &kb)
			return kb << 10
		}
	}
	return 0
}

// labPid is the pid of a lab host's node.
func (l *Lab) labPid(t *testing.T, host string) int {
	t.Helper()
	pid, err := l.pid(host)
	if err != nil {
		t.Fatal(err)
	}
	return pid
}

// loadAvg is the machine's 1-minute load average.
func loadAvg() float64 {
	b, _ := os.ReadFile("/proc/loadavg")
	var v float64
	fmt.Sscan(string(b), &v)
	return v
}

// monitor runs a command that prints events, one a line (`ip monitor
// route`, `nft monitor`), in a lab host's namespace, and keeps each line
// with the time it was read.
type monitor struct {
	cmd   *exec.Cmd
	mu    sync.Mutex
	lines []timedLine
}

type timedLine struct {
	at   time.Time
	text string
}

func startMonitor(t *testing.T, host string, args ...string) *monitor {
	t.Helper()
	m := &monitor{cmd: exec.Command("nsenter", append([]string{"--net=/run/netns/" + hostNS(host)}, args...)...)}
	out, err := m.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := m.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(out)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			now := time.Now()
			m.mu.Lock()
			m.lines = append(m.lines, timedLine{now, sc.Text()})
			m.mu.Unlock()
		}
	}()
	t.Cleanup(func() { m.cmd.Process.Kill(); m.cmd.Wait() })
	return m
}

// first waits until a line read after since satisfies match, and returns
// when it was read.
func (m *monitor) first(since time.Time, within time.Duration, match func(string) bool) (time.Time, bool) {
	deadline := time.Now().Add(within)
	seen := 0
	for {
		m.mu.Lock()
		lines := m.lines[seen:]
		seen = len(m.lines)
		m.mu.Unlock()
		for _, l := range lines {
			if !l.at.Before(since) && match(l.text) {
				return l.at, true
			}
		}
		if time.Now().After(deadline) {
			return time.Time{}, false
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// since are the lines read after t.
func (m *monitor) since(t time.Time) []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []string
	for _, l := range m.lines {
		if !l.at.Before(t) {
			out = append(out, l.text)
		}
	}
	return out
}

// agentTimings are host's passes its log has at Debug from offset on.
func agentTimings(l *Lab, host string, offset int) []appliedLine {
	log := l.Log(host)
	if offset > len(log) {
		return nil
	}
	var out []appliedLine
	for _, line := range strings.Split(log[offset:], "\n") {
		if m := appliedRE.FindStringSubmatch(line); m != nil {
			if a, err := parseApplied(m); err == nil {
				out = append(out, a)
			}
		}
	}
	return out
}

// quantile of durations (0.5: the median); 0 for none.
func quantile(ds []time.Duration, q float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Sorted(slices.Values(ds))
	return s[min(len(s)-1, int(math.Round(q*float64(len(s)-1))))]
}

func quantileF(fs []float64, q float64) float64 {
	if len(fs) == 0 {
		return 0
	}
	s := slices.Sorted(slices.Values(fs))
	return s[min(len(s)-1, int(math.Round(q*float64(len(s)-1))))]
}

// series is one line of a plot: a value per x.
type series struct {
	Name   string
	Values []float64 // NaN: no value
}

// plotSVG writes a line plot of series against xs (log scale) to path,
// with a log-scale y axis when logY.
func plotSVG(path, title, yLabel string, xs []float64, ss []series, logY bool) error {
	const w, h, left, right, top, bottom = 560, 300, 70, 150, 30, 45
	minY, maxY := math.Inf(1), math.Inf(-1)
	for _, s := range ss {
		for _, v := range s.Values {
			if !math.IsNaN(v) && (!logY || v > 0) {
				minY, maxY = math.Min(minY, v), math.Max(maxY, v)
			}
		}
	}
	if math.IsInf(minY, 1) {
		minY, maxY = 0, 1
	}
	if !logY {
		minY = 0
	}
	if maxY <= minY {
		maxY = minY + 1
	}
	tf := func(v float64) float64 { return v }
	if logY {
		tf = math.Log10
	}
	px := func(x float64) float64 {
		return left + (math.Log10(x)-math.Log10(xs[0]))/(math.Log10(xs[len(xs)-1])-math.Log10(xs[0])+1e-9)*(w-left-right)
	}
	py := func(v float64) float64 { return top + (1-(tf(v)-tf(minY))/(tf(maxY)-tf(minY)+1e-12))*(h-top-bottom) }
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" font-family="sans-serif" font-size="11">`+"\n", w, h)
	fmt.Fprintf(&b, `<rect width="%d" height="%d" fill="white"/><text x="%d" y="18" font-size="13">%s</text>`+"\n", w, h, left, svgEscape(title))
	fmt.Fprintf(&b, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="black"/><line x1="%d" y1="%d" x2="%d" y2="%d" stroke="black"/>`+"\n",
		left, h-bottom, w-right, h-bottom, left, top, left, h-bottom)
	for _, x := range xs {
		fmt.Fprintf(&b, `<text x="%.0f" y="%d" text-anchor="middle">%g</text>`+"\n", px(x), h-bottom+15, x)
	}
	fmt.Fprintf(&b, `<text x="%d" y="%d" text-anchor="middle">hosts</text>`+"\n", (left+w-right)/2, h-8)
	mid := (minY + maxY) / 2
	if logY {
		mid = math.Pow(10, (tf(minY)+tf(maxY))/2)
	}
	for _, v := range []float64{minY, mid, maxY} {
		fmt.Fprintf(&b, `<text x="%d" y="%.0f" text-anchor="end">%.3g</text>`+"\n", left-4, py(v)+4, v)
	}
	fmt.Fprintf(&b, `<text x="12" y="%d" transform="rotate(-90 12 %d)" text-anchor="middle">%s</text>`+"\n", (top+h-bottom)/2, (top+h-bottom)/2, svgEscape(yLabel))
	colors := []string{"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b"}
	for i, s := range ss {
		c := colors[i%len(colors)]
		var pts []string
		for j, v := range s.Values {
			if j < len(xs) && !math.IsNaN(v) && (!logY || v > 0) {
				pts = append(pts, fmt.Sprintf("%.1f,%.1f", px(xs[j]), py(v)))
				fmt.Fprintf(&b, `<circle cx="%.1f" cy="%.1f" r="3" fill="%s"/>`+"\n", px(xs[j]), py(v), c)
			}
		}
		fmt.Fprintf(&b, `<polyline fill="none" stroke="%s" stroke-width="2" points="%s"/>`+"\n", c, strings.Join(pts, " "))
		fmt.Fprintf(&b, `<rect x="%d" y="%d" width="12" height="3" fill="%s"/><text x="%d" y="%d">%s</text>`+"\n",
			w-right+10, top+10+i*16, c, w-right+26, top+14+i*16, svgEscape(s.Name))
	}
	b.WriteString("</svg>\n")
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return os.WriteFile(path, []byte(b.String()), 0o644)
}

func svgEscape(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;").Replace(s)
}
