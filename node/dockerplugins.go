package node

import (
	"calico/cluster"
	"calico/node/docker"
)

// startDocker serves Docker's network and IPAM plugins (calico,
// calico-ipam) when the node's config says where; their endpoints go
// through the node's workload service.
func (n *node) startDocker(id cluster.Identity) error {
	c := n.cfg.Docker
	if c.PluginDir == "" {
		return nil
	}
	if c.EngineSocket == "" {
		c.EngineSocket = docker.DefaultEngineSocket
	}
	s := &docker.Server{Config: c, Node: id.Name, Workloads: n.workloads, Store: n.store, IPAM: n.ipam,
		Engine: docker.NewEngineClient(c.EngineSocket), Log: n.log.With("component", "docker")}
	if err := s.Start(); err != nil {
		return err
	}
	n.docker = s
	return nil
}

// stopDocker removes the plugin sockets, after the calls under way.
func (n *node) stopDocker() {
	if n.docker != nil {
		n.docker.Shutdown()
	}
}
