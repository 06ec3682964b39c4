package node

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"calico/cluster"
	"calico/internal/testutil"
	"calico/node/agent"
	"calico/node/agent/agenttest"
	"calico/node/metrics"
	"calico/store/etcdv3"
	"calico/store/ipam"
)

// TestCountsPoolsOnThreeHosts: of ten live hosts that see the same
// members, three count the pools' use; a dead one is not among them, and
// its turn goes to a live one.
func TestCountsPoolsOnThreeHosts(t *testing.T) {
	var members []cluster.Member
	for i := range 10 {
		members = append(members, cluster.Member{Meta: cluster.Meta{Name: fmt.Sprintf("host%d", i)}, State: "alive"})
	}
	counters := func() []string {
		var out []string
		for _, m := range members {
			if m.State == "alive" && countsPools(&observed{name: m.Name, cluster: &fakeCluster{members: members}}) {
				out = append(out, m.Name)
			}
		}
		return out
	}
	first := counters()
	if len(first) != metrics.PoolCounters {
		t.Fatalf("%v count the pools; want %d hosts", first, metrics.PoolCounters)
	}
	for i := range members {
		if members[i].Name == first[0] {
			members[i].State = "dead"
		}
	}
	second := counters()
	if len(second) != metrics.PoolCounters || slices.Contains(second, first[0]) || !slices.Contains(second, first[1]) || !slices.Contains(second, first[2]) {
		t.Fatalf("with %s dead, %v count the pools; want %v and one other live host", first[0], second, first[1:])
	}
	if !countsPools(&observed{name: "alone", cluster: &fakeCluster{}}) {
		t.Error("a host that knows no other does not count the pools")
	}
}

// TestWatchLag: a node whose watch keeps up has no lag, although etcd's
// revision moved on by writes outside the resources the watch follows.
func TestWatchLag(t *testing.T) {
	cli := testutil.StartEtcd(t)
	s := etcdv3.New(cli)
	a, _, _ := agenttest.Run(t, t.TempDir(), agent.FromStore(s, ipam.New(cli)))
	waitFor(t, "the agent to follow the datastore", func() bool { return a.Sync().Live })
	var rev int64
	for range 5 {
		resp, err := cli.Put(t.Context(), "/calico/ipam/v2/not-a-resource", "x")
		if err != nil {
			t.Fatal(err)
		}
		rev = resp.Header.Revision
	}
	o := &observed{agent: a, store: s}
	start := time.Now()
	lag, ok := watchLag(t.Context(), o, rev)
	if !ok || lag != 0 {
		t.Errorf("watchLag = %d, %v after %v; want 0, true (the agent is at revision %d, etcd at %d)", lag, ok, time.Since(start), a.Sync().Revision, rev)
	}
}
