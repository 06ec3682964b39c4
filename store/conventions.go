package store

import (
	"net/netip"
	"strings"
)

// ClassicProfile is a profile whose members may reach each other and
// anything else, and which nothing else may reach: Calico's profile of a
// network.
func ClassicProfile(name string) *Profile {
	p := KindProfile.New().(*Profile)
	p.Metadata.Name = name
	p.Spec.LabelsToApply = map[string]string{name: ""}
	p.Spec.Ingress = []Rule{{Action: "Allow", Source: EntityRule{Selector: "has(" + name + ")"}}}
	p.Spec.Egress = []Rule{{Action: "Allow"}}
	return p
}

// PoolName is the name given to a pool made from just its CIDR.
func PoolName(cidr netip.Prefix) string {
	s := strings.NewReplacer("::", "-", ":", "-", "/", "-").Replace(cidr.String())
	return "pool-" + strings.Trim(s, "-")
}

// NewPool is an IP pool with Calico's defaults.
func NewPool(name string, cidr netip.Prefix) *IPPool {
	p := KindIPPool.New().(*IPPool)
	p.Metadata.Name = name
	p.Spec.CIDR = cidr.String()
	return p
}

// IPAMConfigKey holds the IPAM settings Calico's IPAM reads in etcd mode.
const IPAMConfigKey = "/calico/ipam/v2/config"

// DefaultAllowProfile is the profile Calico's datastore has without
// storing it: it allows everything both ways (Calico gives it to
// endpoints that should be open). It is read like any profile and cannot
// be written.
const DefaultAllowProfile = "projectcalico-default-allow"

// DefaultAllow returns the built-in profile, as Calico shows it.
func DefaultAllow() *Profile {
	p := KindProfile.New().(*Profile)
	p.Metadata.Name, p.Metadata.ResourceVersion = DefaultAllowProfile, "1"
	p.Spec.Ingress, p.Spec.Egress = []Rule{{Action: "Allow"}}, []Rule{{Action: "Allow"}}
	return p
}

// IsBuiltin reports whether r is a resource the datastore has without
// storing it (and which cannot be written).
func IsBuiltin(id ID) bool { return id.Kind == KindProfile && id.Name == DefaultAllowProfile }
