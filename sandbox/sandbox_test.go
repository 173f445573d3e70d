package sandbox

import (
	"context"
	"fmt"
	"html"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/caddy-alipay/caddy-alipay/internal/protocol"
	"github.com/caddy-alipay/caddy-alipay/internal/protocol/protocoltest"
	"github.com/caddy-alipay/caddy-alipay/internal/testvec"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The whole loop: pay request -> cashier -> Pay -> a signed return and a
// signed notification that verify with Alipay's public key.
func TestSandboxPayLoop(t *testing.T) {
	w := newWorld(t, nil)
	page, forms := w.cashier(t, w.startPay(t, map[string]any{"out_trade_no": "S1", "total_amount": "9.90", "subject": "沙箱 <测试>", "body": "b"}))
	assert.Contains(t, page, `<p id="subject">沙箱 &lt;测试&gt;</p>`)
	assert.Contains(t, page, `<span id="amount">9.90</span>`)
	assert.Contains(t, page, `id="pay"`)
	assert.Contains(t, page, `id="cancel"`)
	require.Contains(t, forms, "pay")

	paid := w.postCashier(t, forms["pay"])
	require.Equal(t, http.StatusFound, paid.Code, paid.Body.String())
	back, err := url.Parse(paid.Header().Get("Location"))
	require.NoError(t, err)
	assert.Equal(t, w.site.URL+"/alipay/return", back.Scheme+"://"+back.Host+back.Path)
	assert.Empty(t, back.Query().Get("trade_status"), "Alipay's return carries no trade_status")

	// The return verifies.
	ret, err := w.api.ParseCallback(back.RawQuery)
	require.NoError(t, err)
	require.NoError(t, w.api.VerifyCallback(context.Background(), ret, protocol.EventReturn))

	// The notification reached the shop, and verified.
	w.shop.waitNotify(t)
	w.shop.mu.Lock()
	params := w.shop.notify[0]
	w.shop.mu.Unlock()
	for k, v := range map[string]string{"out_trade_no": "S1", "total_amount": "9.90", "subject": "沙箱 <测试>", "trade_status": "TRADE_SUCCESS",
		"notify_type": "trade_status_sync", "app_id": testAppID, "seller_id": sandboxSellerID, "body": "b"} {
		assert.Equal(t, v, params[k], k)
	}
	for _, k := range []string{"notify_id", "notify_time", "trade_no", "gmt_payment", "gmt_create", "buyer_id", "fund_bill_list", "receipt_amount"} {
		assert.NotEmpty(t, params[k], k)
	}
	assert.Equal(t, back.Query().Get("trade_no"), params["trade_no"])

	// Paying again is refused; the same order cannot be reopened.
	again := w.postCashier(t, forms["pay"])
	assert.Equal(t, http.StatusConflict, again.Code)
	reopen := w.startPay(t, map[string]any{"out_trade_no": "S1", "total_amount": "9.90", "subject": "沙箱 <测试>"})
	assert.Equal(t, http.StatusBadRequest, reopen.Code)
	assert.Contains(t, reopen.Body.String(), "ACQ.TRADE_HAS_SUCCESS")
}

func TestSandboxCancel(t *testing.T) {
	w := newWorld(t, nil)
	_, forms := w.cashier(t, w.startPay(t, map[string]any{"out_trade_no": "S4", "total_amount": "1", "subject": "cancel"}))
	rec := w.postCashier(t, forms["cancel"])
	assert.Equal(t, http.StatusFound, rec.Code)
	assert.Equal(t, w.site.URL+"/", rec.Header().Get("Location"))
	// WAP pay with a quit_url goes there.
	_, forms = w.cashier(t, w.startPay(t, map[string]any{"out_trade_no": "S5", "total_amount": "1", "subject": "wap", "product": "wap",
		"biz": map[string]any{"quit_url": w.site.URL + "/cart"}}))
	rec = w.postCashier(t, forms["cancel"])
	assert.Equal(t, w.site.URL+"/cart", rec.Header().Get("Location"))
	select {
	case <-w.shop.arrived:
		t.Fatal("a cancelled trade was notified")
	case <-time.After(50 * time.Millisecond):
	}
	// The trade stays unpaid: the buyer can come back and pay.
	rec = w.postCashier(t, forms["pay"])
	assert.Equal(t, http.StatusFound, rec.Code)
}

// What Alipay's Node SDK sends (the vectors: GET URL and POST form) opens
// a cashier; anything tampered gets the error page and no cashier.
func TestSandboxGateway(t *testing.T) {
	vec := testvec.Load(t)
	// The vectors' callbacks go to shop.example.com.
	w := newWorld(t, func(s *Handler) { s.CallbackHosts = []string{"shop.example.com", "SHOP.test"} })
	for _, pv := range []testvec.Pay{vec.PagePay, vec.WapPay} {
		u, err := url.Parse(pv.GetURL)
		require.NoError(t, err)
		rec := w.gateway(t, "GET", "http://sandbox.test/gateway.do?"+u.RawQuery, "")
		assert.Equal(t, http.StatusFound, rec.Code, rec.Body.String())
		assert.True(t, strings.HasPrefix(rec.Header().Get("Location"), cashierPrefix))
	}
	// The SDK's POST form: common parameters in the action URL, the rest in the body.
	u, _ := url.Parse(vec.PagePay.GetURL)
	q := u.Query()
	body := url.Values{"biz_content": {q.Get("biz_content")}, "alipay_sdk": {q.Get("alipay_sdk")}}
	q.Del("biz_content")
	q.Del("alipay_sdk")
	rec := w.gateway(t, "POST", "http://sandbox.test/gateway.do?"+q.Encode(), body.Encode())
	assert.Equal(t, http.StatusFound, rec.Code, rec.Body.String())

	tampered := strings.Replace(u.RawQuery, "88.88", "0.01", 1)
	for name, c := range map[string]struct{ method, query, body, code string }{
		"tampered amount": {"GET", tampered, "", "invalid-signature"},
		"no sign":         {"GET", strings.Replace(u.RawQuery, "sign=", "nosign=", 1), "", "missing-parameter"},
		"duplicate":       {"POST", u.RawQuery, "biz_content=x", "invalid-parameter"},
		"other method":    {"PUT", u.RawQuery, "", "invalid-method"},
	} {
		t.Run(name, func(t *testing.T) {
			rec := w.gateway(t, c.method, "http://sandbox.test/gateway.do?"+c.query, c.body)
			assert.Equal(t, http.StatusBadRequest, rec.Code)
			assert.Contains(t, rec.Body.String(), `<b id="error-code">`+html.EscapeString(c.code)+`</b>`)
			assert.NotContains(t, rec.Body.String(), `id="pay"`)
		})
	}
	// A request signed with another key than app_public_key's.
	other := merchantAPI(t, protocol.SignTypeRSA2)
	other.Signer = protocoltest.Signer(t, "alipay_private_key_pkcs1.pem", protocol.SignTypeRSA2)
	gw := w.gateway(t, "GET", payURL(t, other, "http://shop.test/n", "http://shop.test/r", map[string]any{"out_trade_no": "X", "total_amount": "1", "subject": "s"}), "")
	assert.Contains(t, gw.Body.String(), "invalid-signature")
}

// signedPayURL is the gateway URL that the merchant signs for claims with
// these callback URLs.
func signedPayURL(t *testing.T, notifyURL, returnURL string, claims map[string]any) string {
	t.Helper()
	return payURL(t, merchantAPI(t, protocol.SignTypeRSA2), notifyURL, returnURL, claims)
}

// The sandbox sends notifications and buyers only to this machine, unless
// callback_hosts names another host.
func TestSandboxStaysOnThisMachine(t *testing.T) {
	order := func(no string) map[string]any {
		return map[string]any{"out_trade_no": no, "total_amount": "1.00", "subject": "s"}
	}
	local := "http://127.0.0.1:8000/alipay/return"
	s := newTestSandbox(t, nil)
	open := func(s *Handler, target string) *httptest.ResponseRecorder {
		return serve(t, s, httptest.NewRequest("GET", target, nil))
	}
	for _, c := range []struct{ notify, ret string }{
		{"https://attacker.example/notify", local},
		{"http://127.0.0.1:8000/alipay/notify", "https://attacker.example/return"},
		{"http://10.0.0.1/notify", local},
		{"http://localhost.attacker.example/notify", local},
		{"http://127.0.0.1.nip.io/notify", local},
	} {
		rec := open(s, signedPayURL(t, c.notify, c.ret, order("M1")))
		assert.Equal(t, http.StatusBadRequest, rec.Code, c)
		assert.Contains(t, rec.Body.String(), "not on this machine", c)
	}
	rec := open(s, signedPayURL(t, local, local, map[string]any{"out_trade_no": "M1", "total_amount": "1.00", "subject": "s", "product": "wap",
		"biz": map[string]any{"quit_url": "https://attacker.example/cart"}}))
	assert.Contains(t, rec.Body.String(), "quit_url names attacker.example")
	for i, u := range []string{"http://localhost:8000/n", "http://127.0.0.2/n", "http://[::1]:8000/n"} {
		assert.Equal(t, http.StatusFound, open(s, signedPayURL(t, u, local, order(fmt.Sprint("L", i)))).Code, u)
	}

	// callback_hosts opens more.
	s = newTestSandbox(t, func(s *Handler) { s.CallbackHosts = []string{"Shop.Example.com", "10.0.0.1"} })
	assert.Equal(t, http.StatusFound, open(s, signedPayURL(t, "https://shop.example.com/notify", local, order("M2"))).Code)
	assert.Equal(t, http.StatusFound, open(s, signedPayURL(t, "http://10.0.0.1/notify", local, order("M3"))).Code)
	assert.Equal(t, http.StatusBadRequest, open(s, signedPayURL(t, "https://attacker.example/notify", local, order("M4"))).Code)

	// A trade's URLs are fixed when it opens: a second request for the
	// unpaid trade cannot send its notification elsewhere.
	first := open(s, signedPayURL(t, "https://shop.example.com/notify", local, order("M5")))
	require.Equal(t, http.StatusFound, first.Code)
	again := open(s, signedPayURL(t, "https://shop.example.com/notify", local, order("M5")))
	assert.Equal(t, first.Header().Get("Location"), again.Header().Get("Location"), "the same request: the same cashier")
	other := open(s, signedPayURL(t, "http://10.0.0.1/notify", local, order("M5")))
	assert.Equal(t, http.StatusBadRequest, other.Code)
	assert.Contains(t, other.Body.String(), "ACQ.CONTEXT_INCONSISTENT")
	assert.Equal(t, "https://shop.example.com/notify", s.trades.byCashierID(strings.TrimPrefix(first.Header().Get("Location"), cashierPrefix)).notifyURL)
}

// On a site without host names, the sandbox answers only loopback host
// names, so that a page of another site cannot drive it from the
// developer's browser through DNS rebinding; a site with host names
// answers those.
func TestSandboxHostNames(t *testing.T) {
	s := newTestSandbox(t, nil)
	// As on a site that answers any host name (:8081).
	catchAll := func(host, path string) *httptest.ResponseRecorder {
		r := httptest.NewRequest("GET", "http://x"+path, nil)
		r.Host = host
		rec := httptest.NewRecorder()
		require.NoError(t, s.ServeHTTP(rec, onSite(s, r), upstream{}))
		return rec
	}
	for _, host := range []string{"attacker.example", "attacker.example:8081", "127.0.0.1.nip.io", "localhost.attacker.example", "10.0.0.1", "[::2]:8081", ""} {
		for _, path := range []string{"/sandbox/trades", "/sandbox/trades/H1", "/gateway.do", "/sandbox/cashier/x"} {
			rec := catchAll(host, path)
			assert.Equal(t, http.StatusMisdirectedRequest, rec.Code, "%s %s", host, path)
			assert.Contains(t, rec.Body.String(), "loopback host names")
		}
	}
	for _, host := range []string{"localhost", "localhost:8081", "LOCALHOST.", "127.0.0.1:8081", "127.1.2.3", "[::1]:8081", "dev.localhost:8081"} {
		assert.Equal(t, http.StatusOK, catchAll(host, "/sandbox/trades").Code, host)
	}
	// A site with a host name: the site's own matcher decides.
	bound := newTestSandbox(t, nil)
	r := httptest.NewRequest("GET", "http://sandbox.example.test/sandbox/trades", nil)
	rec := httptest.NewRecorder()
	require.NoError(t, bound.ServeHTTP(rec, onSite(bound, r, "sandbox.example.test"), upstream{}))
	assert.Equal(t, http.StatusOK, rec.Code)
}

// The cashier's buttons take only their own page's forms: a page of
// another site that learnt a cashier id cannot pay or cancel.
func TestSandboxCashierCrossSite(t *testing.T) {
	w := newWorld(t, nil)
	_, forms := w.cashier(t, w.startPay(t, map[string]any{"out_trade_no": "X1", "total_amount": "1.00", "subject": "s"}))
	for _, action := range []string{"pay", "cancel"} {
		r := httptest.NewRequest("POST", "http://sandbox.test"+forms[action], nil)
		r.Header.Set("Sec-Fetch-Site", "cross-site")
		rec := serve(t, w.sandbox, r)
		assert.Equal(t, http.StatusForbidden, rec.Code, action)
		assert.Contains(t, rec.Body.String(), "another site")
	}
	assert.Equal(t, "WAIT_BUYER_PAY", w.sandbox.trades.view(w.sandbox.trades.byCashierID(strings.TrimPrefix(strings.TrimSuffix(forms["pay"], "/pay"), cashierPrefix))).Status)
	for _, site := range []string{"same-origin", "none", ""} {
		r := httptest.NewRequest("GET", "http://sandbox.test"+strings.TrimSuffix(forms["pay"], "/pay"), nil)
		r.Header.Set("Sec-Fetch-Site", site)
		assert.Equal(t, http.StatusOK, serve(t, w.sandbox, r).Code, "the page itself opens from anywhere: %q", site)
	}
	r := httptest.NewRequest("POST", "http://sandbox.test"+forms["pay"], nil)
	r.Header.Set("Sec-Fetch-Site", "same-origin")
	assert.Equal(t, http.StatusFound, serve(t, w.sandbox, r).Code)
	w.shop.waitNotify(t)
}

// The sandbox keeps max_trades trades and drops the oldest.
func TestSandboxMaxTrades(t *testing.T) {
	s := newTestSandbox(t, func(s *Handler) { s.MaxTrades = 2 })
	local := "http://127.0.0.1:8000/alipay/notify"
	var cashiers []string
	for _, no := range []string{"T1", "T2", "T3"} {
		rec := serve(t, s, httptest.NewRequest("GET", signedPayURL(t, local, local, map[string]any{"out_trade_no": no, "total_amount": "1.00", "subject": "s"}), nil))
		require.Equal(t, http.StatusFound, rec.Code)
		cashiers = append(cashiers, rec.Header().Get("Location"))
	}
	status := func(cashier string) int {
		return serve(t, s, httptest.NewRequest("GET", "http://sandbox.test"+cashier, nil)).Code
	}
	assert.Equal(t, http.StatusNotFound, status(cashiers[0]), "the oldest is gone")
	assert.Equal(t, http.StatusOK, status(cashiers[1]))
	assert.Equal(t, http.StatusOK, status(cashiers[2]))
	sum := s.trades.summary()
	assert.Equal(t, 2, sum.kept)
	assert.Len(t, s.trades.byKey, 2)
	assert.Len(t, s.trades.byNo, 2)
	assert.EqualValues(t, 1, sum.dropped)
}
