package docker

// The requests and replies of Docker's legacy plugin protocol, as moby's
// remote network and IPAM drivers send and read them (their field names
// are the JSON keys). Docker adds fields over time: unknown ones are
// ignored.

// activation is the reply to /Plugin.Activate.
type activation struct {
	Implements []string
}

// errorReply is how a call fails: HTTP 200 with the message, which moby
// reports as "remote: <message>". Its network driver reads it from Err,
// its IPAM driver from Error: a reply carries both.
type errorReply struct {
	Err   string
	Error string
}

// empty is the reply of a call that answers nothing.
type empty struct{}

// Network driver.

type capabilities struct {
	Scope             string
	ConnectivityScope string
}

type ipamData struct {
	AddressSpace string
	Pool         string
	Gateway      string
	AuxAddresses map[string]any
}

type createNetwork struct {
	NetworkID string
	Options   map[string]any
	IPv4Data  []ipamData
	IPv6Data  []ipamData
}

type networkID struct {
	NetworkID string
}

type endpointInterface struct {
	Address     string
	AddressIPv6 string
	MacAddress  string
}

type createEndpoint struct {
	NetworkID  string
	EndpointID string
	Interface  *endpointInterface
	Options    map[string]any
}

type endpointID struct {
	NetworkID  string
	EndpointID string
}

type endpointInfo struct {
	Value map[string]string
}

type join struct {
	NetworkID  string
	EndpointID string
	SandboxKey string
	Options    map[string]any
}

type interfaceName struct {
	SrcName   string
	DstPrefix string
}

// Route types of a staticRoute.
const (
	routeNextHop   = 0
	routeConnected = 1
)

type staticRoute struct {
	Destination string
	RouteType   int
	NextHop     string `json:",omitempty"`
}

type joined struct {
	InterfaceName         *interfaceName `json:",omitempty"`
	Gateway               string         `json:",omitempty"`
	GatewayIPv6           string         `json:",omitempty"`
	StaticRoutes          []staticRoute  `json:",omitempty"`
	DisableGatewayService bool           `json:",omitempty"`
}

type externalConnectivity struct {
	NetworkID  string
	EndpointID string
	Options    map[string]any
}

type gwAllocCheck struct {
	SkipIPv4 bool
	SkipIPv6 bool
}

// IPAM driver.

type ipamCapabilities struct {
	RequiresMACAddress bool
}

type addressSpaces struct {
	LocalDefaultAddressSpace  string
	GlobalDefaultAddressSpace string
}

type requestPool struct {
	AddressSpace string
	Pool         string
	SubPool      string
	Options      map[string]string
	V6           bool
}

type pool struct {
	PoolID string
	Pool   string
	Data   map[string]string
}

type poolID struct {
	PoolID string
}

type requestAddress struct {
	PoolID  string
	Address string
	Options map[string]string
}

type address struct {
	Address string
	Data    map[string]string
}

type releaseAddress struct {
	PoolID  string
	Address string
}
