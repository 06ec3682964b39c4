package store

// The kinds, with Calico v3's names and JSON field names. Fields Calico has
// and we do not implement are left out on purpose: decoding refuses unknown
// fields, so a resource that asks for them is refused with the field's name
// instead of being stored and silently ignored.

// Node is one host of the cluster.
type Node struct {
	TypeMeta
	Metadata ObjectMeta `json:"metadata"`
	Spec     NodeSpec   `json:"spec"`
}

// NodeSpec is Calico's Node spec.
type NodeSpec struct {
	BGP       *NodeBGPSpec  `json:"bgp,omitempty"`
	Addresses []NodeAddress `json:"addresses,omitempty"`
}

// NodeBGPSpec is the node's BGP identity.
type NodeBGPSpec struct {
	// ASNumber overrides the cluster's AS number for this node.
	ASNumber *ASNumber `json:"asNumber,omitempty"`
	// IPv4Address and IPv6Address are the node's addresses with their
	// prefix length, as Calico writes them ("172.31.1.11/24").
	IPv4Address string `json:"ipv4Address,omitempty"`
	IPv6Address string `json:"ipv6Address,omitempty"`
	// RouteReflectorClusterID makes the node a route reflector.
	RouteReflectorClusterID string `json:"routeReflectorClusterID,omitempty"`
}

// NodeAddress is one address of the node.
type NodeAddress struct {
	Address string `json:"address"`
	Type    string `json:"type,omitempty"`
}

// IPPool is a range that workload addresses come from.
type IPPool struct {
	TypeMeta
	Metadata ObjectMeta `json:"metadata"`
	Spec     IPPoolSpec `json:"spec"`
}

// IPPoolSpec is Calico's IPPool spec. There is no encapsulation here, so
// ipipMode and vxlanMode may only be Never.
type IPPoolSpec struct {
	CIDR             string   `json:"cidr"`
	VXLANMode        string   `json:"vxlanMode,omitempty"`
	IPIPMode         string   `json:"ipipMode,omitempty"`
	NATOutgoing      bool     `json:"natOutgoing,omitempty"`
	Disabled         bool     `json:"disabled,omitempty"`
	DisableBGPExport bool     `json:"disableBGPExport,omitempty"`
	BlockSize        int      `json:"blockSize,omitempty"`
	NodeSelector     string   `json:"nodeSelector,omitempty"`
	AllowedUses      []string `json:"allowedUses,omitempty"`
}

// WorkloadEndpoint is one network interface of a workload.
type WorkloadEndpoint struct {
	TypeMeta
	Metadata ObjectMeta           `json:"metadata"`
	Spec     WorkloadEndpointSpec `json:"spec"`
}

// WorkloadEndpointSpec is Calico's WorkloadEndpoint spec.
type WorkloadEndpointSpec struct {
	Orchestrator  string   `json:"orchestrator,omitempty"`
	Workload      string   `json:"workload,omitempty"`
	Node          string   `json:"node,omitempty"`
	ContainerID   string   `json:"containerID,omitempty"`
	Endpoint      string   `json:"endpoint,omitempty"`
	IPNetworks    []string `json:"ipNetworks,omitempty"`
	IPv4Gateway   string   `json:"ipv4Gateway,omitempty"`
	IPv6Gateway   string   `json:"ipv6Gateway,omitempty"`
	Profiles      []string `json:"profiles,omitempty"`
	InterfaceName string   `json:"interfaceName,omitempty"`
	MAC           string   `json:"mac,omitempty"`
}

// HostEndpoint is one interface of a host (or "*", all of them).
type HostEndpoint struct {
	TypeMeta
	Metadata ObjectMeta       `json:"metadata"`
	Spec     HostEndpointSpec `json:"spec"`
}

// HostEndpointSpec is Calico's HostEndpoint spec.
type HostEndpointSpec struct {
	Node          string   `json:"node,omitempty"`
	InterfaceName string   `json:"interfaceName,omitempty"`
	ExpectedIPs   []string `json:"expectedIPs,omitempty"`
	Profiles      []string `json:"profiles,omitempty"`
}

// Profile holds rules and labels that member endpoints inherit.
type Profile struct {
	TypeMeta
	Metadata ObjectMeta  `json:"metadata"`
	Spec     ProfileSpec `json:"spec"`
}

// ProfileSpec is Calico's Profile spec.
type ProfileSpec struct {
	Ingress       []Rule            `json:"ingress,omitempty"`
	Egress        []Rule            `json:"egress,omitempty"`
	LabelsToApply map[string]string `json:"labelsToApply,omitempty"`
}

// GlobalNetworkPolicy is an ordered policy for endpoints of every
// namespace.
type GlobalNetworkPolicy struct {
	TypeMeta
	Metadata ObjectMeta              `json:"metadata"`
	Spec     GlobalNetworkPolicySpec `json:"spec"`
}

// GlobalNetworkPolicySpec is Calico's GlobalNetworkPolicy spec.
type GlobalNetworkPolicySpec struct {
	Tier              string   `json:"tier,omitempty"`
	Order             *float64 `json:"order,omitempty"`
	Ingress           []Rule   `json:"ingress,omitempty"`
	Egress            []Rule   `json:"egress,omitempty"`
	Selector          string   `json:"selector,omitempty"`
	Types             []string `json:"types,omitempty"`
	NamespaceSelector string   `json:"namespaceSelector,omitempty"`
	DoNotTrack        bool     `json:"doNotTrack,omitempty"`
	PreDNAT           bool     `json:"preDNAT,omitempty"`
	ApplyOnForward    bool     `json:"applyOnForward,omitempty"`
}

// NetworkPolicy is an ordered policy for the endpoints of one namespace.
type NetworkPolicy struct {
	TypeMeta
	Metadata ObjectMeta        `json:"metadata"`
	Spec     NetworkPolicySpec `json:"spec"`
}

// NetworkPolicySpec is Calico's NetworkPolicy spec.
type NetworkPolicySpec struct {
	Tier     string   `json:"tier,omitempty"`
	Order    *float64 `json:"order,omitempty"`
	Ingress  []Rule   `json:"ingress,omitempty"`
	Egress   []Rule   `json:"egress,omitempty"`
	Selector string   `json:"selector,omitempty"`
	Types    []string `json:"types,omitempty"`
}

// Rule is one rule of a policy or profile.
type Rule struct {
	Action      string     `json:"action"`
	IPVersion   *int       `json:"ipVersion,omitempty"`
	Protocol    *Protocol  `json:"protocol,omitempty"`
	ICMP        *ICMP      `json:"icmp,omitempty"`
	NotProtocol *Protocol  `json:"notProtocol,omitempty"`
	NotICMP     *ICMP      `json:"notICMP,omitempty"`
	Source      EntityRule `json:"source,omitempty"`
	Destination EntityRule `json:"destination,omitempty"`
	Metadata    *RuleMeta  `json:"metadata,omitempty"`
}

// ICMP matches an ICMP type and code.
type ICMP struct {
	Type *int `json:"type,omitempty"`
	Code *int `json:"code,omitempty"`
}

// RuleMeta carries annotations on a rule.
type RuleMeta struct {
	Annotations map[string]string `json:"annotations,omitempty"`
}

// EntityRule matches one end of a packet.
type EntityRule struct {
	Nets              []string `json:"nets,omitempty"`
	Selector          string   `json:"selector,omitempty"`
	NamespaceSelector string   `json:"namespaceSelector,omitempty"`
	Ports             []Port   `json:"ports,omitempty"`
	NotNets           []string `json:"notNets,omitempty"`
	NotSelector       string   `json:"notSelector,omitempty"`
	NotPorts          []Port   `json:"notPorts,omitempty"`
}

// BGPPeer is a BGP session to configure on some or all nodes.
type BGPPeer struct {
	TypeMeta
	Metadata ObjectMeta  `json:"metadata"`
	Spec     BGPPeerSpec `json:"spec"`
}

// BGPPeerSpec is Calico's BGPPeer spec.
type BGPPeerSpec struct {
	Node         string    `json:"node,omitempty"`
	NodeSelector string    `json:"nodeSelector,omitempty"`
	PeerIP       string    `json:"peerIP,omitempty"`
	ASNumber     *ASNumber `json:"asNumber,omitempty"`
	PeerSelector string    `json:"peerSelector,omitempty"`
	// Password is the session's TCP MD5 password.
	Password *BGPPassword `json:"password,omitempty"`
}

// BGPPassword is a BGP session's password. Calico reads it from a
// Kubernetes secret (secretKeyRef); there are none here, so it is given
// as value.
type BGPPassword struct {
	Value        string        `json:"value,omitempty"`
	SecretKeyRef *SecretKeyRef `json:"secretKeyRef,omitempty"`
}

// SecretKeyRef is Calico's reference to a key of a Kubernetes secret.
type SecretKeyRef struct {
	Name string `json:"name"`
	Key  string `json:"key"`
}

// BGPConfiguration is the cluster's BGP settings ("default") or one node's
// overrides ("node.<name>").
type BGPConfiguration struct {
	TypeMeta
	Metadata ObjectMeta           `json:"metadata"`
	Spec     BGPConfigurationSpec `json:"spec"`
}

// BGPConfigurationSpec is Calico's BGPConfiguration spec.
type BGPConfigurationSpec struct {
	LogSeverityScreen     string    `json:"logSeverityScreen,omitempty"`
	NodeToNodeMeshEnabled *bool     `json:"nodeToNodeMeshEnabled,omitempty"`
	ASNumber              *ASNumber `json:"asNumber,omitempty"`
	ListenPort            *uint16   `json:"listenPort,omitempty"`
}

// FelixConfiguration is the per-host agent's settings ("default") or one
// node's overrides ("node.<name>").
type FelixConfiguration struct {
	TypeMeta
	Metadata ObjectMeta             `json:"metadata"`
	Spec     FelixConfigurationSpec `json:"spec"`
}

// FelixConfigurationSpec is the part of Calico's FelixConfiguration spec we
// implement.
type FelixConfigurationSpec struct {
	LogSeverityScreen           string       `json:"logSeverityScreen,omitempty"`
	DefaultEndpointToHostAction string       `json:"defaultEndpointToHostAction,omitempty"`
	FailsafeInboundHostPorts    *[]ProtoPort `json:"failsafeInboundHostPorts,omitempty"`
	FailsafeOutboundHostPorts   *[]ProtoPort `json:"failsafeOutboundHostPorts,omitempty"`
}

// ProtoPort is a failsafe port: a protocol, a port and optionally a CIDR.
type ProtoPort struct {
	Protocol string `json:"protocol"`
	Port     uint16 `json:"port"`
	Net      string `json:"net,omitempty"`
}

func (r *Node) Meta() *ObjectMeta                { return &r.Metadata }
func (r *IPPool) Meta() *ObjectMeta              { return &r.Metadata }
func (r *WorkloadEndpoint) Meta() *ObjectMeta    { return &r.Metadata }
func (r *HostEndpoint) Meta() *ObjectMeta        { return &r.Metadata }
func (r *Profile) Meta() *ObjectMeta             { return &r.Metadata }
func (r *GlobalNetworkPolicy) Meta() *ObjectMeta { return &r.Metadata }
func (r *NetworkPolicy) Meta() *ObjectMeta       { return &r.Metadata }
func (r *BGPPeer) Meta() *ObjectMeta             { return &r.Metadata }
func (r *BGPConfiguration) Meta() *ObjectMeta    { return &r.Metadata }
func (r *FelixConfiguration) Meta() *ObjectMeta  { return &r.Metadata }

func (*Node) kind() *Kind                { return KindNode }
func (*IPPool) kind() *Kind              { return KindIPPool }
func (*WorkloadEndpoint) kind() *Kind    { return KindWorkloadEndpoint }
func (*HostEndpoint) kind() *Kind        { return KindHostEndpoint }
func (*Profile) kind() *Kind             { return KindProfile }
func (*GlobalNetworkPolicy) kind() *Kind { return KindGlobalNetworkPolicy }
func (*NetworkPolicy) kind() *Kind       { return KindNetworkPolicy }
func (*BGPPeer) kind() *Kind             { return KindBGPPeer }
func (*BGPConfiguration) kind() *Kind    { return KindBGPConfiguration }
func (*FelixConfiguration) kind() *Kind  { return KindFelixConfiguration }
