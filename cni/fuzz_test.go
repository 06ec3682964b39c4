package cni

import (
	"encoding/json"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/containernetworking/cni/pkg/types"
)

// FuzzConfig: any network config and CNI_ARGS is read, or refused with a
// CNI error of one short line; never a panic.
func FuzzConfig(f *testing.F) {
	f.Add(`{"cniVersion":"1.0.0","name":"net1","type":"calico","ipam":{"type":"calico-ipam","assign_ipv6":"true","ipv4_pools":["10.65.0.0/16"]},"mtu":1400,"args":{"cni":{"labels":{"role":"web"}}}}`, "IgnoreUnknown=1;K8S_POD_NAMESPACE=ns1;K8S_POD_NAME=web-1;IP=10.65.0.9")
	f.Add(`{"type":"calico","ipam":{"type":"host-local"},"log_level":"loud"}`, "IgnoreUnknown")
	f.Add(`{"ipam":{"assign_ipv4":"false","assign_ipv6":"no"},"mtu":1}`, ";;K=V=W")
	f.Add(`{"args":{"org.apache.mesos":{"network_info":{"labels":{"labels":[{"key":"a","value":"b"}]}}}}}`, "")
	f.Fuzz(func(t *testing.T, config, args string) {
		var paths struct {
			Log      string `json:"log_file_path"`
			Nodename string `json:"nodename_file"`
		}
		if json.Unmarshal([]byte(config), &paths) == nil && (paths.Log != "" || paths.Nodename != "") {
			return // files the config names are not for a fuzzer to write or read
		}
		p := &plugin{stderr: io.Discard}
		defer p.close()
		short := func(err error) {
			var te *types.Error
			if !errors.As(err, &te) || te.Code == 0 {
				t.Fatalf("error %v is not a CNI error with a code", err)
			}
			// The decoder's own message may quote a little of the input;
			// the ones we write quote a clipped value.
			if strings.Contains(te.Msg, "\n") || len(te.Msg) > 400 {
				t.Fatalf("error of %d bytes, or of more than one line: %q", len(te.Msg), te.Msg)
			}
		}
		conf, err := p.load([]byte(config))
		if err != nil {
			short(err)
		} else {
			if _, err := conf.families(); err != nil {
				short(err)
			}
			conf.labels()
		}
		if _, err := parseArgs(args); err != nil {
			short(err)
		}
	})
}
