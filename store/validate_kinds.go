package store

import (
	"fmt"
	"regexp"
	"sync"

	"calico/internal/quote"
	"calico/store/selector"
)

// The built-in tiers, as Calico makes them: their orders are fixed, and
// they cannot be deleted.
const (
	DefaultTier      = "default"
	KubeAdminTier    = "kube-admin"
	KubeBaselineTier = "kube-baseline"
	// DefaultTierOrder is the order of the default tier and of a tier that
	// does not give one.
	DefaultTierOrder = 1e6
)

// BuiltinTiers are the tiers every cluster has, with their order and
// default action.
var BuiltinTiers = []struct {
	Name          string
	Order         float64
	DefaultAction string
}{
	{KubeAdminTier, 1000, "Pass"},
	{DefaultTier, DefaultTierOrder, "Deny"},
	{KubeBaselineTier, 1e7, "Pass"},
}

// NewTier returns a tier with its defaults set.
func NewTier(name string, order float64, defaultAction string) *Tier {
	t := KindTier.New().(*Tier)
	t.Metadata.Name = name
	t.Spec.Order = &order
	t.Spec.DefaultAction = defaultAction
	return t
}

func (t *Tier) validate(c *checker) {
	c.dnsLabel("metadata.name", t.Metadata.Name)
	s := &t.Spec
	if s.DefaultAction != "Deny" && s.DefaultAction != "Pass" {
		c.errorf("spec.defaultAction", "%q is not Deny or Pass", quote.Clip(s.DefaultAction))
	}
	for _, b := range BuiltinTiers {
		if t.Metadata.Name != b.Name {
			continue
		}
		if s.Order == nil || *s.Order != b.Order {
			c.errorf("spec.order", "the %s tier's order is %g", b.Name, b.Order)
		}
		if s.DefaultAction != b.DefaultAction {
			c.errorf("spec.defaultAction", "the %s tier's default action is %s", b.Name, b.DefaultAction)
		}
	}
}

func (t *Tier) setDefaults() {
	if t.Spec.Order == nil {
		o := float64(DefaultTierOrder)
		t.Spec.Order = &o
	}
	if t.Spec.DefaultAction == "" {
		t.Spec.DefaultAction = "Deny"
	}
}

func (s *GlobalNetworkSet) validate(c *checker) {
	c.name("metadata.name", s.Metadata.Name)
	c.networkSet(s.Metadata.Labels, &s.Spec)
}

func (s *GlobalNetworkSet) setDefaults() {}

func (s *NetworkSet) validate(c *checker) {
	c.name("metadata.name", s.Metadata.Name)
	c.networkSet(s.Metadata.Labels, &s.Spec)
}

func (s *NetworkSet) setDefaults() {
	if s.Metadata.Namespace == "" {
		s.Metadata.Namespace = "default"
	}
}

func (c *checker) networkSet(labels map[string]string, s *NetworkSetSpec) {
	if _, ok := labels[selector.NamespaceLabel]; ok {
		c.errorf("metadata.labels."+selector.NamespaceLabel, "is set by calico (from the namespace), not by users")
	}
	for i, n := range s.Nets {
		c.cidr(fmt.Sprintf("spec.nets[%d]", i), n)
	}
}

var clusterGUIDRE = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[0-9a-f]{32}$`) })

func (ci *ClusterInformation) validate(c *checker) {
	if ci.Metadata.Name != "default" {
		c.errorf("metadata.name", "%q: the cluster's information is called default", quote.Clip(ci.Metadata.Name))
	}
	if g := ci.Spec.ClusterGUID; g != "" && !clusterGUIDRE().MatchString(g) {
		c.errorf("spec.clusterGUID", "%q is not 32 lower-case hex digits", quote.Clip(g))
	}
}

func (ci *ClusterInformation) setDefaults() {}

// Opaque kinds are kept as they came; only their name is checked, and
// that they are not a kind with an effect this datastore cannot give.
func (o *Opaque) validate(c *checker) {
	k := o.kind()
	if k == nil {
		c.errorf("kind", "unknown kind %q", quote.Clip(o.Kind))
		return
	}
	switch k {
	case KindIPAMConfiguration, KindKubeControllersConfiguration:
		if o.Metadata.Name != "default" {
			c.errorf("metadata.name", "%q: a %s is called default", quote.Clip(o.Metadata.Name), k.Name)
		}
	default:
		c.name("metadata.name", o.Metadata.Name)
	}
}

func (o *Opaque) setDefaults() {}
