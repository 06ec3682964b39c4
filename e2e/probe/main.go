// Command probe is the e2e tests' connectivity checker, run inside
// workload namespaces:
//
//	probe serve PORT            accept TCP on every address (IPv4 and IPv6) and answer "ok"
//	probe connect ADDR PORT     exit 0 if a TCP connection gets "ok" within one second
package main

import (
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
	default:
		os.Exit(2)
	}
}
