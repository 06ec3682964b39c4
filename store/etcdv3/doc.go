// Package etcdv3 reads and writes store's resources in etcd, as Calico's
// etcdv3 datastore does: create/update/delete guarded by revision (and by
// the references that must not dangle), batches in one transaction, the
// conventions a new cluster starts with, and a list-and-watch that
// survives compaction.
package etcdv3
