// Package store is the datastore's data model: Calico's v3 resources as
// typed values, their validation, their encoding and their key layout in
// etcd. It imports no etcd client, so that the command line and the CNI
// plugin, which only talk to the node's API, start fast (docs/bench.md,
// process start). Reading and writing etcd is store/etcdv3's; IPAM lives
// in store/ipam and the selector language in store/selector.
//
// Resources are kept where Calico's etcdv3 datastore keeps them:
//
//	/calico/resources/v3/projectcalico.org/<plural>/<name>
//	/calico/resources/v3/projectcalico.org/<plural>/<namespace>/<name>
//
// The value is the resource's JSON without its resourceVersion, which is
// the key's etcd ModRevision.
package store
