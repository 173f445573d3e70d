package sandbox

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/caddy-alipay/caddy-alipay/internal/protocol"
	"github.com/caddy-alipay/caddy-alipay/internal/protocol/protocoltest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// A v3Req is an OpenAPI v3 call as the app signs it; the fields left
// empty take the usual values.
type v3Req struct {
	method          string // the v2 method name
	body            string
	appCertSN       string
	nonce           string
	at              time.Time
	encrypt         bool
	edit            func(r *http.Request) // after signing
	tamperSignature bool
}

var v3NonceSeq int

// v3Call signs and serves c, as Alipay's SDKs send a v3 call.
func v3Call(t *testing.T, sb *Handler, c v3Req) *httptest.ResponseRecorder {
	t.Helper()
	if c.nonce == "" {
		v3NonceSeq++
		c.nonce = "nonce-" + strconv.Itoa(v3NonceSeq) + "-" + randomHex(4)
	}
	if c.at.IsZero() {
		c.at = now()
	}
	body := c.body
	if c.encrypt {
		k, err := protocol.NewContentKey(testEncryptKey)
		require.NoError(t, err)
		body = k.Encrypt([]byte(body))
	}
	path := protocol.V3Path(c.method)
	auth := protocol.V3AuthString(testAppID, c.appCertSN, c.nonce, c.at)
	header, err := protocol.V3Authorization(protocoltest.Signer(t, "app_private_key_pkcs1.pem", protocol.SignTypeRSA2), auth, "POST", path, body)
	require.NoError(t, err)
	if c.tamperSignature {
		header = strings.Replace(header, "sign=", "sign=AAAA", 1)
	}
	r := httptest.NewRequest("POST", "http://sandbox.test"+path, strings.NewReader(body))
	r.Header.Set("authorization", header)
	r.Header.Set("content-type", "application/json")
	if c.encrypt {
		r.Header.Set("content-type", "text/plain")
		r.Header.Set("alipay-encrypt-type", "AES")
		r.Header.Set("alipay-encryption-algm", "AES")
	}
	if c.edit != nil {
		c.edit(r)
	}
	return serve(t, sb, r)
}

// v3Verified checks an answer's signature as the SDKs do and returns its
// body.
func v3Verified(t *testing.T, rec *httptest.ResponseRecorder) []byte {
	t.Helper()
	h := rec.Header()
	require.NotEmpty(t, h.Get("alipay-signature"), "signed: %d %s", rec.Code, rec.Body.String())
	ts, err := strconv.ParseInt(h.Get("alipay-timestamp"), 10, 64)
	require.NoError(t, err)
	assert.WithinDuration(t, now(), time.UnixMilli(ts), 5*time.Second)
	assert.NotEmpty(t, h.Get("alipay-nonce"))
	assert.NotEmpty(t, h.Get("alipay-trace-id"))
	v := protocoltest.Verifier(t, "alipay_public_key.pem", protocol.SignTypeRSA2)
	require.NoError(t, v.Verify(protocol.V3ResponseContent(h.Get("alipay-timestamp"), h.Get("alipay-nonce"), rec.Body.Bytes()), h.Get("alipay-signature")))
	return rec.Body.Bytes()
}

func v3JSON(t *testing.T, body []byte) map[string]any {
	t.Helper()
	var f map[string]any
	require.NoError(t, json.Unmarshal(body, &f), string(body))
	return f
}

// v3Refusal checks an unsigned refusal and returns its code.
func v3Refusal(t *testing.T, rec *httptest.ResponseRecorder, status int) string {
	t.Helper()
	require.Equal(t, status, rec.Code, rec.Body.String())
	assert.Empty(t, rec.Header().Get("alipay-signature"), "refusals are unsigned")
	f := v3JSON(t, rec.Body.Bytes())
	assert.NotEmpty(t, f["message"])
	assert.Equal(t, []any{}, f["links"])
	return f["code"].(string)
}

// A paid trade's v3 query answers 200, signed, the v2 fields without code
// and msg; an unknown one a signed 404 ACQ.TRADE_NOT_EXIST.
func TestV3Query(t *testing.T) {
	w := newWorld(t, nil)
	d := w.paidTrade(t, "V3Q1", "12.50")
	rec := v3Call(t, w.sandbox, v3Req{method: "alipay.trade.query", body: `{"out_trade_no":"V3Q1"}`})
	require.Equal(t, 200, rec.Code, rec.Body.String())
	assert.Equal(t, "application/json;charset=utf-8", rec.Header().Get("Content-Type"))
	f := v3JSON(t, v3Verified(t, rec))
	assertAPIFields(t, map[string]any{"out_trade_no": "V3Q1", "trade_no": d.TradeNo, "trade_status": "TRADE_SUCCESS",
		"total_amount": "12.50", "buyer_pay_amount": "12.50"}, f)
	assert.NotContains(t, f, "code")
	assert.NotContains(t, f, "msg")
	assert.Empty(t, rec.Header().Get("alipay-sn"))

	rec = v3Call(t, w.sandbox, v3Req{method: "alipay.trade.query", body: `{"out_trade_no":"V3NONE"}`})
	require.Equal(t, 404, rec.Code, rec.Body.String())
	assert.Equal(t, map[string]any{"code": "ACQ.TRADE_NOT_EXIST", "message": "交易不存在", "links": []any{}}, v3JSON(t, v3Verified(t, rec)))

	// Any other business failure is a signed 400.
	rec = v3Call(t, w.sandbox, v3Req{method: "alipay.trade.close", body: `{"out_trade_no":"V3Q1"}`})
	require.Equal(t, 400, rec.Code, rec.Body.String())
	assert.Equal(t, "ACQ.TRADE_STATUS_ERROR", v3JSON(t, v3Verified(t, rec))["code"])
	rec = v3Call(t, w.sandbox, v3Req{method: "alipay.trade.query", body: `[1]`})
	require.Equal(t, 400, rec.Code, rec.Body.String())
	assert.Equal(t, "ACQ.INVALID_PARAMETER", v3JSON(t, v3Verified(t, rec))["code"])
}

// Each refusal of the request itself: unsigned, in v3's error shape.
func TestV3Refusals(t *testing.T) {
	sb := newTestSandbox(t, nil)
	q := `{"out_trade_no":"X"}`
	assert.Equal(t, "invalid-signature", v3Refusal(t, v3Call(t, sb, v3Req{method: "alipay.trade.query", body: q, tamperSignature: true}), 401))
	assert.Equal(t, "invalid-signature", v3Refusal(t, v3Call(t, sb, v3Req{method: "alipay.trade.query", body: q,
		edit: func(r *http.Request) { r.Body = httptestBody(`{"out_trade_no":"Y"}`) }}), 401), "the body is signed")
	assert.Equal(t, "invalid-signature", v3Refusal(t, v3Call(t, sb, v3Req{method: "alipay.trade.query", body: q,
		edit: func(r *http.Request) { r.Header.Set("alipay-app-auth-token", "tok") }}), 401), "the app auth token is signed")
	assert.Equal(t, "invalid-timestamp", v3Refusal(t, v3Call(t, sb, v3Req{method: "alipay.trade.query", body: q, at: now().Add(-6 * time.Minute)}), 401))
	assert.Equal(t, "invalid-timestamp", v3Refusal(t, v3Call(t, sb, v3Req{method: "alipay.trade.query", body: q, at: now().Add(6 * time.Minute)}), 401))
	require.Equal(t, 404, v3Call(t, sb, v3Req{method: "alipay.trade.query", body: q, nonce: "once", at: now().Add(-4 * time.Minute)}).Code)
	assert.Equal(t, "invalid-nonce", v3Refusal(t, v3Call(t, sb, v3Req{method: "alipay.trade.query", body: q, nonce: "once"}), 401))
	assert.Equal(t, "invalid-auth", v3Refusal(t, v3Call(t, sb, v3Req{method: "alipay.trade.query", body: q,
		edit: func(r *http.Request) { r.Header.Del("authorization") }}), 401))
	assert.Equal(t, "invalid-auth", v3Refusal(t, v3Call(t, sb, v3Req{method: "alipay.trade.query", body: q,
		edit: func(r *http.Request) { r.Header.Set("authorization", "Bearer x") }}), 401))
	assert.Equal(t, "invalid-auth", v3Refusal(t, v3Call(t, sb, v3Req{method: "alipay.trade.query", body: q,
		edit: func(r *http.Request) {
			r.Header.Set("authorization", strings.Replace(r.Header.Get("authorization"), "app_id="+testAppID+",", "", 1))
		}}), 401), "no app_id")

	// Pairs in any order, with one the sandbox does not know: the sign
	// covers the auth string as sent.
	auth := "timestamp=" + strconv.FormatInt(now().UnixMilli(), 10) + ",nonce=reordered,app_id=" + testAppID + ",expired_seconds=600"
	header, err := protocol.V3Authorization(protocoltest.Signer(t, "app_private_key_pkcs1.pem", protocol.SignTypeRSA2), auth, "POST", "/v3/alipay/trade/query?x=1", q)
	require.NoError(t, err)
	r := httptest.NewRequest("POST", "http://sandbox.test/v3/alipay/trade/query?x=1", strings.NewReader(q))
	r.Header.Set("authorization", header)
	rec := serve(t, sb, r)
	require.Equal(t, 404, rec.Code, rec.Body.String())
	v3Verified(t, rec)

	// Paths and methods.
	assert.Equal(t, "isv.invalid-method", v3Refusal(t, serve(t, sb, httptest.NewRequest("POST", "http://sandbox.test/v3/alipay/trade/page/pay", nil)), 404))
	assert.Equal(t, "isv.invalid-http-method", v3Refusal(t, serve(t, sb, httptest.NewRequest("GET", "http://sandbox.test/v3/alipay/trade/query", nil)), 405))
}

func httptestBody(s string) *readCloser { return &readCloser{strings.NewReader(s)} }

type readCloser struct{ *strings.Reader }

func (readCloser) Close() error { return nil }

// In certificate mode app_cert_sn and alipay-root-cert-sn must name the
// sandbox's certificates, and answers carry alipay-sn.
func TestV3Certificates(t *testing.T) {
	w := newWorld(t, func(s *Handler) { s.Certificates = t.TempDir() })
	sb := w.sandbox
	c := sb.certs
	root := func(sn string) func(*http.Request) {
		return func(r *http.Request) { r.Header.Set("alipay-root-cert-sn", sn) }
	}
	q := `{"out_trade_no":"V3C"}`
	rec := v3Call(t, sb, v3Req{method: "alipay.trade.query", body: q, appCertSN: c.appCertSN, edit: root(c.rootCertSN)})
	require.Equal(t, 404, rec.Code, rec.Body.String())
	v3Verified(t, rec)
	assert.Equal(t, c.alipayCertSN, rec.Header().Get("alipay-sn"))

	assert.Equal(t, "invalid-app-cert-sn", v3Refusal(t, v3Call(t, sb, v3Req{method: "alipay.trade.query", body: q, appCertSN: "0123", edit: root(c.rootCertSN)}), 401))
	assert.Equal(t, "missing-app-cert-sn", v3Refusal(t, v3Call(t, sb, v3Req{method: "alipay.trade.query", body: q, edit: root(c.rootCertSN)}), 401))
	assert.Equal(t, "missing-app-cert-sn", v3Refusal(t, v3Call(t, sb, v3Req{method: "alipay.trade.query", body: q, appCertSN: c.appCertSN}), 401))
	assert.Equal(t, "invalid-alipay-root-cert-sn", v3Refusal(t, v3Call(t, sb, v3Req{method: "alipay.trade.query", body: q, appCertSN: c.appCertSN, edit: root("x_y")}), 401))
}

// With encrypt_key the body travels encrypted both ways; the signature
// covers the ciphertext. Plaintext and undecryptable calls are refused
// in plaintext, unsigned; business failures stay plaintext JSON, signed.
func TestV3Encrypted(t *testing.T) {
	w := newWorld(t, withEncryptKey)
	sb := w.sandbox
	w.paidTrade(t, "V3AES", "3.00")
	rec := v3Call(t, sb, v3Req{method: "alipay.trade.query", body: `{"out_trade_no":"V3AES"}`, encrypt: true})
	require.Equal(t, 200, rec.Code, rec.Body.String())
	assert.Equal(t, "text/plain;charset=utf-8", rec.Header().Get("Content-Type"))
	body := v3Verified(t, rec)
	assert.Regexp(t, `^[A-Za-z0-9+/=]+$`, string(body))
	k, err := protocol.NewContentKey(testEncryptKey)
	require.NoError(t, err)
	plain, err := k.Decrypt(string(body))
	require.NoError(t, err)
	assertAPIFields(t, map[string]any{"out_trade_no": "V3AES", "trade_status": "TRADE_SUCCESS", "total_amount": "3.00"}, v3JSON(t, plain))

	rec = v3Call(t, sb, v3Req{method: "alipay.trade.query", body: `{"out_trade_no":"V3NONE"}`, encrypt: true})
	require.Equal(t, 404, rec.Code)
	assert.Equal(t, "ACQ.TRADE_NOT_EXIST", v3JSON(t, v3Verified(t, rec))["code"])

	assert.Equal(t, "isv.decryption-error-missing-encrypt-type",
		v3Refusal(t, v3Call(t, sb, v3Req{method: "alipay.trade.query", body: `{"out_trade_no":"V3AES"}`}), 400))
	assert.Equal(t, "isv.decryption-error-unknown", v3Refusal(t, v3Call(t, sb, v3Req{method: "alipay.trade.query", body: `{"out_trade_no":"V3AES"}`,
		edit: func(r *http.Request) { r.Header.Set("alipay-encrypt-type", "AES") }}), 400))
	assert.Equal(t, "isv.decryption-error-not-valid-encrypt-type", v3Refusal(t, v3Call(t, sb, v3Req{method: "alipay.trade.query", body: `{"out_trade_no":"V3AES"}`,
		edit: func(r *http.Request) { r.Header.Set("alipay-encrypt-type", "SM4") }}), 400))
	// A sandbox without the key refuses an encrypted call.
	plainSB := newTestSandbox(t, nil)
	assert.Equal(t, "isv.decryption-error-not-valid-encrypt-key",
		v3Refusal(t, v3Call(t, plainSB, v3Req{method: "alipay.trade.query", body: `{"out_trade_no":"V3AES"}`, encrypt: true}), 400))
}

// A v3 refund is v2's: it moves the money and sends the trade's
// notify_url the refund's notification; asked again it moves nothing.
func TestV3Refund(t *testing.T) {
	w := newWorld(t, nil)
	d := w.paidTrade(t, "V3R", "20.00")
	rec := v3Call(t, w.sandbox, v3Req{method: "alipay.trade.refund", body: `{"out_trade_no":"V3R","refund_amount":"5.00","out_request_no":"R1"}`})
	require.Equal(t, 200, rec.Code, rec.Body.String())
	f := v3JSON(t, v3Verified(t, rec))
	assertAPIFields(t, map[string]any{"trade_no": d.TradeNo, "fund_change": "Y", "refund_fee": "5.00"}, f)
	w.shop.waitNotify(t)
	n := w.lastNotify(t)
	assert.Equal(t, "5.00", n["refund_fee"])
	assert.Equal(t, "R1", n["out_biz_no"])

	rec = v3Call(t, w.sandbox, v3Req{method: "alipay.trade.fastpay.refund.query", body: `{"out_trade_no":"V3R","out_request_no":"R1"}`})
	require.Equal(t, 200, rec.Code, rec.Body.String())
	assertAPIFields(t, map[string]any{"refund_amount": "5.00", "refund_status": "REFUND_SUCCESS"}, v3JSON(t, v3Verified(t, rec)))
}

// Precreate answers the qr_code; notify_url comes in the body and is
// checked as v2's common parameter is. Barcode pay answers 200 when paid,
// 200 with code 10003 when waiting, and a signed 500 ACQ.SYSTEM_ERROR
// for the 4444 code.
func TestV3FaceToFace(t *testing.T) {
	w := newWorld(t, nil)
	sb := w.sandbox
	notify := w.site.URL + "/alipay/notify"
	rec := v3Call(t, sb, v3Req{method: "alipay.trade.precreate",
		body: `{"out_trade_no":"V3P","total_amount":"1.00","subject":"QR","notify_url":"` + notify + `"}`})
	require.Equal(t, 200, rec.Code, rec.Body.String())
	f := v3JSON(t, v3Verified(t, rec))
	assert.Equal(t, "http://sandbox.test"+qrPrefix, f["qr_code"].(string)[:len("http://sandbox.test"+qrPrefix)])
	assert.Equal(t, "V3P", f["out_trade_no"])
	scan := serve(t, sb, httptest.NewRequest("GET", f["qr_code"].(string), nil))
	require.Equal(t, 302, scan.Code)
	assert.Equal(t, notify, waitTrade(t, sb, "V3P", func(tradeDoc) bool { return true }).NotifyURL)

	rec = v3Call(t, sb, v3Req{method: "alipay.trade.precreate", body: `{"out_trade_no":"V3P2","total_amount":"1.00","subject":"QR","notify_url":"https://shop.example/n"}`})
	require.Equal(t, 400, rec.Code, rec.Body.String())
	assert.Equal(t, "ACQ.INVALID_PARAMETER", v3JSON(t, v3Verified(t, rec))["code"])

	pay := func(no, code string) *httptest.ResponseRecorder {
		return v3Call(t, sb, v3Req{method: "alipay.trade.pay",
			body: `{"out_trade_no":"` + no + `","total_amount":"2.00","subject":"bar","scene":"bar_code","auth_code":"` + code + `"}`})
	}
	rec = pay("V3B1", "280000000000000000")
	require.Equal(t, 200, rec.Code, rec.Body.String())
	f = v3JSON(t, v3Verified(t, rec))
	assert.NotContains(t, f, "code")
	assert.Equal(t, "2.00", f["buyer_pay_amount"])
	rec = pay("V3B2", "280000000000002222")
	require.Equal(t, 200, rec.Code, rec.Body.String())
	assertAPIFields(t, map[string]any{"code": "10003", "msg": "Waiting Payment", "out_trade_no": "V3B2"}, v3JSON(t, v3Verified(t, rec)))
	rec = pay("V3B3", "280000000000004444")
	require.Equal(t, 500, rec.Code, rec.Body.String())
	assert.Equal(t, map[string]any{"code": "ACQ.SYSTEM_ERROR", "message": "系统异常", "links": []any{}}, v3JSON(t, v3Verified(t, rec)))
}

// The nonce set stays bounded, forgetting the oldest first.
func TestV3NoncesBounded(t *testing.T) {
	var n v3Nonces
	at := time.Unix(1e9, 0)
	for i := range maxV3Nonces + 10 {
		require.True(t, n.add(strconv.Itoa(i), at))
	}
	assert.Len(t, n.seen, maxV3Nonces)
	assert.False(t, n.add(strconv.Itoa(maxV3Nonces), at))
	assert.True(t, n.add("0", at), "forgotten: the set is full")
	assert.True(t, n.add("late", at.Add(2*v3Window+time.Second)))
	assert.Len(t, n.seen, 1, "older than two windows: forgotten")
}
