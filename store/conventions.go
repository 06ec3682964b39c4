package store

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"github.com/google/uuid"
	"net/netip"
	"slices"
	"strings"

	clientv3 "go.etcd.io/etcd/client/v3"
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

// RegisterNode writes a node's Node resource: its BGP addresses (and AS
// number, when given), keeping whatever else users set on it (labels,
// route reflector cluster id).
func RegisterNode(ctx context.Context, s *Store, name string, ipv4, ipv6 netip.Prefix, as *ASNumber) error {
	node, err := GetOf[*Node](ctx, s, "", name)
	create := errors.Is(err, ErrNotFound)
	if err != nil && !create {
		return err
	}
	if create {
		node = KindNode.New().(*Node)
		node.Metadata.Name = name
	}
	if node.Spec.BGP == nil {
		node.Spec.BGP = &NodeBGPSpec{}
	}
	b := node.Spec.BGP
	b.IPv4Address, b.IPv6Address = prefixString(ipv4), prefixString(ipv6)
	if as != nil {
		b.ASNumber = as
	}
	if create {
		err = s.Create(ctx, node)
	} else {
		err = s.Update(ctx, node)
	}
	if err != nil {
		return fmt.Errorf("registering node %s: %w", name, err)
	}
	return nil
}

// EnsurePools creates the given pools that do not exist yet, or Calico's
// two default pools (192.168.0.0/16 and a random unique local /48) when
// none are given and none exist.
func EnsurePools(ctx context.Context, s *Store, want []netip.Prefix) error {
	pools, err := ListOf[*IPPool](ctx, s, "")
	if err != nil {
		return err
	}
	var create []*IPPool
	if len(want) == 0 && len(pools) == 0 {
		create = []*IPPool{
			NewPool("default-ipv4-ippool", netip.MustParsePrefix("192.168.0.0/16")),
			NewPool("default-ipv6-ippool", randomULA()),
		}
	}
	for _, cidr := range want {
		if !slices.ContainsFunc(pools, func(p *IPPool) bool { return p.Spec.CIDR == cidr.String() }) {
			create = append(create, NewPool(PoolName(cidr), cidr))
		}
	}
	for _, p := range create {
		if err := s.Create(ctx, p); err != nil && !errors.Is(err, ErrExists) {
			return fmt.Errorf("creating pool %s: %w", p.Spec.CIDR, err)
		}
	}
	return nil
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

// randomULA is a unique local /48 (RFC 4193), as Calico picks for its
// default IPv6 pool.
func randomULA() netip.Prefix {
	var b [16]byte
	b[0] = 0xfd
	rand.Read(b[1:6])
	return netip.PrefixFrom(netip.AddrFrom16(b), 48)
}

func prefixString(p netip.Prefix) string {
	if !p.IsValid() {
		return ""
	}
	return p.String()
}

// EnsureInitialized writes what Calico's tools expect every datastore to
// hold, where it is missing, as Calico's own client does when a cluster
// starts: ClusterInformation/default (a new cluster GUID, the datastore
// ready), the three built-in tiers, KubeControllersConfiguration/default
// (calicoctl's `ipam check` reads it) and the IPAM configuration. What is
// there is left as it is. calicoVersion stays empty so that Calico's CLI
// of any version skips its version check.
func EnsureInitialized(ctx context.Context, s *Store) error {
	ci := KindClusterInformation.New().(*ClusterInformation)
	ci.Metadata.Name = "default"
	guid := uuid.New()
	ci.Spec.ClusterGUID = hex.EncodeToString(guid[:])
	ready := true
	ci.Spec.DatastoreReady = &ready
	kcc := KindKubeControllersConfiguration.New().(*Opaque)
	kcc.Metadata.Name = "default"
	kcc.Spec = Raw(`{"controllers":{}}`)
	kcc.Status = Raw(`{}`)
	rs := []Resource{ci, kcc}
	for _, t := range BuiltinTiers {
		rs = append(rs, NewTier(t.Name, t.Order, t.DefaultAction))
	}
	for _, r := range rs {
		if err := s.Create(ctx, r); err != nil && !errors.Is(err, ErrExists) {
			return fmt.Errorf("creating %s: %w", IDOf(r), err)
		}
	}
	return s.ensureIPAMConfig(ctx)
}

// IPAMConfigKey holds the IPAM settings Calico's IPAM reads in etcd mode.
const IPAMConfigKey = "/calico/ipam/v2/config"

// ensureIPAMConfig writes Calico's IPAM defaults, unless there are
// settings already: blocks are claimed as needed, affinity is not strict.
func (s *Store) ensureIPAMConfig(ctx context.Context) error {
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	_, err := s.kv.Txn(ctx).If(clientv3.Compare(clientv3.CreateRevision(IPAMConfigKey), "=", 0)).
		Then(clientv3.OpPut(IPAMConfigKey, `{"auto_allocate_blocks":true}`)).Commit()
	if err != nil {
		return fmt.Errorf("writing the IPAM configuration: %w", err)
	}
	return nil
}

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
