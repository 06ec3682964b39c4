package cluster

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

// A removed member's data is set aside with its keyspace and without
// its log, so a host replaced again and again does not fill its disk
// with preallocated log segments (the chaos test, seed 587493: a host
// that took a seat for the second time found 184 MiB free of its 384 and
// would not start its member).
func TestSetAsideDropsTheLog(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "etcd")
	for _, f := range []string{"member/wal/0000000000000000-0000000000000000.wal", "member/wal/0.tmp", "member/snap/db"} {
		p := filepath.Join(dir, f)
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(f), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	now := time.Date(2026, 12, 4, 18, 11, 22, 0, time.UTC)
	if err := setAside(dir, now); err != nil {
		t.Fatal(err)
	}
	aside := dir + ".removed-20261204T181122"
	if _, err := os.Stat(filepath.Join(aside, "member", "snap", "db")); err != nil {
		t.Errorf("the keyspace was not kept: %v", err)
	}
	if _, err := os.Stat(filepath.Join(aside, "member", "wal")); !os.IsNotExist(err) {
		t.Errorf("the log was kept (%v)", err)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("the data dir is still in place (%v)", err)
	}
	if err := setAside(dir, now); err != nil {
		t.Errorf("setting aside a data dir that is gone: %v", err)
	}
}
