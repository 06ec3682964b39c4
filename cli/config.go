package cli

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	ucli "github.com/urfave/cli/v3"
	"go.yaml.in/yaml/v3"
)

// DefaultConfigFile is the config file `calico up` reads unless told
// otherwise; the *.yaml files of DefaultConfigFile + ".d" follow it.
const DefaultConfigFile = "/etc/calico/config.yaml"

// dockerEngineSocket is docker.DefaultEngineSocket, which this file
// cannot name: package docker is the node's, which the command line of
// a split build does not link (TestDockerSocketDefault keeps them equal).
const dockerEngineSocket = "/var/run/docker.sock"

// A setting is one of `calico up`'s settings: a flag, the key of the same
// name in the config files and perhaps an environment variable.
type setting struct {
	name  string // the flag's name and the config key
	env   string // its environment variable, if any
	list  bool   // repeatable; a list in the config files
	def   string // the default value ("" for none)
	usage string
	// defText says what happens when the setting is not given and has
	// no default value of its own.
	defText string
	secret  bool // never shown
}

// upSettings are `calico up`'s settings, in the order --print-config
// shows them.
var upSettings = []setting{
	{name: "data-dir", env: "CALICO_DATA_DIR", def: DefaultDataDir, usage: "the node's state `DIR`"},
	{name: "name", usage: "the node's `NAME`", defText: "the host name"},
	{name: "ip", usage: "the node's IPv4 `ADDR`, with or without /len", defText: "the address of the interface holding the default route"},
	{name: "ip6", usage: "the node's IPv6 `ADDR`, with or without /len", defText: "as ip, if there is an IPv6 default route"},
	{name: "pool", list: true, usage: "an IP pool `CIDR` to create if missing (repeatable)", defText: "when there is no pool at all: 192.168.0.0/16 and a random ULA /48"},
	{name: "as", usage: "the node's BGP AS number `N`", defText: "the cluster's, 64512 unless set"},
	{name: "join", usage: "join the cluster of the member at `ADDR[:PORT]` (join API, port 7947 by default)", defText: "found a cluster, or resume the one in the data dir"},
	{name: "token", env: "CALICO_TOKEN", secret: true, usage: "the cluster's join `TOKEN` (calico token on a member prints it)"},
	{name: "etcd-endpoints", list: true, usage: "use this external etcd (`URLS`, comma-separated) instead of the embedded one; on the founding host only", defText: "the embedded etcd"},
	{name: "etcd-ca", usage: "the external etcd's CA certificate (PEM `FILE`)"},
	{name: "etcd-cert", usage: "a client certificate for the external etcd (PEM `FILE`)"},
	{name: "etcd-key", usage: "its key (PEM `FILE`)"},
	{name: "voter-replace-after", def: "5m", usage: "how long an etcd voter's host may be dead before a client host takes its seat (a `DURATION`)"},
	{name: "unreachable-after", def: "600ms", usage: "withdraw the routes via another host once it has been silent this long (a `DURATION`, at least 200ms; heartbeats every 50ms on udp 7948) while others were heard; 0 leaves it to gossip (about 2 s)"},
	{name: "log-level", def: "info", usage: "`LEVEL`: debug, info, warn or error; given, it wins over FelixConfiguration logSeverityScreen"},
	{name: "log-format", def: "text", usage: "`FORMAT` of the log: text (key=value) or json, for every part of the node (etcd's lines too)"},
	{name: "metrics-addr", usage: "serve Prometheus metrics on `ADDR` (HOST:PORT; :9091 is Felix's port, on every address)", defText: "no metrics"},
	{name: "health-addr", def: "127.0.0.1:9099", usage: "serve /liveness and /readiness on `ADDR` (HOST:PORT; '' for none)"},
	{name: "docker-plugins", env: "CALICO_DOCKER_PLUGINS", def: "true", usage: "serve Docker's network and IPAM plugins (calico, calico-ipam) on sockets in /run/docker/plugins: true or false"},
	{name: "docker-socket", def: dockerEngineSocket, usage: "the Docker Engine API's unix socket `PATH`, which the plugins ask for networks' names, labels and endpoints"},
	{name: "mtu", usage: "the `MTU` of the workload interfaces the node makes or attaches (a VM's tap), which DHCP and router advertisements tell the guests", defText: "the kernel's for veths; a tap keeps its own"},
	{name: "dns-server", list: true, usage: "a DNS server `ADDR` that DHCP hands the VMs of attached interfaces (repeatable; IPv4 by DHCPv4, IPv6 by DHCPv6 and router advertisements)", defText: "none"},
	{name: "dns-domain", usage: "the DNS `DOMAIN` that DHCP hands the VMs (domain name and search list)", defText: "none"},
}

func lookupSetting(name string) (setting, bool) {
	i := slices.IndexFunc(upSettings, func(s setting) bool { return s.name == name })
	if i < 0 {
		return setting{}, false
	}
	return upSettings[i], true
}

// settingFlags are the flags of `calico up` made from upSettings. They
// have no Sources: the environment and the config files are read by
// resolve, so that IsSet means "given on the command line".
func settingFlags() []ucli.Flag {
	var flags []ucli.Flag
	for _, s := range upSettings {
		usage := s.usage
		if s.env != "" {
			usage += " (env " + s.env + ")"
		}
		if s.defText != "" {
			usage += " (default: " + s.defText + ")"
		}
		if s.list {
			flags = append(flags, &ucli.StringSliceFlag{Name: s.name, Usage: usage})
		} else {
			flags = append(flags, &ucli.StringFlag{Name: s.name, Usage: usage, Value: s.def})
		}
	}
	return flags
}

// An origin is where a setting's value came from.
type origin struct {
	kind string // "flag", "env", "file" or "default"
	name string // the environment variable or the file
	line int
}

func (o origin) String() string {
	switch o.kind {
	case "flag":
		return "--" + o.name
	case "env":
		return o.name
	case "file":
		return fmt.Sprintf("%s:%d", o.name, o.line)
	}
	return "default"
}

// A value is a setting's value and where it came from.
type value struct {
	vals []string // one for a setting that is not a list
	from origin
	set  bool // given somewhere (not the default)
}

// settings are `calico up`'s settings resolved: flags over environment
// over config files over defaults.
type settings struct {
	vals  map[string]value
	files []string // the config files read, in order
}

// get is a setting's value ("" when it has none).
func (s settings) get(name string) string {
	if v := s.vals[name].vals; len(v) > 0 {
		return v[len(v)-1]
	}
	return ""
}

func (s settings) list(name string) []string { return s.vals[name].vals }

// label names a setting in an error as its origin does: "--pool" for
// a flag, "CALICO_TOKEN" for the environment, "FILE:LINE: pool" for a
// config file.
func (s settings) label(name string) string {
	v := s.vals[name]
	switch v.from.kind {
	case "env":
		return v.from.name
	case "file":
		return v.from.String() + ": " + name
	}
	return "--" + name
}

// resolve reads the config files and the environment and merges them
// with the command line's flags.
func resolve(c *ucli.Command) (settings, error) {
	s, err := unflagged(c.String("config"), c.IsSet("config"))
	if err != nil {
		return settings{}, err
	}
	for _, st := range upSettings {
		if c.IsSet(st.name) {
			vals := []string{c.String(st.name)}
			if st.list {
				vals = c.StringSlice(st.name)
			}
			s.vals[st.name] = value{vals: vals, from: origin{kind: "flag", name: st.name}, set: true}
		}
	}
	return s, nil
}

// unflagged are the settings of the defaults, the config file (given:
// named by the user) with its drop-ins, and the environment, each over
// the one before.
func unflagged(file string, given bool) (settings, error) {
	files, err := configFiles(file, given)
	if err != nil {
		return settings{}, err
	}
	s := settings{vals: map[string]value{}, files: files}
	for _, st := range upSettings {
		if st.def != "" {
			s.vals[st.name] = value{vals: []string{st.def}, from: origin{kind: "default"}}
		}
	}
	for _, f := range files {
		if err := s.readFile(f); err != nil {
			return settings{}, err
		}
	}
	for _, st := range upSettings {
		if v := os.Getenv(st.env); st.env != "" && v != "" {
			s.vals[st.name] = value{vals: []string{v}, from: origin{kind: "env", name: st.env}, set: true}
		}
	}
	return s, nil
}

// configFiles lists the config files to read: file, then the *.yaml files
// of file.d in name order. A file that was given must exist; the default
// one may be missing. An empty file name reads no file.
func configFiles(file string, given bool) ([]string, error) {
	if file == "" {
		return nil, nil
	}
	var files []string
	switch _, err := os.Stat(file); {
	case err == nil:
		files = append(files, file)
	case !errors.Is(err, fs.ErrNotExist):
		return nil, fmt.Errorf("reading config file: %w", err)
	case given:
		return nil, usagef("config file %s does not exist", file)
	}
	more, err := filepath.Glob(filepath.Join(file+".d", "*.yaml"))
	if err != nil {
		return nil, err
	}
	slices.Sort(more)
	return append(files, more...), nil
}

// readFile merges one config file into s: a key replaces what an earlier
// file said, "key+:" adds to an earlier file's list.
func (s *settings) readFile(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("reading config file: %w", err)
	}
	defer f.Close()
	dec := yaml.NewDecoder(f)
	var doc yaml.Node
	if err := dec.Decode(&doc); errors.Is(err, io.EOF) {
		return nil // empty, or comments alone
	} else if err != nil {
		return usagef("%s: %s", path, oneLine(strings.TrimPrefix(err.Error(), "yaml: ")))
	}
	var more yaml.Node
	if err := dec.Decode(&more); !errors.Is(err, io.EOF) {
		return usagef("%s: holds more than one YAML document", path)
	}
	top := &doc
	if top.Kind == yaml.DocumentNode && len(top.Content) == 1 {
		top = top.Content[0]
	}
	if top.Kind == yaml.ScalarNode && top.Tag == "!!null" {
		return nil
	}
	if top.Kind != yaml.MappingNode {
		return usagef("%s:%d: the file must be a map of calico up's flags without -- to values", path, top.Line)
	}
	seen := map[string]bool{}
	for i := 0; i+1 < len(top.Content); i += 2 {
		k, v := top.Content[i], top.Content[i+1]
		at := fmt.Sprintf("%s:%d", path, k.Line)
		key, add := strings.CutSuffix(k.Value, "+")
		st, err := fileKey(at, k, key, add, seen)
		if err != nil {
			return err
		}
		seen[key] = true
		vals, err := nodeValues(v, st)
		if err != nil {
			return usagef("%s: %s %v", at, key, err)
		}
		if add {
			if old := s.vals[key]; old.set && old.from.kind == "file" {
				vals = append(slices.Clone(old.vals), vals...)
			}
		}
		s.vals[key] = value{vals: vals, from: origin{kind: "file", name: path, line: k.Line}, set: true}
	}
	return nil
}

// fileKey checks one key of a config file (at is FILE:LINE): a flag's
// name that a file may set, once, with "+" only on a list.
func fileKey(at string, k *yaml.Node, key string, add bool, seen map[string]bool) (setting, error) {
	st, ok := lookupSetting(key)
	switch {
	case k.Kind != yaml.ScalarNode:
		return st, usagef("%s: a key must be a flag's name", at)
	case key == "config" || key == "print-config":
		return st, usagef("%s: %s cannot be set in a config file", at, key)
	case !ok:
		return st, usagef("%s: unknown key %q (the keys are calico up's flags without --: %s)", at, k.Value, settingNames())
	case add && !st.list:
		return st, usagef("%s: %s+ adds to a list, and %s is not one", at, key, key)
	case seen[key]:
		return st, usagef("%s: key %s appears twice", at, key)
	}
	return st, nil
}

// nodeValues are the values of one key: a scalar, or for a list setting
// a scalar or a list of scalars.
func nodeValues(v *yaml.Node, st setting) ([]string, error) {
	if v.Kind == yaml.AliasNode {
		v = v.Alias
	}
	if v.Kind == yaml.SequenceNode {
		if !st.list {
			return nil, errors.New("takes one value, not a list")
		}
		vals := make([]string, 0, len(v.Content))
		for _, item := range v.Content {
			s, err := scalarOf(item)
			if err != nil {
				return nil, fmt.Errorf("item %d %w", len(vals)+1, err)
			}
			vals = append(vals, s)
		}
		return vals, nil
	}
	s, err := scalarOf(v)
	if err != nil && st.list {
		err = errors.New("must be a value or a list of values")
	}
	return []string{s}, err
}

// scalarOf is the text of a plain value.
func scalarOf(n *yaml.Node) (string, error) {
	if n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	switch {
	case n.Kind != yaml.ScalarNode:
		return "", errors.New("must be a plain value")
	case n.Tag == "!!null":
		return "", errors.New("has no value")
	}
	return n.Value, nil
}

func settingNames() string {
	names := make([]string, len(upSettings))
	for i, s := range upSettings {
		names[i] = s.name
	}
	return strings.Join(names, ", ")
}

// oneLine joins the lines of a message.
func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

// configDataDir is the data-dir that `calico up`'s config files (the
// default ones, or CALICO_CONFIG_FILE's) set, for the other commands. A
// config file that cannot be read gives none: `calico up` says why.
type configDataDir struct{}

func (configDataDir) Lookup() (string, bool) {
	v, _ := configKey("data-dir").Lookup()
	return v, v != ""
}

func (configDataDir) String() string   { return "calico up's config files" }
func (configDataDir) GoString() string { return "cli.configDataDir{}" }

// configKey is a setting of `calico up`'s config files, as a flag's
// source for the other commands.
type configKey string

func (k configKey) Lookup() (string, bool) {
	file, given := os.LookupEnv("CALICO_CONFIG_FILE")
	if !given {
		file = DefaultConfigFile
	}
	files, err := configFiles(file, given)
	if err != nil {
		return "", false
	}
	s := settings{vals: map[string]value{}}
	for _, f := range files {
		if s.readFile(f) != nil {
			return "", false
		}
	}
	_, ok := s.vals[string(k)]
	return s.get(string(k)), ok
}

func (k configKey) String() string   { return "calico up's config files (" + string(k) + ")" }
func (k configKey) GoString() string { return "cli.configKey(" + strconv.Quote(string(k)) + ")" }

// printConfig writes the merged settings as YAML, each with where it
// came from; the token is never shown.
func printConfig(w io.Writer, s settings) error {
	fmt.Fprintln(w, "# calico up's settings: flags over environment over config files over defaults")
	if len(s.files) == 0 {
		fmt.Fprintln(w, "# config files: none")
	}
	for i, f := range s.files {
		fmt.Fprintf(w, "# config file %d: %s\n", i+1, f)
	}
	for _, st := range upSettings {
		v, ok := s.vals[st.name]
		if !ok {
			line := "# " + st.name + ": not set"
			if st.defText != "" {
				line += " (" + st.defText + ")"
			}
			fmt.Fprintln(w, line)
			continue
		}
		var text string
		switch {
		case st.secret:
			text = "(set, not shown)"
		case st.list:
			items := make([]string, len(v.vals))
			for i, x := range v.vals {
				items[i] = yamlScalar(x)
			}
			text = "[" + strings.Join(items, ", ") + "]"
		default:
			text = yamlScalar(s.get(st.name))
		}
		fmt.Fprintf(w, "%-40s # %s\n", st.name+": "+text, v.from)
	}
	return nil
}

// yamlScalar is s as a YAML scalar, plain when YAML reads it back as the
// same string (also inside a flow list), else double-quoted.
func yamlScalar(s string) string {
	b, err := yaml.Marshal(s)
	if err == nil && strings.TrimSuffix(string(b), "\n") == s && !strings.ContainsAny(s, ":,[]{}#") {
		return s
	}
	return strconv.Quote(s)
}
