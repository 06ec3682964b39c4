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

func main() {
	if len(os.Args) < 3 {
		fmt.Fprintln(os.Stderr, "usage: probe serve PORT | probe connect ADDR PORT")
		os.Exit(2)
	}
	switch os.Args[1] {
	case "serve":
		ln, err := net.Listen("tcp", ":"+os.Args[2])
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
	case "connect":
		if len(os.Args) != 4 {
			os.Exit(2)
		}
		c, err := net.DialTimeout("tcp", net.JoinHostPort(os.Args[2], os.Args[3]), time.Second)
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
	case "udp":
		if len(os.Args) != 4 {
			os.Exit(2)
		}
		c, err := net.Dial("udp", os.Args[2])
		if err == nil {
			_, err = c.Write([]byte(os.Args[3]))
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
	case "tlsnocert":
		os.Exit(tlsNoCert(os.Args[2]))
	case "chaos":
		if len(os.Args) != 5 {
			os.Exit(2)
		}
		chaos(os.Args[2], os.Args[3], os.Args[4])
	case "tapbridge":
		if len(os.Args) != 6 {
			os.Exit(2)
		}
		tapBridge(os.Args[2], os.Args[3], os.Args[4], os.Args[5])
	case "dhcpsniff":
		if len(os.Args) != 4 {
			os.Exit(2)
		}
		dhcpSniff(os.Args[2], os.Args[3])
	case "udpsend":
		udpSend(os.Args[2])
	case "udprecv":
		udpRecv(os.Args[2])
	case "flip":
		flip(net.JoinHostPort(os.Args[2], os.Args[3]))
	case "rrserve":
		rrServe(os.Args[2])
	case "rr", "conns":
		if len(os.Args) != 5 {
			os.Exit(2)
		}
		rate(os.Args[1], net.JoinHostPort(os.Args[2], os.Args[3]), os.Args[4])
	default:
		os.Exit(2)
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
