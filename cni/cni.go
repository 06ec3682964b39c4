// Package cni is calico's CNI plugin: the same binary run by a container
// runtime with CNI_COMMAND set is the main plugin "calico", and run as
// "calico-ipam" it is the IPAM plugin. It is thin: it reads Calico's
// network config and the runtime's environment, asks the local node over
// its API socket (the workload service does the wiring, IPAM and the
// endpoint) and prints the result in the CNI version the runtime asked
// for. It holds no datastore client. It also installs itself (Install).
package cni

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"calico/internal/quote"
	"calico/node/api"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
	"github.com/containernetworking/cni/pkg/version"
)

// IPAMName is the name under which the binary is the IPAM plugin.
const IPAMName = "calico-ipam"

// DefaultDataDir is the node's data dir unless the config or
// CALICO_DATA_DIR says otherwise.
const DefaultDataDir = "/var/lib/calico"

// Versions are the CNI spec versions the plugins speak.
var Versions = version.PluginSupports("0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0")

// timeout bounds one plugin run (an ADD waits up to 10 s for the
// dataplane, and the datastore may be slow).
const timeout = 90 * time.Second

// Invoked says whether the process is a CNI plugin run: CNI_COMMAND is
// set, or the binary runs under the IPAM plugin's name.
func Invoked(args []string) bool {
	return os.Getenv("CNI_COMMAND") != "" || (len(args) > 0 && filepath.Base(args[0]) == IPAMName)
}

// Main runs the plugin the binary is called as and returns the exit
// code. The runtime reads the result or the error from stdout.
func Main(ctx context.Context, args []string, about string) int {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	p := &plugin{ctx: ctx, stderr: os.Stderr}
	funcs := skel.CNIFuncs{Add: p.add, Del: p.del, Check: p.check, GC: p.gc, Status: p.status}
	if len(args) > 0 && filepath.Base(args[0]) == IPAMName {
		p.ipam = true
		funcs = skel.CNIFuncs{Add: p.ipamAdd, Del: p.ipamDel, Check: p.ipamCheck, GC: p.ipamGC, Status: p.status}
		about = strings.Replace(about, "CNI plugin", "CNI IPAM plugin", 1)
	}
	if e := skel.PluginMainFuncsWithError(funcs, Versions, about); e != nil {
		if err := e.Print(); err != nil {
			fmt.Fprintln(os.Stderr, "calico: writing the error:", err)
		}
		if p.log != nil {
			p.log.Error("CNI "+os.Getenv("CNI_COMMAND")+" failed", "code", e.Code, "msg", e.Msg, "container", os.Getenv("CNI_CONTAINERID"))
		}
		return 1
	}
	return 0
}

// plugin is one run of the plugin.
type plugin struct {
	ctx    context.Context
	stderr io.Writer
	ipam   bool
	log    *slog.Logger
	closer io.Closer
}

// netConf is Calico's network config for its CNI plugins, as Calico
// documents it, with the runtime's additions.
type netConf struct {
	CNIVersion           string   `json:"cniVersion"`
	Name                 string   `json:"name"`
	Type                 string   `json:"type"`
	IPAM                 ipamConf `json:"ipam"`
	Nodename             string   `json:"nodename"`
	NodenameFile         string   `json:"nodename_file"`
	NodenameFileOptional bool     `json:"nodename_file_optional"`
	MTU                  int      `json:"mtu"`
	LogLevel             string   `json:"log_level"`
	LogFilePath          string   `json:"log_file_path"`
	// DataDir is the node's data dir (ours: Calico's plugin has none).
	DataDir string      `json:"data_dir"`
	DNS     types.DNS   `json:"dns"`
	Args    argsConf    `json:"args"`
	Runtime runtimeConf `json:"runtimeConfig"`
}

type ipamConf struct {
	Type       string   `json:"type"`
	AssignIPv4 *string  `json:"assign_ipv4"`
	AssignIPv6 *string  `json:"assign_ipv6"`
	IPv4Pools  []string `json:"ipv4_pools"`
	IPv6Pools  []string `json:"ipv6_pools"`
	// DataDir is the node's data dir for calico-ipam under another
	// main plugin.
	DataDir string `json:"data_dir"`
}

// argsConf is the config's "args": labels for the endpoint, ours or
// Mesos's as Calico reads them.
type argsConf struct {
	CNI struct {
		Labels map[string]string `json:"labels"`
	} `json:"cni"`
	Mesos struct {
		NetworkInfo struct {
			Labels struct {
				Labels []struct {
					Key   string `json:"key"`
					Value string `json:"value"`
				} `json:"labels"`
			} `json:"labels"`
		} `json:"network_info"`
	} `json:"org.apache.mesos"`
}

// runtimeConf holds the capabilities a runtime passes: static IPs.
type runtimeConf struct {
	IPs []string `json:"ips"`
}

// ignored are Calico's keys that the node makes moot (it knows its
// datastore; policy is Calico's own model); each is logged once a run.
var ignored = []string{
	"datastore_type", "etcd_endpoints", "etcd_discovery_srv", "etcd_scheme", "etcd_key_file", "etcd_cert_file",
	"etcd_ca_cert_file", "etcd_authority", "kubernetes", "policy", "k8s_api_root", "k8s_auth_token", "kubeconfig",
	"feature_control", "container_settings", "num_queues", "mode", "vxlan_mac_prefix", "vxlan_vni",
	"include_default_routes", "readiness_gates", "policy_setup_timeout_seconds", "endpoint_status_dir",
	"require_mtu_file", "ipam_lock_file", "hostname", "log_file_max_size", "log_file_max_age",
	"log_file_max_count", "dataplane_options", "windows_use_single_network",
}

// load decodes the config on stdin, sets up logging and checks what the
// verbs share.
func (p *plugin) load(stdin []byte) (*netConf, error) {
	conf := &netConf{}
	if err := json.Unmarshal(stdin, conf); err != nil {
		return nil, types.NewError(types.ErrDecodingFailure, "decoding the network config: "+err.Error(), "")
	}
	level, err := parseLevel(conf.LogLevel)
	if err != nil {
		return nil, err
	}
	p.log, p.closer = newLogger(p.stderr, conf.LogFilePath, level)
	var raw map[string]json.RawMessage
	json.Unmarshal(stdin, &raw)
	for _, k := range ignored {
		if _, ok := raw[k]; ok {
			p.log.Info("ignoring "+k+": the calico node knows its datastore and policy", "network", conf.Name)
		}
	}
	if t := conf.IPAM.Type; !p.ipam && t != "" && t != IPAMName {
		return nil, types.NewError(types.ErrInvalidNetworkConfig, fmt.Sprintf("ipam type %q is not supported with type calico: use %q (or give none)", quote.Clip(t), IPAMName), "")
	}
	if conf.MTU < 0 || conf.MTU == 1 || (conf.MTU > 0 && conf.MTU < 68) || conf.MTU > 65535 {
		return nil, types.NewError(types.ErrInvalidNetworkConfig, fmt.Sprintf("mtu %d is not between 68 and 65535", conf.MTU), "")
	}
	return conf, nil
}

func parseLevel(s string) (slog.Level, error) {
	switch strings.ToLower(s) {
	case "", "info":
		return slog.LevelInfo, nil
	case "debug":
		return slog.LevelDebug, nil
	case "warning", "warn":
		return slog.LevelWarn, nil
	case "error", "fatal", "panic":
		return slog.LevelError, nil
	}
	return 0, types.NewError(types.ErrInvalidNetworkConfig, fmt.Sprintf("log_level %q is not one of debug, info, warning, error", quote.Clip(s)), "")
}

// newLogger logs to stderr (which the runtime collects) and to the log
// file, when the config names one.
func newLogger(stderr io.Writer, file string, level slog.Level) (*slog.Logger, io.Closer) {
	w := stderr
	var closer io.Closer
	if file != "" {
		if err := os.MkdirAll(filepath.Dir(file), 0o755); err == nil {
			if f, err := os.OpenFile(file, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644); err == nil {
				w, closer = io.MultiWriter(stderr, f), f
			}
		}
	}
	h := slog.NewTextHandler(w, &slog.HandlerOptions{Level: level})
	return slog.New(h).With("plugin", "calico", "pid", os.Getpid()), closer
}

func (p *plugin) close() {
	if p.closer != nil {
		p.closer.Close()
	}
}

// dataDir is the node's data dir: the config's (data_dir, or ipam's
// data_dir), CALICO_DATA_DIR, or /var/lib/calico.
func (c *netConf) dataDir() string {
	if c.DataDir != "" {
		return c.DataDir
	}
	if c.IPAM.DataDir != "" {
		return c.IPAM.DataDir
	}
	if d := os.Getenv("CALICO_DATA_DIR"); d != "" {
		return d
	}
	return DefaultDataDir
}

// node is the node name the config asks for, "" for whichever runs:
// nodename, or the nodename file when the config names one.
func (c *netConf) node() (string, error) {
	if c.Nodename != "" || c.NodenameFile == "" {
		return c.Nodename, nil
	}
	b, err := os.ReadFile(c.NodenameFile)
	if err != nil {
		if c.NodenameFileOptional {
			return "", nil
		}
		return "", types.NewError(types.ErrInvalidNetworkConfig, fmt.Sprintf("nodename_file: %v (is the calico node installed? `calico install-cni` writes it)", err), "")
	}
	return strings.TrimSpace(string(b)), nil
}

// families are the IP versions the config asks addresses of (Calico's
// defaults: IPv4 only).
func (c *netConf) families() ([]int, error) {
	var out []int
	for _, f := range []struct {
		v    int
		key  string
		val  *string
		dflt bool
	}{{4, "assign_ipv4", c.IPAM.AssignIPv4, true}, {6, "assign_ipv6", c.IPAM.AssignIPv6, false}} {
		on := f.dflt
		if f.val != nil {
			switch strings.ToLower(*f.val) {
			case "true":
				on = true
			case "false":
				on = false
			default:
				return nil, types.NewError(types.ErrInvalidNetworkConfig, fmt.Sprintf("ipam %s is %q: want \"true\" or \"false\"", f.key, quote.Clip(*f.val)), "")
			}
		}
		if on {
			out = append(out, f.v)
		}
	}
	if len(out) == 0 {
		return nil, types.NewError(types.ErrInvalidNetworkConfig, "ipam assign_ipv4 and assign_ipv6 are both false: nothing to assign", "")
	}
	return out, nil
}

// labels are the endpoint's labels from the config's args.
func (c *netConf) labels() map[string]string {
	out := map[string]string{}
	for _, l := range c.Args.Mesos.NetworkInfo.Labels.Labels {
		out[l.Key] = l.Value
	}
	for k, v := range c.Args.CNI.Labels {
		out[k] = v
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

// cniArgs are the runtime's CNI_ARGS that calico reads.
type cniArgs struct {
	namespace, pod string
	ips            []string
}

// parseArgs reads CNI_ARGS (K=V;K=V); unknown keys are ignored, as
// IgnoreUnknown=1 asks and every runtime sends.
func parseArgs(s string) (cniArgs, error) {
	var out cniArgs
	for _, kv := range strings.Split(s, ";") {
		if kv == "" {
			continue
		}
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			return out, types.NewError(types.ErrInvalidEnvironmentVariables, fmt.Sprintf("CNI_ARGS: %q is not KEY=VALUE", quote.Clip(kv)), "")
		}
		switch k {
		case "K8S_POD_NAMESPACE":
			out.namespace = v
		case "K8S_POD_NAME":
			out.pod = v
		case "IP":
			out.ips = append(out.ips, strings.Split(v, ",")...)
		}
	}
	return out, nil
}

// client is a client of the node whose data dir the config names.
func (c *netConf) client() *api.Client { return api.NewClient(c.dataDir()).As("cni") }

// envFields are the request fields that come from the runtime's
// environment; the others come from the network config.
var envFields = []string{"containerID", "interface", "netns", "namespace", "name"}

// asCNI turns a failure of the node's API into a CNI error with the
// spec's code: the node down or its datastore unreachable is "try again
// later" (11); a bad field is the environment's (4) or the config's (7);
// an unknown container is 3.
func asCNI(err error, what string) error {
	var te *types.Error
	if errors.As(err, &te) {
		return te
	}
	msg := what + ": " + err.Error()
	var se *api.StatusError
	if !errors.As(err, &se) {
		if c, ok := api.ClassOf(err); ok && c == api.Unavailable {
			return types.NewError(types.ErrTryAgainLater, msg, "")
		}
		return types.NewError(types.ErrInternal, msg, "")
	}
	switch {
	case se.Class() == api.Unavailable:
		return types.NewError(types.ErrTryAgainLater, msg, "")
	case se.Class() == api.NotFound:
		return types.NewError(types.ErrUnknownContainer, msg, "")
	case slices.Contains(envFields, se.Field):
		return types.NewError(types.ErrInvalidEnvironmentVariables, msg, "field "+se.Field)
	case se.Field != "":
		return types.NewError(types.ErrInvalidNetworkConfig, msg, "field "+se.Field)
	}
	return types.NewError(types.ErrInternal, msg, "")
}
