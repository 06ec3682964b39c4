package metrics

import (
	"context"
	"fmt"
	"net/http"

	"calico/node/api"
)

// HealthHandler serves /liveness and /readiness as Felix does: 200 when
// good, 503 with the reason when not. verdict gives both.
func HealthHandler(verdict func(ctx context.Context) api.Health) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /liveness", func(w http.ResponseWriter, r *http.Request) {
		h := verdict(r.Context())
		reply(w, h.Live, "live", h.LiveReason)
	})
	mux.HandleFunc("GET /readiness", func(w http.ResponseWriter, r *http.Request) {
		h := verdict(r.Context())
		reply(w, h.Ready, "ready", h.Reason)
	})
	return mux
}

func reply(w http.ResponseWriter, ok bool, what, reason string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	if ok {
		fmt.Fprintln(w, what)
		return
	}
	w.WriteHeader(http.StatusServiceUnavailable)
	fmt.Fprintf(w, "not %s: %s\n", what, reason)
}
