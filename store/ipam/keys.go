package ipam

import (
	"calico/store"
	"net/netip"
	"strings"
)

// The key layout is Calico's etcdv3 datastore's, as package store has
// it.
const (
	assignmentPrefix = store.IPAMAssignmentPrefix
	hostPrefix       = store.IPAMHostPrefix
	handlePrefix     = store.IPAMHandlePrefix
)

var (
	family        = store.IPFamily
	cidrName      = store.IPAMCIDRName
	blocksPrefix  = store.IPAMBlocksPrefix
	parseCIDRName = store.ParseIPAMCIDRName
	parseBlockKey = store.ParseIPAMBlockKey
)

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
