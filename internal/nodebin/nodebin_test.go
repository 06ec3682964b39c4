//go:build split

package nodebin

import (
	"os"
	"path/filepath"
	"testing"
)

// TestUnpack: the binary is written whole, mode 0700, under its hash's
// name; an intact copy is kept as it is; one cut short is written again;
// other builds' binaries and unfinished unpacks go.
func TestUnpack(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "bin")
	stale, tmp := filepath.Join(dir, "calico-0000000000000000"), filepath.Join(dir, ".calico-123")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{stale, tmp} {
		if err := os.WriteFile(p, []byte("old"), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	path, err := unpack(dir)
	if err != nil {
		t.Fatal(err)
	}
	if filepath.Base(path) != name() || len(name()) != len("calico-")+16 {
		t.Errorf("unpacked to %s; want %s", path, name())
	}
	check := func() os.FileInfo {
		t.Helper()
		b, err := os.ReadFile(path)
		if err != nil || string(b) != binary {
			t.Fatalf("the unpacked file is not the embedded binary (%d bytes of %d, %v)", len(b), len(binary), err)
		}
		st, err := os.Stat(path)
		if err != nil || st.Mode().Perm() != 0o700 {
			t.Fatalf("the unpacked file's mode is %v (%v); want 0700", st.Mode(), err)
		}
		return st
	}
	first := check()
	for _, p := range []string{stale, tmp} {
		if _, err := os.Stat(p); !os.IsNotExist(err) {
			t.Errorf("%s is still there (%v)", p, err)
		}
	}

	if _, err := unpack(dir); err != nil {
		t.Fatal(err)
	}
	if again := check(); !os.SameFile(first, again) {
		t.Error("an intact binary was written again")
	}

	// Cut short (as by a full disk before the rename existed): written
	// again.
	if err := os.Truncate(path, int64(len(binary)/2)); err != nil {
		t.Fatal(err)
	}
	if intact(path) {
		t.Fatal("a binary cut short counts as intact")
	}
	if _, err := unpack(dir); err != nil {
		t.Fatal(err)
	}
	check()
}
