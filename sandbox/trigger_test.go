package sandbox

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/caddy-alipay/caddy-alipay/internal/protocol"
	"github.com/caddy-alipay/caddy-alipay/internal/testvec"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The notification on demand, POST /sandbox/notify: each kind in each
// protocol makes a real trade and sends the notification that the
// cashier, or the trade page's Refund in full, sends for one, verified by
// the shop as the sidecar verifies (the signature with the sandbox's
// key, app_id or the seller, notify_verify for legacy); the trade pages
// show it; retries follow notify_retry; and every refusal.

// triggerPost POSTs body to /sandbox/notify as JSON, with header pairs.
func triggerPost(t *testing.T, sb *Handler, body any, header ...string) *httptest.ResponseRecorder {
	t.Helper()
	b, err := json.Marshal(body)
	require.NoError(t, err)
	r := httptest.NewRequest("POST", "http://sandbox.test"+notifyPath, strings.NewReader(string(b)))
	r.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(header); i += 2 {
		r.Header.Set(header[i], header[i+1])
	}
	return serve(t, sb, r)
}

// triggered checks that the sandbox took the request and returns its
// answer.
func triggered(t *testing.T, rec *httptest.ResponseRecorder) triggerAnswer {
	t.Helper()
	require.Equal(t, http.StatusCreated, rec.Code, rec.Body.String())
	require.Equal(t, "application/json; charset=utf-8", rec.Header().Get("Content-Type"))
	var a triggerAnswer
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &a), rec.Body.String())
	assert.Equal(t, "/sandbox/trades/"+a.OutTradeNo, a.Trade)
	assert.Equal(t, a.Trade, rec.Header().Get("Location"))
	return a
}

// triggerRefused checks a refusal's status and code and returns its
// reason.
func triggerRefused(t *testing.T, rec *httptest.ResponseRecorder, status int, code string) string {
	t.Helper()
	require.Equal(t, status, rec.Code, rec.Body.String())
	var e struct{ Error, Code string }
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &e), rec.Body.String())
	assert.Equal(t, code, e.Code, e.Error)
	assert.NotEmpty(t, e.Error)
	return e.Error
}

// sameFields checks that got has exactly want's fields, with want's
// values but for those of differ, which both must have.
func sameFields(t *testing.T, want, got map[string]string, differ ...string) {
	t.Helper()
	for _, k := range differ {
		assert.NotEmpty(t, want[k], "the reference has %s", k)
		assert.NotEmpty(t, got[k], "%s is there", k)
	}
	w, g := map[string]string{}, map[string]string{}
	for k, v := range want {
		w[k] = v
	}
	for k, v := range got {
		g[k] = v
	}
	for _, k := range differ {
		delete(w, k)
		delete(g, k)
	}
	assert.Equal(t, w, g)
}

// lastNotified is the latest verified notification that shop got.
func lastNotified(t *testing.T, shop *merchantShop) map[string]string {
	t.Helper()
	n := shop.notified()
	require.NotEmpty(t, n)
	return n[len(n)-1]
}

// triggerBody is an OpenAPI request of kind for the world's shop.
func (w *world) triggerBody(kind, no, amount, subject string) map[string]string {
	return map[string]string{"kind": kind, "notify_url": w.site.URL + "/alipay/notify", "app_id": testAppID,
		"out_trade_no": no, "amount": amount, "subject": subject}
}

// The fields that differ from one trade to another, and from one sending
// to another.
var perTrade = []string{"out_trade_no", "trade_no", "notify_id", "notify_time", "gmt_create"}

// paid, OpenAPI: the payment's notification of the cashier, to the
// field, verified by the shop with the sandbox's key and its app_id; a
// trade that the trade pages, and alipay.trade.query, know.
func TestTriggerPaid(t *testing.T) {
	w := newWorld(t, nil)
	require.Equal(t, http.StatusFound, w.postCashier(t, w.openTestOrder(t, "TGC1", "9.90", "茶 tea")).Code)
	w.shop.waitNotify(t)
	cashier := lastNotified(t, w.shop)

	a := triggered(t, triggerPost(t, w.sandbox, w.triggerBody("paid", "TG1", "9.90", "茶 tea")))
	w.shop.waitNotify(t)
	require.Len(t, w.shop.notified(), 2, w.shop.refused)
	got := lastNotified(t, w.shop)
	sameFields(t, cashier, got, append(perTrade, "gmt_payment")...)
	assertStrings(t, map[string]string{"out_trade_no": "TG1", "trade_no": a.TradeNo, "notify_id": a.NotifyID,
		"trade_status": "TRADE_SUCCESS", "total_amount": "9.90", "app_id": testAppID}, got)
	assert.Equal(t, triggerAnswer{Kind: "paid", Protocol: "openapi", OutTradeNo: "TG1", TradeNo: a.TradeNo, ID: a.ID,
		Status: "TRADE_SUCCESS", Amount: "9.90", Notification: a.Notification, About: "payment", NotifyType: "trade_status_sync",
		NotifyID: got["notify_id"], URL: w.site.URL + "/alipay/notify", Trade: "/sandbox/trades/TG1",
		NotifyRetry: []string{"4m0s", "10m0s", "10m0s", "1h0m0s", "2h0m0s", "6h0m0s", "15h0m0s"}}, a)

	d := waitTrade(t, w.sandbox, "TG1", delivered)
	assert.Equal(t, []string{a.ID, "TRADE_SUCCESS", "openapi", "page", "alipay.trade.page.pay", "RSA2", testAppID, ""},
		[]string{d.ID, d.Status, d.Protocol, d.Product, d.Method, d.SignType, d.AppID, d.ReturnURL})
	require.NotNil(t, d.Paid)
	require.Len(t, d.Notifications, 1)
	n := d.Notifications[0]
	assert.Equal(t, []string{a.Notification, "payment", a.NotifyID}, []string{n.ID, n.About, n.NotifyID})
	require.Len(t, n.Attempts, 1)
	assert.True(t, n.Attempts[0].Accepted)
	assert.Equal(t, "success", n.Attempts[0].Answer)
	ev := d.Events[len(d.Events)-1]
	assert.Equal(t, []string{triggerEventKind, "page"}, []string{ev.Kind, ev.Source})
	assert.Contains(t, ev.Detail, "--kind paid")
	list := tradeListJSON(t, w.sandbox)
	require.Len(t, list.Trades, 2)
	assert.Equal(t, "TG1", list.Trades[0].OutTradeNo, "newest first")
	assert.Contains(t, tradePage(t, w.sandbox, "TG1"), "alipay-sandbox-notify")
	q := apiCall(t, w.sandbox, "alipay.trade.query", map[string]any{"out_trade_no": "TG1"})
	assertAPIFields(t, map[string]any{"code": "10000", "trade_status": "TRADE_SUCCESS", "total_amount": "9.90", "trade_no": a.TradeNo}, q)

	// Paid once: the same order again is refused, as the cashier refuses it.
	triggerRefused(t, triggerPost(t, w.sandbox, w.triggerBody("paid", "TG1", "9.90", "茶 tea")), http.StatusConflict, "ACQ.TRADE_HAS_SUCCESS")
	// A form does as JSON does; without out_trade_no, a fresh one.
	form := url.Values{"kind": {"paid"}, "notify_url": {w.site.URL + "/alipay/notify"}, "app_id": {testAppID}}
	r := httptest.NewRequest("POST", "http://sandbox.test"+notifyPath, strings.NewReader(form.Encode()))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	a = triggered(t, serve(t, w.sandbox, r))
	assert.Regexp(t, `^sandbox_\d{14}_[0-9a-f]{8}$`, a.OutTradeNo)
	assert.Equal(t, "0.01", a.Amount)
	w.shop.waitNotify(t)
	require.Empty(t, w.shop.refused)
	assertStrings(t, map[string]string{"out_trade_no": a.OutTradeNo, "total_amount": "0.01", "subject": defaultTriggerSubject}, lastNotified(t, w.shop))

	// Signed with the sign type that the sidecar verifies with.
	w.shop.mu.Lock()
	w.shop.merchant = merchantAPI(t, protocol.SignTypeRSA)
	w.shop.mu.Unlock()
	body := w.triggerBody("paid", "TG1RSA", "1.00", "s")
	body["sign_type"] = "RSA"
	triggered(t, triggerPost(t, w.sandbox, body))
	w.shop.waitNotify(t)
	require.Empty(t, w.shop.refused)
	assert.Equal(t, "TG1RSA", lastNotified(t, w.shop)["out_trade_no"])
	assert.Equal(t, "RSA", tradeJSON(t, w.sandbox, "TG1RSA")[0].SignType)
}

// closed, OpenAPI: the trade closes unpaid, and its notification is the
// payment's fields with nothing paid: TRADE_CLOSED, gmt_close, no
// gmt_payment or fund_bill_list, the paid amounts 0.00.
func TestTriggerClosed(t *testing.T) {
	w := newWorld(t, nil)
	require.Equal(t, http.StatusFound, w.postCashier(t, w.openTestOrder(t, "TGC2", "12.00", "closed")).Code)
	w.shop.waitNotify(t)
	want := lastNotified(t, w.shop)
	delete(want, "gmt_payment")
	delete(want, "fund_bill_list")
	for k, v := range map[string]string{"trade_status": "TRADE_CLOSED", "receipt_amount": "0.00", "invoice_amount": "0.00",
		"buyer_pay_amount": "0.00", "point_amount": "0.00", "gmt_close": "(differs)"} {
		want[k] = v
	}

	a := triggered(t, triggerPost(t, w.sandbox, w.triggerBody("closed", "TG2", "12.00", "closed")))
	assert.Equal(t, "TRADE_CLOSED", a.Status)
	w.shop.waitNotify(t)
	got := lastNotified(t, w.shop)
	sameFields(t, want, got, append(perTrade, "gmt_close")...)
	gmt, err := protocol.ParseTimestamp(got["gmt_close"])
	require.NoError(t, err)
	assert.WithinDuration(t, now(), gmt, 5*time.Second)

	d := waitTrade(t, w.sandbox, "TG2", delivered)
	assert.Equal(t, "TRADE_CLOSED", d.Status)
	assert.Nil(t, d.Paid, "closed unpaid")
	require.Len(t, d.Notifications, 1)
	assert.Equal(t, noteAboutClose, d.Notifications[0].About)
	assert.Equal(t, "TRADE_CLOSED", d.Notifications[0].Fields["trade_status"])
	q := apiCall(t, w.sandbox, "alipay.trade.query", map[string]any{"out_trade_no": "TG2"})
	assert.Equal(t, "TRADE_CLOSED", q["trade_status"])
	triggerRefused(t, triggerPost(t, w.sandbox, w.triggerBody("paid", "TG2", "12.00", "closed")), http.StatusConflict, "ACQ.TRADE_HAS_CLOSE")
}

// refunded, OpenAPI: the notification of the trade page's Refund in full
// (TRADE_CLOSED with refund_fee, gmt_refund, out_biz_no), after the
// payment's, which the shop gets first; a trade paid before is refunded
// alone, once.
func TestTriggerRefunded(t *testing.T) {
	w := newWorld(t, nil)
	ref := w.paidTrade(t, "TGC3", "88.80")
	pressed(t, press(t, w.sandbox, "TGC3", "refund", ref.ID), "TGC3")
	w.shop.waitNotify(t)
	pay, refund := w.shop.notified()[0], lastNotified(t, w.shop)
	assert.Equal(t, "TGC3", refund["out_biz_no"])

	a := triggered(t, triggerPost(t, w.sandbox, w.triggerBody("refunded", "TG3", "88.80", "退款 TGC3")))
	w.shop.waitNotify(t)
	w.shop.waitNotify(t)
	n := w.shop.notified()
	require.Len(t, n, 4, w.shop.refused)
	sameFields(t, pay, n[2], append(perTrade, "gmt_payment")...)
	sameFields(t, refund, n[3], append(perTrade, "gmt_payment", "gmt_refund", "gmt_close", "out_biz_no")...)
	assertStrings(t, map[string]string{"trade_status": "TRADE_CLOSED", "refund_fee": "88.80", "out_biz_no": "TG3", "notify_id": a.NotifyID}, n[3])

	d := waitTrade(t, w.sandbox, "TG3", delivered)
	assert.Equal(t, "TRADE_CLOSED", d.Status)
	require.Len(t, d.Notifications, 2)
	assert.Equal(t, []string{a.PaymentNotification, a.Notification}, []string{d.Notifications[0].ID, d.Notifications[1].ID})
	assert.Equal(t, []string{"payment", "refund"}, []string{d.Notifications[0].About, d.Notifications[1].About})
	assert.True(t, d.Notifications[0].Attempts[0].AtTime.Compare(d.Notifications[1].Attempts[0].AtTime) <= 0, "the payment's went first")
	require.Len(t, d.Refunds, 1)
	assert.Equal(t, []string{"88.80", "TG3", "page", "alipay.trade.refund"}, []string{d.Refunds[0].Amount, d.Refunds[0].OutRequestNo, d.Refunds[0].By, d.Refunds[0].Method})

	// Paid before, by the trigger: refunded alone.
	triggered(t, triggerPost(t, w.sandbox, w.triggerBody("paid", "TG4", "5.00", "s")))
	w.shop.waitNotify(t)
	triggerRefused(t, triggerPost(t, w.sandbox, w.triggerBody("refunded", "TG4", "5.01", "s")), http.StatusConflict, "ACQ.CONTEXT_INCONSISTENT")
	other := w.triggerBody("refunded", "TG4", "5.00", "s")
	other["notify_url"] = w.site.URL + "/elsewhere"
	triggerRefused(t, triggerPost(t, w.sandbox, other), http.StatusConflict, "ACQ.CONTEXT_INCONSISTENT")
	a = triggered(t, triggerPost(t, w.sandbox, w.triggerBody("refunded", "TG4", "5.00", "another subject: the trade's is kept")))
	assert.Empty(t, a.PaymentNotification)
	w.shop.waitNotify(t)
	assertStrings(t, map[string]string{"out_trade_no": "TG4", "refund_fee": "5.00", "subject": "s"}, lastNotified(t, w.shop))
	w.shop.noArrival(t, 50*time.Millisecond, "one refund, no payment again")
	triggerRefused(t, triggerPost(t, w.sandbox, w.triggerBody("refunded", "TG4", "5.00", "s")), http.StatusConflict, "ACQ.TRADE_HAS_CLOSE")
	assert.Len(t, tradeJSON(t, w.sandbox, "TG4")[0].Refunds, 1)
}

// legacyTriggerBody is a legacy request of kind for the world's shop.
func (w *legacyWorld) triggerBody(kind, no, amount, subject, signType, charset string) map[string]string {
	return map[string]string{"kind": kind, "protocol": "legacy", "notify_url": w.site.URL + "/alipay/notify",
		"out_trade_no": no, "amount": amount, "subject": subject, "sign_type": signType, "charset": charset}
}

// Each kind in the legacy protocol, in each sign type and charset: the
// fields of the cashier's notification (paid, closed) and of the page's
// batch refund (refunded), in the charset, verified by the shop and
// confirmed by notify_verify.
func TestTriggerLegacy(t *testing.T) {
	for _, c := range legacyCases[:4] {
		t.Run(c.name, func(t *testing.T) {
			w := newLegacyWorld(t, nil)
			m := w.merchant(t, c.signType, c.charset, c.keys, nil)
			refTradeNo := w.paidLegacyTrade(t, m, "LC1", "6.60", "龙井")
			pay := w.shop.notified()[0]
			ref := legacyTradeDoc(t, w, "LC1")
			pressed(t, press(t, w.sandbox, "LC1", "refund", ref.ID), "LC1")
			w.shop.waitNotify(t)
			batch := lastNotified(t, w.shop)

			// paid
			a := triggered(t, triggerPost(t, w.sandbox, w.triggerBody("paid", "LG1", "6.60", "龙井", c.signType, c.charset)))
			assert.Equal(t, []string{"legacy", "TRADE_FINISHED", "trade_status_sync", ""}, []string{a.Protocol, a.Status, a.NotifyType, a.NotifyID})
			w.shop.waitNotify(t)
			got := lastNotified(t, w.shop)
			sameFields(t, pay, got, append(perTrade, "gmt_payment")...)
			assert.Equal(t, w.vec.Partner, got["seller_id"])
			assert.Equal(t, "true", w.notifyVerify(t, w.vec.Partner, got["notify_id"]), "notify_verify confirms it")
			d := waitTrade(t, w.sandbox, "LG1", delivered)
			assert.Equal(t, []string{"legacy", "create_direct_pay_by_user", c.signType, w.vec.Partner}, []string{d.Protocol, d.Method, d.SignType, d.Partner})
			assert.Equal(t, got["notify_id"], d.Notifications[0].Attempts[0].NotifyID)
			assert.Equal(t, c.charset, d.Notifications[0].Charset)
			w.shop.mu.Lock()
			assert.Equal(t, "application/x-www-form-urlencoded; charset="+c.charset, w.shop.contentTypes[len(w.shop.contentTypes)-1])
			w.shop.mu.Unlock()

			// closed
			triggered(t, triggerPost(t, w.sandbox, w.triggerBody("closed", "LG2", "6.60", "龙井", c.signType, c.charset)))
			w.shop.waitNotify(t)
			got = lastNotified(t, w.shop)
			want := map[string]string{}
			for k, v := range pay {
				want[k] = v
			}
			delete(want, "gmt_payment")
			want["trade_status"], want["gmt_close"] = "TRADE_CLOSED", "(differs)"
			sameFields(t, want, got, append(perTrade, "gmt_close")...)
			assert.Equal(t, "true", w.notifyVerify(t, w.vec.Partner, got["notify_id"]))
			assert.Equal(t, "TRADE_CLOSED", legacyTradeDoc(t, w, "LG2").Status)

			// refunded: the payment's notification, then the batch's
			a = triggered(t, triggerPost(t, w.sandbox, w.triggerBody("refunded", "LG3", "6.60", "龙井", c.signType, c.charset)))
			assert.Equal(t, "batch_refund_notify", a.NotifyType)
			w.shop.waitNotify(t)
			w.shop.waitNotify(t)
			n := w.shop.notified()
			sameFields(t, pay, n[len(n)-2], append(perTrade, "gmt_payment")...)
			got = n[len(n)-1]
			sameFields(t, batch, got, "batch_no", "result_details", "notify_id", "notify_time", "sign")
			assert.Regexp(t, `^`+today()+`SANDBOX[0-9a-f]{12}$`, got["batch_no"])
			assert.Equal(t, a.TradeNo+"^6.60^SUCCESS", got["result_details"])
			assert.Equal(t, refTradeNo+"^6.60^SUCCESS", batch["result_details"])
			assert.Equal(t, "true", w.notifyVerify(t, w.vec.Partner, got["notify_id"]))
			d = waitTrade(t, w.sandbox, "LG3", delivered)
			assert.Equal(t, "TRADE_CLOSED", d.Status)
			assert.Equal(t, []string{"payment", "batch_refund"}, []string{d.Notifications[0].About, d.Notifications[1].About})
			assert.Equal(t, a.Notification, d.Notifications[1].ID)
			assert.Empty(t, w.shop.refused)
		})
	}
}

// A legacy notification of the seller that the sidecar's config names:
// seller_email, or another seller_id.
func TestTriggerLegacySeller(t *testing.T) {
	w := newLegacyWorld(t, nil)
	w.merchant(t, protocol.SignTypeMD5, "utf-8", legacyKeys{}, func(c *protocol.LegacyConfig) { c.SellerEmail = "shop@example.com" })
	body := w.triggerBody("paid", "LS1", "1.00", "s", "", "")
	body["seller_email"] = "shop@example.com"
	triggered(t, triggerPost(t, w.sandbox, body))
	w.shop.waitNotify(t)
	require.Empty(t, w.shop.refused)
	assertStrings(t, map[string]string{"seller_email": "shop@example.com", "seller_id": w.vec.Partner}, lastNotified(t, w.shop))

	w.merchant(t, protocol.SignTypeMD5, "utf-8", legacyKeys{}, func(c *protocol.LegacyConfig) { c.SellerID = "2088000000000777" })
	body = w.triggerBody("paid", "LS2", "1.00", "s", "", "")
	body["seller_id"] = "2088000000000777"
	triggered(t, triggerPost(t, w.sandbox, body))
	w.shop.waitNotify(t)
	require.Empty(t, w.shop.refused)
	assert.Equal(t, "2088000000000777", lastNotified(t, w.shop)["seller_id"])
}

// Retries follow notify_retry, in each protocol: the shop fails the first
// attempt, the next is due one wait later (the package clock, moved on
// rather than slept), carries the same notify_id (OpenAPI) or a fresh
// one that notify_verify confirms (legacy), and is accepted; nothing is
// due after.
func TestTriggerRetries(t *testing.T) {
	for _, legacy := range []bool{false, true} {
		name := map[bool]string{false: "openapi", true: "legacy"}[legacy]
		t.Run(name, func(t *testing.T) {
			var sb *Handler
			var shop *merchantShop
			var body map[string]string
			var lw *legacyWorld
			if legacy {
				lw = newLegacyWorld(t, withRetry(time.Hour, 2*time.Hour))
				lw.merchant(t, protocol.SignTypeMD5, "utf-8", legacyKeys{}, nil)
				sb, shop, body = lw.sandbox, lw.shop, lw.triggerBody("paid", "RT1", "1.00", "retry", "", "")
			} else {
				w := newWorld(t, withRetry(time.Hour, 2*time.Hour))
				sb, shop, body = w.sandbox, w.shop, w.triggerBody("paid", "RT1", "1.00", "retry")
			}
			shop.setStatus(http.StatusInternalServerError)
			a := triggered(t, triggerPost(t, sb, body))
			assert.Equal(t, []string{"1h0m0s", "2h0m0s"}, a.NotifyRetry)
			shop.waitNotify(t)
			d := waitTrade(t, sb, "RT1", waiting(1))
			n := d.Notifications[0]
			first := parseRFC3339(t, n.Attempts[0].At)
			assert.False(t, n.Attempts[0].Accepted)
			assert.Equal(t, http.StatusInternalServerError, *n.Attempts[0].Status)
			assert.Equal(t, "fail", n.Attempts[0].Answer)
			assert.WithinDuration(t, first.Add(time.Hour), parseRFC3339(t, *n.NextAttempt), time.Second, "the first wait of notify_retry")

			shop.setStatus(http.StatusOK)
			fireRetry(t, sb, "RT1")
			shop.waitNotify(t)
			d = waitTrade(t, sb, "RT1", delivered)
			n = d.Notifications[0]
			require.Len(t, n.Attempts, 2)
			assert.True(t, n.Attempts[1].Accepted)
			assert.False(t, n.Attempts[1].Resend)
			assert.True(t, parseRFC3339(t, n.Attempts[1].At).Sub(first) >= time.Hour, "sent after the wait")
			assert.Nil(t, d.NextAttempt)
			got := shop.notified()
			require.Len(t, got, 2)
			if legacy {
				assert.NotEqual(t, got[0]["notify_id"], got[1]["notify_id"], "a fresh notify_id each sending")
				assert.Equal(t, "true", lw.notifyVerify(t, lw.vec.Partner, got[1]["notify_id"]))
			} else {
				assert.Equal(t, a.NotifyID, got[0]["notify_id"])
				assert.Equal(t, a.NotifyID, got[1]["notify_id"], "the same notify_id every retry")
			}
		})
	}
}

// Every refusal, with its status and code, and nothing made or sent: the
// kind, the notify_url (callback_hosts), the amount and the other fields;
// a protocol that the sandbox does not play; a request from another
// site or origin, by GET, of another content type, too large, or to a
// host name that the site does not serve (DNS rebinding).
func TestTriggerRefusals(t *testing.T) {
	w := newWorld(t, nil)
	sb := w.sandbox
	ok := w.triggerBody("paid", "RF1", "1.00", "s")
	with := func(k, v string) map[string]string {
		b := map[string]string{}
		for key, val := range ok {
			b[key] = val
		}
		if v == "\x00delete" {
			delete(b, k)
		} else {
			b[k] = v
		}
		return b
	}
	for _, c := range []struct {
		name   string
		body   any
		status int
		code   string
		reason string
	}{
		{"unknown kind", with("kind", "shipped"), 400, "invalid-parameter", `kind "shipped": want paid, closed or refunded`},
		{"no kind", with("kind", "\x00delete"), 400, "invalid-parameter", "kind is required"},
		{"notify_url elsewhere", with("notify_url", "http://shop.example.com/alipay/notify"), 400, "invalid-parameter",
			"notify_url names shop.example.com, which is not on this machine: the sandbox sends notifications and buyers only to loopback hosts and to those of callback_hosts"},
		{"notify_url relative", with("notify_url", "/alipay/notify"), 400, "invalid-parameter", "notify_url is not an absolute http(s) URL"},
		{"notify_url ftp", with("notify_url", "ftp://127.0.0.1/x"), 400, "invalid-parameter", "notify_url is not an absolute http(s) URL"},
		{"no notify_url", with("notify_url", "\x00delete"), 400, "invalid-parameter", "notify_url is required"},
		{"amount 3 decimals", with("amount", "12.345"), 400, "invalid-parameter", `amount "12.345" must be yuan with at most 2 decimals, like 88.80`},
		{"amount 0", with("amount", "0.00"), 400, "invalid-parameter", `amount "0.00" must be from 0.01 to 100000000`},
		{"amount text", with("amount", "ten"), 400, "invalid-parameter", `amount "ten"`},
		{"amount negative", with("amount", "-1.00"), 400, "invalid-parameter", `amount "-1.00"`},
		{"out_trade_no", with("out_trade_no", "a-b"), 400, "invalid-parameter", "out_trade_no must be 1 to 64 letters, digits or _"},
		{"subject", with("subject", "a&b"), 400, "invalid-parameter", "subject must not contain / = &"},
		{"no app_id", with("app_id", "\x00delete"), 400, "invalid-parameter", "app_id is required"},
		{"app_id", with("app_id", "app1"), 400, "invalid-parameter", `app_id "app1" is not an Alipay APPID (digits)`},
		{"seller_id", with("seller_id", "2088000000000777"), 400, "invalid-parameter", "seller_id: the sandbox's OpenAPI notifications carry seller_id 2088000000000001"},
		{"seller_email", with("seller_email", "a@b.cn"), 400, "invalid-parameter", "seller_email is for legacy notifications"},
		{"sign_type", with("sign_type", "MD5"), 400, "invalid-parameter", `sign_type "MD5": want RSA2 or RSA`},
		{"charset", with("charset", "gbk"), 400, "invalid-parameter", "OpenAPI notifications are utf-8"},
		{"protocol", with("protocol", "v3"), 400, "invalid-parameter", `protocol "v3": want openapi or legacy`},
		{"legacy not played", with("protocol", "legacy"), 409, "PROTOCOL_NOT_CONFIGURED", "this sandbox has no legacy gateway: give it partner and md5_key"},
		{"unknown field", map[string]string{"kind": "paid", "amonut": "1.00"}, 400, "invalid-parameter", "the body is not one JSON object"},
		{"not an object", []string{"paid"}, 400, "invalid-parameter", "the body is not one JSON object"},
	} {
		t.Run(c.name, func(t *testing.T) {
			assert.Contains(t, triggerRefused(t, triggerPost(t, sb, c.body), c.status, c.code), c.reason)
		})
	}

	// The guards of a state-changing endpoint.
	assert.Contains(t, triggerRefused(t, triggerPost(t, sb, ok, "Sec-Fetch-Site", "cross-site"), 403, "FORBIDDEN"), "another site")
	assert.Contains(t, triggerRefused(t, triggerPost(t, sb, ok, "Sec-Fetch-Site", "same-site"), 403, "FORBIDDEN"),
		"another site", "another port of the same host is same-site")
	assert.Contains(t, triggerRefused(t, triggerPost(t, sb, ok, "Origin", "http://evil.test"), 403, "FORBIDDEN"), "another origin")
	assert.Contains(t, triggerRefused(t, triggerPost(t, sb, ok, "Origin", "http://sandbox.test:8081"), 403, "FORBIDDEN"), "another origin")
	triggerRefused(t, triggerPost(t, sb, ok, "Origin", "null"), 403, "FORBIDDEN")
	rec := serve(t, sb, httptest.NewRequest("GET", "http://sandbox.test"+notifyPath, nil))
	triggerRefused(t, rec, 405, "METHOD_NOT_ALLOWED")
	assert.Equal(t, "POST", rec.Header().Get("Allow"))
	r := httptest.NewRequest("POST", "http://sandbox.test"+notifyPath, strings.NewReader(`{"kind":"paid"}`))
	r.Header.Set("Content-Type", "text/plain")
	triggerRefused(t, serve(t, sb, r), 415, "invalid-content-type")
	big := with("subject", strings.Repeat("x", maxTriggerBody))
	assert.Contains(t, triggerRefused(t, triggerPost(t, sb, big), 413, "invalid-parameter"), "larger than 4096 bytes")
	r = httptest.NewRequest("POST", "http://sandbox.test"+notifyPath, strings.NewReader("kind=paid&kind=closed"))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	assert.Contains(t, triggerRefused(t, serve(t, sb, r), 400, "invalid-parameter"), "kind given more than once")
	r = httptest.NewRequest("POST", "http://sandbox.test"+notifyPath, strings.NewReader("kind=paid&amonut=1"))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	assert.Contains(t, triggerRefused(t, serve(t, sb, r), 400, "invalid-parameter"), "unknown field amonut")
	// A site without host names answers loopback names only.
	r = httptest.NewRequest("POST", "http://rebound.test"+notifyPath, strings.NewReader(`{}`))
	r.Header.Set("Content-Type", "application/json")
	rw := httptest.NewRecorder()
	fresh := newTestSandbox(t, nil) // its first request finds a site without host names
	require.NoError(t, fresh.ServeHTTP(rw, onSite(fresh, r), upstream{}))
	assert.Equal(t, http.StatusMisdirectedRequest, rw.Code)
	assert.Empty(t, fresh.trades.summary().trades)

	assert.Empty(t, tradeListJSON(t, sb).Trades, "nothing was made")
	w.shop.noArrival(t, 50*time.Millisecond, "nothing was sent")

	// The same request from the sandbox's own origin, as a page of it
	// would send it, is taken.
	triggered(t, triggerPost(t, sb, ok, "Origin", "http://sandbox.test", "Sec-Fetch-Site", "same-origin"))
	w.shop.waitNotify(t)
}

// A sandbox that plays only the legacy gateway refuses OpenAPI
// notifications, and checks the legacy fields.
func TestTriggerLegacyRefusals(t *testing.T) {
	v := testvec.LoadLegacy(t)
	sb := newTestSandbox(t, func(s *Handler) {
		s.AppPublicKey, s.AlipayPrivateKey, s.Partner, s.MD5Key = "", "", v.Partner, v.MD5Key
	})
	site := "http://127.0.0.1:9/alipay/notify"
	legacy := func(k, val string) map[string]string {
		b := map[string]string{"kind": "paid", "protocol": "legacy", "notify_url": site}
		b[k] = val
		return b
	}
	for _, c := range []struct {
		name         string
		body         map[string]string
		status       int
		code, reason string
	}{
		{"openapi", map[string]string{"kind": "paid", "notify_url": site, "app_id": testAppID}, 409, "PROTOCOL_NOT_CONFIGURED", "use protocol legacy"},
		{"app_id", legacy("app_id", testAppID), 400, "invalid-parameter", "legacy ones carry no app_id, and name the sandbox's partner " + v.Partner},
		{"sign_type RSA", legacy("sign_type", "RSA"), 400, "invalid-parameter", `sign_type "RSA": want MD5`},
		{"charset", legacy("charset", "big5"), 400, "invalid-parameter", `charset "big5": want utf-8 or gbk`},
		{"seller_id", legacy("seller_id", "1234"), 400, "invalid-parameter", `seller_id "1234" is not an Alipay seller id`},
		{"seller_email", legacy("seller_email", "nobody"), 400, "invalid-parameter", `seller_email "nobody" is not an email address`},
		{"not in gbk", map[string]string{"kind": "paid", "protocol": "legacy", "notify_url": site, "charset": "gbk", "subject": "🍵"},
			400, "invalid-parameter", "subject has characters that gbk cannot hold"},
	} {
		t.Run(c.name, func(t *testing.T) {
			assert.Contains(t, triggerRefused(t, triggerPost(t, sb, c.body), c.status, c.code), c.reason)
		})
	}
	assert.Empty(t, tradeListJSON(t, sb).Trades)
}
