package browser

import (
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/trellis-sdwan/trellis/manage/auth"
	"github.com/trellis-sdwan/trellis/manage/server"
)

// TestTOTP: an account that forces TOTP makes the next login enroll (the
// secret and its QR code are shown, the first code activates it, ten recovery codes are
// shown once); the login after that asks for a code, refuses a wrong one
// with a message, and takes a recovery code.
func TestTOTP(t *testing.T) {
	m := startManage(t)
	ctx := browser(t, 1024, 800, 2*time.Minute)
	var accs struct{ Items []struct{ ID string } }
	m.call(t, "GET", "/api/v1/accounts", nil, &accs, 200)
	m.call(t, "PATCH", "/api/v1/accounts/"+accs.Items[0].ID, map[string]bool{"force_totp": true}, nil, 200)
	sh := newShots(t)

	do(t, ctx, "log in", chromedp.Navigate(m.base+"/"), chromedp.WaitVisible("#f-login-email"),
		chromedp.SendKeys("#f-login-email", server.DefaultAdminEmail), chromedp.SendKeys("#f-login-password", adminPassword),
		chromedp.Click("form button[type=submit]"), chromedp.WaitVisible("#totp-secret"), chromedp.WaitVisible("#totp-qr"))
	// The QR code is a decoded PNG of whole modules, shown at least 100 px.
	until(t, ctx, "the QR code image", `(() => { const i = document.querySelector("#totp-qr");
		return i.complete && i.naturalWidth >= 100 && i.naturalWidth === i.naturalHeight && i.getBoundingClientRect().width >= 100 })()`, 10*time.Second)
	sh.take(t, ctx, "enroll")
	secret, err := chromedp.Run(ctx, chromedp.TextContent("#totp-secret"))
	if err != nil {
		t.Fatal(err)
	}
	code, err := auth.TOTPCode(strings.ReplaceAll(secret, " ", ""), time.Now())
	if err != nil {
		t.Fatalf("the page shows %q: %v", secret, err)
	}
	do(t, ctx, "activate", chromedp.SendKeys("#f-enroll-code", code), chromedp.Click("form button[type=submit]"),
		chromedp.WaitVisible("#recovery-codes"))
	codes, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](`[...document.querySelectorAll("#recovery-codes code")].map(c => c.textContent)`))
	if err != nil || len(codes) != 10 {
		t.Fatalf("recovery codes %q %v", codes, err)
	}
	sh.take(t, ctx, "recovery-codes")
	do(t, ctx, "continue", chromedp.Click("#recovery-codes + button"), chromedp.WaitVisible("#org-list"))

	do(t, ctx, "log out and in again", chromedp.Click("#logout"), chromedp.WaitVisible("#f-login-email"),
		chromedp.SendKeys("#f-login-email", server.DefaultAdminEmail), chromedp.SendKeys("#f-login-password", adminPassword),
		chromedp.Click("form button[type=submit]"), chromedp.WaitVisible("#f-totp-code"),
		chromedp.SendKeys("#f-totp-code", "000000"), chromedp.Click("form button[type=submit]"))
	until(t, ctx, "a wrong code is refused", `(document.querySelector(".fielderror:not(:empty), .error")||{textContent:""}).textContent.length > 0`, 10*time.Second)
	sh.take(t, ctx, "wrong-code")
	do(t, ctx, "recovery code", chromedp.Click("form button.link"), chromedp.WaitVisible("#f-totp-recovery_code"),
		chromedp.SendKeys("#f-totp-recovery_code", codes[0]), chromedp.Click("form button[type=submit]"), chromedp.WaitVisible("#org-list"))
	sh.take(t, ctx, "logged-in-with-recovery-code")
}
