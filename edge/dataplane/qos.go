package dataplane

// WANQoSStatus is the scheduler of one shaped WAN.
type WANQoSStatus struct {
	WAN        string         `json:"wan"`
	UplinkKbps int            `json:"uplink_kbps"`
	Classes    []ClassCounter `json:"classes"`
}

// ClassCounter counts one class of a WAN's scheduler.
type ClassCounter struct {
	Class   string `json:"class"`
	Packets uint64 `json:"packets"`
	Bytes   uint64 `json:"bytes"`
	Drops   uint64 `json:"drops"`
	Queued  int    `json:"queued"`
}

func (e *Engine) qosStatus(snap *snapshot) []WANQoSStatus { return nil }
