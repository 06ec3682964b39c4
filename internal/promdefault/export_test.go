package promdefault

import "github.com/prometheus/client_golang/prometheus"

// Queued is how many collectors wait to be registered; -1 if the default
// registry is not the lazy one.
func Queued() int {
	if lazyDefault == nil || prometheus.DefaultGatherer != prometheus.Gatherer(lazyDefault) {
		return -1
	}
	lazyDefault.mu.Lock()
	defer lazyDefault.mu.Unlock()
	return len(lazyDefault.pending)
}
