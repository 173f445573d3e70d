package alipay

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/caddy-alipay/caddy-alipay/internal/protocol"
	"github.com/caddy-alipay/caddy-alipay/internal/protocol/protocoltest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestPayRedirect(t *testing.T) {
	at := time.Date(2024, 5, 20, 5, 14, 15, 0, time.UTC)
	fixClock(t, at)
	h := newTestHandler(t, nil)
	tok := payToken(t, map[string]any{"out_trade_no": "20240520131415000001", "total_amount": "88.88", "subject": "测试订单 Test", "body": "a+b c"})
	next := &upstream{status: 200}
	r := httptest.NewRequest("GET", "http://shop.example.com/alipay/pay?token="+tok, nil)
	w := serve(t, h, next, r)
	require.Equal(t, http.StatusFound, w.Code, w.Body.String())
	assert.Equal(t, "no-store", w.Header().Get("Cache-Control"))
	assert.Zero(t, next.calls)

	loc, err := url.Parse(w.Header().Get("Location"))
	require.NoError(t, err)
	assert.Equal(t, "https://openapi.alipay.com/gateway.do", loc.Scheme+"://"+loc.Host+loc.Path)
	q := loc.Query()
	params := map[string]string{}
	for k, v := range q {
		require.Len(t, v, 1, k)
		params[k] = v[0]
	}
	assert.Equal(t, map[string]string{
		"app_id": testAppID, "method": "alipay.trade.page.pay", "format": "JSON", "charset": "utf-8",
		"sign_type": "RSA2", "timestamp": "2024-05-20 13:14:15", "version": "1.0",
		"notify_url":  "http://shop.example.com/alipay/notify",
		"return_url":  "http://shop.example.com/alipay/return",
		"biz_content": `{"out_trade_no":"20240520131415000001","total_amount":"88.88","subject":"测试订单 Test","product_code":"FAST_INSTANT_TRADE_PAY","body":"a+b c"}`,
		"sign":        params["sign"],
	}, params)
	// Alipay (here: the app's public key) accepts the signature.
	v := protocoltest.Verifier(t, "app_public_key.pem", protocol.SignTypeRSA2)
	assert.NoError(t, v.Verify(protocol.RequestContent(params), params["sign"]))
}

func TestPayJSONAndPOST(t *testing.T) {
	h := newTestHandler(t, func(h *Handler) {
		h.Gateway = "http://127.0.0.1:9999/gateway.do"
		h.NotifyURL = "https://shop.example.com/pay/notify"
		h.ReturnURL = "https://shop.example.com/pay/done"
	})
	tok := payToken(t, map[string]any{"out_trade_no": "A1", "total_amount": 1, "subject": "s", "product": "wap"})
	r := httptest.NewRequest("POST", "https://shop.example.com/alipay/pay", strings.NewReader("token="+tok))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	r.Header.Set("Accept", "text/html;q=0.9, application/json")
	w := serve(t, h, &upstream{}, r)
	require.Equal(t, http.StatusOK, w.Code, w.Body.String())
	assert.Equal(t, "application/json", w.Header().Get("Content-Type"))
	var body struct{ URL string }
	require.NoError(t, json.Unmarshal(w.Body.Bytes(), &body))
	u, err := url.Parse(body.URL)
	require.NoError(t, err)
	assert.Equal(t, "127.0.0.1:9999", u.Host)
	assert.Equal(t, "alipay.trade.wap.pay", u.Query().Get("method"))
	assert.Equal(t, "https://shop.example.com/pay/notify", u.Query().Get("notify_url"))
	assert.Equal(t, "https://shop.example.com/pay/done", u.Query().Get("return_url"))
	assert.Contains(t, u.Query().Get("biz_content"), `"product_code":"QUICK_WAP_WAY"`)
}

func TestPayRefused(t *testing.T) {
	h := newTestHandler(t, nil)
	good := map[string]any{"out_trade_no": "A1", "total_amount": "1.00", "subject": "s"}
	expired := map[string]any{"out_trade_no": "A1", "total_amount": "1.00", "subject": "s", "exp": now().Add(-time.Second).Unix()}
	other, err := protocol.NewTokenKey(strings.Repeat("z", 32))
	require.NoError(t, err)
	forged, err := other.Sign(map[string]any{"out_trade_no": "A1", "total_amount": "0.01", "subject": "s", "exp": now().Add(time.Hour).Unix()})
	require.NoError(t, err)
	cases := map[string]struct {
		method, target string
		status         int
		body           string
	}{
		"no token":     {"GET", "/alipay/pay", 403, "invalid payment token"},
		"garbage":      {"GET", "/alipay/pay?token=abc", 403, "invalid payment token"},
		"forged":       {"GET", "/alipay/pay?token=" + forged, 403, "invalid payment token"},
		"alg none":     {"GET", "/alipay/pay?token=" + protocoltest.RawToken(testSecret, `{"alg":"none"}`, `{"exp":9999999999}`), 403, "invalid"},
		"expired":      {"GET", "/alipay/pay?token=" + payToken(t, expired), 403, "expired"},
		"bad amount":   {"GET", "/alipay/pay?token=" + payToken(t, map[string]any{"out_trade_no": "A1", "total_amount": "1.001", "subject": "s"}), 400, "total_amount"},
		"no subject":   {"GET", "/alipay/pay?token=" + payToken(t, map[string]any{"out_trade_no": "A1", "total_amount": "1"}), 400, "subject"},
		"bad method":   {"PUT", "/alipay/pay?token=" + payToken(t, good), 405, ""},
		"bad escaping": {"GET", "/alipay/pay?token=%zz", 400, ""},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			next := &upstream{status: 200}
			w := serve(t, h, next, httptest.NewRequest(c.method, "http://shop.example.com"+c.target, nil))
			assert.Equal(t, c.status, w.Code)
			assert.Contains(t, w.Body.String(), c.body)
			assert.Empty(t, w.Header().Get("Location"))
			assert.NotContains(t, w.Body.String(), "sign=")
			assert.Zero(t, next.calls)
		})
	}
	// A large POST body is refused before it is parsed.
	r := httptest.NewRequest("POST", "http://shop.example.com/alipay/pay", strings.NewReader("token="+strings.Repeat("a", maxPayBody)))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	w := serve(t, h, &upstream{}, r)
	assert.Equal(t, http.StatusRequestEntityTooLarge, w.Code)
}

// pay through a real Caddy: the redirect to the gateway, signed for it,
// with the site's notify_url; a bad token or order is refused; the shop
// sees nothing of pay.
func TestCaddyPay(t *testing.T) {
	s, upstream := startShop(t)
	tester := loadSidecar(t, standardSettings(), upstream, "")

	tok := payToken(t, map[string]any{"out_trade_no": "T1", "total_amount": "9.90", "subject": "Caddy 测试"})
	resp, _ := getStatus(t, tester, caddyURL+"/alipay/pay?token="+tok, 302)
	loc, err := url.Parse(resp.Header.Get("Location"))
	require.NoError(t, err)
	assert.Equal(t, "127.0.0.1:9", loc.Host)
	params := map[string]string{}
	for k, v := range loc.Query() {
		params[k] = v[0]
	}
	assert.Equal(t, caddyURL+"/alipay/notify", params["notify_url"])
	v := protocoltest.Verifier(t, "app_public_key.pem", protocol.SignTypeRSA2)
	assert.NoError(t, v.Verify(protocol.RequestContent(params), params["sign"]), "the gateway accepts the signature")
	assert.Equal(t, "no-store", resp.Header.Get("Cache-Control"))

	tester.AssertGetResponse(caddyURL+"/alipay/pay?token=x", 403, "invalid payment token: not a JWT (three base64url parts joined by dots)\n")
	bad := payToken(t, map[string]any{"out_trade_no": "T1", "total_amount": "0", "subject": "s"})
	_, body := getStatus(t, tester, caddyURL+"/alipay/pay?token="+bad, 400)
	assert.Contains(t, body, "total_amount")
	assert.Empty(t, s.take(), "the shop sees nothing of pay")
}
