package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"time"
)

// Client talks to a node's API socket.
type Client struct {
	socket string
	base   string
	http   *http.Client
	// as names the front end in ClientHeader, for the node's metrics.
	as string
}

// ClientHeader names the front end that sent a request (the CNI plugin
// sends "cni"); the node counts such requests in its metrics.
const ClientHeader = "X-Calico-Client"

// As makes the client name its front end in every request.
func (c *Client) As(name string) *Client { c.as = name; return c }

// NewClient returns a client of the node whose data dir is dataDir.
func NewClient(dataDir string) *Client {
	sock := filepath.Join(dataDir, SocketName)
	return &Client{
		socket: sock,
		base:   "http://calico",
		http: &http.Client{
			Timeout: 2 * time.Minute,
			Transport: &http.Transport{
				DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
					return (&net.Dialer{}).DialContext(ctx, "unix", sock)
				},
			},
		},
	}
}

// ErrNoNode means no node answers on the socket.
var ErrNoNode = errors.New("no calico node is running")

// Do sends a request with an optional JSON body and decodes the JSON reply
// into out (when out is not nil).
func (c *Client) Do(ctx context.Context, method, path string, query url.Values, body, out any) error {
	var rd io.Reader
	if raw, ok := body.(rawBody); ok {
		rd = bytes.NewReader(raw)
	} else if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	u := c.base + path
	if len(query) > 0 {
		u += "?" + query.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	if c.as != "" {
		req.Header.Set(ClientHeader, c.as)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		var nerr *net.OpError
		if errors.As(err, &nerr) {
			if _, serr := os.Stat(c.socket); serr != nil {
				return &ClassError{Class: Unavailable, Err: fmt.Errorf("%w with data dir %s (no %s; start one with `calico up`, or give --data-dir)", ErrNoNode, filepath.Dir(c.socket), SocketName)}
			}
			if errors.Is(nerr.Err, os.ErrPermission) {
				return &ClassError{Class: Unavailable, Err: fmt.Errorf("permission denied on the node's API socket %s: it is root's only (use sudo)", c.socket)}
			}
			return &ClassError{Class: Unavailable, Err: fmt.Errorf("%w at %s (%v; start one with `calico up`)", ErrNoNode, c.socket, nerr.Err)}
		}
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode >= 300 {
		var e Error
		if json.Unmarshal(b, &e) == nil && e.Error != "" {
			return &StatusError{Status: resp.StatusCode, Msg: e.Error, Field: e.Field}
		}
		return &StatusError{Status: resp.StatusCode, Msg: fmt.Sprintf("%s %s: %s", method, path, resp.Status)}
	}
	if out == nil {
		return nil
	}
	return json.Unmarshal(b, out)
}

// DoRaw sends raw bytes (a YAML or JSON document) as the body.
func (c *Client) DoRaw(ctx context.Context, method, path string, query url.Values, body []byte, out any) error {
	return c.Do(ctx, method, path, query, rawBody(body), out)
}

// rawBody is a body sent as it is rather than encoded as JSON.
type rawBody []byte

// SetBaseURL points the client at an HTTP server instead of the socket,
// for tests.
func (c *Client) SetBaseURL(base string, hc *http.Client) { c.base, c.http = base, hc }

// DoText GETs path and returns the reply's body as it is (a reply that
// is not JSON, such as the node's metrics).
func (c *Client) DoText(ctx context.Context, path string, out *string) error {
	req, err := http.NewRequestWithContext(ctx, "GET", c.base+path, nil)
	if err != nil {
		return err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return &ClassError{Class: Unavailable, Err: fmt.Errorf("%w at %s (%v)", ErrNoNode, c.socket, err)}
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode >= 300 {
		var e Error
		if json.Unmarshal(b, &e) == nil && e.Error != "" {
			return &StatusError{Status: resp.StatusCode, Msg: e.Error}
		}
		return &StatusError{Status: resp.StatusCode, Msg: "GET " + path + ": " + resp.Status}
	}
	*out = string(b)
	return nil
}
