package alipay

// The sidecar and alipay_sandbox in one Caddy, as in the demo. Every test
// here waits, as it ends, until the sandbox has nothing left to send (see
// sandboxSite), so that no notification of its trades reaches another
// test.

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/caddy-alipay/caddy-alipay/internal/testvec"
	"github.com/caddy-alipay/caddy-alipay/sandbox"
	"github.com/caddyserver/caddy/v2"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The sidecar and the sandbox in one Caddy, as in the demo: a buyer's
// whole payment, and the notification reaching the shop through the
// sidecar, over real HTTP.
func TestCaddySandbox(t *testing.T) {
	s, upstream := startShop(t)
	tester := loadSidecar(t, `
		app_private_key `+testvec.Key("app_private_key_pkcs1.pem")+`
		alipay_public_key `+testvec.Key("alipay_public_key.pem")+`
		gateway `+sandboxURL+`/gateway.do
		query_on_return on`, upstream, sandboxSite(t, ""))

	sbx1, sbx2 := orderNo("SBX1"), orderNo("SBX2")
	tok := payToken(t, map[string]any{"out_trade_no": sbx1, "total_amount": "66.60", "subject": "沙箱商品"})
	resp, _ := getStatus(t, tester, caddyURL+"/alipay/pay?token="+tok, 302)
	resp, _ = getStatus(t, tester, resp.Header.Get("Location"), 302)
	cashier := sandboxURL + resp.Header.Get("Location")
	_, page := getStatus(t, tester, cashier, 200)
	assert.Contains(t, page, `<span id="amount">66.60</span>`)
	m := cashierFormRE.FindStringSubmatch(page)
	require.NotNil(t, m)
	req, _ := http.NewRequest("POST", sandboxURL+m[1], nil)
	resp = tester.AssertResponseCode(req, 302)
	back := resp.Header.Get("Location")
	require.True(t, strings.HasPrefix(back, caddyURL+"/alipay/return?"), back)
	tester.AssertGetResponse(back, 200, "shop saw /alipay/return")
	s.mu.Lock()
	returns := 0
	for _, r := range s.requests {
		if r.path == "/alipay/return" {
			returns++
			assert.Equal(t, "TRADE_SUCCESS", r.claims["trade_status"], "query_on_return asked the sandbox")
		}
	}
	s.mu.Unlock()
	assert.Equal(t, 1, returns)

	require.Eventually(t, func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		for _, r := range s.requests {
			if r.path == "/alipay/notify" && r.tokenErr == "" && r.claims["params"].(map[string]any)["trade_status"] == "TRADE_SUCCESS" {
				return true
			}
		}
		return false
	}, 10*time.Second, 20*time.Millisecond, "the verified notification reaches the shop")
	got := s.take()
	var notifies int
	for _, r := range got {
		if r.path == "/alipay/notify" {
			notifies++
			assert.Equal(t, "66.60", r.claims["params"].(map[string]any)["total_amount"])
		}
	}
	assert.Equal(t, 1, notifies, "answered success at once: no retry")

	// The shop's API, through the sidecar, against the sandbox's state.
	api := func(method, body string) (int, map[string]any) {
		t.Helper()
		req, err := http.NewRequest("POST", caddyURL+"/alipay/api/"+method, strings.NewReader(body))
		require.NoError(t, err)
		req.Header.Set("Authorization", "Bearer "+bearer(t, 5*time.Minute))
		resp, err := tester.Client.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		var v map[string]any
		require.NoError(t, json.NewDecoder(resp.Body).Decode(&v))
		return resp.StatusCode, v
	}
	code, v := api("alipay.trade.query", `{"out_trade_no":"`+sbx1+`"}`)
	require.Equal(t, 200, code, v)
	assert.Equal(t, "TRADE_SUCCESS", v["trade_status"])
	assert.Equal(t, "66.60", v["total_amount"])

	_, v = api("alipay.trade.refund", `{"out_trade_no":"`+sbx1+`","refund_amount":"10.00","out_request_no":"R1"}`)
	assert.Equal(t, map[string]any{"code": "10000", "fund_change": "Y", "refund_fee": "10.00"}, pick(v, "code", "fund_change", "refund_fee"))
	_, v = api("alipay.trade.refund", `{"out_trade_no":"`+sbx1+`","refund_amount":"10.00","out_request_no":"R1"}`)
	assert.Equal(t, map[string]any{"code": "10000", "fund_change": "N", "refund_fee": "10.00"}, pick(v, "code", "fund_change", "refund_fee"), "a retry refunds once")
	_, v = api("alipay.trade.refund", `{"out_trade_no":"`+sbx1+`","refund_amount":"56.61","out_request_no":"R2"}`)
	assert.Equal(t, "40004", v["code"], "more than is left")
	_, v = api("alipay.trade.refund", `{"out_trade_no":"`+sbx1+`","refund_amount":"56.60","out_request_no":"R2"}`)
	assert.Equal(t, map[string]any{"code": "10000", "fund_change": "Y", "refund_fee": "66.60"}, pick(v, "code", "fund_change", "refund_fee"))
	_, v = api("alipay.trade.fastpay.refund.query", `{"out_trade_no":"`+sbx1+`","out_request_no":"R1"}`)
	assert.Equal(t, "10.00", v["refund_amount"])
	_, v = api("alipay.trade.query", `{"out_trade_no":"`+sbx1+`"}`)
	assert.Equal(t, "TRADE_CLOSED", v["trade_status"], "refunded in full")

	// Close a trade that was opened but never paid.
	tok = payToken(t, map[string]any{"out_trade_no": sbx2, "total_amount": "1.00", "subject": "unpaid"})
	resp, _ = getStatus(t, tester, caddyURL+"/alipay/pay?token="+tok, 302)
	getStatus(t, tester, resp.Header.Get("Location"), 302)
	_, v = api("alipay.trade.close", `{"out_trade_no":"`+sbx2+`"}`)
	assert.Equal(t, "10000", v["code"])
	_, v = api("alipay.trade.query", `{"out_trade_no":"`+sbx2+`"}`)
	assert.Equal(t, "TRADE_CLOSED", v["trade_status"])

	code, v = api("alipay.trade.refund", `{"out_trade_no":"`+sbx1+`","refund_amount":"1.00"}`)
	assert.Equal(t, 400, code, "a refund without out_request_no never leaves Caddy")
	assert.Contains(t, v["error"], "out_request_no")
}

// Certificate mode through a real Caddy: the sidecar uses the
// certificates that the sandbox issued (here issued first, since Caddy
// provisions its servers in no fixed order).
func TestCaddyCertificateMode(t *testing.T) {
	dir := t.TempDir()
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	defer cancel()
	issuer := &sandbox.Handler{AppPublicKey: testvec.Key("app_public_key.pem"),
		AlipayPrivateKey: testvec.Key("alipay_private_key_pkcs1.pem"), Certificates: dir}
	require.NoError(t, issuer.Provision(ctx))
	defer func() { _ = issuer.Cleanup() }()
	// Through the environment: caddytest rewrites any "/name.crt" in a
	// Caddyfile to a file of its own.
	t.Setenv("TEST_APP_CERT", filepath.Join(dir, "appCertPublicKey.crt"))
	t.Setenv("TEST_ALIPAY_CERT", filepath.Join(dir, "alipayCertPublicKey_RSA2.crt"))
	t.Setenv("TEST_ALIPAY_ROOT_CERT", filepath.Join(dir, "alipayRootCert.crt"))
	_, upstream := startShop(t)
	tester := loadSidecar(t, `
		app_private_key `+testvec.Key("app_private_key_pkcs1.pem")+`
		app_cert {env.TEST_APP_CERT}
		alipay_cert {env.TEST_ALIPAY_CERT}
		alipay_root_cert {env.TEST_ALIPAY_ROOT_CERT}
		gateway `+sandboxURL+`/gateway.do`, upstream, sandboxSite(t, "certificates "+dir))

	cert1 := orderNo("CERT1")
	tok := payToken(t, map[string]any{"out_trade_no": cert1, "total_amount": "3.00", "subject": "证书模式"})
	resp, _ := getStatus(t, tester, caddyURL+"/alipay/pay?token="+tok, 302)
	assert.NotEmpty(t, must(url.Parse(resp.Header.Get("Location"))).Query().Get("app_cert_sn"))
	resp, _ = getStatus(t, tester, resp.Header.Get("Location"), 302)
	_, page := getStatus(t, tester, sandboxURL+resp.Header.Get("Location"), 200)
	m := cashierFormRE.FindStringSubmatch(page)
	require.NotNil(t, m)
	req, _ := http.NewRequest("POST", sandboxURL+m[1], nil)
	back := tester.AssertResponseCode(req, 302).Header.Get("Location")
	tester.AssertGetResponse(back, 200, "shop saw /alipay/return")

	req, _ = http.NewRequest("POST", caddyURL+"/alipay/api/alipay.trade.query", strings.NewReader(`{"out_trade_no":"`+cert1+`"}`))
	req.Header.Set("Authorization", "Bearer "+bearer(t, time.Minute))
	resp = tester.AssertResponseCode(req, 200)
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	resp.Body.Close()
	assert.Contains(t, string(body), `"trade_status":"TRADE_SUCCESS"`)
}
