package alipay

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/caddy-alipay/caddy-alipay/internal/testvec"
	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddytest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestUnmarshalCaddyfile(t *testing.T) {
	d := caddyfile.NewTestDispenser(`alipay {
		app_id            2021000000000001
		app_private_key   /etc/caddy/app.pem
		alipay_public_key {env.ALIPAY_PUBLIC_KEY}
		secret            {env.ALIPAY_SECRET}
		sign_type         RSA
		gateway           http://127.0.0.1:8080/gateway.do
		prefix            /pay/alipay
		notify_url        https://shop.example.com/n
		return_url        https://shop.example.com/r
		seller_id         2088000000000001
		forward_notify    /notify.php
		forward_return    /return.php
		notify_ack        status
	}`)
	var h Handler
	require.NoError(t, h.UnmarshalCaddyfile(d))
	assert.Equal(t, Handler{
		AppID: "2021000000000001", AppPrivateKey: "/etc/caddy/app.pem", AlipayPublicKey: "{env.ALIPAY_PUBLIC_KEY}",
		Secret: "{env.ALIPAY_SECRET}", SignType: "RSA", Gateway: "http://127.0.0.1:8080/gateway.do",
		Prefix: "/pay/alipay", NotifyURL: "https://shop.example.com/n", ReturnURL: "https://shop.example.com/r",
		SellerID: "2088000000000001", ForwardNotify: "/notify.php", ForwardReturn: "/return.php", NotifyAck: "status",
	}, h)
}

func TestUnmarshalCaddyfileErrors(t *testing.T) {
	for name, input := range map[string]string{
		"inline argument":  `alipay 2021000000000001`,
		"unknown":          "alipay {\n app_key x\n}",
		"duplicate":        "alipay {\n app_id 1\n app_id 2\n}",
		"missing argument": "alipay {\n app_id\n}",
		"two arguments":    "alipay {\n secret a b\n}",
		"nested block":     "alipay {\n app_id 1 {\n x\n }\n}",
	} {
		t.Run(name, func(t *testing.T) {
			var h Handler
			err := h.UnmarshalCaddyfile(caddyfile.NewTestDispenser(input))
			assert.Error(t, err)
		})
	}
	var h Handler
	err := h.UnmarshalCaddyfile(caddyfile.NewTestDispenser("alipay {\n app_key x\n}"))
	assert.ErrorContains(t, err, `unrecognized subdirective "app_key"`)
	err = h.UnmarshalCaddyfile(caddyfile.NewTestDispenser("alipay {\n secret a b\n}"))
	assert.ErrorContains(t, err, "secret takes exactly one argument")
}

func TestUnmarshalCaddyfileAPI(t *testing.T) {
	var h Handler
	require.NoError(t, h.UnmarshalCaddyfile(caddyfile.NewTestDispenser("alipay {\n api_methods alipay.trade.query alipay.trade.close\n query_on_return on\n}")))
	assert.Equal(t, []string{"alipay.trade.query", "alipay.trade.close"}, h.APIMethods)
	assert.True(t, h.QueryOnReturn)
	h = Handler{}
	require.NoError(t, h.UnmarshalCaddyfile(caddyfile.NewTestDispenser("alipay {\n query_on_return\n}")))
	assert.True(t, h.QueryOnReturn)
	for _, bad := range []string{"alipay {\n api_methods\n}", "alipay {\n query_on_return yes\n}", "alipay {\n query_on_return on off\n}",
		"alipay {\n query_on_return\n query_on_return\n}"} {
		var h Handler
		assert.Error(t, h.UnmarshalCaddyfile(caddyfile.NewTestDispenser(bad)), bad)
	}
}

// alipay <matcher> puts the matcher into the handler, whose route has
// none: the matcher scopes the endpoints, never the header stripping.
func TestCaddyfileMatcherGoesIntoTheHandler(t *testing.T) {
	for _, c := range []struct{ caddyfile, match string }{
		{"@shop path /shop/*\nalipay @shop {\n app_id 1\n}", `[{"path":["/shop/*"]}]`},
		{"alipay /shop/* {\n app_id 1\n}", `[{"path":["/shop/*"]}]`},
		{"alipay {\n app_id 1\n}", ""},
	} {
		adapted, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte("http://shop.test {\n"+c.caddyfile+"\n}"), nil)
		require.NoError(t, err, c.caddyfile)
		var cfg struct {
			Apps struct {
				HTTP struct {
					Servers map[string]struct {
						Routes []struct {
							Handle []struct {
								Routes []struct {
									Match  json.RawMessage   `json:"match"`
									Handle []json.RawMessage `json:"handle"`
								} `json:"routes"`
							} `json:"handle"`
						} `json:"routes"`
					} `json:"servers"`
				} `json:"http"`
			} `json:"apps"`
		}
		require.NoError(t, json.Unmarshal(adapted, &cfg), string(adapted))
		inner := cfg.Apps.HTTP.Servers["srv0"].Routes[0].Handle[0].Routes[0]
		assert.Empty(t, inner.Match, "the route of alipay has no matcher: %s", adapted)
		var handler struct {
			Handler string          `json:"handler"`
			Match   json.RawMessage `json:"match"`
		}
		require.NoError(t, json.Unmarshal(inner.Handle[0], &handler))
		assert.Equal(t, "alipay", handler.Handler)
		if c.match == "" {
			assert.Empty(t, handler.Match)
		} else {
			assert.JSONEq(t, c.match, string(handler.Match))
		}
	}
}

func TestUnmarshalCaddyfileLegacy(t *testing.T) {
	var h Handler
	require.NoError(t, h.UnmarshalCaddyfile(caddyfile.NewTestDispenser(`alipay {
		partner       2088000000000001
		md5_key       {env.ALIPAY_MD5_KEY}
		input_charset gbk
		seller_email  seller@example.com
		notify_verify off
		secret        {env.ALIPAY_SECRET}
	}`)))
	off := false
	assert.Equal(t, Handler{Partner: "2088000000000001", MD5Key: "{env.ALIPAY_MD5_KEY}", InputCharset: "gbk",
		SellerEmail: "seller@example.com", NotifyVerify: &off, Secret: "{env.ALIPAY_SECRET}"}, h)
	h = Handler{}
	require.NoError(t, h.UnmarshalCaddyfile(caddyfile.NewTestDispenser("alipay {\n notify_verify\n}")))
	require.NotNil(t, h.NotifyVerify)
	assert.True(t, *h.NotifyVerify)
	for _, bad := range []string{"alipay {\n notify_verify maybe\n}", "alipay {\n partner\n}", "alipay {\n md5_key a b\n}"} {
		var h Handler
		assert.Error(t, h.UnmarshalCaddyfile(caddyfile.NewTestDispenser(bad)), bad)
	}
}

// Caddyfile.example adapts to the JSON in testdata and, given keys,
// validates as `caddy validate` would.
func TestCaddyfileExample(t *testing.T) {
	example, err := os.ReadFile("Caddyfile.example")
	require.NoError(t, err)
	want, err := os.ReadFile(filepath.Join("testdata", "caddyfile_adapt", "example.json"))
	require.NoError(t, err)
	require.True(t, caddytest.CompareAdapt(t, "Caddyfile.example", string(example), "caddyfile", strings.TrimSpace(string(want))),
		"Caddyfile.example no longer adapts to testdata/caddyfile_adapt/example.json")

	t.Setenv("ALIPAY_APP_PRIVATE_KEY", string(testvec.ReadKey(t, "app_private_key_pkcs1.b64")))
	t.Setenv("ALIPAY_PUBLIC_KEY", testvec.Key("alipay_public_key.pem"))
	t.Setenv("ALIPAY_SECRET", testSecret)
	cfgJSON, _, err := caddyconfig.GetAdapter("caddyfile").Adapt(example, nil)
	require.NoError(t, err)
	var cfg caddy.Config
	require.NoError(t, json.Unmarshal(cfgJSON, &cfg))
	require.NoError(t, caddy.Validate(&cfg))

	t.Setenv("ALIPAY_SECRET", "")
	require.NoError(t, json.Unmarshal(cfgJSON, &cfg))
	assert.ErrorContains(t, caddy.Validate(&cfg), "secret")
}

// A {$VAR} whose variable is unset or empty is dropped when the Caddyfile
// is parsed, which leaves its setting bare; the error says so.
func TestCaddyfileUnsetVariable(t *testing.T) {
	t.Setenv("TEST_ALIPAY_EMPTY_VARIABLE", "")
	for _, setting := range []string{"app_id", "secret", "notify_timeout", "api_methods"} {
		input := ":8080 {\n\talipay {\n\t\t" + setting + " {$TEST_ALIPAY_EMPTY_VARIABLE}\n\t}\n}\n"
		_, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(input), nil)
		require.Error(t, err, setting)
		assert.ErrorContains(t, err, setting+" takes")
		assert.ErrorContains(t, err, "is the environment variable of a {$VAR} written there unset?")
	}
}
