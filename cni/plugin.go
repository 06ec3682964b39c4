package cni

import (
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"os"

	"calico/node/api"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/cni/pkg/version"
)

// The main plugin's verbs. Each is one request to the node's workload
// service; IPAM (calico-ipam) is done by the node in the same request,
// so the main plugin never runs the IPAM binary.

// gateways are the workload's next hops, as the node wires them.
var gateways = map[int]net.IP{4: net.ParseIP("169.254.1.1"), 6: net.ParseIP("fe80::ecee:eeff:feee:eeee")}

func (p *plugin) add(args *skel.CmdArgs) error {
	conf, err := p.load(args.StdinData)
	if err != nil {
		return err
	}
	defer p.close()
	req, err := p.addRequest(conf, args)
	if err != nil {
		return err
	}
	defer p.netnsHandle(args.Netns, &req.NetNSHandle)()
	var w api.Workload
	if err := conf.client().Do(p.ctx, "POST", "/v1/workloads", nil, req, &w); err != nil {
		return asCNI(err, "adding container "+args.ContainerID+" to network "+conf.Name)
	}
	p.log.Debug("added", "container", args.ContainerID, "endpoint", w.Endpoint, "addresses", w.Addresses)
	if w.Programmed != nil && !*w.Programmed {
		p.log.Warn("the dataplane has not caught up with the container yet; it will", "container", args.ContainerID)
	}
	return types.PrintResult(result(w, args, conf), conf.CNIVersion)
}

// addRequest is the workload service's request for an ADD.
func (p *plugin) addRequest(conf *netConf, args *skel.CmdArgs) (*api.WorkloadAdd, error) {
	ca, err := parseArgs(args.Args)
	if err != nil {
		return nil, err
	}
	node, err := conf.node()
	if err != nil {
		return nil, err
	}
	fams, err := conf.families()
	if err != nil {
		return nil, err
	}
	ips := append(ca.ips, conf.Runtime.IPs...)
	for i, ip := range ips {
		if pfx, err := netip.ParsePrefix(ip); err == nil { // runtimeConfig.ips are CIDRs
			ips[i] = pfx.Addr().String()
		}
	}
	return &api.WorkloadAdd{
		Orchestrator: "cni", ContainerID: args.ContainerID, Interface: args.IfName, Network: conf.Name,
		NetNS: args.Netns, Namespace: ca.namespace, Name: ca.pod, Labels: conf.labels(), IPs: ips,
		Pools: append(append([]string(nil), conf.IPAM.IPv4Pools...), conf.IPAM.IPv6Pools...), Families: fams,
		MTU: conf.MTU, Node: node,
	}, nil
}

// result is the ADD's result: the host side and the container's
// interface, its addresses (/32, /128) and default routes via the
// gateways the node wired.
func result(w api.Workload, args *skel.CmdArgs, conf *netConf) *current.Result {
	r := &current.Result{
		CNIVersion: current.ImplementedSpecVersion,
		Interfaces: []*current.Interface{
			{Name: w.Interface, Mac: "ee:ee:ee:ee:ee:ee", Mtu: conf.MTU},
			{Name: args.IfName, Mac: w.MAC, Mtu: conf.MTU, Sandbox: args.Netns},
		},
		DNS: conf.DNS,
	}
	seen := map[int]bool{}
	for _, a := range w.Addresses {
		fam := 4
		if a.Is6() {
			fam = 6
		}
		r.IPs = append(r.IPs, &current.IPConfig{
			Address:   net.IPNet{IP: a.AsSlice(), Mask: net.CIDRMask(a.BitLen(), a.BitLen())},
			Gateway:   gateways[fam],
			Interface: current.Int(1),
		})
		if !seen[fam] {
			seen[fam] = true
			dst := net.IPNet{IP: net.IPv4zero, Mask: net.CIDRMask(0, 32)}
			if fam == 6 {
				dst = net.IPNet{IP: net.IPv6zero, Mask: net.CIDRMask(0, 128)}
			}
			r.Routes = append(r.Routes, &types.Route{Dst: dst, GW: gateways[fam]})
		}
	}
	return r
}

// netnsHandle opens the container's network namespace and sets handle
// to a path the node opens it by, whatever mount namespace the runtime
// made it in (Podman's and dockerd's mounts are their own): this
// process's open file, while the request lasts. The func closes it.
func (p *plugin) netnsHandle(netns string, handle *string) func() {
	f, err := os.Open(netns)
	if err != nil {
		return func() {} // the node says what is wrong with the path
	}
	*handle = fmt.Sprintf("/proc/%d/fd/%d", os.Getpid(), f.Fd())
	return func() { f.Close() }
}

// attachment names the container's attachment for DEL, CHECK.
func (p *plugin) attachment(conf *netConf, args *skel.CmdArgs) (api.Attachment, error) {
	ca, err := parseArgs(args.Args)
	if err != nil {
		return api.Attachment{}, err
	}
	return api.Attachment{ContainerID: args.ContainerID, Interface: args.IfName, Network: conf.Name,
		Namespace: ca.namespace, NetNS: args.Netns}, nil
}

func (p *plugin) del(args *skel.CmdArgs) error {
	conf, err := p.load(args.StdinData)
	if err != nil {
		return err
	}
	defer p.close()
	a, err := p.attachment(conf, args)
	if err != nil {
		return err
	}
	a.NetNS = ""
	if err := conf.client().Do(p.ctx, "POST", "/v1/attachments/remove", nil, a, nil); err != nil {
		return asCNI(err, "removing container "+args.ContainerID+" from network "+conf.Name)
	}
	p.log.Debug("removed", "container", args.ContainerID)
	return nil
}

func (p *plugin) check(args *skel.CmdArgs) error {
	conf, err := p.load(args.StdinData)
	if err != nil {
		return err
	}
	defer p.close()
	a, err := p.attachment(conf, args)
	if err != nil {
		return err
	}
	prev, err := prevResult(args.StdinData)
	if err != nil {
		return err
	}
	if prev == nil {
		return types.NewError(types.ErrInvalidNetworkConfig, "CHECK needs the ADD's result (prevResult)", "")
	}
	a.Addresses = prevAddrs(prev)
	defer p.netnsHandle(args.Netns, &a.NetNSHandle)()
	if err := conf.client().Do(p.ctx, "POST", "/v1/attachments/check", nil, a, nil); err != nil {
		return asCNI(err, "checking container "+args.ContainerID+" on network "+conf.Name)
	}
	return nil
}

// prevResult is the config's prevResult, in the current version; nil
// when there is none.
func prevResult(stdin []byte) (*current.Result, error) {
	pc := &types.PluginConf{}
	if err := json.Unmarshal(stdin, pc); err != nil {
		return nil, types.NewError(types.ErrDecodingFailure, err.Error(), "")
	}
	if err := version.ParsePrevResult(pc); err != nil {
		return nil, types.NewError(types.ErrDecodingFailure, "prevResult: "+err.Error(), "")
	}
	if pc.PrevResult == nil {
		return nil, nil
	}
	r, err := current.NewResultFromResult(pc.PrevResult)
	if err != nil {
		return nil, types.NewError(types.ErrDecodingFailure, "prevResult: "+err.Error(), "")
	}
	return r, nil
}

func prevAddrs(r *current.Result) []netip.Addr {
	var out []netip.Addr
	for _, ip := range r.IPs {
		if a, ok := netip.AddrFromSlice(ip.Address.IP); ok {
			out = append(out, a.Unmap())
		}
	}
	return out
}

func (p *plugin) gc(args *skel.CmdArgs) error {
	conf, err := p.load(args.StdinData)
	if err != nil {
		return err
	}
	defer p.close()
	pc := &types.PluginConf{}
	if err := json.Unmarshal(args.StdinData, pc); err != nil {
		return types.NewError(types.ErrDecodingFailure, err.Error(), "")
	}
	req := api.GC{Network: conf.Name, Valid: []api.Attachment{}}
	for _, v := range pc.ValidAttachments {
		req.Valid = append(req.Valid, api.Attachment{ContainerID: v.ContainerID, Interface: v.IfName})
	}
	var out api.GCResult
	if err := conf.client().Do(p.ctx, "POST", "/v1/attachments/gc", nil, req, &out); err != nil {
		return asCNI(err, "garbage collecting network "+conf.Name)
	}
	if len(out.Endpoints)+len(out.Handles) > 0 {
		p.log.Info("garbage collected", "network", conf.Name, "endpoints", out.Endpoints, "handles", out.Handles)
	}
	return nil
}

// status says whether the node can add containers: 50 when no node
// runs, 51 when it runs but cannot reach its datastore (it keeps
// enforcing its last state, but nothing new is added or changed).
func (p *plugin) status(args *skel.CmdArgs) error {
	conf, err := p.load(args.StdinData)
	if err != nil {
		return err
	}
	defer p.close()
	var st api.Status
	if err := conf.client().Do(p.ctx, "GET", "/v1/status", nil, nil, &st); err != nil {
		return types.NewError(types.ErrPluginNotAvailable, "the calico node is not available: "+err.Error(), "")
	}
	if !st.Datastore.Healthy {
		return types.NewError(types.ErrLimitedConnectivity, fmt.Sprintf("calico node %s cannot reach its datastore (%s): containers cannot be added now, and existing ones keep the node's last state", st.Node, st.Datastore.Error), "")
	}
	return nil
}
