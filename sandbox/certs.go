package sandbox

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"time"

	"github.com/caddy-alipay/caddy-alipay/internal/protocol"
)

// The sandbox's certificate mode (公钥证书模式): it issues, once (and
// again if its keys change), the three files that Alipay's open platform
// hands a certificate-mode app, shaped like Alipay's, for the sidecar's
// app_cert, alipay_cert and alipay_root_cert; then it requires their
// serial numbers on every request and names its certificate in every
// response.

// The files the sandbox issues into its certificates directory.
const (
	rootCertFile   = "alipayRootCert.crt"
	alipayCertFile = "alipayCertPublicKey_RSA2.crt"
	appCertFile    = "appCertPublicKey.crt"
)

// certs are the serial numbers of certificate mode.
type certs struct {
	appCertSN, rootCertSN, alipayCertSN string
}

// provisionCerts loads the certificates from dir, or issues them there
// when they are missing or no longer match the sandbox's keys.
func provisionCerts(dir string, appKey *rsa.PublicKey, alipayKey *rsa.PrivateKey) (*certs, error) {
	c, err := loadCerts(dir, appKey, &alipayKey.PublicKey)
	if err == nil {
		return c, nil
	}
	if err := issueCerts(dir, appKey, alipayKey); err != nil {
		return nil, err
	}
	return loadCerts(dir, appKey, &alipayKey.PublicKey)
}

func loadCerts(dir string, appKey, alipayKey *rsa.PublicKey) (*certs, error) {
	var c certs
	for _, f := range []struct {
		name string
		key  *rsa.PublicKey
		sn   *string
	}{{appCertFile, appKey, &c.appCertSN}, {alipayCertFile, alipayKey, &c.alipayCertSN}} {
		data, err := os.ReadFile(filepath.Join(dir, f.name))
		if err != nil {
			return nil, err
		}
		cert, err := protocol.ParseCertificate(data)
		if err != nil {
			return nil, err
		}
		if k, ok := cert.PublicKey.(*rsa.PublicKey); !ok || !k.Equal(f.key) {
			return nil, fmt.Errorf("%s certifies another key", f.name)
		}
		if *f.sn, err = protocol.CertSN(cert); err != nil {
			return nil, err
		}
	}
	root, err := os.ReadFile(filepath.Join(dir, rootCertFile))
	if err != nil {
		return nil, err
	}
	if c.rootCertSN, err = protocol.RootCertSN(root); err != nil {
		return nil, err
	}
	return &c, nil
}

// issueCerts makes a root and the two certificates it signs. The
// root's key is thrown away: nothing more is ever signed with it.
func issueCerts(dir string, appKey *rsa.PublicKey, alipayKey *rsa.PrivateKey) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	rootKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return err
	}
	name := func(cn string) pkix.Name {
		return pkix.Name{Country: []string{"CN"}, Organization: []string{"caddy-alipay sandbox"},
			OrganizationalUnit: []string{"Certification Authority"}, CommonName: cn}
	}
	notBefore := time.Now().Add(-time.Hour)
	template := func(cn string, ca bool) *x509.Certificate {
		serial, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 126))
		return &x509.Certificate{SerialNumber: serial, Subject: name(cn), NotBefore: notBefore,
			NotAfter: notBefore.AddDate(10, 0, 0), IsCA: ca, BasicConstraintsValid: true,
			KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign}
	}
	root := template("caddy-alipay Sandbox Root", true)
	rootDER, err := x509.CreateCertificate(rand.Reader, root, root, &rootKey.PublicKey, rootKey)
	if err != nil {
		return err
	}
	rootCert, err := x509.ParseCertificate(rootDER)
	if err != nil {
		return err
	}
	write := func(file string, der []byte) error {
		return os.WriteFile(filepath.Join(dir, file), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
	}
	for _, c := range []struct {
		file, cn string
		key      *rsa.PublicKey
	}{{alipayCertFile, "Alipay sandbox", &alipayKey.PublicKey}, {appCertFile, "app of the sandbox", appKey}} {
		der, err := x509.CreateCertificate(rand.Reader, template(c.cn, false), rootCert, c.key, rootKey)
		if err != nil {
			return err
		}
		if err := write(c.file, der); err != nil {
			return err
		}
	}
	return write(rootCertFile, rootDER)
}

// check refuses a request that does not name the sandbox's
// certificates, as Alipay refuses one in certificate mode.
func (c *certs) check(p map[string]string) *gatewayError {
	switch {
	case p["app_cert_sn"] == "" || p["alipay_root_cert_sn"] == "":
		return &gatewayError{"missing-app-cert-sn", "certificate mode: app_cert_sn and alipay_root_cert_sn are required"}
	case p["app_cert_sn"] != c.appCertSN:
		return &gatewayError{"invalid-app-cert-sn", "app_cert_sn is not that of the sandbox's " + appCertFile}
	case p["alipay_root_cert_sn"] != c.rootCertSN:
		return &gatewayError{"invalid-alipay-root-cert-sn", "alipay_root_cert_sn is not that of the sandbox's " + rootCertFile}
	}
	return nil
}
