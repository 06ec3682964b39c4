package e2e

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"runtime"
	"time"

	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// capture reads every frame on every interface of network namespace ns
// for d, through an AF_PACKET socket opened inside it.
func capture(ns string, d time.Duration) ([][]byte, error) {
	fd, err := packetSocket(ns)
	if err != nil {
		return nil, err
	}
	defer unix.Close(fd)
	tv := unix.NsecToTimeval((200 * time.Millisecond).Nanoseconds())
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		return nil, err
	}
	var frames [][]byte
	buf := make([]byte, 1<<16)
	for deadline := time.Now().Add(d); time.Now().Before(deadline); {
		n, _, err := unix.Recvfrom(fd, buf, 0)
		if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("reading frames: %w", err)
		}
		frames = append(frames, bytes.Clone(buf[:n]))
	}
	return frames, nil
}

// packetSocket opens a raw packet socket for every protocol in network
// namespace ns: the socket belongs to the namespace it was made in.
func packetSocket(ns string) (int, error) {
	type result struct {
		fd  int
		err error
	}
	ch := make(chan result, 1)
	go func() {
		// The thread stays locked (and dies with this goroutine) if it
		// cannot go back to its own namespace.
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			ch <- result{-1, err}
			return
		}
		defer orig.Close()
		target, err := netns.GetFromName(ns)
		if err != nil {
			ch <- result{-1, fmt.Errorf("opening namespace %s: %w", ns, err)}
			return
		}
		defer target.Close()
		if err := netns.Set(target); err != nil {
			ch <- result{-1, fmt.Errorf("entering namespace %s: %w", ns, err)}
			return
		}
		fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW, int(htons(unix.ETH_P_ALL)))
		if err := netns.Set(orig); err != nil {
			if fd >= 0 {
				unix.Close(fd)
			}
			ch <- result{-1, fmt.Errorf("leaving namespace %s: %w", ns, err)}
			return
		}
		runtime.UnlockOSThread()
		ch <- result{fd, err}
	}()
	r := <-ch
	return r.fd, r.err
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

// transport reads the protocol and ports of a TCP or UDP frame over IPv4
// or IPv6 (without extension headers).
func transport(f []byte) (proto string, sport, dport uint16, ok bool) {
	if len(f) < 14 {
		return "", 0, 0, false
	}
	var next byte
	var l4 int
	switch binary.BigEndian.Uint16(f[12:14]) {
	case 0x0800:
		if len(f) < 34 {
			return "", 0, 0, false
		}
		next, l4 = f[23], 14+int(f[14]&0x0f)*4
	case 0x86dd:
		if len(f) < 54 {
			return "", 0, 0, false
		}
		next, l4 = f[20], 54
	default:
		return "", 0, 0, false
	}
	switch next {
	case unix.IPPROTO_TCP:
		proto = "tcp"
	case unix.IPPROTO_UDP:
		proto = "udp"
	default:
		return "", 0, 0, false
	}
	if len(f) < l4+4 {
		return "", 0, 0, false
	}
	return proto, binary.BigEndian.Uint16(f[l4:]), binary.BigEndian.Uint16(f[l4+2:]), true
}
