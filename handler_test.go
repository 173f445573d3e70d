package alipay

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/caddy-alipay/caddy-alipay/internal/protocol"
	"github.com/caddy-alipay/caddy-alipay/internal/protocol/protocoltest"
	"github.com/caddy-alipay/caddy-alipay/internal/testvec"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
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

func TestNotifyAccepted(t *testing.T) {
	fixClock(t, tokenNow)
	vec := testvec.Load(t)
	h := newTestHandler(t, func(h *Handler) { h.ForwardNotify = "/index.php/pay/notify"; h.SellerID = testSellerID })
	for _, c := range vec.Notify.Cases {
		t.Run(c.Name, func(t *testing.T) {
			next := &upstream{status: 200}
			r := notifyRequest(c.PostBody)
			r.Header.Set("X-Alipay-Token", "forged")
			r.Header["X_alipay_token"] = []string{"forged"}
			w := serve(t, h, next, r)
			assert.Equal(t, http.StatusOK, w.Code)
			assert.Equal(t, "success", w.Body.String())
			assert.Equal(t, "text/plain; charset=utf-8", w.Header().Get("Content-Type"))
			assert.Empty(t, w.Header().Get("X-Upstream"), "the upstream's headers stay with Caddy")

			require.Equal(t, 1, next.calls)
			assert.Equal(t, "POST", next.req.Method)
			assert.Equal(t, "/index.php/pay/notify", next.req.URL.Path)
			assert.Equal(t, c.PostBody, next.body, "the original body travels on")
			assert.Equal(t, int64(len(c.PostBody)), next.req.ContentLength)
			assert.Len(t, next.req.Header.Values(TokenHeader), 1)
			assert.NotContains(t, next.req.Header, "X_alipay_token")

			claims, err := h.tokens.Parse(next.req.Header.Get(TokenHeader), tokenNow)
			require.NoError(t, err)
			var params map[string]string
			require.NoError(t, json.Unmarshal(claims["params"], &params))
			assert.Equal(t, c.Params["subject"], params["subject"])
			assert.Equal(t, c.Params["total_amount"], params["total_amount"])
			assert.NotContains(t, params, "sign")
			assert.JSONEq(t, `"`+c.Params["notify_id"]+`"`, string(claims["jti"]))
			assert.JSONEq(t, `"notify"`, string(claims["event"]))
		})
	}
}

func TestNotifyFailures(t *testing.T) {
	vec := testvec.Load(t)
	body := vec.Notify.Cases[0].PostBody
	cases := map[string]struct {
		edit   func(*Handler)
		req    *http.Request
		next   *upstream
		status int
		calls  int
	}{
		"upstream 500":         {nil, notifyRequest(body), &upstream{status: 500}, 502, 1},
		"upstream 302":         {nil, notifyRequest(body), &upstream{status: 302}, 502, 1},
		"upstream unreachable": {nil, notifyRequest(body), &upstream{err: caddyhttp.Error(502, errors.New("dial tcp: refused"))}, 502, 1},
		"no upstream answer":   {nil, notifyRequest(body), &upstream{}, 502, 1},
		"tampered":             {nil, notifyRequest(strings.Replace(body, "88.88", "0.01", 1)), &upstream{status: 200}, 400, 0},
		"other app":            {func(h *Handler) { h.AppID = "2021000000000002" }, notifyRequest(body), &upstream{status: 200}, 400, 0},
		"other seller":         {func(h *Handler) { h.SellerID = "2088000000000002" }, notifyRequest(body), &upstream{status: 200}, 400, 0},
		"GET":                  {nil, httptest.NewRequest("GET", "http://shop.example.com/alipay/notify?"+body, nil), &upstream{status: 200}, 405, 0},
		"too large":            {nil, notifyRequest(body + "&pad=" + strings.Repeat("x", protocol.MaxCallbackSize)), &upstream{status: 200}, 413, 0},
		"empty":                {nil, notifyRequest(""), &upstream{status: 200}, 400, 0},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			h := newTestHandler(t, c.edit)
			w := serve(t, h, c.next, c.req)
			assert.Equal(t, c.status, w.Code)
			assert.Equal(t, "fail", w.Body.String())
			assert.Equal(t, c.calls, c.next.calls)
		})
	}
	// A body without Content-Length (chunked) is bounded too.
	h := newTestHandler(t, nil)
	r := notifyRequest(body + "&pad=" + strings.Repeat("x", protocol.MaxCallbackSize))
	r.ContentLength = -1
	w := serve(t, h, &upstream{status: 200}, r)
	assert.Equal(t, http.StatusRequestEntityTooLarge, w.Code)
}

func TestReturn(t *testing.T) {
	fixClock(t, tokenNow)
	vec := testvec.Load(t)
	u, err := url.Parse(vec.Return.RedirectURL)
	require.NoError(t, err)
	h := newTestHandler(t, func(h *Handler) { h.ForwardReturn = "/orders/return" })
	next := &upstream{status: 200}
	r := httptest.NewRequest("GET", "http://shop.example.com/alipay/return?"+u.RawQuery, nil)
	r.Header.Set("x-alipay-token", "forged")
	w := serve(t, h, next, r)
	assert.Equal(t, 200, w.Code)
	assert.Equal(t, "upstream says hi", w.Body.String(), "the upstream's answer goes to the browser")
	assert.Equal(t, "1", w.Header().Get("X-Upstream"))
	require.Equal(t, 1, next.calls)
	assert.Equal(t, "/orders/return", next.req.URL.Path)
	assert.Equal(t, u.RawQuery, next.req.URL.RawQuery)
	claims, err := h.tokens.Parse(next.req.Header.Get(TokenHeader), tokenNow)
	require.NoError(t, err)
	assert.JSONEq(t, `"return"`, string(claims["event"]))
	var jti string
	require.NoError(t, json.Unmarshal(claims["jti"], &jti))
	assert.Len(t, jti, 32)

	// Refused: a short page, the upstream sees nothing.
	next = &upstream{status: 200}
	bad := strings.Replace(u.RawQuery, "total_amount=88.88", "total_amount=8.88", 1)
	w = serve(t, h, next, httptest.NewRequest("GET", "http://shop.example.com/alipay/return?"+bad, nil))
	assert.Equal(t, 400, w.Code)
	assert.Contains(t, w.Body.String(), "could not be confirmed")
	assert.Equal(t, "text/html; charset=utf-8", w.Header().Get("Content-Type"))
	assert.Zero(t, next.calls)

	w = serve(t, h, next, httptest.NewRequest("POST", "http://shop.example.com/alipay/return?"+u.RawQuery, nil))
	assert.Equal(t, 405, w.Code)
	assert.Zero(t, next.calls)
}

// Strip, then verify, then stamp: every spelling that PHP or CGI would
// read as HTTP_X_ALIPAY_* is gone on every path the handler sees.
func TestStripAlipayHeaders(t *testing.T) {
	h := newTestHandler(t, nil)
	next := &upstream{status: 204}
	r := httptest.NewRequest("GET", "http://shop.example.com/products?x=1", nil)
	names := []string{"X-Alipay-Token", "X_Alipay_Token", "X.Alipay.Token", "x-alipay-params", "X-ALIPAY-EVENT", "X_ALIPAY-Whatever"}
	// Every other character that a header name may hold: CGI gateways
	// (lighttpd's, Apache 2.2's) turn each into _.
	for _, sep := range "~!#$%&'*+^`|" {
		names = append(names, "X"+string(sep)+"Alipay"+string(sep)+"Token")
	}
	for _, name := range names {
		r.Header[name] = []string{"forged"}
	}
	r.Header.Set("X-Alipayish", "kept")
	r.Header.Set("X-Request-Id", "kept")
	w := serve(t, h, next, r)
	assert.Equal(t, 204, w.Code)
	require.Equal(t, 1, next.calls)
	assert.Equal(t, http.Header{"X-Alipayish": {"kept"}, "X-Request-Id": {"kept"}}, next.req.Header)
	assert.Equal(t, "/products", next.req.URL.Path)
}

func TestPrefix(t *testing.T) {
	h := newTestHandler(t, func(h *Handler) { h.Prefix = "/pay/ali/" })
	tok := payToken(t, map[string]any{"out_trade_no": "A1", "total_amount": "1", "subject": "s"})
	next := &upstream{status: 200}
	w := serve(t, h, next, httptest.NewRequest("GET", "http://shop.example.com/pay/ali/pay?token="+tok, nil))
	assert.Equal(t, 302, w.Code)
	loc, err := url.Parse(w.Header().Get("Location"))
	require.NoError(t, err)
	assert.Equal(t, "http://shop.example.com/pay/ali/notify", loc.Query().Get("notify_url"))
	w = serve(t, h, next, httptest.NewRequest("GET", "http://shop.example.com/alipay/pay?token="+tok, nil))
	assert.Equal(t, 200, w.Code, "the default prefix is not served")
	assert.Equal(t, 1, next.calls)
}

// Alipay hanging up is not the shop's failure: a separate outcome.
func TestNotifyClientGone(t *testing.T) {
	h := newTestHandler(t, nil)
	ctx, cancel := context.WithCancel(context.Background())
	next := caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		cancel()
		return caddyhttp.Error(499, context.Canceled)
	})
	r := notifyRequest(testvec.Load(t).Notify.Cases[0].PostBody).WithContext(ctx)
	var got string
	h.metrics = &eventMetrics{counters: map[[2]string]prometheus.Counter{}}
	for _, o := range allOutcomes {
		c := prometheus.NewCounter(prometheus.CounterOpts{Name: "c_" + o})
		h.metrics.counters[[2]string{eventNotify, o}] = c
	}
	w := serve(t, h, next, r)
	assert.Equal(t, http.StatusBadGateway, w.Code)
	for o, c := range h.metrics.counters {
		if testutil.ToFloat64(c) == 1 {
			got = o[1]
		}
	}
	assert.Equal(t, outcomeAborted, got)
}

func TestRefusalOutcome(t *testing.T) {
	_, malformed := protocol.ParseForm("a=%zz")
	for _, c := range []struct {
		err     error
		status  int
		outcome string
	}{
		{malformed, 400, outcomeInvalid},
		{protocol.ErrBadSignature, 400, outcomeRefused},
		{fmt.Errorf("%w: app_id is not this app's", protocol.ErrNotOurs), 400, outcomeRefused},
		{fmt.Errorf("%w: notify_verify answered \"false\"", protocol.ErrNotConfirmed), 400, outcomeRefused},
		{fmt.Errorf("%w: no answer", protocol.ErrNoConfirmation), 502, outcomeUnconfirmed},
	} {
		status, outcome := refusal(c.err)
		assert.Equal(t, c.status, status, c.err.Error())
		assert.Equal(t, c.outcome, outcome, c.err.Error())
	}
}

// A chunked request's trailers reach reverse_proxy's upstream too, so the
// forged spellings go from them as well.
func TestStripAlipayTrailers(t *testing.T) {
	h := newTestHandler(t, nil)
	next := &upstream{status: 204}
	r := httptest.NewRequest("POST", "http://shop.example.com/upload", strings.NewReader("x"))
	r.Trailer = http.Header{"X-Alipay-Token": {"forged"}, "X_alipay_event": {"forged"}, "X-Checksum": {"kept"}}
	serve(t, h, next, r)
	require.Equal(t, 1, next.calls)
	assert.Equal(t, http.Header{"X-Checksum": {"kept"}}, next.req.Trailer)
}
