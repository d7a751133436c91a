package devices

import (
	"context"
	"errors"

	"github.com/trellis-sdwan/trellis/manage/store"
	"github.com/trellis-sdwan/trellis/wire/devproto"
)

// reconcileOrg recompiles every device of an organization, loading what
// they share once.
func (s *Service) reconcileOrg(ctx context.Context, orgID string) error {
	in, err := loadOrgInputs(ctx, s.st, orgID)
	if errors.Is(err, store.ErrNotFound) {
		for _, c := range s.conns.all() {
			if c.orgID == orgID {
				c.close(StatusRevoked, "the organization was deleted")
			}
		}
		return nil
	}
	if err != nil {
		return err
	}
	for off := 0; ; off += store.MaxListLimit {
		p, err := s.st.ListDevices(ctx, orgID, store.ListOptions{Limit: store.MaxListLimit, Offset: off, Sort: "id"})
		if err != nil {
			return err
		}
		for _, d := range p.Items {
			if err := s.reconcileLoaded(ctx, d, in); err != nil {
				s.log.Error("reconciling device", "device", d.ID, "err", err)
			}
		}
		if len(p.Items) < store.MaxListLimit {
			return nil
		}
	}
}

// reconcileDevice brings one device in line with the store: its desired
// version recorded, pushed when its channel is here and it runs another
// version, its next job started. in may be nil.
func (s *Service) reconcileDevice(ctx context.Context, orgID, deviceID string, in *orgInputs) error {
	return s.reconcileLoaded(ctx, store.Device{OrgID: orgID, ID: deviceID}, in)
}

func (s *Service) reconcileLoaded(ctx context.Context, d store.Device, in *orgInputs) error {
	// One device at a time, so two workers never push versions out of order.
	mu := s.conns.stripe(d.ID)
	mu.Lock()
	defer mu.Unlock()
	// Re-read under the lock: another worker may have just changed it.
	orgID, deviceID := d.OrgID, d.ID
	d, err := s.st.GetDevice(ctx, orgID, deviceID)
	if errors.Is(err, store.ErrNotFound) {
		if c := s.conns.get(deviceID); c != nil && c.orgID == orgID {
			c.close(StatusRevoked, "the device was deleted")
		}
		s.stats.forget(deviceID)
		return nil
	}
	if err != nil {
		return err
	}
	c := s.conns.get(d.ID)
	if c != nil && c.credHash != d.CredentialHash {
		c.close(StatusRevoked, "the device registered again: its old credential is no longer valid")
		c = nil
	}
	if d.Approval != store.ApprovalApproved {
		if c != nil {
			c.mu.Lock()
			c.approved = false
			c.mu.Unlock()
		}
		return nil // nothing is compiled or pushed for a pending device
	}
	if in == nil {
		if in, err = loadOrgInputs(ctx, s.st, d.OrgID); err != nil {
			return err
		}
	}
	cfg, err := Encode(compileWith(in, d))
	if err != nil {
		return err
	}
	if cfg.Version != d.DesiredVersion {
		if err := s.st.SetDesiredVersion(ctx, d.OrgID, d.ID, cfg.Version); err != nil {
			return err
		}
	}
	if c == nil {
		return nil
	}
	s.push(c, d, cfg)
	s.dispatchJob(ctx, c)
	return nil
}

// push sends cfg unless the edge runs it or was just sent it. A device
// approved while connected first gets a new Welcome saying so.
func (s *Service) push(c *conn, d store.Device, cfg devproto.Config) {
	c.mu.Lock()
	if !c.ready {
		c.mu.Unlock()
		return // Hello will catch up
	}
	wasApproved := c.approved
	c.approved, c.desired = true, cfg.Version
	need := c.sentVersion != cfg.Version && c.applied != cfg.Version
	if need {
		c.sentVersion = cfg.Version
	}
	c.mu.Unlock()
	if !wasApproved {
		c.send(devproto.TypeWelcome, "", s.welcome(d.ID, store.ApprovalApproved))
	}
	if need {
		s.log.Debug("pushing configuration", "device", d.ID, "version", cfg.Version)
		c.send(devproto.TypeConfig, "", cfg)
	}
}

// dispatchJob starts the device's next queued job, if none is running.
func (s *Service) dispatchJob(ctx context.Context, c *conn) {
	c.mu.Lock()
	ok := c.ready && c.approved
	c.mu.Unlock()
	if !ok {
		return
	}
	j, err := s.st.ClaimNextJob(ctx, c.orgID, c.deviceID, s.now())
	if errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrConflict) {
		return
	}
	if err != nil {
		s.log.Error("claiming a job", "device", c.deviceID, "err", err)
		return
	}
	s.log.Info("job sent to device", "device", c.deviceID, "job", j.ID, "kind", j.Kind)
	c.send(devproto.TypeJob, j.ID, devproto.Job{ID: j.ID, Kind: j.Kind, Args: j.Args})
}
