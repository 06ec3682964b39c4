// Package node runs a node: it takes `calico up`'s configuration, wires
// the cluster, the datastore, the agent, its drivers and the local API
// together, runs them, and stops them in the right order. Its parts live
// beneath it: node/agent (the datastore's copy -> node/calc -> the
// drivers nft and node/route, and BGP), node/localapi (the API the CLI
// talks to), node/workload (wiring workloads into the host, with
// node/veth) and node/api (the API's requests and replies, and its
// client).
package node
