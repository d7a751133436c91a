package api

import (
	"net/http"
	"time"

	"github.com/trellis-sdwan/trellis/wire/devproto"
)

// deviceStats is the latest stats report of a connected device.
type deviceStats struct {
	At    time.Time      `json:"at"`
	Stats devproto.Stats `json:"stats"`
}

func (a *API) getDeviceStats(c *call) (any, error) {
	d, err := a.st.GetDevice(c.ctx, c.org.ID, c.param("device_id"))
	if err != nil {
		return nil, notFoundAs(err, "device")
	}
	if a.cfg.DeviceStats == nil {
		return nil, errorf(http.StatusNotFound, CodeNotFound, "this server keeps no device stats")
	}
	at, st, ok := a.cfg.DeviceStats(d.ID)
	if !ok {
		return nil, errorf(http.StatusNotFound, CodeNotFound, "device %s has reported no stats since manage started", d.ID)
	}
	return deviceStats{At: at, Stats: st}, nil
}
