package localapi

import (
	"context"
	"net/http"
	"strconv"

	"calico/node/api"
)

// Diagnostics are what the node gives `calico diags` beyond its other
// routes; each is optional.
type Diagnostics struct {
	// Log is the tail of the node's own log, when it writes to a file.
	Log func(lines int) (string, error)
	// Metrics serves the node's metrics (nil without --metrics-addr).
	Metrics http.Handler
	// Settings are the settings the node was started with, as calico up
	// --print-config prints them (the token never shown).
	Settings string
	// Etcd lists the etcd members with each one's status.
	Etcd func(ctx context.Context) ([]api.EtcdMember, error)
}

func (s *Server) diagsRoutes(mux *http.ServeMux) {
	d := s.Diags
	mux.HandleFunc("GET /v1/diags/log", func(w http.ResponseWriter, r *http.Request) {
		if d.Log == nil {
			s.reply(w, nil, api.Errorf(api.NotFound, "the node does not keep its log"))
			return
		}
		n, err := strconv.Atoi(r.URL.Query().Get("lines"))
		if err != nil || n <= 0 {
			n = 5000
		}
		text, err := d.Log(n)
		s.reply(w, api.Log{Text: text}, err)
	})
	mux.HandleFunc("GET /v1/diags/settings", func(w http.ResponseWriter, r *http.Request) {
		s.reply(w, api.Log{Text: d.Settings}, nil)
	})
	mux.HandleFunc("GET /v1/diags/metrics", func(w http.ResponseWriter, r *http.Request) {
		if d.Metrics == nil {
			s.reply(w, nil, api.Errorf(api.NotFound, "the node serves no metrics (calico up --metrics-addr)"))
			return
		}
		d.Metrics.ServeHTTP(w, r)
	})
	mux.HandleFunc("GET /v1/diags/etcd", func(w http.ResponseWriter, r *http.Request) {
		if d.Etcd == nil {
			s.reply(w, nil, api.Errorf(api.NotFound, "the node has no etcd client"))
			return
		}
		out, err := d.Etcd(r.Context())
		s.reply(w, out, err)
	})
}
