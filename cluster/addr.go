package cluster

import (
	"fmt"
	"net/netip"

	"github.com/vishvananda/netlink"
)

// detectAddrs fills in the node's addresses that were not given: the
// address of the interface that holds the default route of each family.
// IPv4 is required; IPv6 is optional.
func detectAddrs(cfg *Config) error {
	if !cfg.IPv4.IsValid() {
		p, err := defaultRouteAddr(netlink.FAMILY_V4)
		if err != nil {
			return fmt.Errorf("finding this host's IPv4 address (give --ip): %w", err)
		}
		cfg.IPv4 = p
	}
	if !cfg.IPv6.IsValid() {
		if p, err := defaultRouteAddr(netlink.FAMILY_V6); err == nil {
			cfg.IPv6 = p
		}
	}
	return nil
}

func defaultRouteAddr(family int) (netip.Prefix, error) {
	routes, err := netlink.RouteListFiltered(family, &netlink.Route{Table: 254}, netlink.RT_FILTER_TABLE)
	if err != nil {
		return netip.Prefix{}, err
	}
	for _, r := range routes {
		if r.Dst != nil && !r.Dst.IP.IsUnspecified() {
			continue
		}
		if ones, _ := maskOnes(r); ones != 0 {
			continue
		}
		link, err := netlink.LinkByIndex(r.LinkIndex)
		if err != nil {
			continue
		}
		addrs, err := netlink.AddrList(link, family)
		if err != nil {
			continue
		}
		for _, a := range addrs {
			ip, ok := netip.AddrFromSlice(a.IP)
			if !ok || !ip.IsGlobalUnicast() {
				continue
			}
			ones, _ := a.Mask.Size()
			return netip.PrefixFrom(ip.Unmap(), ones), nil
		}
	}
	return netip.Prefix{}, fmt.Errorf("no default route with a global address")
}

func maskOnes(r netlink.Route) (int, int) {
	if r.Dst == nil {
		return 0, 0
	}
	return r.Dst.Mask.Size()
}
