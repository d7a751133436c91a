package monitor

// AlertTypeInfo describes an alert type for people and user interfaces
// (GET /alert-types): what its subject is, the severities it takes and
// when it is raised.
type AlertTypeInfo struct {
	Type        string   `json:"type"`
	Subject     string   `json:"subject"` // "" (the device), "tunnel" (number) or "interface" (name)
	Severities  []string `json:"severities"`
	Description string   `json:"description"`
}

// AlertTypeInfos describes every alert type, in AlertTypes order.
func AlertTypeInfos() []AlertTypeInfo {
	w, c := SeverityWarning, SeverityCritical
	d := map[string]AlertTypeInfo{
		AlertDeviceDisconnected: {"", "", []string{c}, "an approved device's channel is down"},
		AlertDeviceFailed:       {"", "", []string{c}, "the device failed to apply its desired configuration"},
		AlertDeviceOutOfSync:    {"", "", []string{w}, "the device does not run its desired configuration"},
		AlertSoftwareOutdated:   {"", "", []string{w}, "the device's edge software is older than manage's"},
		AlertWANNoLink:          {"", "interface", []string{c}, "an assigned WAN is not reported or its link is down"},
		AlertWANNoAddress:       {"", "interface", []string{w}, "an assigned WAN has no IPv4 address"},
		AlertWANInternet:        {"", "interface", []string{w, c}, "an assigned WAN's Internet check fails: warning while another WAN reaches the Internet, critical when none does"},
		AlertTunnelDown:         {"", "tunnel", []string{c}, "the device reports the tunnel down"},
		AlertTunnelRTT:          {"", "tunnel", []string{w, c}, "tunnel RTT above the thresholds"},
		AlertTunnelLoss:         {"", "tunnel", []string{w, c}, "tunnel loss above the thresholds"},
		AlertDataplaneStopped:   {"", "", []string{c}, "the device's data plane stopped"},
		AlertDeviceResources:    {"", "", []string{w, c}, "CPU, memory or disk use at or above the organization's resource thresholds"},
	}
	out := make([]AlertTypeInfo, 0, len(d))
	for _, t := range AlertTypes() {
		i := d[t]
		i.Type = t
		out = append(out, i)
	}
	return out
}
