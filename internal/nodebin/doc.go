// Package nodebin is the full calico binary embedded in the command line's
// own, in a build with the split tag (`make calico`). The full binary
// links the node: etcd's server and client, GoBGP, gRPC, Prometheus;
// their package initialisation alone takes about 10 ms of every process
// start. The command line and the CNI plugin, which only talk to the
// node's API, link none of it and start in a few milliseconds; `calico up`
// runs the embedded binary with the same arguments, in place of this
// process (the same PID, so systemd and sd_notify see no difference).
//
// The binary is unpacked into the node's data dir (bin/calico-<hash>,
// written whole and renamed into place, then kept while its size is
// right), so that the running node's code is ordinary page cache, shared
// and evictable. When it is only to print (--print-config, an error) it
// runs from memory (memfd), leaving nothing on disk.
//
// Without the split tag (go build, go test) the package is empty and the
// binary is the full one, which runs every command itself.
package nodebin
