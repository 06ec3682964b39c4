package store

import (
	"calico/internal/quote"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// APIVersion is the only API version this datastore speaks.
const APIVersion = "projectcalico.org/v3"

// TypeMeta names a resource's kind and API version.
type TypeMeta struct {
	Kind       string `json:"kind"`
	APIVersion string `json:"apiVersion"`
}

// Type returns the TypeMeta itself; every resource embeds one.
func (t *TypeMeta) Type() *TypeMeta { return t }

// ObjectMeta is the subset of Kubernetes object metadata that Calico's
// resources use.
type ObjectMeta struct {
	Name              string            `json:"name,omitempty"`
	Namespace         string            `json:"namespace,omitempty"`
	ResourceVersion   string            `json:"resourceVersion,omitempty"`
	UID               string            `json:"uid,omitempty"`
	CreationTimestamp string            `json:"creationTimestamp,omitempty"`
	Labels            map[string]string `json:"labels,omitempty"`
	Annotations       map[string]string `json:"annotations,omitempty"`
}

// Resource is any of the kinds this package defines.
type Resource interface {
	Type() *TypeMeta
	Meta() *ObjectMeta
	// validate checks the resource on its own, without the datastore.
	validate(c *checker)
	// setDefaults fills in the defaults Calico fills in on write.
	setDefaults()
	kind() *Kind
}

// Kind describes one resource kind.
type Kind struct {
	Name       string // IPPool
	Plural     string // ippools: the key segment
	Namespaced bool
	// Aliases are the other names calicoctl accepts for the kind.
	Aliases []string
	new     func() Resource
}

// New returns an empty resource of the kind with its TypeMeta set.
func (k *Kind) New() Resource {
	r := k.new()
	*r.Type() = TypeMeta{Kind: k.Name, APIVersion: APIVersion}
	return r
}

var (
	KindBGPConfiguration    = &Kind{Name: "BGPConfiguration", Plural: "bgpconfigurations", Aliases: []string{"bgpconfig", "bgpconfigs"}, new: func() Resource { return new(BGPConfiguration) }}
	KindBGPPeer             = &Kind{Name: "BGPPeer", Plural: "bgppeers", Aliases: []string{"bgpp", "bgpps", "bp", "bps"}, new: func() Resource { return new(BGPPeer) }}
	KindFelixConfiguration  = &Kind{Name: "FelixConfiguration", Plural: "felixconfigurations", Aliases: []string{"felixconfig", "felixconfigs"}, new: func() Resource { return new(FelixConfiguration) }}
	KindGlobalNetworkPolicy = &Kind{Name: "GlobalNetworkPolicy", Plural: "globalnetworkpolicies", Aliases: []string{"gnp", "gnps"}, new: func() Resource { return new(GlobalNetworkPolicy) }}
	KindHostEndpoint        = &Kind{Name: "HostEndpoint", Plural: "hostendpoints", Aliases: []string{"hep", "heps"}, new: func() Resource { return new(HostEndpoint) }}
	KindIPPool              = &Kind{Name: "IPPool", Plural: "ippools", Aliases: []string{"ipp", "ipps", "pool", "pools"}, new: func() Resource { return new(IPPool) }}
	KindNetworkPolicy       = &Kind{Name: "NetworkPolicy", Plural: "networkpolicies", Namespaced: true, Aliases: []string{"np", "nps", "policy", "policies", "pol", "pols"}, new: func() Resource { return new(NetworkPolicy) }}
	KindNode                = &Kind{Name: "Node", Plural: "nodes", Aliases: []string{"no", "nos"}, new: func() Resource { return new(Node) }}
	KindProfile             = &Kind{Name: "Profile", Plural: "profiles", Aliases: []string{"pro", "pros"}, new: func() Resource { return new(Profile) }}
	KindWorkloadEndpoint    = &Kind{Name: "WorkloadEndpoint", Plural: "workloadendpoints", Namespaced: true, Aliases: []string{"wep", "weps"}, new: func() Resource { return new(WorkloadEndpoint) }}
)

var kinds = []*Kind{
	KindBGPConfiguration, KindBGPPeer, KindFelixConfiguration, KindGlobalNetworkPolicy, KindHostEndpoint,
	KindIPPool, KindNetworkPolicy, KindNode, KindProfile, KindWorkloadEndpoint,
}

// Kinds lists every kind, sorted by name.
func Kinds() []*Kind { return slices.Clone(kinds) }

// LookupKind finds a kind by its name, plural, singular or alias, in any
// case, as calicoctl does.
func LookupKind(name string) (*Kind, error) {
	n := strings.ToLower(name)
	for _, k := range kinds {
		if n == strings.ToLower(k.Name) || n == k.Plural || slices.Contains(k.Aliases, n) {
			return k, nil
		}
	}
	names := make([]string, len(kinds))
	for i, k := range kinds {
		names[i] = k.Plural
	}
	return nil, fmt.Errorf("unknown resource kind %q (known: %s)", quote.Clip(name), strings.Join(names, ", "))
}

// KindOf returns the kind of r.
func KindOf(r Resource) *Kind { return r.kind() }

// ID names one resource: its kind, namespace (for namespaced kinds) and
// name.
type ID struct {
	Kind      *Kind
	Namespace string
	Name      string
}

// IDOf returns r's ID.
func IDOf(r Resource) ID {
	return ID{Kind: KindOf(r), Namespace: r.Meta().Namespace, Name: r.Meta().Name}
}

func (id ID) String() string {
	if id.Kind.Namespaced {
		return fmt.Sprintf("%s %s/%s", id.Kind.Name, id.Namespace, id.Name)
	}
	return fmt.Sprintf("%s %q", id.Kind.Name, quote.Clip(id.Name))
}

// ParseRevision reads a resourceVersion: the etcd revision of the write
// that made it.
func ParseRevision(rv string) (int64, error) {
	n, err := strconv.ParseInt(rv, 10, 64)
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("resourceVersion %q is not a revision", quote.Clip(rv))
	}
	return n, nil
}
