package alipay

import (
	"encoding/json"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/caddy-alipay/caddy-alipay/internal/protocol"
	"github.com/caddy-alipay/caddy-alipay/internal/protocol/protocoltest"
	"github.com/caddy-alipay/caddy-alipay/internal/testvec"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func certPath(name string) string { return filepath.Join("testdata", "certs", name) }

func certMode(h *Handler) {
	h.AlipayPublicKey = ""
	h.AppCert = certPath("appCertPublicKey_2021000000000001.crt")
	h.AlipayCert = certPath("alipayCertPublicKey_RSA2.crt")
	h.AlipayRootCert = certPath("alipayRootCert.crt")
}

func TestCertModeProvision(t *testing.T) {
	h := newTestHandler(t, certMode)
	assert.Equal(t, "a810ae600acd4de14858a277a600aa06", h.client.API.AppCertSN)
	assert.Equal(t, "5e57030bba758a176a2dcead790355b0", h.client.API.AlipayCertSN)
	assert.Equal(t, "b04ff0e1d8d025e3d0abf6b7a0884742_189e35c3bd7baa0cbfaefa9c7cc62695", h.client.API.RootCertSN)

	// Callbacks verify with the key from alipay_cert.
	next := &upstream{status: 200}
	w := serve(t, h, next, notifyRequest(testvec.Load(t).Notify.Cases[0].PostBody))
	assert.Equal(t, "success", w.Body.String())

	// Inline PEM works as well as a path.
	pem, err := os.ReadFile(certPath("alipayRootCert.crt"))
	require.NoError(t, err)
	h = newTestHandler(t, func(h *Handler) { certMode(h); h.AlipayRootCert = string(pem) })
	assert.Equal(t, "b04ff0e1d8d025e3d0abf6b7a0884742_189e35c3bd7baa0cbfaefa9c7cc62695", h.client.API.RootCertSN)
}

// Every signed request carries the serial numbers, signed with the rest.
func TestCertModeRequests(t *testing.T) {
	h, g := newAPIWorld(t, certMode)
	tok := payToken(t, map[string]any{"out_trade_no": "C1", "total_amount": "1", "subject": "cert"})
	w := serve(t, h, &upstream{}, httptest.NewRequest("GET", "http://shop.example.com/alipay/pay?token="+tok, nil))
	loc, err := url.Parse(w.Header().Get("Location"))
	require.NoError(t, err)
	params := map[string]string{}
	for k := range loc.Query() {
		params[k] = loc.Query().Get(k)
	}
	assert.Equal(t, "a810ae600acd4de14858a277a600aa06", params["app_cert_sn"])
	assert.Equal(t, "b04ff0e1d8d025e3d0abf6b7a0884742_189e35c3bd7baa0cbfaefa9c7cc62695", params["alipay_root_cert_sn"])
	require.NoError(t, protocoltest.Verifier(t, "app_public_key.pem", protocol.SignTypeRSA2).Verify(protocol.RequestContent(params), params["sign"]))

	// Responses must name alipay_cert: the vector's certificate-mode refund does.
	refund := testvec.Load(t).Responses.Cases[3]
	require.Contains(t, refund.RawBody, `"alipay_cert_sn":"5e57030bba758a176a2dcead790355b0"`)
	for name, c := range map[string]struct {
		body   string
		status int
	}{
		"its certificate":     {refund.RawBody, 200},
		"another certificate": {strings.Replace(refund.RawBody, "5e57030bba758a176a2dcead790355b0", "00000000000000000000000000000000", 1), 502},
		"no certificate":      {strings.Replace(refund.RawBody, `"alipay_cert_sn":"5e57030bba758a176a2dcead790355b0",`, "", 1), 502},
	} {
		t.Run(name, func(t *testing.T) {
			g.setAnswer(func(method string, biz map[string]any) string { return c.body })
			w := serve(t, h, &upstream{}, apiRequest("POST", "/alipay/api/alipay.trade.refund", bearer(t, time.Minute),
				`{"out_trade_no":"20240520131415000001","refund_amount":"10.00","out_request_no":"R1"}`))
			assert.Equal(t, c.status, w.Code, w.Body.String())
			if c.status == 200 {
				var v map[string]string
				require.NoError(t, json.Unmarshal(w.Body.Bytes(), &v))
				assert.Equal(t, "10.00", v["refund_fee"])
			}
		})
	}
	require.NotEmpty(t, g.calls)
}

func TestCertModeErrors(t *testing.T) {
	for name, c := range map[string]struct {
		edit    func(*Handler)
		setting string
	}{
		"app_cert alone":           {func(h *Handler) { certMode(h); h.AlipayCert, h.AlipayRootCert = "", "" }, "alipay_cert"},
		"no root":                  {func(h *Handler) { certMode(h); h.AlipayRootCert = "" }, "alipay_root_cert"},
		"and alipay_public_key":    {func(h *Handler) { certMode(h); h.AlipayPublicKey = testvec.Key("alipay_public_key.pem") }, "alipay_public_key"},
		"app_cert of another key":  {func(h *Handler) { certMode(h); h.AppCert = certPath("alipayCertPublicKey_RSA2.crt") }, "app_cert"},
		"alipay_cert is the app's": {func(h *Handler) { certMode(h); h.AlipayCert = certPath("appCertPublicKey_2021000000000001.crt") }, "alipay_cert"},
		"root without RSA":         {func(h *Handler) { certMode(h); h.AlipayRootCert = certPath("root_ec.crt") }, "alipay_root_cert"},
		"a key as certificate":     {func(h *Handler) { certMode(h); h.AlipayCert = testvec.Key("alipay_public_key.pem") }, "alipay_cert"},
		"missing file":             {func(h *Handler) { certMode(h); h.AppCert = "/nonexistent/app.crt" }, "app_cert"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := provisionHandler(t, c.edit)
			require.Error(t, err)
			assert.True(t, strings.HasPrefix(err.Error(), c.setting+": "), err.Error())
		})
	}
}
