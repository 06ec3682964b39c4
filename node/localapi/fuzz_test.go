package localapi

import (
	"bytes"
	"encoding/json"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"calico/node/api"
)

// FuzzHandler sends the local API any request to the routes that change
// only the datastore (not the host: no workloads, no leave): every one is
// answered, a failure with a class's status and one JSON message, and
// nothing panics.
func FuzzHandler(f *testing.F) {
	srv, _, _ := newServer(f)
	h := srv.Handler()
	routes := []struct{ method, path string }{
		{"POST", "/v1/resources"}, {"GET", "/v1/resources/"}, {"DELETE", "/v1/resources/"},
		{"GET", "/v1/ipam/address"}, {"POST", "/v1/ipam/release"}, {"POST", "/v1/policy/trace"},
		{"GET", "/v1/policy/stats"}, {"GET", "/v1/status"}, {"GET", "/v1/ipam/check"}, {"GET", "/v1/pools"},
		{"GET", "/v1/version"}, {"GET", "/v1/workloads"}, {"POST", "/v1/ipam/allocate"}, {"POST", "/v1/ipam/release-handle"},
		{"POST", "/v1/ipam/gc"}, {"GET", "/v1/ipam/blocks"}, {"GET", "/v1/bgp/routes"},
		// Not the routes that wire or unwire interfaces (workload add
		// and remove, attachments): an input that makes sense would
		// change this machine's own network namespace.
	}
	for _, seed := range []struct {
		route       uint8
		tail, query string
		body        string
	}{
		{0, "", "mode=apply", "apiVersion: projectcalico.org/v3\nkind: Profile\nmetadata: {name: web}\n"},
		{0, "", "mode=create", "apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata: {name: p}\nspec: {cidr: 10.65.0.0/16}\n"},
		{0, "", "mode=delete", "apiVersion: projectcalico.org/v3\nkind: Profile\nmetadata: {name: web}\n"},
		{0, "", "mode=nope", "{}"}, {1, "profiles", "name=web", ""}, {1, "pods", "", ""}, {2, "ippools/p", "", ""},
		{3, "", "ip=10.65.0.1", ""}, {4, "", "ip=nope", ""},
		{5, "", "", `{"from": {"name": "a"}, "to": {"name": "b"}, "port": 80}`}, {5, "", "", `{"protocol": "icmp", "port": 0}`},
		{6, "", "name=x", ""}, {7, "", "", ""}, {8, "", "", ""}, {9, "", "", ""},
		{10, "", "", ""}, {11, "", "", ""},
		{12, "", "", `{"network": "net1", "containerID": "c1", "families": [4]}`},
		{12, "", "", `{"network": "net1", "containerID": "c2", "ips": ["10.65.0.9"], "node": "other"}`},
		{12, "", "", `{"network": "", "containerID": "Bad ID", "families": [5]}`},
		{13, "", "", `{"network": "net1", "containerID": "c1"}`}, {14, "", "", `{"network": "net1", "valid": ["c2"]}`},
		{14, "", "", `{"network": "net1", "valid": null}`}, {15, "", "", ""}, {16, "", "", ""},
	} {
		f.Add(seed.route, seed.tail, seed.query, []byte(seed.body))
	}
	f.Fuzz(func(t *testing.T, route uint8, tail, query string, body []byte) {
		r := routes[int(route)%len(routes)]
		path := r.path
		if strings.HasSuffix(path, "/") {
			path += url.PathEscape(tail)
		}
		req := httptest.NewRequest(r.method, path+"?"+url.PathEscape(query), bytes.NewReader(body))
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code < 300 {
			return
		}
		var e api.Error
		if err := json.Unmarshal(rec.Body.Bytes(), &e); err != nil || e.Error == "" {
			t.Fatalf("%s %s answered %d without a JSON message: %q", r.method, path, rec.Code, rec.Body)
		}
		if c := api.ClassOfStatus(rec.Code); c.Status() != rec.Code {
			t.Fatalf("%s %s answered %d, which is no class's status: %s", r.method, path, rec.Code, e.Error)
		}
		if len(e.Error) > maxError+100 {
			t.Fatalf("%s %s answered a message of %d bytes", r.method, path, len(e.Error))
		}
	})
}
