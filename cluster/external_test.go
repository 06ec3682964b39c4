package cluster

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"calico/cluster/token"
	"calico/internal/testutil"
	"calico/store"
	"calico/store/etcdv3"
)

func TestExternalEtcd(t *testing.T) {
	ext := testutil.StartEtcd(t)
	cfg := testConfig(t, t.TempDir())
	cfg.EtcdEndpoints = ext.Endpoints()
	n1, err := Start(t.Context(), cfg)
	if err != nil {
		t.Fatalf("founding on an external etcd: %v", err)
	}
	defer n1.Close()
	if n1.embedded() != nil || n1.Role() != "client" || !n1.id.External {
		t.Errorf("founder on an external etcd: role %s, identity %+v; want a client without a member", n1.Role(), n1.id)
	}
	// The cluster's data is in the external etcd.
	if _, err := n1.Client().Put(t.Context(), "/calico/test", "n1"); err != nil {
		t.Fatal(err)
	}
	if resp, err := ext.Get(t.Context(), "/calico/test"); err != nil || len(resp.Kvs) != 1 {
		t.Errorf("the founder's write in the external etcd: %v, %v", resp, err)
	}
	// A joiner gets the datastore from the cluster.
	tok, _ := token.Load(cfg.DataDir)
	n2, err := Start(t.Context(), joinConfig(t, "n2", n1, tok.String()))
	if err != nil {
		t.Fatalf("joining: %v", err)
	}
	defer n2.Close()
	if n2.embedded() != nil || n2.Role() != "client" {
		t.Errorf("joiner's role = %s; want client", n2.Role())
	}
	p := store.KindProfile.New()
	p.Meta().Name = "from-n2"
	if err := etcdv3.New(n2.Client()).Create(t.Context(), p); err != nil {
		t.Fatal(err)
	}
	if _, err := etcdv3.GetOf[*store.Profile](t.Context(), etcdv3.New(ext), "", "from-n2"); err != nil {
		t.Errorf("n2's write in the external etcd: %v", err)
	}
	// Restarted, a node finds the external etcd again.
	n2.Close()
	cfg2 := n2.cfg
	cfg2.Join, cfg2.Token = "", ""
	n2, err = Start(t.Context(), cfg2)
	if err != nil {
		t.Fatalf("restarting n2: %v", err)
	}
	defer n2.Close()
	if _, err := etcdv3.GetOf[*store.Profile](t.Context(), etcdv3.New(n2.Client()), "", "from-n2"); err != nil {
		t.Errorf("reading after a restart: %v", err)
	}
}

// An external etcd with mutual TLS (another cluster's embedded member
// stands in for it) is reached with the given credentials, and one that
// holds a cluster already is refused.
func TestExternalEtcdTLS(t *testing.T) {
	a, err := Start(t.Context(), testConfig(t, t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	if _, err := a.Client().Put(t.Context(), "/calico/resources/v3/projectcalico.org/nodes/n1", "{}"); err != nil {
		t.Fatal(err)
	}
	cfg := testConfig(t, t.TempDir())
	cfg.Name = "b1"
	cfg.EtcdEndpoints = []string{a.member.clientURL()}
	pki := filepath.Join(a.cfg.DataDir, "pki")
	cfg.EtcdCA, cfg.EtcdCert, cfg.EtcdKey = filepath.Join(pki, "ca.crt"), filepath.Join(pki, "node.crt"), filepath.Join(pki, "node.key")
	_, err = Start(t.Context(), cfg)
	if err == nil || !strings.Contains(err.Error(), "already holds Calico data (/calico/resources/v3/projectcalico.org/nodes/n1)") {
		t.Errorf("founding on an etcd that holds a cluster = %v", err)
	}
	cfg.EtcdCert, cfg.EtcdKey = "", ""
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Second)
	defer cancel()
	if _, err := Start(ctx, cfg); err == nil || strings.Contains(err.Error(), "already holds") {
		t.Errorf("reaching an mTLS etcd without a client certificate = %v; want a failure to read it", err)
	}
}
