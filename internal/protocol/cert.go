package protocol

import (
	"crypto/md5"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"
)

// Public-key certificate mode (公钥证书模式): every request names the app's
// certificate and Alipay's root by Alipay's own serial numbers.

// CertSN is Alipay's serial number of a certificate: the lower-case hex MD5
// of the issuer's distinguished name as RFC 2253 writes it (the RDN
// encoded last comes first), followed by the certificate's serial number
// in decimal. pkix.Name.String() is not used: it writes a fixed order of
// its own, which differs for issuers encoded in another.
func CertSN(c *x509.Certificate) (string, error) {
	var rdns pkix.RDNSequence
	if rest, err := asn1.Unmarshal(c.RawIssuer, &rdns); err != nil || len(rest) > 0 {
		return "", errors.New("malformed issuer name")
	}
	parts := make([]string, 0, len(rdns))
	for i := len(rdns) - 1; i >= 0; i-- {
		attrs := make([]string, 0, len(rdns[i]))
		for _, atv := range rdns[i] {
			attrs = append(attrs, attributeType(atv.Type)+"="+escapeDNValue(fmt.Sprint(atv.Value)))
		}
		parts = append(parts, strings.Join(attrs, "+"))
	}
	sum := md5.Sum([]byte(strings.Join(parts, ",") + c.SerialNumber.String()))
	return hex.EncodeToString(sum[:]), nil
}

// attributeTypes are the short names RFC 2253 (and Java's X500Principal,
// which Alipay uses) write; others are written as dotted OIDs.
var attributeTypes = map[string]string{
	"2.5.4.3": "CN", "2.5.4.6": "C", "2.5.4.7": "L", "2.5.4.8": "ST", "2.5.4.9": "STREET",
	"2.5.4.10": "O", "2.5.4.11": "OU", "0.9.2342.19200300.100.1.25": "DC", "0.9.2342.19200300.100.1.1": "UID",
}

func attributeType(oid asn1.ObjectIdentifier) string {
	if s, ok := attributeTypes[oid.String()]; ok {
		return s
	}
	return oid.String()
}

// escapeDNValue escapes a value as RFC 2253 section 2.4 says.
func escapeDNValue(v string) string {
	var b strings.Builder
	for i, r := range v {
		switch {
		case strings.ContainsRune(`,+"\<>;`, r),
			i == 0 && (r == '#' || r == ' '),
			i == len(v)-1 && r == ' ':
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}

// ParseCertificate reads the first certificate of PEM material.
func ParseCertificate(material []byte) (*x509.Certificate, error) {
	for {
		var block *pem.Block
		block, material = pem.Decode(material)
		if block == nil {
			return nil, errors.New("no PEM CERTIFICATE found")
		}
		if block.Type == "CERTIFICATE" {
			return x509.ParseCertificate(block.Bytes)
		}
	}
}

// rsaSignatureOID is the arc of the RSA signature algorithms
// (1.2.840.113549.1.1.*), the ones that count in a root's serial number.
var rsaSignatureOID = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1}

// RootCertSN is alipay_root_cert_sn for a root certificate file: the
// serial numbers of its RSA-signed certificates, in file order, joined by
// "_". EC and SM2 roots are skipped; the signature algorithm is read from
// the raw certificate, so that one Go cannot parse (SM2) is skipped too.
func RootCertSN(pemData []byte) (string, error) {
	var sns []string
	for {
		var block *pem.Block
		block, pemData = pem.Decode(pemData)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		var outer struct {
			TBS       asn1.RawValue
			Algorithm pkix.AlgorithmIdentifier
			Signature asn1.BitString
		}
		if _, err := asn1.Unmarshal(block.Bytes, &outer); err != nil {
			return "", fmt.Errorf("malformed certificate: %w", err)
		}
		alg := outer.Algorithm.Algorithm
		if len(alg) != len(rsaSignatureOID)+1 || !alg[:len(rsaSignatureOID)].Equal(rsaSignatureOID) {
			continue
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return "", fmt.Errorf("RSA-signed certificate: %w", err)
		}
		sn, err := CertSN(c)
		if err != nil {
			return "", err
		}
		sns = append(sns, sn)
	}
	if len(sns) == 0 {
		return "", errors.New("no RSA-signed certificate")
	}
	return strings.Join(sns, "_"), nil
}
