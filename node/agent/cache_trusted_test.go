package agent

import (
	"log/slog"
	"path/filepath"
	"reflect"
	"testing"

	"calico/store"
	"calico/store/etcdv3"

	bolt "go.etcd.io/bbolt"
)

// TestTrustedCacheLoadsTheSame: a cache written whole by this version is
// loaded without checking its values again, and every value, good or
// with problems (an unknown field, a selector that cannot be parsed, a
// name that is not the key's, JSON that cannot be read), comes back
// exactly as a full check of the stored value gives it; a cache of
// another version, or of "dev", is checked again.
func TestTrustedCacheLoadsTheSame(t *testing.T) {
	values := map[store.ID]string{
		{Kind: store.KindGlobalNetworkPolicy, Name: "allow-web"}:                         `{"kind":"GlobalNetworkPolicy","apiVersion":"projectcalico.org/v3","metadata":{"name":"allow-web"},"spec":{"tier":"default","order":100,"selector":"role == 'web'","types":["Ingress"],"ingress":[{"action":"Allow","protocol":"TCP","source":{"selector":"role == 'client'"},"destination":{"ports":[80,"8000:8080"]}}]}}`,
		{Kind: store.KindGlobalNetworkPolicy, Name: "bad-selector"}:                      `{"kind":"GlobalNetworkPolicy","apiVersion":"projectcalico.org/v3","metadata":{"name":"bad-selector"},"spec":{"selector":"role ==","ingress":[{"action":"Allow"}]}}`,
		{Kind: store.KindGlobalNetworkPolicy, Name: "unknown-field"}:                     `{"kind":"GlobalNetworkPolicy","apiVersion":"projectcalico.org/v3","metadata":{"name":"unknown-field"},"spec":{"selector":"all()","serviceAccountSelector":"x == 'y'","ingress":[{"action":"Allow"}]}}`,
		{Kind: store.KindNetworkPolicy, Namespace: "ns1", Name: "wrong-name"}:            `{"kind":"NetworkPolicy","apiVersion":"projectcalico.org/v3","metadata":{"name":"other","namespace":"ns1"},"spec":{"selector":"all()","egress":[{"action":"Deny","destination":{"nets":["10.0.0.0/8"]}}]}}`,
		{Kind: store.KindProfile, Name: "unreadable"}:                                    `{"kind":"Profile","spec":[`,
		{Kind: store.KindWorkloadEndpoint, Namespace: "default", Name: "h1-k8s-w1-eth0"}: `{"kind":"WorkloadEndpoint","apiVersion":"projectcalico.org/v3","metadata":{"name":"h1-k8s-w1-eth0","namespace":"default","labels":{"role":"web"}},"spec":{"orchestrator":"k8s","node":"h1","workload":"w1","endpoint":"eth0","interfaceName":"cali0123456789a","ipNetworks":["10.65.0.1/32","fd00:65::1/128"],"profiles":["kns.default"]}}`,
		{Kind: store.KindIPPool, Name: "p1"}:                                             `{"kind":"IPPool","apiVersion":"projectcalico.org/v3","metadata":{"name":"p1"},"spec":{"cidr":"10.65.0.0/16","blockSize":26,"natOutgoing":true,"nodeSelector":"all()"}}`,
		{Kind: store.KindHostEndpoint, Name: "h1-eth0"}:                                  `{"kind":"HostEndpoint","apiVersion":"projectcalico.org/v3","metadata":{"name":"h1-eth0","labels":{"host":"h1"}},"spec":{"node":"h1","interfaceName":"eth0","expectedIPs":["172.31.1.11"],"ports":[{"name":"ssh","port":22,"protocol":"TCP"}]}}`,
		{Kind: store.KindGlobalNetworkSet, Name: "blocklist"}:                            `{"kind":"GlobalNetworkSet","apiVersion":"projectcalico.org/v3","metadata":{"name":"blocklist","labels":{"list":"bad"}},"spec":{"nets":["192.0.2.0/24"]}}`,
		{Kind: store.KindTier, Name: "security"}:                                         `{"kind":"Tier","apiVersion":"projectcalico.org/v3","metadata":{"name":"security"},"spec":{"order":100,"defaultAction":"Deny"}}`,
		{Kind: store.KindKubeControllersConfiguration, Name: "default"}:                  `{"kind":"KubeControllersConfiguration","apiVersion":"projectcalico.org/v3","metadata":{"name":"default"},"spec":{"controllers":{}},"status":{}}`,
	}
	want := map[string]store.Resource{}
	var updates []etcdv3.Update
	for id, v := range values {
		r := store.DecodeStored(id, []byte(v), 7)
		want[store.Key(id)] = r
		updates = append(updates, etcdv3.Update{ID: id, Resource: r})
	}
	for _, tc := range []struct {
		wrote, reads string
		trusted      bool
	}{{"v1.2.3", "v1.2.3", true}, {"v1.2.3", "v1.2.4", false}, {"dev", "dev", false}, {"", "", false}, {"abc1234-dirty", "abc1234-dirty", false}} {
		path := filepath.Join(t.TempDir(), "state.db")
		c, err := openCache(path, tc.wrote, slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatal(err)
		}
		c.update(etcdv3.SyncEvent{Snapshot: true, Revision: 7, Updates: updates})
		if err := c.persist(); err != nil {
			t.Fatal(err)
		}
		c.close()
		c, err = openCache(path, tc.reads, slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatal(err)
		}
		for k, w := range want {
			if got, _ := c.items.get(k); !reflect.DeepEqual(got, w) {
				t.Errorf("written by %q, read by %q: %s = %#v; want %#v", tc.wrote, tc.reads, k, got, w)
			}
		}
		if c.items.len() != len(want) {
			t.Errorf("written by %q, read by %q: %d resources; want %d", tc.wrote, tc.reads, c.items.len(), len(want))
		}
		c.close()
	}
	// Each value as cachedValue writes it decodes, trusted, to the same.
	for k, w := range want {
		b, err := cachedValue(w)
		if err != nil {
			t.Fatal(err)
		}
		id, _ := store.ParseKey(k)
		if r, ok := loadTrusted(id, b); !ok || !reflect.DeepEqual(r, w) {
			t.Errorf("loadTrusted(%s) = %#v, %v; want %#v", k, r, ok, w)
		}
	}
	// Which path a cache takes: a value changed in the file behind the
	// cache's back (an unknown field, no problem recorded) is taken as it
	// is by the version that wrote the cache, and checked by another.
	path := filepath.Join(t.TempDir(), "state.db")
	c, err := openCache(path, "v1.2.3", slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	c.update(etcdv3.SyncEvent{Snapshot: true, Revision: 7, Updates: updates})
	if err := c.persist(); err != nil {
		t.Fatal(err)
	}
	tier := store.Key(store.ID{Kind: store.KindTier, Name: "security"})
	if err := c.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketResources).Put([]byte(tier), []byte(`{"kind":"Tier","apiVersion":"projectcalico.org/v3","metadata":{"name":"security"},"spec":{"order":100,"defaultAction":"Deny","extra":1}}`))
	}); err != nil {
		t.Fatal(err)
	}
	c.close()
	for version, problems := range map[string]int{"v1.2.3": 0, "v1.2.4": 1} {
		c, err := openCache(path, version, slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatal(err)
		}
		if got := len(get(c, tier).Meta().Problems); got != problems {
			t.Errorf("read by %s: the changed tier has %d problems; want %d", version, got, problems)
		}
		c.close()
	}

	// A version before the writer mark rewrites the whole cache (it
	// replaces the resources bucket): the mark goes with it, and the
	// version that had written it checks what it reads.
	c, err = openCache(path, "v1.2.3", slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.db.Update(func(tx *bolt.Tx) error {
		if err := tx.DeleteBucket(bucketResources); err != nil {
			return err
		}
		res, err := tx.CreateBucket(bucketResources)
		if err != nil {
			return err
		}
		return res.Put([]byte(tier), []byte(`{"kind":"Tier","apiVersion":"projectcalico.org/v3","metadata":{"name":"security"},"spec":{"order":100,"defaultAction":"Deny","extra":1}}`))
	}); err != nil {
		t.Fatal(err)
	}
	c.close()
	c, err = openCache(path, "v1.2.3", slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	if got := len(get(c, tier).Meta().Problems); got != 1 {
		t.Errorf("after another version's whole rewrite: the changed tier has %d problems; want 1 (checked)", got)
	}
	c.close()

	// A trusted value that is not what cachedValue writes is checked as
	// the datastore's are.
	id := store.ID{Kind: store.KindGlobalNetworkPolicy, Name: "allow-web"}
	if _, ok := loadTrusted(id, []byte(`{"kind":"Profile"`)); ok {
		t.Error("loadTrusted took JSON that cannot be read")
	}
	if _, ok := loadTrusted(id, []byte(values[store.ID{Kind: store.KindNetworkPolicy, Namespace: "ns1", Name: "wrong-name"}])); ok {
		t.Error("loadTrusted took a value whose name is not the key's")
	}
}

// get is the cached resource of key k, or nil.
func get(c *cache, k string) store.Resource {
	r, _ := c.items.get(k)
	return r
}
