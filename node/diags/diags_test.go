package diags

import (
	"archive/tar"
	"compress/gzip"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestRedact(t *testing.T) {
	tree := redactTree(map[string]any{"spec": map[string]any{"peerIP": "10.0.0.1", "password": map[string]any{"value": "hunter22"}},
		"items": []any{map[string]any{"token": "K1abc"}}})
	s := strings.ReplaceAll(strings.ReplaceAll(strings.TrimSpace(fmtAny(tree)), " ", ""), "\n", "")
	if strings.Contains(s, "hunter22") || strings.Contains(s, "K1abc") || !strings.Contains(s, "10.0.0.1") {
		t.Errorf("redactTree: %s", s)
	}
	key := "-----BEGIN EC PRIVATE KEY-----\nMHcCAQEEIB\n-----END EC PRIVATE KEY-----"
	got := string(redact([]byte("a "+key+" b secretsecret c"), []string{"secretsecret", "short"}))
	if got != "a (private key redacted) b (redacted) c" {
		t.Errorf("redact: %q", got)
	}
}

func fmtAny(v any) string {
	var b strings.Builder
	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			for k, x := range v {
				b.WriteString(k + ":")
				walk(x)
			}
		case []any:
			for _, x := range v {
				walk(x)
			}
		case string:
			b.WriteString(v + " ")
		}
	}
	walk(v)
	return b.String()
}

// TestWrite: the bundle is a tar.gz of the files under one directory,
// each redacted.
func TestWrite(t *testing.T) {
	out := filepath.Join(t.TempDir(), "calico-diags-x.tar.gz")
	b := &bundle{files: map[string][]byte{}}
	b.add("a.txt", []byte("token K1deadbeef::s3cr3t-s3cr3t\n"))
	b.add("resources/x.yaml", []byte("ok\n"))
	if err := write(Config{Out: out, Secrets: []string{"K1deadbeef::s3cr3t-s3cr3t", "s3cr3t-s3cr3t"}}, b, "calico-diags-x"); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(zr)
	var names []string
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, h.Name)
		data, _ := io.ReadAll(tr)
		if strings.Contains(string(data), "s3cr3t") {
			t.Errorf("%s holds the secret: %q", h.Name, data)
		}
	}
	if strings.Join(names, ",") != "calico-diags-x/a.txt,calico-diags-x/resources/x.yaml" {
		t.Errorf("names %v", names)
	}
	if err := write(Config{Out: out}, b, "x"); err == nil {
		t.Error("overwrote an existing file")
	}
}
