package testutil

import "testing"

func TestStartEtcd(t *testing.T) {
	cli := StartEtcd(t)
	if _, err := cli.Put(t.Context(), "k", "v"); err != nil {
		t.Fatalf("put: %v", err)
	}
	resp, err := cli.Get(t.Context(), "k")
	if err != nil || len(resp.Kvs) != 1 || string(resp.Kvs[0].Value) != "v" {
		t.Fatalf("get = %v, %v; want one key with value v", resp, err)
	}
}
