package docker

import (
	"bytes"
	"net/http"
	"strings"
	"time"
)

// observed wraps a plugin's handler so that observe is told of every
// call; a path the plugin does not serve is the operation "other". A
// call that failed is answered 200 with Err (errorReply): it is told as
// a 500.
func observed(h http.Handler, observe func(operation string, code int, took time.Duration)) http.Handler {
	if observe == nil {
		return h
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start, cw := time.Now(), &codeWriter{ResponseWriter: w, code: http.StatusOK}
		h.ServeHTTP(cw, r)
		if cw.code < 300 && bytes.HasPrefix(cw.head, []byte(`{"Err":"`)) && !bytes.HasPrefix(cw.head, []byte(`{"Err":""`)) {
			cw.code = http.StatusInternalServerError
		}
		op := strings.TrimPrefix(r.URL.Path, "/")
		if cw.code == http.StatusNotFound || strings.ContainsAny(op, "/ ") || len(op) > 64 {
			op = "other"
		}
		observe(op, cw.code, time.Since(start))
	})
}

// codeWriter remembers the status code of a reply and its first bytes.
type codeWriter struct {
	http.ResponseWriter
	code int
	head []byte
}

func (w *codeWriter) Write(b []byte) (int, error) {
	if len(w.head) < 16 {
		w.head = append(w.head, b[:min(len(b), 16-len(w.head))]...)
	}
	return w.ResponseWriter.Write(b)
}

func (w *codeWriter) WriteHeader(code int) {
	w.code = code
	w.ResponseWriter.WriteHeader(code)
}
