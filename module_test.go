package alipay

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/caddy-alipay/caddy-alipay/internal/caddyconf"
	"github.com/caddy-alipay/caddy-alipay/internal/protocol"
	"github.com/caddy-alipay/caddy-alipay/internal/testvec"
	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
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

// Every string setting is in the one list, which the Caddyfile parser
// and the placeholder resolution both read: each is parsed from the
// Caddyfile by its name and has its placeholders resolved.
func TestStringSettings(t *testing.T) {
	all := new(Handler)
	assert.Empty(t, caddyconf.MissingStringSettings(all, all.stringSettings()), "string fields missing from stringSettings")
	t.Setenv("TEST_ALIPAY_SETTING", "  from the environment  ")
	for _, s := range new(Handler).stringSettings() {
		var h Handler
		d := caddyfile.NewTestDispenser("alipay {\n" + s.Name + " {env.TEST_ALIPAY_SETTING}\n}")
		require.NoError(t, h.UnmarshalCaddyfile(d), s.Name)
		for _, got := range h.stringSettings() {
			if got.Name == s.Name {
				assert.Equal(t, "{env.TEST_ALIPAY_SETTING}", *got.Field, s.Name)
			} else {
				assert.Empty(t, *got.Field, "%s set %s", s.Name, got.Name)
			}
		}
		caddyconf.ResolvePlaceholders(h.stringSettings())
		for _, got := range h.stringSettings() {
			if got.Name == s.Name {
				assert.Equal(t, "from the environment", *got.Field, s.Name)
			}
		}
	}
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
		"gateway ending in ?":   {func(h *Handler) { h.Gateway = "https://openapi.alipay.com/gateway.do?" }, "gateway"},
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
		"encrypt_key not AES":   {func(h *Handler) { h.EncryptKey = "c2hvcnQ=" }, "encrypt_key"},
		"api_version":           {func(h *Handler) { h.APIVersion = "3" }, "api_version"},
		"v3 with RSA":           {func(h *Handler) { h.APIVersion, h.SignType = "v3", protocol.SignTypeRSA }, "api_version"},
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

func TestNotifyTimeoutSetting(t *testing.T) {
	var h Handler
	require.NoError(t, h.UnmarshalCaddyfile(caddyfile.NewTestDispenser("alipay {\n notify_timeout 2s\n}")))
	assert.Equal(t, caddy.Duration(2*time.Second), h.NotifyTimeout)
	for _, bad := range []string{"alipay {\n notify_timeout\n}", "alipay {\n notify_timeout soon\n}", "alipay {\n notify_timeout 0s\n}", "alipay {\n notify_timeout 1s 2s\n}"} {
		var h Handler
		assert.Error(t, h.UnmarshalCaddyfile(caddyfile.NewTestDispenser(bad)), bad)
	}
	assert.Equal(t, defaultNotifyTimeout, newTestHandler(t, nil).notifyTimeout())
	_, err := provisionHandler(t, func(h *Handler) { h.NotifyTimeout = caddy.Duration(-time.Second) })
	assert.ErrorContains(t, err, "notify_timeout: ")
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

// In the legacy protocol, every mix of settings that makes no sense stops
// with an error that names the setting, and never the MD5 key.
func TestLegacyConfigErrors(t *testing.T) {
	v := testvec.LoadLegacy(t)
	legacy := func(edit func(h *Handler)) func(h *Handler) {
		return func(h *Handler) {
			h.AppID, h.AppPrivateKey, h.AlipayPublicKey = "", "", ""
			h.Partner, h.MD5Key = v.Partner, v.MD5Key
			edit(h)
		}
	}
	_, err := provisionHandler(t, legacy(func(*Handler) {}))
	require.NoError(t, err)
	for setting, edit := range map[string]func(h *Handler){
		"app_id":          legacy(func(h *Handler) { h.AppID = testAppID }),
		"app_cert":        legacy(func(h *Handler) { h.AppCert = testvec.Cert("appCertPublicKey_2021000000000001.crt") }),
		"api_methods":     legacy(func(h *Handler) { h.APIMethods = []string{"alipay.trade.query"} }),
		"query_on_return": legacy(func(h *Handler) { h.QueryOnReturn = true }),
		"barcode_poll":    legacy(func(h *Handler) { h.BarcodePoll = caddy.Duration(time.Second) }),
		"barcode_wait":    legacy(func(h *Handler) { h.BarcodeWait = caddy.Duration(time.Minute) }),
		"encrypt_key":     legacy(func(h *Handler) { h.EncryptKey = "aYA0GP8JEW+D7/UFaskCWA==" }),
		"api_version":     legacy(func(h *Handler) { h.APIVersion = "v3" }),
		"partner":         legacy(func(h *Handler) { h.Partner = "2088" }),
		"md5_key":         legacy(func(h *Handler) { h.MD5Key = "tooshort" }),
		"app_private_key": legacy(func(h *Handler) { h.AppPrivateKey = testvec.Key("app_private_key_pkcs1.pem") }),
		"input_charset":   legacy(func(h *Handler) { h.InputCharset = "latin1" }),
		"seller_email":    legacy(func(h *Handler) { h.SellerEmail = "x" }),
		"sign_type":       legacy(func(h *Handler) { h.SignType = "RSA2" }),
		"alipay_public_key": legacy(func(h *Handler) {
			h.SignType, h.MD5Key, h.AppPrivateKey = "RSA", "", testvec.Key("app_private_key_pkcs1.pem")
		}),
		"gateway": legacy(func(h *Handler) { h.Gateway = "sandbox" }),
	} {
		_, err := provisionHandler(t, edit)
		require.Error(t, err, setting)
		assert.True(t, strings.HasPrefix(err.Error(), setting+": "), "%s: %v", setting, err)
		assert.NotContains(t, err.Error(), v.MD5Key)
	}
	// The legacy settings need partner.
	for setting, edit := range map[string]func(h *Handler){
		"md5_key":       func(h *Handler) { h.MD5Key = v.MD5Key },
		"input_charset": func(h *Handler) { h.InputCharset = "gbk" },
		"seller_email":  func(h *Handler) { h.SellerEmail = "s@example.com" },
		"notify_verify": func(h *Handler) { h.NotifyVerify = new(bool) },
	} {
		_, err := provisionHandler(t, edit)
		require.Error(t, err, setting)
		assert.True(t, strings.HasPrefix(err.Error(), setting+": "), "%s: %v", setting, err)
		assert.NotContains(t, err.Error(), v.MD5Key)
	}
}

// A config mistake stops the load with an error that names the setting.
func TestCaddyConfigErrors(t *testing.T) {
	loadSidecar(t, standardSettings(), "", "") // a running Caddy to load into
	site := func(block string) string {
		return globalOptions("") + `
		` + caddyURL + ` {
			alipay {
				` + block + `
			}
			respond "unreachable"
		}`
	}
	good := map[string]string{
		"app_id":            testAppID,
		"app_private_key":   testvec.Key("app_private_key_pkcs1.pem"),
		"alipay_public_key": testvec.Key("alipay_public_key.pem"),
		"secret":            testSecret,
	}
	block := func(edit map[string]string) string {
		var b strings.Builder
		for _, k := range []string{"app_id", "app_private_key", "alipay_public_key", "secret", "gateway", "sign_type", "app_key"} {
			v, ok := edit[k]
			if !ok {
				v = good[k]
			}
			if v != "" {
				fmt.Fprintf(&b, "%s %s\n", k, v)
			}
		}
		return b.String()
	}
	for name, c := range map[string]struct {
		edit map[string]string
		want string
	}{
		"missing key file":     {map[string]string{"app_private_key": "/nonexistent/app.pem"}, "app_private_key"},
		"public as private":    {map[string]string{"app_private_key": testvec.Key("app_public_key.pem")}, "app_private_key"},
		"app's own key":        {map[string]string{"alipay_public_key": testvec.Key("app_public_key.pem")}, "alipay_public_key"},
		"short secret":         {map[string]string{"secret": "short"}, "secret"},
		"unset env secret":     {map[string]string{"secret": "{env.TEST_ALIPAY_NOT_SET}"}, "secret"},
		"http gateway":         {map[string]string{"gateway": "http://openapi.alipay.com/gateway.do"}, "gateway"},
		"unknown subdirective": {map[string]string{"app_key": "x"}, `unrecognized subdirective \"app_key\"`},
		"sign_type":            {map[string]string{"sign_type": "SM2"}, "sign_type"},
	} {
		t.Run(name, func(t *testing.T) {
			resp := postLoad(t, site(block(c.edit)))
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			assert.Equal(t, 400, resp.StatusCode, string(body))
			assert.Contains(t, string(body), c.want)
			assert.NotContains(t, string(body), testSecret)
		})
	}
}

// The legacy protocol's config mistakes, through a real Caddy: the load
// stops with an error that names the setting, and never the MD5 key.
func TestCaddyLegacyConfigErrors(t *testing.T) {
	v := testvec.LoadLegacy(t)
	t.Setenv("TEST_MD5_KEY", v.MD5Key)
	loadSidecar(t, standardSettings(), "", "") // a running Caddy to load into
	for _, c := range []struct{ settings, want string }{
		{"partner 2088000000000001\n md5_key {env.TEST_MD5_KEY}\n app_id 2021000000000001", "app_id"},
		{"partner 2088000000000001\n md5_key {env.TEST_MD5_KEY}\n query_on_return", "query_on_return"},
		{"partner 2088000000000001\n md5_key {env.TEST_MD5_KEY}\n api_methods alipay.trade.query", "api_methods"},
		{"partner 2088000000000001\n md5_key {env.TEST_MD5_KEY}\n alipay_root_cert " + testvec.Cert("alipayRootCert.crt"), "alipay_root_cert"},
		{"partner 2088000000000001\n md5_key {env.TEST_MD5_KEY}\n sign_type RSA", "md5_key"},
		{"partner 2088000000000001\n md5_key 0123456789abcdef0123456789abcde", "md5_key"},
		{"partner 2088000000000001\n md5_key {env.TEST_MD5_KEY}\n input_charset big5", "input_charset"},
		{"partner 2088000000000001", "md5_key"},
		{"partner 123\n md5_key {env.TEST_MD5_KEY}", "partner"},
		{"app_id 2021000000000001\n md5_key {env.TEST_MD5_KEY}", "md5_key"},
	} {
		resp := postLoad(t, globalOptions("")+`
	`+caddyURL+` {
		alipay {
			secret {env.TEST_ALIPAY_SECRET}
			`+c.settings+`
		}
	}`)
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		assert.Equal(t, 400, resp.StatusCode, string(body))
		assert.Contains(t, string(body), c.want+": ", c.settings)
		assert.NotContains(t, string(body), v.MD5Key)
	}
}

// api_version v3 sends the API's calls to the gateway's origin, where
// Alipay (and alipay_sandbox) answers v3's REST paths.
func TestAPIVersionSetting(t *testing.T) {
	for gateway, origin := range map[string]string{"": "https://openapi.alipay.com", "sandbox": "https://openapi-sandbox.dl.alipaydev.com",
		"http://127.0.0.1:8081/gateway.do": "http://127.0.0.1:8081"} {
		h := newTestHandler(t, func(h *Handler) { h.APIVersion, h.Gateway = "v3", gateway })
		assert.True(t, h.client.API.V3)
		assert.Equal(t, origin, h.client.API.V3Origin, gateway)
	}
	assert.False(t, newTestHandler(t, func(h *Handler) { h.APIVersion = "v2" }).client.API.V3)
}
