package protocol

import (
	"encoding/json"
	"testing"

	"github.com/caddy-alipay/caddy-alipay/internal/testvec"
	"github.com/stretchr/testify/require"
)

// parseCallback parses a callback as the OpenAPI protocol does.
func parseCallback(raw string) (*Callback, error) { return (&OpenAPI{}).ParseCallback(raw) }

// parseOpenAPIOrder checks pay claims as the OpenAPI protocol does.
func parseOpenAPIOrder(claims map[string]json.RawMessage) (*Order, error) {
	return (&OpenAPI{}).ParseOrder(claims)
}

// testSigner, testVerifier and signedBody are protocoltest's Signer,
// Verifier and SignedBody for this package's own tests, which cannot
// import protocoltest: it imports this package.

// testSigner signs with the private key in testdata/keys/file.
func testSigner(t testing.TB, file, signType string) *RSASigner {
	t.Helper()
	key, err := ParsePrivateKey(testvec.ReadKey(t, file))
	require.NoError(t, err)
	s, err := NewRSASigner(key, signType)
	require.NoError(t, err)
	return s
}

// testVerifier verifies with the public key in testdata/keys/file.
func testVerifier(t testing.TB, file, signType string) *RSAVerifier {
	t.Helper()
	key, err := ParsePublicKey(testvec.ReadKey(t, file))
	require.NoError(t, err)
	v, err := NewRSAVerifier(key, signType)
	require.NoError(t, err)
	return v
}

// signedBody is a response body signed as Alipay signs it.
func signedBody(t testing.TB, method, value string) string {
	t.Helper()
	b, err := SignedResponse(method, []byte(value), "", testSigner(t, "alipay_private_key_pkcs1.pem", SignTypeRSA2))
	require.NoError(t, err)
	return string(b)
}
