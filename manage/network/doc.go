// Package network is the pure logic of sites and tunnels (issue 6): it
// validates interface assignments, static routes and DHCP servers against
// the whole organization, expands tunnel topologies into WAN pairs,
// allocates tunnel numbers, /31 overlays, SPIs and keys (sealed at rest),
// rotates keys in two pushes, distributes LAN routes along the tunnel graph
// and compiles the network parts of a device's desired document. It does no
// I/O: callers (manage/api, manage/devices) load and store.
package network

import "fmt"

// FieldError is bad input in one field; the API answers it with 422 and
// the field, the device channel with an error message naming it.
type FieldError struct {
	Field   string
	Message string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Message }

func fieldErr(field, format string, args ...any) *FieldError {
	return &FieldError{Field: field, Message: fmt.Sprintf(format, args...)}
}
