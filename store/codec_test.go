package store

import (
	"strings"
	"testing"
)

func TestDecode(t *testing.T) {
	in := `
apiVersion: projectcalico.org/v3
kind: IPPool
metadata: {name: p1}
spec:
  cidr: 10.65.0.0/16
  natOutgoing: true
---
---
apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata: {name: db-from-web}
spec:
  order: 100
  selector: role == "db"
  types: [Ingress]
  ingress:
  - action: Allow
    protocol: TCP
    source: {selector: role == "web"}
    destination: {ports: [5432, "6000:6010"]}
`
	rs, err := Decode([]byte(in))
	if err != nil {
		t.Fatalf("Decode: %v", err)
	}
	if len(rs) != 2 {
		t.Fatalf("got %d resources; want 2", len(rs))
	}
	pool := rs[0].(*IPPool)
	if pool.Spec.CIDR != "10.65.0.0/16" || !pool.Spec.NATOutgoing {
		t.Errorf("pool = %+v", pool.Spec)
	}
	gnp := rs[1].(*GlobalNetworkPolicy)
	r := gnp.Spec.Ingress[0]
	if *gnp.Spec.Order != 100 || r.Protocol.Num != 6 || len(r.Destination.Ports) != 2 ||
		r.Destination.Ports[1] != (Port{First: 6000, Last: 6010}) || r.Source.Selector != `role == "web"` {
		t.Errorf("policy = %+v", gnp.Spec)
	}
}

func TestDecodeJSONAndList(t *testing.T) {
	in := `{"apiVersion":"projectcalico.org/v3","kind":"ProfileList","items":[
	  {"apiVersion":"projectcalico.org/v3","kind":"Profile","metadata":{"name":"a"},"spec":{"labelsToApply":{"a":""}}},
	  {"apiVersion":"projectcalico.org/v3","kind":"Profile","metadata":{"name":"b"}}]}`
	rs, err := Decode([]byte(in))
	if err != nil {
		t.Fatalf("Decode: %v", err)
	}
	if len(rs) != 2 || rs[1].Meta().Name != "b" {
		t.Fatalf("got %v", rs)
	}
}

func TestDecodeErrors(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"kind: IPPool\nmetadata: {name: p}\n", "document 1: apiVersion is missing"},
		{"apiVersion: v1\nkind: IPPool\n", `apiVersion "v1" is not supported`},
		{"apiVersion: projectcalico.org/v3\nkind: Pod\n", `unknown kind "Pod"`},
		{"apiVersion: projectcalico.org/v3\nkind: ippool\n", `did you mean IPPool`},
		{"apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata: {name: p}\nspec: {cidr: 10.0.0.0/8, ipipMod: Never}\n", `IPPool "p": unknown field "spec.ipipMod"`},
		{"apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata: {name: p}\nspec: {blockSize: big}\n", "spec.blockSize"},
		{"apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata: {name: p}\n---\napiVersion: projectcalico.org/v3\nkind: IPPool\nspec: [\n", "document 2:"},
		{"apiVersion: projectcalico.org/v3\nkind: Profile\nmetadata: {name: p}\nspec:\n  ingress:\n  - action: Allow\n    protocol: TCPX\n", `"TCPX" is not a protocol`},
		{"apiVersion: projectcalico.org/v3\nkind: Profile\nmetadata: {name: p}\nspec:\n  ingress:\n  - action: Allow\n    protocol: TCP\n    destination: {ports: [\"http!\"]}\n", `"http!" is not a port`},
		{"apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata: {name: p}\nmetadata: {name: q}\n", "already"},
		{"", "no resources"},
		{"- 1\n- 2\n", "not a resource"},
	} {
		_, err := Decode([]byte(tc.in))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Decode(%q) = %v; want an error containing %q", tc.in, err, tc.want)
		}
	}
}

func TestEncodeRoundTrip(t *testing.T) {
	p := KindIPPool.New().(*IPPool)
	p.Metadata.Name = "p1"
	p.Spec.CIDR = "10.65.0.0/16"
	q := KindIPPool.New().(*IPPool)
	q.Metadata.Name = "p2"
	q.Spec.CIDR = "fd00:65::/48"
	for _, f := range []Format{YAML, JSON} {
		one, err := Encode(p, f)
		if err != nil {
			t.Fatalf("Encode(%s): %v", f, err)
		}
		list, err := EncodeList(KindIPPool, []Resource{p, q}, f)
		if err != nil {
			t.Fatalf("EncodeList(%s): %v", f, err)
		}
		for b, n := range map[string]int{string(one): 1, string(list): 2} {
			back, err := Decode([]byte(b))
			if err != nil {
				t.Fatalf("Decode(Encode(%s)) = %v\n%s", f, err, b)
			}
			if len(back) != n || back[n-1].Meta().Name != []string{"p1", "p2"}[n-1] {
				t.Errorf("round trip through %s gave %v", f, back)
			}
		}
	}
	if b, _ := Encode(p, YAML); !strings.HasPrefix(string(b), "apiVersion: projectcalico.org/v3\nkind: IPPool\n") {
		t.Errorf("YAML output starts:\n%s", b)
	}
	if b, _ := EncodeList(KindIPPool, nil, YAML); !strings.Contains(string(b), "items: []") || !strings.Contains(string(b), "kind: IPPoolList") {
		t.Errorf("empty list:\n%s", b)
	}
}
