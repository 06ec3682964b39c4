package etcdv3

import (
	"calico/store"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"slices"

	"github.com/google/uuid"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// RegisterNode writes a node's Node resource: its BGP addresses (and AS
// number, when given), keeping whatever else users set on it (labels,
// route reflector cluster id).
func RegisterNode(ctx context.Context, s *Store, name string, ipv4, ipv6 netip.Prefix, as *store.ASNumber) error {
	node, err := GetOf[*store.Node](ctx, s, "", name)
	create := errors.Is(err, store.ErrNotFound)
	if err != nil && !create {
		return err
	}
	if create {
		node = store.KindNode.New().(*store.Node)
		node.Metadata.Name = name
	}
	if node.Spec.BGP == nil {
		node.Spec.BGP = &store.NodeBGPSpec{}
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
	pools, err := ListOf[*store.IPPool](ctx, s, "")
	if err != nil {
		return err
	}
	var create []*store.IPPool
	if len(want) == 0 && len(pools) == 0 {
		create = []*store.IPPool{
			store.NewPool("default-ipv4-ippool", netip.MustParsePrefix("192.168.0.0/16")),
			store.NewPool("default-ipv6-ippool", randomULA()),
		}
	}
	for _, cidr := range want {
		if !slices.ContainsFunc(pools, func(p *store.IPPool) bool { return p.Spec.CIDR == cidr.String() }) {
			create = append(create, store.NewPool(store.PoolName(cidr), cidr))
		}
	}
	for _, p := range create {
		if err := s.Create(ctx, p); err != nil && !errors.Is(err, store.ErrExists) {
			return fmt.Errorf("creating pool %s: %w", p.Spec.CIDR, err)
		}
	}
	return nil
}

// EnsureInitialized writes what Calico's tools expect every datastore to
// hold, where it is missing, as Calico's own client does when a cluster
// starts: ClusterInformation/default (a new cluster GUID, the datastore
// ready), the three built-in tiers, KubeControllersConfiguration/default
// (calicoctl's `ipam check` reads it) and the IPAM configuration. What is
// there is left as it is. calicoVersion stays empty so that Calico's CLI
// of any version skips its version check.
func EnsureInitialized(ctx context.Context, s *Store) error {
	ci := store.KindClusterInformation.New().(*store.ClusterInformation)
	ci.Metadata.Name = "default"
	guid := uuid.New()
	ci.Spec.ClusterGUID = hex.EncodeToString(guid[:])
	ready := true
	ci.Spec.DatastoreReady = &ready
	kcc := store.KindKubeControllersConfiguration.New().(*store.Opaque)
	kcc.Metadata.Name = "default"
	kcc.Spec = store.Raw(`{"controllers":{}}`)
	kcc.Status = store.Raw(`{}`)
	rs := []store.Resource{ci, kcc}
	for _, t := range store.BuiltinTiers {
		rs = append(rs, store.NewTier(t.Name, t.Order, t.DefaultAction))
	}
	for _, r := range rs {
		if err := s.Create(ctx, r); err != nil && !errors.Is(err, store.ErrExists) {
			return fmt.Errorf("creating %s: %w", store.IDOf(r), err)
		}
	}
	return s.ensureIPAMConfig(ctx)
}

// ensureIPAMConfig writes Calico's IPAM defaults, unless there are
// settings already: blocks are claimed as needed, affinity is not strict.
func (s *Store) ensureIPAMConfig(ctx context.Context) error {
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	_, err := s.kv.Txn(ctx).If(clientv3.Compare(clientv3.CreateRevision(store.IPAMConfigKey), "=", 0)).
		Then(clientv3.OpPut(store.IPAMConfigKey, `{"auto_allocate_blocks":true}`)).Commit()
	if err != nil {
		return fmt.Errorf("writing the IPAM configuration: %w", err)
	}
	return nil
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
