package main

// The benchmarks' subcommands:
//
//	probe flip ADDR PORT        for each line "ok" or "fail" read from stdin, open a new
//	                            TCP connection every millisecond until one has that
//	                            outcome (connected, or no answer within 150 ms), and
//	                            print its launch time (Unix ns) and how many were launched
//	probe rrserve PORT          echo every byte back, on any number of connections
//	probe rr ADDR PORT SECS     one connection, 1-byte round trips: print round trips/s
//	probe conns ADDR PORT SECS  new connections, one 1-byte round trip each, closed with
//	                            a reset: print connections/s

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"time"
)

// flip answers one "ok"/"fail" request per stdin line. Attempts are
// judged in launch order: the first attempt with the wanted outcome, all
// earlier ones having had the other, is the one whose launch is printed.
func flip(addr string) {
	const timeout = 150 * time.Millisecond
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		want := in.Text() == "ok"
		type result struct {
			seq int
			ok  bool
		}
		results := make(chan result, 1024)
		var launched []time.Time
		outcome := map[int]bool{}
		next := 0
		tick := time.NewTicker(time.Millisecond)
		deadline := time.After(20 * time.Second)
		done := false
		for !done {
			select {
			case <-tick.C:
				seq := len(launched)
				launched = append(launched, time.Now())
				go func() {
					c, err := net.DialTimeout("tcp", addr, timeout)
					if err == nil {
						c.Close()
					}
					results <- result{seq, err == nil}
				}()
			case r := <-results:
				outcome[r.seq] = r.ok
				for {
					ok, known := outcome[next]
					if !known {
						break
					}
					if ok == want {
						fmt.Printf("%d %d\n", launched[next].UnixNano(), next+1)
						done = true
						break
					}
					next++
				}
			case <-deadline:
				fmt.Println("timeout")
				done = true
			}
		}
		tick.Stop()
	}
}

// rrServe echoes bytes back until the peer closes.
func rrServe(port string) {
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
		go func() {
			defer c.Close()
			io.Copy(c, c)
		}()
	}
}

// rate runs one client for secs seconds and prints operations per second.
func rate(mode, addr, secs string) {
	s, err := strconv.ParseFloat(secs, 64)
	if err != nil {
		os.Exit(2)
	}
	d := time.Duration(s * float64(time.Second))
	var n int
	start := time.Now()
	switch mode {
	case "rr":
		n, err = roundTrips(addr, d)
	case "conns":
		n, err = connections(addr, d)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Printf("%.1f\n", float64(n)/time.Since(start).Seconds())
}

func roundTrips(addr string, d time.Duration) (int, error) {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	buf := []byte{'x'}
	n := 0
	for end := time.Now().Add(d); time.Now().Before(end); n++ {
		if _, err := c.Write(buf); err != nil {
			return n, err
		}
		if _, err := io.ReadFull(c, buf); err != nil {
			return n, err
		}
	}
	return n, nil
}

// connections opens connections one after another; each is reset on
// close (SO_LINGER 0), so no TIME_WAIT holds the client's ports.
func connections(addr string, d time.Duration) (int, error) {
	buf := []byte{'x'}
	n := 0
	for end := time.Now().Add(d); time.Now().Before(end); n++ {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			return n, err
		}
		_, err = c.Write(buf)
		if err == nil {
			_, err = io.ReadFull(c, buf)
		}
		c.(*net.TCPConn).SetLinger(0)
		c.Close()
		if err != nil {
			return n, errors.Join(errors.New("a round trip failed"), err)
		}
	}
	return n, nil
}
