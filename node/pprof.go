package node

import (
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"time"
)

// servePprof serves Go's profiles (/debug/pprof/) on the address
// CALICO_DEBUG_PPROF names, as Felix's debugPort does: for finding where
// a node spends its CPU or its memory. Off unless set; bind it to
// localhost, as it answers anyone who reaches it.
func servePprof(log *slog.Logger) {
	addr := os.Getenv("CALICO_DEBUG_PPROF")
	if addr == "" {
		return
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		log.Warn("serving profiles (CALICO_DEBUG_PPROF)", "addr", addr, "err", err)
		return
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	log.Info("serving profiles (CALICO_DEBUG_PPROF)", "addr", ln.Addr().String())
	go func() {
		srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Warn("serving profiles", "err", err)
		}
	}()
}
