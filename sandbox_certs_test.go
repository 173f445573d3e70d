package alipay

import (
	"context"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Certificate mode end to end in one process: the sandbox issues the
// three files, a sidecar in certificate mode uses them, pays and calls the
// API; a sidecar that names no certificates is refused.
func TestSandboxCertificateMode(t *testing.T) {
	dir := t.TempDir()
	w := newSandboxWorld(t)
	w.sandbox = newTestSandboxWith(t, func(s *Sandbox) { s.Certificates = dir })
	require.NotNil(t, w.sandbox.certs)
	gateway := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		_ = w.sandbox.ServeHTTP(rw, r, &upstream{})
	}))
	t.Cleanup(gateway.Close)
	w.sidecar = newTestHandler(t, func(h *Handler) {
		h.Gateway = gateway.URL + "/gateway.do"
		h.AlipayPublicKey = ""
		h.AppCert = filepath.Join(dir, "appCertPublicKey.crt")
		h.AlipayCert = filepath.Join(dir, "alipayCertPublicKey_RSA2.crt")
		h.AlipayRootCert = filepath.Join(dir, "alipayRootCert.crt")
	})
	assert.Equal(t, w.sandbox.certs.appCertSN, w.sidecar.appCertSN)
	assert.Equal(t, w.sandbox.certs.rootCertSN, w.sidecar.rootCertSN)
	assert.Equal(t, w.sandbox.certs.alipayCertSN, w.sidecar.alipayCertSN)

	_, forms := w.cashier(t, w.startPay(t, map[string]any{"out_trade_no": "CM1", "total_amount": "2.00", "subject": "cert"}))
	paid := serve(t, w.sandbox, &upstream{}, httptest.NewRequest("POST", "http://sandbox.test"+forms["pay"], nil))
	require.Equal(t, http.StatusFound, paid.Code)
	w.shop.waitNotify(t)

	rec := serve(t, w.sidecar, &upstream{}, apiRequest("POST", "/alipay/api/alipay.trade.query", bearer(t, time.Minute), `{"out_trade_no":"CM1"}`))
	require.Equal(t, 200, rec.Code, rec.Body.String())
	assert.Contains(t, rec.Body.String(), `"trade_status":"TRADE_SUCCESS"`)

	// A sidecar without certificates names none: refused at the gateway.
	plain := newTestHandler(t, func(h *Handler) { h.Gateway = gateway.URL + "/gateway.do" })
	rec = serve(t, plain, &upstream{}, apiRequest("POST", "/alipay/api/alipay.trade.query", bearer(t, time.Minute), `{"out_trade_no":"CM1"}`))
	assert.Equal(t, 502, rec.Code)
	assert.Contains(t, rec.Body.String(), "isv.missing-app-cert-sn")
	loc := serve(t, plain, &upstream{}, httptest.NewRequest("GET", "http://shop.test/alipay/pay?token="+
		payToken(t, map[string]any{"out_trade_no": "CM2", "total_amount": "1", "subject": "s"}), nil)).Header().Get("Location")
	page := serve(t, w.sandbox, &upstream{}, httptest.NewRequest("GET", loc, nil))
	assert.Contains(t, page.Body.String(), "missing-app-cert-sn")

	// Started again, the sandbox keeps the certificates it issued.
	again := newTestSandboxWith(t, func(s *Sandbox) { s.Certificates = dir })
	assert.Equal(t, *w.sandbox.certs, *again.certs)
}

func newTestSandboxWith(t testing.TB, edit func(*Sandbox)) *Sandbox {
	t.Helper()
	s := &Sandbox{AppPublicKey: keyPath("app_public_key.pem"), AlipayPrivateKey: keyPath("alipay_private_key_pkcs1.pem")}
	edit(s)
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	t.Cleanup(cancel)
	require.NoError(t, s.Provision(ctx))
	return s
}
