package calc

import "strings"

// LogSeverity is the log level FelixConfiguration sets for this host's
// node: logSeverityScreen of node.<name> if it has one, else of default,
// as Debug, Info, Warning, Error or Fatal; "" when neither sets one (the
// node keeps the level it was started with).
func LogSeverity(in Input) string {
	var global, own string
	for _, f := range in.Felix {
		switch f.Metadata.Name {
		case "default":
			global = severity(f.Spec.LogSeverityScreen)
		case "node." + in.Node:
			own = severity(f.Spec.LogSeverityScreen)
		}
	}
	if own != "" {
		return own
	}
	return global
}

// bgpLogSeverity is LogSeverity for the BGP speaker, from
// BGPConfiguration.
func bgpLogSeverity(in Input) string {
	own, global := bgpConfig(in.BGPConfigs, "node."+in.Node), bgpConfig(in.BGPConfigs, "default")
	if own != nil && severity(own.Spec.LogSeverityScreen) != "" {
		return severity(own.Spec.LogSeverityScreen)
	}
	if global != nil {
		return severity(global.Spec.LogSeverityScreen)
	}
	return ""
}

// severity reads one of Calico's log severities, in any case as Calico
// takes them; Trace is Debug here, anything else "".
func severity(s string) string {
	switch strings.ToLower(s) {
	case "trace", "debug":
		return "Debug"
	case "info":
		return "Info"
	case "warning", "warn":
		return "Warning"
	case "error":
		return "Error"
	case "fatal", "panic":
		return "Fatal"
	}
	return ""
}
