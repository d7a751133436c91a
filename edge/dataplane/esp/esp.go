// Package esp implements the Encapsulating Security Payload (RFC 4303) for
// the Trellis data plane, with two transforms:
//
//   - AES-128-GCM with a 16-byte ICV (RFC 4106): 20 bytes of key material
//     (16-byte AES key followed by the 4-byte salt), an 8-byte explicit IV,
//     and SPI plus sequence number (plus the ESN high half, RFC 4106 §5) as
//     additional authenticated data.
//   - AES-128-CBC (RFC 3602) with HMAC-SHA-256-128 (RFC 4868): a 16-byte
//     encryption key, a 32-byte authentication key and a 16-byte IV.
//
// Extended (64-bit) sequence numbers are supported (RFC 4303 §2.2.1): only
// the low 32 bits travel on the wire, the receiver infers the high half from
// its anti-replay window. Without ESN an outbound SA refuses to wrap and must
// be rekeyed before 2^32 packets.
//
// Seal and Open work in place on caller-owned buffers and do not allocate.
package esp

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"math"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/trellis-sdwan/trellis/edge/dataplane/replay"
)

// Transform is an ESP encryption/integrity combination.
type Transform uint8

// Supported transforms.
const (
	AESGCM128          Transform = iota + 1 // AES-128-GCM, 16-byte ICV (RFC 4106)
	AESCBC128SHA256128                      // AES-128-CBC + HMAC-SHA-256-128 (RFC 3602, RFC 4868)
)

// String returns the configuration name of the transform.
func (t Transform) String() string {
	switch t {
	case AESGCM128:
		return "aes128gcm16"
	case AESCBC128SHA256128:
		return "aes128cbc-sha256"
	}
	return fmt.Sprintf("transform(%d)", uint8(t))
}

// ParseTransform parses a transform name as used in configuration files.
// The empty string selects the default, AES-128-GCM.
func ParseTransform(s string) (Transform, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "", "aes128gcm16", "aes-128-gcm", "aes128gcm":
		return AESGCM128, nil
	case "aes128cbc-sha256", "aes-128-cbc-hmac-sha-256-128", "aes128cbc-hmac-sha256":
		return AESCBC128SHA256128, nil
	}
	return 0, fmt.Errorf("unknown ESP transform %q: use \"aes128gcm16\" (default) or \"aes128cbc-sha256\"", s)
}

// Sizes of the fixed parts of an ESP packet.
const (
	HeaderLen     = 8  // SPI + sequence number
	ICVLen        = 16 // both transforms use a 16-byte ICV
	gcmIVLen      = 8
	cbcIVLen      = aes.BlockSize
	gcmKeyLen     = 16 + 4 // AES-128 key + salt
	cbcKeyLen     = 16
	cbcAuthKeyLen = 32
)

// Errors returned by Seal and Open. Callers count drops by these.
var (
	ErrAuth         = errors.New("esp: authentication failed")
	ErrReplay       = errors.New("esp: replayed or too old sequence number")
	ErrMalformed    = errors.New("esp: malformed packet")
	ErrSeqExhausted = errors.New("esp: sequence number space exhausted, rekey needed")
	ErrShortBuffer  = errors.New("esp: buffer too small")
)

// Config describes one security association.
type Config struct {
	SPI       uint32
	Transform Transform
	// EncKey is the encryption key material: for AES-128-GCM 20 bytes
	// (key and salt, RFC 4106 §8.1), for AES-128-CBC 16 bytes.
	EncKey []byte
	// AuthKey is the HMAC-SHA-256 key (32 bytes) for AES-128-CBC; it must
	// be empty for AES-128-GCM.
	AuthKey []byte
	// ESN enables 64-bit extended sequence numbers.
	ESN bool
}

// Validate checks the configuration and says what is wrong.
func (c Config) Validate() error {
	if c.SPI < 256 {
		return fmt.Errorf("SPI %d is reserved (RFC 4303 §2.1): use a value of 256 or more", c.SPI)
	}
	switch c.Transform {
	case AESGCM128:
		if len(c.EncKey) != gcmKeyLen {
			return fmt.Errorf("SPI %#x: %s needs %d bytes of key material (16-byte key + 4-byte salt), got %d", c.SPI, c.Transform, gcmKeyLen, len(c.EncKey))
		}
		if len(c.AuthKey) != 0 {
			return fmt.Errorf("SPI %#x: %s is an AEAD and takes no authentication key", c.SPI, c.Transform)
		}
	case AESCBC128SHA256128:
		if len(c.EncKey) != cbcKeyLen {
			return fmt.Errorf("SPI %#x: %s needs a %d-byte encryption key, got %d", c.SPI, c.Transform, cbcKeyLen, len(c.EncKey))
		}
		if len(c.AuthKey) != cbcAuthKeyLen {
			return fmt.Errorf("SPI %#x: %s needs a %d-byte authentication key, got %d", c.SPI, c.Transform, cbcAuthKeyLen, len(c.AuthKey))
		}
	default:
		return fmt.Errorf("SPI %#x: unsupported transform %v", c.SPI, c.Transform)
	}
	return nil
}

// Equal reports whether two configurations describe the same SA.
func (c Config) Equal(o Config) bool {
	return c.SPI == o.SPI && c.Transform == o.Transform && c.ESN == o.ESN &&
		subtle.ConstantTimeCompare(c.EncKey, o.EncKey) == 1 &&
		subtle.ConstantTimeCompare(c.AuthKey, o.AuthKey) == 1 &&
		len(c.EncKey) == len(o.EncKey) && len(c.AuthKey) == len(o.AuthKey)
}

// SA is one direction of a security association. As an outbound SA, Seal
// may be called from several goroutines. As an inbound SA, Open must be
// called from one goroutine at a time (it owns the anti-replay window).
type SA struct {
	spi   uint32
	t     Transform
	esn   bool
	ivLen int
	align int

	aead  cipher.AEAD  // GCM
	salt  [4]byte      // GCM
	block cipher.Block // CBC
	pool  sync.Pool    // *scratch

	authKey []byte
	// ivBase is random per SA instance: IV = ivBase + sequence number, so
	// that IVs never repeat even if an SA's key is reused after a restart
	// (which restarts the sequence numbers).
	ivBase uint64

	seq    atomic.Uint64 // outbound: last sequence number used
	window replay.Window // inbound
}

// scratch is per-goroutine working state, recycled through the SA's pool so
// that the hot path does not allocate.
type scratch struct {
	nonce [12]byte
	aad   [12]byte
	iv    [16]byte
	ctr   [16]byte
	sum   [sha256.Size]byte
	mac   hash.Hash
	enc   cipher.BlockMode
	dec   cipher.BlockMode
}

type ivSetter interface{ SetIV([]byte) }

// New creates an SA from its configuration.
func New(c Config) (*SA, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	sa := &SA{spi: c.SPI, t: c.Transform, esn: c.ESN}
	var rb [8]byte
	if _, err := rand.Read(rb[:]); err != nil {
		return nil, fmt.Errorf("seeding the IV generator: %w", err)
	}
	sa.ivBase = binary.BigEndian.Uint64(rb[:])
	switch c.Transform {
	case AESGCM128:
		b, err := aes.NewCipher(c.EncKey[:16])
		if err != nil {
			return nil, fmt.Errorf("creating AES cipher: %w", err)
		}
		sa.aead, err = cipher.NewGCM(b)
		if err != nil {
			return nil, fmt.Errorf("creating AES-GCM: %w", err)
		}
		copy(sa.salt[:], c.EncKey[16:])
		sa.ivLen, sa.align = gcmIVLen, 4
	case AESCBC128SHA256128:
		b, err := aes.NewCipher(c.EncKey)
		if err != nil {
			return nil, fmt.Errorf("creating AES cipher: %w", err)
		}
		sa.block = b
		sa.authKey = append([]byte(nil), c.AuthKey...)
		sa.ivLen, sa.align = cbcIVLen, aes.BlockSize
	}
	sa.pool.New = func() any {
		s := &scratch{}
		if sa.t == AESCBC128SHA256128 {
			s.mac = hmac.New(sha256.New, sa.authKey)
			s.enc = cipher.NewCBCEncrypter(sa.block, s.iv[:])
			s.dec = cipher.NewCBCDecrypter(sa.block, s.iv[:])
		}
		return s
	}
	return sa, nil
}

// SPI returns the security parameter index.
func (sa *SA) SPI() uint32 { return sa.spi }

// Transform returns the SA's transform.
func (sa *SA) Transform() Transform { return sa.t }

// PrefixLen is the number of bytes before the payload: ESP header and IV.
func (sa *SA) PrefixLen() int { return HeaderLen + sa.ivLen }

// SuffixLen returns the number of bytes Seal appends after a payload of
// payloadLen bytes: padding, pad length, next header and ICV.
func (sa *SA) SuffixLen(payloadLen int) int {
	return padLen(payloadLen, sa.align) + 2 + ICVLen
}

// MaxSuffixLen is the largest SuffixLen for any payload length.
func (sa *SA) MaxSuffixLen() int { return sa.align - 1 + 2 + ICVLen }

// Overhead returns PrefixLen + SuffixLen for a payload of n bytes.
func (sa *SA) Overhead(n int) int { return sa.PrefixLen() + sa.SuffixLen(n) }

// MaxPayload returns the largest payload that fits in an ESP packet of at
// most n bytes.
func (sa *SA) MaxPayload(n int) int {
	ct := n - sa.PrefixLen() - ICVLen
	ct -= ct % sa.align
	return ct - 2
}

// SentSeq returns the last outbound sequence number used.
func (sa *SA) SentSeq() uint64 { return sa.seq.Load() }

// SetSentSeq sets the last outbound sequence number used (for tests and for
// restoring state).
func (sa *SA) SetSentSeq(n uint64) { sa.seq.Store(n) }

// ReplayTop returns the highest authenticated inbound sequence number.
func (sa *SA) ReplayTop() uint64 { return sa.window.Top() }

func padLen(payloadLen, align int) int {
	return (align - (payloadLen+2)%align) % align
}

// PeekSPI returns the SPI of an ESP packet.
func PeekSPI(b []byte) (uint32, bool) {
	if len(b) < HeaderLen {
		return 0, false
	}
	return binary.BigEndian.Uint32(b), true
}

// Seal builds an ESP packet in place. b[PrefixLen():PrefixLen()+payloadLen]
// holds the payload; Seal writes the header and IV before it and padding,
// trailer and ICV after it, and returns the total ESP length. len(b) must be
// at least PrefixLen()+payloadLen+SuffixLen(payloadLen).
func (sa *SA) Seal(b []byte, payloadLen int, nextHeader byte) (int, error) {
	pre := sa.PrefixLen()
	pad := padLen(payloadLen, sa.align)
	ctLen := payloadLen + pad + 2
	total := pre + ctLen + ICVLen
	if payloadLen < 0 || len(b) < total {
		return 0, ErrShortBuffer
	}
	seq := sa.seq.Add(1)
	if seq == 0 { // the 64-bit space wrapped: stay exhausted
		sa.seq.Store(math.MaxUint64)
		return 0, ErrSeqExhausted
	}
	if !sa.esn && seq > math.MaxUint32 {
		return 0, ErrSeqExhausted
	}
	binary.BigEndian.PutUint32(b[0:4], sa.spi)
	binary.BigEndian.PutUint32(b[4:8], uint32(seq))
	trailer := b[pre+payloadLen : pre+ctLen]
	for i := 0; i < pad; i++ {
		trailer[i] = byte(i + 1) // RFC 4303 §2.4 default padding
	}
	trailer[pad] = byte(pad)
	trailer[pad+1] = nextHeader

	s := sa.pool.Get().(*scratch)
	defer sa.pool.Put(s)
	switch sa.t {
	case AESGCM128:
		binary.BigEndian.PutUint64(b[8:16], sa.ivBase+seq) // unique per key (RFC 4106 §3.1)
		copy(s.nonce[:4], sa.salt[:])
		copy(s.nonce[4:], b[8:16])
		aad := sa.aad(s, b, seq)
		sa.aead.Seal(b[pre:pre], s.nonce[:], b[pre:pre+ctLen], aad)
	case AESCBC128SHA256128:
		// Unpredictable IV: a unique counter encrypted under the SA key
		// (NIST SP 800-38A Appendix C).
		clear(s.ctr[:])
		binary.BigEndian.PutUint64(s.ctr[:8], sa.ivBase+seq)
		s.ctr[8] = 0x80
		sa.block.Encrypt(b[8:24], s.ctr[:])
		s.enc.(ivSetter).SetIV(b[8:24])
		s.enc.CryptBlocks(b[pre:pre+ctLen], b[pre:pre+ctLen])
		sa.icv(s, b[:pre+ctLen], seq)
		copy(b[pre+ctLen:total], s.sum[:ICVLen])
	}
	return total, nil
}

func (sa *SA) aad(s *scratch, b []byte, seq uint64) []byte {
	if !sa.esn {
		return b[:8]
	}
	copy(s.aad[:4], b[:4])
	binary.BigEndian.PutUint32(s.aad[4:8], uint32(seq>>32))
	copy(s.aad[8:12], b[4:8])
	return s.aad[:]
}

// icv computes HMAC-SHA-256 over the authenticated part, appending the ESN
// high half when ESN is on (RFC 4303 §2.2.1), into s.sum.
func (sa *SA) icv(s *scratch, authed []byte, seq uint64) {
	s.mac.Reset()
	s.mac.Write(authed)
	if sa.esn {
		binary.BigEndian.PutUint32(s.ctr[:4], uint32(seq>>32))
		s.mac.Write(s.ctr[:4])
	}
	s.mac.Sum(s.sum[:0])
}

// Open authenticates and decrypts an ESP packet in place, enforcing the
// anti-replay window. It returns the payload (a sub-slice of b) and the next
// header value. The SPI is not checked: the caller found the SA by it.
func (sa *SA) Open(b []byte) (payload []byte, nextHeader byte, err error) {
	pre := sa.PrefixLen()
	if len(b) < pre+sa.align+ICVLen {
		return nil, 0, ErrMalformed
	}
	ctLen := len(b) - pre - ICVLen
	if ctLen%sa.align != 0 {
		return nil, 0, ErrMalformed
	}
	low := binary.BigEndian.Uint32(b[4:8])
	seq := uint64(low)
	if sa.esn {
		seq = sa.window.Infer(low)
	}
	if !sa.window.Check(seq) {
		return nil, 0, ErrReplay
	}
	s := sa.pool.Get().(*scratch)
	defer sa.pool.Put(s)
	ct := b[pre : pre+ctLen]
	switch sa.t {
	case AESGCM128:
		copy(s.nonce[:4], sa.salt[:])
		copy(s.nonce[4:], b[8:16])
		aad := sa.aad(s, b, seq)
		if _, err := sa.aead.Open(ct[:0], s.nonce[:], b[pre:], aad); err != nil {
			return nil, 0, ErrAuth
		}
	case AESCBC128SHA256128:
		sa.icv(s, b[:pre+ctLen], seq)
		if !hmac.Equal(s.sum[:ICVLen], b[pre+ctLen:]) {
			return nil, 0, ErrAuth
		}
		s.dec.(ivSetter).SetIV(b[8:24])
		s.dec.CryptBlocks(ct, ct)
	}
	sa.window.Accept(seq)
	pad := int(ct[ctLen-2])
	if pad+2 > ctLen {
		return nil, 0, ErrMalformed
	}
	n := ctLen - 2 - pad
	for i := 0; i < pad; i++ {
		if ct[n+i] != byte(i+1) {
			return nil, 0, ErrMalformed
		}
	}
	return ct[:n], ct[ctLen-1], nil
}
