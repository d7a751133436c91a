package esp

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"testing"
)

func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatalf("bad hex %q: %v", s, err)
	}
	return b
}

// TestGCMVector checks the AES-128-GCM primitive with test case 4 of the
// GCM specification (McGrew & Viega), whose 12-byte nonce splits into the
// RFC 4106 salt (cafebabe) and explicit IV.
func TestGCMVector(t *testing.T) {
	key := unhex(t, "feffe9928665731c6d6a8f9467308308")
	nonce := unhex(t, "cafebabefacedbaddecaf888")
	pt := unhex(t, "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a721c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39")
	aad := unhex(t, "feedfacedeadbeeffeedfacedeadbeefabaddad2")
	want := unhex(t, "42831ec2217774244b7221b784d0d49ce3aa212f2c02a4e035c17e2329aca12e21d514b25466931c7d8f6a5aac84aa051ba30b396a0aac973d58e091"+
		"5bc94fbc3221a5db94fae95ae7121a47")
	b, _ := aes.NewCipher(key)
	g, _ := cipher.NewGCM(b)
	if got := g.Seal(nil, nonce, pt, aad); !bytes.Equal(got, want) {
		t.Fatalf("GCM test case 4:\n got %x\nwant %x", got, want)
	}
}

// TestHMACSHA256128Vectors checks HMAC-SHA-256 truncated to 128 bits with
// RFC 4231 test cases 1, 2 and 6 (the truncation is RFC 4868's).
func TestHMACSHA256128Vectors(t *testing.T) {
	tests := []struct{ name, key, data, want string }{
		{"RFC 4231 case 1", "0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b", hex.EncodeToString([]byte("Hi There")), "b0344c61d8db38535ca8afceaf0bf12b"},
		{"RFC 4231 case 2", hex.EncodeToString([]byte("Jefe")), hex.EncodeToString([]byte("what do ya want for nothing?")), "5bdcc146bf60754e6a042426089575c7"},
		{"RFC 4868 2.7.2.1 (32-byte key)", "0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b", hex.EncodeToString([]byte("Hi There")), "198a607eb44bfbc69903a0f1cf2bbdc5"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := hmac.New(sha256.New, unhex(t, tt.key))
			m.Write(unhex(t, tt.data))
			if got := hex.EncodeToString(m.Sum(nil)[:ICVLen]); got != tt.want {
				t.Fatalf("got %s, want %s", got, tt.want)
			}
		})
	}
}

// TestCBCVector checks AES-128-CBC with RFC 3602 case 1.
func TestCBCVector(t *testing.T) {
	b, _ := aes.NewCipher(unhex(t, "06a9214036b8a15b512e03d534120006"))
	out := []byte("Single block msg")
	cipher.NewCBCEncrypter(b, unhex(t, "3dafba429d9eb430b422da802c9fac41")).CryptBlocks(out, out)
	if want := unhex(t, "e353779c1079aeb82708942dbe77181a"); !bytes.Equal(out, want) {
		t.Fatalf("got %x, want %x", out, want)
	}
}

func gcmConfig(spi uint32, esn bool) Config {
	return Config{SPI: spi, Transform: AESGCM128, ESN: esn,
		EncKey: []byte("0123456789abcdefSALT")}
}

func cbcConfig(spi uint32, esn bool) Config {
	return Config{SPI: spi, Transform: AESCBC128SHA256128, ESN: esn,
		EncKey: []byte("0123456789abcdef"), AuthKey: []byte("authentication-key-of-32-bytes!!")}
}

func pair(t testing.TB, c Config) (out, in *SA) {
	t.Helper()
	out, err := New(c)
	if err != nil {
		t.Fatal(err)
	}
	in, err = New(c)
	if err != nil {
		t.Fatal(err)
	}
	return out, in
}

func seal(t testing.TB, sa *SA, payload []byte) []byte {
	t.Helper()
	b := make([]byte, sa.PrefixLen()+len(payload)+sa.MaxSuffixLen())
	copy(b[sa.PrefixLen():], payload)
	n, err := sa.Seal(b, len(payload), 47)
	if err != nil {
		t.Fatalf("Seal: %v", err)
	}
	if n != sa.Overhead(len(payload))+len(payload) {
		t.Fatalf("Seal returned %d, Overhead says %d", n, sa.Overhead(len(payload))+len(payload))
	}
	return b[:n]
}

var configs = []struct {
	name string
	cfg  func(spi uint32, esn bool) Config
}{{"gcm", gcmConfig}, {"cbc", cbcConfig}}

func TestRoundTrip(t *testing.T) {
	for _, c := range configs {
		for _, esn := range []bool{false, true} {
			out, in := pair(t, c.cfg(0x1234, esn))
			for n := 0; n < 300; n++ {
				payload := bytes.Repeat([]byte{byte(n)}, n)
				pkt := seal(t, out, payload)
				if len(pkt)%4 != 0 {
					t.Fatalf("%s: ESP length %d not 4-byte aligned", c.name, len(pkt))
				}
				if spi, _ := PeekSPI(pkt); spi != 0x1234 {
					t.Fatalf("SPI %#x", spi)
				}
				got, nh, err := in.Open(pkt)
				if err != nil {
					t.Fatalf("%s esn=%v len %d: Open: %v", c.name, esn, n, err)
				}
				if nh != 47 || !bytes.Equal(got, payload) {
					t.Fatalf("%s esn=%v len %d: payload mismatch", c.name, esn, n)
				}
			}
		}
	}
}

// TestCBCWireLayout recomputes the CBC+HMAC packet independently from its
// parts: the ICV is HMAC-SHA-256-128 over SPI|seq|IV|ciphertext (with the
// ESN high half appended) and the ciphertext decrypts with the carried IV.
func TestCBCWireLayout(t *testing.T) {
	for _, esn := range []bool{false, true} {
		c := cbcConfig(0x999, esn)
		out, _ := pair(t, c)
		hi := uint32(0)
		if esn {
			hi = 5
		}
		out.SetSentSeq(uint64(hi)<<32 | 77)
		payload := []byte("0123456789")
		pkt := seal(t, out, payload)
		if binary.BigEndian.Uint32(pkt[4:8]) != 78 {
			t.Fatalf("seq on wire %d, want low half 78", binary.BigEndian.Uint32(pkt[4:8]))
		}
		m := hmac.New(sha256.New, c.AuthKey)
		m.Write(pkt[:len(pkt)-ICVLen])
		if esn {
			m.Write([]byte{0, 0, 0, byte(hi)})
		}
		if !bytes.Equal(m.Sum(nil)[:ICVLen], pkt[len(pkt)-ICVLen:]) {
			t.Fatalf("esn=%v: ICV does not match HMAC-SHA-256-128", esn)
		}
		blk, _ := aes.NewCipher(c.EncKey)
		ct := append([]byte(nil), pkt[24:len(pkt)-ICVLen]...)
		cipher.NewCBCDecrypter(blk, pkt[8:24]).CryptBlocks(ct, ct)
		want := append(append([]byte(nil), payload...), 1, 2, 3, 4, 4, 47)
		if !bytes.Equal(ct, want) {
			t.Fatalf("plaintext %x, want %x", ct, want)
		}
	}
}

// TestGCMWireLayout checks RFC 4106 framing: nonce = salt|IV and
// AAD = SPI|seq, or SPI|seq-high|seq-low with ESN (RFC 4106 §5).
func TestGCMWireLayout(t *testing.T) {
	for _, esn := range []bool{false, true} {
		c := gcmConfig(0x4321, esn)
		out, _ := pair(t, c)
		if esn {
			out.SetSentSeq(3<<32 | 9)
		} else {
			out.SetSentSeq(9)
		}
		payload := []byte("abc")
		pkt := seal(t, out, payload)
		blk, _ := aes.NewCipher(c.EncKey[:16])
		g, _ := cipher.NewGCM(blk)
		nonce := append(append([]byte(nil), c.EncKey[16:]...), pkt[8:16]...)
		aad := pkt[:8]
		if esn {
			aad = []byte{0, 0, 0x43, 0x21, 0, 0, 0, 3, 0, 0, 0, 10}
		}
		pt, err := g.Open(nil, nonce, pkt[16:], aad)
		if err != nil {
			t.Fatalf("esn=%v: independent GCM open: %v", esn, err)
		}
		if want := []byte{'a', 'b', 'c', 1, 2, 3, 3, 47}; !bytes.Equal(pt, want) {
			t.Fatalf("plaintext %x, want %x", pt, want)
		}
	}
}

func TestDropped(t *testing.T) {
	for _, c := range configs {
		t.Run(c.name, func(t *testing.T) {
			out, in := pair(t, c.cfg(0x1000, true))
			_, wrong := pair(t, func() Config {
				x := c.cfg(0x1000, true)
				x.EncKey = bytes.Repeat([]byte{7}, len(x.EncKey))
				if x.AuthKey != nil {
					x.AuthKey = bytes.Repeat([]byte{7}, len(x.AuthKey))
				}
				return x
			}())
			payload := bytes.Repeat([]byte("x"), 100)
			good := seal(t, out, payload)
			tests := []struct {
				name string
				sa   *SA
				pkt  func() []byte
				want error
			}{
				{"wrong key", wrong, func() []byte { return clone(good) }, ErrAuth},
				{"flipped payload bit", in, func() []byte { p := clone(good); p[30] ^= 1; return p }, ErrAuth},
				{"flipped ICV bit", in, func() []byte { p := clone(good); p[len(p)-1] ^= 0x80; return p }, ErrAuth},
				{"flipped seq", in, func() []byte { p := clone(good); p[7] ^= 2; return p }, ErrAuth},
				{"flipped IV", in, func() []byte { p := clone(good); p[9] ^= 1; return p }, ErrAuth},
				{"truncated by one", in, func() []byte { return clone(good)[:len(good)-1] }, ErrMalformed},
				{"truncated by a block", in, func() []byte { return clone(good)[:len(good)-16] }, ErrAuth},
				{"header only", in, func() []byte { return clone(good)[:8] }, ErrMalformed},
				{"empty", in, func() []byte { return nil }, ErrMalformed},
				{"seq zero", in, func() []byte { p := clone(good); binary.BigEndian.PutUint32(p[4:], 0); return p }, ErrReplay},
			}
			for _, tt := range tests {
				if _, _, err := tt.sa.Open(tt.pkt()); !errors.Is(err, tt.want) {
					t.Errorf("%s: got %v, want %v", tt.name, err, tt.want)
				}
			}
			// Failed packets must not have moved the window: the good one
			// still opens, and only once.
			if _, _, err := in.Open(clone(good)); err != nil {
				t.Fatalf("good packet after tampered ones: %v", err)
			}
			if _, _, err := in.Open(clone(good)); !errors.Is(err, ErrReplay) {
				t.Fatalf("replayed packet: got %v, want ErrReplay", err)
			}
		})
	}
}

func clone(b []byte) []byte { return append([]byte(nil), b...) }

func TestReplayWindowThroughSA(t *testing.T) {
	out, in := pair(t, gcmConfig(0x2000, true))
	var pkts [][]byte
	for i := 0; i < 2100; i++ {
		pkts = append(pkts, seal(t, out, []byte{byte(i)}))
	}
	// Deliver the newest first, then everything older: only the last 1024
	// (the window) are accepted. With ESN, numbers below the window are
	// taken to belong to the next 2^32 subspace (RFC 4303 A.2.2) and so
	// fail authentication instead.
	if _, _, err := in.Open(clone(pkts[2099])); err != nil {
		t.Fatal(err)
	}
	accepted := 0
	for i := 2098; i >= 0; i-- {
		if _, _, err := in.Open(clone(pkts[i])); err == nil {
			accepted++
		} else if !errors.Is(err, ErrReplay) && !(i < 2100-1024 && errors.Is(err, ErrAuth)) {
			t.Fatalf("packet %d: %v", i, err)
		}
	}
	if accepted != 1023 {
		t.Fatalf("accepted %d older packets, want 1023 (window 1024)", accepted)
	}
}

func TestESNAcrossWrap(t *testing.T) {
	for _, c := range configs {
		out, in := pair(t, c.cfg(0x3000, true))
		out.SetSentSeq(1<<32 - 5)
		// Prime the receiver so that its window is near the wrap.
		first := seal(t, out, []byte("p"))
		if _, _, err := in.Open(first); err != nil {
			t.Fatal(err)
		}
		var pkts [][]byte
		for i := 0; i < 10; i++ {
			pkts = append(pkts, seal(t, out, []byte{byte(i)}))
		}
		// Reorder around the wrap.
		order := []int{1, 0, 5, 3, 4, 2, 9, 6, 8, 7}
		for _, i := range order {
			got, _, err := in.Open(clone(pkts[i]))
			if err != nil || got[0] != byte(i) {
				t.Fatalf("%s: packet %d across the wrap: %v", c.name, i, err)
			}
		}
		if in.ReplayTop() != 1<<32+6 {
			t.Fatalf("%s: top %#x, want %#x", c.name, in.ReplayTop(), uint64(1<<32+6))
		}
	}
}

// TestIVsDifferAcrossInstances: two instances of the same SA (as after a
// restart, which restarts sequence numbers) never send the same IV.
func TestIVsDifferAcrossInstances(t *testing.T) {
	for _, c := range configs {
		a, b := pair(t, c.cfg(0x600, true))
		pa, pb := seal(t, a, []byte("same")), seal(t, b, []byte("same"))
		if bytes.Equal(pa[4:8], pb[4:8]) && bytes.Equal(pa[8:a.PrefixLen()], pb[8:b.PrefixLen()]) {
			t.Fatalf("%s: same sequence number and same IV from two SA instances", c.name)
		}
		if bytes.Equal(pa, pb) {
			t.Fatalf("%s: identical packets from two SA instances", c.name)
		}
	}
}

func TestNoESNExhaustion(t *testing.T) {
	out, in := pair(t, gcmConfig(0x5000, false))
	out.SetSentSeq(1<<32 - 2)
	last := seal(t, out, []byte("last"))
	if binary.BigEndian.Uint32(last[4:]) != 1<<32-1 {
		t.Fatal("expected the last sequence number")
	}
	b := make([]byte, 100)
	for i := 0; i < 3; i++ {
		if _, err := out.Seal(b, 10, 47); !errors.Is(err, ErrSeqExhausted) {
			t.Fatalf("Seal after 2^32-1: %v, want ErrSeqExhausted", err)
		}
	}
	if _, _, err := in.Open(last); err != nil {
		t.Fatal(err)
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		c    Config
		ok   bool
	}{
		{"gcm ok", gcmConfig(300, true), true},
		{"cbc ok", cbcConfig(300, false), true},
		{"reserved spi", gcmConfig(255, true), false},
		{"gcm short key", Config{SPI: 300, Transform: AESGCM128, EncKey: make([]byte, 16)}, false},
		{"gcm with auth key", Config{SPI: 300, Transform: AESGCM128, EncKey: make([]byte, 20), AuthKey: make([]byte, 32)}, false},
		{"cbc missing auth", Config{SPI: 300, Transform: AESCBC128SHA256128, EncKey: make([]byte, 16)}, false},
		{"unknown transform", Config{SPI: 300, Transform: 9, EncKey: make([]byte, 16)}, false},
	}
	for _, tt := range tests {
		_, err := New(tt.c)
		if (err == nil) != tt.ok {
			t.Errorf("%s: err = %v, want ok=%v", tt.name, err, tt.ok)
		}
	}
}

func TestParseTransform(t *testing.T) {
	for in, want := range map[string]Transform{"": AESGCM128, "aes128gcm16": AESGCM128, "AES128CBC-SHA256": AESCBC128SHA256128} {
		got, err := ParseTransform(in)
		if err != nil || got != want {
			t.Errorf("ParseTransform(%q) = %v, %v", in, got, err)
		}
	}
	if _, err := ParseTransform("des"); err == nil {
		t.Error("unknown transform accepted")
	}
}

func TestMaxPayload(t *testing.T) {
	for _, c := range configs {
		sa, _ := New(c.cfg(0x100, true))
		for limit := 100; limit < 1500; limit += 7 {
			n := sa.MaxPayload(limit)
			if n+sa.Overhead(n) > limit || n+1+sa.Overhead(n+1) <= limit {
				t.Fatalf("%s: MaxPayload(%d) = %d is not the largest fitting payload", c.name, limit, n)
			}
		}
	}
}

func benchmarkSealOpen(b *testing.B, c Config, size int) {
	out, in := pair(b, c)
	buf := make([]byte, out.PrefixLen()+size+out.MaxSuffixLen())
	work := make([]byte, len(buf))
	b.SetBytes(int64(size))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		n, err := out.Seal(buf, size, 47)
		if err != nil {
			b.Fatal(err)
		}
		copy(work, buf[:n])
		if _, _, err := in.Open(work[:n]); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkSealOpenGCM1400(b *testing.B) { benchmarkSealOpen(b, gcmConfig(0x100, true), 1400) }
func BenchmarkSealOpenCBC1400(b *testing.B) { benchmarkSealOpen(b, cbcConfig(0x100, true), 1400) }

// A packet whose sequence number fell more than a window behind the
// highest one received (it was sealed early but sent late) is, with ESN,
// inferred to belong to the next 2^32 subspace (RFC 4303 Appendix A.2.2)
// and so fails authentication: the receiver counts it as an auth failure,
// not as a replay. This is why senders must transmit in sealing order.
func TestLateSealedPacketFailsAuthWithESN(t *testing.T) {
	for _, esn := range []bool{true, false} {
		c := Config{SPI: 0x1234, Transform: AESGCM128, EncKey: bytes.Repeat([]byte{7}, 20), ESN: esn}
		out, _ := New(c)
		in, _ := New(c)
		seal := func() []byte {
			b := make([]byte, out.PrefixLen()+100+out.MaxSuffixLen())
			n, err := out.Seal(b, 100, 47)
			if err != nil {
				t.Fatal(err)
			}
			return b[:n]
		}
		late := seal()
		for i := 0; i < 1100; i++ {
			if _, _, err := in.Open(seal()); err != nil {
				t.Fatal(err)
			}
		}
		_, _, err := in.Open(late)
		want := ErrReplay
		if esn {
			want = ErrAuth
		}
		if err != want {
			t.Errorf("esn %v: late packet: %v, want %v", esn, err, want)
		}
	}
}
