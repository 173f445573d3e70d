package sandbox

import (
	"context"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	"github.com/caddy-alipay/caddy-alipay/internal/protocol"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Certificate mode in one process: the sandbox issues the three files; a
// merchant that uses them pays, and its calls are answered naming the
// sandbox's certificate; a merchant that names no certificates is refused.
func TestSandboxCertificateMode(t *testing.T) {
	dir := t.TempDir()
	w := newWorld(t, func(s *Handler) { s.Certificates = dir })
	require.NotNil(t, w.sandbox.certs)
	gateway := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		_ = w.sandbox.ServeHTTP(rw, r, upstream{})
	}))
	t.Cleanup(gateway.Close)

	// The merchant reads the serial numbers from the files, as the sidecar does.
	sn := func(file string) string {
		cert, err := protocol.ParseCertificate(read(t, filepath.Join(dir, file)))
		require.NoError(t, err)
		s, err := protocol.CertSN(cert)
		require.NoError(t, err)
		return s
	}
	root, err := protocol.RootCertSN(read(t, filepath.Join(dir, "alipayRootCert.crt")))
	require.NoError(t, err)
	w.api.AppCertSN, w.api.RootCertSN, w.api.AlipayCertSN = sn("appCertPublicKey.crt"), root, sn("alipayCertPublicKey_RSA2.crt")
	assert.Equal(t, *w.sandbox.certs, certs{appCertSN: w.api.AppCertSN, rootCertSN: w.api.RootCertSN, alipayCertSN: w.api.AlipayCertSN})

	_, forms := w.cashier(t, w.startPay(t, map[string]any{"out_trade_no": "CM1", "total_amount": "2.00", "subject": "cert"}))
	require.Equal(t, http.StatusFound, w.postCashier(t, forms["pay"]).Code)
	w.shop.waitNotify(t)

	w.api.Gateway = gateway.URL + "/gateway.do"
	client := &protocol.Client{API: w.api, HTTP: http.DefaultClient, Timeout: 10 * time.Second, Now: time.Now}
	status, err := client.TradeStatus(context.Background(), "CM1", "")
	require.NoError(t, err)
	assert.Equal(t, "TRADE_SUCCESS", status)

	// A merchant without certificates names none: refused at the gateway.
	plain := merchantAPI(t, protocol.SignTypeRSA2)
	plain.Gateway = gateway.URL + "/gateway.do"
	_, err = (&protocol.Client{API: plain, HTTP: http.DefaultClient, Timeout: 10 * time.Second, Now: time.Now}).Call(
		context.Background(), "alipay.trade.query", []byte(`{"out_trade_no":"CM1"}`))
	var ce *protocol.CallError
	require.ErrorAs(t, err, &ce)
	assert.Equal(t, "isv.missing-app-cert-sn", ce.Fields["sub_code"])
	page := w.gateway(t, "GET", payURL(t, merchantAPI(t, protocol.SignTypeRSA2), w.site.URL+"/n", w.site.URL+"/r",
		map[string]any{"out_trade_no": "CM2", "total_amount": "1", "subject": "s"}), "")
	assert.Contains(t, page.Body.String(), "missing-app-cert-sn")

	// Started again, the sandbox keeps the certificates it issued.
	again := newTestSandbox(t, func(s *Handler) { s.Certificates = dir })
	assert.Equal(t, *w.sandbox.certs, *again.certs)
}
