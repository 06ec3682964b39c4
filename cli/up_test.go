//go:build !split

package cli

import (
	"testing"

	"calico/node/docker"
)

// The tests of up's own action, which the split build runs in the full
// binary instead (up_split.go).

// TestDockerSettings: Docker's plugins are served by default, from
// /run/docker/plugins with the usual Engine socket; docker-plugins false
// (flag, environment or file) turns them off.
func TestDockerSettings(t *testing.T) {
	cfg, _, err := upConfig(settings{vals: map[string]value{"data-dir": {vals: []string{"/d"}}, "docker-plugins": {vals: []string{"true"}},
		"docker-socket": {vals: []string{"/var/run/docker.sock"}}, "voter-replace-after": {vals: []string{"5m"}}, "log-level": {vals: []string{"info"}}}})
	if err != nil || cfg.Docker.PluginDir != "/run/docker/plugins" || cfg.Docker.EngineSocket != "/var/run/docker.sock" {
		t.Errorf("the default Docker config: %+v, %v", cfg.Docker, err)
	}
	if got := printed(t); got["docker-plugins"] != [2]string{`"true"`, "default"} || got["docker-socket"] != [2]string{"/var/run/docker.sock", "default"} {
		t.Errorf("print-config: docker-plugins %q, docker-socket %q", got["docker-plugins"], got["docker-socket"])
	}
	t.Setenv("CALICO_DOCKER_PLUGINS", "false")
	if got := printed(t); got["docker-plugins"] != [2]string{`"false"`, "CALICO_DOCKER_PLUGINS"} {
		t.Errorf("docker-plugins from the environment: %q", got["docker-plugins"])
	}
	if got := printed(t, "--docker-plugins=true"); got["docker-plugins"] != [2]string{`"true"`, "--docker-plugins"} {
		t.Errorf("--docker-plugins over the environment: %q", got["docker-plugins"])
	}
	cfg, _, err = upConfig(settings{vals: map[string]value{"data-dir": {vals: []string{"/d"}}, "docker-plugins": {vals: []string{"false"}},
		"voter-replace-after": {vals: []string{"5m"}}, "log-level": {vals: []string{"info"}}}})
	if err != nil || cfg.Docker.PluginDir != "" {
		t.Errorf("docker-plugins false: %+v, %v", cfg.Docker, err)
	}
}

func TestDockerSocketDefault(t *testing.T) {
	if dockerEngineSocket != docker.DefaultEngineSocket {
		t.Errorf("--docker-socket's default %q is not docker.DefaultEngineSocket %q", dockerEngineSocket, docker.DefaultEngineSocket)
	}
}
