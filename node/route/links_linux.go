package route

import (
	"encoding/binary"
	"fmt"
	"maps"
	"os"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// rtextFilterSkipStats (RTEXT_FILTER_SKIP_STATS in the kernel's
// rtnetlink.h) asks a link dump to leave out each link's counters.
const rtextFilterSkipStats = 1 << 3

// linkNamer knows the interfaces' names by index, for reading the
// kernel's routes back: those carry an index. A thousand workload
// interfaces cost a link dump 20-100 ms (the kernel describes every
// link, sysctls and all), which a read-back every few seconds paid and
// which held up whatever change came meanwhile; the routes alone cost a
// few. So the names are remembered: learned from the routes programmed
// (learn) and from a dump when a route names an index not known or the
// names are a minute old. The kernel hands out an index only once
// (cyclically, over 2^31), so a name remembered for an index is stale
// only after a rename, which the minute's dump catches; the dump asks
// for no counters and is read for the names alone.
type linkNamer struct {
	mu     sync.Mutex
	fd     int
	seq    uint32
	buf    []byte
	byIdx  map[int]string
	dumped time.Time
	dumps  int // for tests
}

// namesMaxAge is how long linkNamer trusts what it knows without a dump.
const namesMaxAge = time.Minute

// newLinkNamer opens its socket in the calling thread's network namespace.
func newLinkNamer() (*linkNamer, error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_ROUTE)
	if err != nil {
		return nil, os.NewSyscallError("socket", err)
	}
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		unix.Close(fd)
		return nil, os.NewSyscallError("bind", err)
	}
	// Nothing known is nothing stale: the minute runs from now.
	return &linkNamer{fd: fd, buf: make([]byte, 64<<10), byIdx: map[int]string{}, dumped: time.Now()}, nil
}

func (n *linkNamer) close() { unix.Close(n.fd) }

// learn remembers the name of an interface a route was programmed through.
func (n *linkNamer) learn(index int, name string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.byIdx[index] = name
}

// names returns the interfaces' names for indexes, by index: from memory
// when it knows them all and is not a minute old, else from a dump.
func (n *linkNamer) names(indexes []int) (map[int]string, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	known := time.Since(n.dumped) < namesMaxAge
	for _, i := range indexes {
		if _, ok := n.byIdx[i]; !ok {
			known = false
			break
		}
	}
	if !known {
		m, err := n.dump()
		if err != nil {
			return nil, err
		}
		n.byIdx, n.dumped = m, time.Now()
		n.dumps++
	}
	return maps.Clone(n.byIdx), nil
}

// dump lists the links' names by index.
func (n *linkNamer) dump() (map[int]string, error) {
	n.seq++
	req := dumpLinksRequest(n.seq)
	if err := unix.Sendto(n.fd, req, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return nil, os.NewSyscallError("sendto", err)
	}
	out := map[int]string{}
	for {
		k, _, err := unix.Recvfrom(n.fd, n.buf, 0)
		if err != nil {
			return nil, os.NewSyscallError("recvfrom", err)
		}
		msgs, err := syscall.ParseNetlinkMessage(n.buf[:k])
		if err != nil {
			return nil, fmt.Errorf("reading the link dump: %w", err)
		}
		for _, m := range msgs {
			if m.Header.Seq != n.seq {
				continue // a late answer to an earlier request
			}
			switch m.Header.Type {
			case unix.NLMSG_DONE:
				return out, nil
			case unix.NLMSG_ERROR:
				if len(m.Data) >= 4 {
					if e := int32(binary.NativeEndian.Uint32(m.Data[:4])); e != 0 {
						return nil, fmt.Errorf("link dump: %w", unix.Errno(-e))
					}
				}
				return out, nil
			case unix.RTM_NEWLINK:
				if len(m.Data) < unix.SizeofIfInfomsg {
					continue
				}
				index := int(int32(binary.NativeEndian.Uint32(m.Data[4:8])))
				attrs, err := syscall.ParseNetlinkRouteAttr(&m)
				if err != nil {
					return nil, fmt.Errorf("reading link %d: %w", index, err)
				}
				for _, a := range attrs {
					if a.Attr.Type == unix.IFLA_IFNAME {
						out[index] = unix.ByteSliceToString(a.Value)
					}
				}
			}
		}
	}
}

// dumpLinksRequest is RTM_GETLINK, a dump of every link, without counters.
func dumpLinksRequest(seq uint32) []byte {
	const attrLen = unix.SizeofRtAttr + 4
	b := make([]byte, unix.SizeofNlMsghdr+unix.SizeofIfInfomsg+attrLen)
	binary.NativeEndian.PutUint32(b[0:4], uint32(len(b)))
	binary.NativeEndian.PutUint16(b[4:6], unix.RTM_GETLINK)
	binary.NativeEndian.PutUint16(b[6:8], unix.NLM_F_REQUEST|unix.NLM_F_DUMP)
	binary.NativeEndian.PutUint32(b[8:12], seq)
	// The ifinfomsg: family AF_UNSPEC, the rest zero.
	a := b[unix.SizeofNlMsghdr+unix.SizeofIfInfomsg:]
	binary.NativeEndian.PutUint16(a[0:2], attrLen)
	binary.NativeEndian.PutUint16(a[2:4], unix.IFLA_EXT_MASK)
	binary.NativeEndian.PutUint32(a[4:8], rtextFilterSkipStats)
	return b
}
