package store

import "encoding/json"

// The kinds, with Calico v3's names and JSON field names: every field
// Calico's projectcalico.org/v3 API has (v3.32), so that what Calico's
// own tools write decodes, and round-trips untouched. A field that is not
// in Calico's API is refused on decode, naming it. Of Calico's fields,
// those we implement are typed; the rest are kept as they came (Raw),
// and are either informational (status, timestamps, hints: kept, no
// effect) or tagged calico:"unsupported": refused by Validate when set
// (to anything but a zero value or Calico's default, given as
// default=JSON), so that `calico apply` says so, and a resource read from
// the datastore with one set is enforced fail-closed (node/calc).

// Raw is a field of Calico's API kept as it came.
type Raw = json.RawMessage

// Node is one host of the cluster.
type Node struct {
	TypeMeta
	Metadata ObjectMeta `json:"metadata"`
	Spec     NodeSpec   `json:"spec"`
	Status   Raw        `json:"status,omitempty"`
}

// NodeSpec is Calico's Node spec. The tunnel addresses and the rest that
// calico-node writes are informational here: there is no encapsulation.
type NodeSpec struct {
	BGP                  *NodeBGPSpec  `json:"bgp,omitempty"`
	IPv4VXLANTunnelAddr  Raw           `json:"ipv4VXLANTunnelAddr,omitempty"`
	VXLANTunnelMACAddr   Raw           `json:"vxlanTunnelMACAddr,omitempty"`
	IPv6VXLANTunnelAddr  Raw           `json:"ipv6VXLANTunnelAddr,omitempty"`
	VXLANTunnelMACAddrV6 Raw           `json:"vxlanTunnelMACAddrV6,omitempty"`
	OrchRefs             Raw           `json:"orchRefs,omitempty"`
	Wireguard            Raw           `json:"wireguard,omitempty"`
	Addresses            []NodeAddress `json:"addresses,omitempty"`
	Interfaces           Raw           `json:"interfaces,omitempty"`
}

// NodeBGPSpec is the node's BGP identity.
type NodeBGPSpec struct {
	// ASNumber overrides the cluster's AS number for this node.
	ASNumber *ASNumber `json:"asNumber,omitempty"`
	// IPv4Address and IPv6Address are the node's addresses with their
	// prefix length, as Calico writes them ("172.31.1.11/24").
	IPv4Address        string `json:"ipv4Address,omitempty"`
	IPv6Address        string `json:"ipv6Address,omitempty"`
	IPv4IPIPTunnelAddr Raw    `json:"ipv4IPIPTunnelAddr,omitempty"`
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
	Status   Raw        `json:"status,omitempty"`
}

// IPPoolSpec is Calico's IPPool spec. There is no encapsulation here, so
// ipipMode and vxlanMode may only be Never.
type IPPoolSpec struct {
	CIDR              string   `json:"cidr"`
	VXLANMode         string   `json:"vxlanMode,omitempty"`
	IPIPMode          string   `json:"ipipMode,omitempty"`
	NATOutgoing       bool     `json:"natOutgoing,omitempty"`
	Disabled          bool     `json:"disabled,omitempty"`
	DisableBGPExport  bool     `json:"disableBGPExport,omitempty"`
	BlockSize         int      `json:"blockSize,omitempty"`
	NodeSelector      string   `json:"nodeSelector,omitempty"`
	NamespaceSelector Raw      `json:"namespaceSelector,omitempty" calico:"unsupported,default=\"\""`
	AllowedUses       []string `json:"allowedUses,omitempty"`
	// AssignmentMode Manual keeps a pool out of automatic assignment:
	// only addresses asked for by address or by pool come from it.
	AssignmentMode string `json:"assignmentMode,omitempty"`
}

// WorkloadEndpoint is one network interface of a workload.
type WorkloadEndpoint struct {
	TypeMeta
	Metadata ObjectMeta           `json:"metadata"`
	Spec     WorkloadEndpointSpec `json:"spec"`
}

// WorkloadEndpointSpec is Calico's WorkloadEndpoint spec.
type WorkloadEndpointSpec struct {
	Orchestrator       string                 `json:"orchestrator,omitempty"`
	Workload           string                 `json:"workload,omitempty"`
	Node               string                 `json:"node,omitempty"`
	ContainerID        string                 `json:"containerID,omitempty"`
	Pod                string                 `json:"pod,omitempty"`
	Endpoint           string                 `json:"endpoint,omitempty"`
	ServiceAccountName string                 `json:"serviceAccountName,omitempty"`
	IPNetworks         []string               `json:"ipNetworks,omitempty"`
	IPNATs             Raw                    `json:"ipNATs,omitempty" calico:"unsupported"`
	IPv4Gateway        string                 `json:"ipv4Gateway,omitempty"`
	IPv6Gateway        string                 `json:"ipv6Gateway,omitempty"`
	Profiles           []string               `json:"profiles,omitempty"`
	InterfaceName      string                 `json:"interfaceName,omitempty"`
	MAC                string                 `json:"mac,omitempty"`
	Ports              []WorkloadEndpointPort `json:"ports,omitempty"`
	// AllowSpoofedSourcePrefixes would let the workload send from other
	// addresses; the anti-spoofing check keeps it to its own.
	AllowSpoofedSourcePrefixes Raw `json:"allowSpoofedSourcePrefixes,omitempty" calico:"unsupported"`
	QoSControls                Raw `json:"qosControls,omitempty" calico:"unsupported"`
}

// EndpointPort is a named port of a host endpoint.
type EndpointPort struct {
	Name     string   `json:"name"`
	Protocol Protocol `json:"protocol"`
	Port     uint16   `json:"port"`
}

// NamedPorts are the named ports of the endpoint.
func (s *WorkloadEndpointSpec) NamedPorts() []EndpointPort {
	out := make([]EndpointPort, len(s.Ports))
	for i, p := range s.Ports {
		out[i] = p.EndpointPort
	}
	return out
}

// WorkloadEndpointPort is a named port of a workload endpoint.
type WorkloadEndpointPort struct {
	EndpointPort
	// HostPort and HostIP are a workload's port mapping (Kubernetes); kept,
	// not acted on.
	HostPort uint16 `json:"hostPort,omitempty"`
	HostIP   string `json:"hostIP,omitempty"`
}

// HostEndpoint is one interface of a host (or "*", all of them).
type HostEndpoint struct {
	TypeMeta
	Metadata ObjectMeta       `json:"metadata"`
	Spec     HostEndpointSpec `json:"spec"`
}

// HostEndpointSpec is Calico's HostEndpoint spec.
type HostEndpointSpec struct {
	Node          string         `json:"node,omitempty"`
	InterfaceName string         `json:"interfaceName,omitempty"`
	ExpectedIPs   []string       `json:"expectedIPs,omitempty"`
	Profiles      []string       `json:"profiles,omitempty"`
	Ports         []EndpointPort `json:"ports,omitempty"`
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
	Tier                   string   `json:"tier,omitempty"`
	Order                  *float64 `json:"order,omitempty"`
	Ingress                []Rule   `json:"ingress,omitempty"`
	Egress                 []Rule   `json:"egress,omitempty"`
	Selector               string   `json:"selector,omitempty"`
	Types                  []string `json:"types,omitempty"`
	DoNotTrack             bool     `json:"doNotTrack,omitempty"`
	PreDNAT                bool     `json:"preDNAT,omitempty"`
	ApplyOnForward         bool     `json:"applyOnForward,omitempty"`
	ServiceAccountSelector Raw      `json:"serviceAccountSelector,omitempty" calico:"unsupported,default=\"\""`
	NamespaceSelector      string   `json:"namespaceSelector,omitempty"`
	PerformanceHints       Raw      `json:"performanceHints,omitempty"`
}

// NetworkPolicy is an ordered policy for the endpoints of one namespace.
type NetworkPolicy struct {
	TypeMeta
	Metadata ObjectMeta        `json:"metadata"`
	Spec     NetworkPolicySpec `json:"spec"`
}

// NetworkPolicySpec is Calico's NetworkPolicy spec.
type NetworkPolicySpec struct {
	Tier                   string   `json:"tier,omitempty"`
	Order                  *float64 `json:"order,omitempty"`
	Ingress                []Rule   `json:"ingress,omitempty"`
	Egress                 []Rule   `json:"egress,omitempty"`
	Selector               string   `json:"selector,omitempty"`
	Types                  []string `json:"types,omitempty"`
	ServiceAccountSelector Raw      `json:"serviceAccountSelector,omitempty" calico:"unsupported,default=\"\""`
	PerformanceHints       Raw      `json:"performanceHints,omitempty"`
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
	HTTP        Raw        `json:"http,omitempty" calico:"unsupported"`
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
	Services          Raw      `json:"services,omitempty" calico:"unsupported"`
	Ports             []Port   `json:"ports,omitempty"`
	NotNets           []string `json:"notNets,omitempty"`
	NotSelector       string   `json:"notSelector,omitempty"`
	NotPorts          []Port   `json:"notPorts,omitempty"`
	ServiceAccounts   Raw      `json:"serviceAccounts,omitempty" calico:"unsupported"`
}

// Tier is an ordered group of policies: each tier's policies decide in
// turn, and a Pass moves on to the next tier.
type Tier struct {
	TypeMeta
	Metadata ObjectMeta `json:"metadata"`
	Spec     TierSpec   `json:"spec"`
	Status   Raw        `json:"status,omitempty"`
}

// TierSpec is Calico's Tier spec.
type TierSpec struct {
	Order *float64 `json:"order,omitempty"`
	// DefaultAction is what happens at the end of the tier to a packet
	// that a policy of the tier applied to and none passed: Deny or Pass.
	DefaultAction string `json:"defaultAction,omitempty"`
}

// GlobalNetworkSet is a named set of networks that rule selectors can
// pick by its labels.
type GlobalNetworkSet struct {
	TypeMeta
	Metadata ObjectMeta     `json:"metadata"`
	Spec     NetworkSetSpec `json:"spec"`
}

// NetworkSet is a GlobalNetworkSet of one namespace.
type NetworkSet struct {
	TypeMeta
	Metadata ObjectMeta     `json:"metadata"`
	Spec     NetworkSetSpec `json:"spec"`
}

// NetworkSetSpec is the networks of a (Global)NetworkSet.
type NetworkSetSpec struct {
	Nets []string `json:"nets,omitempty"`
}

// BGPPeer is a BGP session to configure on some or all nodes.
type BGPPeer struct {
	TypeMeta
	Metadata ObjectMeta  `json:"metadata"`
	Spec     BGPPeerSpec `json:"spec"`
}

// BGPPeerSpec is Calico's BGPPeer spec.
type BGPPeerSpec struct {
	Node          string    `json:"node,omitempty"`
	NodeSelector  string    `json:"nodeSelector,omitempty"`
	PeerIP        string    `json:"peerIP,omitempty"`
	ASNumber      *ASNumber `json:"asNumber,omitempty"`
	LocalASNumber Raw       `json:"localASNumber,omitempty" calico:"unsupported"`
	PeerSelector  string    `json:"peerSelector,omitempty"`
	// Password is the session's TCP MD5 password.
	Password                 *BGPPassword `json:"password,omitempty"`
	KeepOriginalNextHop      Raw          `json:"keepOriginalNextHop,omitempty" calico:"unsupported"`
	NextHopMode              Raw          `json:"nextHopMode,omitempty" calico:"unsupported,default=\"Auto\""`
	SourceAddress            Raw          `json:"sourceAddress,omitempty" calico:"unsupported,default=\"UseNodeIP\""`
	MaxRestartTime           Raw          `json:"maxRestartTime,omitempty" calico:"unsupported"`
	KeepaliveTime            Raw          `json:"keepaliveTime,omitempty" calico:"unsupported"`
	NumAllowedLocalASNumbers Raw          `json:"numAllowedLocalASNumbers,omitempty" calico:"unsupported"`
	TTLSecurity              Raw          `json:"ttlSecurity,omitempty" calico:"unsupported"`
	ReachableBy              Raw          `json:"reachableBy,omitempty" calico:"unsupported"`
	Filters                  Raw          `json:"filters,omitempty" calico:"unsupported"`
	LocalWorkloadSelector    Raw          `json:"localWorkloadSelector,omitempty" calico:"unsupported"`
	ReversePeering           Raw          `json:"reversePeering,omitempty" calico:"unsupported,default=\"Auto\""`
}

// BGPPassword is a BGP session's password: Calico's secretKeyRef, which
// here names a file under the node's secrets directory
// (/etc/calico/secrets/<name>/<key>), or, kept for data written by older
// versions, the password itself as value.
type BGPPassword struct {
	Value        string        `json:"value,omitempty"`
	SecretKeyRef *SecretKeyRef `json:"secretKeyRef,omitempty"`
}

// SecretKeyRef is Calico's reference to a key of a secret.
type SecretKeyRef struct {
	Name     string `json:"name"`
	Key      string `json:"key"`
	Optional *bool  `json:"optional,omitempty"`
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
	LogSeverityScreen              string       `json:"logSeverityScreen,omitempty"`
	NodeToNodeMeshEnabled          *bool        `json:"nodeToNodeMeshEnabled,omitempty"`
	ASNumber                       *ASNumber    `json:"asNumber,omitempty"`
	ServiceLoadBalancerIPs         Raw          `json:"serviceLoadBalancerIPs,omitempty" calico:"unsupported"`
	ServiceExternalIPs             Raw          `json:"serviceExternalIPs,omitempty" calico:"unsupported"`
	ServiceClusterIPs              Raw          `json:"serviceClusterIPs,omitempty" calico:"unsupported"`
	ServiceLoadBalancerAggregation Raw          `json:"serviceLoadBalancerAggregation,omitempty" calico:"unsupported,default=\"Enabled\""`
	Communities                    Raw          `json:"communities,omitempty" calico:"unsupported"`
	PrefixAdvertisements           Raw          `json:"prefixAdvertisements,omitempty" calico:"unsupported"`
	ListenPort                     *uint16      `json:"listenPort,omitempty"`
	NodeMeshPassword               *BGPPassword `json:"nodeMeshPassword,omitempty"`
	NodeMeshMaxRestartTime         Raw          `json:"nodeMeshMaxRestartTime,omitempty" calico:"unsupported"`
	BindMode                       Raw          `json:"bindMode,omitempty" calico:"unsupported,default=\"None\""`
	IgnoredInterfaces              Raw          `json:"ignoredInterfaces,omitempty" calico:"unsupported"`
	LocalWorkloadPeeringIPV4       Raw          `json:"localWorkloadPeeringIPV4,omitempty" calico:"unsupported"`
	LocalWorkloadPeeringIPV6       Raw          `json:"localWorkloadPeeringIPV6,omitempty" calico:"unsupported"`
	ProgramClusterRoutes           Raw          `json:"programClusterRoutes,omitempty" calico:"unsupported,default=\"Enabled\""`
	IPv4NormalRoutePriority        Raw          `json:"ipv4NormalRoutePriority,omitempty" calico:"unsupported,default=1024"`
	IPv6NormalRoutePriority        Raw          `json:"ipv6NormalRoutePriority,omitempty" calico:"unsupported,default=1024"`
}

// FelixConfiguration is the per-host agent's settings ("default") or one
// node's overrides ("node.<name>").
type FelixConfiguration struct {
	TypeMeta
	Metadata ObjectMeta             `json:"metadata"`
	Spec     FelixConfigurationSpec `json:"spec"`
}

// FelixConfigurationSpec is Calico's FelixConfiguration spec: every field
// of Felix's; those the agent here implements are typed.
type FelixConfigurationSpec struct {
	NodeSelector                       Raw          `json:"nodeSelector,omitempty" calico:"unsupported"`
	UseInternalDataplaneDriver         Raw          `json:"useInternalDataplaneDriver,omitempty" calico:"unsupported"`
	DataplaneDriver                    Raw          `json:"dataplaneDriver,omitempty" calico:"unsupported"`
	DataplaneWatchdogTimeout           Raw          `json:"dataplaneWatchdogTimeout,omitempty" calico:"unsupported"`
	IPv6Support                        Raw          `json:"ipv6Support,omitempty" calico:"unsupported"`
	RouteRefreshInterval               Raw          `json:"routeRefreshInterval,omitempty" calico:"unsupported"`
	InterfaceRefreshInterval           Raw          `json:"interfaceRefreshInterval,omitempty" calico:"unsupported"`
	IptablesRefreshInterval            Raw          `json:"iptablesRefreshInterval,omitempty" calico:"unsupported"`
	IptablesPostWriteCheckInterval     Raw          `json:"iptablesPostWriteCheckInterval,omitempty" calico:"unsupported"`
	IptablesLockProbeInterval          Raw          `json:"iptablesLockProbeInterval,omitempty" calico:"unsupported"`
	FeatureDetectOverride              Raw          `json:"featureDetectOverride,omitempty" calico:"unsupported"`
	FeatureGates                       Raw          `json:"featureGates,omitempty" calico:"unsupported"`
	IpsetsRefreshInterval              Raw          `json:"ipsetsRefreshInterval,omitempty" calico:"unsupported"`
	MaxIpsetSize                       Raw          `json:"maxIpsetSize,omitempty" calico:"unsupported"`
	IptablesBackend                    Raw          `json:"iptablesBackend,omitempty" calico:"unsupported"`
	XdpRefreshInterval                 Raw          `json:"xdpRefreshInterval,omitempty" calico:"unsupported"`
	NetlinkTimeout                     Raw          `json:"netlinkTimeout,omitempty" calico:"unsupported"`
	MetadataAddr                       Raw          `json:"metadataAddr,omitempty" calico:"unsupported"`
	MetadataPort                       Raw          `json:"metadataPort,omitempty" calico:"unsupported"`
	OpenstackRegion                    Raw          `json:"openstackRegion,omitempty" calico:"unsupported"`
	InterfacePrefix                    Raw          `json:"interfacePrefix,omitempty" calico:"unsupported"`
	InterfaceExclude                   Raw          `json:"interfaceExclude,omitempty" calico:"unsupported"`
	ChainInsertMode                    Raw          `json:"chainInsertMode,omitempty" calico:"unsupported"`
	DefaultEndpointToHostAction        string       `json:"defaultEndpointToHostAction,omitempty"`
	IptablesFilterAllowAction          Raw          `json:"iptablesFilterAllowAction,omitempty" calico:"unsupported"`
	IptablesMangleAllowAction          Raw          `json:"iptablesMangleAllowAction,omitempty" calico:"unsupported"`
	IptablesFilterDenyAction           Raw          `json:"iptablesFilterDenyAction,omitempty" calico:"unsupported"`
	LogPrefix                          Raw          `json:"logPrefix,omitempty" calico:"unsupported"`
	LogActionRateLimit                 Raw          `json:"logActionRateLimit,omitempty" calico:"unsupported"`
	LogActionRateLimitBurst            Raw          `json:"logActionRateLimitBurst,omitempty" calico:"unsupported"`
	LogFilePath                        Raw          `json:"logFilePath,omitempty" calico:"unsupported"`
	LogSeverityFile                    Raw          `json:"logSeverityFile,omitempty" calico:"unsupported"`
	LogSeverityScreen                  string       `json:"logSeverityScreen,omitempty"`
	LogSeveritySys                     Raw          `json:"logSeveritySys,omitempty" calico:"unsupported"`
	LogDebugFilenameRegex              Raw          `json:"logDebugFilenameRegex,omitempty" calico:"unsupported"`
	IpipEnabled                        Raw          `json:"ipipEnabled,omitempty" calico:"unsupported"`
	IpipMTU                            Raw          `json:"ipipMTU,omitempty" calico:"unsupported"`
	VxlanEnabled                       Raw          `json:"vxlanEnabled,omitempty" calico:"unsupported"`
	VxlanMTU                           Raw          `json:"vxlanMTU,omitempty" calico:"unsupported"`
	VxlanMTUV6                         Raw          `json:"vxlanMTUV6,omitempty" calico:"unsupported"`
	VxlanPort                          Raw          `json:"vxlanPort,omitempty" calico:"unsupported"`
	VxlanVNI                           Raw          `json:"vxlanVNI,omitempty" calico:"unsupported"`
	AllowVXLANPacketsFromWorkloads     Raw          `json:"allowVXLANPacketsFromWorkloads,omitempty" calico:"unsupported"`
	AllowIPIPPacketsFromWorkloads      Raw          `json:"allowIPIPPacketsFromWorkloads,omitempty" calico:"unsupported"`
	ReportingInterval                  Raw          `json:"reportingInterval,omitempty" calico:"unsupported"`
	ReportingTTL                       Raw          `json:"reportingTTL,omitempty" calico:"unsupported"`
	EndpointReportingEnabled           Raw          `json:"endpointReportingEnabled,omitempty" calico:"unsupported"`
	EndpointReportingDelay             Raw          `json:"endpointReportingDelay,omitempty" calico:"unsupported"`
	EndpointStatusPathPrefix           Raw          `json:"endpointStatusPathPrefix,omitempty" calico:"unsupported"`
	IptablesMarkMask                   Raw          `json:"iptablesMarkMask,omitempty" calico:"unsupported"`
	DisableConntrackInvalidCheck       Raw          `json:"disableConntrackInvalidCheck,omitempty" calico:"unsupported"`
	HealthEnabled                      Raw          `json:"healthEnabled,omitempty" calico:"unsupported"`
	HealthHost                         Raw          `json:"healthHost,omitempty" calico:"unsupported"`
	HealthPort                         Raw          `json:"healthPort,omitempty" calico:"unsupported"`
	HealthTimeoutOverrides             Raw          `json:"healthTimeoutOverrides,omitempty" calico:"unsupported"`
	PrometheusMetricsEnabled           Raw          `json:"prometheusMetricsEnabled,omitempty" calico:"unsupported"`
	PrometheusMetricsHost              Raw          `json:"prometheusMetricsHost,omitempty" calico:"unsupported"`
	PrometheusMetricsPort              Raw          `json:"prometheusMetricsPort,omitempty" calico:"unsupported"`
	PrometheusGoMetricsEnabled         Raw          `json:"prometheusGoMetricsEnabled,omitempty" calico:"unsupported"`
	PrometheusProcessMetricsEnabled    Raw          `json:"prometheusProcessMetricsEnabled,omitempty" calico:"unsupported"`
	PrometheusWireGuardMetricsEnabled  Raw          `json:"prometheusWireGuardMetricsEnabled,omitempty" calico:"unsupported"`
	PrometheusMetricsCAFile            Raw          `json:"prometheusMetricsCAFile,omitempty" calico:"unsupported"`
	PrometheusMetricsCertFile          Raw          `json:"prometheusMetricsCertFile,omitempty" calico:"unsupported"`
	PrometheusMetricsKeyFile           Raw          `json:"prometheusMetricsKeyFile,omitempty" calico:"unsupported"`
	PrometheusMetricsClientAuth        Raw          `json:"prometheusMetricsClientAuth,omitempty" calico:"unsupported"`
	FailsafeInboundHostPorts           *[]ProtoPort `json:"failsafeInboundHostPorts,omitempty"`
	FailsafeOutboundHostPorts          *[]ProtoPort `json:"failsafeOutboundHostPorts,omitempty"`
	KubeNodePortRanges                 Raw          `json:"kubeNodePortRanges,omitempty" calico:"unsupported"`
	PolicySyncPathPrefix               Raw          `json:"policySyncPathPrefix,omitempty" calico:"unsupported"`
	UsageReportingEnabled              Raw          `json:"usageReportingEnabled,omitempty" calico:"unsupported"`
	UsageReportingInitialDelay         Raw          `json:"usageReportingInitialDelay,omitempty" calico:"unsupported"`
	UsageReportingInterval             Raw          `json:"usageReportingInterval,omitempty" calico:"unsupported"`
	NatPortRange                       Raw          `json:"natPortRange,omitempty" calico:"unsupported"`
	NatOutgoingAddress                 Raw          `json:"natOutgoingAddress,omitempty" calico:"unsupported"`
	NatOutgoingExclusions              Raw          `json:"natOutgoingExclusions,omitempty" calico:"unsupported"`
	DeviceRouteSourceAddress           Raw          `json:"deviceRouteSourceAddress,omitempty" calico:"unsupported"`
	DeviceRouteSourceAddressIPv6       Raw          `json:"deviceRouteSourceAddressIPv6,omitempty" calico:"unsupported"`
	DeviceRouteProtocol                Raw          `json:"deviceRouteProtocol,omitempty" calico:"unsupported"`
	RemoveExternalRoutes               Raw          `json:"removeExternalRoutes,omitempty" calico:"unsupported"`
	ProgramClusterRoutes               Raw          `json:"programClusterRoutes,omitempty" calico:"unsupported"`
	IpForwarding                       Raw          `json:"ipForwarding,omitempty" calico:"unsupported"`
	ExternalNodesList                  Raw          `json:"externalNodesList,omitempty" calico:"unsupported"`
	DebugMemoryProfilePath             Raw          `json:"debugMemoryProfilePath,omitempty" calico:"unsupported"`
	DebugDisableLogDropping            Raw          `json:"debugDisableLogDropping,omitempty" calico:"unsupported"`
	DebugSimulateCalcGraphHangAfter    Raw          `json:"debugSimulateCalcGraphHangAfter,omitempty" calico:"unsupported"`
	DebugSimulateDataplaneHangAfter    Raw          `json:"debugSimulateDataplaneHangAfter,omitempty" calico:"unsupported"`
	DebugSimulateDataplaneApplyDelay   Raw          `json:"debugSimulateDataplaneApplyDelay,omitempty" calico:"unsupported"`
	DebugHost                          Raw          `json:"debugHost,omitempty" calico:"unsupported"`
	DebugPort                          Raw          `json:"debugPort,omitempty" calico:"unsupported"`
	IptablesNATOutgoingInterfaceFilter Raw          `json:"iptablesNATOutgoingInterfaceFilter,omitempty" calico:"unsupported"`
	SidecarAccelerationEnabled         Raw          `json:"sidecarAccelerationEnabled,omitempty" calico:"unsupported"`
	XdpEnabled                         Raw          `json:"xdpEnabled,omitempty" calico:"unsupported"`
	GenericXDPEnabled                  Raw          `json:"genericXDPEnabled,omitempty" calico:"unsupported"`
	NftablesMode                       Raw          `json:"nftablesMode,omitempty" calico:"unsupported,default=\"Auto\""`
	NftablesRefreshInterval            Raw          `json:"nftablesRefreshInterval,omitempty" calico:"unsupported"`
	NftablesFilterAllowAction          Raw          `json:"nftablesFilterAllowAction,omitempty" calico:"unsupported"`
	NftablesMangleAllowAction          Raw          `json:"nftablesMangleAllowAction,omitempty" calico:"unsupported"`
	NftablesFilterDenyAction           Raw          `json:"nftablesFilterDenyAction,omitempty" calico:"unsupported"`
	NftablesMarkMask                   Raw          `json:"nftablesMarkMask,omitempty" calico:"unsupported"`
	BpfEnabled                         Raw          `json:"bpfEnabled,omitempty" calico:"unsupported"`
	BpfDisableUnprivileged             Raw          `json:"bpfDisableUnprivileged,omitempty" calico:"unsupported"`
	BpfJITHardening                    Raw          `json:"bpfJITHardening,omitempty" calico:"unsupported"`
	BpfLogLevel                        Raw          `json:"bpfLogLevel,omitempty" calico:"unsupported,default=\"\""`
	BpfConntrackLogLevel               Raw          `json:"bpfConntrackLogLevel,omitempty" calico:"unsupported"`
	BpfConntrackMode                   Raw          `json:"bpfConntrackMode,omitempty" calico:"unsupported"`
	BpfConntrackTimeouts               Raw          `json:"bpfConntrackTimeouts,omitempty" calico:"unsupported"`
	BpfLogFilters                      Raw          `json:"bpfLogFilters,omitempty" calico:"unsupported"`
	BpfCTLBLogFilter                   Raw          `json:"bpfCTLBLogFilter,omitempty" calico:"unsupported"`
	BpfDataIfacePattern                Raw          `json:"bpfDataIfacePattern,omitempty" calico:"unsupported"`
	BpfL3IfacePattern                  Raw          `json:"bpfL3IfacePattern,omitempty" calico:"unsupported"`
	BpfConnectTimeLoadBalancingEnabled Raw          `json:"bpfConnectTimeLoadBalancingEnabled,omitempty" calico:"unsupported"`
	BpfConnectTimeLoadBalancing        Raw          `json:"bpfConnectTimeLoadBalancing,omitempty" calico:"unsupported,default=\"TCP\""`
	BpfHostNetworkedNATWithoutCTLB     Raw          `json:"bpfHostNetworkedNATWithoutCTLB,omitempty" calico:"unsupported,default=\"Enabled\""`
	BpfExternalServiceMode             Raw          `json:"bpfExternalServiceMode,omitempty" calico:"unsupported"`
	BpfDSROptoutCIDRs                  Raw          `json:"bpfDSROptoutCIDRs,omitempty" calico:"unsupported"`
	BpfExtToServiceConnmark            Raw          `json:"bpfExtToServiceConnmark,omitempty" calico:"unsupported"`
	BpfKubeProxyIptablesCleanupEnabled Raw          `json:"bpfKubeProxyIptablesCleanupEnabled,omitempty" calico:"unsupported"`
	BpfKubeProxyMinSyncPeriod          Raw          `json:"bpfKubeProxyMinSyncPeriod,omitempty" calico:"unsupported"`
	BpfKubeProxyHealthzPort            Raw          `json:"bpfKubeProxyHealthzPort,omitempty" calico:"unsupported"`
	BpfPSNATPorts                      Raw          `json:"bpfPSNATPorts,omitempty" calico:"unsupported"`
	BpfMapSizeNATFrontend              Raw          `json:"bpfMapSizeNATFrontend,omitempty" calico:"unsupported"`
	BpfMapSizeNATBackend               Raw          `json:"bpfMapSizeNATBackend,omitempty" calico:"unsupported"`
	BpfMapSizeNATAffinity              Raw          `json:"bpfMapSizeNATAffinity,omitempty" calico:"unsupported"`
	BpfMapSizeRoute                    Raw          `json:"bpfMapSizeRoute,omitempty" calico:"unsupported"`
	BpfMapSizeConntrack                Raw          `json:"bpfMapSizeConntrack,omitempty" calico:"unsupported"`
	BpfMapSizePerCpuConntrack          Raw          `json:"bpfMapSizePerCpuConntrack,omitempty" calico:"unsupported"`
	BpfMapSizeConntrackScaling         Raw          `json:"bpfMapSizeConntrackScaling,omitempty" calico:"unsupported"`
	BpfMapSizeConntrackCleanupQueue    Raw          `json:"bpfMapSizeConntrackCleanupQueue,omitempty" calico:"unsupported"`
	BpfMapSizeIPSets                   Raw          `json:"bpfMapSizeIPSets,omitempty" calico:"unsupported"`
	BpfMapSizeIfState                  Raw          `json:"bpfMapSizeIfState,omitempty" calico:"unsupported"`
	BpfHostConntrackBypass             Raw          `json:"bpfHostConntrackBypass,omitempty" calico:"unsupported"`
	BpfEnforceRPF                      Raw          `json:"bpfEnforceRPF,omitempty" calico:"unsupported"`
	BpfPolicyDebugEnabled              Raw          `json:"bpfPolicyDebugEnabled,omitempty" calico:"unsupported"`
	BpfForceTrackPacketsFromIfaces     Raw          `json:"bpfForceTrackPacketsFromIfaces,omitempty" calico:"unsupported"`
	BpfDisableGROForIfaces             Raw          `json:"bpfDisableGROForIfaces,omitempty" calico:"unsupported"`
	BpfExcludeCIDRsFromNAT             Raw          `json:"bpfExcludeCIDRsFromNAT,omitempty" calico:"unsupported"`
	BpfExportBufferSizeMB              Raw          `json:"bpfExportBufferSizeMB,omitempty" calico:"unsupported"`
	IstioAmbientMode                   Raw          `json:"istioAmbientMode,omitempty" calico:"unsupported"`
	IstioDSCPMark                      Raw          `json:"istioDSCPMark,omitempty" calico:"unsupported"`
	CgroupV2Path                       Raw          `json:"cgroupV2Path,omitempty" calico:"unsupported"`
	FlowLogsPolicyEvaluationMode       Raw          `json:"flowLogsPolicyEvaluationMode,omitempty" calico:"unsupported"`
	BpfRedirectToPeer                  Raw          `json:"bpfRedirectToPeer,omitempty" calico:"unsupported"`
	BpfAttachType                      Raw          `json:"bpfAttachType,omitempty" calico:"unsupported"`
	FlowLogsFlushInterval              Raw          `json:"flowLogsFlushInterval,omitempty" calico:"unsupported"`
	FlowLogsCollectorDebugTrace        Raw          `json:"flowLogsCollectorDebugTrace,omitempty" calico:"unsupported"`
	FlowLogsGoldmaneServer             Raw          `json:"flowLogsGoldmaneServer,omitempty" calico:"unsupported"`
	FlowLogsLocalReporter              Raw          `json:"flowLogsLocalReporter,omitempty" calico:"unsupported"`
	BpfProfiling                       Raw          `json:"bpfProfiling,omitempty" calico:"unsupported"`
	RouteSource                        Raw          `json:"routeSource,omitempty" calico:"unsupported"`
	RouteTableRanges                   Raw          `json:"routeTableRanges,omitempty" calico:"unsupported"`
	RouteTableRange                    Raw          `json:"routeTableRange,omitempty" calico:"unsupported"`
	RouteSyncDisabled                  Raw          `json:"routeSyncDisabled,omitempty" calico:"unsupported"`
	IPv4NormalRoutePriority            Raw          `json:"ipv4NormalRoutePriority,omitempty" calico:"unsupported"`
	IPv4ElevatedRoutePriority          Raw          `json:"ipv4ElevatedRoutePriority,omitempty" calico:"unsupported"`
	IPv6NormalRoutePriority            Raw          `json:"ipv6NormalRoutePriority,omitempty" calico:"unsupported"`
	IPv6ElevatedRoutePriority          Raw          `json:"ipv6ElevatedRoutePriority,omitempty" calico:"unsupported"`
	LiveMigrationRouteConvergenceTime  Raw          `json:"liveMigrationRouteConvergenceTime,omitempty" calico:"unsupported"`
	WireguardEnabled                   Raw          `json:"wireguardEnabled,omitempty" calico:"unsupported"`
	WireguardEnabledV6                 Raw          `json:"wireguardEnabledV6,omitempty" calico:"unsupported"`
	WireguardThreadingEnabled          Raw          `json:"wireguardThreadingEnabled,omitempty" calico:"unsupported"`
	WireguardListeningPort             Raw          `json:"wireguardListeningPort,omitempty" calico:"unsupported"`
	WireguardListeningPortV6           Raw          `json:"wireguardListeningPortV6,omitempty" calico:"unsupported"`
	WireguardRoutingRulePriority       Raw          `json:"wireguardRoutingRulePriority,omitempty" calico:"unsupported"`
	WireguardInterfaceName             Raw          `json:"wireguardInterfaceName,omitempty" calico:"unsupported"`
	WireguardInterfaceNameV6           Raw          `json:"wireguardInterfaceNameV6,omitempty" calico:"unsupported"`
	WireguardMTU                       Raw          `json:"wireguardMTU,omitempty" calico:"unsupported"`
	WireguardMTUV6                     Raw          `json:"wireguardMTUV6,omitempty" calico:"unsupported"`
	WireguardHostEncryptionEnabled     Raw          `json:"wireguardHostEncryptionEnabled,omitempty" calico:"unsupported"`
	WireguardKeepAlive                 Raw          `json:"wireguardKeepAlive,omitempty" calico:"unsupported"`
	AwsSrcDstCheck                     Raw          `json:"awsSrcDstCheck,omitempty" calico:"unsupported"`
	ServiceLoopPrevention              Raw          `json:"serviceLoopPrevention,omitempty" calico:"unsupported"`
	WorkloadSourceSpoofing             Raw          `json:"workloadSourceSpoofing,omitempty" calico:"unsupported"`
	MtuIfacePattern                    Raw          `json:"mtuIfacePattern,omitempty" calico:"unsupported"`
	FloatingIPs                        Raw          `json:"floatingIPs,omitempty" calico:"unsupported,default=\"Disabled\""`
	WindowsManageFirewallRules         Raw          `json:"windowsManageFirewallRules,omitempty" calico:"unsupported"`
	GoGCThreshold                      Raw          `json:"goGCThreshold,omitempty" calico:"unsupported"`
	GoMemoryLimitMB                    Raw          `json:"goMemoryLimitMB,omitempty" calico:"unsupported"`
	GoMaxProcs                         Raw          `json:"goMaxProcs,omitempty" calico:"unsupported"`
	RequireMTUFile                     Raw          `json:"requireMTUFile,omitempty" calico:"unsupported"`
	BpfMaglevMaxEndpointsPerService    Raw          `json:"bpfMaglevMaxEndpointsPerService,omitempty" calico:"unsupported"`
	BpfMaglevMaxServices               Raw          `json:"bpfMaglevMaxServices,omitempty" calico:"unsupported"`
}

// ProtoPort is a failsafe port: a protocol, a port and optionally a CIDR.
type ProtoPort struct {
	Protocol string `json:"protocol"`
	Port     uint16 `json:"port"`
	Net      string `json:"net,omitempty"`
}

// ClusterInformation/default says what the cluster is: its GUID, the
// version that wrote it, and whether the datastore is ready.
type ClusterInformation struct {
	TypeMeta
	Metadata ObjectMeta             `json:"metadata"`
	Spec     ClusterInformationSpec `json:"spec"`
}

// ClusterInformationSpec is Calico's ClusterInformation spec.
type ClusterInformationSpec struct {
	ClusterGUID    string `json:"clusterGUID,omitempty"`
	ClusterType    string `json:"clusterType,omitempty"`
	CalicoVersion  string `json:"calicoVersion,omitempty"`
	DatastoreReady *bool  `json:"datastoreReady,omitempty"`
	Variant        string `json:"variant,omitempty"`
}

// Opaque is a kind this datastore keeps for Calico's tools without acting
// on it: its spec and status are stored as they came.
type Opaque struct {
	TypeMeta
	Metadata ObjectMeta `json:"metadata"`
	Spec     Raw        `json:"spec,omitempty"`
	Status   Raw        `json:"status,omitempty"`
}
