package devices

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/trellis-sdwan/trellis/manage/network"
	"github.com/trellis-sdwan/trellis/manage/store"
)

// Key rotation defaults.
const (
	// DefaultKeyRotation is the age at which tunnel keys are rotated.
	DefaultKeyRotation = 24 * time.Hour
	// DefaultRotationTick is how often the scheduler looks for work.
	DefaultRotationTick = 5 * time.Second
	// MaxInboundPhase is the longest a rotation stays in its first phase
	// (new inbound SAs out, senders on the old ones) when a device does not
	// confirm it applied them; well within the edge's 60 s grace for a
	// replaced inbound SA.
	MaxInboundPhase = 20 * time.Second
	rotateBatch     = 500
)

// rotateLoop runs RotateKeys every RotationTick until ctx ends.
func (s *Service) rotateLoop(ctx context.Context) {
	t := time.NewTicker(s.cfg.RotationTick)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := s.RotateKeys(ctx); err != nil && ctx.Err() == nil {
				s.log.Error("rotating tunnel keys", "err", err)
			}
		}
	}
}

// RotateKeys is one pass of the key rotation scheduler. A rotation takes
// two pushes so no packet is dropped:
//
//  1. new keys are generated and stored as "next"; both devices receive
//     with them (inbound SAs) while still sending with the current ones.
//  2. once both devices run a document with the new inbound SAs (or after
//     MaxInboundPhase), both send with them too and they become current.
//
// The edge keeps a replaced inbound SA for 60 s, so packets sealed with the
// old keys before the peer switched still open. RotateKeys starts phase 1
// on tunnels whose keys are older than KeyRotation and completes phase 2
// where it can. Run calls it every RotationTick.
func (s *Service) RotateKeys(ctx context.Context) error {
	now := s.now()
	// Every tunnel in its first phase is looked at (a minute ahead covers
	// clocks of other replicas running slightly ahead).
	due, err := s.st.TunnelsToRotate(ctx, now.Add(-s.cfg.KeyRotation), now.Add(time.Minute), rotateBatch)
	if err != nil {
		return err
	}
	byOrg := map[string][]store.Tunnel{}
	var orgs []string
	for _, t := range due {
		if byOrg[t.OrgID] == nil {
			orgs = append(orgs, t.OrgID)
		}
		byOrg[t.OrgID] = append(byOrg[t.OrgID], t)
	}
	var errs []error
	for _, org := range orgs {
		if err := s.rotateOrg(ctx, org, byOrg[org], now); err != nil {
			errs = append(errs, fmt.Errorf("organization %s: %w", org, err))
		}
	}
	return errors.Join(errs...)
}

func (s *Service) rotateOrg(ctx context.Context, orgID string, due []store.Tunnel, now time.Time) error {
	var start []string
	var phase []store.Tunnel
	for _, t := range due {
		if t.RotationPhase == "" {
			start = append(start, t.ID)
		} else {
			phase = append(phase, t)
		}
	}
	if len(start) > 0 {
		if _, err := s.StartRotation(ctx, orgID, start); err != nil {
			return err
		}
	}
	if len(phase) == 0 {
		return nil
	}
	var in *orgInputs
	devs := map[string]store.Device{}
	ready := func(id string) (bool, error) {
		d, ok := devs[id]
		if !ok {
			var err error
			if d, err = s.st.GetDevice(ctx, orgID, id); err != nil {
				return false, err
			}
			devs[id] = d
		}
		if d.Approval != store.ApprovalApproved || d.ConnState != store.ConnConnected {
			return true, nil // it gets the final document when it comes back
		}
		if in == nil {
			var err error
			if in, err = loadOrgInputs(ctx, s.st, s.cfg.Sealer, s.cfg.STUNServers, s.cfg.InternetCheck, orgID, ""); err != nil {
				return false, err
			}
		}
		cfg, err := Encode(compileWith(in, d))
		if err != nil {
			return false, err
		}
		return d.AppliedVersion == cfg.Version, nil
	}
	for _, t := range phase {
		finish := !now.Before(t.KeysRotatedAt.Add(MaxInboundPhase))
		if !finish {
			ra, err := ready(t.DeviceA)
			if err != nil {
				return err
			}
			rb, err := ready(t.DeviceB)
			if err != nil {
				return err
			}
			finish = ra && rb
		}
		if finish {
			if err := s.finishRotation(ctx, t, now); err != nil {
				return err
			}
		}
	}
	return nil
}

// StartRotation begins phase 1 of a key rotation of the given tunnels of
// an organization (those already rotating continue) and pushes the new
// inbound SAs to both ends. It returns the tunnels it started, as stored.
func (s *Service) StartRotation(ctx context.Context, orgID string, ids []string) ([]store.Tunnel, error) {
	var out []store.Tunnel
	err := s.st.InTx(ctx, func(tx store.Store) error {
		o, err := network.LoadOrg(ctx, tx, orgID)
		if err != nil {
			return err
		}
		out, err = network.StartRotations(ctx, tx, s.cfg.Sealer, o, ids, s.now())
		return err
	})
	if err != nil {
		return nil, err
	}
	for _, t := range out {
		s.log.Info("tunnel key rotation started", "org", orgID, "tunnel", t.Number, "generation", t.KeyGeneration+1)
		s.DeviceChanged(orgID, t.DeviceA)
		s.DeviceChanged(orgID, t.DeviceB)
	}
	return out, nil
}

func (s *Service) finishRotation(ctx context.Context, t store.Tunnel, now time.Time) error {
	var done store.Tunnel
	err := s.st.InTx(ctx, func(tx store.Store) error {
		cur, err := tx.GetTunnel(ctx, t.OrgID, t.ID)
		if err != nil {
			return err
		}
		if cur.RotationPhase == "" {
			done = store.Tunnel{}
			return nil // finished elsewhere
		}
		done, err = network.FinishRotationOf(ctx, tx, s.cfg.Sealer, cur, now)
		return err
	})
	if errors.Is(err, store.ErrNotFound) {
		return nil // deleted meanwhile
	}
	if err != nil {
		return err
	}
	if done.ID == "" {
		return nil
	}
	s.metrics.rotations.Inc()
	s.log.Info("tunnel key rotation done", "org", t.OrgID, "tunnel", t.Number, "generation", done.KeyGeneration)
	s.DeviceChanged(t.OrgID, t.DeviceA)
	s.DeviceChanged(t.OrgID, t.DeviceB)
	return nil
}

// rekeyDevice starts a rotation of every tunnel of a device: an edge that
// (re)connects may have restarted, and its ESP sequence numbers with it,
// which its peers' anti-replay windows would refuse; fresh SAs start both
// directions from zero. Tunnels already rotating continue.
func (s *Service) rekeyDevice(ctx context.Context, orgID, deviceID string) error {
	var ids []string
	for off := 0; ; off += store.MaxListLimit {
		p, err := s.st.ListTunnels(ctx, orgID, store.ListOptions{Limit: store.MaxListLimit, Offset: off, Sort: "number",
			Filter: map[string]string{"device_id": deviceID}})
		if err != nil {
			return err
		}
		for _, t := range p.Items {
			if t.RotationPhase == "" {
				ids = append(ids, t.ID)
			}
		}
		if len(p.Items) < store.MaxListLimit {
			break
		}
	}
	if len(ids) == 0 {
		return nil
	}
	_, err := s.StartRotation(ctx, orgID, ids)
	return err
}
