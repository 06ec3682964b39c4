package store

// The kinds of Calico's projectcalico.org/v3 API. Those marked opaque are
// stored for Calico's tools (calicoctl needs ClusterInformation and
// KubeControllersConfiguration; staged policies only preview) and have no
// effect here, as in Calico without Kubernetes; unsupported ones are
// refused on apply.
var (
	KindBGPConfiguration              = &Kind{Name: "BGPConfiguration", Plural: "bgpconfigurations", Aliases: []string{"bgpconfig", "bgpconfigs"}, new: func() Resource { return new(BGPConfiguration) }}
	KindBGPFilter                     = &Kind{Name: "BGPFilter", Plural: "bgpfilters", Aliases: []string{"bgpfilter"}, Unsupported: "BGP filters are not implemented", new: newOpaque}
	KindBGPPeer                       = &Kind{Name: "BGPPeer", Plural: "bgppeers", Aliases: []string{"bgpp", "bgpps", "bp", "bps"}, new: func() Resource { return new(BGPPeer) }}
	KindCalicoNodeStatus              = &Kind{Name: "CalicoNodeStatus", Plural: "caliconodestatuses", Aliases: []string{"caliconodestatus"}, Unsupported: "node status reports are not written (calico status shows the BGP sessions)", new: newOpaque}
	KindClusterInformation            = &Kind{Name: "ClusterInformation", Plural: "clusterinformations", Aliases: []string{"clusterinfo", "clusterinfos"}, new: func() Resource { return new(ClusterInformation) }}
	KindFelixConfiguration            = &Kind{Name: "FelixConfiguration", Plural: "felixconfigurations", Aliases: []string{"felixconfig", "felixconfigs"}, new: func() Resource { return new(FelixConfiguration) }}
	KindGlobalNetworkPolicy           = &Kind{Name: "GlobalNetworkPolicy", Plural: "globalnetworkpolicies", Aliases: []string{"gnp", "gnps"}, new: func() Resource { return new(GlobalNetworkPolicy) }}
	KindGlobalNetworkSet              = &Kind{Name: "GlobalNetworkSet", Plural: "globalnetworksets", Aliases: []string{"gns", "globalnetworkset"}, new: func() Resource { return new(GlobalNetworkSet) }}
	KindHostEndpoint                  = &Kind{Name: "HostEndpoint", Plural: "hostendpoints", Aliases: []string{"hep", "heps"}, new: func() Resource { return new(HostEndpoint) }}
	KindIPAMConfiguration             = &Kind{Name: "IPAMConfiguration", Plural: "ipamconfigurations", Aliases: []string{"ipamconfig", "ipamconfigs"}, new: newOpaque}
	KindIPPool                        = &Kind{Name: "IPPool", Plural: "ippools", Aliases: []string{"ipp", "ipps", "pool", "pools"}, new: func() Resource { return new(IPPool) }}
	KindIPReservation                 = &Kind{Name: "IPReservation", Plural: "ipreservations", Aliases: []string{"ipreservation"}, Unsupported: "IP reservations are not implemented", new: newOpaque}
	KindKubeControllersConfiguration  = &Kind{Name: "KubeControllersConfiguration", Plural: "kubecontrollersconfigurations", Aliases: []string{"kcc"}, new: newOpaque}
	KindNetworkPolicy                 = &Kind{Name: "NetworkPolicy", Plural: "networkpolicies", Namespaced: true, Aliases: []string{"np", "nps", "policy", "policies", "pol", "pols"}, new: func() Resource { return new(NetworkPolicy) }}
	KindNetworkSet                    = &Kind{Name: "NetworkSet", Plural: "networksets", Namespaced: true, Aliases: []string{"netset", "netsets", "networkset"}, new: func() Resource { return new(NetworkSet) }}
	KindNode                          = &Kind{Name: "Node", Plural: "nodes", Aliases: []string{"no", "nos"}, new: func() Resource { return new(Node) }}
	KindProfile                       = &Kind{Name: "Profile", Plural: "profiles", Aliases: []string{"pro", "pros"}, new: func() Resource { return new(Profile) }}
	KindStagedGlobalNetworkPolicy     = &Kind{Name: "StagedGlobalNetworkPolicy", Plural: "stagedglobalnetworkpolicies", Aliases: []string{"sgnp", "sgnps"}, new: newOpaque}
	KindStagedKubernetesNetworkPolicy = &Kind{Name: "StagedKubernetesNetworkPolicy", Plural: "stagedkubernetesnetworkpolicies", Namespaced: true, Aliases: []string{"sknp", "sknps"}, new: newOpaque}
	KindStagedNetworkPolicy           = &Kind{Name: "StagedNetworkPolicy", Plural: "stagednetworkpolicies", Namespaced: true, Aliases: []string{"snp", "snps"}, new: newOpaque}
	KindTier                          = &Kind{Name: "Tier", Plural: "tiers", Aliases: []string{"tier"}, new: func() Resource { return new(Tier) }}
	KindWorkloadEndpoint              = &Kind{Name: "WorkloadEndpoint", Plural: "workloadendpoints", Namespaced: true, Aliases: []string{"wep", "weps"}, new: func() Resource { return new(WorkloadEndpoint) }}
)

var kinds = []*Kind{
	KindBGPConfiguration, KindBGPFilter, KindBGPPeer, KindCalicoNodeStatus, KindClusterInformation,
	KindFelixConfiguration, KindGlobalNetworkPolicy, KindGlobalNetworkSet, KindHostEndpoint,
	KindIPAMConfiguration, KindIPPool, KindIPReservation, KindKubeControllersConfiguration,
	KindNetworkPolicy, KindNetworkSet, KindNode, KindProfile, KindStagedGlobalNetworkPolicy,
	KindStagedKubernetesNetworkPolicy, KindStagedNetworkPolicy, KindTier, KindWorkloadEndpoint,
}

func newOpaque() Resource { return new(Opaque) }

func (r *Node) Meta() *ObjectMeta                { return &r.Metadata }
func (r *IPPool) Meta() *ObjectMeta              { return &r.Metadata }
func (r *WorkloadEndpoint) Meta() *ObjectMeta    { return &r.Metadata }
func (r *HostEndpoint) Meta() *ObjectMeta        { return &r.Metadata }
func (r *Profile) Meta() *ObjectMeta             { return &r.Metadata }
func (r *GlobalNetworkPolicy) Meta() *ObjectMeta { return &r.Metadata }
func (r *NetworkPolicy) Meta() *ObjectMeta       { return &r.Metadata }
func (r *Tier) Meta() *ObjectMeta                { return &r.Metadata }
func (r *GlobalNetworkSet) Meta() *ObjectMeta    { return &r.Metadata }
func (r *NetworkSet) Meta() *ObjectMeta          { return &r.Metadata }
func (r *BGPPeer) Meta() *ObjectMeta             { return &r.Metadata }
func (r *BGPConfiguration) Meta() *ObjectMeta    { return &r.Metadata }
func (r *FelixConfiguration) Meta() *ObjectMeta  { return &r.Metadata }
func (r *ClusterInformation) Meta() *ObjectMeta  { return &r.Metadata }
func (r *Opaque) Meta() *ObjectMeta              { return &r.Metadata }

func (*Node) kind() *Kind                { return KindNode }
func (*IPPool) kind() *Kind              { return KindIPPool }
func (*WorkloadEndpoint) kind() *Kind    { return KindWorkloadEndpoint }
func (*HostEndpoint) kind() *Kind        { return KindHostEndpoint }
func (*Profile) kind() *Kind             { return KindProfile }
func (*GlobalNetworkPolicy) kind() *Kind { return KindGlobalNetworkPolicy }
func (*NetworkPolicy) kind() *Kind       { return KindNetworkPolicy }
func (*Tier) kind() *Kind                { return KindTier }
func (*GlobalNetworkSet) kind() *Kind    { return KindGlobalNetworkSet }
func (*NetworkSet) kind() *Kind          { return KindNetworkSet }
func (*BGPPeer) kind() *Kind             { return KindBGPPeer }
func (*BGPConfiguration) kind() *Kind    { return KindBGPConfiguration }
func (*FelixConfiguration) kind() *Kind  { return KindFelixConfiguration }
func (*ClusterInformation) kind() *Kind  { return KindClusterInformation }

// kind is the opaque kind its TypeMeta names.
func (r *Opaque) kind() *Kind {
	for _, k := range kinds {
		if k.Name == r.Kind {
			return k
		}
	}
	return nil
}
