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

// ObjectMeta is Kubernetes object metadata as Calico's resources carry
// it. What Calico's tools may set and this datastore does not use
// (generation, finalizers, owner references, …) is kept as it came, in
// KeptMeta.
type ObjectMeta struct {
	Name              string            `json:"name,omitempty"`
	Namespace         string            `json:"namespace,omitempty"`
	UID               string            `json:"uid,omitempty"`
	ResourceVersion   string            `json:"resourceVersion,omitempty"`
	CreationTimestamp string            `json:"creationTimestamp,omitempty"`
	Labels            map[string]string `json:"labels,omitempty"`
	Annotations       map[string]string `json:"annotations,omitempty"`
	// KeptMeta is nil unless the resource has one of its fields: a node
	// keeps a copy of every endpoint of the fleet, and these eight empty
	// fields were more than half of the size of its metadata.
	*KeptMeta

	// Problems are what Validate found wrong with a resource read from
	// the datastore (written by another tool): the node enforces it
	// fail-closed and reports them. Never stored.
	Problems []FieldError `json:"-"`
}

// KeptMeta are the fields of Kubernetes' object metadata that this
// datastore keeps as they came and does not use.
type KeptMeta struct {
	GenerateName               Raw `json:"generateName,omitempty"`
	SelfLink                   Raw `json:"selfLink,omitempty"`
	Generation                 Raw `json:"generation,omitempty"`
	DeletionTimestamp          Raw `json:"deletionTimestamp,omitempty"`
	DeletionGracePeriodSeconds Raw `json:"deletionGracePeriodSeconds,omitempty"`
	OwnerReferences            Raw `json:"ownerReferences,omitempty"`
	Finalizers                 Raw `json:"finalizers,omitempty"`
	ManagedFields              Raw `json:"managedFields,omitempty"`
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
	// Unsupported says why resources of the kind are refused (it has an
	// effect in Calico that is not implemented here).
	Unsupported string
	new         func() Resource
}

// New returns an empty resource of the kind with its TypeMeta set.
func (k *Kind) New() Resource {
	r := k.new()
	*r.Type() = TypeMeta{Kind: k.Name, APIVersion: APIVersion}
	return r
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
