package protocol

import (
	"crypto/x509"
	"encoding/pem"
	"testing"

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
