package network

import (
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/trellis-sdwan/trellis/manage/auth"
	"github.com/trellis-sdwan/trellis/manage/store"
	"github.com/trellis-sdwan/trellis/wire/devproto"
)

// MaxTunnelNumber is the largest tunnel number (the VxLAN VNI has 24 bits).
const MaxTunnelNumber = 1<<24 - 1

// PhaseInbound is Tunnel.RotationPhase while new inbound SAs are out and
// senders still use the current ones.
const PhaseInbound = "inbound"

// SealPurpose binds sealed tunnel keys to their tunnel.
func SealPurpose(tunnelID string) string { return "tunnel-keys:" + tunnelID }

// ErrRangeFull is returned when the tunnel range has no free /31.
var ErrRangeFull = errors.New("the organization's tunnel range has no free /31 left")

// Capacity is how many tunnels (/31 pairs) a tunnel range holds.
func Capacity(cidr string) int {
	p := tunnelRange(cidr)
	n := 1 << (32 - p.Bits() - 1)
	return min(n, MaxTunnelNumber)
}

// FreeNumber returns the smallest tunnel number >= 1 not in used
// (ascending), or ErrRangeFull when it would not fit the range.
func FreeNumber(used []int, cidr string) (int, error) {
	n := 1
	for _, u := range used {
		if u == n {
			n++
		} else if u > n {
			break
		}
	}
	if n > Capacity(cidr) {
		return 0, fmt.Errorf("%w (%s holds %d tunnels): delete tunnels or use a larger range", ErrRangeFull, tunnelRange(cidr), Capacity(cidr))
	}
	return n, nil
}

// Overlays returns the /31 ends of tunnel number n: base+2(n-1) for device
// A, the next address for B.
func Overlays(cidr string, n int) (a, b netip.Addr, err error) {
	if n < 1 || n > Capacity(cidr) {
		return a, b, fmt.Errorf("tunnel number %d does not fit the tunnel range %s", n, tunnelRange(cidr))
	}
	p := tunnelRange(cidr)
	base := p.Addr().As4()
	v := binary.BigEndian.Uint32(base[:]) + uint32(2*(n-1))
	var x [4]byte
	binary.BigEndian.PutUint32(x[:], v)
	a = netip.AddrFrom4(x)
	return a, a.Next(), nil
}

// SAKey is one direction's SPI and key material (hex).
type SAKey struct {
	SPI     uint32 `json:"spi"`
	Key     string `json:"key"`
	AuthKey string `json:"auth_key,omitempty"`
}

// KeyPair holds both directions: AB is sent by device A (A's outbound, B's
// inbound), BA the reverse.
type KeyPair struct {
	AB SAKey `json:"ab"`
	BA SAKey `json:"ba"`
}

// Keys are a tunnel's secrets, sealed at rest in Tunnel.SealedKeys: the
// current pair and, during a rotation, the next one.
type Keys struct {
	Current KeyPair  `json:"current"`
	Next    *KeyPair `json:"next,omitempty"`
}

// spis adds the SPIs device receives with to set.
func (k Keys) spis(asA bool, set map[uint32]bool) {
	add := func(p KeyPair) {
		if asA {
			set[p.BA.SPI] = true
		} else {
			set[p.AB.SPI] = true
		}
	}
	add(k.Current)
	if k.Next != nil {
		add(*k.Next)
	}
}

// InboundSPIs returns the SPIs deviceID receives with over the tunnels
// given (with their opened keys).
func InboundSPIs(deviceID string, tunnels []TunnelKeys) map[uint32]bool {
	set := map[uint32]bool{}
	for _, t := range tunnels {
		switch deviceID {
		case t.DeviceA:
			t.Keys.spis(true, set)
		case t.DeviceB:
			t.Keys.spis(false, set)
		}
	}
	return set
}

func newSAKey(transform string, used map[uint32]bool) (SAKey, error) {
	var k SAKey
	for {
		var b [4]byte
		if _, err := rand.Read(b[:]); err != nil {
			return k, fmt.Errorf("generating an SPI: %w", err)
		}
		spi := binary.BigEndian.Uint32(b[:])
		if spi >= 256 && !used[spi] {
			used[spi] = true
			k.SPI = spi
			break
		}
	}
	keyLen, authLen := 20, 0 // GCM: 16-byte key + 4-byte salt
	if transform == TransformCBC {
		keyLen, authLen = 16, 32
	}
	key := make([]byte, keyLen+authLen)
	if _, err := rand.Read(key); err != nil {
		return k, fmt.Errorf("generating a key: %w", err)
	}
	k.Key = hex.EncodeToString(key[:keyLen])
	if authLen > 0 {
		k.AuthKey = hex.EncodeToString(key[keyLen:])
	}
	return k, nil
}

// NewKeyPair generates both directions' SPIs and keys. inboundA and
// inboundB are the SPIs devices A and B already receive with; the new
// ones are added to them.
func NewKeyPair(transform string, inboundA, inboundB map[uint32]bool) (KeyPair, error) {
	ab, err := newSAKey(transform, inboundB)
	if err != nil {
		return KeyPair{}, err
	}
	ba, err := newSAKey(transform, inboundA)
	if err != nil {
		return KeyPair{}, err
	}
	return KeyPair{AB: ab, BA: ba}, nil
}

// SealKeys seals keys into t.SealedKeys (t.ID must be set).
func SealKeys(s *auth.Sealer, t *store.Tunnel, k Keys) error {
	if t.ID == "" {
		return errors.New("sealing tunnel keys: the tunnel has no id yet")
	}
	b, err := json.Marshal(k)
	if err != nil {
		return fmt.Errorf("encoding tunnel keys: %w", err)
	}
	t.SealedKeys = s.Seal(b, SealPurpose(t.ID))
	return nil
}

// OpenKeys opens a tunnel's sealed keys.
func OpenKeys(s *auth.Sealer, t store.Tunnel) (Keys, error) {
	var k Keys
	b, err := s.Open(t.SealedKeys, SealPurpose(t.ID))
	if err != nil {
		return k, fmt.Errorf("tunnel %d: %w", t.Number, err)
	}
	if err := json.Unmarshal(b, &k); err != nil {
		return k, fmt.Errorf("tunnel %d: decoding keys: %w", t.Number, err)
	}
	return k, nil
}

// TunnelKeys is a tunnel with its opened keys.
type TunnelKeys struct {
	store.Tunnel
	Keys Keys
}

// BeginRotation starts a rotation (phase 1): new keys become Next, both
// devices receive with them while still sending with the current ones.
// KeysRotatedAt marks when the phase began.
func BeginRotation(t *TunnelKeys, inboundA, inboundB map[uint32]bool, now time.Time) error {
	if t.RotationPhase != "" {
		return nil
	}
	next, err := NewKeyPair(t.Transform, inboundA, inboundB)
	if err != nil {
		return err
	}
	t.Keys.Next = &next
	t.RotationPhase = PhaseInbound
	t.KeysRotatedAt = now.UTC()
	return nil
}

// FinishRotation ends a rotation (phase 2): both devices send with the new
// keys, which become the current ones.
func FinishRotation(t *TunnelKeys, now time.Time) {
	if t.RotationPhase == "" || t.Keys.Next == nil {
		t.RotationPhase = ""
		t.Keys.Next = nil
		return
	}
	t.Keys.Current, t.Keys.Next = *t.Keys.Next, nil
	t.RotationPhase = ""
	t.KeyGeneration++
	t.KeysRotatedAt = now.UTC()
}

// SAs returns the outbound and inbound SAs of deviceID on the tunnel,
// following the rotation phase.
func SAs(t TunnelKeys, deviceID string) (out, in devproto.SA) {
	sa := func(k SAKey) devproto.SA {
		return devproto.SA{SPI: k.SPI, Transform: t.Transform, Key: k.Key, AuthKey: k.AuthKey}
	}
	cur, inPair := t.Keys.Current, t.Keys.Current
	if t.RotationPhase == PhaseInbound && t.Keys.Next != nil {
		inPair = *t.Keys.Next
	}
	if deviceID == t.DeviceA {
		return sa(cur.AB), sa(inPair.BA)
	}
	return sa(cur.BA), sa(inPair.AB)
}
