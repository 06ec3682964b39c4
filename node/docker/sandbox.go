package docker

import (
	"fmt"
	"net"

	"calico/node/veth"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

// firstInSandbox says whether a container's network namespace (Docker's
// sandbox key) has no calico endpoint yet: no on-link route to
// 169.254.1.1, which its first calico endpoint brings. A second one must
// not bring it again (the kernel refuses the same route twice).
func firstInSandbox(key string) (bool, error) {
	if key == "" {
		return true, nil
	}
	ns, err := netns.GetFromPath(key)
	if err != nil {
		return true, fmt.Errorf("opening %s: %w", key, err)
	}
	defer ns.Close()
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		return true, fmt.Errorf("netlink in %s: %w", key, err)
	}
	defer h.Close()
	gw := &net.IPNet{IP: veth.GatewayV4.AsSlice(), Mask: net.CIDRMask(32, 32)}
	rs, err := h.RouteListFiltered(netlink.FAMILY_V4, &netlink.Route{Dst: gw}, netlink.RT_FILTER_DST)
	if err != nil {
		return true, fmt.Errorf("listing the routes in %s: %w", key, err)
	}
	return len(rs) == 0, nil
}
