package docker

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestObserved(t *testing.T) {
	var got []string
	h := observed(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/NetworkDriver.CreateEndpoint":
			writeJSON(w, http.StatusOK, errorReply{Err: "no", Error: "no"})
		case "/NetworkDriver.Join":
			writeJSON(w, http.StatusOK, empty{})
		default:
			http.NotFound(w, r)
		}
	}), func(op string, code int, _ time.Duration) { got = append(got, op+" "+http.StatusText(code)) })
	for _, p := range []string{"/NetworkDriver.CreateEndpoint", "/NetworkDriver.Join", "/x/y/z"} {
		h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("POST", p, strings.NewReader("{}")))
	}
	want := "NetworkDriver.CreateEndpoint Internal Server Error,NetworkDriver.Join OK,other Not Found"
	if strings.Join(got, ",") != want {
		t.Errorf("got %q\nwant %q", strings.Join(got, ","), want)
	}
}
