// Package store is the datastore: Calico's v3 resources as typed values,
// their validation, their key layout in etcd, create/update/delete guarded
// by revision, and a list-and-watch that survives compaction. IPAM lives in
// store/ipam and the selector language in store/selector.
//
// Resources are kept where Calico's etcdv3 datastore keeps them:
//
//	/calico/resources/v3/projectcalico.org/<plural>/<name>
//	/calico/resources/v3/projectcalico.org/<plural>/<namespace>/<name>
//
// The value is the resource's JSON without its resourceVersion, which is
// the key's etcd ModRevision.
package store
