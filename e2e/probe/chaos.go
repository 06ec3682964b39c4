package main

// The chaos test's subcommand:
//
//	probe chaos NAME TARGETS INTERVAL
//
// runs in a workload's network namespace for the whole test, one process
// per workload. It serves TCP 8080 and 8081 (each connection is answered
// "ok NAME") and, every INTERVAL, probes every target listed in the file
// TARGETS at once: a TCP connection to 8080 and to 8081 and a ping, each
// bounded by a timeout. TARGETS holds "gen N" and then one "NAME ADDR"
// line per target; the probe reads it again every round and skips itself.
// It prints one line per event on stdout, times in Unix milliseconds:
//
//	G MS GEN                           began to probe the targets of generation GEN
//	T MS TARGET ADDR PORT ok PEER      a connection answered by workload PEER
//	T MS TARGET ADDR PORT fail         no answer (refused, timed out, reset)
//	I MS TARGET ADDR ok|fail           a ping answered, or not
//	A MS PORT SRC                      this workload accepted a connection from SRC

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"net"
	"os"
	"strings"
	"sync"
	"time"
)

// chaosTimeout bounds one connection's answer and one ping's reply.
const chaosTimeout = 800 * time.Millisecond

var chaosPorts = []string{"8080", "8081"}

type chaosTarget struct{ name, addr string }

// chaosOut writes whole lines from many goroutines.
type chaosOut struct {
	mu sync.Mutex
	w  *bufio.Writer
}

func (o *chaosOut) line(kind, format string, args ...any) {
	o.mu.Lock()
	defer o.mu.Unlock()
	fmt.Fprintf(o.w, "%s %d "+format+"\n", append([]any{kind, time.Now().UnixMilli()}, args...)...)
	o.w.Flush()
}

func chaos(name, targets, interval string) {
	every, err := time.ParseDuration(interval)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	out := &chaosOut{w: bufio.NewWriter(os.Stdout)}
	for _, port := range chaosPorts {
		ln, err := net.Listen("tcp", ":"+port)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		go chaosServe(ln, name, port, out)
	}
	pinger, err := newPinger()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	gen := ""
	tick := time.NewTicker(every)
	for ; ; <-tick.C {
		g, ts, err := chaosTargets(targets, name)
		if err != nil {
			continue // being replaced: the next round reads it
		}
		if g != gen {
			gen = g
			out.line("G", "%s", gen)
		}
		var wg sync.WaitGroup
		for _, t := range ts {
			for _, port := range chaosPorts {
				wg.Go(func() { chaosConnect(t, port, out) })
			}
			wg.Go(func() {
				res := "fail"
				if pinger.ping(t.addr) {
					res = "ok"
				}
				out.line("I", "%s %s %s", t.name, t.addr, res)
			})
		}
		wg.Wait()
	}
}

func chaosServe(ln net.Listener, name, port string, out *chaosOut) {
	for {
		c, err := ln.Accept()
		if err != nil {
			continue
		}
		src, _, _ := net.SplitHostPort(c.RemoteAddr().String())
		out.line("A", "%s %s", port, src)
		c.Write([]byte("ok " + name + "\n"))
		c.Close()
	}
}

func chaosConnect(t chaosTarget, port string, out *chaosOut) {
	c, err := net.DialTimeout("tcp", net.JoinHostPort(t.addr, port), chaosTimeout)
	if err != nil {
		out.line("T", "%s %s %s fail", t.name, t.addr, port)
		return
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(chaosTimeout))
	line, err := bufio.NewReader(c).ReadString('\n')
	peer, ok := strings.CutPrefix(strings.TrimSpace(line), "ok ")
	if err != nil || !ok || peer == "" {
		out.line("T", "%s %s %s fail", t.name, t.addr, port)
		return
	}
	out.line("T", "%s %s %s ok %s", t.name, t.addr, port, peer)
}

// chaosTargets reads the targets file: its generation and its targets
// other than self.
func chaosTargets(path, self string) (string, []chaosTarget, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", nil, err
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	gen, ok := strings.CutPrefix(lines[0], "gen ")
	if !ok {
		return "", nil, fmt.Errorf("%s: no generation", path)
	}
	var ts []chaosTarget
	for _, l := range lines[1:] {
		f := strings.Fields(l)
		if len(f) == 2 && f[0] != self {
			ts = append(ts, chaosTarget{f[0], f[1]})
		}
	}
	return gen, ts, nil
}

// pinger sends ICMP echo requests (IPv4 and IPv6) from raw sockets and
// matches the replies to them by source address and sequence number.
type pinger struct {
	v4, v6 net.PacketConn
	id     uint16

	mu      sync.Mutex
	seq     uint16
	waiting map[string]chan struct{} // "addr/seq"
}

func newPinger() (*pinger, error) {
	v4, err := net.ListenPacket("ip4:icmp", "0.0.0.0")
	if err != nil {
		return nil, err
	}
	v6, err := net.ListenPacket("ip6:ipv6-icmp", "::")
	if err != nil {
		return nil, err
	}
	p := &pinger{v4: v4, v6: v6, id: uint16(os.Getpid()), waiting: map[string]chan struct{}{}}
	go p.read(v4, 0)
	go p.read(v6, 129)
	return p, nil
}

// read hands each echo reply (type 0 for IPv4, 129 for IPv6) to the ping
// waiting for it.
func (p *pinger) read(c net.PacketConn, reply byte) {
	buf := make([]byte, 1500)
	for {
		n, from, err := c.ReadFrom(buf)
		if err != nil {
			continue
		}
		if n < 8 || buf[0] != reply || binary.BigEndian.Uint16(buf[4:]) != p.id {
			continue
		}
		ip, _ := from.(*net.IPAddr)
		if ip == nil {
			continue
		}
		key := fmt.Sprintf("%s/%d", ip.IP, binary.BigEndian.Uint16(buf[6:]))
		p.mu.Lock()
		if ch, ok := p.waiting[key]; ok {
			close(ch)
			delete(p.waiting, key)
		}
		p.mu.Unlock()
	}
}

// ping sends one echo request to addr and reports whether its reply came
// within the timeout.
func (p *pinger) ping(addr string) bool {
	ip := net.ParseIP(addr)
	if ip == nil {
		return false
	}
	c, typ := p.v6, byte(128)
	if ip.To4() != nil {
		c, typ = p.v4, 8
	}
	p.mu.Lock()
	p.seq++
	seq := p.seq
	ch := make(chan struct{})
	key := fmt.Sprintf("%s/%d", ip, seq)
	p.waiting[key] = ch
	p.mu.Unlock()
	defer func() {
		p.mu.Lock()
		delete(p.waiting, key)
		p.mu.Unlock()
	}()
	msg := make([]byte, 16)
	msg[0] = typ
	binary.BigEndian.PutUint16(msg[4:], p.id)
	binary.BigEndian.PutUint16(msg[6:], seq)
	copy(msg[8:], "calicoch")
	if typ == 8 { // the kernel sums ICMPv6 itself
		binary.BigEndian.PutUint16(msg[2:], icmpChecksum(msg))
	}
	if _, err := c.WriteTo(msg, &net.IPAddr{IP: ip}); err != nil {
		return false
	}
	select {
	case <-ch:
		return true
	case <-time.After(chaosTimeout):
		return false
	}
}

func icmpChecksum(b []byte) uint16 {
	var sum uint32
	for i := 0; i+1 < len(b); i += 2 {
		sum += uint32(b[i])<<8 | uint32(b[i+1])
	}
	if len(b)%2 == 1 {
		sum += uint32(b[len(b)-1]) << 8
	}
	for sum>>16 != 0 {
		sum = sum&0xffff + sum>>16
	}
	return ^uint16(sum)
}
