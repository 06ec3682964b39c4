// Package cluster decides who is in the cluster and runs the parts that
// make it one: the node's persisted identity, the cluster's TLS material,
// and the embedded etcd member (or the client of an external etcd). It
// founds a cluster only when the data directory shows no sign of an
// earlier one, and otherwise resumes as what the node was.
package cluster
