package protocol

import (
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"testing"
	"time"

	"github.com/caddy-alipay/caddy-alipay/internal/testvec"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func readCert(t testing.TB, name string) *x509.Certificate {
	t.Helper()
	data := testvec.Read(t, "certs", name)
	block, _ := pem.Decode(data)
	require.NotNil(t, block)
	c, err := x509.ParseCertificate(block.Bytes)
	require.NoError(t, err)
	return c
}

// The serial numbers that Alipay's Node SDK (antcertutil) computes for
// the vectors' certificates, including a root file with RSA/SHA-1,
// RSA/SHA-256, EC and SM2 roots.
func TestCertSNVectors(t *testing.T) {
	var v struct {
		CertMode struct {
			AppCertSN    string `json:"app_cert_sn"`
			AlipayCertSN string `json:"alipay_cert_sn"`
			RootCertSN   string `json:"alipay_root_cert_sn"`
			AppDetail    struct {
				MD5Input string `json:"md5_input"`
			} `json:"app_cert_sn_detail"`
			Bundle []struct {
				SN       string `json:"sn"`
				Included bool   `json:"included"`
			} `json:"root_bundle_certs"`
		} `json:"cert_mode"`
	}
	testvec.Decode(t, &v)
	cm := v.CertMode

	sn, err := CertSN(readCert(t, "appCertPublicKey_2021000000000001.crt"))
	require.NoError(t, err)
	assert.Equal(t, cm.AppCertSN, sn)
	sn, err = CertSN(readCert(t, "alipayCertPublicKey_RSA2.crt"))
	require.NoError(t, err)
	assert.Equal(t, cm.AlipayCertSN, sn)

	sn, err = RootCertSN(testvec.Read(t, "certs", "alipayRootCert.crt"))
	require.NoError(t, err)
	assert.Equal(t, cm.RootCertSN, sn)
	require.Len(t, cm.Bundle, 4)
	assert.False(t, cm.Bundle[0].Included, "the SM2 root is skipped")

	for name, want := range map[string]string{"root_rsa.crt": cm.Bundle[1].SN, "root_sha1.crt": cm.Bundle[3].SN} {
		sn, err := CertSN(readCert(t, name))
		require.NoError(t, err)
		assert.Equal(t, want, sn, name)
	}
	_, err = RootCertSN(testvec.Read(t, "certs", "root_ec.crt"))
	assert.Error(t, err, "a root file with no RSA-signed certificate")
}

func TestEscapeDNValue(t *testing.T) {
	for in, want := range map[string]string{"Ant, Inc": `Ant\, Inc`, "#1": `\#1`, " a ": `\ a\ `, `a+b"c`: `a\+b\"c`, "支付宝": "支付宝"} {
		assert.Equal(t, want, escapeDNValue(in), in)
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
