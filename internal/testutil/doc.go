// Package testutil holds the helpers every test tier shares: an embedded
// etcd on loopback, the gate for tests that need root, and network
// namespaces that are created and destroyed around a test.
package testutil
