package network

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/trellis-sdwan/trellis/manage/auth"
	"github.com/trellis-sdwan/trellis/manage/store"
)

// The functions of this file read and write through a store.Store (usually
// a transaction the caller opened); the rules they apply are the pure
// functions of the package.

func listAll[T any](ctx context.Context, list func(store.ListOptions) (store.Page[T], error), sort string, filter map[string]string) ([]T, error) {
	var out []T
	for off := 0; ; off += store.MaxListLimit {
		p, err := list(store.ListOptions{Limit: store.MaxListLimit, Offset: off, Sort: sort, Filter: filter})
		if err != nil {
			return nil, err
		}
		out = append(out, p.Items...)
		if len(p.Items) < store.MaxListLimit {
			return out, nil
		}
	}
}

// LoadOrg loads everything of an organization that validation and
// compilation read: one query per kind (paged), not per device.
func LoadOrg(ctx context.Context, st store.Store, orgID string) (*Org, error) {
	org, err := st.GetOrganization(ctx, orgID)
	if err != nil {
		return nil, err
	}
	o := &Org{Org: org}
	if o.Labels, err = listAll(ctx, func(opt store.ListOptions) (store.Page[store.PathLabel], error) {
		return st.ListPathLabels(ctx, orgID, opt)
	}, "id", nil); err != nil {
		return nil, fmt.Errorf("listing path labels: %w", err)
	}
	if o.Devices, err = listAll(ctx, func(opt store.ListOptions) (store.Page[store.Device], error) {
		return st.ListDevices(ctx, orgID, opt)
	}, "id", nil); err != nil {
		return nil, fmt.Errorf("listing devices: %w", err)
	}
	if o.Tunnels, err = listAll(ctx, func(opt store.ListOptions) (store.Page[store.Tunnel], error) {
		return st.ListTunnels(ctx, orgID, opt)
	}, "number", nil); err != nil {
		return nil, fmt.Errorf("listing tunnels: %w", err)
	}
	if o.Routes, err = listAll(ctx, func(opt store.ListOptions) (store.Page[store.StaticRoute], error) {
		return st.ListStaticRoutes(ctx, orgID, opt)
	}, "id", nil); err != nil {
		return nil, fmt.Errorf("listing static routes: %w", err)
	}
	return o, nil
}

// OpenTunnels opens the keys of tunnels; those that cannot be opened (a
// different seal key) are returned as errors and left out.
func OpenTunnels(s *auth.Sealer, ts []store.Tunnel) ([]TunnelKeys, []error) {
	out := make([]TunnelKeys, 0, len(ts))
	var errs []error
	for _, t := range ts {
		k, err := OpenKeys(s, t)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		out = append(out, TunnelKeys{Tunnel: t, Keys: k})
	}
	return out, errs
}

// Created is what CreateTunnels did.
type Created struct {
	Created  []store.Tunnel
	Existing []store.Tunnel
	Skipped  []Skip
}

// CreateTunnels creates the tunnels of a request in st (one transaction):
// existing WAN pairs are reported, not duplicated; each new tunnel gets the
// smallest free number, SPIs unique among its receiver's and fresh keys.
// o must be loaded from st. A number taken by a concurrent request makes
// the store answer store.ErrConflict: retry the whole transaction.
func CreateTunnels(ctx context.Context, st store.Store, s *auth.Sealer, o *Org, req TunnelRequest, now time.Time) (Created, error) {
	var res Created
	transform, err := NormTransform(req.Transform)
	if err != nil {
		return res, err
	}
	pairs, err := Expand(o, req)
	if err != nil {
		return res, err
	}
	existing := map[Link]store.Tunnel{}
	for _, t := range o.Tunnels {
		existing[Link{t.DeviceA, t.InterfaceA, t.DeviceB, t.InterfaceB, ""}] = t
	}
	keys, errs := OpenTunnels(s, o.Tunnels)
	if len(errs) > 0 {
		return res, fmt.Errorf("opening tunnel keys (was the seal key replaced?): %w", errors.Join(errs...))
	}
	inbound := map[string]map[uint32]bool{}
	spis := func(dev string) map[uint32]bool {
		if inbound[dev] == nil {
			inbound[dev] = InboundSPIs(dev, keys)
		}
		return inbound[dev]
	}
	used, err := st.TunnelNumbers(ctx, o.Org.ID)
	if err != nil {
		return res, err
	}
	taken := map[int]bool{}
	for _, n := range used {
		taken[n] = true
	}
	next := 1
	for _, p := range pairs {
		links, reason := Links(o, p, req.Labels)
		if len(links) == 0 {
			res.Skipped = append(res.Skipped, Skip{DeviceA: p.A, DeviceB: p.B, Reason: reason})
			continue
		}
		for _, l := range links {
			key := l
			key.LabelID = ""
			if t, ok := existing[key]; ok {
				res.Existing = append(res.Existing, t)
				continue
			}
			for taken[next] {
				next++
			}
			if next > Capacity(o.Org.TunnelRange) {
				return res, fieldErr("devices", "%s (%s holds %d tunnels): delete tunnels or use a larger range", ErrRangeFull, tunnelRange(o.Org.TunnelRange), Capacity(o.Org.TunnelRange))
			}
			kp, err := NewKeyPair(transform, spis(l.DeviceA), spis(l.DeviceB))
			if err != nil {
				return res, err
			}
			t := store.Tunnel{ID: uuid.NewString(), OrgID: o.Org.ID, Number: next, DeviceA: l.DeviceA, InterfaceA: l.InterfaceA,
				DeviceB: l.DeviceB, InterfaceB: l.InterfaceB, LabelID: l.LabelID, Transform: transform,
				KeysRotatedAt: now.UTC(), CreatedAt: now.UTC(), UpdatedAt: now.UTC()}
			if err := SealKeys(s, &t, Keys{Current: kp}); err != nil {
				return res, err
			}
			if err := st.CreateTunnel(ctx, &t); err != nil {
				return res, fmt.Errorf("creating tunnel %d: %w", t.Number, err)
			}
			taken[next] = true
			existing[key] = t
			res.Created = append(res.Created, t)
		}
	}
	return res, nil
}

// StartRotations begins a key rotation (phase 1) of the given tunnels of
// o, which must be loaded from st; tunnels already rotating are left as
// they are. It returns the tunnels it started, as stored.
func StartRotations(ctx context.Context, st store.Store, s *auth.Sealer, o *Org, ids []string, now time.Time) ([]store.Tunnel, error) {
	keys, errs := OpenTunnels(s, o.Tunnels)
	byID := map[string]int{}
	for i, k := range keys {
		byID[k.ID] = i
	}
	var out []store.Tunnel
	for _, id := range ids {
		i, ok := byID[id]
		if !ok {
			if len(errs) > 0 {
				return out, fmt.Errorf("opening tunnel keys: %w", errors.Join(errs...))
			}
			return out, fmt.Errorf("tunnel %s: %w", id, store.ErrNotFound)
		}
		t := &keys[i]
		if t.RotationPhase != "" {
			continue
		}
		if err := BeginRotation(t, InboundSPIs(t.DeviceA, keys), InboundSPIs(t.DeviceB, keys), now); err != nil {
			return out, err
		}
		if err := SealKeys(s, &t.Tunnel, t.Keys); err != nil {
			return out, err
		}
		if err := st.UpdateTunnelKeys(ctx, &t.Tunnel); err != nil {
			return out, err
		}
		out = append(out, t.Tunnel)
	}
	return out, nil
}

// FinishRotationOf completes the rotation of one tunnel (phase 2) in st.
func FinishRotationOf(ctx context.Context, st store.Store, s *auth.Sealer, t store.Tunnel, now time.Time) (store.Tunnel, error) {
	k, err := OpenKeys(s, t)
	if err != nil {
		return t, err
	}
	tk := TunnelKeys{Tunnel: t, Keys: k}
	FinishRotation(&tk, now)
	if err := SealKeys(s, &tk.Tunnel, tk.Keys); err != nil {
		return t, err
	}
	if err := st.UpdateTunnelKeys(ctx, &tk.Tunnel); err != nil {
		return t, err
	}
	return tk.Tunnel, nil
}
