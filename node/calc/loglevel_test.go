package calc

import "testing"

func TestLogSeverity(t *testing.T) {
	felix := func(name, sev string) string {
		return "---\napiVersion: projectcalico.org/v3\nkind: FelixConfiguration\nmetadata: {name: " + name + "}\nspec: {logSeverityScreen: '" + sev + "'}\n"
	}
	bgpc := func(name, sev string) string {
		return "---\napiVersion: projectcalico.org/v3\nkind: BGPConfiguration\nmetadata: {name: " + name + "}\nspec: {logSeverityScreen: '" + sev + "'}\n"
	}
	for _, tc := range []struct {
		name, yaml, agent, bgp string
	}{
		{"none", "", "", ""},
		{"defaults", felix("default", "Warning") + bgpc("default", "Debug"), "Warning", "Debug"},
		{"the node's own wins", felix("default", "Warning") + felix("node.h1", "Debug") + bgpc("default", "Info") + bgpc("node.h1", "Error"), "Debug", "Error"},
		{"another node's is not ours", felix("node.h2", "Debug") + bgpc("node.h2", "Debug"), "", ""},
		{"own without a severity", felix("default", "Error") + felix("node.h1", "") + bgpc("default", "Fatal") + bgpc("node.h1", ""), "Error", "Fatal"},
		{"each kind its own", felix("default", "Debug"), "Debug", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := decode(t, "h1", tc.yaml)
			if got := LogSeverity(in); got != tc.agent {
				t.Errorf("LogSeverity = %q; want %q", got, tc.agent)
			}
			if got := ComputeBGP(in).LogSeverity; got != tc.bgp {
				t.Errorf("BGP LogSeverity = %q; want %q", got, tc.bgp)
			}
		})
	}
	for in, want := range map[string]string{"debug": "Debug", "TRACE": "Debug", "Warn": "Warning", "info": "Info", "Panic": "Fatal", "loud": ""} {
		if got := severity(in); got != want {
			t.Errorf("severity(%q) = %q; want %q", in, got, want)
		}
	}
}
