package devices

import (
	"context"
	"errors"
	"sync"

	"github.com/trellis-sdwan/trellis/manage/store"
	"github.com/trellis-sdwan/trellis/wire/devproto"
)

// orgLock serialises an organization-wide recompilation (exclusive) with
// the recompilation of single devices of that organization (shared), so a
// batch computed from a listing never overwrites a newer single-device
// result, and a change made during the batch is recompiled after it.
func (s *Service) orgLock(orgID string) *sync.RWMutex {
	l, _ := s.orgLocks.LoadOrStore(orgID, &sync.RWMutex{})
	return l.(*sync.RWMutex)
}

// reconcileOrg recompiles every device of an organization: per page of
// devices one transaction lists them, compiles with what they share
// (loaded once) and records the new versions in one statement; then the
// connected ones get their documents.
func (s *Service) reconcileOrg(ctx context.Context, orgID string) error {
	lk := s.orgLock(orgID)
	lk.Lock()
	defer lk.Unlock()
	in, err := loadOrgInputs(ctx, s.st, s.cfg.Sealer, s.cfg.STUNServers, s.cfg.InternetCheck, orgID, "")
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
	s.logKeyErrors(orgID, in)
	type compiled struct {
		d   store.Device
		cfg devproto.Config
	}
	for off := 0; ; off += store.MaxListLimit {
		var (
			batch []compiled
			n     int
		)
		err := s.st.InTx(ctx, func(tx store.Store) error {
			batch = batch[:0]
			changed := map[string]string{}
			p, err := tx.ListDevices(ctx, orgID, store.ListOptions{Limit: store.MaxListLimit, Offset: off, Sort: "id"})
			if err != nil {
				return err
			}
			n = len(p.Items)
			for _, d := range p.Items {
				if d.Approval != store.ApprovalApproved {
					continue
				}
				cfg, err := Encode(compileWith(in, d))
				if err != nil {
					return err
				}
				if cfg.Version != d.DesiredVersion {
					changed[d.ID] = cfg.Version
				}
				batch = append(batch, compiled{d, cfg})
			}
			return tx.SetDesiredVersions(ctx, orgID, changed)
		})
		if err != nil {
			return err
		}
		for _, b := range batch {
			c := s.conns.get(b.d.ID)
			if c == nil {
				continue
			}
			mu := s.conns.stripe(b.d.ID)
			mu.Lock()
			if c.credHash == b.d.CredentialHash {
				s.push(c, b.d, b.cfg)
			}
			mu.Unlock()
		}
		if n < store.MaxListLimit {
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
	lk := s.orgLock(d.OrgID)
	lk.RLock()
	defer lk.RUnlock()
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
		if s.cfg.Observer != nil {
			s.cfg.Observer.Forget(orgID, deviceID)
		}
		// Its tunnels went with it (store cascade): peers drop them and
		// the routes through them.
		s.DeviceChanged(orgID, "")
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
		if in, err = loadOrgInputs(ctx, s.st, s.cfg.Sealer, s.cfg.STUNServers, s.cfg.InternetCheck, d.OrgID, d.ID); err != nil {
			return err
		}
		s.logKeyErrors(d.OrgID, in)
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
	// The edge runs cfg already only if nothing else was sent after the
	// version it reported: a document sent and not yet applied (a quick
	// flip, e.g. a tunnel removed and restored) would replace it.
	inFlight := c.sentVersion != "" && c.sentVersion != c.applied
	need := c.sentVersion != cfg.Version && (c.applied != cfg.Version || inFlight)
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

// logKeyErrors reports tunnels left out because their keys could not be
// opened (a replaced seal key): once per load, without the keys.
func (s *Service) logKeyErrors(orgID string, in *orgInputs) {
	if len(in.keyErrs) > 0 {
		s.log.Error("tunnels left out of desired documents: their keys cannot be opened (was seal.key replaced?)",
			"org", orgID, "count", len(in.keyErrs), "first", in.keyErrs[0])
	}
}
