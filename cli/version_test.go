package cli

import (
	"encoding/json"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"calico/node/api"
)

// fakeNode answers the API on a socket in dir with handlers.
func fakeNode(t *testing.T, dir string, handlers map[string]any) {
	t.Helper()
	ln, err := net.Listen("unix", filepath.Join(dir, api.SocketName))
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	for path, reply := range handlers {
		mux.HandleFunc(path, func(w http.ResponseWriter, r *http.Request) { json.NewEncoder(w).Encode(reply) })
	}
	srv := &http.Server{Handler: mux}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
}

func TestVersionAlone(t *testing.T) {
	code, out, errs := run("version", "--data-dir", t.TempDir())
	if code != 0 || out != "calico "+Version+"\n" || errs != "" {
		t.Errorf("version without a node = %d %q %q", code, out, errs)
	}
}

func TestVersionOfEveryNode(t *testing.T) {
	dir := t.TempDir()
	fakeNode(t, dir, map[string]any{
		"GET /v1/version": api.VersionInfo{Version: "v2", DataFormat: 1},
		"GET /v1/nodes": []api.Node{
			{Name: "host1", Version: "v2", Gossip: "alive"},
			{Name: "host2", Version: "v1", Gossip: "alive"},
			{Name: "host3", Gossip: "dead"},
		},
	})
	code, out, errs := run("version", "--data-dir", dir)
	want := "calico " + Version + "\nNODE    VERSION   GOSSIP\nhost1   v2        alive\nhost2   v1        alive\nhost3   -         dead\n"
	if code != 0 || out != want {
		t.Errorf("version = %d\n%s%s\nwant\n%s", code, out, errs, want)
	}
	code, out, _ = run("version", "--data-dir", dir, "-o", "json")
	var v versions
	if err := json.Unmarshal([]byte(out), &v); code != 0 || err != nil || v.Node.Version != "v2" || v.Node.DataFormat != 1 || len(v.Nodes) != 3 || v.Nodes[1].Version != "v1" {
		t.Errorf("version -o json = %d %s (%v)", code, out, err)
	}
}

func TestVersionOfAnOlderNode(t *testing.T) {
	dir := t.TempDir()
	fakeNode(t, dir, map[string]any{
		"GET /v1/status": api.Status{Node: "host1", Version: "v1"},
		"GET /v1/nodes":  []api.Node{{Name: "host1", Version: "v1", Gossip: "alive"}},
	})
	code, out, errs := run("version", "--data-dir", dir)
	if code != 0 || !strings.Contains(out, "host1   v1        alive") {
		t.Errorf("version against a node without /v1/version = %d %q %q", code, out, errs)
	}
}
