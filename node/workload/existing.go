package workload

import (
	"context"
	"errors"
	"fmt"
	"net"
	"regexp"
	"slices"
	"sync"

	"calico/internal/quote"
	"calico/node/api"
	"calico/node/veth"
	"calico/store"
	"calico/store/etcdv3"
)

// A workload may come with an interface that something else made and
// owns instead of a namespace: a VM's tap (`workload add NAME --iface
// vnet3 [--mac MAC]`). Such an attached interface gets the host side's
// treatment, the workload's routes and policy, and keeps its name; the
// endpoint is marked store.AnnotationAttached (with the interface's
// kind) and records the guest's MAC. Removing the workload leaves the
// interface (but turns its proxy ARP off). Everything else (IPAM,
// profiles, intents, locks) is the same path as for a veth.

// hostIfaceRE is what Linux and the datastore take as an interface name.
var hostIfaceRE = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[A-Za-z0-9_.:-]{1,15}$`) })

// identifyAttach checks the attachment fields of a request: an
// interface name, and a MAC only with one.
func identifyAttach(req *api.WorkloadAdd, id *ident) error {
	if req.HostInterface == "" {
		if req.MAC != "" {
			return api.FieldErrorf(api.BadRequest, "mac", "--mac is the MAC of a VM's interface: it goes with --iface")
		}
		return nil
	}
	if req.NetNS != "" {
		return api.FieldErrorf(api.BadRequest, "hostInterface", "--iface attaches an existing interface and --netns wires a network namespace: give one of them")
	}
	if !hostIfaceRE().MatchString(req.HostInterface) {
		return api.FieldErrorf(api.BadRequest, "hostInterface", "interface name %q must be 1-15 letters, digits, '_', '.', ':' and '-'", quote.Clip(req.HostInterface))
	}
	if req.MAC != "" {
		mac, err := net.ParseMAC(req.MAC)
		if err != nil || len(mac) != 6 || mac[0]&1 != 0 || slices.Equal(mac, make(net.HardwareAddr, 6)) {
			return api.FieldErrorf(api.BadRequest, "mac", "--mac %q is not a unicast Ethernet address (such as 52:54:00:12:34:56)", quote.Clip(req.MAC))
		}
		req.MAC = mac.String()
	}
	id.hostIface, id.attach = req.HostInterface, true
	return nil
}

// checkAttach checks, before anything is written, that the interface of
// an attachment exists and may be a workload's (not the host's own, the
// loopback, a bridge port, of a kind it takes) and no other workload has
// it. It notes the interface's kind for the endpoint.
func (s *Service) checkAttach(ctx context.Context, req api.WorkloadAdd, id *ident) error {
	if !id.attach {
		return nil
	}
	link, err := veth.Inspect(id.hostIface)
	if errors.Is(err, veth.ErrNoLink) {
		return api.FieldErrorf(api.BadRequest, "hostInterface", "interface %s does not exist on this host (start the VM, or make the tap, first)", id.hostIface)
	}
	if err != nil {
		return api.FieldErrorf(api.BadRequest, "hostInterface", "%v", err)
	}
	if req.MAC != "" && !link.Ethernet {
		return api.FieldErrorf(api.BadRequest, "mac", "interface %s carries no Ethernet frames (a tun, not a tap): it has no MAC to check", id.hostIface)
	}
	weps, err := etcdv3.ListOf[*store.WorkloadEndpoint](ctx, s.Store, "")
	if err != nil {
		return err
	}
	for _, w := range weps {
		if w.Spec.Node == s.Node && w.Spec.InterfaceName == id.hostIface {
			return api.FieldErrorf(api.Conflict, "hostInterface", "interface %s is already the interface of workload %s/%s", id.hostIface, w.Metadata.Namespace, w.Spec.Workload)
		}
	}
	id.kind = link.Kind
	return nil
}

// unwire undoes what wiring made of a workload's interface: it deletes a
// veth; an attached interface stays, without proxy ARP.
func unwire(iface string, attached bool) error {
	if attached {
		if err := veth.Detach(iface); err != nil {
			return fmt.Errorf("detaching interface %s: %w", iface, err)
		}
		return nil
	}
	return veth.Remove(iface)
}

// attachedKind is the kind of an endpoint's attached interface, "" for
// an interface the node made.
func attachedKind(w *store.WorkloadEndpoint) string {
	return w.Metadata.Annotations[store.AnnotationAttached]
}
