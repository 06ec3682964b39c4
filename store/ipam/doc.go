// Package ipam hands out workload addresses from IP pools the way Calico's
// block IPAM does, as etcd v3 transactions over Calico's own keys.
//
// A pool is carved into blocks (a /26 of IPv4 or a /122 of IPv6 by
// default). A host claims whole blocks, which it then advertises as one
// route each, and allocates its workloads' addresses from them; it borrows a
// single address from another host's block only when no pool has a free
// block left. Three kinds of key hold the state:
//
//	/calico/ipam/v2/assignment/ipv4/block/10.65.0.0-26    the block: who owns it, which addresses are taken and by whom
//	/calico/ipam/v2/host/<node>/ipv4/block/10.65.0.0-26   the block's affinity to a host
//	/calico/ipam/v2/handle/<handle>                       which blocks hold a handle's addresses, and how many
//
// Their values are JSON in the shape Calico's etcd model writes them
// (libcalico-go model.AllocationBlock, BlockAffinity and IPAMHandle, whose
// names differ from the CRDs': affinity_claim_time, handle_id; ipv6 keys
// likewise). Members this package does not use, such as those a newer
// Calico adds, are written back as they came. An affinity with no state
// (an empty value, as older Calico wrote) is confirmed, as Calico reads
// it. Every change is one etcd
// transaction that writes the block, the affinity and the handle together
// and is guarded by the ModRevision of each key it read (a key it creates
// must still be absent). A transaction that loses a race is retried from a
// fresh read a bounded number of times, so two hosts never get the same
// address and a handle never disagrees with its blocks.
//
// IPAM itself takes the pools to allocate from as plain Pool values.
// PoolsFor picks those of the IPPool resources that automatic assignment
// for a workload may use (enabled, Automatic, for workloads, selecting the
// node); PoolForAddr and RequestedPool check an address or a pool a
// workload asks for by name (Manual pools too, never a pool that is
// disabled or not for workloads).
package ipam
