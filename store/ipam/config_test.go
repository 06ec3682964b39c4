package ipam

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"testing"

	"calico/store"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// TestConfig: Calico's IPAM settings, written as calicoctl writes them,
// change where addresses come from as they do in Calico.
func TestConfig(t *testing.T) {
	// Four blocks of four addresses; host0 fills one and the pool has
	// room for three more.
	pool := Pool{CIDR: netip.MustParsePrefix("10.67.0.0/28"), BlockSize: 30}
	cases := []struct {
		name, config string
		// want: the 5th address of host0 ("new" block, "borrowed" from
		// host1, or "none"), with host1 holding a block.
		want string
		why  string
	}{
		{"absent", "", "new", ""},
		{"defaults", `{"auto_allocate_blocks":true}`, "new", ""},
		{"no new blocks", `{"auto_allocate_blocks":false}`, "borrowed", ""},
		{"strict, no new blocks", `{"strict_affinity":true}`, "none", "auto_allocate_blocks is false"},
		{"max one block", `{"auto_allocate_blocks":true,"maxBlocksPerHost":1}`, "borrowed", ""},
		{"max one block, strict", `{"strict_affinity":true,"auto_allocate_blocks":true,"maxBlocksPerHost":1}`, "none", "maxBlocksPerHost"},
		{"max two blocks, strict", `{"strict_affinity":true,"auto_allocate_blocks":true,"maxBlocksPerHost":2}`, "new", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m, cli := newIPAM(t)
			ctx := t.Context()
			for i := range 4 {
				mustAuto(t, m, fmt.Sprintf("h0-%d", i), "host0", pool)
			}
			mustAuto(t, m, "h1", "host1", pool)
			if c.config != "" {
				if _, err := cli.Put(ctx, store.IPAMConfigKey, c.config); err != nil {
					t.Fatal(err)
				}
			}
			a, err := m.AutoAssign(ctx, "fifth", "host0", []Pool{pool}, nil)
			got := "none"
			if err == nil {
				l, lerr := m.Lookup(ctx, a)
				if lerr != nil {
					t.Fatal(lerr)
				}
				got = map[bool]string{true: "new", false: "borrowed"}[l.Host == "host0"]
			} else if !errors.Is(err, ErrNoAddresses) || !strings.Contains(err.Error(), c.why) {
				t.Fatalf("AutoAssign = %v; want ErrNoAddresses saying %q", err, c.why)
			}
			if got != c.want {
				t.Errorf("with %s the fifth address is %s (%v, %v); want %s", c.config, got, a, err, c.want)
			}
		})
	}
}

// TestConfigUnreadable: settings that cannot be read stop assignment with
// the key's name, and write nothing.
func TestConfigUnreadable(t *testing.T) {
	pool := Pool{CIDR: netip.MustParsePrefix("10.67.0.0/28"), BlockSize: 30}
	for _, v := range []string{`{"strict_affinity":"yes"}`, `{"strictAffinity":true}`, `{"maxBlocksPerHost":-1}`, `not json`} {
		m, cli := newIPAM(t)
		ctx := t.Context()
		if _, err := cli.Put(ctx, store.IPAMConfigKey, v); err != nil {
			t.Fatal(err)
		}
		before, _ := cli.Get(ctx, "/calico/ipam", clientv3.WithPrefix())
		_, err := m.AutoAssign(ctx, "h", "host0", []Pool{pool}, nil)
		if err == nil || !strings.Contains(err.Error(), store.IPAMConfigKey) {
			t.Errorf("with %s AutoAssign = %v; want an error naming %s", v, err, store.IPAMConfigKey)
		}
		after, _ := cli.Get(ctx, "/calico/ipam", clientv3.WithPrefix())
		if after.Header.Revision != before.Header.Revision {
			t.Errorf("with %s AutoAssign wrote to etcd", v)
		}
	}
}
