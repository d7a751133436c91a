package api

import (
	"bytes"
	"encoding/base64"
	"image"
	"image/png"
	"net/http"
	"strings"
	"testing"

	"github.com/boombuler/barcode/qr"
)

// decodeQR decodes a "data:image/png;base64,..." QR code as qrDataURL
// draws it and returns its modules (true: dark), checking the layout on
// the way: a square image of whole modules, a white quiet zone of four
// modules, each module one flat colour.
func decodeQR(t *testing.T, dataURL string) [][]bool {
	t.Helper()
	b64, ok := strings.CutPrefix(dataURL, "data:image/png;base64,")
	if !ok {
		t.Fatalf("not a PNG data URL: %.40q", dataURL)
	}
	raw, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		t.Fatalf("base64: %v", err)
	}
	img, err := png.Decode(bytes.NewReader(raw))
	if err != nil {
		t.Fatalf("PNG: %v", err)
	}
	bd := img.Bounds()
	if bd.Dx() != bd.Dy() || bd.Dx()%qrModulePx != 0 {
		t.Fatalf("image %v: want a square of whole %d px modules", bd, qrModulePx)
	}
	n := bd.Dx()/qrModulePx - 2*qrQuietModules
	// Version 1 is 21 modules, every version adds 4, up to 177.
	if n < 21 || n > 177 || (n-21)%4 != 0 {
		t.Fatalf("%d modules across: not a QR code size", n)
	}
	dark := func(x, y int) bool { r, _, _, _ := img.At(bd.Min.X+x, bd.Min.Y+y).RGBA(); return r < 0x8000 }
	mods := make([][]bool, n)
	for my := -qrQuietModules; my < n+qrQuietModules; my++ {
		if my >= 0 && my < n {
			mods[my] = make([]bool, n)
		}
		for mx := -qrQuietModules; mx < n+qrQuietModules; mx++ {
			px, py := (mx+qrQuietModules)*qrModulePx, (my+qrQuietModules)*qrModulePx
			d := dark(px, py)
			for dy := 0; dy < qrModulePx; dy++ {
				for dx := 0; dx < qrModulePx; dx++ {
					if dark(px+dx, py+dy) != d {
						t.Fatalf("module (%d,%d) is not one colour", mx, my)
					}
				}
			}
			inside := mx >= 0 && mx < n && my >= 0 && my < n
			if !inside && d {
				t.Fatalf("quiet zone is dark at module (%d,%d)", mx, my)
			}
			if inside {
				mods[my][mx] = d
			}
		}
	}
	return mods
}

// checkFinders checks the three 7×7 finder patterns of a QR code: a dark
// ring, a light ring, a dark 3×3 core, at the top left, top right and
// bottom left.
func checkFinders(t *testing.T, mods [][]bool) {
	t.Helper()
	n := len(mods)
	for _, c := range [][2]int{{0, 0}, {n - 7, 0}, {0, n - 7}} {
		for y := 0; y < 7; y++ {
			for x := 0; x < 7; x++ {
				ring := max(qrAbs(x-3), qrAbs(y-3)) // 3 outer ring, 2 light ring, <=1 core
				want := ring != 2
				if mods[c[1]+y][c[0]+x] != want {
					t.Fatalf("finder pattern at (%d,%d): module (%d,%d) dark=%v", c[0], c[1], x, y, !want)
				}
			}
		}
	}
}

func qrAbs(x int) int {
	if x < 0 {
		return -x
	}
	return x
}

func TestQRDataURL(t *testing.T) {
	for _, tc := range []struct {
		name, content string
		wantErr       bool
	}{
		{"short", "otpauth://totp/T:a@b.c?secret=JBSWY3DPEHPK3PXP", false},
		{"typical", "otpauth://totp/Trellis:alice.liddell@example.com?algorithm=SHA1&digits=6&issuer=Trellis&period=30&secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ", false},
		{"too long for a QR code", "otpauth://totp/x?secret=" + strings.Repeat("A", 4000), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := qrDataURL(tc.content)
			if tc.wantErr {
				if err == nil {
					t.Fatal("no error")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			mods := decodeQR(t, got)
			checkFinders(t, mods)
			// The modules are those of the content's QR code.
			want, err := qr.Encode(tc.content, qr.M, qr.Auto)
			if err != nil {
				t.Fatal(err)
			}
			if want.Bounds().Dx() != len(mods) {
				t.Fatalf("%d modules, want %d", len(mods), want.Bounds().Dx())
			}
			for y := range mods {
				for x := range mods[y] {
					r, _, _, _ := want.At(x, y).RGBA()
					if mods[y][x] != (r == 0) {
						t.Fatalf("module (%d,%d) differs from the content's code", x, y)
					}
				}
			}
		})
	}
}

// TestTOTPEnrollQR: the enrollment answer carries the otpauth URL as a
// QR code that an authenticator can scan.
func TestTOTPEnrollQR(t *testing.T) {
	e := newEnv(t)
	w := e.world()
	r := e.must(http.StatusOK, "POST", "/auth/totp/enroll", w.aliceTok, nil)
	u := r.str("otpauth_url")
	if !strings.HasPrefix(u, "otpauth://totp/") || !strings.Contains(u, "secret="+r.str("secret")) {
		t.Fatalf("enroll: %s", r.raw)
	}
	mods := decodeQR(t, r.str("qr_png"))
	checkFinders(t, mods)
	want, err := qr.Encode(u, qr.M, qr.Auto)
	if err != nil {
		t.Fatal(err)
	}
	if want.Bounds() != image.Rect(0, 0, len(mods), len(mods)) {
		t.Fatalf("%d modules, want %v", len(mods), want.Bounds())
	}
	for y := range mods {
		for x := range mods[y] {
			if r, _, _, _ := want.At(x, y).RGBA(); mods[y][x] != (r == 0) {
				t.Fatalf("module (%d,%d): the QR code is not the otpauth URL's", x, y)
			}
		}
	}
}
