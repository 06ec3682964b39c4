package docker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"time"
)

// Engine is what the plugins ask of the Docker Engine; *EngineClient is
// one.
type Engine interface {
	// Network inspects one network; ErrNoNetwork when there is none.
	Network(ctx context.Context, id string) (*EngineNetwork, error)
	// Networks inspects every network of the calico driver, with their
	// endpoints.
	Networks(ctx context.Context) ([]EngineNetwork, error)
}

// ErrNoNetwork is a network the Engine does not know.
var ErrNoNetwork = errors.New("no such network")

// EngineNetwork is what the Engine API says of a network (GET
// /networks/{id}), as far as the plugins read it.
type EngineNetwork struct {
	ID      string            `json:"Id"`
	Name    string            `json:"Name"`
	Driver  string            `json:"Driver"`
	Labels  map[string]string `json:"Labels"`
	Options map[string]string `json:"Options"`
	IPAM    struct {
		Driver string `json:"Driver"`
		Config []struct {
			Subnet string `json:"Subnet"`
		} `json:"Config"`
	} `json:"IPAM"`
	// Containers are the network's endpoints, by container id (or
	// "ep-<endpoint id>" for one without a container).
	Containers map[string]EngineEndpoint `json:"Containers"`
}

// EngineEndpoint is one endpoint of a network.
type EngineEndpoint struct {
	Name        string `json:"Name"`
	EndpointID  string `json:"EndpointID"`
	IPv4Address string `json:"IPv4Address"`
	IPv6Address string `json:"IPv6Address"`
}

// EngineClient talks to the Docker Engine API on its unix socket. The
// paths carry no API version: the Engine answers them in its own.
type EngineClient struct {
	Socket string
	http   *http.Client
}

// NewEngineClient is a client of the Engine on socket.
func NewEngineClient(socket string) *EngineClient {
	return &EngineClient{Socket: socket, http: &http.Client{
		Timeout: 10 * time.Second,
		Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", socket)
		}},
	}}
}

// Network inspects one network.
func (c *EngineClient) Network(ctx context.Context, id string) (*EngineNetwork, error) {
	var n EngineNetwork
	if err := c.get(ctx, "/networks/"+url.PathEscape(id), &n); err != nil {
		return nil, err
	}
	return &n, nil
}

// Networks inspects every network of the calico driver.
func (c *EngineClient) Networks(ctx context.Context) ([]EngineNetwork, error) {
	var list []EngineNetwork
	filter := url.Values{"filters": {`{"driver":{"calico":true}}`}}
	if err := c.get(ctx, "/networks?"+filter.Encode(), &list); err != nil {
		return nil, err
	}
	out := make([]EngineNetwork, 0, len(list))
	for _, n := range list {
		full, err := c.Network(ctx, n.ID)
		if errors.Is(err, ErrNoNetwork) {
			continue // removed meanwhile
		}
		if err != nil {
			return nil, err
		}
		out = append(out, *full)
	}
	return out, nil
}

func (c *EngineClient) get(ctx context.Context, path string, into any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://docker"+path, nil)
	if err != nil {
		return err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("asking the Docker Engine (%s): %w", c.Socket, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return fmt.Errorf("reading the Docker Engine's answer to GET %s: %w", path, err)
	}
	switch {
	case resp.StatusCode == http.StatusNotFound:
		return ErrNoNetwork
	case resp.StatusCode != http.StatusOK:
		var e struct{ Message string }
		json.Unmarshal(body, &e)
		return fmt.Errorf("the Docker Engine answered GET %s with %s: %s", path, resp.Status, e.Message)
	}
	if err := json.Unmarshal(body, into); err != nil {
		return fmt.Errorf("reading the Docker Engine's answer to GET %s: %w", path, err)
	}
	return nil
}
