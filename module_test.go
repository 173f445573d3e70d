package alipay

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/caddy-alipay/caddy-alipay/internal/protocol"
	"github.com/caddy-alipay/caddy-alipay/internal/testvec"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestProvisionDefaults(t *testing.T) {
	h := newTestHandler(t, nil)
	assert.Equal(t, protocol.SignTypeRSA2, h.client.API.Signer.SignType())
	assert.Equal(t, protocol.GatewayProduction, h.client.API.Gateway)
	assert.Equal(t, []string{"alipay"}, h.router.prefix)
	assert.Equal(t, "/alipay/notify", h.notifyPath)
	assert.Equal(t, "/alipay/return", h.returnPath)

	h = newTestHandler(t, func(h *Handler) { h.Gateway = "sandbox" })
	assert.Equal(t, protocol.GatewaySandbox, h.client.API.Gateway)
}

// Keys and secret from the environment and from files, inline or by path.
func TestProvisionPlaceholders(t *testing.T) {
	t.Setenv("TEST_ALIPAY_APP_KEY", string(testvec.ReadKey(t, "app_private_key_pkcs8.b64")))
	t.Setenv("TEST_ALIPAY_SECRET", testSecret)
	abs, err := filepath.Abs(testvec.Key("alipay_public_key.b64"))
	require.NoError(t, err)
	h := newTestHandler(t, func(h *Handler) {
		h.AppPrivateKey = "{env.TEST_ALIPAY_APP_KEY}"
		h.AlipayPublicKey = "{file." + abs + "}"
		h.Secret = "{env.TEST_ALIPAY_SECRET}"
	})
	assert.Equal(t, testSecret, h.Secret)
	_, err = h.tokens.Parse(payToken(t, map[string]any{"out_trade_no": "A1"}), time.Now())
	assert.NoError(t, err, "the token key is the secret from the environment")
}

// Every mistake stops the config with an error that names the setting.
func TestProvisionErrors(t *testing.T) {
	short1024, short1024Pub := testvec.NewKeyFiles(t, 1024)
	dir := t.TempDir()
	garbage := filepath.Join(dir, "garbage.pem")
	require.NoError(t, os.WriteFile(garbage, []byte("hello"), 0o600))
	cases := map[string]struct {
		edit    func(*Handler)
		setting string
	}{
		"no app_id":             {func(h *Handler) { h.AppID = "" }, "app_id"},
		"app_id not digits":     {func(h *Handler) { h.AppID = "my-app" }, "app_id"},
		"no private key":        {func(h *Handler) { h.AppPrivateKey = "" }, "app_private_key"},
		"unset env key":         {func(h *Handler) { h.AppPrivateKey = "{env.TEST_ALIPAY_UNSET_VARIABLE}" }, "app_private_key"},
		"missing key file":      {func(h *Handler) { h.AppPrivateKey = "/nonexistent/key.pem" }, "app_private_key"},
		"garbage key file":      {func(h *Handler) { h.AppPrivateKey = garbage }, "app_private_key"},
		"public as private":     {func(h *Handler) { h.AppPrivateKey = testvec.Key("app_public_key.pem") }, "app_private_key"},
		"private as public":     {func(h *Handler) { h.AlipayPublicKey = testvec.Key("alipay_private_key_pkcs1.pem") }, "alipay_public_key"},
		"own key as alipay's":   {func(h *Handler) { h.AlipayPublicKey = testvec.Key("app_public_key.pem") }, "alipay_public_key"},
		"no alipay key":         {func(h *Handler) { h.AlipayPublicKey = "" }, "alipay_public_key"},
		"1024-bit app key":      {func(h *Handler) { h.AppPrivateKey = short1024 }, "app_private_key"},
		"1024-bit alipay key":   {func(h *Handler) { h.AlipayPublicKey = short1024Pub }, "alipay_public_key"},
		"no secret":             {func(h *Handler) { h.Secret = "" }, "secret"},
		"short secret":          {func(h *Handler) { h.Secret = strings.Repeat("s", 31) }, "secret"},
		"sign_type":             {func(h *Handler) { h.SignType = "MD5" }, "sign_type"},
		"http gateway":          {func(h *Handler) { h.Gateway = "http://openapi.alipay.com/gateway.do" }, "gateway"},
		"http private gateway":  {func(h *Handler) { h.Gateway = "http://10.0.0.1/gateway.do" }, "gateway"},
		"gateway not a url":     {func(h *Handler) { h.Gateway = "openapi.alipay.com" }, "gateway"},
		"gateway with query":    {func(h *Handler) { h.Gateway = "https://openapi.alipay.com/gateway.do?charset=utf-8" }, "gateway"},
		"ftp gateway":           {func(h *Handler) { h.Gateway = "ftp://127.0.0.1/gateway.do" }, "gateway"},
		"relative notify_url":   {func(h *Handler) { h.NotifyURL = "/alipay/notify" }, "notify_url"},
		"notify_url with query": {func(h *Handler) { h.NotifyURL = "https://shop.example.com/notify?shop=1" }, "notify_url"},
		"return_url with frag":  {func(h *Handler) { h.ReturnURL = "https://shop.example.com/return#x" }, "return_url"},
		"seller_id":             {func(h *Handler) { h.SellerID = "2099000000000001" }, "seller_id"},
		"prefix":                {func(h *Handler) { h.Prefix = "alipay" }, "prefix"},
		"forward_notify":        {func(h *Handler) { h.ForwardNotify = "notify.php" }, "forward_notify"},
		"forward_return query":  {func(h *Handler) { h.ForwardReturn = "/r?x=1" }, "forward_return"},
		"api method name":       {func(h *Handler) { h.APIMethods = []string{"alipay.trade.query", "../admin"} }, "api_methods"},
		"notify_ack":            {func(h *Handler) { h.NotifyAck = "2xx" }, "notify_ack"},
		"forward_notify is pay": {func(h *Handler) { h.ForwardNotify = "/Alipay/Pay/" }, "forward_notify"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := provisionHandler(t, c.edit)
			require.Error(t, err)
			assert.True(t, strings.HasPrefix(err.Error(), c.setting+": "), "error %q should name %s", err, c.setting)
			assert.NotContains(t, err.Error(), "MII", "no key material in errors")
			assert.NotContains(t, err.Error(), testSecret[:20], "no secret in errors")
		})
	}
}

// Legacy apps: a 1024-bit key is accepted with sign_type RSA.
func TestLegacy1024WithRSA(t *testing.T) {
	priv, _ := testvec.NewKeyFiles(t, 1024)
	h := newTestHandler(t, func(h *Handler) { h.SignType = protocol.SignTypeRSA; h.AppPrivateKey = priv })
	assert.Equal(t, protocol.SignTypeRSA, h.client.API.Signer.SignType())
}

func TestLoopbackGateways(t *testing.T) {
	for _, g := range []string{"http://127.0.0.1:8443/gateway.do", "http://localhost/gateway.do", "http://[::1]:9/gateway.do", "https://example.com/gw"} {
		_, err := provisionHandler(t, func(h *Handler) { h.Gateway = g })
		assert.NoError(t, err, g)
	}
}
