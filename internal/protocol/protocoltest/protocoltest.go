// Package protocoltest helps the tests of the packages that use the
// protocol package: signers and verifiers with the test keys, and Alipay's
// answers made with them. Only tests import it.
package protocoltest

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"testing"

	"github.com/caddy-alipay/caddy-alipay/internal/protocol"
	"github.com/caddy-alipay/caddy-alipay/internal/testvec"
)

// Signer signs with the private key in testdata/keys/file.
func Signer(t testing.TB, file, signType string) protocol.Signer {
	t.Helper()
	key, err := protocol.ParsePrivateKey(testvec.ReadKey(t, file))
	if err != nil {
		t.Fatal(err)
	}
	s, err := protocol.NewRSASigner(key, signType)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// Verifier verifies with the public key in testdata/keys/file.
func Verifier(t testing.TB, file, signType string) protocol.Verifier {
	t.Helper()
	key, err := protocol.ParsePublicKey(testvec.ReadKey(t, file))
	if err != nil {
		t.Fatal(err)
	}
	v, err := protocol.NewRSAVerifier(key, signType)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// SignedBody is an OpenAPI response body for method with value, signed as
// Alipay signs it with the test Alipay key.
func SignedBody(t testing.TB, method, value string) string {
	t.Helper()
	b, err := protocol.SignedResponse(method, []byte(value), "", Signer(t, "alipay_private_key_pkcs1.pem", protocol.SignTypeRSA2))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// RawToken builds an HS256 token by hand from its header and claims, so
// that tests can make any of them.
func RawToken(secret, header, payload string) string {
	enc := base64.RawURLEncoding
	in := enc.EncodeToString([]byte(header)) + "." + enc.EncodeToString([]byte(payload))
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(in))
	return in + "." + enc.EncodeToString(m.Sum(nil))
}

// SignedCallback is the form of an OpenAPI callback with params, signed
// as Alipay signs trade notifications and returns (sign_type left out of
// the string to sign) with the test Alipay key.
func SignedCallback(t testing.TB, params map[string]string) string {
	t.Helper()
	p := make(map[string]string, len(params)+2)
	for k, v := range params {
		if k != "sign" && k != "sign_type" {
			p[k] = v
		}
	}
	if err := protocol.SignParams(Signer(t, "alipay_private_key_pkcs1.pem", protocol.SignTypeRSA2), p); err != nil {
		t.Fatal(err)
	}
	p["sign_type"] = protocol.SignTypeRSA2
	return protocol.Encode(p)
}
