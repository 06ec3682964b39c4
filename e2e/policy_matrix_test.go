package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// The matrix the policy scenarios (policy_test.go) check: peers that serve
// a few ports and answer with the address they were reached from, cells
// probed all at once until they hold, and the lab helpers the scenarios
// share.

// polWithin is how long a scenario's matrix may take to hold.
const polWithin = 10 * time.Second

// polTimeout bounds one probe's connect and its read of the answer.
const polTimeout = time.Second

// The ports every workload and every host serves.
var (
	polWorkloadTCP = []int{80, 5432, 6000, 6005, 6010, 6011, 7000}
	polWorkloadUDP = []int{5432}
	polHostTCP     = []int{22, 7000, 8080}
)

// polPeer is one end of a cell: a workload, a host or the lab's internet
// host.
type polPeer struct {
	name     string
	host     string // the lab host it runs on ("" for none)
	ns       string // the path of its network namespace
	v4, v6   string
	workload bool // peers it reaches must see its own address
}

func (p polPeer) addr(v6 bool) string {
	if v6 {
		return p.v6
	}
	return p.v4
}

// polCell is one expectation: from reaches to on proto/port, or not.
type polCell struct {
	from, to polPeer
	proto    string // tcp or udp
	port     int
	v6       bool
	ok       bool
	// src is the source address the destination must see; "" is the
	// sender's own address for a workload and anything for others.
	src string
}

func (c polCell) String() string {
	fam := "IPv4"
	if c.v6 {
		fam = "IPv6"
	}
	return fmt.Sprintf("%s -> %s %s/%d %s", c.from.name, c.to.name, c.proto, c.port, fam)
}

// wrong probes the cell and says what is wrong with it, or "".
func (c polCell) wrong() string {
	seen, err := polProbe(c.from.ns, c.proto, c.to.addr(c.v6), c.port)
	want := c.src
	if want == "" && c.from.workload {
		want = c.from.addr(c.v6)
	}
	switch {
	case c.ok && err != nil:
		return fmt.Sprintf("%s: refused, want allowed (%v)", c, err)
	case !c.ok && err == nil:
		return fmt.Sprintf("%s: allowed (the destination saw %s), want refused", c, seen)
	case c.ok && want != "" && seen != want:
		return fmt.Sprintf("%s: the destination saw the source %s, want %s", c, seen, want)
	}
	return ""
}

// polMatrix is a scenario's cells.
type polMatrix []polCell

// pair expects a to reach b on svc ("tcp/5432") if ab, and b to reach a
// if ba, over IPv4.
func (m *polMatrix) pair(a, b polPeer, svc string, ab, ba bool) {
	proto, p, _ := strings.Cut(svc, "/")
	port, err := strconv.Atoi(p)
	if err != nil || (proto != "tcp" && proto != "udp") {
		panic("bad service " + svc)
	}
	*m = append(*m, polCell{from: a, to: b, proto: proto, port: port, ok: ab},
		polCell{from: b, to: a, proto: proto, port: port, ok: ba})
}

// both is the matrix over IPv4 and IPv6.
func (m polMatrix) both() polMatrix {
	out := slices.Clone(m)
	for _, c := range m {
		c.v6 = true
		out = append(out, c)
	}
	return out
}

// polLab is the lab the scenarios share.
type polLab struct {
	lab   *Lab
	hosts []string
}

// check probes every cell at once, round after round, until a round
// finds every cell as expected or within passes; then it reports the
// cells the last round found wrong, with the firewall of the hosts
// involved.
func (p *polLab) check(t *testing.T, m polMatrix, within time.Duration) {
	t.Helper()
	start := time.Now()
	for round := 1; ; round++ {
		wrong := make([]string, len(m))
		var wg sync.WaitGroup
		for i, c := range m {
			wg.Go(func() { wrong[i] = c.wrong() })
		}
		wg.Wait()
		hosts := map[string]bool{}
		var msgs []string
		for i, w := range wrong {
			if w != "" {
				msgs = append(msgs, w)
				hosts[m[i].from.host], hosts[m[i].to.host] = true, true
			}
		}
		if len(msgs) == 0 {
			t.Logf("%d cells held in round %d, %s after the check began", len(m), round, time.Since(start).Round(time.Millisecond))
			return
		}
		if time.Since(start) < within {
			time.Sleep(200 * time.Millisecond)
			continue
		}
		for _, msg := range msgs {
			t.Error(msg)
		}
		for _, h := range p.hosts {
			if hosts[h] {
				p.evidence(t, h)
			}
		}
		return
	}
}

// evidence logs host's firewall and policy counters.
func (p *polLab) evidence(t *testing.T, host string) {
	t.Helper()
	nft, err := p.lab.Exec(host, "nft", "list", "table", "inet", "calico")
	if err != nil {
		nft = fmt.Sprintf("%v: %s", err, nft)
	}
	stats, errs, _ := p.lab.CalicoWithin(10*time.Second, host, "policy", "stats")
	t.Logf("%s: nft list table inet calico:\n%s\n%s: calico policy stats:\n%s%s", host, nft, host, stats, errs)
}

// polProbe connects from the network namespace ns to addr:port and returns
// the source address the server saw. A TCP server answers at once; a UDP
// one answers a datagram.
func polProbe(ns, proto, addr string, port int) (string, error) {
	target := net.JoinHostPort(addr, strconv.Itoa(port))
	var c net.Conn
	err := bgpInNS(ns, func() error {
		var err error
		c, err = net.DialTimeout(proto, target, polTimeout)
		return err
	})
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(polTimeout))
	var b []byte
	if proto == "udp" {
		if _, err := c.Write([]byte("hello")); err != nil {
			return "", err
		}
		buf := make([]byte, 128)
		n, err := c.Read(buf)
		if err != nil {
			return "", err
		}
		b = buf[:n]
	} else if b, err = io.ReadAll(c); err != nil {
		return "", err
	}
	seen, ok := strings.CutPrefix(string(b), "ok ")
	if !ok {
		return "", fmt.Errorf("answered %q", b)
	}
	return seen, nil
}

// polServe serves TCP and UDP ports in the network namespace ns until
// the test ends: each answers "ok" and the address it was reached from.
func polServe(t *testing.T, ns string, tcp, udp []int) {
	t.Helper()
	for _, port := range tcp {
		bgpServeIn(t, ns, port, func(c net.Conn) { fmt.Fprintf(c, "ok %s", polSource(c.RemoteAddr())) })
	}
	for _, port := range udp {
		var pc net.PacketConn
		err := bgpInNS(ns, func() error {
			var err error
			pc, err = net.ListenPacket("udp", fmt.Sprintf(":%d", port))
			return err
		})
		if err != nil {
			t.Fatalf("listening on udp/%d in %s: %v", port, ns, err)
		}
		var wg sync.WaitGroup
		t.Cleanup(func() { pc.Close(); wg.Wait() })
		wg.Go(func() {
			buf := make([]byte, 512)
			for {
				_, from, err := pc.ReadFrom(buf)
				if errors.Is(err, net.ErrClosed) {
					return
				}
				if err == nil {
					pc.WriteTo([]byte("ok "+polSource(from)), from)
				}
			}
		})
	}
}

// polSource is a remote address as the probe reports it.
func polSource(a net.Addr) string {
	ap, err := netip.ParseAddrPort(a.String())
	if err != nil {
		return a.String()
	}
	return ap.Addr().Unmap().WithZone("").String()
}

// workload adds a workload (bgpAddWorkload's arguments) and serves the
// workload ports in it, for the rest of the lab's life.
func (p *polLab) workload(t *testing.T, host, name string, args ...string) polPeer {
	t.Helper()
	w := bgpAddWorkload(t, p.lab, host, name, args...)
	polServe(t, w.NetNS, polWorkloadTCP, polWorkloadUDP)
	return polPeer{name: name, host: host, ns: w.NetNS, v4: w.v4(), v6: w.v6(), workload: true}
}

// tempWorkload is workload for a scenario: it is removed when t ends.
func (p *polLab) tempWorkload(t *testing.T, host, name string, args ...string) polPeer {
	t.Helper()
	ns := "default"
	if i := slices.Index(args, "--namespace"); i >= 0 && i+1 < len(args) {
		ns = args[i+1]
	}
	t.Cleanup(func() {
		if _, errs, err := p.lab.CalicoWithin(30*time.Second, host, "workload", "rm", name, "--namespace", ns); err != nil {
			t.Errorf("removing workload %s: %v: %s", name, err, errs)
		}
	})
	return p.workload(t, host, name, args...)
}

// host is a lab host as a peer, serving the host ports in its namespace.
func (p *polLab) host(t *testing.T, host string) polPeer {
	t.Helper()
	a := bgpHostAddrs(t, p.lab, host)
	polServe(t, bgpNS(host), polHostTCP, nil)
	return polPeer{name: host, host: host, ns: bgpNS(host), v4: a[0].String(), v6: a[1].String()}
}

// calico runs the CLI on host1 with stdin.
func (p *polLab) calico(stdin string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, labScript, append([]string{"calico", "host1"}, args...)...)
	cmd.Env = append(os.Environ(), "CALICO="+calicoBin, "CALICO_LAB_DIR="+p.lab.dir)
	cmd.Stdin = strings.NewReader(stdin)
	cmd.WaitDelay = time.Second
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		err = fmt.Errorf("no answer within 30s")
	}
	return string(out), err
}

// apply is `calico apply -f -` of yaml; each of its documents is deleted
// when t ends. It returns once every host has programmed the change.
func (p *polLab) apply(t *testing.T, yaml string) {
	t.Helper()
	docs := strings.Split(strings.TrimSpace(yaml), "\n---\n")
	t.Cleanup(func() {
		for _, d := range slices.Backward(docs) {
			if out, err := p.calico(d, "delete", "-f", "-"); err != nil && !strings.Contains(out, "does not exist") {
				t.Errorf("calico delete -f - of\n%s\n: %v: %s", d, err, out)
			}
		}
		p.settle(t)
	})
	if out, err := p.calico(yaml, "apply", "-f", "-"); err != nil {
		t.Fatalf("calico apply -f - of\n%s\n: %v: %s", yaml, err, out)
	}
	p.settle(t)
}

// polStatus is the part of `calico status -o json` the scenarios read.
type polStatus struct {
	Datastore struct {
		Healthy  bool   `json:"healthy"`
		Revision int64  `json:"revision"`
		Error    string `json:"error"`
	} `json:"datastore"`
	Dataplane struct {
		Revision int64  `json:"revision"`
		Error    string `json:"error"`
	} `json:"dataplane"`
	BGP []struct {
		Peer  string    `json:"peer"`
		Node  string    `json:"node"`
		State string    `json:"state"`
		Since time.Time `json:"since"`
	} `json:"bgp"`
}

func (p *polLab) status(host string) (polStatus, error) {
	var st polStatus
	out, errs, err := p.lab.CalicoWithin(10*time.Second, host, "status", "-o", "json")
	if err != nil {
		return st, fmt.Errorf("status on %s: %v: %s", host, err, strings.TrimSpace(errs))
	}
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		return st, fmt.Errorf("status on %s printed %q: %v", host, out, err)
	}
	return st, nil
}

// settle waits until every host has programmed its dataplane at the
// datastore revision host1 is at now, so that a matrix sees the policy
// just written and not the one before. It only logs what it waited for in
// vain: the matrix that follows is the verdict.
func (p *polLab) settle(t *testing.T) {
	t.Helper()
	st, err := p.status("host1")
	if err != nil {
		t.Logf("settle: %v", err)
		return
	}
	rev := st.Datastore.Revision
	deadline := time.Now().Add(10 * time.Second)
	for _, h := range p.hosts {
		for {
			st, err := p.status(h)
			if err == nil && st.Dataplane.Revision >= rev && st.Dataplane.Error == "" {
				break
			}
			if time.Now().After(deadline) {
				t.Logf("settle: %s has not programmed revision %d within 10s: %+v %v", h, rev, st.Dataplane, err)
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
}
