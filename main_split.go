//go:build split

package main

// started does nothing in the split build's command line: it links no
// Prometheus (the full binary embedded in it does, and calls
// promdefault.Started itself).
func started() {}
