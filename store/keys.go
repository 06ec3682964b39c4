package store

import (
	"maps"
	"net/netip"
	"slices"
	"strings"
)

// ResourcePrefix is where every resource lives in etcd.
const ResourcePrefix = "/calico/resources/v3/projectcalico.org/"

// Key is where the resource id lives.
func Key(id ID) string {
	if id.Kind.Namespaced {
		return ResourcePrefix + id.Kind.Plural + "/" + id.Namespace + "/" + id.Name
	}
	return ResourcePrefix + id.Kind.Plural + "/" + id.Name
}

// KindPrefix is the prefix of every resource of kind (in namespace ns, if
// given).
func KindPrefix(k *Kind, ns string) string {
	if k.Namespaced && ns != "" {
		return ResourcePrefix + k.Plural + "/" + ns + "/"
	}
	return ResourcePrefix + k.Plural + "/"
}

// ParseKey reads a resource key back into an ID.
func ParseKey(key string) (ID, bool) {
	rest, ok := strings.CutPrefix(key, ResourcePrefix)
	if !ok {
		return ID{}, false
	}
	parts := strings.Split(rest, "/")
	for _, k := range kinds {
		if parts[0] != k.Plural {
			continue
		}
		switch {
		case k.Namespaced && len(parts) == 3:
			return ID{Kind: k, Namespace: parts[1], Name: parts[2]}, true
		case !k.Namespaced && len(parts) == 2:
			return ID{Kind: k, Name: parts[1]}, true
		}
	}
	return ID{}, false
}

func sortedKeys[V any](m map[string]V) []string {
	return slices.Sorted(maps.Keys(m))
}

// The IPAM key layout, as Calico's etcdv3 datastore has it. Package
// store/ipam reads and writes under it; the store reads blocks only to
// refuse deleting a pool whose addresses are in use.
const (
	IPAMAssignmentPrefix = "/calico/ipam/v2/assignment/"
	IPAMHostPrefix       = "/calico/ipam/v2/host/"
	IPAMHandlePrefix     = "/calico/ipam/v2/handle/"
)

// IPFamily is "ipv4" or "ipv6", as it appears in IPAM keys.
func IPFamily(a netip.Addr) string {
	if a.Is4() {
		return "ipv4"
	}
	return "ipv6"
}

// IPAMBlocksPrefix is where every block of a's family lives.
func IPAMBlocksPrefix(a netip.Addr) string {
	return IPAMAssignmentPrefix + IPFamily(a) + "/block/"
}

// IPAMCIDRName is a block's CIDR as it appears in keys: "10.65.0.0-26".
func IPAMCIDRName(p netip.Prefix) string {
	return strings.Replace(p.String(), "/", "-", 1)
}

// ParseIPAMCIDRName reads "10.65.0.0-26" back into a prefix.
func ParseIPAMCIDRName(s string) (netip.Prefix, bool) {
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

// ParseIPAMBlockKey reads a block key back into the block's CIDR.
func ParseIPAMBlockKey(key string) (netip.Prefix, bool) {
	rest, ok := strings.CutPrefix(key, IPAMAssignmentPrefix)
	if !ok {
		return netip.Prefix{}, false
	}
	fam, name, ok := strings.Cut(rest, "/block/")
	if !ok {
		return netip.Prefix{}, false
	}
	p, ok := ParseIPAMCIDRName(name)
	if !ok || IPFamily(p.Addr()) != fam {
		return netip.Prefix{}, false
	}
	return p, true
}
