// Package sim simulates the hosts of a large cluster around real nodes in
// the lab: each simulated host writes into etcd what a real node writes
// (its Node, IPAM blocks and affinities through store/ipam, the
// WorkloadEndpoints of its workloads as node/workload writes them) and
// speaks BGP from its own address, so that the real nodes see a cluster
// of thousands of hosts. The command e2e/calico-sim runs it in a lab
// namespace; the e2e tests and `make scale` drive it over its control
// socket.
package sim
