package sandbox

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddy-alipay/caddy-alipay/internal/protocol"
	"github.com/caddy-alipay/caddy-alipay/internal/protocol/protocoltest"
	"github.com/caddy-alipay/caddy-alipay/internal/testvec"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// apiRequest signs an OpenAPI call with the app's key and builds it as the
// SDKs' exec() sends it: the common parameters (sign included) in the
// gateway URL's query, biz_content in an x-www-form-urlencoded POST body;
// or, for GET, everything in the query. edit may change the parameters
// after signing.
func apiRequest(t testing.TB, httpMethod, appID, method, signType string, biz any, edit func(map[string]string)) *http.Request {
	t.Helper()
	content, err := protocol.MarshalJSON(biz)
	require.NoError(t, err)
	api := merchantAPI(t, signType)
	api.AppID = appID
	p := api.RequestParams(method, content, time.Now())
	require.NoError(t, protocol.SignParams(api.Signer, p))
	if edit != nil {
		edit(p)
	}
	q := url.Values{}
	for k, v := range p {
		q.Set(k, v)
	}
	if httpMethod == http.MethodGet {
		return httptest.NewRequest("GET", "http://sandbox.test/gateway.do?"+q.Encode(), nil)
	}
	body := url.Values{"biz_content": {q.Get("biz_content")}}
	q.Del("biz_content")
	r := httptest.NewRequest("POST", "http://sandbox.test/gateway.do?"+q.Encode(), strings.NewReader(body.Encode()))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded;charset=utf-8")
	return r
}

// apiCall POSTs a signed call for testAppID (RSA2) and returns the verified
// response value.
func apiCall(t testing.TB, sb *Handler, method string, biz any) map[string]any {
	t.Helper()
	return apiAnswer(t, serve(t, sb, apiRequest(t, "POST", testAppID, method, protocol.SignTypeRSA2, biz, nil)), method, protocol.SignTypeRSA2)
}

// apiAnswer reads a response as the sidecar will: the method's
// *_response, its sign verified with Alipay's public key over the raw text.
func apiAnswer(t testing.TB, rec *httptest.ResponseRecorder, method, signType string) map[string]any {
	t.Helper()
	require.Equal(t, http.StatusOK, rec.Code)
	assert.Equal(t, "application/json;charset=utf-8", rec.Header().Get("Content-Type"))
	resp, err := protocol.ParseResponse(rec.Body.Bytes(), method)
	require.NoError(t, err, rec.Body.String())
	require.False(t, resp.IsError, rec.Body.String())
	require.NoError(t, resp.Verify(protocoltest.Verifier(t, "alipay_public_key.pem", signType)), rec.Body.String())
	require.True(t, strings.HasPrefix(string(resp.Raw), `{"code":"`), "code comes first: %s", resp.Raw)
	var f map[string]any
	require.NoError(t, json.Unmarshal(resp.Raw, &f))
	return f
}

// apiError reads an unsigned error_response.
func apiError(t testing.TB, rec *httptest.ResponseRecorder, method string) map[string]any {
	t.Helper()
	require.Equal(t, http.StatusOK, rec.Code)
	resp, err := protocol.ParseResponse(rec.Body.Bytes(), method)
	require.NoError(t, err, rec.Body.String())
	require.True(t, resp.IsError, rec.Body.String())
	assert.Empty(t, resp.Sign)
	assert.NotContains(t, rec.Body.String(), `"sign"`)
	var f map[string]any
	require.NoError(t, json.Unmarshal(resp.Raw, &f))
	return f
}

func assertAPIFields(t *testing.T, want map[string]any, got map[string]any) {
	t.Helper()
	for k, v := range want {
		assert.Equal(t, v, got[k], k)
	}
}

// Query before and after paying at the cashier, refund part, retry, refund
// the rest, query the refunds: the answers follow the cashier's state and
// verify as Alipay's do.
func TestSandboxAPIQueryAndRefund(t *testing.T) {
	w := newWorld(t, nil)
	sb := w.sandbox
	pay := w.openTestOrder(t, "API1", "88.8", "沙箱 <退款> 测试")

	q := apiCall(t, sb, "alipay.trade.query", map[string]any{"out_trade_no": "API1"})
	assertAPIFields(t, map[string]any{"code": "10000", "msg": "Success", "out_trade_no": "API1", "trade_status": "WAIT_BUYER_PAY",
		"total_amount": "88.80", "buyer_pay_amount": "0.00", "receipt_amount": "0.00"}, q)
	for _, k := range []string{"send_pay_date", "buyer_user_id", "buyer_logon_id", "sub_code"} {
		assert.NotContains(t, q, k)
	}
	tradeNo, _ := q["trade_no"].(string)
	require.Len(t, tradeNo, 28)
	// By trade_no, and through GET, the same trade.
	byNo := apiAnswer(t, serve(t, sb, apiRequest(t, "GET", testAppID, "alipay.trade.query", protocol.SignTypeRSA2,
		map[string]any{"trade_no": tradeNo}, nil)), "alipay.trade.query", protocol.SignTypeRSA2)
	assert.Equal(t, q, byNo)

	require.Equal(t, http.StatusFound, w.postCashier(t, pay).Code)
	w.shop.waitNotify(t)
	rec := serve(t, sb, apiRequest(t, "POST", testAppID, "alipay.trade.query", protocol.SignTypeRSA2, map[string]any{"out_trade_no": "API1"}, nil))
	assert.Contains(t, rec.Body.String(), `"subject":"沙箱 <退款> 测试"`, "Chinese and HTML characters as themselves")
	q = apiAnswer(t, rec, "alipay.trade.query", protocol.SignTypeRSA2)
	assertAPIFields(t, map[string]any{"code": "10000", "trade_no": tradeNo, "trade_status": "TRADE_SUCCESS", "total_amount": "88.80",
		"buyer_pay_amount": "88.80", "receipt_amount": "88.80", "invoice_amount": "88.80", "point_amount": "0.00",
		"buyer_user_id": sandboxBuyerID, "buyer_logon_id": sandboxBuyerLogon,
		"fund_bill_list": []any{map[string]any{"amount": "88.80", "fund_channel": "ALIPAYACCOUNT"}}}, q)
	_, err := protocol.ParseTimestamp(q["send_pay_date"].(string))
	assert.NoError(t, err)

	// A partial refund; its retry refunds nothing more.
	refund := func(biz map[string]any) map[string]any { return apiCall(t, sb, "alipay.trade.refund", biz) }
	r := refund(map[string]any{"out_trade_no": "API1", "refund_amount": "10", "out_request_no": "R1", "refund_reason": "七天无理由"})
	assertAPIFields(t, map[string]any{"code": "10000", "msg": "Success", "fund_change": "Y", "refund_fee": "10.00", "send_back_fee": "10.00",
		"trade_no": tradeNo, "out_trade_no": "API1", "buyer_user_id": sandboxBuyerID, "buyer_logon_id": sandboxBuyerLogon}, r)
	gmtR1 := r["gmt_refund_pay"]
	require.NotEmpty(t, gmtR1)
	r = refund(map[string]any{"trade_no": tradeNo, "refund_amount": 10.00, "out_request_no": "R1"})
	assertAPIFields(t, map[string]any{"code": "10000", "fund_change": "N", "refund_fee": "10.00", "send_back_fee": "10.00", "gmt_refund_pay": gmtR1}, r)
	// The same out_request_no for another amount is refused.
	r = refund(map[string]any{"out_trade_no": "API1", "refund_amount": "20.00", "out_request_no": "R1"})
	assertAPIFields(t, map[string]any{"code": "40004", "msg": "Business Failed", "sub_code": "ACQ.REFUND_AMT_NOT_EQUAL_TOTAL"}, r)
	// More than is left is refused.
	r = refund(map[string]any{"out_trade_no": "API1", "refund_amount": "78.81", "out_request_no": "R2"})
	assertAPIFields(t, map[string]any{"code": "40004", "sub_code": "ACQ.REFUND_AMT_NOT_EQUAL_TOTAL"}, r)
	for _, bad := range []any{"0", "-1", "1.001", "abc", nil} {
		r = refund(map[string]any{"out_trade_no": "API1", "refund_amount": bad, "out_request_no": "R2"})
		assertAPIFields(t, map[string]any{"code": "40004", "sub_code": "ACQ.INVALID_PARAMETER"}, r)
	}
	q = apiCall(t, sb, "alipay.trade.query", map[string]any{"out_trade_no": "API1"})
	assert.Equal(t, "TRADE_SUCCESS", q["trade_status"], "partly refunded")

	// The rest: the trade closes.
	r = refund(map[string]any{"out_trade_no": "API1", "refund_amount": "78.80", "out_request_no": "R2"})
	assertAPIFields(t, map[string]any{"code": "10000", "fund_change": "Y", "refund_fee": "88.80", "send_back_fee": "78.80"}, r)
	q = apiCall(t, sb, "alipay.trade.query", map[string]any{"out_trade_no": "API1"})
	assertAPIFields(t, map[string]any{"code": "10000", "trade_status": "TRADE_CLOSED", "buyer_pay_amount": "88.80"}, q)
	r = refund(map[string]any{"out_trade_no": "API1", "refund_amount": "0.01", "out_request_no": "R3"})
	assertAPIFields(t, map[string]any{"code": "40004", "sub_code": "ACQ.TRADE_HAS_CLOSE"}, r)
	r = refund(map[string]any{"out_trade_no": "API1", "refund_amount": "10.00", "out_request_no": "R1"})
	assertAPIFields(t, map[string]any{"code": "10000", "fund_change": "N", "refund_fee": "88.80", "send_back_fee": "10.00"}, r)

	// The refunds, queried.
	rq := apiCall(t, sb, "alipay.trade.fastpay.refund.query", map[string]any{"out_trade_no": "API1", "out_request_no": "R1"})
	assertAPIFields(t, map[string]any{"code": "10000", "msg": "Success", "out_request_no": "R1", "refund_amount": "10.00", "total_amount": "88.80",
		"refund_status": "REFUND_SUCCESS", "trade_no": tradeNo, "out_trade_no": "API1", "gmt_refund_pay": gmtR1, "refund_reason": "七天无理由"}, rq)
	rq = apiCall(t, sb, "alipay.trade.fastpay.refund.query", map[string]any{"trade_no": tradeNo, "out_request_no": "R2"})
	assertAPIFields(t, map[string]any{"code": "10000", "refund_amount": "78.80"}, rq)
	rq = apiCall(t, sb, "alipay.trade.fastpay.refund.query", map[string]any{"out_trade_no": "API1", "out_request_no": "R3"})
	assert.Equal(t, map[string]any{"code": "10000", "msg": "Success"}, rq, "a refund that did not happen: an empty success, as Alipay's")
	rq = apiCall(t, sb, "alipay.trade.fastpay.refund.query", map[string]any{"out_trade_no": "API1"})
	assertAPIFields(t, map[string]any{"code": "40004", "sub_code": "ACQ.INVALID_PARAMETER"}, rq)

	// A paid trade cannot be closed.
	c := apiCall(t, sb, "alipay.trade.close", map[string]any{"out_trade_no": "API1"})
	assertAPIFields(t, map[string]any{"code": "40004", "msg": "Business Failed", "sub_code": "ACQ.TRADE_STATUS_ERROR"}, c)

	// A retried payment notification still tells of the payment.
	notices := sb.trades.snapshot(sb.trades.find(testAppID, "", "API1")).notices
	require.NotEmpty(t, notices)
	assert.Equal(t, "TRADE_SUCCESS", notices[0].fields["trade_status"])
	assert.Empty(t, notices[0].fields["refund_fee"])
}

// Without out_request_no a refund is the trade's one refund: asked again,
// it refunds once.
func TestSandboxAPIRefundWithoutRequestNo(t *testing.T) {
	w := newWorld(t, nil)
	require.Equal(t, http.StatusFound, w.postCashier(t, w.openTestOrder(t, "API2", "5", "s")).Code)
	for _, change := range []string{"Y", "N"} {
		r := apiCall(t, w.sandbox, "alipay.trade.refund", map[string]any{"out_trade_no": "API2", "refund_amount": "1.50"})
		assertAPIFields(t, map[string]any{"code": "10000", "fund_change": change, "refund_fee": "1.50"}, r)
	}
	rq := apiCall(t, w.sandbox, "alipay.trade.fastpay.refund.query", map[string]any{"out_trade_no": "API2", "out_request_no": "API2"})
	assertAPIFields(t, map[string]any{"code": "10000", "refund_amount": "1.50", "total_amount": "5.00"}, rq)
}

// Many retries of one refund at once: the money moves once.
func TestSandboxAPIRefundConcurrentRetries(t *testing.T) {
	w := newWorld(t, nil)
	require.Equal(t, http.StatusFound, w.postCashier(t, w.openTestOrder(t, "API3", "100", "s")).Code)
	var wg sync.WaitGroup
	recs := make([]*httptest.ResponseRecorder, 16)
	for i := range recs {
		r := apiRequest(t, "POST", testAppID, "alipay.trade.refund", protocol.SignTypeRSA2,
			map[string]any{"out_trade_no": "API3", "refund_amount": "30", "out_request_no": "once"}, nil)
		recs[i] = httptest.NewRecorder()
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = w.sandbox.ServeHTTP(recs[i], r, upstream{})
		}()
	}
	wg.Wait()
	moved := 0
	for _, rec := range recs {
		f := apiAnswer(t, rec, "alipay.trade.refund", protocol.SignTypeRSA2)
		assertAPIFields(t, map[string]any{"code": "10000", "refund_fee": "30.00"}, f)
		if f["fund_change"] == "Y" {
			moved++
		}
	}
	assert.Equal(t, 1, moved)
}

// Closing an unpaid trade: the cashier can no longer pay, the gateway does
// not reopen it, nothing is refunded.
func TestSandboxAPIClose(t *testing.T) {
	w := newWorld(t, nil)
	sb := w.sandbox
	pay := w.openTestOrder(t, "API4", "12.34", "close me")
	r := apiCall(t, sb, "alipay.trade.refund", map[string]any{"out_trade_no": "API4", "refund_amount": "1"})
	assertAPIFields(t, map[string]any{"code": "40004", "sub_code": "ACQ.TRADE_STATUS_ERROR"}, r)

	c := apiCall(t, sb, "alipay.trade.close", map[string]any{"out_trade_no": "API4"})
	assertAPIFields(t, map[string]any{"code": "10000", "msg": "Success", "out_trade_no": "API4"}, c)
	require.Len(t, c["trade_no"], 28)
	c = apiCall(t, sb, "alipay.trade.close", map[string]any{"trade_no": c["trade_no"]})
	assertAPIFields(t, map[string]any{"code": "10000"}, c)
	q := apiCall(t, sb, "alipay.trade.query", map[string]any{"out_trade_no": "API4"})
	assertAPIFields(t, map[string]any{"code": "10000", "trade_status": "TRADE_CLOSED", "total_amount": "12.34", "buyer_pay_amount": "0.00"}, q)
	assert.NotContains(t, q, "send_pay_date")

	rec := w.postCashier(t, pay)
	assert.Equal(t, http.StatusConflict, rec.Code)
	assert.Contains(t, rec.Body.String(), `<b id="error-code">ACQ.TRADE_HAS_CLOSE</b>`)
	page := serve(t, sb, httptest.NewRequest("GET", "http://sandbox.test"+strings.TrimSuffix(pay, "/pay"), nil))
	assert.Equal(t, http.StatusConflict, page.Code)
	assert.NotContains(t, page.Body.String(), `id="pay"`)
	reopen := w.startPay(t, map[string]any{"out_trade_no": "API4", "total_amount": "12.34", "subject": "close me"})
	assert.Equal(t, http.StatusBadRequest, reopen.Code)
	assert.Contains(t, reopen.Body.String(), "ACQ.TRADE_HAS_CLOSE")
	r = apiCall(t, sb, "alipay.trade.refund", map[string]any{"out_trade_no": "API4", "refund_amount": "1"})
	assertAPIFields(t, map[string]any{"code": "40004", "sub_code": "ACQ.TRADE_HAS_CLOSE"}, r)
	select {
	case <-w.shop.arrived:
		t.Fatal("a closed trade was notified")
	case <-time.After(50 * time.Millisecond):
	}
}

// Unknown trades, other apps' trades and bad business fields: signed
// business failures.
func TestSandboxAPIUnknownTrade(t *testing.T) {
	w := newWorld(t, nil)
	sb := w.sandbox
	w.openTestOrder(t, "API5", "1", "s")
	q := apiCall(t, sb, "alipay.trade.query", map[string]any{"out_trade_no": "NOPE"})
	assert.Equal(t, map[string]any{"code": "40004", "msg": "Business Failed", "sub_code": "ACQ.TRADE_NOT_EXIST", "sub_msg": "交易不存在",
		"out_trade_no": "NOPE", "buyer_pay_amount": "0.00", "invoice_amount": "0.00", "point_amount": "0.00", "receipt_amount": "0.00"}, q)
	for _, m := range []string{"alipay.trade.refund", "alipay.trade.fastpay.refund.query", "alipay.trade.close"} {
		f := apiCall(t, sb, m, map[string]any{"trade_no": "2024052022001000000000000000", "refund_amount": "1", "out_request_no": "x"})
		assertAPIFields(t, map[string]any{"code": "40004", "sub_code": "ACQ.TRADE_NOT_EXIST"}, f)
	}
	tradeNo := apiCall(t, sb, "alipay.trade.query", map[string]any{"out_trade_no": "API5"})["trade_no"]
	f := apiCall(t, sb, "alipay.trade.query", map[string]any{"out_trade_no": "OTHER", "trade_no": tradeNo})
	assertAPIFields(t, map[string]any{"sub_code": "ACQ.TRADE_NOT_EXIST"}, f)
	// Another app (signed with the same key) sees none of them.
	for _, biz := range []map[string]any{{"out_trade_no": "API5"}, {"trade_no": tradeNo}} {
		rec := serve(t, sb, apiRequest(t, "POST", "2021000000000002", "alipay.trade.query", protocol.SignTypeRSA2, biz, nil))
		assertAPIFields(t, map[string]any{"sub_code": "ACQ.TRADE_NOT_EXIST"}, apiAnswer(t, rec, "alipay.trade.query", protocol.SignTypeRSA2))
	}
	f = apiCall(t, sb, "alipay.trade.query", map[string]any{})
	assertAPIFields(t, map[string]any{"code": "40004", "sub_code": "ACQ.INVALID_PARAMETER"}, f)
	f = apiCall(t, sb, "alipay.trade.query", []string{"API5"})
	assertAPIFields(t, map[string]any{"code": "40004", "sub_code": "ACQ.INVALID_PARAMETER"}, f)
}

// What Alipay's Node SDK exec() sends (the vector, signed in 2024) is
// answered like any call.
func TestSandboxAPINodeSDKRequest(t *testing.T) {
	vec := testvec.Load(t)
	w := newWorld(t, nil)
	w.openTestOrder(t, "20240520131415000001", "88.88", "vector")
	u, err := url.Parse(vec.TradeQry.PostURL)
	require.NoError(t, err)
	r := httptest.NewRequest("POST", "http://sandbox.test/gateway.do?"+u.RawQuery, strings.NewReader(vec.TradeQry.PostBody))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded;charset=utf-8")
	f := apiAnswer(t, serve(t, w.sandbox, r), "alipay.trade.query", protocol.SignTypeRSA2)
	assertAPIFields(t, map[string]any{"code": "10000", "out_trade_no": "20240520131415000001", "trade_status": "WAIT_BUYER_PAY", "total_amount": "88.88"}, f)
}

// A request signed with the legacy RSA type is answered with RSA.
func TestSandboxAPISignTypeRSA(t *testing.T) {
	w := newWorld(t, nil)
	w.openTestOrder(t, "API6", "2", "s")
	rec := serve(t, w.sandbox, apiRequest(t, "POST", testAppID, "alipay.trade.query", protocol.SignTypeRSA, map[string]any{"out_trade_no": "API6"}, nil))
	assertAPIFields(t, map[string]any{"code": "10000", "trade_status": "WAIT_BUYER_PAY"}, apiAnswer(t, rec, "alipay.trade.query", protocol.SignTypeRSA))
	resp, err := protocol.ParseResponse(rec.Body.Bytes(), "alipay.trade.query")
	require.NoError(t, err)
	assert.Error(t, resp.Verify(protocoltest.Verifier(t, "alipay_public_key.pem", protocol.SignTypeRSA2)))
}

// Requests that fail the gateway's own checks get an unsigned
// error_response, never the HTML page.
func TestSandboxAPIGatewayErrors(t *testing.T) {
	w := newWorld(t, nil)
	sb := w.sandbox
	w.openTestOrder(t, "API7", "1", "s")
	biz := map[string]any{"out_trade_no": "API7"}
	for name, c := range map[string]struct {
		method  string
		edit    func(map[string]string)
		code    string
		subCode string
	}{
		"tampered":     {"alipay.trade.query", func(p map[string]string) { p["biz_content"] = `{"out_trade_no":"API8"}` }, "40002", "isv.invalid-signature"},
		"bad sign":     {"alipay.trade.query", func(p map[string]string) { p["sign"] = "AAAA" }, "40002", "isv.invalid-signature"},
		"no sign":      {"alipay.trade.query", func(p map[string]string) { delete(p, "sign") }, "40001", "isv.missing-signature"},
		"no timestamp": {"alipay.trade.query", func(p map[string]string) { delete(p, "timestamp") }, "40001", "isv.missing-timestamp"},
		"gbk":          {"alipay.trade.query", func(p map[string]string) { p["charset"] = "GBK" }, "40002", "isv.invalid-charset"},
		"sign type":    {"alipay.trade.query", func(p map[string]string) { p["sign_type"] = "MD5" }, "40002", "isv.invalid-signature-type"},
		"unknown":      {"alipay.trade.create", nil, "40002", "isv.invalid-method"},
		"bad timestamp": {"alipay.trade.query", func(p map[string]string) {
			p["timestamp"] = "yesterday"
			require.NoError(t, protocol.SignParams(protocoltest.Signer(t, "app_private_key_pkcs1.pem", protocol.SignTypeRSA2), p))
		}, "40002", "isv.invalid-timestamp"},
	} {
		t.Run(name, func(t *testing.T) {
			rec := serve(t, sb, apiRequest(t, "POST", testAppID, c.method, protocol.SignTypeRSA2, biz, c.edit))
			f := apiError(t, rec, c.method)
			assert.Equal(t, c.code, f["code"])
			assert.Equal(t, c.subCode, f["sub_code"])
			assert.NotEmpty(t, f["sub_msg"])
		})
	}
	// The answer to a bad signature shows the string the gateway verified.
	rec := serve(t, sb, apiRequest(t, "GET", testAppID, "alipay.trade.query", protocol.SignTypeRSA2, biz, func(p map[string]string) { p["app_id"] = "2021000000000009" }))
	f := apiError(t, rec, "alipay.trade.query")
	assert.Equal(t, "isv.invalid-signature", f["sub_code"])
	assert.Contains(t, f["sub_msg"], `app_id=2021000000000009&biz_content={"out_trade_no":"API7"}&charset=utf-8`)
	// A parameter given twice.
	r := apiRequest(t, "POST", testAppID, "alipay.trade.query", protocol.SignTypeRSA2, biz, nil)
	r.URL.RawQuery += "&biz_content=x"
	f = apiError(t, serve(t, sb, r), "alipay.trade.query")
	assert.Equal(t, "isv.invalid-parameter", f["sub_code"])
}
