package docker

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// FuzzPluginCall: any body on any call of either socket gets a JSON reply
// of one line: 200 (a result, or Err and Error alike), 400 for a body
// that is not the call's request, 404 for an unknown call; never a
// panic.
func FuzzPluginCall(f *testing.F) {
	h := newHarness(f, nil)
	handlers := []http.Handler{h.s.networkHandler(), h.s.ipamHandler()}
	calls := []string{
		"/Plugin.Activate", "/NetworkDriver.CreateNetwork", "/NetworkDriver.DeleteNetwork", "/NetworkDriver.CreateEndpoint",
		"/NetworkDriver.DeleteEndpoint", "/NetworkDriver.EndpointOperInfo", "/NetworkDriver.Join", "/NetworkDriver.Leave",
		"/NetworkDriver.ProgramExternalConnectivity", "/IpamDriver.RequestPool", "/IpamDriver.ReleasePool",
		"/IpamDriver.RequestAddress", "/IpamDriver.ReleaseAddress", "/NoSuch.Call",
	}
	f.Add(uint8(1), `{"NetworkID":"`+netA+`","IPv4Data":[{"Pool":"10.65.0.0/16"}]}`)
	f.Add(uint8(3), `{"NetworkID":"`+netA+`","EndpointID":"`+epA+`","Interface":{"Address":"10.65.0.9/32"}}`)
	f.Add(uint8(9), `{"AddressSpace":"CalicoLocalAddressSpace","Pool":"10.65.0.0/16","V6":false}`)
	f.Add(uint8(11), `{"PoolID":"CalicoPoolIPv4","Address":"10.65.0.1","Options":{}}`)
	f.Add(uint8(12), `{"PoolID":"x","Address":"nope"}`)
	f.Add(uint8(6), `{"NetworkID":"`+netA+`","EndpointID":"`+epA+`","SandboxKey":"/proc/self/ns/net"}`)
	f.Fuzz(func(t *testing.T, which uint8, body string) {
		call := calls[int(which)%len(calls)]
		if call == "/NetworkDriver.Join" {
			body = "{}" // Join enters the sandbox named: not with any path
		}
		for _, hd := range handlers {
			rec := httptest.NewRecorder()
			hd.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "http://plugin"+call, strings.NewReader(body)))
			switch rec.Code {
			case http.StatusOK, http.StatusBadRequest, http.StatusNotFound:
			default:
				t.Fatalf("%s %q: status %d", call, body, rec.Code)
			}
			var reply map[string]any
			if err := json.Unmarshal(rec.Body.Bytes(), &reply); err != nil {
				t.Fatalf("%s %q: reply %q is not JSON: %v", call, body, rec.Body, err)
			}
			if e, _ := reply["Err"].(string); e != "" && (e != reply["Error"] || strings.Contains(e, "\n")) {
				t.Fatalf("%s %q: Err %q and Error %q", call, body, e, reply["Error"])
			}
		}
	})
}
