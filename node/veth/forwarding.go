package veth

import (
	"errors"
	"fmt"
	"os"
	"strings"
)

// EnableForwarding turns on IPv4 and IPv6 forwarding, which routing to
// workloads needs. Interfaces that accept router advertisements are told to
// keep accepting them (accept_ra=2), as forwarding would otherwise stop
// them and the host could lose its IPv6 default route.
// It acts on the calling thread's network namespace.
func EnableForwarding() error {
	errs := []error{WriteSysctl("ipv4/ip_forward", "1")}
	if b, err := os.ReadFile("/proc/sys/net/ipv6/conf/all/forwarding"); err == nil && strings.TrimSpace(string(b)) == "0" {
		ifaces, _ := os.ReadDir("/proc/sys/net/ipv6/conf")
		for _, i := range ifaces {
			p := "ipv6/conf/" + i.Name() + "/accept_ra"
			if v, err := os.ReadFile("/proc/sys/net/" + p); err == nil && strings.TrimSpace(string(v)) == "1" {
				errs = append(errs, WriteSysctl(p, "2"))
			}
		}
		errs = append(errs, WriteSysctl("ipv6/conf/all/forwarding", "1"))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("enabling forwarding: %w", err)
	}
	return nil
}
