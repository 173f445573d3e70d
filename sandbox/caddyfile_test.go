package sandbox

import (
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestUnmarshalSandboxCaddyfile(t *testing.T) {
	var s Handler
	require.NoError(t, s.UnmarshalCaddyfile(caddyfile.NewTestDispenser(`alipay_sandbox {
		app_public_key /keys/app_public.pem
		alipay_private_key {env.SANDBOX_KEY}
		notify_retry 1s 2m 1h
		certificates /var/lib/sandbox-certs
		callback_hosts shop.test 10.0.0.2
		max_trades 100
	}`)))
	assert.Equal(t, Handler{AppPublicKey: "/keys/app_public.pem", AlipayPrivateKey: "{env.SANDBOX_KEY}", Certificates: "/var/lib/sandbox-certs",
		NotifyRetry:   []caddy.Duration{caddy.Duration(time.Second), caddy.Duration(2 * time.Minute), caddy.Duration(time.Hour)},
		CallbackHosts: []string{"shop.test", "10.0.0.2"}, MaxTrades: 100}, s)
	for name, input := range map[string]string{
		"inline argument":  "alipay_sandbox x",
		"unknown":          "alipay_sandbox {\n app_id 1\n}",
		"duplicate":        "alipay_sandbox {\n app_public_key a\n app_public_key b\n}",
		"two keys":         "alipay_sandbox {\n app_public_key a b\n}",
		"no retry":         "alipay_sandbox {\n notify_retry\n}",
		"two dirs":         "alipay_sandbox {\n certificates a b\n}",
		"bad duration":     "alipay_sandbox {\n notify_retry soon\n}",
		"no hosts":         "alipay_sandbox {\n callback_hosts\n}",
		"no max":           "alipay_sandbox {\n max_trades\n}",
		"zero max":         "alipay_sandbox {\n max_trades 0\n}",
		"max not a number": "alipay_sandbox {\n max_trades many\n}",
		"two maxes":        "alipay_sandbox {\n max_trades 1 2\n}",
	} {
		var s Handler
		assert.Error(t, s.UnmarshalCaddyfile(caddyfile.NewTestDispenser(input)), name)
	}
}

// The legacy gateway's settings: with partner and md5_key alone, no
// OpenAPI key is needed.
func TestUnmarshalSandboxCaddyfileLegacy(t *testing.T) {
	var s Handler
	require.NoError(t, s.UnmarshalCaddyfile(caddyfile.NewTestDispenser(`alipay_sandbox {
		partner 2088000000000001
		md5_key {file./run/secrets/md5_key}
		notify_retry 1s
	}`)))
	assert.Equal(t, Handler{Partner: "2088000000000001", MD5Key: "{file./run/secrets/md5_key}",
		NotifyRetry: []caddy.Duration{caddy.Duration(time.Second)}}, s)
	s = Handler{}
	require.NoError(t, s.UnmarshalCaddyfile(caddyfile.NewTestDispenser(`alipay_sandbox {
		app_public_key /keys/app_public.pem
		alipay_private_key /keys/alipay_private.pem
		partner {env.PARTNER}
		md5_key /keys/md5.key
	}`)))
	assert.Equal(t, Handler{AppPublicKey: "/keys/app_public.pem", AlipayPrivateKey: "/keys/alipay_private.pem",
		Partner: "{env.PARTNER}", MD5Key: "/keys/md5.key"}, s)
	for name, input := range map[string]string{
		"no partner":        "alipay_sandbox {\n partner\n}",
		"two partners":      "alipay_sandbox {\n partner 2088000000000001 2088000000000002\n}",
		"partner twice":     "alipay_sandbox {\n partner 2088000000000001\n partner 2088000000000001\n}",
		"no md5_key":        "alipay_sandbox {\n md5_key\n}",
		"two md5_keys":      "alipay_sandbox {\n md5_key a b\n}",
		"md5_key twice":     "alipay_sandbox {\n md5_key a\n md5_key a\n}",
		"legacy sidecar's":  "alipay_sandbox {\n sign_type MD5\n}",
		"legacy charset":    "alipay_sandbox {\n input_charset gbk\n}",
		"seller is request": "alipay_sandbox {\n seller_id 2088000000000001\n}",
	} {
		var s Handler
		assert.Error(t, s.UnmarshalCaddyfile(caddyfile.NewTestDispenser(input)), name)
	}
}
