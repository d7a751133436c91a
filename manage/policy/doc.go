// Package policy is the pure logic of applications and policies (issue 8):
// the application catalogue (built in, replaceable at run time by an
// operator from a file or URL), an organization's own applications and
// overrides merged with it, the validation of path-selection, breakout and
// firewall policies (unknown applications and labels refused, shadowed and
// overlapping rules reported as warnings), QoS classes and WAN bandwidths,
// and the compilation of a device's policy parts of its desired document.
// Apart from loading (LoadOrg, LoadCatalog, SaveCatalog, Fetch) it does no
// I/O: callers (manage/api, manage/devices) store and audit.
package policy

import "fmt"

// FieldError is bad input in one field; the API answers it with 422 and
// the field.
type FieldError struct {
	Field   string
	Message string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Message }

func fieldErr(field, format string, args ...any) *FieldError {
	return &FieldError{Field: field, Message: fmt.Sprintf(format, args...)}
}
