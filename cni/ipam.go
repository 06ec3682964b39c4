package cni

import (
	"encoding/json"
	"fmt"
	"net"
	"net/url"

	"calico/node/api"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"
)

// The IPAM plugin's verbs, for another main plugin (bridge, ptp, …) that
// delegates to calico-ipam: addresses from the cluster's pools under the
// handle <network>.<containerID>, and nothing wired.

func (p *plugin) ipamAdd(args *skel.CmdArgs) error {
	conf, err := p.load(args.StdinData)
	if err != nil {
		return err
	}
	defer p.close()
	wreq, err := p.addRequest(conf, args)
	if err != nil {
		return err
	}
	req := api.IPAMAllocate{Network: conf.Name, ContainerID: args.ContainerID, Namespace: wreq.Namespace, Name: wreq.Name,
		Families: wreq.Families, Pools: wreq.Pools, IPs: wreq.IPs, Node: wreq.Node}
	var out api.IPAMAllocation
	if err := conf.client().Do(p.ctx, "POST", "/v1/ipam/allocate", nil, req, &out); err != nil {
		return asCNI(err, "allocating addresses for container "+args.ContainerID+" on network "+conf.Name)
	}
	p.log.Debug("allocated", "handle", out.Handle, "addresses", out.Addresses)
	return types.PrintResult(ipamResult(out), conf.CNIVersion)
}

// ipamResult is an IPAM result: each address with its pool's prefix
// length and, as next hop, the gateway calico's own wiring uses (which
// ptp puts on the host side of its veth).
func ipamResult(al api.IPAMAllocation) *current.Result {
	r := &current.Result{CNIVersion: current.ImplementedSpecVersion}
	for _, a := range al.Addresses {
		fam := 4
		if a.Addr().Is6() {
			fam = 6
		}
		r.IPs = append(r.IPs, &current.IPConfig{
			Address: net.IPNet{IP: a.Addr().AsSlice(), Mask: net.CIDRMask(a.Bits(), a.Addr().BitLen())},
			Gateway: gateways[fam],
		})
	}
	return r
}

func (p *plugin) ipamDel(args *skel.CmdArgs) error {
	conf, err := p.load(args.StdinData)
	if err != nil {
		return err
	}
	defer p.close()
	req := api.IPAMRelease{Network: conf.Name, ContainerID: args.ContainerID}
	if err := conf.client().Do(p.ctx, "POST", "/v1/ipam/release-handle", nil, req, nil); err != nil {
		return asCNI(err, "releasing the addresses of container "+args.ContainerID+" on network "+conf.Name)
	}
	return nil
}

// ipamCheck checks that every address of the previous result is
// reserved for the container's handle.
func (p *plugin) ipamCheck(args *skel.CmdArgs) error {
	conf, err := p.load(args.StdinData)
	if err != nil {
		return err
	}
	defer p.close()
	prev, err := prevResult(args.StdinData)
	if err != nil {
		return err
	}
	if prev == nil {
		return types.NewError(types.ErrInvalidNetworkConfig, "CHECK needs the ADD's result (prevResult)", "")
	}
	handle := conf.Name + "." + args.ContainerID
	for _, a := range prevAddrs(prev) {
		var got api.IPAMAddress
		if err := conf.client().Do(p.ctx, "GET", "/v1/ipam/address", url.Values{"ip": {a.String()}}, nil, &got); err != nil {
			return asCNI(err, "checking "+a.String())
		}
		if !got.Allocated || got.Handle != handle {
			return types.NewError(types.ErrInternal, fmt.Sprintf("%s is not reserved for %s (handle %q)", a, handle, got.Handle), "")
		}
	}
	return nil
}

func (p *plugin) ipamGC(args *skel.CmdArgs) error {
	conf, err := p.load(args.StdinData)
	if err != nil {
		return err
	}
	defer p.close()
	valid, err := validContainers(args.StdinData)
	if err != nil {
		return err
	}
	var released []string
	if err := conf.client().Do(p.ctx, "POST", "/v1/ipam/gc", nil, api.IPAMGC{Network: conf.Name, Valid: valid}, &released); err != nil {
		return asCNI(err, "garbage collecting the addresses of network "+conf.Name)
	}
	if len(released) > 0 {
		p.log.Info("released the addresses of attachments gone", "network", conf.Name, "handles", released)
	}
	return nil
}

// validContainers are the containers of the GC's valid attachments.
func validContainers(stdin []byte) ([]string, error) {
	pc := &types.PluginConf{}
	if err := json.Unmarshal(stdin, pc); err != nil {
		return nil, types.NewError(types.ErrDecodingFailure, err.Error(), "")
	}
	out := []string{}
	for _, v := range pc.ValidAttachments {
		out = append(out, v.ContainerID)
	}
	return out, nil
}
