package devices

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"sort"

	"github.com/trellis-sdwan/trellis/manage/store"
	"github.com/trellis-sdwan/trellis/wire/devproto"
)

// orgInputs is what every device of an organization shares in its desired
// document; loaded once per organization-wide recompilation.
type orgInputs struct {
	org    store.Organization
	labels []devproto.Label
}

func loadOrgInputs(ctx context.Context, st store.Store, orgID string) (*orgInputs, error) {
	org, err := st.GetOrganization(ctx, orgID)
	if err != nil {
		return nil, err
	}
	in := &orgInputs{org: org, labels: []devproto.Label{}}
	for off := 0; ; off += store.MaxListLimit {
		p, err := st.ListPathLabels(ctx, orgID, store.ListOptions{Limit: store.MaxListLimit, Offset: off, Sort: "id"})
		if err != nil {
			return nil, fmt.Errorf("listing path labels: %w", err)
		}
		for _, l := range p.Items {
			in.labels = append(in.labels, devproto.Label{ID: l.ID, Name: l.Name, Color: l.Color, Type: l.Type})
		}
		if len(p.Items) < store.MaxListLimit {
			break
		}
	}
	sort.Slice(in.labels, func(i, j int) bool { return in.labels[i].ID < in.labels[j].ID })
	return in, nil
}

// Compile builds the desired document of one device. Later issues add
// interfaces, routes and tunnels here: each is a function of the store that
// fills its part, sorted so the document is canonical. Only approved
// devices are compiled, and tunnels must only ever name approved peers:
// a pending device is in no tunnel. A change to what a part reads must
// call the API's OnDeviceChange hook (device, or "" for the organization).
func Compile(ctx context.Context, st store.Store, d store.Device) (devproto.Desired, error) {
	in, err := loadOrgInputs(ctx, st, d.OrgID)
	if err != nil {
		return devproto.Desired{}, err
	}
	return compileWith(in, d), nil
}

func compileWith(in *orgInputs, d store.Device) devproto.Desired {
	return devproto.Desired{
		DeviceID:    d.ID,
		OrgID:       d.OrgID,
		Name:        d.Name,
		Site:        d.Site,
		VxlanPort:   in.org.VxlanPort,
		Labels:      append([]devproto.Label{}, in.labels...),
		Interfaces:  []devproto.InterfaceConfig{},
		Routes:      []devproto.Route{},
		Tunnels:     []devproto.Tunnel{},
		DHCPServers: []devproto.DHCPServer{},
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
