package ipam

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"testing"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// calicoBlock is a block as Calico's IPAM writes it in etcd (calico-v3.md
// §2.4: AutoAssign of two addresses for handle k8s-pod-network.abc123 on
// node1), with the 64 allocations and 62 free ordinals written out.
func calicoBlock() string {
	allocs := []string{"0", "0"}
	for range 62 {
		allocs = append(allocs, "null")
	}
	var free []string
	for i := 2; i < 64; i++ {
		free = append(free, fmt.Sprint(i))
	}
	return `{"cidr":"10.65.166.128/26","affinity":"host:node1","affinity_claim_time":"2026-12-04T16:57:35Z",` +
		`"allocations":[` + strings.Join(allocs, ",") + `],"unallocated":[` + strings.Join(free, ",") + `],` +
		`"attributes":[{"handle_id":"k8s-pod-network.abc123","secondary":{"namespace":"ns1","node":"node1","pod":"pod1","timestamp":"2026-01-01 00:00:00 +0000 UTC"}}],` +
		`"sequenceNumber":1796403455609481477,"sequenceNumberForAllocation":{"0":1796403455609481476,"1":1796403455609481476},"deleted":false}`
}

const (
	calicoBlockKey    = "/calico/ipam/v2/assignment/ipv4/block/10.65.166.128-26"
	calicoAffinityKey = "/calico/ipam/v2/host/node1/ipv4/block/10.65.166.128-26"
	calicoHandleKey   = "/calico/ipam/v2/handle/k8s-pod-network.abc123"
	calicoHandle      = `{"block":{"10.65.166.128/26":2},"deleted":false}`
	calicoAffinity    = `{"state":"confirmed","deleted":false}`
)

var calicoPool = Pool{CIDR: netip.MustParsePrefix("10.65.0.0/16"), BlockSize: 26}

// TestCodecRoundTrip: what Calico writes decodes and encodes back to the
// same bytes, and members we do not know (Calico's newer fields, or a
// future one) are kept.
func TestCodecRoundTrip(t *testing.T) {
	withExtras := strings.Replace(calicoBlock(), `"deleted":false}`,
		`"deleted":false,"hostAffinity":"node1","zFuture":{"a": [1, 2]}}`, 1)
	withExtras = strings.Replace(withExtras, `"timestamp":"2026-01-01 00:00:00 +0000 UTC"}}`,
		`"timestamp":"2026-01-01 00:00:00 +0000 UTC"},"alternateOwnerAttrs":{"pod":"pod0"},"releasedAt":"2026-12-04T17:00:00Z","zNew":true}`, 1)
	for _, tc := range []struct {
		name, in, want string
		v              any
	}{
		{"block", calicoBlock(), calicoBlock(), &blockValue{}},
		{"block with newer fields", withExtras, strings.Replace(withExtras, `{"a": [1, 2]}`, `{"a":[1,2]}`, 1), &blockValue{}},
		{"handle", calicoHandle, calicoHandle, &handleValue{}},
		{"handle of ours", `{"handleID":"h","block":{"10.65.0.0/26":1},"deleted":false}`, `{"block":{"10.65.0.0/26":1},"deleted":false}`, &handleValue{}},
		{"affinity", calicoAffinity, calicoAffinity, &affinityValue{}},
		{"affinity with more", `{"state":"pending","deleted":false,"x":1}`, `{"state":"pending","deleted":false,"x":1}`, &affinityValue{}},
		{"block of ours", strings.Replace(calicoBlock(), "affinity_claim_time", "affinityClaimTime", 1), calicoBlock(), &blockValue{}},
		{"block with both claim times", strings.Replace(calicoBlock(), `"allocations"`, `"affinityClaimTime":"2000-01-01T00:00:00Z","allocations"`, 1), calicoBlock(), &blockValue{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := json.Unmarshal([]byte(tc.in), tc.v); err != nil {
				t.Fatal(err)
			}
			out, err := json.Marshal(tc.v)
			if err != nil {
				t.Fatal(err)
			}
			if string(out) != tc.want {
				t.Errorf("encoded back as\n%s\nwant\n%s", out, tc.want)
			}
		})
	}
}

func TestConfirmedAffinity(t *testing.T) {
	for val, want := range map[string]bool{
		``:                                      true, // older Calico wrote no value
		`{}`:                                    true,
		`{"state":""}`:                          true,
		`{"state":"","deleted":false}`:          true,
		`{"state":"confirmed","deleted":false}`: true,
		`{"state":"confirmed","deleted":true}`:  false,
		`{"state":"pending","deleted":false}`:   false,
		`{"state":"pendingDeletion"}`:           false,
		`not json`:                              false,
	} {
		if got := confirmedAffinity([]byte(val)); got != want {
			t.Errorf("confirmedAffinity(%q) = %v; want %v", val, got, want)
		}
	}
}

// putCalicoBlock writes the block, its affinity and its handle as Calico
// would, with the affinity's value given.
func putCalicoBlock(t *testing.T, cli *clientv3.Client, block, affinity string) {
	t.Helper()
	for k, v := range map[string]string{calicoBlockKey: block, calicoAffinityKey: affinity, calicoHandleKey: calicoHandle} {
		if _, err := cli.Put(t.Context(), k, v); err != nil {
			t.Fatal(err)
		}
	}
}

// TestCalicoBlockRewritten: our IPAM allocates in a block Calico wrote and
// releases again, and every member Calico wrote is still there with its
// value, apart from what an allocation changes.
func TestCalicoBlockRewritten(t *testing.T) {
	m, cli := newIPAM(t)
	ctx := t.Context()
	orig := strings.Replace(calicoBlock(), `"deleted":false}`, `"deleted":false,"zFuture":"kept"}`, 1)
	putCalicoBlock(t, cli, orig, calicoAffinity)
	a, err := m.AutoAssign(ctx, "k8s-pod-network.abc123", "node1", []Pool{calicoPool}, map[string]string{"pod": "pod2"})
	if err != nil {
		t.Fatal(err)
	}
	if a != netip.MustParseAddr("10.65.166.130") {
		t.Fatalf("allocated %s; want 10.65.166.130, the first free address of node1's block", a)
	}
	var before map[string]any
	json.Unmarshal([]byte(orig), &before)
	after := rawJSON(t, cli, calicoBlockKey)
	if got, want := fieldNames(after), fieldNames(before); !slices.Equal(got, want) {
		t.Errorf("block members = %v; want Calico's %v", got, want)
	}
	for _, k := range []string{"cidr", "affinity", "affinity_claim_time", "deleted", "zFuture"} {
		if !reflect.DeepEqual(after[k], before[k]) {
			t.Errorf("%s = %v; want it kept as %v", k, after[k], before[k])
		}
	}
	attrs := after["attributes"].([]any)
	if len(attrs) != 2 || !reflect.DeepEqual(attrs[0], before["attributes"].([]any)[0]) {
		t.Errorf("attributes = %v; want Calico's first, then ours", attrs)
	}
	if h := rawJSON(t, cli, calicoHandleKey); fmt.Sprint(h) != "map[block:map[10.65.166.128/26:3] deleted:false]" {
		t.Errorf("handle = %v; want 3 addresses in the block and Calico's members only", h)
	}

	if err := m.Release(ctx, a); err != nil {
		t.Fatal(err)
	}
	after = rawJSON(t, cli, calicoBlockKey)
	for _, k := range []string{"cidr", "affinity", "affinity_claim_time", "allocations", "attributes", "deleted", "zFuture"} {
		if !reflect.DeepEqual(after[k], before[k]) {
			t.Errorf("after release, %s = %v; want %v again", k, after[k], before[k])
		}
	}
	if h := rawJSON(t, cli, calicoHandleKey); fmt.Sprint(h) != "map[block:map[10.65.166.128/26:2] deleted:false]" {
		t.Errorf("handle = %v; want 2 addresses again", h)
	}
}

// TestCalicoAffinityStates: a block whose affinity has no state (older
// Calico) is the host's; one Calico is in the middle of claiming or
// releasing is not.
func TestCalicoAffinityStates(t *testing.T) {
	for _, tc := range []struct {
		affinity string
		mine     bool
	}{
		{``, true},
		{`{}`, true},
		{`{"state":"","deleted":false}`, true},
		{`{"state":"confirmed","deleted":false}`, true},
		{`{"state":"pending","deleted":false}`, false},
		{`{"state":"pendingDeletion","deleted":false}`, false},
	} {
		t.Run(fmt.Sprintf("%q", tc.affinity), func(t *testing.T) {
			m, cli := newIPAM(t)
			putCalicoBlock(t, cli, calicoBlock(), tc.affinity)
			got := mustHostBlocks(t, m, "node1")
			if mine := len(got) == 1; mine != tc.mine {
				t.Fatalf("HostBlocks(node1) = %v; want the block: %v", got, tc.mine)
			}
			a := mustAuto(t, m, "h", "node1", calicoPool)
			if in := netip.MustParsePrefix("10.65.166.128/26").Contains(a); in != tc.mine {
				t.Errorf("allocated %s; want it from the block: %v", a, tc.mine)
			}
		})
	}
}

// TestOlderBlockOfOurs: a block an earlier version of ours wrote, with the
// CRD's name for the claim time, is rewritten with Calico's.
func TestOlderBlockOfOurs(t *testing.T) {
	m, cli := newIPAM(t)
	ours := strings.Replace(calicoBlock(), "affinity_claim_time", "affinityClaimTime", 1)
	putCalicoBlock(t, cli, ours, calicoAffinity)
	mustAuto(t, m, "h", "node1", calicoPool)
	after := rawJSON(t, cli, calicoBlockKey)
	if _, ok := after["affinityClaimTime"]; ok || after["affinity_claim_time"] != "2026-12-04T16:57:35Z" {
		t.Errorf("block = %v; want the claim time under affinity_claim_time only", after)
	}
}
