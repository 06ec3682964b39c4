package store

import (
	"errors"
	"net/netip"
	"strings"
	"testing"

	"calico/internal/testutil"
)

// TestDeleteChecksReferences: a pool with addresses in use and a profile
// an endpoint uses are refused by the store itself, whoever deletes.
func TestDeleteChecksReferences(t *testing.T) {
	cli := testutil.StartEtcd(t)
	s := New(cli)
	ctx := t.Context()
	pool := NewPool("p", netip.MustParsePrefix("10.65.0.0/16"))
	if err := s.Create(ctx, pool); err != nil {
		t.Fatal(err)
	}
	block := IPAMBlocksPrefix(netip.MustParseAddr("10.65.0.0")) + "10.65.0.0-26"
	if _, err := cli.Put(ctx, block, `{"cidr":"10.65.0.0/26","allocations":[0,null,null]}`); err != nil {
		t.Fatal(err)
	}
	_, err := s.Delete(ctx, IDOf(pool), "")
	if !errors.Is(err, ErrInUse) || !strings.Contains(err.Error(), "has 1 addresses in use") {
		t.Errorf("deleting a pool in use = %v", err)
	}
	if _, err := cli.Put(ctx, block, `{"cidr":"10.65.0.0/26","allocations":[null,null,null]}`); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Delete(ctx, IDOf(pool), ""); err != nil {
		t.Errorf("deleting a pool no longer in use: %v", err)
	}

	if err := s.Create(ctx, ClassicProfile("web")); err != nil {
		t.Fatal(err)
	}
	h := KindHostEndpoint.New().(*HostEndpoint)
	h.Metadata.Name = "h1"
	h.Spec = HostEndpointSpec{Node: "n1", InterfaceName: "eth0", Profiles: []string{"web"}}
	if err := s.Create(ctx, h); err != nil {
		t.Fatal(err)
	}
	_, err = s.Delete(ctx, ID{Kind: KindProfile, Name: "web"}, "")
	if !errors.Is(err, ErrInUse) || !strings.Contains(err.Error(), "in use by host endpoint h1") {
		t.Errorf("deleting a profile in use = %v", err)
	}
	if _, err := s.Delete(ctx, IDOf(h), ""); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Delete(ctx, ID{Kind: KindProfile, Name: "web"}, ""); err != nil {
		t.Errorf("deleting a profile no longer in use: %v", err)
	}
}
