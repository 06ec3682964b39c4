// Package node is the per-host agent: it follows the datastore into a
// local cache (kept on disk too, so the dataplane can be programmed when
// the datastore is out of reach), computes the host's dataplane with
// node/calc and hands it to the drivers (nft for the firewall, node/route
// for routes). It also serves the local API that the CLI talks to, and
// wires workloads into the host (node/veth).
package node
