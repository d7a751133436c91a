package browser

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// notificationsStep acknowledges a notification when this manage has a
// notifications API (it is read from the OpenAPI document, as the UI does);
// without one the page must say so.
func notificationsStep(t *testing.T, ctx context.Context, m *manage, sh *shots) {
	t.Helper()
	var doc struct{ Paths map[string]any }
	m.call(t, "GET", "/api/v1/openapi.json", nil, &doc, 200)
	_, has := doc.Paths["/organizations/{org_id}/notifications"]
	do(t, ctx, "notifications", chromedp.Navigate(m.base+"/#/o/"+m.org+"/notifications"), chromedp.WaitVisible("main h1"))
	if !has {
		until(t, ctx, "the page says there is no notifications API", `!!document.querySelector("#no-notifications")`, 10*time.Second)
		sh.take(t, ctx, "notifications-none")
		t.Log("this manage has no notifications API: acknowledging a notification is not tested")
		return
	}
	until(t, ctx, "notification list", `!!document.querySelector("#notification-list")`, 10*time.Second)
	// A device that goes away raises "device disconnected" (after the
	// alert logic's hold-down); wait a bounded time for any notification.
	ok, err := chromedp.Run(ctx, chromedp.Poll[bool](`!!document.querySelector("button.markread")`,
		chromedp.WithPollingTimeout(45*time.Second), chromedp.WithPollingInterval(500*time.Millisecond)))
	if err != nil || !ok {
		sh.take(t, ctx, "notifications-empty")
		t.Log("no unread notification appeared within 45 s: acknowledging is not exercised")
		return
	}
	sh.take(t, ctx, "notifications-unread")
	before, _ := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll("button.markread").length`))
	do(t, ctx, "mark read", chromedp.Click("button.markread"))
	until(t, ctx, "one fewer unread", `document.querySelectorAll("button.markread").length < `+strconv.Itoa(before), 10*time.Second)
	sh.take(t, ctx, "notifications-read")
}
