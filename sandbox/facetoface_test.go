package sandbox

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddy-alipay/caddy-alipay/internal/protocol"
	"github.com/caddy-alipay/caddy-alipay/internal/testvec"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// callWith POSTs a call for testAppID (RSA2) signed with the common
// parameters common (notify_url), as the sidecar's client sends it, and
// returns the verified response value.
func callWith(t *testing.T, sb *Handler, method string, biz any, common map[string]string) map[string]any {
	t.Helper()
	content, err := protocol.MarshalJSON(biz)
	require.NoError(t, err)
	api := merchantAPI(t, protocol.SignTypeRSA2)
	p := api.RequestParams(method, content, time.Now())
	for k, v := range common {
		p[k] = v
	}
	require.NoError(t, protocol.SignParams(api.Signer, p))
	q := url.Values{}
	for k, v := range p {
		if k != "biz_content" {
			q.Set(k, v)
		}
	}
	r := httptest.NewRequest("POST", "http://sandbox.test/gateway.do?"+q.Encode(), strings.NewReader(url.Values{"biz_content": {p["biz_content"]}}.Encode()))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded;charset=utf-8")
	return apiAnswer(t, serve(t, sb, r), method, protocol.SignTypeRSA2)
}

func (w *world) notifyURL() map[string]string {
	return map[string]string{"notify_url": w.site.URL + "/alipay/notify"}
}

// precreate asks for the QR code of an order.
func (w *world) precreate(t *testing.T, no, amount, subject string) map[string]any {
	t.Helper()
	return callWith(t, w.sandbox, "alipay.trade.precreate", map[string]any{"out_trade_no": no, "total_amount": amount, "subject": subject,
		"store_id": "S01", "terminal_id": "T01", "timeout_express": "90m"}, w.notifyURL())
}

// barcode is a barcode payment with auth code code.
func (w *world) barcode(t *testing.T, no, amount, code string) map[string]any {
	t.Helper()
	return callWith(t, w.sandbox, "alipay.trade.pay", map[string]any{"out_trade_no": no, "total_amount": amount, "subject": "条码 " + no,
		"scene": "bar_code", "auth_code": code, "product_code": "FACE_TO_FACE_PAYMENT"}, w.notifyURL())
}

func (w *world) query(t *testing.T, no string) map[string]any {
	t.Helper()
	return apiCall(t, w.sandbox, "alipay.trade.query", map[string]any{"out_trade_no": no})
}

// scan opens the QR code's URL, as the buyer's app does, and returns
// the answer.
func (w *world) scan(t *testing.T, qr string) *httptest.ResponseRecorder {
	t.Helper()
	return serve(t, w.sandbox, httptest.NewRequest("GET", qr, nil))
}

var notExist = map[string]any{"code": "40004", "sub_code": "ACQ.TRADE_NOT_EXIST"}

// Precreate answers a sandbox URL; until it is opened (the scan) queries
// find no trade; the scan makes it WAIT_BUYER_PAY and shows the cashier,
// whose Pay makes it TRADE_SUCCESS with its notification.
func TestPrecreateScanPay(t *testing.T) {
	w := newWorld(t, nil)
	a := w.precreate(t, "QR1", "12.30", "扫码 QR1")
	assertAPIFields(t, map[string]any{"code": "10000", "msg": "Success", "out_trade_no": "QR1"}, a)
	qr, _ := a["qr_code"].(string)
	require.True(t, strings.HasPrefix(qr, "http://sandbox.test/sandbox/qr/"), qr)
	assert.NotContains(t, a, "trade_no", "no trade before the scan")

	assertAPIFields(t, notExist, w.query(t, "QR1"))
	assertAPIFields(t, notExist, apiCall(t, w.sandbox, "alipay.trade.close", map[string]any{"out_trade_no": "QR1"}))
	assertAPIFields(t, notExist, apiCall(t, w.sandbox, "alipay.trade.refund", map[string]any{"out_trade_no": "QR1", "refund_amount": "1.00"}))
	d := tradeJSON(t, w.sandbox, "QR1")[0]
	assert.Equal(t, "qr", d.Product)
	assert.True(t, d.AwaitingScan)
	assert.Contains(t, tradePage(t, w.sandbox, "QR1"), `id="awaiting-scan"`)

	// The same order again: the same code. Another amount: refused.
	assert.Equal(t, qr, w.precreate(t, "QR1", "12.30", "扫码 QR1")["qr_code"])
	assertAPIFields(t, map[string]any{"code": "40004", "sub_code": "ACQ.CONTEXT_INCONSISTENT"}, w.precreate(t, "QR1", "12.31", "扫码 QR1"))

	// Its cashier does not open before the scan.
	id := strings.TrimPrefix(qr, "http://sandbox.test"+qrPrefix)
	assert.Equal(t, http.StatusConflict, serve(t, w.sandbox, httptest.NewRequest("GET", "http://sandbox.test"+cashierPrefix+id, nil)).Code)
	r := httptest.NewRequest("POST", "http://sandbox.test"+cashierPrefix+id+"/pay", nil)
	assert.Equal(t, http.StatusConflict, serve(t, w.sandbox, r).Code, "not scanned: nothing to pay")

	scan := w.scan(t, qr)
	require.Equal(t, http.StatusFound, scan.Code, scan.Body.String())
	assert.Equal(t, cashierPrefix+id, scan.Header().Get("Location"))
	q := w.query(t, "QR1")
	assertAPIFields(t, map[string]any{"code": "10000", "trade_status": "WAIT_BUYER_PAY", "total_amount": "12.30"}, q)
	tradeNo := q["trade_no"]
	assert.False(t, tradeJSON(t, w.sandbox, "QR1")[0].AwaitingScan)
	assert.Equal(t, http.StatusFound, w.scan(t, qr).Code, "scanned again: the same trade")

	page, forms := w.cashier(t, scan)
	assert.Contains(t, page, `<p id="subject">扫码 QR1</p>`)
	assert.Contains(t, page, `<span id="amount">12.30</span>`)
	paid := w.postCashier(t, forms["pay"])
	require.Equal(t, http.StatusOK, paid.Code)
	assert.Contains(t, paid.Body.String(), `id="paid"`)
	w.shop.waitNotify(t)
	assertStrings(t, map[string]string{"out_trade_no": "QR1", "trade_status": "TRADE_SUCCESS", "total_amount": "12.30", "trade_no": tradeNo.(string)}, w.lastNotify(t))
	assertAPIFields(t, map[string]any{"trade_status": "TRADE_SUCCESS", "trade_no": tradeNo}, w.query(t, "QR1"))
	assertAPIFields(t, map[string]any{"code": "40004", "sub_code": "ACQ.TRADE_HAS_SUCCESS"}, w.precreate(t, "QR1", "12.30", "扫码 QR1"))

	kinds := []string{}
	for _, e := range tradeJSON(t, w.sandbox, "QR1")[0].Events {
		kinds = append(kinds, e.Kind)
	}
	assert.Contains(t, kinds, "scan")
	assert.Contains(t, kinds, "alipay.trade.precreate")

	// Cancel at the cashier of a scanned code: a page; the trade stays.
	qr2, _ := w.precreate(t, "QR2", "1.00", "s")["qr_code"].(string)
	_, forms = w.cashier(t, w.scan(t, qr2))
	c := w.postCashier(t, forms["cancel"])
	require.Equal(t, http.StatusOK, c.Code)
	assert.Contains(t, c.Body.String(), `id="cancelled"`)
	assertAPIFields(t, map[string]any{"trade_status": "WAIT_BUYER_PAY"}, w.query(t, "QR2"))
}

// Cancel of a code that no buyer scanned closes the order: a scan then
// shows the closed page, and precreate of it again is refused.
func TestPrecreateCancelUnscanned(t *testing.T) {
	w := newWorld(t, nil)
	qr, _ := w.precreate(t, "QR3", "5.00", "s")["qr_code"].(string)
	c := apiCall(t, w.sandbox, "alipay.trade.cancel", map[string]any{"out_trade_no": "QR3"})
	assert.Equal(t, map[string]any{"code": "10000", "msg": "Success", "out_trade_no": "QR3", "retry_flag": "N", "action": "close"}, c)
	rec := w.scan(t, qr)
	assert.Equal(t, http.StatusConflict, rec.Code)
	assert.Contains(t, rec.Body.String(), `<b id="error-code">ACQ.TRADE_HAS_CLOSE</b>`)
	assertAPIFields(t, map[string]any{"code": "40004", "sub_code": "ACQ.TRADE_HAS_CLOSE"}, w.precreate(t, "QR3", "5.00", "s"))
	w.shop.noArrival(t, 30*time.Millisecond, "closed unpaid")
	// An unknown QR code, and one of another kind of trade.
	assert.Equal(t, http.StatusNotFound, w.scan(t, "http://sandbox.test/sandbox/qr/nope").Code)
}

// Precreate checks its fields as page pay does, and notify_url as the
// gateway does.
func TestPrecreateRefused(t *testing.T) {
	w := newWorld(t, nil)
	for name, c := range map[string]struct {
		biz    map[string]any
		common map[string]string
	}{
		"no subject":          {map[string]any{"out_trade_no": "QRX", "total_amount": "1.00"}, nil},
		"bad amount":          {map[string]any{"out_trade_no": "QRX", "total_amount": "0", "subject": "s"}, nil},
		"no out_trade_no":     {map[string]any{"total_amount": "1.00", "subject": "s"}, nil},
		"product_code":        {map[string]any{"out_trade_no": "QRX", "total_amount": "1.00", "subject": "s", "product_code": "QUICK_WAP_WAY"}, nil},
		"store_id not string": {map[string]any{"out_trade_no": "QRX", "total_amount": "1.00", "subject": "s", "store_id": 7}, nil},
		"timeout_express":     {map[string]any{"out_trade_no": "QRX", "total_amount": "1.00", "subject": "s", "timeout_express": "3 hours"}, nil},
		"notify_url":          {map[string]any{"out_trade_no": "QRX", "total_amount": "1.00", "subject": "s"}, map[string]string{"notify_url": "https://shop.example.com/n"}},
	} {
		t.Run(name, func(t *testing.T) {
			assertAPIFields(t, map[string]any{"code": "40004", "sub_code": "ACQ.INVALID_PARAMETER"}, callWith(t, w.sandbox, "alipay.trade.precreate", c.biz, c.common))
		})
	}
	assert.Empty(t, w.sandbox.trades.summary().trades)
}

// What Alipay's Node SDK sends for precreate (the vectors) is answered,
// with a QR code on the host the request reached.
func TestPrecreateNodeSDKRequest(t *testing.T) {
	var v struct {
		Precreate struct {
			RawQuery string `json:"raw_query"`
			RawBody  string `json:"raw_body"`
		} `json:"precreate"`
	}
	require.NoError(t, json.Unmarshal(testvec.Read(t, "facetoface_vectors.json"), &v))
	sb := newTestSandbox(t, func(h *Handler) { h.CallbackHosts = []string{"shop.example.com"} })
	r := httptest.NewRequest("POST", "http://127.0.0.1:8081/gateway.do?"+v.Precreate.RawQuery, strings.NewReader(v.Precreate.RawBody))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded;charset=UTF-8")
	a := apiAnswer(t, serve(t, sb, r), "alipay.trade.precreate", protocol.SignTypeRSA2)
	assertAPIFields(t, map[string]any{"code": "10000", "out_trade_no": "20240520131415000003"}, a)
	assert.True(t, strings.HasPrefix(a["qr_code"].(string), "http://127.0.0.1:8081/sandbox/qr/"), a["qr_code"])
}

// The outcome that each auth code's last four digits choose.
func TestBarcodeOutcomes(t *testing.T) {
	w := newWorld(t, nil)

	// Any other: paid at once, with Alipay's fields, and notified.
	a := w.barcode(t, "BC0", "0.01", "280000000000000000")
	assertAPIFields(t, map[string]any{"code": "10000", "msg": "Success", "out_trade_no": "BC0", "total_amount": "0.01",
		"receipt_amount": "0.01", "buyer_pay_amount": "0.01", "buyer_logon_id": sandboxBuyerLogon}, a)
	require.Len(t, a["trade_no"], 28)
	assert.NotEmpty(t, a["gmt_payment"])
	assert.Equal(t, []any{map[string]any{"amount": "0.01", "fund_channel": "ALIPAYACCOUNT"}}, a["fund_bill_list"])
	w.shop.waitNotify(t)
	assertStrings(t, map[string]string{"out_trade_no": "BC0", "trade_status": "TRADE_SUCCESS", "trade_no": a["trade_no"].(string)}, w.lastNotify(t))
	assertAPIFields(t, map[string]any{"trade_status": "TRADE_SUCCESS"}, w.query(t, "BC0"))
	d := tradeJSON(t, w.sandbox, "BC0")[0]
	assert.Equal(t, "barcode", d.Product)
	assert.Equal(t, "alipay.trade.pay", d.Method)
	assert.Contains(t, tradePage(t, w.sandbox, "BC0"), "barcode 当面付条码")
	assert.Equal(t, http.StatusNotFound, serve(t, w.sandbox, httptest.NewRequest("GET", "http://sandbox.test"+cashierPrefix+d.ID, nil)).Code,
		"a barcode payment has no cashier")
	assertAPIFields(t, map[string]any{"code": "40004", "sub_code": "ACQ.TRADE_HAS_SUCCESS"}, w.barcode(t, "BC0", "0.01", "280000000000000000"))

	// 1111: waiting, then paid 2 s later by the sandbox's clock.
	a = w.barcode(t, "BC1", "1.11", "280000000000001111")
	assertAPIFields(t, map[string]any{"code": "10003", "msg": "Waiting Payment", "sub_msg": "等待用户付款", "out_trade_no": "BC1"}, a)
	require.Len(t, a["trade_no"], 28)
	assertAPIFields(t, map[string]any{"code": "10000", "trade_status": "WAIT_BUYER_PAY"}, w.query(t, "BC1"))
	advanceClock(t, barcodeConfirmDelay)
	assertAPIFields(t, map[string]any{"trade_status": "TRADE_SUCCESS", "trade_no": a["trade_no"]}, w.query(t, "BC1"))
	w.shop.waitNotify(t)
	assertStrings(t, map[string]string{"out_trade_no": "BC1", "trade_status": "TRADE_SUCCESS"}, w.lastNotify(t))

	// 2222: waiting for ever; cancel closes it, and sends nothing.
	assertAPIFields(t, map[string]any{"code": "10003"}, w.barcode(t, "BC2", "2.22", "280000000000002222"))
	advanceClock(t, time.Hour)
	assertAPIFields(t, map[string]any{"trade_status": "WAIT_BUYER_PAY"}, w.query(t, "BC2"))
	assertAPIFields(t, map[string]any{"code": "10003"}, w.barcode(t, "BC2", "2.22", "280000000000002222")) // the same order again: still waiting
	c := apiCall(t, w.sandbox, "alipay.trade.cancel", map[string]any{"out_trade_no": "BC2"})
	assertAPIFields(t, map[string]any{"code": "10000", "action": "close", "retry_flag": "N", "out_trade_no": "BC2"}, c)
	assertAPIFields(t, map[string]any{"trade_status": "TRADE_CLOSED"}, w.query(t, "BC2"))
	w.shop.noArrival(t, 30*time.Millisecond, "closed unpaid")

	// 3333: an invalid code, no trade.
	assertAPIFields(t, map[string]any{"code": "40004", "sub_code": "ACQ.PAYMENT_AUTH_CODE_INVALID"}, w.barcode(t, "BC3", "3.33", "280000000000003333"))
	assertAPIFields(t, notExist, w.query(t, "BC3"))

	// 4444: 20000 on pay, signed, while the trade is paid.
	a = w.barcode(t, "BC4", "4.44", "280000000000004444")
	assert.Equal(t, map[string]any{"code": "20000", "msg": "Service Currently Unavailable", "sub_code": "ACQ.SYSTEM_ERROR", "sub_msg": "系统异常"}, a)
	assertAPIFields(t, map[string]any{"trade_status": "TRADE_SUCCESS", "total_amount": "4.44"}, w.query(t, "BC4"))
	w.shop.waitNotify(t)
	assertStrings(t, map[string]string{"out_trade_no": "BC4", "trade_status": "TRADE_SUCCESS"}, w.lastNotify(t))

	// Cancel of a paid one refunds it, with the refund's notification.
	c = apiCall(t, w.sandbox, "alipay.trade.cancel", map[string]any{"out_trade_no": "BC0"})
	assertAPIFields(t, map[string]any{"code": "10000", "action": "refund", "retry_flag": "N"}, c)
	w.shop.waitNotify(t)
	assertStrings(t, map[string]string{"out_trade_no": "BC0", "trade_status": "TRADE_CLOSED", "refund_fee": "0.01"}, w.lastNotify(t))
}

// A 1111 payment is paid by the store's timer too, with nothing reading
// it meanwhile; one cancelled before its time stays closed.
func TestBarcodeConfirmTimer(t *testing.T) {
	old := barcodeConfirmDelay
	barcodeConfirmDelay = 30 * time.Millisecond
	t.Cleanup(func() { barcodeConfirmDelay = old })
	w := newWorld(t, nil)
	assertAPIFields(t, map[string]any{"code": "10003"}, w.barcode(t, "BT1", "1.00", "280000000000001111"))
	w.shop.waitNotify(t)
	assertStrings(t, map[string]string{"out_trade_no": "BT1", "trade_status": "TRADE_SUCCESS"}, w.lastNotify(t))

	barcodeConfirmDelay = time.Hour
	assertAPIFields(t, map[string]any{"code": "10003"}, w.barcode(t, "BT2", "1.00", "250000000000001111"))
	assertAPIFields(t, map[string]any{"action": "close"}, apiCall(t, w.sandbox, "alipay.trade.cancel", map[string]any{"out_trade_no": "BT2"}))
	advanceClock(t, 2*time.Hour)
	assertAPIFields(t, map[string]any{"trade_status": "TRADE_CLOSED"}, w.query(t, "BT2"))
	w.shop.noArrival(t, 30*time.Millisecond, "cancelled before it was paid")
}

// Codes that are not a buyer's payment code, and bad fields.
func TestBarcodeRefused(t *testing.T) {
	w := newWorld(t, nil)
	biz := func(edit map[string]any) map[string]any {
		b := map[string]any{"out_trade_no": "BR", "total_amount": "1.00", "subject": "s", "scene": "bar_code", "auth_code": "280000000000000000"}
		for k, v := range edit {
			if v == nil {
				delete(b, k)
			} else {
				b[k] = v
			}
		}
		return b
	}
	for _, code := range []any{"", "12345", "280000000000000", "2800000000000000000000000", "310000000000000000", "240000000000000000", "28000000000000000a", 280000000000000000} {
		f := callWith(t, w.sandbox, "alipay.trade.pay", biz(map[string]any{"auth_code": code}), nil)
		assert.Equal(t, "ACQ.PAYMENT_AUTH_CODE_INVALID", f["sub_code"], "%v", code)
	}
	for _, code := range []string{"2500000000000000", "300000000000000000000000"} {
		f := callWith(t, w.sandbox, "alipay.trade.pay", biz(map[string]any{"auth_code": code, "out_trade_no": "BR" + code[:2]}), nil)
		assert.Equal(t, "10000", f["code"], code)
	}
	for name, edit := range map[string]map[string]any{
		"no scene":     {"scene": nil},
		"scene":        {"scene": "qr_code"},
		"product_code": {"product_code": "QUICK_MSECURITY_PAY"},
		"amount":       {"total_amount": "-1"},
		"subject":      {"subject": nil},
	} {
		f := callWith(t, w.sandbox, "alipay.trade.pay", biz(edit), nil)
		assert.Equal(t, "ACQ.INVALID_PARAMETER", f["sub_code"], name)
	}
	assertAPIFields(t, map[string]any{"code": "10000"}, callWith(t, w.sandbox, "alipay.trade.pay", biz(map[string]any{"scene": "wave_code"}), nil))
	// An order number of another product is not paid by barcode.
	w.openTestOrder(t, "PG1", "1.00", "s")
	assertAPIFields(t, map[string]any{"code": "40004", "sub_code": "ACQ.CONTEXT_INCONSISTENT"},
		callWith(t, w.sandbox, "alipay.trade.pay", biz(map[string]any{"out_trade_no": "PG1", "subject": "s"}), nil))
}

// testClock is the sidecar's barcode clock on the sandbox's: Sleep
// moves the package clock on at once, so that the whole poll-and-cancel
// flow runs without waiting.
type testClock struct{ slept atomic.Int64 }

func (*testClock) Now() time.Time { return now() }

func (c *testClock) Sleep(_ context.Context, d time.Duration) error {
	c.slept.Add(int64(d))
	clockShift.Add(int64(d))
	return nil
}

// The sidecar's own barcode flow (protocol.Barcode) against the sandbox,
// for each outcome.
func TestBarcodeSidecarFlow(t *testing.T) {
	w := newWorld(t, nil)
	gateway := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) { _ = w.sandbox.ServeHTTP(rw, r, upstream{}) }))
	t.Cleanup(gateway.Close)
	api := merchantAPI(t, protocol.SignTypeRSA2)
	api.Gateway = gateway.URL + "/gateway.do"
	clock := &testClock{}
	t.Cleanup(func() { clockShift.Add(-clock.slept.Load()) })
	b := &protocol.Barcode{Client: &protocol.Client{API: api, HTTP: http.DefaultClient, Timeout: 10 * time.Second, Now: now}, Clock: clock}
	for code, want := range map[string]string{
		"280000000000000000": protocol.BarcodePaid,
		"280000000000001111": protocol.BarcodePaid,
		"280000000000002222": protocol.BarcodeCancelled,
		"280000000000003333": protocol.BarcodeFailed,
		"280000000000004444": protocol.BarcodePaid,
	} {
		no := "SF" + code[len(code)-4:]
		biz, err := protocol.BarcodeBiz(map[string]json.RawMessage{"out_trade_no": raw(no), "total_amount": raw("9.99"),
			"subject": raw("sidecar"), "auth_code": raw(code)})
		require.NoError(t, err)
		res, err := b.Pay(context.Background(), biz, w.site.URL+"/alipay/notify")
		require.NoError(t, err, code)
		assert.Equal(t, want, res.Result, code)
		if want == protocol.BarcodeCancelled {
			last := res.Steps[len(res.Steps)-1]
			assert.Equal(t, "alipay.trade.cancel", last.Method)
			assert.Contains(t, string(last.Response), `"action":"close"`)
		}
	}
}

func raw(s string) json.RawMessage { b, _ := json.Marshal(s); return b }

// In certificate mode the face-to-face answers name the sandbox's
// certificate, as every answer does.
func TestFaceToFaceCertificateMode(t *testing.T) {
	w := newWorld(t, func(s *Handler) { s.Certificates = t.TempDir() })
	c := w.sandbox.certs
	for method, biz := range map[string]map[string]any{
		"alipay.trade.precreate": {"out_trade_no": "CQ1", "total_amount": "1.00", "subject": "s"},
		"alipay.trade.pay":       {"out_trade_no": "CB1", "total_amount": "1.00", "subject": "s", "scene": "bar_code", "auth_code": "280000000000000000"},
	} {
		content, err := protocol.MarshalJSON(biz)
		require.NoError(t, err)
		api := merchantAPI(t, protocol.SignTypeRSA2)
		api.AppCertSN, api.RootCertSN = c.appCertSN, c.rootCertSN
		p := api.RequestParams(method, content, time.Now())
		require.NoError(t, protocol.SignParams(api.Signer, p))
		rec := serve(t, w.sandbox, httptest.NewRequest("GET", "http://sandbox.test/gateway.do?"+protocol.Encode(p), nil))
		resp, err := protocol.ParseResponse(rec.Body.Bytes(), method)
		require.NoError(t, err, rec.Body.String())
		assert.Equal(t, c.alipayCertSN, resp.CertSN, method)
		assert.Contains(t, string(resp.Raw), `"code":"10000"`, method)
	}
}
