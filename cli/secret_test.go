package cli

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"calico/bgp"
)

// stdin is a file holding s, as a command's standard input.
func stdin(t *testing.T, s string) *os.File {
	t.Helper()
	f, err := os.CreateTemp(t.TempDir(), "stdin")
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString(s)
	f.Seek(0, io.SeekStart)
	t.Cleanup(func() { f.Close() })
	return f
}

func TestReadPassword(t *testing.T) {
	for in, want := range map[string]string{
		"s3cret\n":                      "s3cret",
		"s3cret":                        "s3cret",
		"s3cret\r\n":                    "s3cret",
		strings.Repeat("x", 80) + "\n":  strings.Repeat("x", 80),
		"":                              "error: the password is empty",
		"\n":                            "error: the password is empty",
		"two\nlines\n":                  "error: give the password on one line",
		strings.Repeat("x", 81):         "error: longer than 80 bytes",
		strings.Repeat("x", 200) + "\n": "error: longer than 80 bytes",
	} {
		got, err := readPassword(stdin(t, in), io.Discard)
		switch {
		case strings.HasPrefix(want, "error: "):
			if err == nil || !strings.Contains(err.Error(), strings.TrimPrefix(want, "error: ")) {
				t.Errorf("readPassword(%q) = %q, %v; want %s", in, got, err, want)
			}
		case err != nil || string(got) != want:
			t.Errorf("readPassword(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
}

// TestWriteSecret: the file is written with mode 0600 in directories of
// mode 0700, replaced whole when written again, and the node reads back
// what was given.
func TestWriteSecret(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "secrets")
	for _, pw := range []string{"first-password", "second"} {
		path, err := writeSecret(dir, "tor", "md5.key", []byte(pw))
		if err != nil {
			t.Fatal(err)
		}
		if path != filepath.Join(dir, "tor", "md5.key") {
			t.Errorf("wrote %s", path)
		}
		got, err := bgp.ReadPasswordFile(path)
		if err != nil || string(got) != pw {
			t.Errorf("the node reads %d bytes, %v; want %q", len(got), err, pw)
		}
	}
	for path, mode := range map[string]os.FileMode{dir: 0o700, filepath.Join(dir, "tor"): 0o700, filepath.Join(dir, "tor", "md5.key"): 0o600} {
		if st, err := os.Stat(path); err != nil || st.Mode().Perm() != mode {
			t.Errorf("%s: %v, %v; want mode %04o", path, st.Mode(), err, mode)
		}
	}
	if entries, _ := os.ReadDir(filepath.Join(dir, "tor")); len(entries) != 1 {
		t.Errorf("the secret's directory holds %d files; want the key alone", len(entries))
	}
}

func TestParseSecretRef(t *testing.T) {
	for in, want := range map[string]string{
		"tor/md5.key": "tor md5.key", "mesh/password": "mesh password",
		"tor": "error", "Tor/k": "error", "tor/": "error", "/k": "error", "tor/..": "error", "tor/a/b": "error",
	} {
		name, key, err := parseSecretRef(in)
		if got := name + " " + key; (want == "error") != (err != nil) || err == nil && got != want {
			t.Errorf("parseSecretRef(%q) = %q, %q, %v; want %s", in, name, key, err, want)
		}
	}
}
