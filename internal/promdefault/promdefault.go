// Package promdefault owns Prometheus's default registry in this process.
// It puts a lazy registry in front of it before any other package's init
// registers there, so that the collectors registered by package inits
// (about a hundred, by etcd's server packages; each registration costs a
// goroutine and two hand-offs between threads while the runtime holds the
// main goroutine on its thread) are registered only once the process
// reads the registry or registers anything after startup. Every CLI
// command and CNI call links etcd's server and never does (issue 18).
//
// Go initialises packages in the order of their import paths as far as
// their imports allow (the specification's "Package initialization"):
// this package imports only client_golang's prometheus, and "calico/"
// sorts before "go.etcd.io/", so its init runs right after prometheus's
// and before any of etcd's. Only package main imports it.
package promdefault

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

var lazyDefault *lazy

func init() {
	reg, ok := prometheus.DefaultRegisterer.(*prometheus.Registry)
	if !ok {
		return
	}
	lazyDefault = &lazy{reg: reg}
	prometheus.DefaultRegisterer = lazyDefault
	prometheus.DefaultGatherer = lazyDefault
}

// Started ends the queueing of registrations; main calls it first thing.
// From then on the first call on the registry registers what was queued.
func Started() {
	if lazyDefault != nil {
		lazyDefault.start()
	}
}

// lazy queues the collectors registered during package initialisation
// (MustRegister and Register alike: there they are fixed collectors that
// are registered once) and registers them, in order, on the first call
// after start; from then on every call goes to the registry. A queued
// collector that cannot be registered panics then, as MustRegister would
// have during initialisation, and Register's callers branch on its error
// only after start, where it is exact.
type lazy struct {
	reg *prometheus.Registry

	mu      sync.Mutex
	pending []prometheus.Collector
	started bool
	flushed bool
}

func (l *lazy) start() {
	l.mu.Lock()
	l.started = true
	l.mu.Unlock()
}

// queue keeps cs for later, until start or a flush, and reports whether
// it did.
func (l *lazy) queue(cs ...prometheus.Collector) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.started || l.flushed {
		return false
	}
	l.pending = append(l.pending, cs...)
	return true
}

func (l *lazy) flush() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.flushed {
		return
	}
	l.flushed = true
	pending := l.pending
	l.pending = nil
	l.reg.MustRegister(pending...)
}

func (l *lazy) MustRegister(cs ...prometheus.Collector) {
	if l.queue(cs...) {
		return
	}
	l.flush()
	l.reg.MustRegister(cs...)
}

func (l *lazy) Register(c prometheus.Collector) error {
	if l.queue(c) {
		return nil
	}
	l.flush()
	return l.reg.Register(c)
}

func (l *lazy) Unregister(c prometheus.Collector) bool {
	l.flush()
	return l.reg.Unregister(c)
}

func (l *lazy) Gather() ([]*dto.MetricFamily, error) {
	l.flush()
	return l.reg.Gather()
}
