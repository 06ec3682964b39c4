package ipam

import (
	"errors"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"calico/store"
)

// ippool is an IPPool as the store reads it (Calico's defaults filled
// in), changed by opts.
func ippool(name, cidr string, opts ...func(*store.IPPoolSpec)) *store.IPPool {
	p := store.NewPool(name, netip.MustParsePrefix(cidr))
	if err := store.Validate(p); err != nil { // fills in the defaults
		panic(err)
	}
	for _, o := range opts {
		o(&p.Spec)
	}
	return p
}

func manual(s *store.IPPoolSpec)   { s.AssignmentMode = "Manual" }
func disabled(s *store.IPPoolSpec) { s.Disabled = true }
func uses(u ...string) func(*store.IPPoolSpec) {
	return func(s *store.IPPoolSpec) { s.AllowedUses = u }
}
func nodeSel(sel string) func(*store.IPPoolSpec) {
	return func(s *store.IPPoolSpec) { s.NodeSelector = sel }
}

func poolNames(ps []Pool) []string {
	var out []string
	for _, p := range ps {
		out = append(out, p.Name)
	}
	return out
}

func TestPoolsFor(t *testing.T) {
	rack1 := map[string]string{"rack": "r1", "kubernetes.io/hostname": "host1"}
	withProblem := ippool("broken", "10.99.0.0/16")
	withProblem.Metadata.Problems = []store.FieldError{{Field: "spec.ipipMode", Msg: `"Always" is not supported`}}
	for _, tc := range []struct {
		name     string
		pools    []*store.IPPool
		labels   map[string]string
		want     []string
		problems []string
	}{
		{name: "defaults", pools: []*store.IPPool{ippool("b", "10.66.0.0/16"), ippool("a", "10.65.0.0/16"), ippool("v6", "fd00:65::/48")},
			want: []string{"a", "b", "v6"}},
		{name: "disabled", pools: []*store.IPPool{ippool("a", "10.65.0.0/16", disabled), ippool("b", "10.66.0.0/16")}, want: []string{"b"}},
		{name: "manual", pools: []*store.IPPool{ippool("a", "10.65.0.0/16", manual), ippool("b", "10.66.0.0/16")}, want: []string{"b"}},
		{name: "workload only", pools: []*store.IPPool{ippool("a", "10.65.0.0/16", uses("Workload"))}, want: []string{"a"}},
		{name: "tunnel only", pools: []*store.IPPool{ippool("a", "10.65.0.0/16", uses("Tunnel")), ippool("b", "10.66.0.0/16")}, want: []string{"b"}},
		{name: "load balancer", pools: []*store.IPPool{ippool("lb", "10.65.0.0/16", uses("LoadBalancer"))}},
		{name: "node selector", labels: rack1, pools: []*store.IPPool{
			ippool("r1", "10.65.0.0/16", nodeSel("rack == 'r1'")),
			ippool("r2", "10.66.0.0/16", nodeSel("rack == 'r2'")),
			ippool("host1", "10.67.0.0/16", nodeSel("kubernetes.io/hostname == 'host1'")),
			ippool("all", "10.68.0.0/16", nodeSel("all()")),
			ippool("empty", "10.69.0.0/16", nodeSel("")),
		}, want: []string{"all", "empty", "host1", "r1"}},
		{name: "no labels", pools: []*store.IPPool{ippool("r1", "10.65.0.0/16", nodeSel("has(rack)")), ippool("not", "10.66.0.0/16", nodeSel("!has(rack)"))},
			want: []string{"not"}},
		{name: "unparsable selector", labels: rack1, pools: []*store.IPPool{ippool("bad", "10.65.0.0/16", nodeSel("rack ==")), ippool("ok", "10.66.0.0/16")},
			want: []string{"ok"}, problems: []string{`IP pool "bad": nodeSelector`}},
		{name: "read with problems", pools: []*store.IPPool{withProblem, ippool("ok", "10.66.0.0/16")},
			want: []string{"ok"}, problems: []string{`IP pool "broken" cannot be used as written: spec.ipipMode: "Always" is not supported`}},
		{name: "bad cidr", pools: []*store.IPPool{ippool("bad", "10.65.0.0/16", func(s *store.IPPoolSpec) { s.CIDR = "10.65.0.1/16" })},
			problems: []string{`IP pool "bad": cidr`}},
		{name: "none"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, problems := PoolsFor(tc.pools, tc.labels)
			if names := poolNames(got); !slices.Equal(names, tc.want) {
				t.Errorf("pools = %v; want %v", names, tc.want)
			}
			if len(problems) != len(tc.problems) {
				t.Fatalf("problems = %q; want %d", problems, len(tc.problems))
			}
			for i, p := range problems {
				if !strings.HasPrefix(p, tc.problems[i]) {
					t.Errorf("problem %q; want it to start %q", p, tc.problems[i])
				}
			}
		})
	}
}

func TestPoolsForBlockSize(t *testing.T) {
	p := ippool("a", "10.65.0.0/16", func(s *store.IPPoolSpec) { s.BlockSize = 28 })
	bare := &store.IPPool{Metadata: store.ObjectMeta{Name: "bare"}, Spec: store.IPPoolSpec{CIDR: "fd00:66::/48"}}
	got, _ := PoolsFor([]*store.IPPool{p, bare}, nil)
	want := []Pool{{Name: "a", CIDR: netip.MustParsePrefix("10.65.0.0/16"), BlockSize: 28}, {Name: "bare", CIDR: netip.MustParsePrefix("fd00:66::/48"), BlockSize: 122}}
	if !slices.Equal(got, want) {
		t.Errorf("PoolsFor = %v; want %v (Calico's defaults for a pool made in code)", got, want)
	}
}

// TestExplicitPools: an address or a pool asked for by name may come from
// a Manual pool or one that does not select the node, never from a
// disabled one or one that is not for workloads.
func TestExplicitPools(t *testing.T) {
	pools := []*store.IPPool{
		ippool("manual", "10.65.0.0/16", manual, nodeSel("rack == 'elsewhere'")),
		ippool("auto", "10.66.0.0/16"),
		ippool("off", "10.67.0.0/16", disabled),
		ippool("tunnel", "10.68.0.0/16", uses("Tunnel")),
		ippool("lb", "10.69.0.0/16", uses("LoadBalancer")),
		ippool("v6", "fd00:65::/48", manual),
	}
	for _, tc := range []struct {
		addr, pool string // the pool's CIDR for RequestedPool
		want       string // pool name
		err        string
		poolErr    string // RequestedPool's error, when it differs
	}{
		{addr: "10.65.1.2", pool: "10.65.0.0/16", want: "manual"},
		{addr: "10.66.0.1", pool: "10.66.0.0/16", want: "auto"},
		{addr: "fd00:65::7", pool: "fd00:65::/48", want: "v6"},
		{addr: "::ffff:10.66.0.1", pool: "10.66.0.0/16", want: "auto"},
		{addr: "10.67.0.1", pool: "10.67.0.0/16", err: `IP pool "off" (10.67.0.0/16) is disabled`},
		{addr: "10.68.0.1", pool: "10.68.0.0/16", err: `IP pool "tunnel" (10.68.0.0/16) is not for workloads (allowedUses: Tunnel)`},
		{addr: "10.69.0.1", pool: "10.69.0.0/16", err: `IP pool "lb" (10.69.0.0/16) is not for workloads (allowedUses: LoadBalancer)`},
		{addr: "10.70.0.1", pool: "10.70.0.0/16", err: "address 10.70.0.1 is not in any IP pool", poolErr: "no IP pool has CIDR 10.70.0.0/16"},
		{addr: "10.65.0.1", pool: "10.65.0.0/24", want: "manual", poolErr: "no IP pool has CIDR 10.65.0.0/24"},
	} {
		p, err := PoolForAddr(pools, netip.MustParseAddr(tc.addr))
		check := func(what string, p Pool, err error) {
			t.Helper()
			switch {
			case tc.err == "" && (err != nil || p.Name != tc.want):
				t.Errorf("%s = %v, %v; want pool %s", what, p, err, tc.want)
			case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err) || !errors.Is(err, ErrPoolNotUsable)):
				t.Errorf("%s = %v, %v; want an ErrPoolNotUsable saying %q", what, p, err, tc.err)
			}
		}
		check("PoolForAddr("+tc.addr+")", p, err)
		p, err = RequestedPool(pools, netip.MustParsePrefix(tc.pool))
		if tc.poolErr != "" {
			tc.err = tc.poolErr
		}
		check("RequestedPool("+tc.pool+")", p, err)
	}
	if auto, _ := PoolsFor(pools, nil); !slices.Equal(poolNames(auto), []string{"auto"}) {
		t.Errorf("PoolsFor = %v; want only the automatic pool for workloads", poolNames(auto))
	}
}

// TestManualPoolAssign: against etcd, automatic assignment with PoolsFor
// never lands in a Manual pool, and an address or the pool asked for
// explicitly comes from it.
func TestManualPoolAssign(t *testing.T) {
	m, _ := newIPAM(t)
	ctx := t.Context()
	pools := []*store.IPPool{ippool("manual", "10.65.0.0/24", manual), ippool("auto", "10.66.0.0/24")}
	auto, _ := PoolsFor(pools, nil)
	for i := range 3 {
		a := mustAuto(t, m, "auto"+string(rune('a'+i)), "host1", auto...)
		if !netip.MustParsePrefix("10.66.0.0/24").Contains(a) {
			t.Errorf("automatic assignment gave %s; want an address of the automatic pool", a)
		}
	}
	want := netip.MustParseAddr("10.65.0.9")
	p, err := PoolForAddr(pools, want)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Assign(ctx, want, "explicit", "host1", p, nil); err != nil {
		t.Fatalf("assigning %s of the Manual pool: %v", want, err)
	}
	p, err = RequestedPool(pools, netip.MustParsePrefix("10.65.0.0/24"))
	if err != nil {
		t.Fatal(err)
	}
	a := mustAuto(t, m, "by-pool", "host1", p)
	if !p.CIDR.Contains(a) || a == want {
		t.Errorf("an address from the requested Manual pool = %s; want another of %s", a, p.CIDR)
	}
	// The Manual pool's block is now the host's, yet automatic
	// assignment still keeps out of it.
	if a := mustAuto(t, m, "auto-again", "host1", auto...); !netip.MustParsePrefix("10.66.0.0/24").Contains(a) {
		t.Errorf("automatic assignment gave %s after the host claimed a block of the Manual pool", a)
	}
}
