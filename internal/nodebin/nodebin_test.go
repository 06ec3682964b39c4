//go:build split

package nodebin

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestUnpack: the binary is written whole, mode 0700, under its hash's
// name; an intact copy is kept as it is; one cut short is written again;
// other builds' binaries and unfinished unpacks go.
func TestUnpack(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "bin")
	stale, tmp := filepath.Join(dir, "calico-0000000000000000"), filepath.Join(dir, ".calico-123")
	fresh, other := filepath.Join(dir, ".calico-456"), filepath.Join(dir, "calico-tool")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{stale, tmp, fresh, other} {
		if err := os.WriteFile(p, []byte("old"), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	old := time.Now().Add(-2 * time.Minute)
	if err := os.Chtimes(tmp, old, old); err != nil {
		t.Fatal(err)
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
	// Another unpack's file being written, and what is not an unpack's.
	for _, p := range []string{fresh, other} {
		if _, err := os.Stat(p); err != nil {
			t.Errorf("%s went: %v", p, err)
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

	// Mode 0755: not intact, written again as 0700.
	if err := os.Chmod(path, 0o755); err != nil {
		t.Fatal(err)
	}
	if intact(path) {
		t.Fatal("a binary of mode 0755 counts as intact")
	}
	if _, err := unpack(dir); err != nil {
		t.Fatal(err)
	}
	check()

	// A directory others may write is refused: they could put any file
	// of the right size there.
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	if _, err := unpack(dir); err == nil || !strings.Contains(err.Error(), "others may write it") {
		t.Errorf("unpack into a directory of mode 0777 = %v", err)
	}
	os.Chmod(dir, 0o700)
	link := filepath.Join(t.TempDir(), "bin")
	if err := os.Symlink(dir, link); err != nil {
		t.Fatal(err)
	}
	if _, err := unpack(link); err == nil || !strings.Contains(err.Error(), "not a plain directory") {
		t.Errorf("unpack into a symbolic link = %v", err)
	}
}
