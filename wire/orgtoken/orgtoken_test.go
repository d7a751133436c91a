package orgtoken

import (
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

var fp = strings.Repeat("ab", 32)

func sample() Payload {
	return Payload{TID: "tok-1", Org: "org-1", URL: "https://manage.example:8443", FP: fp, IAT: 1_800_000_000}
}

func TestSignParseVerify(t *testing.T) {
	pub, priv, _ := ed25519.GenerateKey(nil)
	text, err := Sign(sample(), priv)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(text, "trellis1.") || strings.ContainsAny(text, "+/=") {
		t.Fatalf("not base64url: %q", text)
	}
	p, err := ParseVerify(text+"\n", pub)
	if err != nil {
		t.Fatal(err)
	}
	want := sample()
	want.V = 1
	if p != want {
		t.Fatalf("payload %+v, want %+v", p, want)
	}
	otherPub, _, _ := ed25519.GenerateKey(nil)
	if _, err := ParseVerify(text, otherPub); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("other key: %v", err)
	}
}

func TestTampered(t *testing.T) {
	pub, priv, _ := ed25519.GenerateKey(nil)
	text, _ := Sign(sample(), priv)
	parts := strings.Split(text, ".")
	p := sample()
	p.V, p.Org = 1, "org-2"
	js, _ := json.Marshal(p)
	forged := parts[0] + "." + enc.EncodeToString(js) + "." + parts[2]
	if _, err := ParseVerify(forged, pub); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("forged payload: %v", err)
	}
	p.V = 2
	js, _ = json.Marshal(p)
	if _, err := Parse(parts[0] + "." + enc.EncodeToString(js) + "." + parts[2]); !errors.Is(err, ErrVersion) {
		t.Fatalf("v2 payload: %v", err)
	}
	if _, err := Parse("trellis2." + parts[1] + "." + parts[2]); !errors.Is(err, ErrVersion) {
		t.Fatalf("trellis2 prefix: %v", err)
	}
}

func TestMalformed(t *testing.T) {
	_, priv, _ := ed25519.GenerateKey(nil)
	good, _ := Sign(sample(), priv)
	parts := strings.Split(good, ".")
	bad := map[string]string{
		"empty":         "",
		"two parts":     parts[0] + "." + parts[1],
		"four parts":    good + ".x",
		"wrong prefix":  "foo." + parts[1] + "." + parts[2],
		"payload b64":   parts[0] + ".!!!." + parts[2],
		"padded b64":    parts[0] + "." + parts[1] + "==." + parts[2],
		"short sig":     parts[0] + "." + parts[1] + "." + parts[2][:10],
		"not json":      parts[0] + "." + enc.EncodeToString([]byte("hello")) + "." + parts[2],
		"unknown field": parts[0] + "." + enc.EncodeToString([]byte(`{"v":1,"tid":"a","org":"b","url":"https://x","x":1}`)) + "." + parts[2],
		"no org":        parts[0] + "." + enc.EncodeToString([]byte(`{"v":1,"tid":"a","url":"https://x"}`)) + "." + parts[2],
		"bad url":       parts[0] + "." + enc.EncodeToString([]byte(`{"v":1,"tid":"a","org":"b","url":"x"}`)) + "." + parts[2],
		"bad fp":        parts[0] + "." + enc.EncodeToString([]byte(`{"v":1,"tid":"a","org":"b","url":"https://x","fp":"zz"}`)) + "." + parts[2],
		"trailing":      parts[0] + "." + enc.EncodeToString([]byte(`{"v":1,"tid":"a","org":"b","url":"https://x"}{}`)) + "." + parts[2],
		"too long":      strings.Repeat("a", MaxLen+1),
	}
	for name, text := range bad {
		if _, err := Parse(text); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: got %v, want ErrMalformed", name, err)
		}
	}
	if _, err := Sign(Payload{Org: "o", URL: "https://x"}, priv); err == nil {
		t.Error("Sign accepted payload without token id")
	}
}

func FuzzParse(f *testing.F) {
	pub, priv, _ := ed25519.GenerateKey(nil)
	good, _ := Sign(sample(), priv)
	f.Add(good)
	f.Add("trellis1..")
	f.Add("trellis1.e30.AAAA")
	f.Fuzz(func(t *testing.T, s string) {
		tok, err := Parse(s)
		if err != nil {
			if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrVersion) {
				t.Fatalf("Parse error not classified: %v", err)
			}
			return
		}
		if err := tok.Payload.Validate(); err != nil {
			t.Fatalf("Parse returned invalid payload: %v", err)
		}
		// Only the exact signed bytes of our token can verify.
		if tok.Verify(pub) == nil && string(tok.signed) != good[:strings.LastIndex(good, ".")] {
			t.Fatalf("forged token verified: %q", s)
		}
	})
}
