package natprobe

import (
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"github.com/trellis-sdwan/trellis/wire/devproto"
)

func TestOneLine(t *testing.T) {
	tests := []struct {
		name, in, want string
		max            int
	}{
		{"plain", "no STUN server answered", "no STUN server answered", 512},
		{"newline", "read udp 192.168.1.2:4789:\ni/o timeout\n", "read udp 192.168.1.2:4789: i/o timeout", 512},
		{"crlf and tabs", "a\r\n\tb", "a b", 512},
		{"controls dropped", "a\x00b\x1bc\x7f", "abc", 512},
		{"invalid utf-8 dropped", "a\xffb", "ab", 512},
		{"leading and trailing space", "\n  x  \n", "x", 512},
		{"cut", "abcdef", "abc", 3},
		{"cut on a rune boundary", "aé", "a", 2},
		{"empty", "", "", 512},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := OneLine(tc.in, tc.max); got != tc.want {
				t.Fatalf("OneLine(%q, %d) = %q, want %q", tc.in, tc.max, got, tc.want)
			}
		})
	}
}

// FuzzOneLine: whatever goes in, what comes out is one printable line of
// at most MaxText bytes.
func FuzzOneLine(f *testing.F) {
	f.Add("x\ny")
	f.Add(strings.Repeat("é\n", 400))
	f.Fuzz(func(t *testing.T, s string) {
		out := OneLine(s, MaxText)
		if len(out) > MaxText || !utf8.ValidString(out) {
			t.Fatalf("OneLine(%q) = %q: too long or invalid", s, out)
		}
		for _, r := range out {
			if !unicode.IsPrint(r) {
				t.Fatalf("OneLine(%q) = %q: %q not printable", s, out, r)
			}
		}
	})
}

func TestPublicSanitizesText(t *testing.T) {
	r := Result{NAT: devproto.NATBlocked, Server: "stun\n:3478", Err: "first line\nsecond line" + strings.Repeat("x", 600)}
	p := r.Public()
	if strings.ContainsAny(p.Error, "\r\n") || len(p.Error) > MaxText || !strings.HasPrefix(p.Error, "first line second line") {
		t.Fatalf("error %q: want one line of at most %d bytes", p.Error, MaxText)
	}
	if p.Server != "stun :3478" {
		t.Fatalf("server %q", p.Server)
	}
}
