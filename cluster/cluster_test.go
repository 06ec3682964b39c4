package cluster

import (
	"context"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"calico/store"
)

// freePort asks the kernel for a port nobody uses right now.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

func testConfig(t *testing.T, dir string) Config {
	return Config{
		Name: "n1", IPv4: netip.MustParsePrefix("127.0.0.1/8"), DataDir: dir,
		EtcdClientPort: freePort(t), EtcdPeerPort: freePort(t), GossipPort: freePort(t), JoinPort: freePort(t),
		Log: slog.New(slog.NewTextHandler(t.Output(), nil)), EtcdLogLevel: os.Getenv("ETCD_LOG"),
	}
}

func TestFoundAndResume(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(t, dir)
	cfg.Pools = []netip.Prefix{netip.MustParsePrefix("10.65.0.0/16")}
	c, err := Start(t.Context(), cfg)
	if err != nil {
		t.Fatalf("founding: %v", err)
	}
	id := c.Identity
	pools, err := store.ListOf[*store.IPPool](t.Context(), c.Store, "")
	if err != nil || len(pools) != 1 || pools[0].Spec.CIDR != "10.65.0.0/16" || pools[0].Metadata.Name != "pool-10.65.0.0-16" {
		t.Errorf("pools after founding = %v, %v", pools, err)
	}
	node, err := store.GetOf[*store.Node](t.Context(), c.Store, "", "n1")
	if err != nil || node.Spec.BGP.IPv4Address != "127.0.0.1/8" {
		t.Errorf("node after founding = %+v, %v", node, err)
	}
	node.Metadata.Labels = map[string]string{"rack": "r1"}
	if err := c.Store.Update(t.Context(), node); err != nil {
		t.Fatal(err)
	}
	c.Close()
	for _, f := range []string{"node.json", "pki/ca.key", "pki/node.key"} {
		if st, err := os.Stat(filepath.Join(dir, f)); err != nil || st.Mode().Perm()&0o077 != 0 {
			t.Errorf("%s: %v, mode %v; want it private", f, err, st.Mode())
		}
	}

	// Started again without a name or address, it is the same node of the
	// same cluster, its data and the labels users set are kept.
	cfg2 := cfg
	cfg2.Name, cfg2.IPv4, cfg2.Pools = "", netip.Prefix{}, nil
	c, err = Start(t.Context(), cfg2)
	if err != nil {
		t.Fatalf("resuming: %v", err)
	}
	defer c.Close()
	if c.Identity != id {
		t.Errorf("resumed as %+v; was %+v", c.Identity, id)
	}
	node, err = store.GetOf[*store.Node](t.Context(), c.Store, "", "n1")
	if err != nil || node.Metadata.Labels["rack"] != "r1" {
		t.Errorf("node labels after resuming = %v, %v; want rack=r1 kept", node.Metadata.Labels, err)
	}
	pools, _ = store.ListOf[*store.IPPool](t.Context(), c.Store, "")
	if len(pools) != 1 {
		t.Errorf("resuming created pools: %v", pools)
	}
}

func TestDefaultPools(t *testing.T) {
	c, err := Start(t.Context(), testConfig(t, t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	pools, _ := store.ListOf[*store.IPPool](t.Context(), c.Store, "")
	if len(pools) != 2 || pools[0].Spec.CIDR != "192.168.0.0/16" || !strings.HasPrefix(pools[1].Spec.CIDR, "fd") || !strings.HasSuffix(pools[1].Spec.CIDR, "::/48") {
		t.Errorf("default pools = %v %v", pools[0].Spec, pools[1].Spec)
	}
}

func TestRefusals(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(t, dir)
	c, err := Start(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	c.Close()

	other := cfg
	other.Name = "n2"
	if _, err := Start(t.Context(), other); err == nil || !strings.Contains(err.Error(), `belongs to node "n1", not "n2"`) {
		t.Errorf("starting as another node = %v", err)
	}
	moved := cfg
	moved.IPv4 = netip.MustParsePrefix("127.0.0.2/8")
	if _, err := Start(t.Context(), moved); err == nil || !strings.Contains(err.Error(), "cannot move to 127.0.0.2") {
		t.Errorf("starting on another address = %v", err)
	}

	// An identity without etcd data, and etcd data without an identity:
	// neither founds a new cluster.
	os.Rename(filepath.Join(dir, "etcd"), filepath.Join(dir, "etcd.moved"))
	if _, err := Start(t.Context(), cfg); err == nil || !strings.Contains(err.Error(), "refusing to found a new cluster") {
		t.Errorf("identity without etcd data = %v", err)
	}
	os.Rename(filepath.Join(dir, "etcd.moved"), filepath.Join(dir, "etcd"))
	os.Remove(filepath.Join(dir, "node.json"))
	if _, err := Start(t.Context(), cfg); err == nil || !strings.Contains(err.Error(), "refusing to found or join a cluster over an old one") {
		t.Errorf("etcd data without identity = %v", err)
	}
}

func TestFailedFoundingLeavesNothing(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(t, dir)
	cfg.Pools = []netip.Prefix{netip.MustParsePrefix("10.65.0.0/16"), netip.MustParsePrefix("10.65.1.0/24")} // overlap
	if _, err := Start(t.Context(), cfg); err == nil || !strings.Contains(err.Error(), "overlaps") {
		t.Fatalf("founding with overlapping pools = %v", err)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 0 {
		t.Errorf("a failed founding left %v in the data dir", entries)
	}
	cfg.Pools = cfg.Pools[:1]
	c, err := Start(context.Background(), cfg)
	if err != nil {
		t.Fatalf("founding again after a failure: %v", err)
	}
	c.Close()
}

func TestLockDataDir(t *testing.T) {
	dir := t.TempDir()
	unlock, err := LockDataDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := LockDataDir(dir); err == nil || !strings.Contains(err.Error(), "another calico is running") {
		t.Errorf("second lock = %v", err)
	}
	unlock()
	unlock2, err := LockDataDir(dir)
	if err != nil {
		t.Errorf("lock after unlock: %v", err)
	}
	unlock2()
}

func TestPoolName(t *testing.T) {
	for in, want := range map[string]string{"10.65.0.0/16": "pool-10.65.0.0-16", "fd00:65::/48": "pool-fd00-65--48"} {
		p := netip.MustParsePrefix(in)
		if got := PoolName(p); got != want {
			t.Errorf("PoolName(%s) = %s; want %s", in, got, want)
		}
		pool := store.KindIPPool.New()
		pool.Meta().Name = PoolName(p)
		pool.(*store.IPPool).Spec.CIDR = in
		if err := store.Validate(pool); err != nil {
			t.Errorf("a pool named %s is invalid: %v", PoolName(p), err)
		}
	}
}
