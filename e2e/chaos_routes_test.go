package e2e

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"
)

// checkRoutes: once settled, every host's kernel routes every live
// workload's addresses as the datastore says, within chaosSettle: its own
// workloads by a host route to their cali interface, the other hosts'
// through the host the workload is on (IPv4; IPv6 through a gateway).
// It is the dataplane check that does not trust the node's own report.
func (c *chaos) checkRoutes() {
	deadline := time.Now().Add(chaosSettle)
	for {
		bad := c.routeProblems()
		if len(bad) == 0 {
			return
		}
		if time.Now().After(deadline) {
			c.violation("%s after settling, routes differ from the datastore:\n%s", chaosSettle, capLines(bad, 20))
			return
		}
		time.Sleep(time.Second)
	}
}

// kernelRoute is one of `ip -j route`'s routes.
type kernelRoute struct {
	Type    string `json:"type"`
	Dst     string `json:"dst"`
	Gateway string `json:"gateway"`
	Dev     string `json:"dev"`
}

func (c *chaos) routeProblems() []string {
	var bad []string
	fabric := map[string]string{}
	for _, h := range c.hosts {
		fabric[h] = c.lab.Addr(h)
	}
	for _, h := range c.up() {
		routes, err := c.routesOf(h)
		if err != nil {
			bad = append(bad, h+": "+err.Error())
			continue
		}
		for _, w := range c.live() {
			for _, s := range w.addrs {
				a, err := netip.ParseAddr(s)
				if err != nil {
					continue
				}
				if p := routeProblem(routes, a, w.host == h, fabric[w.host]); p != "" {
					bad = append(bad, fmt.Sprintf("%s: %s of %s on %s: %s", h, a, w.name, w.host, p))
				}
			}
		}
	}
	return bad
}

// routeProblem says what is wrong with the route a host uses to a (its
// most specific protocol 80 route), or nothing.
func routeProblem(routes map[netip.Prefix]kernelRoute, a netip.Addr, local bool, hostAddr string) string {
	var best netip.Prefix
	found := false
	for p := range routes {
		if p.Contains(a) && (!found || p.Bits() > best.Bits()) {
			best, found = p, true
		}
	}
	r := routes[best]
	switch {
	case !found:
		return "no route"
	case r.Type == "blackhole":
		return "blackholed (" + best.String() + ")"
	case local && (best.Bits() != a.BitLen() || !strings.HasPrefix(r.Dev, "cali")):
		return fmt.Sprintf("routed by %s dev %s, not to its own interface", best, r.Dev)
	case !local && r.Gateway == "":
		return fmt.Sprintf("routed by %s dev %s without a gateway", best, r.Dev)
	case !local && a.Is4() && r.Gateway != hostAddr:
		return fmt.Sprintf("routed by %s via %s, not via its host %s", best, r.Gateway, hostAddr)
	}
	return ""
}

// routesOf reads host's protocol 80 routes, both families.
func (c *chaos) routesOf(host string) (map[netip.Prefix]kernelRoute, error) {
	out := map[netip.Prefix]kernelRoute{}
	for _, fam := range []string{"-4", "-6"} {
		js, err := c.lab.Exec(host, "ip", "-j", fam, "route", "show", "proto", "80")
		if err != nil {
			return nil, fmt.Errorf("ip route: %v: %s", err, js)
		}
		var rs []kernelRoute
		if err := json.Unmarshal([]byte(js), &rs); err != nil {
			return nil, fmt.Errorf("reading ip -j route: %v", err)
		}
		for _, r := range rs {
			d := r.Dst
			if !strings.Contains(d, "/") {
				d += map[string]string{"-4": "/32", "-6": "/128"}[fam]
			}
			if p, err := netip.ParsePrefix(d); err == nil {
				out[p] = r
			}
		}
	}
	return out, nil
}

// TestRouteProblem: the route check finds each way a route can be wrong.
func TestRouteProblem(t *testing.T) {
	p := netip.MustParsePrefix
	routes := map[netip.Prefix]kernelRoute{
		p("10.65.1.7/32"):   {Dst: "10.65.1.7", Dev: "cali0123456789a"},
		p("10.65.1.0/26"):   {Type: "blackhole", Dst: "10.65.1.0/26"},
		p("10.65.2.0/26"):   {Dst: "10.65.2.0/26", Gateway: "172.31.1.12", Dev: "eth0"},
		p("10.65.3.9/32"):   {Dst: "10.65.3.9", Dev: "eth0"},
		p("fd00:65::2/128"): {Dst: "fd00:65::2", Dev: "eth0", Gateway: "fd00:31:1::12"},
	}
	a := netip.MustParseAddr
	for _, c := range []struct {
		addr  string
		local bool
		host  string
		want  string
	}{
		{"10.65.1.7", true, "172.31.1.11", ""},
		{"10.65.1.8", true, "172.31.1.11", "blackholed"},
		{"10.65.2.5", false, "172.31.1.12", ""},
		{"10.65.2.5", false, "172.31.1.13", "not via its host 172.31.1.13"},
		{"10.65.2.5", true, "172.31.1.11", "not to its own interface"},
		{"10.65.3.9", false, "172.31.1.13", "without a gateway"},
		{"10.66.0.1", false, "172.31.1.12", "no route"},
		{"fd00:65::2", false, "172.31.1.12", ""},
	} {
		got := routeProblem(routes, a(c.addr), c.local, c.host)
		if (c.want == "") != (got == "") || !strings.Contains(got, c.want) {
			t.Errorf("routeProblem(%s, local %v, via %s) = %q; want %q", c.addr, c.local, c.host, got, c.want)
		}
	}
}
