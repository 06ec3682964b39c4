package dhcp

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"

	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

// sockets are two packet sockets, one per family, each bound to every
// interface and filtered in the kernel: IPv4 UDP to port 67; IPv6 UDP to
// port 547 and ICMPv6 router solicitations. Frames the host sends are
// not seen (a socket of one protocol sees only what comes in).
type sockets struct {
	v4, v6 *os.File
	frames chan frameIn
	done   chan struct{}
	once   sync.Once // close may be called from two goroutines at once
	closed error
}

type frameIn struct {
	b       []byte
	ifindex int
	err     error
}

// Filters, at offsets from the start of the Ethernet frame.
var (
	filter4 = []bpf.Instruction{
		bpf.LoadAbsolute{Off: 23, Size: 1}, // IPv4 protocol
		bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: protoUDP, SkipTrue: 6},
		bpf.LoadAbsolute{Off: 20, Size: 2}, // fragment offset
		bpf.JumpIf{Cond: bpf.JumpBitsSet, Val: 0x1fff, SkipTrue: 4},
		bpf.LoadMemShift{Off: 14}, // X = IPv4 header length
		bpf.LoadIndirect{Off: 16, Size: 2},
		bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: portDHCP4Server, SkipTrue: 1},
		bpf.RetConstant{Val: 0xffff},
		bpf.RetConstant{Val: 0},
	}
	filter6 = []bpf.Instruction{
		bpf.LoadAbsolute{Off: 20, Size: 1}, // IPv6 next header
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: protoUDP, SkipTrue: 3},
		bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: protoICMP, SkipTrue: 5},
		bpf.LoadAbsolute{Off: 54, Size: 1}, // ICMPv6 type
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: icmpRouterSolicit, SkipTrue: 2, SkipFalse: 3},
		bpf.LoadAbsolute{Off: 56, Size: 2}, // UDP destination port
		bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: portDHCP6Server, SkipTrue: 1},
		bpf.RetConstant{Val: 0xffff},
		bpf.RetConstant{Val: 0},
	}
)

// openSockets opens the packet sockets in the calling thread's network
// namespace.
func openSockets() (conn, error) {
	v4, err := packetSocket(etherIPv4, filter4)
	if err != nil {
		return nil, err
	}
	v6, err := packetSocket(etherIPv6, filter6)
	if err != nil {
		v4.Close()
		return nil, err
	}
	s := &sockets{v4: v4, v6: v6, frames: make(chan frameIn), done: make(chan struct{})}
	go s.pump(v4)
	go s.pump(v6)
	return s, nil
}

func packetSocket(proto uint16, filter []bpf.Instruction) (*os.File, error) {
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, int(htons(proto)))
	if err != nil {
		return nil, fmt.Errorf("packet socket: %w", err)
	}
	raw, err := bpf.Assemble(filter)
	if err == nil {
		prog := make([]unix.SockFilter, len(raw))
		for i, r := range raw {
			prog[i] = unix.SockFilter{Code: r.Op, Jt: r.Jt, Jf: r.Jf, K: r.K}
		}
		err = unix.SetsockoptSockFprog(fd, unix.SOL_SOCKET, unix.SO_ATTACH_FILTER, &unix.SockFprog{Len: uint16(len(prog)), Filter: &prog[0]})
	}
	if err == nil {
		err = unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(proto)})
	}
	if err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("packet socket: %w", err)
	}
	return os.NewFile(uintptr(fd), fmt.Sprintf("packet-%04x", proto)), nil
}

// pump reads one socket into the frames channel until it is closed.
func (s *sockets) pump(f *os.File) {
	rc, err := f.SyscallConn()
	if err != nil {
		return
	}
	for {
		buf := make([]byte, 9000)
		var n, idx int
		var rerr error
		err := rc.Read(func(fd uintptr) bool {
			var from unix.Sockaddr
			n, from, rerr = unix.Recvfrom(int(fd), buf, 0)
			if errors.Is(rerr, unix.EAGAIN) {
				return false
			}
			if ll, ok := from.(*unix.SockaddrLinklayer); ok {
				idx = ll.Ifindex
			}
			return true
		})
		if err == nil {
			err = rerr
		}
		select {
		case s.frames <- frameIn{b: buf[:max(n, 0)], ifindex: idx, err: err}:
		case <-s.done:
			return
		}
		if err != nil && errors.Is(err, os.ErrClosed) {
			return
		}
	}
}

func (s *sockets) read(buf []byte) (int, int, error) {
	select {
	case f := <-s.frames:
		if f.err != nil {
			if errors.Is(f.err, os.ErrClosed) {
				return 0, 0, net.ErrClosed
			}
			return 0, 0, f.err
		}
		return copy(buf, f.b), f.ifindex, nil
	case <-s.done:
		return 0, 0, net.ErrClosed
	}
}

func (s *sockets) write(ifindex int, frame []byte) error {
	if len(frame) < 14 {
		return errShort
	}
	proto := binary.BigEndian.Uint16(frame[12:14])
	f := s.v4
	if proto == etherIPv6 {
		f = s.v6
	}
	to := &unix.SockaddrLinklayer{Ifindex: ifindex, Protocol: htons(proto), Halen: 6}
	copy(to.Addr[:], frame[0:6])
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var werr error
	err = rc.Write(func(fd uintptr) bool {
		werr = unix.Sendto(int(fd), frame, 0, to)
		return !errors.Is(werr, unix.EAGAIN)
	})
	if err != nil {
		return err
	}
	return werr
}

func (s *sockets) close() error {
	s.once.Do(func() {
		close(s.done)
		s.closed = errors.Join(s.v4.Close(), s.v6.Close())
	})
	return s.closed
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }
