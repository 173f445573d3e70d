package protocol

import (
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/caddy-alipay/caddy-alipay/internal/testvec"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Every mix of settings that makes no sense stops with an error that names
// the setting.
func TestNewLegacyErrors(t *testing.T) {
	v := testvec.LoadLegacy(t)
	keyFile := filepath.Join(t.TempDir(), "md5.key")
	require.NoError(t, os.WriteFile(keyFile, []byte(v.MD5Key+"\n"), 0o600))
	good := LegacyConfig{Partner: v.Partner, MD5Key: v.MD5Key}
	p, _, err := NewLegacy(good)
	require.NoError(t, err)
	assert.Equal(t, v.Partner, p.SellerID, "seller_id defaults to the partner")
	assert.Equal(t, GatewayMapi, p.Gateway)
	assert.Equal(t, "utf-8", p.Charset)
	_, _, err = NewLegacy(LegacyConfig{Partner: v.Partner, MD5Key: keyFile, InputCharset: "GBK"})
	require.NoError(t, err, "the key from a file")

	rsa := LegacyConfig{Partner: v.Partner, SignType: SignTypeRSA, AppPrivateKey: testvec.Key("app_private_key_pkcs1.pem"),
		AlipayPublicKey: testvec.Path("legacy", "alipay_rsa1024_public.pem")}
	_, warnings, err := NewLegacy(rsa)
	require.NoError(t, err)
	assert.Equal(t, []Warning{{"alipay_public_key", "legacy 1024-bit RSA key: move the app to RSA2 with a 2048-bit key"}}, warnings)

	for name, c := range map[string]struct {
		cfg     func(LegacyConfig) LegacyConfig
		setting string
	}{
		"partner":             {func(c LegacyConfig) LegacyConfig { c.Partner = "2021000000000001"; return c }, "partner"},
		"no md5_key":          {func(c LegacyConfig) LegacyConfig { c.MD5Key = ""; return c }, "md5_key"},
		"short md5_key":       {func(c LegacyConfig) LegacyConfig { c.MD5Key = v.MD5Key[:31]; return c }, "md5_key"},
		"md5_key not alnum":   {func(c LegacyConfig) LegacyConfig { c.MD5Key = v.MD5Key[:31] + "-"; return c }, "md5_key"},
		"md5_key file absent": {func(c LegacyConfig) LegacyConfig { c.MD5Key = "/nonexistent/md5.key"; return c }, "md5_key"},
		"md5 with rsa keys":   {func(c LegacyConfig) LegacyConfig { c.AppPrivateKey = rsa.AppPrivateKey; return c }, "app_private_key"},
		"rsa with md5_key":    {func(c LegacyConfig) LegacyConfig { c = rsa; c.MD5Key = v.MD5Key; return c }, "md5_key"},
		"rsa without key":     {func(c LegacyConfig) LegacyConfig { c = rsa; c.AppPrivateKey = ""; return c }, "app_private_key"},
		"rsa own key": {func(c LegacyConfig) LegacyConfig {
			c = rsa
			c.AlipayPublicKey = testvec.Key("app_public_key.pem")
			return c
		}, "alipay_public_key"},
		"sign_type RSA2":   {func(c LegacyConfig) LegacyConfig { c.SignType = "RSA2"; return c }, "sign_type"},
		"charset":          {func(c LegacyConfig) LegacyConfig { c.InputCharset = "big5"; return c }, "input_charset"},
		"both sellers":     {func(c LegacyConfig) LegacyConfig { c.SellerID, c.SellerEmail = v.Partner, "s@example.com"; return c }, "seller_email"},
		"bad seller_id":    {func(c LegacyConfig) LegacyConfig { c.SellerID = "123"; return c }, "seller_id"},
		"bad seller_email": {func(c LegacyConfig) LegacyConfig { c.SellerEmail = "nobody"; return c }, "seller_email"},
		"sandbox gateway":  {func(c LegacyConfig) LegacyConfig { c.Gateway = "sandbox"; return c }, "gateway"},
		"http gateway":     {func(c LegacyConfig) LegacyConfig { c.Gateway = "http://mapi.alipay.com/gateway.do"; return c }, "gateway"},
	} {
		_, _, err := NewLegacy(c.cfg(good))
		require.Error(t, err, name)
		assert.True(t, strings.HasPrefix(err.Error(), c.setting+": "), "%s: %v", name, err)
		assert.NotContains(t, err.Error(), v.MD5Key[:20], "%s: the key is never echoed", name)
	}

	// A value with . or / that is not a file (a key mistyped, pasted with
	// a stray character) is not echoed either, whole or in part.
	for _, value := range []string{v.MD5Key[:16] + "." + v.MD5Key[16:], v.MD5Key + "/", "./" + v.MD5Key[:30], "/nonexistent/" + v.MD5Key} {
		_, _, err := NewLegacy(LegacyConfig{Partner: v.Partner, MD5Key: value})
		require.Error(t, err, value)
		assert.True(t, strings.HasPrefix(err.Error(), "md5_key: "), err.Error())
		assert.NotContains(t, err.Error(), v.MD5Key[:12], "the value is never echoed")
		assert.NotContains(t, err.Error(), "nonexistent", "the value is never echoed")
	}
}

// certModeConfig is the vectors' certificate mode at now.
func certModeConfig(now time.Time) OpenAPIConfig {
	return OpenAPIConfig{
		AppID: testvec.AppID, AppPrivateKey: testvec.Key("app_private_key_pkcs1.pem"),
		AppCert:        testvec.Cert("appCertPublicKey_2021000000000001.crt"),
		AlipayCert:     testvec.Cert("alipayCertPublicKey_RSA2.crt"),
		AlipayRootCert: testvec.Cert("alipayRootCert.crt"), Now: now,
	}
}

// A certificate that is expired, not yet valid, self-signed or about to
// expire loads, with a warning that names the setting and the date.
func TestCertWarnings(t *testing.T) {
	app := readCert(t, "appCertPublicKey_2021000000000001.crt")
	alipay := readCert(t, "alipayCertPublicKey_RSA2.crt")
	require.Equal(t, app.NotAfter, alipay.NotAfter, "the vectors' two leaves share their dates")
	day := func(tm time.Time) string { return tm.UTC().Format("2006-01-02") }
	for name, c := range map[string]struct {
		now  time.Time
		want string // in both warnings; "" for none
	}{
		"valid":         {app.NotBefore.Add(24 * time.Hour), ""},
		"31 days left":  {app.NotAfter.Add(-31 * 24 * time.Hour), ""},
		"29 days left":  {app.NotAfter.Add(-29*24*time.Hour - time.Hour), "expires on " + day(app.NotAfter) + ", in 29 days"},
		"expired":       {app.NotAfter.Add(time.Hour), "expired on " + day(app.NotAfter)},
		"not yet valid": {app.NotBefore.Add(-time.Hour), "not valid until " + day(app.NotBefore)},
	} {
		t.Run(name, func(t *testing.T) {
			_, warnings, err := NewOpenAPI(certModeConfig(c.now))
			require.NoError(t, err, "a warning, never a refusal")
			if c.want == "" {
				assert.Empty(t, warnings)
				return
			}
			require.Len(t, warnings, 2)
			for i, setting := range []string{"app_cert", "alipay_cert"} {
				assert.Equal(t, setting, warnings[i].Setting)
				assert.Contains(t, warnings[i].Message, c.want)
			}
		})
	}

	// A self-signed alipay_cert (made here with the vectors' Alipay key).
	key, err := ParsePrivateKey(testvec.ReadKey(t, "alipay_private_key_pkcs1.pem"))
	require.NoError(t, err)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: "Not Alipay"},
		NotBefore: app.NotBefore, NotAfter: app.NotAfter}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	cfg := certModeConfig(app.NotBefore.Add(time.Hour))
	cfg.AlipayCert = string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
	_, warnings, err := NewOpenAPI(cfg)
	require.NoError(t, err)
	require.Len(t, warnings, 1)
	assert.Equal(t, "alipay_cert", warnings[0].Setting)
	assert.Contains(t, warnings[0].Message, "self-signed")

	// An app_cert that is not the pair of app_private_key cannot work.
	cfg = certModeConfig(app.NotBefore.Add(time.Hour))
	cfg.AppCert = cfg.AlipayCert
	_, _, err = NewOpenAPI(cfg)
	assert.ErrorContains(t, err, "app_cert: does not certify the public key of app_private_key")
}
