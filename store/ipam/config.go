package ipam

import (
	"bytes"
	"encoding/json"
	"fmt"

	"go.etcd.io/etcd/api/v3/mvccpb"

	"calico/store"
)

// Config is Calico's IPAM settings, as `calicoctl ipam configure` and
// Calico's IPAMConfiguration resource write them in etcd
// (store.IPAMConfigKey).
type Config struct {
	// StrictAffinity: never borrow an address from another host's block.
	StrictAffinity bool `json:"strict_affinity,omitempty"`
	// AutoAllocateBlocks: claim new blocks for a host as it needs them.
	AutoAllocateBlocks bool `json:"auto_allocate_blocks,omitempty"`
	// MaxBlocksPerHost, when positive, is how many blocks of one family a
	// host may claim.
	MaxBlocksPerHost int `json:"maxBlocksPerHost,omitempty"`
}

// DefaultConfig is Calico's when the settings are absent.
var DefaultConfig = Config{AutoAllocateBlocks: true}

// decodeConfig reads the settings from their key's value (none: the
// defaults). Settings it cannot read stop assignment rather than guess:
// a wrong guess at strict affinity would hand out another host's
// addresses.
func decodeConfig(kvs []*mvccpb.KeyValue) (Config, error) {
	if len(kvs) == 0 {
		return DefaultConfig, nil
	}
	var c Config
	dec := json.NewDecoder(bytes.NewReader(kvs[0].Value))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		return c, fmt.Errorf("reading Calico's IPAM settings %s: %w (fix or delete the key)", store.IPAMConfigKey, err)
	}
	if c.MaxBlocksPerHost < 0 {
		return c, fmt.Errorf("reading Calico's IPAM settings %s: maxBlocksPerHost %d is negative", store.IPAMConfigKey, c.MaxBlocksPerHost)
	}
	return c, nil
}

// limits says which settings kept a host with blocks from more
// addresses, for ErrNoAddresses.
func (c Config) limits(blocks int) string {
	var s string
	switch {
	case !c.AutoAllocateBlocks:
		s = " (auto_allocate_blocks is false: no new block is claimed"
	case c.MaxBlocksPerHost > 0 && blocks >= c.MaxBlocksPerHost:
		s = fmt.Sprintf(" (the host has %d blocks, maxBlocksPerHost", blocks)
	default:
		return ""
	}
	if c.StrictAffinity {
		return s + "; strict_affinity is true: no address is borrowed)"
	}
	return s + ")"
}
