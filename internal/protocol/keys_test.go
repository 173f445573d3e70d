package protocol

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/caddy-alipay/caddy-alipay/internal/testvec"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Every form of the app key that users hold gives the SDK's signature.
func TestPrivateKeyForms(t *testing.T) {
	v := testvec.Load(t)
	for _, name := range []string{"app_private_key_pkcs1.pem", "app_private_key_pkcs8.pem", "app_private_key_pkcs1.b64", "app_private_key_pkcs8.b64"} {
		t.Run(name, func(t *testing.T) {
			for _, setting := range []string{testvec.Key(name), string(testvec.ReadKey(t, name))} {
				material, err := KeyMaterial(setting)
				require.NoError(t, err)
				key, err := ParsePrivateKey(material)
				require.NoError(t, err)
				s, err := NewRSASigner(key, SignTypeRSA2)
				require.NoError(t, err)
				sig, err := s.Sign([]byte(v.KeyFormats.Content))
				require.NoError(t, err)
				assert.Equal(t, v.KeyFormats.Sign, sig)
			}
		})
	}
}

func TestPublicKeyForms(t *testing.T) {
	want, err := ParsePublicKey(testvec.ReadKey(t, "alipay_public_key.pem"))
	require.NoError(t, err)
	priv, err := ParsePrivateKey(testvec.ReadKey(t, "alipay_private_key_pkcs1.pem"))
	require.NoError(t, err)
	pkcs1 := pem.EncodeToMemory(&pem.Block{Type: "RSA PUBLIC KEY", Bytes: x509.MarshalPKCS1PublicKey(&priv.PublicKey)})
	b64 := string(testvec.ReadKey(t, "alipay_public_key.b64"))
	// The console shows the key on one line; users paste it wrapped too.
	wrapped := wrap(strings.TrimSpace(b64), 64)
	for name, material := range map[string]string{
		"pkix pem": string(testvec.ReadKey(t, "alipay_public_key.pem")), "pkcs1 pem": string(pkcs1),
		"bare base64": b64, "wrapped base64": wrapped,
	} {
		t.Run(name, func(t *testing.T) {
			m, err := KeyMaterial(material)
			require.NoError(t, err)
			got, err := ParsePublicKey(m)
			require.NoError(t, err)
			assert.True(t, want.Equal(got))
			assert.True(t, priv.PublicKey.Equal(got))
		})
	}
}

func wrap(s string, n int) string {
	var b strings.Builder
	for len(s) > n {
		b.WriteString(s[:n] + "\n")
		s = s[n:]
	}
	b.WriteString(s)
	return b.String()
}

func TestKeyInWrongSlot(t *testing.T) {
	for _, name := range []string{"app_public_key.pem", "alipay_public_key.b64"} {
		_, err := ParsePrivateKey(testvec.ReadKey(t, name))
		assert.ErrorContains(t, err, "public key", name)
	}
	for _, name := range []string{"app_private_key_pkcs1.pem", "app_private_key_pkcs8.pem", "app_private_key_pkcs1.b64", "app_private_key_pkcs8.b64"} {
		_, err := ParsePublicKey(testvec.ReadKey(t, name))
		assert.ErrorContains(t, err, "private key", name)
	}
}

func TestKeyMaterialErrors(t *testing.T) {
	_, err := KeyMaterial("")
	assert.ErrorContains(t, err, "empty")
	_, err = KeyMaterial("/nonexistent/app.pem")
	assert.ErrorContains(t, err, "no such file")
	assert.NotContains(t, err.Error(), "nonexistent", "a secret setting's value is never echoed, path or not")
	_, err = KeyMaterial("MIIEvQIBADAN.BgkqhkiG9w0")
	assert.NotContains(t, err.Error(), "MIIEvQ")

	dir := t.TempDir()
	big := filepath.Join(dir, "big.pem")
	require.NoError(t, os.WriteFile(big, make([]byte, maxKeyFileSize+1), 0o600))
	_, err = KeyMaterial(big)
	assert.ErrorContains(t, err, "larger than")

	// A mangled inline key is never echoed back as if it were a path.
	mangled := "MIIEvQIBADANBgkqhkiG9w0BAQEFAASC!!" + strings.Repeat("A", 300)
	_, err = KeyMaterial(mangled)
	require.Error(t, err)
	assert.NotContains(t, err.Error(), "MIIEvQ")

	_, err = ParsePrivateKey([]byte("-----BEGIN RSA PRIVATE KEY-----\nnot base64\n-----END RSA PRIVATE KEY-----"))
	assert.Error(t, err)
	_, err = ParsePrivateKey([]byte(strings.Repeat("QUJD", 60)))
	assert.ErrorIs(t, err, errNotKey)
	enc := "-----BEGIN ENCRYPTED PRIVATE KEY-----\nQUJD\n-----END ENCRYPTED PRIVATE KEY-----\n"
	_, err = ParsePrivateKey([]byte(enc))
	assert.ErrorContains(t, err, "encrypted")
}

func TestNonRSAKeyRefused(t *testing.T) {
	_, edKey, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	der, err := x509.MarshalPKCS8PrivateKey(edKey)
	require.NoError(t, err)
	_, err = ParsePrivateKey(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
	assert.ErrorContains(t, err, "want RSA")
	pubDER, err := x509.MarshalPKIXPublicKey(edKey.Public())
	require.NoError(t, err)
	_, err = ParsePublicKey(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER}))
	assert.Error(t, err)
}
