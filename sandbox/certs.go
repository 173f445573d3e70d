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

// The sandbox's certificate mode (公钥证书模式): it issues, once, the three
// files that Alipay's open platform hands a certificate-mode app, shaped
// like Alipay's, for the sidecar's app_cert, alipay_cert and
// alipay_root_cert; then it requires their serial numbers on every
// request and names its certificate in every response.

// The files the sandbox issues into its certificates directory.
const (
	sandboxRootCertFile   = "alipayRootCert.crt"
	sandboxAlipayCertFile = "alipayCertPublicKey_RSA2.crt"
	sandboxAppCertFile    = "appCertPublicKey.crt"
)

// sandboxCerts are the serial numbers of certificate mode.
type sandboxCerts struct {
	appCertSN, rootCertSN, alipayCertSN string
}

// provisionSandboxCerts loads the certificates from dir, or issues them there
// when they are missing or no longer match the sandbox's keys.
func provisionSandboxCerts(dir string, appKey *rsa.PublicKey, alipayKey *rsa.PrivateKey) (*sandboxCerts, error) {
	certs, err := loadSandboxCerts(dir, appKey, &alipayKey.PublicKey)
	if err == nil {
		return certs, nil
	}
	if err := issueSandboxCerts(dir, appKey, alipayKey); err != nil {
		return nil, err
	}
	return loadSandboxCerts(dir, appKey, &alipayKey.PublicKey)
}

func loadSandboxCerts(dir string, appKey, alipayKey *rsa.PublicKey) (*sandboxCerts, error) {
	var c sandboxCerts
	for _, f := range []struct {
		name string
		key  *rsa.PublicKey
		sn   *string
	}{{sandboxAppCertFile, appKey, &c.appCertSN}, {sandboxAlipayCertFile, alipayKey, &c.alipayCertSN}} {
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
	root, err := os.ReadFile(filepath.Join(dir, sandboxRootCertFile))
	if err != nil {
		return nil, err
	}
	if c.rootCertSN, err = protocol.RootCertSN(root); err != nil {
		return nil, err
	}
	return &c, nil
}

// issueSandboxCerts makes a root and the two certificates it signs. The
// root's key is thrown away: nothing more is ever signed with it.
func issueSandboxCerts(dir string, appKey *rsa.PublicKey, alipayKey *rsa.PrivateKey) error {
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
	}{{sandboxAlipayCertFile, "Alipay sandbox", &alipayKey.PublicKey}, {sandboxAppCertFile, "app of the sandbox", appKey}} {
		der, err := x509.CreateCertificate(rand.Reader, template(c.cn, false), rootCert, c.key, rootKey)
		if err != nil {
			return err
		}
		if err := write(c.file, der); err != nil {
			return err
		}
	}
	return write(sandboxRootCertFile, rootDER)
}

// check refuses a request that does not name the sandbox's
// certificates, as Alipay refuses one in certificate mode.
func (c *sandboxCerts) check(p map[string]string) *gatewayError {
	switch {
	case p["app_cert_sn"] == "" || p["alipay_root_cert_sn"] == "":
		return &gatewayError{"missing-app-cert-sn", "certificate mode: app_cert_sn and alipay_root_cert_sn are required"}
	case p["app_cert_sn"] != c.appCertSN:
		return &gatewayError{"invalid-app-cert-sn", "app_cert_sn is not that of the sandbox's " + sandboxAppCertFile}
	case p["alipay_root_cert_sn"] != c.rootCertSN:
		return &gatewayError{"invalid-alipay-root-cert-sn", "alipay_root_cert_sn is not that of the sandbox's " + sandboxRootCertFile}
	}
	return nil
}
