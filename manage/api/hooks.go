package api

import "net/http"

// deviceHooks lists the routes whose success changes what devices must run
// (desired state, approval, credential, jobs). After such a route
// succeeds, Config.OnDeviceChange is called with the organization and the
// device of the path; routes without {device_id} affect every device of
// the organization (device "").
var deviceHooks = map[string]bool{
	"PATCH /organizations/{org_id}":                            true,
	"DELETE /organizations/{org_id}":                           true,
	"PATCH /organizations/{org_id}/devices/{device_id}":        true,
	"DELETE /organizations/{org_id}/devices/{device_id}":       true,
	"POST /organizations/{org_id}/devices/{device_id}/approve": true,
	"POST /organizations/{org_id}/devices/{device_id}/jobs":    true,
	"POST /organizations/{org_id}/path-labels":                 true,
	"PATCH /organizations/{org_id}/path-labels/{label_id}":     true,
	"DELETE /organizations/{org_id}/path-labels/{label_id}":    true,
}

// withDeviceHooks wraps the handlers of the hooked routes.
func (a *API) withDeviceHooks(routes []*Route) []*Route {
	if a.cfg.OnDeviceChange == nil {
		return routes
	}
	for _, rt := range routes {
		if !deviceHooks[rt.Method+" "+rt.Path] {
			continue
		}
		h := rt.handle
		rt.handle = func(c *call) (any, error) {
			v, err := h(c)
			if err == nil && c.org.ID != "" && c.r.Method != http.MethodGet {
				a.cfg.OnDeviceChange(c.org.ID, c.param("device_id"))
			}
			return v, err
		}
	}
	return routes
}
