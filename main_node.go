//go:build !split

package main

import "calico/internal/promdefault"

// started is called first thing: registrations on Prometheus's default
// registry go through from then on.
func started() { promdefault.Started() }
