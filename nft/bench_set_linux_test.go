package nft

import (
	"fmt"
	"net"
	"net/netip"
	"testing"
	"time"

	"calico/internal/testutil"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// The benchmarks in this file compare the kernel's two set backends for an
// address set, whatever the renderer does: a hash set (type ipv4_addr)
// and an interval set (the same, flags interval, an rbtree), built with
// google/nftables in a table of their own in a fresh namespace. They
// decided that every Set is an interval set (DESIGN.md).

// setSize is the number of addresses in the compared sets: 100,000,
// every other address from 10.0.0.0, so that no two merge into one
// interval.
const setSize = 100_000

func spacedAddr(i int) netip.Addr {
	return netip.AddrFrom4([4]byte{10, byte(i >> 15), byte(i >> 7), byte(i << 1)})
}

// benchTable is the compared sets' own table.
var benchTable = &nftables.Table{Name: "bench", Family: nftables.TableFamilyINet}

// rawSet describes the set of one backend.
func rawSet(interval bool) *nftables.Set {
	name := "hash"
	if interval {
		name = "interval"
	}
	return &nftables.Set{Table: benchTable, Name: name, KeyType: nftables.TypeIPAddr, Interval: interval}
}

// rawElems are the kernel elements for addresses: one each in a hash
// set, a start and an end each in an interval set.
func rawElems(as []netip.Addr, interval bool) []nftables.SetElement {
	var out []nftables.SetElement
	for _, a := range as {
		out = append(out, nftables.SetElement{Key: a.AsSlice()})
		if interval {
			out = append(out, nftables.SetElement{Key: a.Next().AsSlice(), IntervalEnd: true})
		}
	}
	return out
}

// addRawElems queues elements in messages that fit one attribute.
func addRawElems(t testing.TB, c *nftables.Conn, s *nftables.Set, es []nftables.SetElement, del bool) {
	for len(es) > 0 {
		n := min(len(es), 2000)
		var err error
		if del {
			err = c.SetDeleteElements(s, es[:n])
		} else {
			err = c.SetAddElements(s, es[:n])
		}
		if err != nil {
			t.Fatal(err)
		}
		es = es[n:]
	}
}

// loadRawSet makes the set of one backend holding 127.0.0.1 and setSize
// spaced addresses in one transaction, and returns how long it took.
func loadRawSet(t testing.TB, ns *testutil.NetNS, interval bool) time.Duration {
	return loadRawSetN(t, ns, interval, setSize)
}

func loadRawSetN(t testing.TB, ns *testutil.NetNS, interval bool, n int) time.Duration {
	c, err := nftables.New(nftables.WithNetNSFd(int(ns.Handle())), nftables.WithSockOptions(sockOptions(time.Now().Add(time.Minute))))
	if err != nil {
		t.Fatal(err)
	}
	as := []netip.Addr{netip.MustParseAddr("127.0.0.1")}
	for i := range n {
		as = append(as, spacedAddr(i))
	}
	start := time.Now()
	c.AddTable(benchTable)
	s := rawSet(interval)
	if err := c.AddSet(s, nil); err != nil {
		t.Fatal(err)
	}
	addRawElems(t, c, s, rawElems(as, interval), false)
	if err := c.Flush(); err != nil {
		t.Fatalf("loading the %s set: %v", s.Name, err)
	}
	return time.Since(start)
}

// BenchmarkPrivilegedSetLoad loads a set of 100,000 addresses into a
// fresh table in one transaction.
func BenchmarkPrivilegedSetLoad(b *testing.B) {
	for _, interval := range []bool{false, true} {
		b.Run(rawSet(interval).Name, func(b *testing.B) {
			testutil.Privileged(b)
			ns := testutil.NewNetNS(b)
			c, err := nftables.New(nftables.WithNetNSFd(int(ns.Handle())))
			if err != nil {
				b.Fatal(err)
			}
			for b.Loop() {
				loadRawSet(b, ns, interval)
				b.StopTimer()
				c.DelTable(benchTable)
				if err := c.Flush(); err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
			}
		})
	}
}

// BenchmarkPrivilegedSetToggle adds and removes one address of a set of
// 100,000, one transaction each.
func BenchmarkPrivilegedSetToggle(b *testing.B) {
	for _, interval := range []bool{false, true} {
		b.Run(rawSet(interval).Name, func(b *testing.B) {
			testutil.Privileged(b)
			ns := testutil.NewNetNS(b)
			loadRawSet(b, ns, interval)
			c, err := nftables.New(nftables.WithNetNSFd(int(ns.Handle())))
			if err != nil {
				b.Fatal(err)
			}
			s := rawSet(interval)
			one := rawElems([]netip.Addr{netip.MustParseAddr("10.200.0.1")}, interval)
			i := 0
			for b.Loop() {
				addRawElems(b, c, s, one, i%2 == 1)
				if err := c.Flush(); err != nil {
					b.Fatal(err)
				}
				i++
			}
		})
	}
}

// BenchmarkPrivilegedSetLookup measures what a lookup costs a packet:
// UDP packets to 127.0.0.1 (a member) go through an output chain of 100
// rules that look the destination up and do not match (ip daddr !=
// @set drop), then are dropped by the chain's last rule, so nothing after
// the hook runs. "compare" is the same chain with a comparison (ip daddr
// != 127.0.0.1) instead of each lookup: lookup cost = (set - compare) /
// 100.
func BenchmarkPrivilegedSetLookup(b *testing.B) {
	const rules = 100
	for _, v := range []struct {
		name string
		size int
	}{{"compare", setSize}, {"hash", setSize}, {"interval", setSize}, {"hash", 1000}, {"interval", 1000}, {"interval", 10}} {
		variant := v.name
		b.Run(fmt.Sprintf("%s-%d", v.name, v.size), func(b *testing.B) {
			testutil.Privileged(b)
			ns := testutil.NewNetNS(b)
			loadRawSetN(b, ns, variant == "interval", v.size)
			c, err := nftables.New(nftables.WithNetNSFd(int(ns.Handle())))
			if err != nil {
				b.Fatal(err)
			}
			policy := nftables.ChainPolicyAccept
			ch := c.AddChain(&nftables.Chain{Table: benchTable, Name: "out", Type: nftables.ChainTypeFilter,
				Hooknum: nftables.ChainHookOutput, Priority: nftables.ChainPriorityFilter, Policy: &policy})
			load := &expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 16, Len: 4}
			test := []expr.Any{load, &expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: []byte{127, 0, 0, 1}}}
			if variant != "compare" {
				test = []expr.Any{load, &expr.Lookup{SourceRegister: 1, SetName: variant, Invert: true}}
			}
			for range rules {
				c.AddRule(&nftables.Rule{Table: benchTable, Chain: ch, Exprs: append(test, &expr.Verdict{Kind: expr.VerdictDrop})})
			}
			c.AddRule(&nftables.Rule{Table: benchTable, Chain: ch, Exprs: []expr.Any{&expr.Verdict{Kind: expr.VerdictDrop}}})
			if err := c.Flush(); err != nil {
				b.Fatal(err)
			}
			var conn *net.UDPConn
			err = ns.Do(func() error {
				lo, err := netlink.LinkByName("lo")
				if err != nil {
					return err
				}
				if err := netlink.LinkSetUp(lo); err != nil {
					return err
				}
				conn, err = net.DialUDP("udp4", nil, &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 9})
				return err
			})
			if err != nil {
				b.Fatal(err)
			}
			defer conn.Close()
			msg := []byte{0}
			for b.Loop() {
				// The chain drops every packet: the write fails with EPERM.
				if _, err := conn.Write(msg); err != nil && !isEPERM(err) {
					b.Fatal(err)
				}
			}
		})
	}
}

func isEPERM(err error) bool {
	var errno unix.Errno
	for e := err; e != nil; {
		if en, ok := e.(unix.Errno); ok {
			errno = en
			break
		}
		u, ok := e.(interface{ Unwrap() error })
		if !ok {
			break
		}
		e = u.Unwrap()
	}
	return errno == unix.EPERM
}
