package store

import (
	"encoding/json"
	"os"
	"reflect"
	"strings"
	"testing"
)

// TestCalicoValuesRoundTrip reads the values Calico's own client
// (calicoctl v3.32.1, etcd mode) stored for each kind, as another tool
// sharing our datastore writes them, and writes them back: every field
// must decode, nothing be reported but what we do not support, and the
// value come out byte for byte as it was.
func TestCalicoValuesRoundTrip(t *testing.T) {
	b, err := os.ReadFile("testdata/calicoctl-v3.32.1.txt")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	// The kinds here that have an effect in Calico we do not give: they
	// are read, kept and reported.
	unsupported := map[string]string{"ipreservations": "kind", "bgpfilters": "kind", "globalnetworkpolicies/allow-ping": "spec.ingress[1].source.serviceAccounts"}
	for i := 0; i+1 < len(lines); i += 2 {
		key, val := lines[i], lines[i+1]
		id, ok := ParseKey(key)
		if !ok {
			t.Errorf("%s: not a key we know", key)
			continue
		}
		r := DecodeStored(id, []byte(val), 0)
		var fields []string
		for _, p := range r.Meta().Problems {
			fields = append(fields, p.Field+": "+p.Msg)
		}
		want := unsupported[id.Kind.Plural]
		if w, ok := unsupported[id.Kind.Plural+"/"+id.Name]; ok {
			want = w
		}
		if want == "" && len(fields) > 0 || want != "" && (len(fields) != 1 || !strings.HasPrefix(fields[0], want)) {
			t.Errorf("%s: problems %q", key, fields)
		}
		out, err := EncodeStored(r)
		if err != nil {
			t.Fatal(err)
		}
		if out != val {
			t.Errorf("%s does not round-trip:\n got %s\nwant %s", key, out, val)
		}
		// And through the user's YAML: get -o yaml, then apply.
		y, err := Encode(r, YAML)
		if err != nil {
			t.Fatal(err)
		}
		back, err := Decode(y)
		if err != nil {
			t.Errorf("%s: its YAML does not decode: %v\n%s", key, err, y)
			continue
		}
		// YAML sorts the keys of what we keep as it came: the same value.
		j, _ := EncodeStored(back[0])
		var orig, again any
		json.Unmarshal([]byte(val), &orig)
		json.Unmarshal([]byte(j), &again)
		if !reflect.DeepEqual(orig, again) {
			t.Errorf("%s through YAML:\n got %s\nwant %s", key, j, val)
		}
	}
}

// TestEveryCalicoField checks that every field of Calico's v3 types (the
// list is generated from Calico v3.32.1's api package) has a field here
// of the same JSON name, for the types this package models field by
// field; the others are kept whole, as they came.
func TestEveryCalicoField(t *testing.T) {
	ours := map[string]any{
		"Rule": Rule{}, "EntityRule": EntityRule{}, "ICMPFields": ICMP{}, "RuleMetadata": RuleMeta{},
		"GlobalNetworkPolicySpec": GlobalNetworkPolicySpec{}, "NetworkPolicySpec": NetworkPolicySpec{},
		"ProfileSpec": ProfileSpec{}, "TierSpec": TierSpec{}, "GlobalNetworkSetSpec": NetworkSetSpec{}, "NetworkSetSpec": NetworkSetSpec{},
		"HostEndpointSpec": HostEndpointSpec{}, "EndpointPort": EndpointPort{}, "IPPoolSpec": IPPoolSpec{},
		"BGPPeerSpec": BGPPeerSpec{}, "BGPPassword": BGPPassword{}, "BGPConfigurationSpec": BGPConfigurationSpec{},
		"FelixConfigurationSpec": FelixConfigurationSpec{}, "ProtoPort": ProtoPort{}, "ClusterInformationSpec": ClusterInformationSpec{},
		"WorkloadEndpointSpec": WorkloadEndpointSpec{}, "WorkloadEndpointPort": WorkloadEndpointPort{},
		"NodeSpec": NodeSpec{}, "NodeBGPSpec": NodeBGPSpec{}, "NodeAddress": NodeAddress{},
	}
	b, err := os.ReadFile("testdata/calico-v3.32.1-fields.txt")
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		f := strings.Fields(line)
		v, ok := ours[f[0]]
		if !ok {
			continue
		}
		seen[f[0]] = true
		have := jsonFields(reflect.TypeOf(v))
		for _, name := range f[1:] {
			if _, ok := have[strings.ToLower(name)]; !ok {
				t.Errorf("%s.%s: Calico has it, we do not", f[0], name)
			}
		}
		extra := map[string]int{"BGPPassword": 1} // value: written by older versions, still read
		if len(have) > len(f)-1+extra[f[0]] {
			t.Errorf("%s has %d fields here, %d in Calico", f[0], len(have), len(f)-1)
		}
	}
	for name := range ours {
		if !seen[name] {
			t.Errorf("%s is not in Calico's list", name)
		}
	}
}

// TestDecodeStoredUnknownFields: every member of a stored value that our
// API has no field for is reported by its path, wherever it is; a value
// with anything after it cannot be read.
func TestDecodeStoredUnknownFields(t *testing.T) {
	id := ID{Kind: KindWorkloadEndpoint, Namespace: "ns", Name: "h-k8s-p-eth0"}
	head := `{"kind":"WorkloadEndpoint","apiVersion":"projectcalico.org/v3","metadata":{"name":"h-k8s-p-eth0","namespace":"ns"`
	spec := `"spec":{"node":"h","orchestrator":"k8s","workload":"p","endpoint":"eth0","interfaceName":"cali1","ipNetworks":["10.65.0.1/32"]`
	for _, c := range []struct {
		val  string
		want []string // the problems, as field: message
	}{
		{head + `},` + spec + `}}`, nil},
		{head + `},` + strings.ToUpper(spec[:7]) + spec[7:] + `}}`, nil}, // matched as encoding/json does: any case
		{head + `,"colour":"red"},` + spec + `,"ports":[{"name":"web","port":80,"protocol":"TCP","weight":3}]},"extra":1}`,
			[]string{"extra: is not a field of Calico's API", "metadata.colour: is not a field of Calico's API", "spec.ports[0].weight: is not a field of Calico's API"}},
		// encoding/json folds "ſ" to "s": the value decodes into spec,
		// but a member spelt so is not one of our API's names.
		{head + `},` + strings.Replace(spec, `"spec"`, `"ſpec"`, 1) + `}}`, []string{"ſpec: is not a field of Calico's API"}},
		{head + `},` + spec + `}} {}`, []string{": cannot be read: invalid character '{' after top-level value"}},
		{head + `,"colour":"red"},` + spec + `}} x`, []string{": cannot be read: invalid character 'x' after top-level value"}},
	} {
		r := DecodeStored(id, []byte(c.val), 0)
		var got []string
		for _, p := range r.Meta().Problems {
			got = append(got, p.Field+": "+p.Msg)
		}
		if !reflect.DeepEqual(got, c.want) {
			t.Errorf("DecodeStored(%s)\nproblems %q\nwant     %q", c.val, got, c.want)
		}
	}
}

// TestKeptMeta: the fields of Kubernetes' metadata this datastore does
// not use are kept as they came, and cost an endpoint nothing when it
// has none of them.
func TestKeptMeta(t *testing.T) {
	id := ID{Kind: KindWorkloadEndpoint, Namespace: "ns", Name: "h-k8s-p-eth0"}
	spec := `"spec":{"node":"h","orchestrator":"k8s","workload":"p","endpoint":"eth0","interfaceName":"cali1","ipNetworks":["10.65.0.1/32"]}`
	kept := `"generation":3,"finalizers":["x.example/y"],"ownerReferences":[{"kind":"Pod","name":"p"}]`
	for _, c := range []struct {
		meta string
		kept bool
	}{
		{`"name":"h-k8s-p-eth0","namespace":"ns","labels":{"projectcalico.org/namespace":"ns","projectcalico.org/orchestrator":"k8s"}`, false},
		{`"name":"h-k8s-p-eth0","namespace":"ns",` + kept + `,"labels":{"projectcalico.org/namespace":"ns","projectcalico.org/orchestrator":"k8s"}`, true},
	} {
		val := `{"kind":"WorkloadEndpoint","apiVersion":"projectcalico.org/v3","metadata":{` + c.meta + `},` + spec + `}`
		r := DecodeStored(id, []byte(val), 0)
		if p := r.Meta().Problems; len(p) > 0 {
			t.Errorf("%s: problems %v", c.meta, p)
		}
		if (r.Meta().KeptMeta != nil) != c.kept {
			t.Errorf("%s: KeptMeta %+v", c.meta, r.Meta().KeptMeta)
		}
		out, err := EncodeStored(r)
		if err != nil {
			t.Fatal(err)
		}
		var want, got any
		json.Unmarshal([]byte(val), &want)
		json.Unmarshal([]byte(out), &got)
		if !reflect.DeepEqual(want, got) {
			t.Errorf("not kept as it came:\n got %s\nwant %s", out, val)
		}
	}
}
