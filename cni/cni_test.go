package cni

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"calico/node/api"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/types"
)

func TestInstall(t *testing.T) {
	dir := t.TempDir()
	c := InstallConfig{BinDir: dir + "/bin", ConfDir: dir + "/net.d", Network: "calico", Self: "/usr/local/bin/calico", DataDir: dir + "/data", Node: "host1", IPv6: true}
	for range 2 { // again replaces
		if _, err := Install(c); err != nil {
			t.Fatal(err)
		}
	}
	for _, n := range []string{"calico", "calico-ipam"} {
		if l, err := os.Readlink(filepath.Join(c.BinDir, n)); err != nil || l != c.Self {
			t.Errorf("%s -> %q, %v", n, l, err)
		}
	}
	if b, _ := os.ReadFile(c.DataDir + "/nodename"); string(b) != "host1" {
		t.Errorf("nodename holds %q", b)
	}
	list, err := libcni.ConfListFromFile(filepath.Join(c.ConfDir, "10-calico.conflist"))
	if err != nil {
		t.Fatal(err)
	}
	var p netConf
	json.Unmarshal(list.Plugins[0].Bytes, &p)
	if list.Name != "calico" || p.Type != "calico" || p.IPAM.Type != IPAMName || p.DataDir != c.DataDir || p.Nodename != "host1" {
		t.Errorf("conflist %s: plugin %+v", list.Name, p)
	}
	if f, err := p.families(); err != nil || !slices.Equal(f, []int{4, 6}) {
		t.Errorf("families %v, %v", f, err)
	}
}

func TestConfig(t *testing.T) {
	var c netConf
	json.Unmarshal([]byte(`{"name":"n","ipam":{"type":"calico-ipam"},"args":{"cni":{"labels":{"app":"web"}},"org.apache.mesos":{"network_info":{"labels":{"labels":[{"key":"tier","value":"db"}]}}}}}`), &c)
	if f, err := c.families(); err != nil || !slices.Equal(f, []int{4}) {
		t.Errorf("Calico's default families: %v, %v", f, err)
	}
	if l := c.labels(); l["app"] != "web" || l["tier"] != "db" {
		t.Errorf("labels %v", l)
	}
	bad := "yes"
	c.IPAM.AssignIPv6 = &bad
	if _, err := c.families(); codeOf(err) != types.ErrInvalidNetworkConfig {
		t.Errorf("assign_ipv6 yes: %v", err)
	}
	a, err := parseArgs("IgnoreUnknown=1;K8S_POD_NAMESPACE=ns1;K8S_POD_NAME=web-1;IP=10.65.0.9,fd00:65::9")
	if err != nil || a.namespace != "ns1" || a.pod != "web-1" || len(a.ips) != 2 {
		t.Errorf("args %+v, %v", a, err)
	}
	if _, err := parseArgs("IgnoreUnknown"); codeOf(err) != types.ErrInvalidEnvironmentVariables {
		t.Errorf("bad CNI_ARGS: %v", err)
	}
}

func TestErrorCodes(t *testing.T) {
	for _, c := range []struct {
		err  error
		code uint
	}{
		{&api.ClassError{Class: api.Unavailable, Err: api.ErrNoNode}, types.ErrTryAgainLater},
		{&api.StatusError{Status: 503, Msg: "no quorum"}, types.ErrTryAgainLater},
		{&api.StatusError{Status: 404, Msg: "no such container"}, types.ErrUnknownContainer},
		{&api.StatusError{Status: 409, Msg: "eth0 exists", Field: "interface"}, types.ErrInvalidEnvironmentVariables},
		{&api.StatusError{Status: 400, Msg: "no pool x", Field: "pools"}, types.ErrInvalidNetworkConfig},
		{errors.New("boom"), types.ErrInternal},
	} {
		if got := codeOf(asCNI(c.err, "adding")); got != c.code {
			t.Errorf("%v: code %d, want %d", c.err, got, c.code)
		}
	}
}

func codeOf(err error) uint {
	var te *types.Error
	if errors.As(err, &te) {
		return te.Code
	}
	return 1000
}
