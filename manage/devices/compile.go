package devices

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"sort"

	"github.com/trellis-sdwan/trellis/manage/auth"
	"github.com/trellis-sdwan/trellis/manage/network"
	"github.com/trellis-sdwan/trellis/manage/policy"
	"github.com/trellis-sdwan/trellis/manage/store"
	"github.com/trellis-sdwan/trellis/wire/devproto"
)

// orgInputs is what every device of an organization shares in its desired
// document; loaded once per organization-wide recompilation (one paged
// query per kind: devices, labels, tunnels, static routes).
type orgInputs struct {
	org    store.Organization
	labels []devproto.Label
	net    *network.Compiler
	// keyErrs are tunnels whose keys could not be opened (left out).
	keyErrs []error
	// stun are the STUN servers every document names (Config.STUNServers).
	stun []string
	// pol compiles applications, policies, QoS and firewall (issue 8).
	pol *policy.Org
	// internet is the per-WAN Internet check in force: the organization's
	// own settings, else the server's default (nil: no checks).
	internet *devproto.InternetCheck
}

// loadOrgInputs loads what the devices of an organization share. With
// forDevice set and that device in no tunnel, only what its own document
// needs is loaded (organization, labels, its static routes): a device
// without tunnels connecting to a large organization costs a few queries,
// not a load of every device.
func loadOrgInputs(ctx context.Context, st store.Store, sealer *auth.Sealer, stun []string, check *devproto.InternetCheck, orgID, forDevice string) (*orgInputs, error) {
	var o *network.Org
	if forDevice != "" {
		p, err := st.ListTunnels(ctx, orgID, store.ListOptions{Limit: 1, Filter: map[string]string{"device_id": forDevice}})
		if err != nil {
			return nil, fmt.Errorf("listing tunnels: %w", err)
		}
		if p.Total == 0 {
			if o, err = loadLight(ctx, st, orgID, forDevice); err != nil {
				return nil, err
			}
		}
	}
	if o == nil {
		var err error
		if o, err = network.LoadOrg(ctx, st, orgID); err != nil {
			return nil, err
		}
	}
	in := &orgInputs{org: o.Org, labels: []devproto.Label{}, stun: append([]string{}, stun...)}
	for _, l := range o.Labels {
		in.labels = append(in.labels, devproto.Label{ID: l.ID, Name: l.Name, Color: l.Color, Type: l.Type})
	}
	sort.Slice(in.labels, func(i, j int) bool { return in.labels[i].ID < in.labels[j].ID })
	var (
		keys []network.TunnelKeys
		err  error
	)
	if sealer != nil {
		keys, in.keyErrs = network.OpenTunnels(sealer, o.Tunnels)
	} else if len(o.Tunnels) > 0 {
		in.keyErrs = []error{errors.New("no sealer: tunnel keys cannot be opened")}
	}
	in.net = network.NewCompiler(o, keys)
	if in.pol, err = policy.LoadOrg(ctx, st, orgID); err != nil {
		return nil, err
	}
	if in.internet, err = InternetCheckOf(ctx, st, orgID, check); err != nil {
		return nil, err
	}
	return in, nil
}

// InternetCheckOf is the Internet check in force for an organization: its
// own settings when it has some (no targets: none), else def (the server's
// default; nil: none). Settings stored by an older, laxer manage that no
// longer validate are left out rather than pushed to edges that would
// refuse the whole document.
func InternetCheckOf(ctx context.Context, st store.Store, orgID string, def *devproto.InternetCheck) (*devproto.InternetCheck, error) {
	c, err := st.GetInternetCheck(ctx, orgID)
	if errors.Is(err, store.ErrNotFound) {
		return network.InternetCheckInForce(def), nil
	}
	if err != nil {
		return nil, fmt.Errorf("loading the internet check settings: %w", err)
	}
	ic := devproto.InternetCheck{Targets: c.Targets, IntervalSeconds: c.IntervalSeconds, TimeoutMillis: c.TimeoutMillis, FailRounds: c.FailRounds}
	if network.ValidateInternetCheck(ic) != nil {
		return nil, nil
	}
	return network.InternetCheckInForce(&ic), nil
}

func loadLight(ctx context.Context, st store.Store, orgID, deviceID string) (*network.Org, error) {
	org, err := st.GetOrganization(ctx, orgID)
	if err != nil {
		return nil, err
	}
	o := &network.Org{Org: org}
	for off := 0; ; off += store.MaxListLimit {
		p, err := st.ListPathLabels(ctx, orgID, store.ListOptions{Limit: store.MaxListLimit, Offset: off, Sort: "id"})
		if err != nil {
			return nil, fmt.Errorf("listing path labels: %w", err)
		}
		o.Labels = append(o.Labels, p.Items...)
		if len(p.Items) < store.MaxListLimit {
			break
		}
	}
	for off := 0; ; off += store.MaxListLimit {
		p, err := st.ListStaticRoutes(ctx, orgID, store.ListOptions{Limit: store.MaxListLimit, Offset: off, Sort: "id",
			Filter: map[string]string{"device_id": deviceID}})
		if err != nil {
			return nil, fmt.Errorf("listing static routes: %w", err)
		}
		o.Routes = append(o.Routes, p.Items...)
		if len(p.Items) < store.MaxListLimit {
			break
		}
	}
	return o, nil
}

// Compile builds the desired document of one device: the organization's
// labels, the device's interfaces, DHCP servers and static routes, and its
// tunnels with the LAN prefixes routed through each (manage/network), its
// applications, path and breakout rules, QoS and firewall (manage/policy); it
// names no STUN server (the Service's documents name Config.STUNServers). Only
// approved devices are compiled, and tunnels only ever name approved
// peers: a pending device is in no tunnel. A change to what a part reads
// must call the API's OnDeviceChange hook (device, or "" for the
// organization). The Internet check is the organization's own (none
// without: Compile knows no server default).
func Compile(ctx context.Context, st store.Store, sealer *auth.Sealer, d store.Device) (devproto.Desired, error) {
	in, err := loadOrgInputs(ctx, st, sealer, nil, nil, d.OrgID, d.ID)
	if err != nil {
		return devproto.Desired{}, err
	}
	return compileWith(in, d), nil
}

func compileWith(in *orgInputs, d store.Device) devproto.Desired {
	p := in.net.Parts(&d)
	pp := in.pol.Parts(d)
	return devproto.Desired{
		DeviceID:    d.ID,
		OrgID:       d.OrgID,
		Name:        d.Name,
		Site:        d.Site,
		VxlanPort:   in.org.VxlanPort,
		STUNServers: append([]string{}, in.stun...),
		Labels:      append([]devproto.Label{}, in.labels...),
		Interfaces:  p.Interfaces,
		Routes:      p.Routes,
		Tunnels:     p.Tunnels,
		DHCPServers: p.DHCPServers,

		Applications:  pp.Applications,
		PathRules:     pp.PathRules,
		BreakoutRules: pp.BreakoutRules,
		QoS:           pp.QoS,
		WANQoS:        pp.WANQoS,
		Firewall:      pp.Firewall,

		InternetCheck: network.InternetCheckInForce(in.internet),
	}
}

// Encode returns the canonical JSON of a desired document and its version,
// the hex SHA-256 of those bytes. encoding/json writes struct fields in
// declaration order and map keys sorted, and the compiler sorts every list,
// so equal documents encode to equal bytes.
func Encode(doc devproto.Desired) (devproto.Config, error) {
	b, err := json.Marshal(doc)
	if err != nil {
		return devproto.Config{}, fmt.Errorf("encoding desired state: %w", err)
	}
	return devproto.Config{Version: Version(b), Doc: b}, nil
}

// Version is the version of a canonical document: hex SHA-256.
func Version(doc []byte) string {
	sum := sha256.Sum256(doc)
	return hex.EncodeToString(sum[:])
}
