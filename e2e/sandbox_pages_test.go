package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// sandboxList is what the sandbox's GET /sandbox/trades says as JSON (the
// names its package documents), as much of it as the tests read.
type sandboxList struct {
	Kept      int            `json:"kept"`
	MaxTrades int            `json:"max_trades"`
	Dropped   int            `json:"dropped"`
	Trades    []sandboxTrade `json:"trades"`
}

// sandboxTrade is a trade in the sandbox's JSON; only its own page,
// GET /sandbox/trades/<out_trade_no>, lists its attempts.
type sandboxTrade struct {
	OutTradeNo    string  `json:"out_trade_no"`
	TradeNo       string  `json:"trade_no"`
	Amount        string  `json:"amount"`
	Status        string  `json:"status"`
	Protocol      string  `json:"protocol"`
	AttemptsTotal int     `json:"attempts_total"`
	NextAttempt   *string `json:"next_attempt"`
	Delivered     bool    `json:"delivered"`
	GivenUp       bool    `json:"given_up"`
	Attempts      []struct {
		Status   *int   `json:"status"`
		Error    string `json:"error"`
		Accepted bool   `json:"accepted"`
		Resend   bool   `json:"resend"`
	} `json:"attempts"`
}

// TestSandboxPages: the sandbox's trade pages, as a developer uses them
// when the shop missed a notification. The sandbox retries only after an
// hour, so that only the page's button can deliver it: the Python shop
// is down when the buyer pays, comes back, and the developer finds the
// failed attempt and the scheduled one on the sandbox's pages, presses
// "send again", and the order is paid.
func TestSandboxPages(t *testing.T) {
	kind := shopKindNamed(t, "python")
	needTool(t, kind.tool)
	tab := newTab(t)

	e := newShopEnv(t, kind)
	e.startShop(t)
	// The local Alipay on its own site, with a retry only after an hour.
	caddyfile := caddyGlobals + sidecarSite(e.sitePort, e.gateway, fmt.Sprintf("127.0.0.1:%d", e.shopPort)) +
		sandboxSite(e.gatewayPort, "notify_retry 1h")
	e.caddy = startCaddy(t, "caddy-sandbox-pages", caddyfile, e.site+"/", e.gateway+"/")

	// A purchase that goes well, for the list's sake.
	mug := e.toCashier(t, tab, "mug", mugSubject, mugAmount, false)
	clickAndLoad(t, tab, "pay")
	waitText(t, tab, "status", "paid", 20*time.Second)

	// The shop is down when the buyer pays for the tea: the return and
	// the first notification fail.
	tea := e.toCashier(t, tab, "tea", teaSubject, teaAmount, false)
	e.shop.stop()
	if resp, err := clickAndLoadErr(tab, "pay"); err == nil {
		assert.GreaterOrEqual(t, resp.Status, int64(500), "the return fails while the shop is down")
	}
	failed := waitSandboxTrade(t, e, tea, func(st sandboxTrade) bool { return st.AttemptsTotal == 1 })
	require.NotNil(t, failed.NextAttempt, "the next attempt is scheduled, an hour on")
	assert.False(t, failed.Delivered)
	e.startShop(t)
	assert.Equal(t, "unpaid", e.order(t, tea).Status, "the shop is back, but nothing tells it of the payment yet")

	// The list: both trades, newest first.
	resp := open(t, tab, e.gateway+"/sandbox/trades")
	require.EqualValues(t, http.StatusOK, resp.Status)
	assert.Equal(t, "5000", textOf(t, tab, "max-trades"))
	assert.Equal(t, "0", textOf(t, tab, "dropped"))
	rows := browserGet(t, tab, "read the rows", chromedp.Evaluate[[]string](
		`[...document.querySelectorAll("#trades tbody tr")].map(r => r.innerText)`))
	require.Len(t, rows, 2)
	assert.Contains(t, rows[0], tea)
	assert.Contains(t, rows[0], teaSubject)
	assert.Contains(t, rows[0], "next ")
	assert.Contains(t, rows[1], mug)
	assert.Contains(t, rows[1], "delivered")
	screenshot(t, tab, "sandbox-trades.png")

	// The trade's page: the failed attempt, and the next one scheduled.
	resp = pagesClickAndLoad(t, tab, `a[href="/sandbox/trades/`+tea+`"]`)
	require.EqualValues(t, http.StatusOK, resp.Status)
	assert.Equal(t, e.gateway+"/sandbox/trades/"+tea, location(t, tab))
	assert.Equal(t, "TRADE_SUCCESS", textOf(t, tab, "status"))
	attempts := textOf(t, tab, "attempts")
	assert.Contains(t, attempts, "HTTP 502", "the sidecar's answer while the shop was down")
	assert.Contains(t, attempts, "not accepted")
	assert.Contains(t, textOf(t, tab, "delivery"), "Next attempt")
	assert.True(t, hasElement(t, tab, "next-attempt"))
	assert.True(t, hasElement(t, tab, "refund"), "a paid OpenAPI trade can be refunded here")

	// Send again: accepted at once, and nothing more is scheduled.
	resp = clickAndLoad(t, tab, "resend")
	require.EqualValues(t, http.StatusOK, resp.Status)
	assert.Equal(t, e.gateway+"/sandbox/trades/"+tea, location(t, tab), "back on the trade's page")
	attempts = textOf(t, tab, "attempts")
	assert.Contains(t, attempts, "send again")
	assert.Contains(t, attempts, "✓ accepted")
	assert.Contains(t, textOf(t, tab, "delivery"), "Delivered")
	assert.False(t, hasElement(t, tab, "next-attempt"))
	screenshot(t, tab, "sandbox-trade.png")

	// The shop has it: the order is paid, by that one notification.
	o := e.waitPaid(t, tea, 10*time.Second)
	assert.Equal(t, 1, o.Notifications)
	assert.Equal(t, 1, o.NotifyCalls, "the attempt while the shop was down never reached it")
	open(t, tab, e.site+"/orders/"+tea)
	assert.Equal(t, "paid", textOf(t, tab, "status"))

	// And the sandbox has nothing left to send.
	list := sandboxTradeList(t, e.gateway)
	require.Len(t, list.Trades, 2)
	assert.Equal(t, 2, list.Kept)
	assert.Equal(t, 5000, list.MaxTrades)
	for _, st := range list.Trades {
		assert.Nil(t, st.NextAttempt, st.OutTradeNo)
		assert.True(t, st.Delivered, st.OutTradeNo)
		assert.Equal(t, "openapi", st.Protocol)
	}
	require.Equal(t, tea, list.Trades[0].OutTradeNo)
	assert.Equal(t, 2, list.Trades[0].AttemptsTotal)
	page := sandboxTradePage(t, e.gateway, tea)
	require.Len(t, page, 1)
	got := page[0]
	require.Len(t, got.Attempts, 2)
	assert.Equal(t, 502, *got.Attempts[0].Status)
	assert.True(t, got.Attempts[1].Resend)
	assert.True(t, got.Attempts[1].Accepted)

	// Refund in full on the mug's trade page, as a developer refunds by
	// hand: the sandbox sends the notification that Alipay sends after a
	// refund, and the shop, which asked for none, records the order
	// refunded from it alone.
	open(t, tab, e.gateway+"/sandbox/trades/"+mug)
	resp = clickAndLoad(t, tab, "refund")
	require.EqualValues(t, http.StatusOK, resp.Status)
	o = e.waitOrder(t, mug, "refunded by the refund's notification", 20*time.Second,
		func(o order) bool { return o.Status == "refunded" })
	require.NotNil(t, o.RefundFee)
	assert.Equal(t, mugAmount, *o.RefundFee)
	assert.Equal(t, 1, o.RefundNotifications)
	assert.Equal(t, 1, o.Notifications, "paid once: the refund's notification is no payment")
	open(t, tab, e.site+"/orders/"+mug)
	assert.Equal(t, "refunded", textOf(t, tab, "status"))
}

// sandboxTradeList is the sandbox's GET /sandbox/trades as JSON.
func sandboxTradeList(t *testing.T, gateway string) sandboxList {
	t.Helper()
	var list sandboxList
	sandboxJSON(t, gateway+"/sandbox/trades", &list)
	return list
}

// sandboxTradePage is the sandbox's trades of out_trade_no no, newest
// first, from its page as JSON.
func sandboxTradePage(t *testing.T, gateway, no string) []sandboxTrade {
	t.Helper()
	var page struct {
		Trades []sandboxTrade `json:"trades"`
	}
	sandboxJSON(t, gateway+"/sandbox/trades/"+no, &page)
	return page.Trades
}

func sandboxJSON(t *testing.T, url string, v any) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	require.NoError(t, err)
	req.Header.Set("Accept", "application/json")
	resp, body := httpDo(t, req)
	require.Equal(t, http.StatusOK, resp.StatusCode, body)
	require.NoError(t, json.Unmarshal([]byte(body), v), body)
}

// waitSandboxTrade polls the sandbox's trade list until the trade of
// out_trade_no no is as ok wants it, within 20 s.
func waitSandboxTrade(t *testing.T, e *shopEnv, no string, ok func(sandboxTrade) bool) sandboxTrade {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		for _, st := range sandboxTradeList(t, e.gateway).Trades {
			if st.OutTradeNo == no && ok(st) {
				return st
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("the sandbox's trade %s is not there after 20 s:\n%s", no, tail(e.caddy.logPath, 20))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// pagesClickAndLoad clicks the element that a CSS selector finds and
// waits until the page that it leads to has loaded.
func pagesClickAndLoad(t *testing.T, tab context.Context, selector string) *network.Response {
	t.Helper()
	ctx, cancel := context.WithTimeout(tab, stepTimeout)
	defer cancel()
	resp, err := chromedp.RunResponse(ctx, chromedp.Click(chromedp.CSS(selector)))
	if err != nil {
		t.Fatalf("click %s and wait for the next page: %v", strconv.Quote(selector), err)
	}
	return resp
}
