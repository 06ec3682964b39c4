// Package api is the node's local API on <data-dir>/calico.sock: the
// requests and replies that pass over it, and the client the CLI uses. The
// server side lives in package node.
package api

import (
	"encoding/json"
	"net/netip"
	"time"
)

// SocketName is the API socket's file name in the data dir.
const SocketName = "calico.sock"

// WorkloadAdd asks the node to add a workload. `calico workload add`
// gives a name (and the node makes the namespace unless NetNS is given);
// a CNI ADD gives Orchestrator "cni" and the attachment (ContainerID,
// Interface, NetNS, Network), and Name and Namespace only when the
// runtime says (K8S_POD_NAME, K8S_POD_NAMESPACE). Docker's network
// driver gives Orchestrator "libnetwork", its endpoint id as ContainerID,
// the Docker network's name as Network and the addresses its IPAM driver
// allocated (IPs, Allocated); the node hands the interface over to
// Docker, which moves it into the container.
type WorkloadAdd struct {
	Name      string            `json:"name,omitempty"`
	Namespace string            `json:"namespace,omitempty"`
	NetNS     string            `json:"netns,omitempty"`
	IPs       []string          `json:"ips,omitempty"`
	Pools     []string          `json:"pools,omitempty"`
	Profiles  []string          `json:"profiles,omitempty"`
	Labels    map[string]string `json:"labels,omitempty"`

	// Orchestrator is "" (or "calico") for `calico workload add`, "cni"
	// for the CNI plugin.
	Orchestrator string `json:"orchestrator,omitempty"`
	// ContainerID, Interface and Network name a CNI attachment: the
	// runtime's container id, the interface inside the namespace
	// (CNI_IFNAME) and the CNI network, whose name is the profile and
	// the first part of the IPAM handle <network>.<containerID>.
	ContainerID string `json:"containerID,omitempty"`
	Interface   string `json:"interface,omitempty"`
	Network     string `json:"network,omitempty"`
	// Families limits allocation to these IP versions (4, 6); each one
	// named must get an address. None: one address of every family that
	// has an enabled pool.
	Families []int `json:"families,omitempty"`
	// MTU of the veth pair; 0 is the kernel's default.
	MTU int `json:"mtu,omitempty"`
	// Node, when given, must be this node's name (a CNI config's
	// nodename).
	Node string `json:"node,omitempty"`
	// NetNSHandle, when given, opens NetNS from the node's mount
	// namespace: the CNI plugin's /proc/<pid>/fd/<n> of the namespace it
	// opened, for runtimes whose NetNS is a mount in a mount namespace of
	// their own (Podman's, dockerd's).
	NetNSHandle string `json:"netnsHandle,omitempty"`
	// Allocated says that the front end's IPAM holds IPs already (Docker
	// asks its IPAM driver before its network driver): the add checks
	// that each is allocated and takes it without allocating, and
	// neither a failed add nor the workload's removal releases it; the
	// front end does.
	Allocated bool `json:"allocated,omitempty"`
	// HostInterface, when given, is an existing interface of the host
	// that something else made and owns (a VM's tap): the workload is
	// wired to it instead of a namespace and veth, and it stays when the
	// workload is removed (`calico workload add --iface`).
	HostInterface string `json:"hostInterface,omitempty"`
	// MAC, with HostInterface, is the guest's MAC: the only source MAC
	// the workload may send from, and the only client DHCP answers.
	MAC string `json:"mac,omitempty"`
}

// Attachment names a CNI attachment: the workload endpoint of a
// container's interface on a network; with Orchestrator "libnetwork",
// the endpoint of a Docker endpoint (its id in ContainerID).
type Attachment struct {
	// Orchestrator is "" (or "cni") for a CNI attachment, "libnetwork"
	// for a Docker endpoint.
	Orchestrator string `json:"orchestrator,omitempty"`

	ContainerID string `json:"containerID"`
	Interface   string `json:"interface"`
	Network     string `json:"network"`
	// Namespace is the endpoint's namespace when the runtime says
	// (K8S_POD_NAMESPACE); otherwise default.
	Namespace string `json:"namespace,omitempty"`
	// NetNS is the container's network namespace (CHECK); "" when it is
	// gone (DEL). NetNSHandle opens it, as in WorkloadAdd.
	NetNS       string `json:"netns,omitempty"`
	NetNSHandle string `json:"netnsHandle,omitempty"`
	// Addresses, when given (CHECK, from the previous result), must be
	// the endpoint's.
	Addresses []netip.Addr `json:"addresses,omitempty"`
}

// GC asks the node to remove the CNI attachments of a network on this
// host that are not in Valid, and to release the addresses of their IPAM
// handles (<network>.<containerID>).
type GC struct {
	Network string       `json:"network"`
	Valid   []Attachment `json:"valid"`
}

// GCResult is what a GC removed.
type GCResult struct {
	Endpoints []string `json:"endpoints"`
	Handles   []string `json:"handles"`
}

// IPAMAllocate asks the node for addresses for a CNI attachment without
// wiring anything: calico-ipam delegated from another CNI plugin. The
// addresses go to the IPAM handle <network>.<containerID>.
type IPAMAllocate struct {
	Network     string `json:"network"`
	ContainerID string `json:"containerID"`
	// Namespace and Name are recorded with the addresses (from
	// K8S_POD_NAMESPACE and K8S_POD_NAME).
	Namespace string   `json:"namespace,omitempty"`
	Name      string   `json:"name,omitempty"`
	Families  []int    `json:"families,omitempty"`
	Pools     []string `json:"pools,omitempty"`
	IPs       []string `json:"ips,omitempty"`
	Node      string   `json:"node,omitempty"`
}

// IPAMAllocation is what an IPAMAllocate got: each address with the
// prefix length of its pool.
type IPAMAllocation struct {
	Handle    string         `json:"handle"`
	Addresses []netip.Prefix `json:"addresses"`
}

// IPAMRelease asks the node to release the addresses of the handle
// <network>.<containerID>; a handle that holds none is no error.
type IPAMRelease struct {
	Network     string `json:"network"`
	ContainerID string `json:"containerID"`
}

// IPAMGC asks the node to release the addresses this host holds for CNI
// attachments of Network whose container is not in Valid.
type IPAMGC struct {
	Network string   `json:"network"`
	Valid   []string `json:"valid"`
}

// Workload is a workload as the CLI shows it.
type Workload struct {
	Name      string            `json:"name"`
	Namespace string            `json:"namespace"`
	Node      string            `json:"node"`
	Interface string            `json:"interface"`
	Addresses []netip.Addr      `json:"addresses"`
	Profiles  []string          `json:"profiles,omitempty"`
	Labels    map[string]string `json:"labels,omitempty"`
	NetNS     string            `json:"netns,omitempty"`
	// Endpoint is the WorkloadEndpoint resource's name.
	Endpoint string `json:"endpoint"`
	// Programmed says, for a workload of this host, whether the dataplane
	// has caught up with it (false after an add when it did not within
	// the wait; it still will). Absent for other hosts' workloads.
	Programmed *bool `json:"programmed,omitempty"`
	// Orchestrator, ContainerID and WorkloadInterface (the interface
	// inside the namespace) and MAC (its address) are the endpoint's.
	Orchestrator      string `json:"orchestrator,omitempty"`
	ContainerID       string `json:"containerID,omitempty"`
	WorkloadInterface string `json:"workloadInterface,omitempty"`
	MAC               string `json:"mac,omitempty"`
	// Attached is the kind of an interface something else made and the
	// workload was attached to (tuntap, veth); empty for the node's own.
	Attached string `json:"attached,omitempty"`
	// State is "up" or "down" for a workload of this host (down: its
	// interface is absent, down or without carrier, as Why says).
	State string `json:"state,omitempty"`
	Why   string `json:"why,omitempty"`
}

// Resources carries resources as the datastore encodes them (a JSON
// list), so the client can print them in any format.
type Resources struct {
	Items []json.RawMessage `json:"items"`
}

// Applied reports what an apply, create or delete did to each resource.
type Applied struct {
	Results []AppliedResource `json:"results"`
}

// AppliedResource is one resource of an Applied.
type AppliedResource struct {
	Kind      string `json:"kind"`
	Namespace string `json:"namespace,omitempty"`
	Name      string `json:"name"`
	Action    string `json:"action"` // created, configured, deleted
}

// VersionInfo is the node's version and its data dir's format.
type VersionInfo struct {
	Version    string `json:"version"`
	DataFormat int    `json:"dataFormat"`
}

// Status is the node's view of itself.
type Status struct {
	Node      string        `json:"node"`
	ClusterID string        `json:"clusterID"`
	Version   string        `json:"version"`
	IPv4      string        `json:"ipv4,omitempty"`
	IPv6      string        `json:"ipv6,omitempty"`
	Role      string        `json:"role"`
	Datastore Datastore     `json:"datastore"`
	Dataplane Dataplane     `json:"dataplane"`
	Workloads int           `json:"workloads"`
	Pools     []Pool        `json:"pools"`
	Nodes     []Node        `json:"nodes,omitempty"`
	BGP       []BGPSession  `json:"bgp,omitempty"`
	Uptime    time.Duration `json:"uptime"`
	// Problems are what the node had to refuse, skip or stop, each once.
	Problems []string `json:"problems,omitempty"`
	// ProblemDetails are the same problems with their kind, resource
	// and field.
	ProblemDetails []Problem `json:"problemDetails,omitempty"`
	// Health is the verdict of the node's /liveness and /readiness.
	Health *Health `json:"health,omitempty"`

	// WorkloadsDown are this node's workloads whose interface is absent,
	// down or without carrier: "namespace/name: why".
	WorkloadsDown []string `json:"workloadsDown,omitempty"`
}

// Problem is one of Status.Problems: what the node had to refuse, skip or
// retry, and what it concerns.
type Problem struct {
	// Kind is data, interface, route, bgp, failsafe, clock or disk.
	Kind     string `json:"kind"`
	Resource string `json:"resource"`
	Field    string `json:"field,omitempty"`
	Message  string `json:"message"`
}

// Health is the node's liveness and readiness, as its health endpoints
// answer them.
type Health struct {
	Live bool `json:"live"`
	// LiveReason says which loop does not answer, when one does not.
	LiveReason string `json:"liveReason,omitempty"`
	// Ready: the datastore is in sync and the dataplane is programmed.
	Ready bool `json:"ready"`
	// Reason says why the node is not ready.
	Reason string `json:"reason,omitempty"`
}

// Datastore is the health of etcd as this node sees it.
type Datastore struct {
	Endpoints []string `json:"endpoints"`
	// CAFile, CertFile and KeyFile are the files a client on this node
	// authenticates to the datastore with (their paths: calico datastore
	// env).
	CAFile   string `json:"caFile,omitempty"`
	CertFile string `json:"certFile,omitempty"`
	KeyFile  string `json:"keyFile,omitempty"`
	Healthy  bool   `json:"healthy"`
	Leader   string `json:"leader,omitempty"`
	Members  int    `json:"members"`
	Revision int64  `json:"revision"`
	// InSync is true while the node's cache follows the datastore live.
	InSync bool   `json:"inSync"`
	Error  string `json:"error,omitempty"`
}

// Dataplane is the result of the last programming of this host.
type Dataplane struct {
	LastApply    time.Time     `json:"lastApply"`
	Took         time.Duration `json:"took"`
	Revision     int64         `json:"revision"`
	Error        string        `json:"error,omitempty"`
	Endpoints    int           `json:"endpoints"`
	Policies     int           `json:"policies"`
	Sets         int           `json:"sets"`
	Routes       int           `json:"routes"`
	FromSnapshot bool          `json:"fromSnapshot,omitempty"`
}

// Pool is an IP pool and how much of it is used.
type Pool struct {
	Name      string `json:"name"`
	CIDR      string `json:"cidr"`
	BlockSize int    `json:"blockSize"`
	// InUse is how many of its addresses are allocated; -1: not
	// counted (calico status reports why among its problems).
	InUse    int  `json:"inUse"`
	Disabled bool `json:"disabled,omitempty"`
	NAT      bool `json:"natOutgoing,omitempty"`
}

// IPAMBlock is one block as `calico ipam show` prints it.
type IPAMBlock struct {
	CIDR      string `json:"cidr"`
	Affinity  string `json:"affinity"`
	Allocated int    `json:"allocated"`
	Size      int    `json:"size"`
}

// IPAMAddress is what `calico ipam show --ip` says of one address.
type IPAMAddress struct {
	Address   string            `json:"address"`
	Allocated bool              `json:"allocated"`
	Block     string            `json:"block,omitempty"`
	Affinity  string            `json:"affinity,omitempty"`
	Handle    string            `json:"handle,omitempty"`
	Attrs     map[string]string `json:"attributes,omitempty"`
	Workload  string            `json:"workload,omitempty"`
}

// IPAMReport is the result of `calico ipam check`.
type IPAMReport struct {
	Allocated int `json:"allocated"`
	InUse     int `json:"inUse"`
	// Leaked addresses are allocated but no workload uses them.
	Leaked []IPAMProblem `json:"leaked"`
	// Unallocated addresses are used by a workload but not allocated.
	Unallocated []IPAMProblem `json:"unallocated"`
	// Duplicate addresses are used by more than one workload.
	Duplicate []IPAMProblem `json:"duplicate"`
}

// IPAMProblem is one address that `ipam check` found wrong.
type IPAMProblem struct {
	Address string   `json:"address"`
	Handle  string   `json:"handle,omitempty"`
	Owners  []string `json:"owners,omitempty"`
}

// Error is the body of every failed request.
type Error struct {
	Error string `json:"error"`
	// Field names the part of the request that is wrong, when one is
	// (a WorkloadAdd's json name: "interface", "netns", "pools", …).
	Field string `json:"field,omitempty"`
}

// Node is one node of the cluster as `calico node list` shows it.
type Node struct {
	Name   string `json:"name"`
	IPv4   string `json:"ipv4,omitempty"`
	IPv6   string `json:"ipv6,omitempty"`
	Role   string `json:"role"`   // voter, learner, client
	Gossip string `json:"gossip"` // alive, suspect, dead, left, unknown
	// Reach is the direct liveness check's verdict on an alive host: up,
	// down (silent while others were heard: its routes are withdrawn),
	// or empty (no verdict).
	Reach   string    `json:"reach,omitempty"`
	Since   time.Time `json:"since,omitzero"`
	Version string    `json:"version,omitempty"`
}

// BGPSession is one BGP session as `calico status` shows it.
type BGPSession struct {
	Peer     string    `json:"peer"`
	AS       uint32    `json:"as"`
	Type     string    `json:"type"` // mesh, global, node, reflector
	Node     string    `json:"node,omitempty"`
	State    string    `json:"state"`
	Since    time.Time `json:"since,omitzero"`
	Received int       `json:"received"`
	// Advertised is -1 when not counted: on a node with more than 64
	// established sessions (a route reflector), where counting costs
	// a walk of the routes for each.
	Advertised int `json:"advertised"`
}

// BGPRoutes is what `calico bgp routes` shows.
type BGPRoutes struct {
	Advertised []string   `json:"advertised"`
	Installed  []BGPRoute `json:"installed"`
}

// BGPRoute is a route learned by BGP and installed in the kernel.
type BGPRoute struct {
	Dst string   `json:"dst"`
	Via []string `json:"via"`
}

// RuleStats is one policy rule's counters on this host.
type RuleStats struct {
	Kind      string `json:"kind"`
	Namespace string `json:"namespace,omitempty"`
	Name      string `json:"name"`
	Direction string `json:"direction"` // ingress, egress
	Rule      int    `json:"rule"`      // index in the policy's rules of that direction
	Action    string `json:"action,omitempty"`
	Packets   uint64 `json:"packets"`
	Bytes     uint64 `json:"bytes"`
}

// Log is the tail of the node's log.
type Log struct {
	Text string `json:"text"`
}

// EtcdMember is one etcd member and its status as this node reads it.
type EtcdMember struct {
	Name       string   `json:"name"`
	ID         string   `json:"id"`
	PeerURLs   []string `json:"peerURLs"`
	ClientURLs []string `json:"clientURLs"`
	Learner    bool     `json:"learner,omitempty"`
	// Leader, Revision, DBSize and Version come from the member's status;
	// Error says why it could not be read.
	Leader   bool   `json:"leader,omitempty"`
	Revision int64  `json:"revision,omitempty"`
	DBSize   int64  `json:"dbSize,omitempty"`
	Version  string `json:"version,omitempty"`
	Error    string `json:"error,omitempty"`
}
