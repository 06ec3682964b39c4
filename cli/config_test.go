package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const configToken = "K1" + "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef" + "::0123456789abcdef"

func TestMain(m *testing.M) {
	// The machine's own /etc/calico/config.yaml must not reach the tests.
	os.Setenv("CALICO_CONFIG_FILE", "")
	os.Unsetenv("CALICO_TOKEN")
	os.Unsetenv("CALICO_DATA_DIR")
	os.Exit(m.Run())
}

func writeConfig(t *testing.T, path, text string) string {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// printed runs `calico up --print-config` with args and returns the
// printed settings by key: the value and where it came from.
func printed(t *testing.T, args ...string) map[string][2]string {
	t.Helper()
	code, out, errs := run(append([]string{"up", "--print-config"}, args...)...)
	if code != 0 {
		t.Fatalf("calico up --print-config %s: exit %d: %s", strings.Join(args, " "), code, errs)
	}
	got := map[string][2]string{}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		if strings.HasPrefix(line, "#") {
			continue
		}
		kv, from, _ := strings.Cut(line, " # ")
		k, v, _ := strings.Cut(kv, ": ")
		got[k] = [2]string{strings.TrimSpace(v), strings.TrimSpace(from)}
	}
	return got
}

func TestConfigPrecedence(t *testing.T) {
	dir := t.TempDir()
	file := writeConfig(t, filepath.Join(dir, "config.yaml"), `# as install.sh writes it
join: 172.31.1.11
token: "`+configToken+`"
pool: [10.65.0.0/16, "fd00:65::/48"]
name: host2
log-level: warn
as: 64513
voter-replace-after: 90s
`)
	t.Setenv("CALICO_DATA_DIR", filepath.Join(dir, "from-env"))
	got := printed(t, "--config", file, "--name", "from-flag", "--log-level", "debug")
	want := map[string][2]string{
		"data-dir":            {filepath.Join(dir, "from-env"), "CALICO_DATA_DIR"},
		"name":                {"from-flag", "--name"},
		"log-level":           {"debug", "--log-level"},
		"join":                {"172.31.1.11", file + ":2"},
		"token":               {"(set, not shown)", file + ":3"},
		"pool":                {`[10.65.0.0/16, "fd00:65::/48"]`, file + ":4"},
		"as":                  {"\"64513\"", file + ":7"},
		"voter-replace-after": {"90s", file + ":8"},
	}
	for k, w := range want {
		if got[k] != w {
			t.Errorf("%s = %q; want %q", k, got[k], w)
		}
	}
	// The environment beats the file, a flag beats both.
	t.Setenv("CALICO_TOKEN", configToken+"x")
	if got := printed(t, "--config", file)["token"]; got != [2]string{"(set, not shown)", "CALICO_TOKEN"} {
		t.Errorf("token with CALICO_TOKEN set = %q", got)
	}
	if got := printed(t, "--config", file, "--token", configToken)["token"]; got[1] != "--token" {
		t.Errorf("token with --token = %q", got)
	}
	// A flag replaces a list; the defaults show as such.
	got = printed(t, "--config", file, "--pool", "10.70.0.0/16")
	if got["pool"] != [2]string{"[10.70.0.0/16]", "--pool"} || got["voter-replace-after"][0] != "90s" {
		t.Errorf("with --pool: %q", got)
	}
	t.Setenv("CALICO_DATA_DIR", "")
	if got := printed(t, "--config", file)["data-dir"]; got != [2]string{DefaultDataDir, "default"} {
		t.Errorf("data-dir = %q; want the default", got)
	}
}

func TestConfigNeverShowsTheToken(t *testing.T) {
	file := writeConfig(t, filepath.Join(t.TempDir(), "c.yaml"), "join: 10.0.0.1\ntoken: "+configToken+"\n")
	code, out, errs := run("up", "--print-config", "--config", file)
	if code != 0 || strings.Contains(out+errs, "0123456789abcdef::") || !strings.Contains(out, "token: (set, not shown)") {
		t.Errorf("exit %d, output:\n%s%s", code, out, errs)
	}
}

func TestConfigDropIns(t *testing.T) {
	dir := t.TempDir()
	file := writeConfig(t, filepath.Join(dir, "config.yaml"), "log-level: debug\npool: 10.65.0.0/16\nname: base\n")
	writeConfig(t, filepath.Join(dir, "config.yaml.d", "20-later.yaml"), "log-level: error\npool+: [10.67.0.0/16]\n")
	writeConfig(t, filepath.Join(dir, "config.yaml.d", "10-first.yaml"), "log-level: warn\npool+: 10.66.0.0/16\n")
	writeConfig(t, filepath.Join(dir, "config.yaml.d", "30-ignored.yml"), "log-level: nonsense\n")
	writeConfig(t, filepath.Join(dir, "config.yaml.d", "40-empty.yaml"), "# nothing here\n")
	got := printed(t, "--config", file)
	later := filepath.Join(dir, "config.yaml.d", "20-later.yaml")
	if got["log-level"] != [2]string{"error", later + ":1"} {
		t.Errorf("log-level = %q; want error from the last drop-in", got["log-level"])
	}
	if got["pool"] != [2]string{"[10.65.0.0/16, 10.66.0.0/16, 10.67.0.0/16]", later + ":2"} {
		t.Errorf("pool = %q; want the three pools in file order", got["pool"])
	}
	if got["name"] != [2]string{"base", file + ":3"} {
		t.Errorf("name = %q", got["name"])
	}
	// A drop-in's plain key replaces the list.
	writeConfig(t, filepath.Join(dir, "config.yaml.d", "50-replace.yaml"), "pool: [10.99.0.0/16]\n")
	if got := printed(t, "--config", file)["pool"][0]; got != "[10.99.0.0/16]" {
		t.Errorf("pool after a replacing drop-in = %s", got)
	}
}

func TestConfigErrors(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		name, text, want string
	}{
		{"unknown key", "name: a\npols: [10.65.0.0/16]\n", `:2: unknown key "pols"`},
		{"bad pool", "pool:\n  - 10.65.0.0/16\n  - 10.66.0.0/33\n", `:1: pool "10.66.0.0/33" is not a CIDR`},
		{"bad pool in a list", "pool: [10.65.0.0/16, {a: b}]\n", `:1: pool item 2 must be a plain value`},
		{"overlapping pools", "pool: [10.65.0.0/16, 10.65.1.0/24]\n", `:1: pool 10.65.1.0/24 overlaps 10.65.0.0/16`},
		{"bad duration", "voter-replace-after: soon\n", `:1: voter-replace-after "soon" is not a duration`},
		{"bad log level", "\n\nlog-level: loud\n", `:3: log-level "loud" is not debug, info, warn or error`},
		{"bad address", "ip: fd00::1\n", `:1: ip "fd00::1" is not a unicast IPv4 address`},
		{"bad AS", "as: -1\n", `:1: as "-1" is not an AS number`},
		{"bad name", "name: Bad_Name\n", `:1: name "Bad_Name" must be lower-case`},
		{"bad token", "join: 10.0.0.1\ntoken: nope\n", `:2: token: the token is not a calico join token`},
		{"join without token", "join: 10.0.0.1\n", `:1: join needs a token`},
		{"a list for one value", "name: [a, b]\n", `:1: name takes one value, not a list`},
		{"a map for a value", "log-level: {a: b}\n", `:1: log-level must be a plain value`},
		{"no value", "name:\n", `:1: name has no value`},
		{"twice", "name: a\nname: b\n", `:2: key name appears twice`},
		{"append to a value", "name+: a\n", `:1: name+ adds to a list, and name is not one`},
		{"config in a config file", "config: /x\n", `:1: config cannot be set in a config file`},
		{"not a map", "- a\n- b\n", `:1: the file must be a map`},
		{"malformed", "name: a\n  b: [\n", `line 2:`},
		{"two documents", "name: a\n---\nname: b\n", `holds more than one YAML document`},
		{"etcd-ca alone", "etcd-ca: /ca.pem\n", `:1: etcd-ca goes with etcd-endpoints`},
		{"bad log format", "log-format: xml\n", `:1: log-format "xml" is not text or json`},
		{"metrics without a port", "metrics-addr: 9091\n", `:1: metrics-addr "9091" is not HOST:PORT`},
		{"metrics on a bad port", "metrics-addr: \":99999\"\n", `the port must be a number from 1 to 65535`},
		{"health on a name", "health-addr: \"example.org:9099\"\n", `:1: health-addr "example.org:9099": the host must be an address`},
		{"docker-plugins not a bool", "docker-plugins: sometimes\n", `:1: docker-plugins "sometimes" is neither true nor false`},
		{"docker-socket relative", "docker-socket: docker.sock\n", `:1: docker-socket "docker.sock" is not an absolute path`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			file := writeConfig(t, filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "-")+".yaml"), tc.text)
			for _, args := range [][]string{{"up", "--config", file}, {"up", "--config", file, "--print-config"}} {
				code, _, errs := run(args...)
				if code != 2 || !strings.Contains(errs, file) || !strings.Contains(errs, tc.want) || strings.Count(strings.TrimSpace(errs), "\n") > 0 {
					t.Errorf("calico %s: exit %d, stderr %q; want exit 2 and one line naming %s and containing %q", strings.Join(args, " "), code, errs, file, tc.want)
				}
			}
		})
	}
}

func TestConfigFiles(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "missing.yaml")
	// A missing default file is fine, and so is a missing drop-in dir.
	if files, err := configFiles(missing, false); err != nil || len(files) != 0 {
		t.Errorf("configFiles(missing default) = %v, %v", files, err)
	}
	// A missing file that was given is an error.
	code, _, errs := run("up", "--config", missing)
	if code != 2 || !strings.Contains(errs, "config file "+missing+" does not exist") {
		t.Errorf("up --config missing: exit %d, %q", code, errs)
	}
	t.Setenv("CALICO_CONFIG_FILE", missing)
	code, _, errs = run("up", "--print-config")
	if code != 2 || !strings.Contains(errs, "config file "+missing+" does not exist") {
		t.Errorf("CALICO_CONFIG_FILE=missing up: exit %d, %q", code, errs)
	}
	// --config '' reads no file, not even the drop-ins.
	code, out, errs := run("up", "--print-config", "--config", "")
	if code != 0 || !strings.Contains(out, "# config files: none") {
		t.Errorf("up --print-config --config '': exit %d, %q %q", code, out, errs)
	}
	// Drop-ins alone (no main file) are read.
	writeConfig(t, filepath.Join(dir, "only.yaml.d", "a.yaml"), "name: from-drop-in\n")
	if files, err := configFiles(filepath.Join(dir, "only.yaml"), false); err != nil || len(files) != 1 {
		t.Errorf("configFiles(drop-ins only) = %v, %v", files, err)
	}
}

// The other commands find the data dir that calico up's config file sets.
func TestConfigDataDirForOtherCommands(t *testing.T) {
	dir := t.TempDir()
	file := writeConfig(t, filepath.Join(dir, "config.yaml"), "data-dir: "+filepath.Join(dir, "from-config")+"\n")
	t.Setenv("CALICO_CONFIG_FILE", file)
	_, _, errs := run("status")
	if !strings.Contains(errs, "with data dir "+filepath.Join(dir, "from-config")) {
		t.Errorf("calico status with data-dir in the config: %q", errs)
	}
	t.Setenv("CALICO_DATA_DIR", filepath.Join(dir, "from-env"))
	if _, _, errs := run("status"); !strings.Contains(errs, "with data dir "+filepath.Join(dir, "from-env")) {
		t.Errorf("calico status with CALICO_DATA_DIR over the config: %q", errs)
	}
	if _, _, errs := run("status", "--data-dir", filepath.Join(dir, "from-flag")); !strings.Contains(errs, "with data dir "+filepath.Join(dir, "from-flag")) {
		t.Errorf("calico status with --data-dir: %q", errs)
	}
	t.Setenv("CALICO_DATA_DIR", "")
	writeConfig(t, file, "pols: nonsense\n")
	if _, _, errs := run("status"); !strings.Contains(errs, "with data dir "+DefaultDataDir) {
		t.Errorf("calico status with a bad config: %q; want the default data dir", errs)
	}
}

// TestConfigObservability: the metrics and health addresses and the log
// format are settings like the others; health checks are on by default,
// metrics off, and an empty health-addr turns the health checks off.
func TestConfigObservability(t *testing.T) {
	got := printed(t)
	if got["health-addr"][0] != `"127.0.0.1:9099"` || got["log-format"][0] != "text" {
		t.Errorf("defaults: %v", got)
	}
	if _, ok := got["metrics-addr"]; ok {
		t.Errorf("metrics on by default: %v", got["metrics-addr"])
	}
	file := writeConfig(t, filepath.Join(t.TempDir(), "config.yaml"), "metrics-addr: \":9091\"\nlog-format: json\n")
	got = printed(t, "--config", file, "--health-addr", "")
	if got["metrics-addr"][0] != `":9091"` || got["log-format"][0] != "json" || got["health-addr"][0] != `""` {
		t.Errorf("set: %v", got)
	}
}
