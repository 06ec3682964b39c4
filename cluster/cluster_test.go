package cluster

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	clientv3 "go.etcd.io/etcd/client/v3"

	"calico/internal/testutil"
)

// freePort is a TCP port of 127.0.0.1 free now, below Linux's ephemeral
// range (32768 up by default): a port the kernel picked for a listener
// could be handed to another test's outgoing connection before the test
// binds it ("address already in use", seen in CI). It never hands out a
// port twice in one test binary: a config's four ports are picked before
// any is bound, and two of them alike fail the later bind (a clean-clone
// run saw TestJoin's n2 fail to bind its gossip port after its etcd
// started: most likely this, one chance in about 2,000 a config).
func freePort(t testing.TB) int {
	t.Helper()
	handedMu.Lock()
	defer handedMu.Unlock()
	for range 1000 {
		port := 20000 + rand.IntN(12000)
		if handed[port] {
			continue
		}
		if ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port)); err == nil {
			ln.Close()
			handed[port] = true
			return port
		}
	}
	t.Fatal("no free port between 20000 and 32000")
	return 0
}

var (
	handedMu sync.Mutex
	handed   = map[int]bool{} // the ports freePort handed out
)

func testConfig(t testing.TB, dir string) Config {
	return Config{
		Name: "n1", IPv4: netip.MustParsePrefix("127.0.0.1/8"), DataDir: dir,
		EtcdClientPort: freePort(t), EtcdPeerPort: freePort(t), GossipPort: freePort(t), JoinPort: freePort(t), LivenessPort: -1,
		Log: slog.New(slog.NewTextHandler(t.Output(), nil)), EtcdLogLevel: os.Getenv("ETCD_LOG"),
	}
}

func TestFoundAndResume(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(t, dir)
	c, err := Start(t.Context(), cfg)
	if err != nil {
		t.Fatalf("founding: %v", err)
	}
	id := c.id
	if _, err := c.Client().Put(t.Context(), "/test/kept", "yes"); err != nil {
		t.Fatal(err)
	}
	c.Close()
	for _, f := range []string{"node.json", "pki/ca.key", "pki/node.key"} {
		if st, err := os.Stat(filepath.Join(dir, f)); err != nil || st.Mode().Perm()&0o077 != 0 {
			t.Errorf("%s: %v, mode %v; want it private", f, err, st.Mode())
		}
	}

	// Started again without a name or address, it is the same node of the
	// same cluster, and its data is kept.
	cfg2 := cfg
	cfg2.Name, cfg2.IPv4 = "", netip.Prefix{}
	c, err = Start(t.Context(), cfg2)
	if err != nil {
		t.Fatalf("resuming: %v", err)
	}
	defer c.Close()
	if c.id != id {
		t.Errorf("resumed as %+v; was %+v", c.id, id)
	}
	resp, err := c.Client().Get(t.Context(), "/test/kept")
	if err != nil || len(resp.Kvs) != 1 || string(resp.Kvs[0].Value) != "yes" {
		t.Errorf("the datastore after resuming = %v, %v; want the key written before", resp, err)
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
	taken, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", cfg.JoinPort))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Start(t.Context(), cfg); err == nil || !strings.Contains(err.Error(), "the join API") {
		t.Fatalf("founding with the join API's port taken = %v", err)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 0 {
		t.Errorf("a failed founding left %v in the data dir", entries)
	}
	taken.Close()
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

// TestEtcdQuietRequests: etcd logs a request's stats only when it is
// slow. With embed's zero default it logged every request, formatting
// the request as text; a node at debug level (etcd at info) wrote a
// warning line for each.
func TestEtcdQuietRequests(t *testing.T) {
	var buf testutil.SyncBuffer
	cfg := testConfig(t, t.TempDir())
	cfg.Log = slog.New(slog.NewTextHandler(&buf, nil))
	cfg.EtcdLogLevel = "info"
	c, err := Start(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for i := range 20 {
		if _, err := c.Client().Put(t.Context(), fmt.Sprintf("/test/%d", i), "v"); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Client().Get(t.Context(), "/test/", clientv3.WithPrefix()); err != nil {
			t.Fatal(err)
		}
	}
	if n := strings.Count(buf.String(), `msg="request stats"`); n > 2 {
		t.Errorf("etcd logged the stats of %d of 40 quick requests; want at most the odd slow one", n)
	}
}
