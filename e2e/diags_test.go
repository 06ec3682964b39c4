package e2e

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"encoding/base64"
	"encoding/hex"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestDiags: `calico diags` on a lab node writes one tar.gz whose every
// part is there, and no secret (the join token, its secret, the gossip
// key, a private key, a BGP password stored as a value) appears anywhere
// in it.
func TestDiags(t *testing.T) {
	lab := NewLab(t, 1, 1)
	lab.Start("host1", "--pool", "10.65.0.0/16", "--metrics-addr", ":9091")
	lab.AddWorkload("host1", "dg-a")
	const password = "Sw0rdfish-bgp-pass"
	cli := labEtcd(t, lab, "host1")
	peer := `{"apiVersion":"projectcalico.org/v3","kind":"BGPPeer","metadata":{"name":"old-peer"},"spec":{"peerIP":"172.31.1.99","asNumber":65001,"password":{"value":"` + password + `"}}}`
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := cli.Put(ctx, "/calico/resources/v3/projectcalico.org/bgppeers/old-peer", peer); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "diags.tar.gz")
	stdout := lab.MustCalico("host1", "diags", "--out", out)
	if strings.TrimSpace(stdout) != out {
		t.Errorf("diags printed %q, want the path %s", stdout, out)
	}
	files := untar(t, out)

	for _, want := range []string{"version.txt", "config.txt", "status.json", "problems.txt", "nodes.json", "log.txt",
		"nft-ruleset.txt", "ip-link.txt", "ip4-addr.txt", "ip6-addr.txt", "ip4-route.txt", "ip6-route.txt", "ip4-rule.txt",
		"ip6-rule.txt", "ip4-neigh.txt", "ip6-neigh.txt", "sysctls.txt", "etcd-members.json", "bgp-routes.json",
		"ipam-check.json", "metrics.txt", "checksystem.txt", "resources/bgppeers.yaml", "resources/workloadendpoints.yaml", "resources/ippools.yaml"} {
		if _, ok := files[want]; !ok {
			t.Errorf("the bundle has no %s", want)
		}
	}
	checks := map[string]string{
		"status.json":                      `"node": "host1"`,
		"nft-ruleset.txt":                  "table inet calico",
		"ip4-route.txt":                    "proto 80",
		"etcd-members.json":                `"leader": true`,
		"metrics.txt":                      "felix_active_local_endpoints 1",
		"resources/bgppeers.yaml":          "(redacted)",
		"resources/workloadendpoints.yaml": "dg-a",
		"config.txt":                       "metrics-addr",
		"log.txt":                          "ready: the API answers",
		"sysctls.txt":                      "net.ipv4.ip_forward = 1",
	}
	for f, want := range checks {
		if !strings.Contains(files[f], want) {
			t.Errorf("%s does not hold %q:\n%s", f, want, tail(files[f], 20))
		}
	}
	if e, ok := files["errors.txt"]; ok {
		t.Logf("errors.txt:\n%s", e)
	}

	token := lab.Token("host1")
	_, secret, _ := strings.Cut(token, "::")
	key, err := os.ReadFile(filepath.Join(lab.DataDir("host1"), "pki", "gossip.key"))
	if err != nil {
		t.Fatal(err)
	}
	secrets := map[string]string{"the join token": token, "the token's secret": secret, "the BGP password": password,
		"the gossip key (hex)": hex.EncodeToString(key), "the gossip key (base64)": base64.StdEncoding.EncodeToString(key),
		"a private key": "PRIVATE KEY"}
	for name, data := range files {
		for what, s := range secrets {
			if s != "" && strings.Contains(data, s) {
				t.Errorf("%s holds %s", name, what)
			}
		}
	}
}

// untar reads a tar.gz into a map from the path under its top directory
// to the content.
func untar(t *testing.T, path string) map[string]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(zr)
	out := map[string]string{}
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(tr)
		_, name, _ := strings.Cut(h.Name, "/")
		out[name] = string(b)
	}
}

// TestChecksystem runs `calico checksystem` on a lab host without a node:
// what this machine's kernel lacks is a warning and the exit code is 0;
// with port 179 taken, that line fails and so does the command.
func TestChecksystem(t *testing.T) {
	lab := NewLab(t, 1, 1)
	out, errs, err := lab.Calico("host1", "checksystem")
	if err != nil {
		t.Fatalf("checksystem on a free host: %v\n%s%s", err, out, errs)
	}
	for _, want := range []string{"OK    kernel", "OK    nftables", "port 179/tcp", "port 9099/tcp", "free disk", "clock sync", "other firewalls"} {
		if !strings.Contains(out, want) {
			t.Errorf("checksystem has no %q line:\n%s", want, out)
		}
	}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		if !strings.HasPrefix(line, "OK ") && !strings.HasPrefix(line, "WARN ") {
			t.Errorf("on a free host: %q", line)
		}
	}
	hold := exec.Command("nsenter", "--net=/run/netns/"+hostNS("host1"), probeBin, "serve", "179")
	if err := hold.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { hold.Process.Kill(); hold.Wait() }()
	eventually(t, 10*time.Second, "port 179 to be taken", func() bool {
		out, _, _ := lab.Calico("host1", "checksystem")
		return strings.Contains(out, "FAIL  port 179/tcp")
	})
	out, _, err = lab.Calico("host1", "checksystem")
	if err == nil || !strings.Contains(out, "in use by another process") {
		t.Errorf("with port 179 taken: exit %v\n%s", err, out)
	}
}
