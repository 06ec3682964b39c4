// Command probe is the e2e tests' connectivity checker, run inside
// workload namespaces:
//
//	probe serve PORT            accept TCP on every address (IPv4 and IPv6) and answer "ok"
//	probe connect ADDR PORT     exit 0 if a TCP connection gets "ok" within one second
//	probe tlsnocert ADDR:PORT   exit 0 if a TLS server refuses a client without a certificate
//	                            (1 if it answers a request, 2 if nothing listens)
//	probe udp ADDR:PORT TEXT    send one UDP datagram holding TEXT
//
// the chaos test's chaos (chaos.go), the benchmarks' flip, rrserve, rr
// and conns (bench.go), and the VM tests' tapbridge, dhcpsniff, udpsend
// and udprecv (guest.go).
package main

import (
	"crypto/tls"
	"fmt"
	"net"
	"os"
	"time"
)

// commands are probe's subcommands: how many arguments each takes after
// its name, and what it does with them.
var commands = map[string]struct {
	args int
	run  func(a []string)
}{
	"serve":     {1, func(a []string) { serve(a[0]) }},
	"connect":   {2, func(a []string) { connect(a[0], a[1]) }},
	"udp":       {2, func(a []string) { udp(a[0], a[1]) }},
	"tlsnocert": {1, func(a []string) { os.Exit(tlsNoCert(a[0])) }},
	"chaos":     {3, func(a []string) { chaos(a[0], a[1], a[2]) }},
	"tapbridge": {4, func(a []string) { tapBridge(a[0], a[1], a[2], a[3]) }},
	"dhcpsniff": {2, func(a []string) { dhcpSniff(a[0], a[1]) }},
	"udpsend":   {1, func(a []string) { udpSend(a[0]) }},
	"udprecv":   {1, func(a []string) { udpRecv(a[0]) }},
	"flip":      {3, func(a []string) { flip(net.JoinHostPort(a[0], a[1]), a[2]) }},
	"rrserve":   {1, func(a []string) { rrServe(a[0]) }},
	"rr":        {3, func(a []string) { rate("rr", net.JoinHostPort(a[0], a[1]), a[2]) }},
	"conns":     {3, func(a []string) { rate("conns", net.JoinHostPort(a[0], a[1]), a[2]) }},
}

func main() {
	if len(os.Args) < 3 {
		fmt.Fprintln(os.Stderr, "usage: probe serve PORT | probe connect ADDR PORT | ...")
		os.Exit(2)
	}
	cmd, ok := commands[os.Args[1]]
	if !ok || len(os.Args)-2 != cmd.args {
		fmt.Fprintf(os.Stderr, "probe %s: unknown, or not %d arguments\n", os.Args[1], cmd.args)
		os.Exit(2)
	}
	cmd.run(os.Args[2:])
}

// serve answers "ok" to every TCP connection on port.
func serve(port string) {
	ln, err := net.Listen("tcp", ":"+port)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	for {
		c, err := ln.Accept()
		if err != nil {
			continue
		}
		c.Write([]byte("ok"))
		c.Close()
	}
}

// connect exits 0 when addr:port answers "ok" within a second.
func connect(addr, port string) {
	c, err := net.DialTimeout("tcp", net.JoinHostPort(addr, port), time.Second)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	c.SetDeadline(time.Now().Add(time.Second))
	buf := make([]byte, 2)
	if _, err := c.Read(buf); err != nil || string(buf) != "ok" {
		fmt.Fprintln(os.Stderr, "no answer:", err)
		os.Exit(1)
	}
}

// udp sends one datagram of text to addr.
func udp(addr, text string) {
	c, err := net.Dial("udp", addr)
	if err == nil {
		_, err = c.Write([]byte(text))
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

// tlsNoCert offers a TLS handshake without a client certificate and, if
// the server goes on, an HTTP request (TLS 1.3 servers reject a missing
// certificate only after the client's handshake is done).
func tlsNoCert(addr string) int {
	raw, err := net.DialTimeout("tcp", addr, 3*time.Second)
	if err != nil {
		fmt.Println("cannot connect:", err)
		return 2
	}
	raw.SetDeadline(time.Now().Add(5 * time.Second))
	c := tls.Client(raw, &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"http/1.1"}})
	defer c.Close()
	if err := c.Handshake(); err != nil {
		fmt.Println("refused in the handshake:", err)
		return 0
	}
	if _, err := c.Write([]byte("GET /health HTTP/1.1\r\nHost: " + addr + "\r\nConnection: close\r\n\r\n")); err != nil {
		fmt.Println("refused after the handshake:", err)
		return 0
	}
	buf := make([]byte, 512)
	n, err := c.Read(buf)
	if n == 0 {
		fmt.Println("refused after the handshake:", err)
		return 0
	}
	fmt.Printf("the server answered a client without a certificate: %q\n", buf[:n])
	return 1
}
