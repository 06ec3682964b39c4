package main

// The benchmarks' subcommands:
//
//	probe flip ADDR PORT MS     for each line "ok" or "fail" read from stdin, open a new
//	                            TCP connection every MS milliseconds until one has that
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
	"net/netip"
	"os"
	"runtime"
	"strconv"
	"time"

	"golang.org/x/sys/unix"
)

// flip answers one "ok"/"fail" request per stdin line. Attempts are
// judged in launch order: the first attempt with the wanted outcome, all
// earlier ones having had the other, is the one whose launch is printed.
//
// It is one thread over non-blocking sockets, a timerfd and one epoll,
// as it runs beside the nodes it measures, on the same cores: a
// goroutine per attempt (net.DialTimeout) woke the Go scheduler's
// threads for each, about twice the user time. The kernel's work for
// each connection, at both ends, is the same whatever the client: the
// interval sets the probe's load.
func flip(addr, every string) {
	const timeout = 150 * time.Millisecond
	ms, err := strconv.Atoi(every)
	if err != nil || ms < 1 {
		fmt.Fprintf(os.Stderr, "probe flip: interval %q is not a whole number of milliseconds\n", every)
		os.Exit(2)
	}
	runtime.GOMAXPROCS(1)
	runtime.LockOSThread()
	ap, err := netip.ParseAddrPort(addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	family, sa := unix.AF_INET, unix.Sockaddr(&unix.SockaddrInet4{Port: int(ap.Port()), Addr: ap.Addr().As4()})
	if ap.Addr().Is6() && !ap.Addr().Is4In6() {
		family, sa = unix.AF_INET6, &unix.SockaddrInet6{Port: int(ap.Port()), Addr: ap.Addr().As16()}
	}
	ep, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	must(err)
	tfd, err := unix.TimerfdCreate(unix.CLOCK_MONOTONIC, unix.TFD_NONBLOCK|unix.TFD_CLOEXEC)
	must(err)
	must(unix.EpollCtl(ep, unix.EPOLL_CTL_ADD, tfd, &unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(tfd)}))
	tick := unix.NsecToTimespec(int64(time.Duration(ms) * time.Millisecond))
	var buf [8]byte
	events := make([]unix.EpollEvent, 256)

	type attempt struct {
		launched time.Time
		fd       int // -1 once judged
		ok       bool
	}
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		want := in.Text() == "ok"
		var atts []attempt
		byFD := map[int]int{}
		judge := func(i int, ok bool) {
			a := &atts[i]
			if a.fd < 0 {
				return
			}
			// A reset on close: no TIME_WAIT, no FIN exchange.
			unix.SetsockoptLinger(a.fd, unix.SOL_SOCKET, unix.SO_LINGER, &unix.Linger{Onoff: 1, Linger: 0})
			unix.Close(a.fd)
			delete(byFD, a.fd)
			a.fd, a.ok = -1, ok
		}
		launch := func() {
			atts = append(atts, attempt{launched: time.Now(), fd: -1})
			i := len(atts) - 1
			fd, err := unix.Socket(family, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
			if err != nil {
				return // judged: failed
			}
			atts[i].fd, byFD[fd] = fd, i
			switch err := unix.Connect(fd, sa); err {
			case nil:
				judge(i, true)
			case unix.EINPROGRESS:
				must(unix.EpollCtl(ep, unix.EPOLL_CTL_ADD, fd, &unix.EpollEvent{Events: unix.EPOLLOUT, Fd: int32(fd)}))
			default:
				judge(i, false)
			}
		}
		must(unix.TimerfdSettime(tfd, 0, &unix.ItimerSpec{Interval: tick, Value: tick}, nil))
		launch()
		deadline := time.Now().Add(20 * time.Second)
		next, done := 0, false
		for !done {
			n, err := unix.EpollWait(ep, events, -1)
			if err == unix.EINTR {
				continue
			}
			must(err)
			for _, ev := range events[:n] {
				fd := int(ev.Fd)
				if fd == tfd {
					unix.Read(tfd, buf[:]) // the count of ticks: one launch, as a ticker drops ticks
					launch()
					continue
				}
				if i, ok := byFD[fd]; ok {
					soErr, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_ERROR)
					judge(i, err == nil && soErr == 0)
				}
			}
			now := time.Now()
			for i := next; i < len(atts); i++ {
				if atts[i].fd >= 0 && now.Sub(atts[i].launched) >= timeout {
					judge(i, false) // no answer in time
				}
			}
			for ; next < len(atts) && atts[next].fd < 0; next++ {
				if atts[next].ok == want {
					fmt.Printf("%d %d\n", atts[next].launched.UnixNano(), next+1)
					done = true
					break
				}
			}
			if !done && now.After(deadline) {
				fmt.Println("timeout")
				done = true
			}
		}
		must(unix.TimerfdSettime(tfd, 0, &unix.ItimerSpec{}, nil))
		unix.Read(tfd, buf[:])
		for i := range atts {
			judge(i, false) // the rest, still open, closed
		}
	}
}

func must(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
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
