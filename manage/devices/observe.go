package devices

import (
	"context"
	"time"

	"github.com/trellis-sdwan/trellis/wire/devproto"
)

// Observer receives what devices report, for monitoring (manage/monitor's
// Service implements it). Calls come from the device's channel handler:
// they should be quick (one batched write per stats report).
type Observer interface {
	// Stats is a stats report received at at.
	Stats(ctx context.Context, orgID, deviceID string, st devproto.Stats, at time.Time) error
	// Event is an event the device sent.
	Event(ctx context.Context, orgID, deviceID string, e devproto.Event)
	// Forget: the device was deleted.
	Forget(orgID, deviceID string)
}

func (s *Service) observeStats(ctx context.Context, c *conn, st devproto.Stats, at time.Time) {
	if s.cfg.Observer == nil {
		return
	}
	if err := s.cfg.Observer.Stats(ctx, c.orgID, c.deviceID, st, at); err != nil && ctx.Err() == nil {
		s.log.Error("recording stats history", "org", c.orgID, "device", c.deviceID, "err", err)
	}
}

func (s *Service) observeEvent(ctx context.Context, c *conn, e devproto.Event) {
	if s.cfg.Observer != nil {
		s.cfg.Observer.Event(ctx, c.orgID, c.deviceID, e)
	}
}
