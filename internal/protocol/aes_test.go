package protocol

import (
	"context"
	"io"
	"net/http"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Alipay's own vector for its content encryption.
func TestContentKeyVector(t *testing.T) {
	k, err := NewContentKey("aYA0GP8JEW+D7/UFaskCWA==")
	require.NoError(t, err)
	const plain, cipherText = `{"out_trade_no":"20150320010101001"}`, "HJjZXDcVHUcOrByocVgEmi4JxHzS7t5uQ7RGgvntf1kZEhOdP+agsp7Yl6yV/5CY"
	assert.Equal(t, cipherText, k.Encrypt([]byte(plain)))
	got, err := k.Decrypt(cipherText)
	require.NoError(t, err)
	assert.Equal(t, plain, string(got))

	for _, in := range []string{"", "{}", `{"subject":"中文 and a block of sixteen!"}`} {
		out, err := k.Decrypt(k.Encrypt([]byte(in)))
		require.NoError(t, err)
		assert.Equal(t, in, string(out))
	}
}

func TestContentKeyRefuses(t *testing.T) {
	for _, bad := range []string{"", "not base64!", "aYA0GP8JEW+D7/UF", "aYA0GP8JEW+D7/UFaskCWAaYA0GP8JEW+D7/UFaskCWA="} {
		_, err := NewContentKey(bad)
		assert.ErrorIs(t, err, ErrContentKey, bad)
	}
	k, _ := NewContentKey("aYA0GP8JEW+D7/UFaskCWA==")
	other, _ := NewContentKey("AAAAAAAAAAAAAAAAAAAAAA==")
	for _, bad := range []string{"", "!!", "AAAA", other.Encrypt([]byte(`{"a":1}`)), k.Encrypt([]byte("x"))[:10]} {
		_, err := k.Decrypt(bad)
		assert.ErrorIs(t, err, ErrDecrypt, bad)
	}
}

// encryptedWorld is a client with content encryption on, against a
// gateway that checks the request as Alipay does and answers what reply
// makes of the decrypted biz_content.
func encryptedWorld(t *testing.T, reply func(biz string) string) *Client {
	t.Helper()
	key, err := NewContentKey("aYA0GP8JEW+D7/UFaskCWA==")
	require.NoError(t, err)
	c := testGateway(t, func(w http.ResponseWriter, r *http.Request) {
		require.NoError(t, r.ParseForm())
		params := map[string]string{}
		for k := range r.Form {
			params[k] = r.Form.Get(k)
		}
		assert.Equal(t, "AES", params["encrypt_type"])
		assert.NoError(t, testVerifier(t, "app_public_key.pem", SignTypeRSA2).Verify(RequestContent(params), params["sign"]),
			"the signature covers the ciphertext and encrypt_type")
		biz, err := key.Decrypt(params["biz_content"])
		require.NoError(t, err, "biz_content is encrypted")
		_, _ = io.WriteString(w, reply(string(biz)))
	})
	c.API.ContentKey = key
	return c
}

// An encrypted answer's value is a JSON string of base64: the signature
// covers it with its two quotes, as Alipay's Java and PHP SDKs verify it.
// (The Node SDK verifies it without them, and so refuses Alipay's genuine
// answers: its issue #82.)
func TestEncryptedCall(t *testing.T) {
	signer := testSigner(t, "alipay_private_key_pkcs1.pem", SignTypeRSA2)
	key, _ := NewContentKey("aYA0GP8JEW+D7/UFaskCWA==")
	const value = `{"code":"10000","msg":"Success","out_trade_no":"20150320010101001","trade_status":"TRADE_SUCCESS"}`
	encrypted := func(plain string) string {
		body, err := SignedResponse("alipay.trade.query", []byte(`"`+key.Encrypt([]byte(plain))+`"`), "", signer)
		require.NoError(t, err)
		return string(body)
	}
	c := encryptedWorld(t, func(biz string) string {
		assert.Equal(t, `{"out_trade_no":"20150320010101001"}`, biz)
		return encrypted(value)
	})
	resp, err := c.Call(context.Background(), "alipay.trade.query", []byte(`{"out_trade_no":"20150320010101001"}`))
	require.NoError(t, err)
	assert.Equal(t, value, string(resp.Raw), "verified, then decrypted")

	for name, c := range map[string]struct {
		body string
		ok   bool
	}{
		// Alipay's answer to a call that it could not decrypt: plaintext.
		"plaintext refusal":        {`{"error_response":{"code":"40002","msg":"Invalid Arguments","sub_code":"isv.decryption-error-not-valid-encrypt-key","sub_msg":"解密失败"}}`, false},
		"signed plaintext failure": {string(must(SignedResponse("alipay.trade.query", []byte(`{"code":"40004","msg":"Business Failed","sub_code":"ACQ.TRADE_NOT_EXIST"}`), "", signer))), true},
		"signed plaintext success": {string(must(SignedResponse("alipay.trade.query", []byte(value), "", signer))), false},
		"the signature over the unquoted string": {func() string {
			ct := key.Encrypt([]byte(value))
			sig, _ := signer.Sign([]byte(ct))
			return `{"alipay_trade_query_response":"` + ct + `","sign":"` + sig + `"}`
		}(), false},
		"another key's ciphertext": {func() string {
			other, _ := NewContentKey("AAAAAAAAAAAAAAAAAAAAAA==")
			return string(must(SignedResponse("alipay.trade.query", []byte(`"`+other.Encrypt([]byte(value))+`"`), "", signer)))
		}(), false},
	} {
		cl := encryptedWorld(t, func(string) string { return c.body })
		resp, err := cl.Call(context.Background(), "alipay.trade.query", []byte(`{"out_trade_no":"X"}`))
		if c.ok {
			require.NoError(t, err, name)
			assert.Contains(t, string(resp.Raw), "ACQ.TRADE_NOT_EXIST", name)
		} else {
			assert.Error(t, err, name)
		}
	}

	// Without encrypt_key, an encrypted answer is refused, saying why.
	plain := testGateway(t, answer(200, encrypted(value)))
	_, err = plain.Call(context.Background(), "alipay.trade.query", []byte(`{"out_trade_no":"X"}`))
	ce := requireCallError(t, err, CallBadAnswer)
	assert.Contains(t, ce.Msg, "encrypt_key")
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}
