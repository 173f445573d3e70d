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
	var s Sandbox
	require.NoError(t, s.UnmarshalCaddyfile(caddyfile.NewTestDispenser(`alipay_sandbox {
		app_public_key /keys/app_public.pem
		alipay_private_key {env.SANDBOX_KEY}
		notify_retry 1s 2m 1h
		certificates /var/lib/sandbox-certs
		callback_hosts shop.test 10.0.0.2
		max_trades 100
	}`)))
	assert.Equal(t, Sandbox{AppPublicKey: "/keys/app_public.pem", AlipayPrivateKey: "{env.SANDBOX_KEY}", Certificates: "/var/lib/sandbox-certs",
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
		var s Sandbox
		assert.Error(t, s.UnmarshalCaddyfile(caddyfile.NewTestDispenser(input)), name)
	}
}
