package ipam

import (
	"net/netip"
	"strings"
)

// The key layout, as Calico's etcdv3 datastore has it.
const (
	assignmentPrefix = "/calico/ipam/v2/assignment/"
	hostPrefix       = "/calico/ipam/v2/host/"
	handlePrefix     = "/calico/ipam/v2/handle/"
)

// family is "ipv4" or "ipv6", as it appears in keys.
func family(a netip.Addr) string {
	if a.Is4() {
		return "ipv4"
	}
	return "ipv6"
}

// cidrName is a block's CIDR as it appears in keys: "10.65.0.0-26".
func cidrName(p netip.Prefix) string {
	return strings.Replace(p.String(), "/", "-", 1)
}

// blocksPrefix is where every block of a's family lives.
func blocksPrefix(a netip.Addr) string {
	return assignmentPrefix + family(a) + "/block/"
}

func blockKey(cidr netip.Prefix) string {
	return blocksPrefix(cidr.Addr()) + cidrName(cidr)
}

// hostAffinities is where every affinity of host lives.
func hostAffinities(host string) string {
	return hostPrefix + host + "/"
}

// hostFamilyAffinities is where host's affinities of a's family live.
func hostFamilyAffinities(host string, a netip.Addr) string {
	return hostAffinities(host) + family(a) + "/block/"
}

func affinityKey(host string, cidr netip.Prefix) string {
	return hostFamilyAffinities(host, cidr.Addr()) + cidrName(cidr)
}

func handleKey(handle string) string {
	return handlePrefix + handle
}

// parseCIDRName reads "10.65.0.0-26" back into a prefix.
func parseCIDRName(s string) (netip.Prefix, bool) {
	i := strings.LastIndexByte(s, '-')
	if i < 0 {
		return netip.Prefix{}, false
	}
	p, err := netip.ParsePrefix(s[:i] + "/" + s[i+1:])
	if err != nil || p != p.Masked() {
		return netip.Prefix{}, false
	}
	return p, true
}

// parseBlockKey reads a block key back into the block's CIDR.
func parseBlockKey(key string) (netip.Prefix, bool) {
	rest, ok := strings.CutPrefix(key, assignmentPrefix)
	if !ok {
		return netip.Prefix{}, false
	}
	fam, name, ok := strings.Cut(rest, "/block/")
	if !ok {
		return netip.Prefix{}, false
	}
	p, ok := parseCIDRName(name)
	if !ok || family(p.Addr()) != fam {
		return netip.Prefix{}, false
	}
	return p, true
}

// parseAffinityKey reads an affinity key back into its host and block.
func parseAffinityKey(key string) (host string, cidr netip.Prefix, ok bool) {
	rest, ok := strings.CutPrefix(key, hostPrefix)
	if !ok {
		return "", netip.Prefix{}, false
	}
	parts := strings.Split(rest, "/")
	if len(parts) != 4 || parts[2] != "block" {
		return "", netip.Prefix{}, false
	}
	cidr, ok = parseCIDRName(parts[3])
	if !ok || family(cidr.Addr()) != parts[1] {
		return "", netip.Prefix{}, false
	}
	return parts[0], cidr, true
}
