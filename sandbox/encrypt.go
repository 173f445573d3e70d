package sandbox

import (
	"github.com/caddy-alipay/caddy-alipay/internal/protocol"
)

// Content encryption (接口内容加密): with encrypt_key set, the sandbox plays
// an app that has AES content encryption switched on. Every OpenAPI call
// must then carry encrypt_type=AES and biz_content encrypted with the key;
// its signature, checked first, covers the ciphertext and encrypt_type as
// it covers every parameter. The answer's value is the ciphertext of the
// response object, as a JSON string, signed over that string with its two
// quotes. Calls that fail the checks here are answered as Alipay answers
// them: an unsigned, plaintext error_response. Page, WAP and app pay
// requests are never encrypted, so the cashier's path ignores the key, and
// notifications stay plaintext.

// encryptTypeAES is the one encrypt_type Alipay's v2 gateway knows.
const encryptTypeAES = "AES"

// apiContent returns the call's biz_content in plaintext, decrypted when
// content encryption is on, or the error_response that refuses the call.
// It runs after the request's signature was verified.
func (h *Handler) apiContent(p map[string]string) (string, apiFields) {
	encryptType := p["encrypt_type"]
	switch {
	case encryptType == "" && h.contentKey == nil:
		return p["biz_content"], nil
	case encryptType == "":
		// The sub_code of Alipay's published table of common errors.
		return "", gatewayFailure("40001", "isv.decryption-error-missing-encrypt-type",
			"解密出错, 未指定加密算法: the app has content encryption on (encrypt_key); send encrypt_type=AES and biz_content encrypted")
	case encryptType != encryptTypeAES:
		return "", gatewayFailure("40002", "isv.decryption-error-not-valid-encrypt-type",
			"解密出错, 不支持的加密算法: encrypt_type must be AES")
	case h.contentKey == nil:
		return "", gatewayFailure("40002", "isv.decryption-error-not-valid-encrypt-key",
			"解密出错, 未配置加密密钥: the app has no AES key (the sandbox has no encrypt_key); send biz_content in plaintext, without encrypt_type")
	}
	plain, err := h.contentKey.Decrypt(p["biz_content"])
	if err != nil {
		return "", gatewayFailure("40002", "isv.decryption-error-unknown",
			"解密出错: biz_content does not decrypt with the app's AES key (encrypt_key): AES-128-CBC, PKCS#7 padding, zero IV, base64")
	}
	return string(plain), nil
}

// encryptedResponse is an answer to an encrypted call as Alipay writes
// one: the value, the base64 ciphertext of the response object, is a JSON
// string, and the signature covers it with its two quotes, as Alipay's
// Java and PHP SDKs verify it. Base64 holds no character that JSON
// escapes, so the quoted ciphertext is the string's exact JSON text.
func encryptedResponse(method, ciphertext, certSN string, s protocol.Signer) ([]byte, error) {
	return protocol.SignedResponse(method, []byte(`"`+ciphertext+`"`), certSN, s)
}
