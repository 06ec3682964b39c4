package localapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"calico/bgp"
	"calico/internal/testutil"
	"calico/nft"
	"calico/node/agent"
	"calico/node/agent/agenttest"
	"calico/node/api"
	"calico/node/calc"
	"calico/node/workload"
	"calico/store"
	"calico/store/etcdv3"
	"calico/store/ipam"
)

func newServer(t testing.TB) (*Server, *etcdv3.Store, *ipam.IPAM) {
	cli := testutil.StartEtcd(t)
	s := etcdv3.New(cli)
	if err := etcdv3.EnsureInitialized(t.Context(), s); err != nil {
		t.Fatal(err)
	}
	im := ipam.New(cli)
	a, _, _ := agenttest.Run(t, t.TempDir(), agent.FromStore(s, im))
	dir := t.TempDir()
	log := slog.New(slog.DiscardHandler)
	return &Server{
		Info: Info{Name: agenttest.Node, DataDir: dir}, Store: s, IPAM: im, Agent: a, Log: log,
		Workloads: &workload.Service{Node: agenttest.Node, DataDir: dir, Store: s, IPAM: im, Dataplane: a, Log: log},
	}, s, im
}

func TestApplyValidatesEverythingFirst(t *testing.T) {
	srv, s, _ := newServer(t)
	ctx := t.Context()
	doc := `apiVersion: projectcalico.org/v3
kind: IPPool
metadata: {name: good}
spec: {cidr: 10.65.0.0/16}
---
apiVersion: projectcalico.org/v3
kind: Profile
metadata: {name: p}
spec: {ingress: [{action: Allow, protocol: TCP, destination: {ports: ["9:1"]}}]}
`
	if _, err := srv.applyData(ctx, []byte(doc), "apply"); err == nil || !strings.Contains(err.Error(), `port range "9:1" ends before it starts`) {
		t.Fatalf("applyData = %v", err)
	}
	doc = strings.Replace(doc, `"9:1"`, `"1:9"`, 1) + `---
apiVersion: projectcalico.org/v3
kind: IPPool
metadata: {name: overlapping}
spec: {cidr: 10.65.1.0/24}
`
	if _, err := srv.applyData(ctx, []byte(doc), "apply"); err == nil || !strings.Contains(err.Error(), "in the same input") {
		t.Fatalf("applyData of overlapping pools = %v", err)
	}
	if pools, _ := etcdv3.ListOf[*store.IPPool](ctx, s, ""); len(pools) != 0 {
		t.Errorf("refused input wrote %v", pools)
	}
	good := strings.SplitN(doc, "---\napiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata: {name: overlapping}", 2)[0]
	out, err := srv.applyData(ctx, []byte(good), "apply")
	if err != nil || len(out.Results) != 2 || out.Results[0].Action != "created" {
		t.Fatalf("applyData = %+v, %v", out, err)
	}
	out, err = srv.applyData(ctx, []byte(good), "apply")
	if err != nil || out.Results[1].Action != "configured" {
		t.Fatalf("second applyData = %+v, %v", out, err)
	}
	if _, err := srv.applyData(ctx, []byte(good), "create"); err == nil || !strings.Contains(err.Error(), "already exists") {
		t.Errorf("create of existing resources = %v", err)
	}
}

func TestDeleteRefusesWhatIsInUse(t *testing.T) {
	srv, s, im := newServer(t)
	ctx := t.Context()
	if _, err := srv.applyData(ctx, []byte("apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata: {name: p}\nspec: {cidr: 10.65.0.0/16}\n"), "apply"); err != nil {
		t.Fatal(err)
	}
	a, err := im.AutoAssign(ctx, "h", "n1", []ipam.Pool{{CIDR: netip.MustParsePrefix("10.65.0.0/16"), BlockSize: 26}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := srv.deleteResource(ctx, "ippool", "", "p"); err == nil || !strings.Contains(err.Error(), "has 1 addresses in use") {
		t.Errorf("deleting a pool in use = %v", err)
	}
	s.Create(ctx, store.ClassicProfile("a"))
	w := agenttest.Workload("w1", "cali1", a.String())
	if err := s.Create(ctx, w); err != nil {
		t.Fatal(err)
	}
	if _, err := srv.deleteResource(ctx, "profiles", "", "a"); err == nil || !strings.Contains(err.Error(), "in use by workload default/w1") {
		t.Errorf("deleting a profile in use = %v", err)
	}
	if _, err := srv.deleteResource(ctx, "wep", "", w.Metadata.Name); err == nil || !strings.Contains(err.Error(), "calico workload rm w1") {
		t.Errorf("deleting a workload's endpoint = %v", err)
	}
	if _, err := srv.deleteResource(ctx, "node", "", "n1"); err == nil {
		t.Errorf("a node deleted itself")
	}
	if err := srv.ipamRelease(ctx, a.String()); err == nil || !strings.Contains(err.Error(), "in use by workload default/w1") {
		t.Errorf("releasing a used address = %v", err)
	}

	rep, err := srv.ipamCheck(ctx)
	if err != nil || len(rep.Leaked)+len(rep.Unallocated)+len(rep.Duplicate) != 0 || rep.Allocated != 1 {
		t.Errorf("ipam check of a consistent state = %+v, %v", rep, err)
	}
	s.Delete(ctx, store.IDOf(w), "")
	rep, _ = srv.ipamCheck(ctx)
	if len(rep.Leaked) != 1 || rep.Leaked[0].Address != a.String() {
		t.Errorf("ipam check after the workload went = %+v; want %s leaked", rep, a)
	}
	if err := srv.ipamRelease(ctx, a.String()); err != nil {
		t.Errorf("releasing a leaked address: %v", err)
	}
	if _, err := srv.deleteResource(ctx, "ippool", "", "p"); err != nil {
		t.Errorf("deleting an unused pool: %v", err)
	}
}

// TestAPIOverHTTP checks the handler's routing and error encoding with
// the client the CLI uses.
func TestAPIOverHTTP(t *testing.T) {
	srv, _, _ := newServer(t)
	hs := httptest.NewServer(srv.Handler())
	defer hs.Close()
	c := api.NewClient("unused")
	c.SetBaseURL(hs.URL, hs.Client())
	var out api.Applied
	err := c.DoRaw(context.Background(), "POST", "/v1/resources", map[string][]string{"mode": {"apply"}},
		[]byte("apiVersion: projectcalico.org/v3\nkind: Profile\nmetadata: {name: web}\n"), &out)
	if err != nil || len(out.Results) != 1 {
		t.Fatalf("apply over HTTP = %+v, %v", out, err)
	}
	var res api.Resources
	if err := c.Do(context.Background(), "GET", "/v1/resources/pro", nil, nil, &res); err != nil || len(res.Items) != 2 {
		t.Errorf("get profiles = %d items, %v; want web and the built-in default-allow", len(res.Items), err)
	}
	err = c.Do(context.Background(), "DELETE", "/v1/resources/profiles/nothere", nil, nil, &out)
	if err == nil || err.Error() != `Profile "nothere" does not exist` {
		t.Errorf("deleting a missing profile = %v", err)
	}
}

func TestPolicyStats(t *testing.T) {
	cli := testutil.StartEtcd(t)
	s := etcdv3.New(cli)
	a, rules, _ := agenttest.Run(t, t.TempDir(), agent.FromStore(s, ipam.New(cli)))
	srv := &Server{Info: Info{Name: agenttest.Node, DataDir: t.TempDir()}, Store: s, Agent: a}
	if err := s.Create(t.Context(), store.ClassicProfile("a")); err != nil {
		t.Fatal(err)
	}
	w := agenttest.Workload("w1", "cali1", "10.65.0.1")
	if err := s.Create(t.Context(), w); err != nil {
		t.Fatal(err)
	}
	agenttest.WaitApplied(t, a, w)
	rules.Count(nft.Counter{Policy: "pro-a", Direction: nft.Ingress, Rule: 0, Packets: 3, Bytes: 180})
	rules.Count(nft.Counter{Policy: "pro-a", Direction: nft.Egress, Rule: 0, Packets: 1, Bytes: 60})
	all, err := srv.policyStats(t.Context(), "")
	if err != nil {
		t.Fatal(err)
	}
	want := []api.RuleStats{
		{Kind: "Profile", Name: "a", Direction: "egress", Rule: 0, Action: "Allow", Packets: 1, Bytes: 60},
		{Kind: "Profile", Name: "a", Direction: "ingress", Rule: 0, Action: "Allow", Packets: 3, Bytes: 180},
	}
	if fmt.Sprint(all) != fmt.Sprint(want) {
		t.Errorf("stats = %+v\nwant %+v", all, want)
	}
	if other, _ := srv.policyStats(t.Context(), "b"); len(other) != 0 {
		t.Errorf("stats of a profile not in use = %+v", other)
	}
	if kind, ns, name := calc.PolicyOf("np-prod.db-from-web"); kind != "NetworkPolicy" || ns != "prod" || name != "db-from-web" {
		t.Errorf("PolicyOf(np-prod.db-from-web) = %s %s %s", kind, ns, name)
	}
}

// TestApplyEndpointsHoldTheirAddresses: a WorkloadEndpoint written through
// the API may not take another endpoint's address, an address of a pool
// that IPAM has not allocated, or one allocated to another workload; an
// address outside every pool is the writer's business.
func TestApplyEndpointsHoldTheirAddresses(t *testing.T) {
	srv, s, im := newServer(t)
	ctx := t.Context()
	if _, err := srv.applyData(ctx, []byte("apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata: {name: p}\nspec: {cidr: 10.65.0.0/16}\n"), "apply"); err != nil {
		t.Fatal(err)
	}
	pools := []ipam.Pool{{CIDR: netip.MustParsePrefix("10.65.0.0/16"), BlockSize: 26}}
	endpoint := func(name, addr string) *store.WorkloadEndpoint {
		w := agenttest.Workload(name, "cali-"+name, addr)
		w.Spec.ContainerID = name
		return w
	}
	w1 := endpoint("w1", "")
	a, err := im.AutoAssign(ctx, workload.HandleOf(w1), agenttest.Node, pools, nil)
	if err != nil {
		t.Fatal(err)
	}
	w1.Spec.IPNetworks = []string{a.String() + "/32"}
	if err := s.Create(ctx, w1); err != nil {
		t.Fatal(err)
	}
	other, err := im.AutoAssign(ctx, "someone-else", agenttest.Node, pools, nil)
	if err != nil {
		t.Fatal(err)
	}
	apply := func(w *store.WorkloadEndpoint) error {
		b, _ := json.Marshal(w)
		_, err := srv.applyData(ctx, b, "apply")
		return err
	}
	for _, c := range []struct {
		w     *store.WorkloadEndpoint
		class api.Class
		want  string
	}{
		{endpoint("w2", a.String()), api.Conflict, "is used by another endpoint"},
		{endpoint("w3", "10.65.200.9"), api.BadRequest, "is in a pool but not allocated"},
		{endpoint("w4", other.String()), api.Conflict, "is allocated to someone-else, not to this workload"},
	} {
		err := apply(c.w)
		if cl, _ := api.ClassOf(err); err == nil || cl != c.class || !strings.Contains(err.Error(), c.want) {
			t.Errorf("applying %s with %v = %v (class %v); want %q", c.w.Spec.Workload, c.w.Spec.IPNetworks, err, cl, c.want)
		}
		if _, gerr := s.Get(ctx, store.IDOf(c.w)); gerr == nil {
			t.Errorf("the refused %s was written", c.w.Spec.Workload)
		}
	}
	if err := apply(endpoint("w5", "192.0.2.5")); err != nil {
		t.Errorf("an endpoint with an address outside every pool: %v", err)
	}
}

// peersAgent answers the BGP questions of a status; nothing else of it
// is used.
type peersAgent struct {
	Agent
	peers   []bgp.PeerStatus
	counted int
}

func (p *peersAgent) BGPPeers(context.Context) ([]bgp.PeerStatus, error) { return p.peers, nil }
func (p *peersAgent) BGPAdvertised(context.Context, netip.Addr) (int, error) {
	p.counted++
	return 7, nil
}

// TestBGPSessionsCounted: a status counts the routes advertised on each
// established session, unless there are more than countAdvertisedMax
// of them (a reflector), where the counts read -1 and none is made.
func TestBGPSessionsCounted(t *testing.T) {
	for _, up := range []int{3, countAdvertisedMax + 1} {
		a := &peersAgent{peers: []bgp.PeerStatus{{Peer: bgp.Peer{Addr: netip.MustParseAddr("10.0.0.1")}, State: "active"}}}
		for i := range up {
			a.peers = append(a.peers, bgp.PeerStatus{Peer: bgp.Peer{Addr: netip.AddrFrom4([4]byte{10, 1, byte(i / 256), byte(i)})}, State: "established"})
		}
		s := &Server{Agent: a}
		out, err := s.bgpSessions(t.Context())
		if err != nil || len(out) != up+1 {
			t.Fatalf("%d sessions up: %d sessions, %v", up, len(out), err)
		}
		want, calls := 7, up
		if up > countAdvertisedMax {
			want, calls = -1, 0
		}
		if out[0].Advertised != 0 || out[1].Advertised != want || out[up].Advertised != want || a.counted != calls {
			t.Errorf("%d sessions up: advertised %d (down), %d, %d; %d counts made; want 0, %d, %d; %d", up,
				out[0].Advertised, out[1].Advertised, out[up].Advertised, a.counted, want, want, calls)
		}
	}
}

// failingMembers is a cluster whose member list cannot be read.
type failingMembers struct{ Membership }

func (failingMembers) Role() string     { return "voter" }
func (failingMembers) DiskFull() string { return "" }
func (failingMembers) Nodes(context.Context) ([]api.Node, error) {
	return nil, errors.New("context deadline exceeded")
}

// A status whose member list (or pools) cannot be read in time still
// answers, with the pools it read and the failure among its problems: a
// busy etcd of a thousand hosts made the whole status fail, and the
// lab's start, which polls it, waited on.
func TestStatusAnswersWhatItCouldNotRead(t *testing.T) {
	srv, st, _ := newServer(t)
	pool := store.KindIPPool.New().(*store.IPPool)
	pool.Metadata.Name = "p1"
	pool.Spec.CIDR, pool.Spec.BlockSize = "10.70.0.0/16", 26
	if err := st.Create(t.Context(), pool); err != nil {
		t.Fatal(err)
	}
	srv.Members = failingMembers{}
	status, err := srv.status(t.Context())
	if err != nil {
		t.Fatalf("the status failed: %v", err)
	}
	if len(status.Pools) != 1 || status.Pools[0].InUse != 0 {
		t.Errorf("pools %+v, want p1 with 0 in use", status.Pools)
	}
	if !slices.ContainsFunc(status.Problems, func(p string) bool { return strings.Contains(p, "nodes could not be read: context deadline exceeded") }) {
		t.Errorf("problems %q do not say the nodes could not be read", status.Problems)
	}
}
