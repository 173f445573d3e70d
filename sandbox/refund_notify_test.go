package sandbox

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/caddy-alipay/caddy-alipay/internal/protocol"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// OpenAPI after the payment: the notification each refund sends (API,
// page button, alipay.trade.cancel), each with its own notify_id and
// schedule, and alipay.trade.cancel itself.

// paidTrade opens and pays an OpenAPI order, waits for the payment's
// notification and returns the trade's page JSON.
func (w *world) paidTrade(t *testing.T, no, amount string) tradeDoc {
	t.Helper()
	require.Equal(t, http.StatusFound, w.postCashier(t, w.openTestOrder(t, no, amount, "退款 "+no)).Code)
	w.shop.waitNotify(t)
	return waitTrade(t, w.sandbox, no, func(d tradeDoc) bool { return len(d.Notifications) == 1 && d.Notifications[0].AttemptsTotal > 0 })
}

// lastNotify is the latest verified notification that the shop got.
func (w *world) lastNotify(t *testing.T) map[string]string {
	t.Helper()
	n := w.shop.notified()
	require.NotEmpty(t, n)
	return n[len(n)-1]
}

// Each refund that moves money sends trade_status_sync again, verified
// like the payment's, with its own notify_id, refund_fee the total so
// far, gmt_refund, out_biz_no, and TRADE_SUCCESS while money is left,
// TRADE_CLOSED after; a refund asked again sends nothing.
func TestRefundNotifications(t *testing.T) {
	w := newWorld(t, nil)
	sb := w.sandbox
	d := w.paidTrade(t, "RN1", "88.80")
	pay := w.lastNotify(t)

	r := apiCall(t, sb, "alipay.trade.refund", map[string]any{"out_trade_no": "RN1", "refund_amount": "10", "out_request_no": "R1"})
	require.Equal(t, "10000", r["code"])
	w.shop.waitNotify(t)
	n1 := w.lastNotify(t)
	for k, v := range map[string]string{"notify_type": "trade_status_sync", "trade_status": "TRADE_SUCCESS", "refund_fee": "10.00",
		"out_biz_no": "R1", "out_trade_no": "RN1", "trade_no": d.TradeNo, "total_amount": "88.80", "app_id": testAppID,
		"gmt_payment": pay["gmt_payment"], "subject": "退款 RN1"} {
		assert.Equal(t, v, n1[k], k)
	}
	gmt, err := time.ParseInLocation("2006-01-02 15:04:05.000", n1["gmt_refund"], protocol.Beijing)
	require.NoError(t, err, n1["gmt_refund"])
	assert.WithinDuration(t, now(), gmt, 5*time.Second)
	assert.Equal(t, r["gmt_refund_pay"], protocol.Timestamp(gmt))
	assert.NotContains(t, n1, "gmt_close")
	assert.NotEqual(t, pay["notify_id"], n1["notify_id"], "a notification of its own")

	// The same out_request_no again: nothing moves, nothing is sent.
	r = apiCall(t, sb, "alipay.trade.refund", map[string]any{"out_trade_no": "RN1", "refund_amount": "10.00", "out_request_no": "R1"})
	assert.Equal(t, "N", r["fund_change"])
	w.shop.noArrival(t, 50*time.Millisecond, "a refund asked again")

	// The rest: TRADE_CLOSED.
	apiCall(t, sb, "alipay.trade.refund", map[string]any{"out_trade_no": "RN1", "refund_amount": "78.80", "out_request_no": "R2"})
	w.shop.waitNotify(t)
	n2 := w.lastNotify(t)
	assertStrings(t, map[string]string{"trade_status": "TRADE_CLOSED", "refund_fee": "88.80", "out_biz_no": "R2"}, n2)
	assert.NotEmpty(t, n2["gmt_close"])
	assert.NotEqual(t, n1["notify_id"], n2["notify_id"])

	// The trade's page: three notifications, each its own; the refunds.
	d = waitTrade(t, sb, "RN1", delivered)
	require.Len(t, d.Notifications, 3)
	var abouts, ids []string
	for _, n := range d.Notifications {
		abouts = append(abouts, n.About+" "+n.OutRequestNo)
		ids = append(ids, n.NotifyID)
		assert.True(t, n.Delivered)
		assert.Equal(t, 1, n.AttemptsTotal)
		assert.Equal(t, n.NotifyID, n.Attempts[0].NotifyID)
		assert.Equal(t, n.ID, n.Attempts[0].Notification)
		assert.Equal(t, "RSA2", n.SignType)
	}
	assert.Equal(t, []string{"payment ", "refund R1", "refund R2"}, abouts)
	assert.Equal(t, []string{pay["notify_id"], n1["notify_id"], n2["notify_id"]}, ids)
	assert.Equal(t, "10.00", d.Notifications[1].Fields["refund_fee"])
	assert.NotContains(t, d.Notifications[1].Fields, "notify_time", "each sending adds it")
	assert.Equal(t, 3, d.AttemptsTotal)
	assert.Len(t, d.Attempts, 3)
	require.Len(t, d.Refunds, 2)
	r1 := d.Refunds[0]
	assert.Equal(t, []string{"10.00", "R1", "", "api", "alipay.trade.refund"}, []string{r1.Amount, r1.OutRequestNo, r1.BatchNo, r1.By, r1.Method})
	parseRFC3339(t, r1.At)
	assert.Equal(t, "78.80", d.Refunds[1].Amount)

	page := tradePage(t, sb, "RN1")
	for _, id := range []string{`id="notification"`, `id="notification-n2"`, `id="notification-n3"`, `id="resend-n3"`,
		`id="attempts-n2"`, `id="delivery-n3"`, `<table id="refunds">`} {
		assert.Contains(t, page, id)
	}
	assert.Contains(t, page, "refund 退款, out_request_no R2")
	assert.Contains(t, page, "shop API (alipay.trade.refund)")
	assert.Contains(t, page, `<input type="hidden" name="notification" value="`+d.Notifications[2].ID+`">`)
	assert.NotContains(t, page, `id="refund"`, "nothing left to refund")
}

// The payment's notification and a refund's have schedules of their
// own: the payment's fails and waits an hour while the refund's is
// accepted at once; Send again of the refund's is one attempt beside its
// ended schedule, and of the payment's takes its wait's place.
func TestRefundNotificationScheduleIsItsOwn(t *testing.T) {
	w := newWorld(t, withRetry(time.Hour, time.Hour))
	w.shop.setStatusFor(func(p map[string]string) int {
		if p["refund_fee"] == "" {
			return http.StatusInternalServerError
		}
		return http.StatusOK
	})
	require.Equal(t, http.StatusFound, w.postCashier(t, w.openTestOrder(t, "RN2", "5.00", "schedules")).Code)
	w.shop.waitNotify(t)
	d := waitTrade(t, w.sandbox, "RN2", waiting(1))

	apiCall(t, w.sandbox, "alipay.trade.refund", map[string]any{"out_trade_no": "RN2", "refund_amount": "1.00", "out_request_no": "P1"})
	w.shop.waitNotify(t)
	d = waitTrade(t, w.sandbox, "RN2", func(d tradeDoc) bool { return len(d.Notifications) == 2 && d.Notifications[1].Delivered })
	pay, ref := d.Notifications[0], d.Notifications[1]
	assert.False(t, pay.Delivered)
	require.NotNil(t, pay.NextAttempt, "the payment's retry waits")
	assert.Nil(t, ref.NextAttempt, "the refund's is done")
	assert.Equal(t, pay.NextAttempt, d.NextAttempt, "the trade's next attempt is the payment's")
	assert.False(t, d.Delivered, "not every notification was accepted")
	page := tradePage(t, w.sandbox, "RN2")
	assert.Contains(t, page, `<span id="next-attempt" class="muted">`)
	assert.NotContains(t, page, `id="next-attempt-n2"`)

	// Send again, the refund's: beside its schedule; the payment's wait
	// is untouched.
	pressed(t, pressNote(t, w.sandbox, "RN2", d.ID, ref.ID), "RN2")
	w.shop.waitNotify(t)
	d = tradeJSON(t, w.sandbox, "RN2")[0]
	assert.Equal(t, 2, d.Notifications[1].AttemptsTotal)
	assert.True(t, d.Notifications[1].Attempts[1].Resend)
	assert.Equal(t, pay.NextAttempt, d.Notifications[0].NextAttempt)
	assert.Equal(t, 1, d.Notifications[0].AttemptsTotal)

	// Send again, the payment's, accepted now: it takes the wait's place
	// and ends its schedule.
	w.shop.setStatusFor(nil)
	pressed(t, pressNote(t, w.sandbox, "RN2", d.ID, pay.ID), "RN2")
	w.shop.waitNotify(t)
	d = tradeJSON(t, w.sandbox, "RN2")[0]
	assert.True(t, d.Notifications[0].Delivered)
	assert.Nil(t, d.NextAttempt)
	assert.True(t, d.Delivered)
	assert.Equal(t, 4, d.AttemptsTotal)

	// A notification the trade does not have.
	rec := pressNote(t, w.sandbox, "RN2", d.ID, "999")
	assert.Equal(t, http.StatusNotFound, rec.Code)
}

// pressNote presses Send again of notification note.
func pressNote(t *testing.T, sb *Handler, no, id, note string) *httptest.ResponseRecorder {
	t.Helper()
	r := httptest.NewRequest("POST", "http://sandbox.test/sandbox/trades/"+no+"/resend",
		strings.NewReader(url.Values{"id": {id}, "notification": {note}}.Encode()))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return serve(t, sb, r)
}

// The page's Refund in full sends the refund's notification too.
func TestRefundNotificationFromThePage(t *testing.T) {
	w := newWorld(t, nil)
	d := w.paidTrade(t, "RN3", "3.30")
	pressed(t, press(t, w.sandbox, "RN3", "refund", d.ID), "RN3")
	w.shop.waitNotify(t)
	assertStrings(t, map[string]string{"trade_status": "TRADE_CLOSED", "refund_fee": "3.30", "out_biz_no": "RN3"}, w.lastNotify(t))
	d = waitTrade(t, w.sandbox, "RN3", delivered)
	require.Len(t, d.Refunds, 1)
	assert.Equal(t, "page", d.Refunds[0].By)
	assert.Contains(t, tradePage(t, w.sandbox, "RN3"), "<td>page button</td>")
}

// alipay.trade.cancel: an unpaid trade is closed, a paid one refunded in
// full with its notification; again, the same answer and nothing more;
// an unknown trade does not exist.
func TestAPICancel(t *testing.T) {
	w := newWorld(t, nil)
	sb := w.sandbox
	pay := w.openTestOrder(t, "CX1", "2.00", "unpaid")
	c := apiCall(t, sb, "alipay.trade.cancel", map[string]any{"out_trade_no": "CX1"})
	tradeNo := tradeJSON(t, sb, "CX1")[0].TradeNo
	assert.Equal(t, map[string]any{"code": "10000", "msg": "Success", "out_trade_no": "CX1", "trade_no": tradeNo,
		"retry_flag": "N", "action": "close"}, c)
	assertAPIFields(t, map[string]any{"trade_status": "TRADE_CLOSED"}, apiCall(t, sb, "alipay.trade.query", map[string]any{"trade_no": tradeNo}))
	assert.Equal(t, http.StatusConflict, w.postCashier(t, pay).Code, "closed: the cashier refuses to pay")
	assertAPIFields(t, map[string]any{"code": "10000", "action": "close"}, apiCall(t, sb, "alipay.trade.cancel", map[string]any{"trade_no": tradeNo}))
	w.shop.noArrival(t, 30*time.Millisecond, "a closed trade")

	// Paid, and partly refunded: the cancel refunds the rest.
	w.paidTrade(t, "CX2", "9.00")
	apiCall(t, sb, "alipay.trade.refund", map[string]any{"out_trade_no": "CX2", "refund_amount": "1.00", "out_request_no": "CX2"})
	w.shop.waitNotify(t)
	c = apiCall(t, sb, "alipay.trade.cancel", map[string]any{"out_trade_no": "CX2"})
	assertAPIFields(t, map[string]any{"code": "10000", "action": "refund", "retry_flag": "N"}, c)
	assert.NotEmpty(t, c["gmt_refund_pay"])
	w.shop.waitNotify(t)
	n := w.lastNotify(t)
	assertStrings(t, map[string]string{"trade_status": "TRADE_CLOSED", "refund_fee": "9.00", "out_biz_no": "sandbox_refund_2"}, n)
	assertAPIFields(t, map[string]any{"trade_status": "TRADE_CLOSED"}, apiCall(t, sb, "alipay.trade.query", map[string]any{"out_trade_no": "CX2"}))
	rq := apiCall(t, sb, "alipay.trade.fastpay.refund.query", map[string]any{"out_trade_no": "CX2", "out_request_no": "sandbox_refund_2"})
	assertAPIFields(t, map[string]any{"refund_amount": "8.00"}, rq)

	c = apiCall(t, sb, "alipay.trade.cancel", map[string]any{"out_trade_no": "CX2"})
	assertAPIFields(t, map[string]any{"code": "10000", "action": "refund"}, c)
	assert.NotContains(t, c, "gmt_refund_pay", "nothing moved")
	w.shop.noArrival(t, 50*time.Millisecond, "a cancel asked again")

	d := tradeJSON(t, sb, "CX2")[0]
	require.Len(t, d.Refunds, 2)
	assert.Equal(t, "alipay.trade.cancel", d.Refunds[1].Method)
	last := d.Events[len(d.Events)-1]
	assert.Equal(t, "alipay.trade.cancel", last.Kind)
	assert.Contains(t, last.Detail, "action refund")

	f := apiCall(t, sb, "alipay.trade.cancel", map[string]any{"out_trade_no": "NOPE"})
	assertAPIFields(t, map[string]any{"code": "40004", "sub_code": "ACQ.TRADE_NOT_EXIST"}, f)
	f = apiCall(t, sb, "alipay.trade.cancel", map[string]any{})
	assertAPIFields(t, map[string]any{"sub_code": "ACQ.INVALID_PARAMETER"}, f)
}

// assertStrings checks the fields of want in got.
func assertStrings(t *testing.T, want, got map[string]string) {
	t.Helper()
	for k, v := range want {
		assert.Equal(t, v, got[k], k)
	}
}
