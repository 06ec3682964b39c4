package workload

import (
	"crypto/sha1"
	"encoding/hex"
	"net/netip"
	"os"
	"regexp"
	"strings"
	"sync"

	"calico/internal/quote"
	"calico/node/api"
	"calico/store"
	"calico/store/selector"

	"github.com/google/uuid"
)

// Orchestrator is the orchestrator name of workloads added with
// `calico workload add`.
const Orchestrator = "calico"

// OrchestratorCNI is the orchestrator name of workloads added by the CNI
// plugin, as Calico's plugin names them outside Kubernetes.
const OrchestratorCNI = "cni"

// OrchestratorLibnetwork is the orchestrator name of Docker's endpoints,
// as Calico's libnetwork plugin names them: in namespace libnetwork, with
// workload libnetwork and the Docker endpoint's id as endpoint.
const OrchestratorLibnetwork = "libnetwork"

// Annotations the service keeps on the endpoints it makes.
const (
	// annotationNetNS records a network namespace given with --netns or
	// by the container runtime.
	annotationNetNS = "projectcalico.org/netns"
	// annotationNetwork records the CNI network of a CNI attachment.
	annotationNetwork = "projectcalico.org/cni-network"
)

// Compiled on first use, not at every process start (issue 18).
var (
	workloadNameRE = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`) })
	profileNameRE  = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$`) })
	// containerIDRE is what a container id must be to name an endpoint
	// (a DNS subdomain's characters).
	containerIDRE = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$`) })
	ifaceRE       = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$`) })
	// dockerIDRE is a Docker endpoint's id (Docker makes 64 hex digits).
	dockerIDRE = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[0-9a-f]{12,64}$`) })
)

// ident is who a workload is, whichever front end asked for it: the
// names of its endpoint, interfaces and IPAM handle, and the key of its
// lock. Every name is derived here, once.
type ident struct {
	orchestrator string
	namespace    string
	workload     string
	// endpoint is the WorkloadEndpoint's name; it also keys the lock.
	endpoint string
	// iface is the interface inside the namespace, hostIface the host
	// side's.
	iface, hostIface string
	containerID      string
	// network is a CNI attachment's network ("" for the CLI's).
	network string
	// handle is the IPAM handle of a CNI attachment; a CLI workload's
	// is made with its endpoint (HandleOf). "" when the front end's IPAM
	// holds the addresses (Docker's).
	handle string
	// handOver names the workload side of an interface that the front
	// end moves into the workload's namespace itself (Docker does): the
	// veth's peer is left in the host's namespace under this name. ""
	// when the service wires the namespace.
	handOver string
	// flags names the request's fields as its front end calls them.
	flags map[string]string
	// attach says hostIface is an existing interface something else
	// made (a VM's tap), of kind kind, rather than a veth to make.
	attach bool
	kind   string
}

var cliFlags = map[string]string{"ips": "--ip", "pools": "--pool"}
var cniFlags = map[string]string{"ips": "IP (CNI_ARGS or runtimeConfig.ips)", "pools": "ipam ipv4_pools/ipv6_pools"}
var dockerFlags = map[string]string{"ips": "the addresses of Docker's IPAM driver", "pools": "pools"}

// hostIface is the host-side interface name of a workload added by the
// CLI: "cali" and 11 hex digits of a hash of its namespace and name, as
// Calico names pods.
func hostIface(ns, name string) string {
	sum := sha1.Sum([]byte(ns + "." + name))
	return "cali" + hex.EncodeToString(sum[:])[:11]
}

// cniHostIface is the host-side interface name of a CNI attachment:
// "cali" and 11 hex digits of a hash of its container id and interface.
// (Calico's plugin takes the container id's first 11 characters, which
// collide for runtimes whose ids share a prefix, like cnitool's and
// containerd's; the '/' keeps these names apart from the CLI's.)
func cniHostIface(containerID, iface string) string {
	sum := sha1.Sum([]byte(containerID + "/" + iface))
	return "cali" + hex.EncodeToString(sum[:])[:11]
}

// Handle is the IPAM handle of a CNI attachment, as Calico's plugin
// names it.
func Handle(network, containerID string) string { return network + "." + containerID }

// HandleOf is the IPAM handle that holds the addresses of a workload;
// "" for a Docker endpoint, whose addresses Docker's IPAM driver holds.
func HandleOf(w *store.WorkloadEndpoint) string {
	switch w.Spec.Orchestrator {
	case OrchestratorCNI:
		return Handle(w.Metadata.Annotations[annotationNetwork], w.Spec.ContainerID)
	case OrchestratorLibnetwork:
		return ""
	}
	return "calico." + w.Spec.ContainerID
}

// DockerInterfaces are the names of a Docker endpoint's interfaces, as
// Calico's libnetwork plugin names them: the host side cali and the
// first 11 characters of the endpoint id (which Docker makes random),
// and the workload side temp and the same, under which Docker finds it
// in the host's namespace to move it into the container.
func DockerInterfaces(endpointID string) (host, workload string) {
	id := endpointID[:min(11, len(endpointID))]
	return "cali" + id, "temp" + id
}

// identify checks an add and says who it is for.
func (s *Service) identify(req *api.WorkloadAdd) (*ident, error) {
	if req.Node != "" && req.Node != s.Node {
		return nil, api.FieldErrorf(api.BadRequest, "node", "the request is for node %q, but this node is %s", quote.Clip(req.Node), s.Node)
	}
	switch req.Orchestrator {
	case "", Orchestrator:
		return s.identifyCLI(req)
	case OrchestratorCNI:
		return s.identifyCNI(req)
	case OrchestratorLibnetwork:
		return s.identifyLibnetwork(req)
	}
	return nil, api.Errorf(api.BadRequest, "unknown orchestrator %q", quote.Clip(req.Orchestrator))
}

func (s *Service) identifyCLI(req *api.WorkloadAdd) (*ident, error) {
	if req.Namespace == "" {
		req.Namespace = "default"
	}
	if len(req.Profiles) == 0 {
		req.Profiles = []string{"default"}
	}
	if req.ContainerID != "" || req.Interface != "" || req.Network != "" {
		return nil, api.Errorf(api.BadRequest, "containerID, interface and network are for CNI attachments")
	}
	if !workloadNameRE().MatchString(req.Name) || len(req.Name) > 63 {
		return nil, api.FieldErrorf(api.BadRequest, "name", "workload name %q must be 1-63 lower-case letters, digits and '-', starting and ending with a letter or digit", quote.Clip(req.Name))
	}
	if !workloadNameRE().MatchString(req.Namespace) || len(req.Namespace) > 63 {
		return nil, api.FieldErrorf(api.BadRequest, "namespace", "namespace %q must be 1-63 lower-case letters, digits and '-'", quote.Clip(req.Namespace))
	}
	id := &ident{
		orchestrator: Orchestrator, namespace: req.Namespace, workload: req.Name,
		endpoint: store.WorkloadEndpointName(s.Node, Orchestrator, req.Name, "eth0"),
		iface:    "eth0", hostIface: hostIface(req.Namespace, req.Name),
		containerID: strings.ReplaceAll(uuid.NewString(), "-", "")[:16], flags: cliFlags,
	}
	id.handle = "calico." + id.containerID
	if err := identifyAttach(req, id); err != nil {
		return nil, err
	}
	return id, checkAdd(req, id)
}

func (s *Service) identifyCNI(req *api.WorkloadAdd) (*ident, error) {
	if len(req.Profiles) == 0 && req.Network != "" {
		req.Profiles = []string{req.Network}
	}
	id, err := s.attachment(api.Attachment{ContainerID: req.ContainerID, Interface: req.Interface, Network: req.Network, Namespace: req.Namespace})
	if err != nil {
		return nil, err
	}
	req.Namespace = id.namespace
	if req.Name == "" {
		req.Name = req.ContainerID
	}
	if len(req.Name) > 253 || strings.ContainsAny(req.Name, "/\n") {
		return nil, api.FieldErrorf(api.BadRequest, "name", "workload name %q must be at most 253 characters without '/'", quote.Clip(req.Name))
	}
	id.workload = req.Name
	if req.NetNS == "" {
		return nil, api.FieldErrorf(api.BadRequest, "netns", "a CNI attachment needs the container's network namespace")
	}
	if _, err := os.Stat(openNetNS(req.NetNS, req.NetNSHandle)); err != nil {
		return nil, api.FieldErrorf(api.BadRequest, "netns", "network namespace %s: %v", req.NetNS, err)
	}
	if req.MTU < 0 || req.MTU > 65535 {
		return nil, api.FieldErrorf(api.BadRequest, "mtu", "MTU %d is not between 68 and 65535", req.MTU)
	}
	if req.HostInterface != "" || req.MAC != "" {
		return nil, api.FieldErrorf(api.BadRequest, "hostInterface", "a CNI attachment makes its own interface: hostInterface and mac are for calico workload add")
	}
	return id, checkAdd(req, id)
}

// identifyLibnetwork checks an add of a Docker endpoint: its id, the
// Docker network's name (its profile) and the addresses Docker's IPAM
// driver holds for it.
func (s *Service) identifyLibnetwork(req *api.WorkloadAdd) (*ident, error) {
	if len(req.Profiles) == 0 && req.Network != "" {
		req.Profiles = []string{req.Network}
	}
	id, err := s.dockerEndpoint(api.Attachment{ContainerID: req.ContainerID, Network: req.Network})
	if err != nil {
		return nil, err
	}
	req.Namespace, req.Name = id.namespace, id.workload
	switch {
	case req.NetNS != "" || req.Interface != "":
		return nil, api.Errorf(api.BadRequest, "a Docker endpoint's interface is handed over to Docker: it takes no netns or interface")
	case !req.Allocated || len(req.IPs) == 0:
		return nil, api.FieldErrorf(api.BadRequest, "ips", "a Docker endpoint takes the addresses Docker's IPAM driver allocated (ips, allocated)")
	case req.MTU < 0 || req.MTU > 65535:
		return nil, api.FieldErrorf(api.BadRequest, "mtu", "MTU %d is not between 68 and 65535", req.MTU)
	}
	return id, checkAdd(req, id)
}

// dockerEndpoint says who a Docker endpoint is. Its network is checked
// when given (an add's profile); removal needs only the id.
func (s *Service) dockerEndpoint(a api.Attachment) (*ident, error) {
	switch {
	case !dockerIDRE().MatchString(a.ContainerID):
		return nil, api.FieldErrorf(api.BadRequest, "containerID", "Docker endpoint id %q is not 12 to 64 hex digits", quote.Clip(a.ContainerID))
	case a.Network != "" && (!profileNameRE().MatchString(a.Network) || len(a.Network) > 253 || selector.ValidateKey(a.Network) != nil):
		return nil, api.FieldErrorf(api.BadRequest, "network", "Docker network name %q: calico names the network's profile after it, and a profile's name is lower-case letters, digits, '-' and '.'", quote.Clip(a.Network))
	}
	host, wl := DockerInterfaces(a.ContainerID)
	return &ident{
		orchestrator: OrchestratorLibnetwork, namespace: OrchestratorLibnetwork, workload: OrchestratorLibnetwork,
		endpoint: store.WorkloadEndpointName(s.Node, OrchestratorLibnetwork, OrchestratorLibnetwork, a.ContainerID),
		iface:    a.ContainerID, hostIface: host, handOver: wl, network: a.Network, flags: dockerFlags,
	}, nil
}

// openNetNS is the path to open a workload's namespace by: its handle
// when the front end gave one.
func openNetNS(netns, handle string) string {
	if handle != "" {
		return handle
	}
	return netns
}

// attachment says who a CNI attachment (or a Docker endpoint) is.
func (s *Service) attachment(a api.Attachment) (*ident, error) {
	switch a.Orchestrator {
	case OrchestratorLibnetwork:
		return s.dockerEndpoint(api.Attachment{ContainerID: a.ContainerID})
	case "", OrchestratorCNI:
	default:
		return nil, api.Errorf(api.BadRequest, "unknown orchestrator %q", quote.Clip(a.Orchestrator))
	}
	if a.Namespace == "" {
		a.Namespace = "default"
	}
	switch {
	case !containerIDRE().MatchString(a.ContainerID) || len(a.ContainerID) > 200:
		return nil, api.FieldErrorf(api.BadRequest, "containerID", "container id %q: calico takes 1-200 lower-case letters, digits, '-' and '.' (it names the WorkloadEndpoint)", quote.Clip(a.ContainerID))
	case !ifaceRE().MatchString(a.Interface) || len(a.Interface) > 15:
		return nil, api.FieldErrorf(api.BadRequest, "interface", "interface name %q: calico takes 1-15 lower-case letters, digits, '-' and '.'", quote.Clip(a.Interface))
	case !profileNameRE().MatchString(a.Network) || len(a.Network) > 253 || selector.ValidateKey(a.Network) != nil:
		return nil, api.FieldErrorf(api.BadRequest, "network", "network name %q: calico takes lower-case letters, digits, '-' and '.' (it names the network's profile)", quote.Clip(a.Network))
	case !workloadNameRE().MatchString(a.Namespace) || len(a.Namespace) > 63:
		return nil, api.FieldErrorf(api.BadRequest, "namespace", "namespace %q must be 1-63 lower-case letters, digits and '-'", quote.Clip(a.Namespace))
	}
	return &ident{
		orchestrator: OrchestratorCNI, namespace: a.Namespace, workload: a.ContainerID,
		endpoint: store.WorkloadEndpointName(s.Node, OrchestratorCNI, a.ContainerID, a.Interface),
		iface:    a.Interface, hostIface: cniHostIface(a.ContainerID, a.Interface),
		containerID: a.ContainerID, network: a.Network, handle: Handle(a.Network, a.ContainerID), flags: cniFlags,
	}, nil
}

// checkAdd checks what every add takes alike: profiles, labels,
// addresses and pools.
func checkAdd(req *api.WorkloadAdd, id *ident) error {
	for _, p := range req.Profiles {
		if !profileNameRE().MatchString(p) {
			return api.FieldErrorf(api.BadRequest, "profiles", "profile name %q must be lower-case letters, digits, '-' and '.'", quote.Clip(p))
		}
	}
	for k, v := range req.Labels {
		if err := selector.ValidateKey(k); err != nil {
			return api.FieldErrorf(api.BadRequest, "labels", "%w", err)
		}
		if err := selector.ValidateValue(v); err != nil {
			return api.FieldErrorf(api.BadRequest, "labels", "label %s: %w", k, err)
		}
	}
	seen := map[int]bool{}
	for _, ip := range req.IPs {
		a, err := netip.ParseAddr(ip)
		if err != nil || a.Zone() != "" {
			return api.FieldErrorf(api.BadRequest, "ips", "%s %q is not an address", id.flags["ips"], quote.Clip(ip))
		}
		v := family(a)
		if seen[v] {
			return api.FieldErrorf(api.BadRequest, "ips", "%s: give at most one IPv%d address", id.flags["ips"], v)
		}
		seen[v] = true
	}
	for _, f := range req.Families {
		if f != 4 && f != 6 {
			return api.FieldErrorf(api.BadRequest, "families", "IP version %d is neither 4 nor 6", f)
		}
	}
	return nil
}

// family is an address's IP version.
func family(a netip.Addr) int {
	if a.Is4() || a.Is4In6() {
		return 4
	}
	return 6
}
