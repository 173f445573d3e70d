package sandbox

import (
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"github.com/caddy-alipay/caddy-alipay/internal/caddyconf"
	"github.com/caddy-alipay/caddy-alipay/internal/protocol"
	"github.com/caddy-alipay/caddy-alipay/internal/testvec"
	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Provisioning: the settings' checks and errors, their placeholders, and
// the JSON config.

// Every string setting is in the one list, which the Caddyfile parser and
// Provision's placeholder resolution both read: each is parsed from the
// Caddyfile by its name, as one argument, and has its placeholders
// resolved; callback_hosts, a list, has them resolved too.
func TestStringSettings(t *testing.T) {
	all := new(Handler)
	assert.Empty(t, caddyconf.MissingStringSettings(all, all.stringSettings()), "string fields missing from stringSettings")
	t.Setenv("TEST_SANDBOX_SETTING", "  from the environment  ")
	for _, s := range new(Handler).stringSettings() {
		var h Handler
		d := caddyfile.NewTestDispenser("alipay_sandbox {\n" + s.Name + " {env.TEST_SANDBOX_SETTING}\n}")
		require.NoError(t, h.UnmarshalCaddyfile(d), s.Name)
		for _, got := range h.stringSettings() {
			if got.Name == s.Name {
				assert.Equal(t, "{env.TEST_SANDBOX_SETTING}", *got.Field, s.Name)
			} else {
				assert.Empty(t, *got.Field, "%s set %s", s.Name, got.Name)
			}
		}
		h.resolvePlaceholders()
		for _, got := range h.stringSettings() {
			if got.Name == s.Name {
				assert.Equal(t, "from the environment", *got.Field, s.Name)
			}
		}
	}
	hosts := []string{"{env.TEST_SANDBOX_SETTING}", "shop.test"}
	h := Handler{CallbackHosts: hosts}
	h.resolvePlaceholders()
	assert.Equal(t, []string{"from the environment", "shop.test"}, h.CallbackHosts)
	assert.Equal(t, "{env.TEST_SANDBOX_SETTING}", hosts[0], "the config's own list is left as it was")

	// Provision resolves them: keys, partner and md5_key from the
	// environment and from files.
	v := testvec.LoadLegacy(t)
	t.Setenv("TEST_SANDBOX_APP_KEY", testvec.Key("app_public_key.pem"))
	t.Setenv("TEST_SANDBOX_PARTNER", v.Partner)
	t.Setenv("TEST_SANDBOX_HOST", "Shop.Example.com")
	abs, err := filepath.Abs(testvec.Path("legacy", "md5_key.txt"))
	require.NoError(t, err)
	s := newTestSandbox(t, func(h *Handler) {
		h.AppPublicKey, h.Partner, h.MD5Key = "{env.TEST_SANDBOX_APP_KEY}", "{env.TEST_SANDBOX_PARTNER}", "{file."+abs+"}"
		h.CallbackHosts = []string{"{env.TEST_SANDBOX_HOST}"}
	})
	assert.True(t, s.openAPI)
	require.NotNil(t, s.legacy)
	assert.Equal(t, v.Partner, s.legacy.partner)
	assert.Equal(t, map[string]bool{"shop.example.com": true}, s.callbackHosts)
}

func TestSandboxProvisionErrors(t *testing.T) {
	for name, c := range map[string]struct {
		s       Handler
		setting string
	}{
		"no app key":        {Handler{AlipayPrivateKey: testvec.Key("alipay_private_key_pkcs1.pem")}, "app_public_key"},
		"private as public": {Handler{AppPublicKey: testvec.Key("app_private_key_pkcs1.pem"), AlipayPrivateKey: testvec.Key("alipay_private_key_pkcs1.pem")}, "app_public_key"},
		"no alipay key":     {Handler{AppPublicKey: testvec.Key("app_public_key.pem")}, "alipay_private_key"},
		"app's own key":     {Handler{AppPublicKey: testvec.Key("app_public_key.pem"), AlipayPrivateKey: testvec.Key("app_private_key_pkcs1.pem")}, "alipay_private_key"},
		"zero retry": {Handler{AppPublicKey: testvec.Key("app_public_key.pem"), AlipayPrivateKey: testvec.Key("alipay_private_key_pkcs1.pem"),
			NotifyRetry: []caddy.Duration{0}}, "notify_retry"},
	} {
		t.Run(name, func(t *testing.T) {
			ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
			defer cancel()
			s := c.s
			err := s.Provision(ctx)
			require.Error(t, err)
			assert.True(t, strings.HasPrefix(err.Error(), c.setting+": "), err.Error())
		})
	}
}

func TestLegacyProvisionErrors(t *testing.T) {
	v := testvec.LoadLegacy(t)
	keys := func(s Handler) Handler {
		s.AppPublicKey, s.AlipayPrivateKey = testvec.Key("app_public_key.pem"), testvec.Key("alipay_private_key_pkcs1.pem")
		return s
	}
	badKey := "notthekey" + v.MD5Key[9:31]
	for name, c := range map[string]struct {
		s       Handler
		setting string
	}{
		"md5_key without partner":      {keys(Handler{MD5Key: v.MD5Key}), "md5_key"},
		"partner without md5_key":      {Handler{Partner: v.Partner}, "md5_key"},
		"partner without md5_key, rsa": {keys(Handler{Partner: v.Partner}), "md5_key"},
		"not a partner id":             {Handler{Partner: "2021000000000001", MD5Key: v.MD5Key}, "partner"},
		"partner from an unset env":    {Handler{Partner: "{env.CADDY_ALIPAY_TEST_UNSET}", MD5Key: v.MD5Key}, "partner"},
		"md5_key from an unset env":    {Handler{Partner: v.Partner, MD5Key: "{env.CADDY_ALIPAY_TEST_UNSET}"}, "md5_key"},
		"short md5_key":                {Handler{Partner: v.Partner, MD5Key: badKey}, "md5_key"},
		"md5_key not alnum":            {Handler{Partner: v.Partner, MD5Key: v.MD5Key[:31] + "-"}, "md5_key"},
		"md5_key file absent":          {Handler{Partner: v.Partner, MD5Key: "/nonexistent/md5.key"}, "md5_key"},
		"app key alone":                {Handler{Partner: v.Partner, MD5Key: v.MD5Key, AppPublicKey: testvec.Key("app_public_key.pem")}, "alipay_private_key"},
		"alipay key alone":             {Handler{Partner: v.Partner, MD5Key: v.MD5Key, AlipayPrivateKey: testvec.Key("alipay_private_key_pkcs1.pem")}, "app_public_key"},
		"certificates without keys":    {Handler{Partner: v.Partner, MD5Key: v.MD5Key, Certificates: t.TempDir()}, "certificates"},
	} {
		t.Run(name, func(t *testing.T) {
			ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
			defer cancel()
			s := c.s
			err := s.Provision(ctx)
			require.Error(t, err)
			assert.True(t, strings.HasPrefix(err.Error(), c.setting+": "), err.Error())
			assert.NotContains(t, err.Error(), v.MD5Key[9:31], "no key in an error")
		})
	}
	for name, s := range map[string]Handler{
		"partner and md5_key":       {Partner: v.Partner, MD5Key: v.MD5Key},
		"md5_key file":              {Partner: v.Partner, MD5Key: testvec.Path("legacy", "md5_key.txt")},
		"partner, md5_key and keys": keys(Handler{Partner: v.Partner, MD5Key: v.MD5Key}),
	} {
		t.Run(name, func(t *testing.T) {
			ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
			defer cancel()
			require.NoError(t, s.Provision(ctx))
			t.Cleanup(func() { require.NoError(t, s.Cleanup()) })
			require.NotNil(t, s.legacy)
			assert.Equal(t, s.AppPublicKey != "", s.openAPI)
			_, rsa := s.legacy.verifiers[protocol.SignTypeRSA]
			assert.Equal(t, s.openAPI, rsa, "sign_type RSA with the OpenAPI keys")
		})
	}
}

// The JSON config names the legacy settings partner and md5_key.
func TestLegacyJSONConfig(t *testing.T) {
	v := testvec.LoadLegacy(t)
	var s Handler
	require.NoError(t, json.Unmarshal([]byte(`{"partner":"`+v.Partner+`","md5_key":"`+v.MD5Key+`"}`), &s))
	assert.Equal(t, Handler{Partner: v.Partner, MD5Key: v.MD5Key}, s)
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	defer cancel()
	require.NoError(t, s.Provision(ctx))
	require.NoError(t, s.Cleanup())
	out, err := json.Marshal(Handler{Partner: v.Partner, MD5Key: "/keys/md5.key"})
	require.NoError(t, err)
	assert.JSONEq(t, `{"partner":"`+v.Partner+`","md5_key":"/keys/md5.key"}`, string(out))
}
