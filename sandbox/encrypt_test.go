package sandbox

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/caddy-alipay/caddy-alipay/internal/protocol"
	"github.com/caddy-alipay/caddy-alipay/internal/protocol/protocoltest"
	"github.com/caddy-alipay/caddy-alipay/internal/testvec"
	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// testEncryptKey is the key of Alipay's AES vector.
const testEncryptKey = "aYA0GP8JEW+D7/UFaskCWA=="

func withEncryptKey(s *Handler) { s.EncryptKey = testEncryptKey }

// encryptedCall serves apiRequest for an app with content encryption:
// biz_content encrypted with key and encrypt_type set, then signed, as the
// SDKs do. edit may change the parameters after signing.
func encryptedCall(t testing.TB, sb *Handler, key, encryptType, method string, biz any, edit func(map[string]string)) *httptest.ResponseRecorder {
	t.Helper()
	k, err := protocol.NewContentKey(key)
	require.NoError(t, err)
	signer := protocoltest.Signer(t, "app_private_key_pkcs1.pem", protocol.SignTypeRSA2)
	return serve(t, sb, apiRequest(t, "POST", testAppID, method, protocol.SignTypeRSA2, biz, func(p map[string]string) {
		p["biz_content"] = k.Encrypt([]byte(p["biz_content"]))
		p["encrypt_type"] = encryptType
		delete(p, "sign")
		require.NoError(t, protocol.SignParams(signer, p))
		if edit != nil {
			edit(p)
		}
	}))
}

// encryptedAnswer reads an encrypted answer as Alipay's Java and PHP SDKs
// do: the value is a JSON string, its signature verified over the string
// with its quotes, then decrypted with the vector's key.
func encryptedAnswer(t testing.TB, rec *httptest.ResponseRecorder, method string) map[string]any {
	t.Helper()
	resp, err := protocol.ParseResponse(rec.Body.Bytes(), method)
	require.NoError(t, err, rec.Body.String())
	require.False(t, resp.IsError, rec.Body.String())
	require.True(t, strings.HasPrefix(string(resp.Raw), `"`), "a JSON string: %s", resp.Raw)
	require.NoError(t, resp.Verify(protocoltest.Verifier(t, "alipay_public_key.pem", protocol.SignTypeRSA2)), rec.Body.String())
	var ciphertext string
	require.NoError(t, json.Unmarshal(resp.Raw, &ciphertext))
	k, err := protocol.NewContentKey(testEncryptKey)
	require.NoError(t, err)
	plain, err := k.Decrypt(ciphertext)
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(string(plain), `{"code":"`), "code comes first: %s", plain)
	var f map[string]any
	require.NoError(t, json.Unmarshal(plain, &f))
	return f
}

// With encrypt_key the sandbox decrypts each call and encrypts each
// answer, business failures included; the cashier stays plaintext.
func TestSandboxAPIEncrypted(t *testing.T) {
	w := newWorld(t, withEncryptKey)
	sb := w.sandbox
	pay := w.openTestOrder(t, "AES1", "12.5", "加密")
	require.Equal(t, 302, w.postCashier(t, pay).Code)
	w.shop.waitNotify(t)

	rec := encryptedCall(t, sb, testEncryptKey, "AES", "alipay.trade.query", map[string]any{"out_trade_no": "AES1"}, nil)
	assert.NotContains(t, rec.Body.String(), "TRADE_SUCCESS", "the answer travels encrypted")
	assert.Regexp(t, `^\{"alipay_trade_query_response":"[A-Za-z0-9+/=]+","sign":"[^"]+"\}$`, rec.Body.String())
	assertAPIFields(t, map[string]any{"code": "10000", "msg": "Success", "out_trade_no": "AES1", "trade_status": "TRADE_SUCCESS",
		"total_amount": "12.50", "buyer_pay_amount": "12.50"}, encryptedAnswer(t, rec, "alipay.trade.query"))
	// The signature covers the string with its quotes, not the ciphertext alone.
	resp, err := protocol.ParseResponse(rec.Body.Bytes(), "alipay.trade.query")
	require.NoError(t, err)
	v := protocoltest.Verifier(t, "alipay_public_key.pem", protocol.SignTypeRSA2)
	assert.Error(t, v.Verify(resp.Raw[1:len(resp.Raw)-1], resp.Sign))

	r := encryptedAnswer(t, encryptedCall(t, sb, testEncryptKey, "AES", "alipay.trade.refund",
		map[string]any{"out_trade_no": "AES1", "refund_amount": "2.5", "out_request_no": "R1"}, nil), "alipay.trade.refund")
	assertAPIFields(t, map[string]any{"code": "10000", "fund_change": "Y", "refund_fee": "2.50"}, r)
	f := encryptedAnswer(t, encryptedCall(t, sb, testEncryptKey, "AES", "alipay.trade.query", map[string]any{"out_trade_no": "AES2"}, nil), "alipay.trade.query")
	assertAPIFields(t, map[string]any{"code": "40004", "msg": "Business Failed", "sub_code": "ACQ.TRADE_NOT_EXIST"}, f)
	f = encryptedAnswer(t, encryptedCall(t, sb, testEncryptKey, "AES", "alipay.trade.precreate",
		map[string]any{"out_trade_no": "AES3", "total_amount": "1", "subject": "s"}, nil), "alipay.trade.precreate")
	assertAPIFields(t, map[string]any{"code": "10000", "out_trade_no": "AES3"}, f)
	assert.NotEmpty(t, f["qr_code"])
}

// The calls that encryption refuses get Alipay's plaintext, unsigned
// error_response; the signature is checked before anything is decrypted.
func TestSandboxAPIEncryptedRefusals(t *testing.T) {
	w := newWorld(t, withEncryptKey)
	sb := w.sandbox
	w.openTestOrder(t, "AES4", "1", "s")
	biz := map[string]any{"out_trade_no": "AES4"}
	for name, c := range map[string]struct {
		rec           *httptest.ResponseRecorder
		code, subCode string
	}{
		"plaintext":    {serve(t, sb, apiRequest(t, "POST", testAppID, "alipay.trade.query", protocol.SignTypeRSA2, biz, nil)), "40001", "isv.decryption-error-missing-encrypt-type"},
		"wrong key":    {encryptedCall(t, sb, "AAAAAAAAAAAAAAAAAAAAAA==", "AES", "alipay.trade.query", biz, nil), "40002", "isv.decryption-error-unknown"},
		"not AES":      {encryptedCall(t, sb, testEncryptKey, "DES", "alipay.trade.query", biz, nil), "40002", "isv.decryption-error-not-valid-encrypt-type"},
		"tampered":     {encryptedCall(t, sb, testEncryptKey, "AES", "alipay.trade.query", biz, func(p map[string]string) { p["biz_content"] = "AAAA" + p["biz_content"][4:] }), "40002", "isv.invalid-signature"},
		"unsigned AES": {encryptedCall(t, sb, testEncryptKey, "AES", "alipay.trade.query", biz, func(p map[string]string) { delete(p, "encrypt_type") }), "40002", "isv.invalid-signature"},
	} {
		t.Run(name, func(t *testing.T) {
			f := apiError(t, c.rec, "alipay.trade.query")
			assert.Equal(t, c.code, f["code"])
			assert.Equal(t, c.subCode, f["sub_code"])
			assert.NotEmpty(t, f["sub_msg"])
		})
	}
	// Without encrypt_key the app has no key: an encrypted call is refused.
	plain := newWorld(t, nil)
	plain.openTestOrder(t, "AES5", "1", "s")
	f := apiError(t, encryptedCall(t, plain.sandbox, testEncryptKey, "AES", "alipay.trade.query", map[string]any{"out_trade_no": "AES5"}, nil), "alipay.trade.query")
	assert.Equal(t, "40002", f["code"])
	assert.Equal(t, "isv.decryption-error-not-valid-encrypt-key", f["sub_code"])
}

func TestSandboxEncryptKeySetting(t *testing.T) {
	var s Handler
	require.NoError(t, s.UnmarshalCaddyfile(caddyfile.NewTestDispenser("alipay_sandbox {\n encrypt_key "+testEncryptKey+"\n}")))
	assert.Equal(t, Handler{EncryptKey: testEncryptKey}, s)
	s = Handler{}
	assert.Error(t, s.UnmarshalCaddyfile(caddyfile.NewTestDispenser("alipay_sandbox {\n encrypt_key a b\n}")))
	s = Handler{}
	require.NoError(t, json.Unmarshal([]byte(`{"encrypt_key":"`+testEncryptKey+`"}`), &s))
	assert.Equal(t, Handler{EncryptKey: testEncryptKey}, s)

	keys := func(key string) Handler {
		return Handler{AppPublicKey: testvec.Key("app_public_key.pem"), AlipayPrivateKey: testvec.Key("alipay_private_key_pkcs1.pem"), EncryptKey: key}
	}
	v := testvec.LoadLegacy(t)
	for name, s := range map[string]Handler{
		"not base64":      keys("not a key!"),
		"8 bytes":         keys("AAAAAAAAAAA="),
		"32 bytes":        keys("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="),
		"unset env":       keys("{env.CADDY_ALIPAY_TEST_UNSET}"),
		"without openapi": {Partner: v.Partner, MD5Key: v.MD5Key, EncryptKey: testEncryptKey},
	} {
		t.Run(name, func(t *testing.T) {
			ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
			defer cancel()
			err := s.Provision(ctx)
			require.Error(t, err)
			assert.True(t, strings.HasPrefix(err.Error(), "encrypt_key: "), err.Error())
			assert.NotContains(t, err.Error(), "AAAAAAAAAAA")
			assert.NotContains(t, err.Error(), testEncryptKey)
		})
	}
	// From the environment; the key is part of the sandbox's identity.
	t.Setenv("TEST_SANDBOX_ENCRYPT_KEY", testEncryptKey)
	a := newTestSandbox(t, func(s *Handler) { s.EncryptKey = "{env.TEST_SANDBOX_ENCRYPT_KEY}" })
	require.NotNil(t, a.contentKey)
	b := newTestSandbox(t, nil)
	c := newTestSandbox(t, withEncryptKey)
	assert.NotEqual(t, a.key, b.key)
	assert.Equal(t, a.key, c.key)
	assert.Same(t, a.trades, c.trades)
}

// In certificate mode the encrypted answer names the sandbox's
// certificate, as a plaintext one does.
func TestSandboxAPIEncryptedCertificateMode(t *testing.T) {
	w := newWorld(t, func(s *Handler) { s.EncryptKey, s.Certificates = testEncryptKey, t.TempDir() })
	require.NotNil(t, w.sandbox.certs)
	w.api.AppCertSN, w.api.RootCertSN = w.sandbox.certs.appCertSN, w.sandbox.certs.rootCertSN
	w.openTestOrder(t, "AESC1", "3", "cert")
	k, err := protocol.NewContentKey(testEncryptKey)
	require.NoError(t, err)
	signer := protocoltest.Signer(t, "app_private_key_pkcs1.pem", protocol.SignTypeRSA2)
	rec := serve(t, w.sandbox, apiRequest(t, "POST", testAppID, "alipay.trade.query", protocol.SignTypeRSA2, map[string]any{"out_trade_no": "AESC1"}, func(p map[string]string) {
		p["app_cert_sn"], p["alipay_root_cert_sn"] = w.sandbox.certs.appCertSN, w.sandbox.certs.rootCertSN
		p["biz_content"], p["encrypt_type"] = k.Encrypt([]byte(p["biz_content"])), "AES"
		delete(p, "sign")
		require.NoError(t, protocol.SignParams(signer, p))
	}))
	assertAPIFields(t, map[string]any{"code": "10000", "trade_status": "WAIT_BUYER_PAY"}, encryptedAnswer(t, rec, "alipay.trade.query"))
	resp, err := protocol.ParseResponse(rec.Body.Bytes(), "alipay.trade.query")
	require.NoError(t, err)
	assert.Equal(t, w.sandbox.certs.alipayCertSN, resp.CertSN)
}
