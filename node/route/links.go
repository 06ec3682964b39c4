package route

import (
	"errors"
	"fmt"
	"maps"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// linkNamer knows the interfaces' names by index, for reading the
// kernel's routes back: those carry an index. It asks the kernel for the
// name of one index at a time (SIOCGIFNAME, a few microseconds), never
// for a listing of the links: with a thousand workload interfaces a
// listing cost 20-100 ms and 10 MB of allocation (the kernel describes
// every link, statistics and sysctls and all, and the library copies it
// all), which a restart paid before its first routes. Names are
// remembered: learned from the routes programmed and from the kernel's
// answers, and asked again when a minute old. The kernel hands out an
// index only once (cyclically, over 2^31), so a name remembered for an
// index is stale only after a rename, which the minute catches.
type linkNamer struct {
	fd        int // an AF_UNIX socket of the table's namespace, for SIOCGIFNAME
	closeOnce sync.Once
	mu        sync.Mutex
	byIdx     map[int]string
	asked     time.Time // when the names were last all forgotten
	lookup    int       // names asked of the kernel, for tests
}

// namesMaxAge is how long linkNamer trusts a name without asking again.
const namesMaxAge = time.Minute

// newLinkNamer asks for names through an AF_UNIX socket of the calling
// thread's network namespace (the socket's namespace is the one asked
// about); close releases it.
func newLinkNamer() (*linkNamer, error) {
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("opening a socket for interface names: %w", err)
	}
	// Nothing known is nothing stale: the minute runs from now.
	return &linkNamer{fd: fd, byIdx: map[int]string{}, asked: time.Now()}, nil
}

// close releases the socket, once however often it is called.
func (n *linkNamer) close() { n.closeOnce.Do(func() { unix.Close(n.fd) }) }

// name asks the kernel for the name of the interface with index.
func (n *linkNamer) name(index int) (string, error) {
	ifr, err := unix.NewIfreq("")
	if err != nil {
		return "", err
	}
	ifr.SetUint32(uint32(index))
	if err := unix.IoctlIfreq(n.fd, unix.SIOCGIFNAME, ifr); err != nil {
		return "", err
	}
	return ifr.Name(), nil
}

// learn remembers the name of an interface a route was programmed through.
func (n *linkNamer) learn(index int, name string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.byIdx[index] = name
}

// names returns the interfaces' names for indexes, by index: from memory,
// asking the kernel for those not known (all of them once the names are
// a minute old). An index without an interface any more has no name.
func (n *linkNamer) names(indexes []int) (map[int]string, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if time.Since(n.asked) >= namesMaxAge {
		clear(n.byIdx)
		n.asked = time.Now()
	}
	for _, i := range indexes {
		if _, ok := n.byIdx[i]; ok {
			continue
		}
		name, err := n.name(i)
		n.lookup++
		if errors.Is(err, unix.ENODEV) {
			continue // gone since the routes were read
		}
		if err != nil {
			return nil, fmt.Errorf("naming interface %d: %w", i, err)
		}
		n.byIdx[i] = name
	}
	return maps.Clone(n.byIdx), nil
}
