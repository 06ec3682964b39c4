// Package bgp owns the node's embedded BGP speaker (GoBGP v3, in process,
// with no gRPC API): the sessions the node wants, the prefixes it
// originates, and the best paths it learns, which it hands back as plain
// routes for node/ to program into the kernel. It takes plain values and
// knows nothing of the datastore.
package bgp
