package route

import (
	"maps"
	"sync"
	"time"

	"github.com/vishvananda/netlink"
)

// linkNamer knows the interfaces' names by index, for reading the
// kernel's routes back: those carry an index. A thousand workload
// interfaces cost a listing of the links 20-100 ms (the kernel describes
// every link, sysctls and all), which a read-back every few seconds paid
// and which held up whatever change came meanwhile; the routes alone
// cost a few. So the names are remembered: learned from the routes
// programmed (learn) and from a listing when a route names an index not
// known or the names are a minute old. The kernel hands out an index
// only once (cyclically, over 2^31), so a name remembered for an index
// is stale only after a rename, which the minute's listing catches.
type linkNamer struct {
	list   func() ([]netlink.Link, error)
	mu     sync.Mutex
	byIdx  map[int]string
	dumped time.Time
	dumps  int // for tests
}

// namesMaxAge is how long linkNamer trusts what it knows without a listing.
const namesMaxAge = time.Minute

func newLinkNamer(h *netlink.Handle) *linkNamer {
	// Nothing known is nothing stale: the minute runs from now.
	return &linkNamer{list: h.LinkList, byIdx: map[int]string{}, dumped: time.Now()}
}

// learn remembers the name of an interface a route was programmed through.
func (n *linkNamer) learn(index int, name string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.byIdx[index] = name
}

// names returns the interfaces' names for indexes, by index: from memory
// when it knows them all and is not a minute old, else from a listing.
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
		links, err := n.list()
		if err != nil {
			return nil, err
		}
		m := make(map[int]string, len(links))
		for _, l := range links {
			m[l.Attrs().Index] = l.Attrs().Name
		}
		n.byIdx, n.dumped = m, time.Now()
		n.dumps++
	}
	return maps.Clone(n.byIdx), nil
}
