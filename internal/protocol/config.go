package protocol

import (
	"bytes"
	"crypto/rsa"
	"crypto/x509"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"
)

// The configuration loaders: a protocol's settings as an operator writes
// them (OpenAPIConfig, LegacyConfig), checked and read into the protocol
// (NewOpenAPI, NewLegacy). Every error names the setting at fault, as the
// Caddyfile and JSON spell it; a setting that works but should change is
// a Warning.

// OpenAPIConfig is an app's OpenAPI settings as an operator writes them:
// keys and certificates as file paths or inline material.
type OpenAPIConfig struct {
	AppID, SellerID string
	SignType        string // RSA2 (default) or RSA
	Gateway         string // production (default), sandbox, or a URL
	AppPrivateKey   string
	AlipayPublicKey string // not in certificate mode
	// Certificate mode: all three, and no AlipayPublicKey.
	AppCert, AlipayCert, AlipayRootCert string
	// EncryptKey is the app's AES content-encryption key (base64 of 16
	// bytes), for an app that has it switched on; "" for none.
	EncryptKey string
	// APIVersion is v2 (default) or v3: the version of Alipay's OpenAPI
	// that the API's calls use.
	APIVersion string
	// Now is the time that certificates' dates are checked against;
	// zero is time.Now().
	Now time.Time
}

// A Warning is a setting that works but should change.
type Warning struct {
	Setting, Message string
}

// appIDRE is an Alipay APPID: digits.
var appIDRE = regexp.MustCompile(`^[0-9]{1,32}$`)

// NewOpenAPI checks cfg, reads its keys (or certificates) and returns the
// protocol. Every error names the setting at fault.
func NewOpenAPI(cfg OpenAPIConfig) (*OpenAPI, []Warning, error) {
	if cfg.SignType == "" {
		cfg.SignType = SignTypeRSA2
	}
	if cfg.SignType != SignTypeRSA2 && cfg.SignType != SignTypeRSA {
		return nil, nil, settingError("sign_type", fmt.Errorf("%q: want RSA2 or RSA", cfg.SignType))
	}
	p := &OpenAPI{AppID: cfg.AppID, SellerID: cfg.SellerID}
	switch cfg.Gateway {
	case "", "production":
		p.Gateway = GatewayProduction
	case "sandbox":
		p.Gateway = GatewaySandbox
	default:
		p.Gateway = cfg.Gateway
	}
	appKey, err := loadPrivateKey("app_private_key", cfg.AppPrivateKey)
	if err != nil {
		return nil, nil, err
	}
	if p.Signer, err = NewRSASigner(appKey, cfg.SignType); err != nil {
		return nil, nil, settingError("sign_type", err)
	}
	var alipayKey *rsa.PublicKey
	var warnings []Warning
	if cfg.AppCert != "" || cfg.AlipayCert != "" || cfg.AlipayRootCert != "" {
		if alipayKey, warnings, err = p.loadCerts(cfg, &appKey.PublicKey); err != nil {
			return nil, nil, err
		}
	} else if alipayKey, err = loadPublicKey("alipay_public_key", cfg.AlipayPublicKey); err != nil {
		return nil, nil, err
	}
	if p.Verifier, err = NewRSAVerifier(alipayKey, cfg.SignType); err != nil {
		return nil, nil, settingError("sign_type", err)
	}

	if cfg.AppID == "" {
		return nil, nil, settingError("app_id", errors.New("required"))
	}
	if !appIDRE.MatchString(cfg.AppID) {
		return nil, nil, settingError("app_id", fmt.Errorf("%q is not an Alipay APPID (digits)", cfg.AppID))
	}
	sizeWarnings, err := checkKeySizes(appKey, alipayKey, cfg.SignType == SignTypeRSA)
	if err != nil {
		return nil, nil, err
	}
	warnings = append(sizeWarnings, warnings...)
	if alipayKey.Equal(&appKey.PublicKey) {
		if cfg.AlipayCert != "" {
			return nil, nil, settingError("alipay_cert", errors.New("certifies the app's own key, not Alipay's"))
		}
		return nil, nil, settingError("alipay_public_key", errors.New("this is the app's own public key; use the Alipay public key that the open platform shows for the app"))
	}
	if err := CheckGateway(p.Gateway); err != nil {
		return nil, nil, settingError("gateway", err)
	}
	switch cfg.APIVersion {
	case "", "v2":
	case "v3":
		if cfg.SignType != SignTypeRSA2 {
			return nil, nil, settingError("api_version", errors.New("v3 signs with RSA2 only: set sign_type RSA2 (the app's key setting at Alipay)"))
		}
		if p.V3Origin, err = V3OriginOf(p.Gateway); err != nil {
			return nil, nil, settingError("gateway", err)
		}
		p.V3 = true
	default:
		return nil, nil, settingError("api_version", fmt.Errorf("%q: want v2 or v3", cfg.APIVersion))
	}
	if cfg.EncryptKey != "" {
		if p.ContentKey, err = NewContentKey(cfg.EncryptKey); err != nil {
			return nil, nil, settingError("encrypt_key", err)
		}
	}
	if cfg.SellerID != "" && !ValidAlipayID(cfg.SellerID) {
		return nil, nil, settingError("seller_id", fmt.Errorf("%q is not an Alipay seller id (2088 and 12 digits)", cfg.SellerID))
	}
	return p, warnings, nil
}

// loadCerts reads the three certificates of certificate mode: the serial
// numbers into p, and Alipay's public key from alipay_cert, which it
// returns with warnings about the certificates' dates and issuers.
func (p *OpenAPI) loadCerts(cfg OpenAPIConfig, appKey *rsa.PublicKey) (*rsa.PublicKey, []Warning, error) {
	if cfg.AlipayPublicKey != "" {
		return nil, nil, settingError("alipay_public_key", errors.New("not used in certificate mode: Alipay's key comes from alipay_cert; remove one"))
	}
	const together = "required in certificate mode (app_cert, alipay_cert and alipay_root_cert go together)"
	certs := map[string]*x509.Certificate{}
	for _, c := range []struct{ setting, value string }{{"app_cert", cfg.AppCert}, {"alipay_cert", cfg.AlipayCert}} {
		if c.value == "" {
			return nil, nil, settingError(c.setting, errors.New(together))
		}
		material, err := KeyMaterial(c.value)
		if err != nil {
			return nil, nil, settingError(c.setting, err)
		}
		cert, err := ParseCertificate(material)
		if err != nil {
			return nil, nil, settingError(c.setting, err)
		}
		certs[c.setting] = cert
	}
	if cfg.AlipayRootCert == "" {
		return nil, nil, settingError("alipay_root_cert", errors.New(together))
	}
	material, err := KeyMaterial(cfg.AlipayRootCert)
	if err != nil {
		return nil, nil, settingError("alipay_root_cert", err)
	}
	if p.RootCertSN, err = RootCertSN(material); err != nil {
		return nil, nil, settingError("alipay_root_cert", err)
	}
	if p.AppCertSN, err = CertSN(certs["app_cert"]); err != nil {
		return nil, nil, settingError("app_cert", err)
	}
	if p.AlipayCertSN, err = CertSN(certs["alipay_cert"]); err != nil {
		return nil, nil, settingError("alipay_cert", err)
	}
	if k, ok := certs["app_cert"].PublicKey.(*rsa.PublicKey); !ok || !k.Equal(appKey) {
		return nil, nil, settingError("app_cert", errors.New("does not certify the public key of app_private_key: it is another app's certificate, or the key is"))
	}
	alipayKey, ok := certs["alipay_cert"].PublicKey.(*rsa.PublicKey)
	if !ok {
		return nil, nil, settingError("alipay_cert", errors.New("does not hold an RSA key"))
	}
	now := cfg.Now
	if now.IsZero() {
		now = time.Now()
	}
	var warnings []Warning
	for _, setting := range []string{"app_cert", "alipay_cert"} {
		if msg := certProblem(certs[setting], now); msg != "" {
			warnings = append(warnings, Warning{setting, msg})
		}
	}
	return alipayKey, warnings, nil
}

// certExpiryWarning is how long before a certificate expires a warning
// says so.
const certExpiryWarning = 30 * 24 * time.Hour

// certProblem says what is wrong with a certificate of Alipay's at now
// ("" if nothing). These are warnings, not errors: refusing to start
// would take the site down on the day a certificate expires, and the
// answers' alipay_cert_sn check already refuses a rotated key. The chain
// is not checked: Alipay's files hold the leaf alone, without the "Class
// 2 R1" CA that issued it.
func certProblem(c *x509.Certificate, now time.Time) string {
	const day = "2006-01-02"
	switch {
	case now.After(c.NotAfter):
		return "the certificate expired on " + c.NotAfter.UTC().Format(day) + ": download the current one from Alipay's open platform"
	case now.Before(c.NotBefore):
		return "the certificate is not valid until " + c.NotBefore.UTC().Format(day) + ": is this machine's clock right?"
	case bytes.Equal(c.RawIssuer, c.RawSubject) && c.CheckSignature(c.SignatureAlgorithm, c.RawTBSCertificate, c.Signature) == nil:
		return "the certificate is self-signed, and Alipay issues its certificates from its own CA: is this the file that Alipay's open platform gave?"
	case c.NotAfter.Sub(now) < certExpiryWarning:
		return fmt.Sprintf("the certificate expires on %s, in %d days: download the new one from Alipay's open platform before then",
			c.NotAfter.UTC().Format(day), int(c.NotAfter.Sub(now).Hours()/24))
	}
	return ""
}

// checkKeySizes wants 2048-bit keys; with allow1024 (sign_type RSA, as old
// apps and legacy partners have) 1024 bits, with a warning.
func checkKeySizes(appKey *rsa.PrivateKey, alipayKey *rsa.PublicKey, allow1024 bool) ([]Warning, error) {
	var warnings []Warning
	for _, k := range []struct {
		setting string
		key     *rsa.PublicKey
	}{{"app_private_key", &appKey.PublicKey}, {"alipay_public_key", alipayKey}} {
		bits := k.key.N.BitLen()
		switch {
		case bits >= 2048:
		case bits >= 1024 && allow1024:
			warnings = append(warnings, Warning{k.setting, "legacy 1024-bit RSA key: move the app to RSA2 with a 2048-bit key"})
		default:
			return nil, settingError(k.setting, fmt.Errorf("a %d-bit key is too short: 2048 bits at least (1024 only with sign_type RSA)", bits))
		}
	}
	return warnings, nil
}

// LegacyConfig is a partner's legacy settings as an operator writes them:
// keys as file paths or inline.
type LegacyConfig struct {
	Partner      string
	SignType     string // MD5 (default) or RSA
	MD5Key       string // sign_type MD5
	InputCharset string // utf-8 (default) or gbk
	// The seller: SellerEmail, or SellerID, which defaults to Partner.
	SellerID, SellerEmail string
	Gateway               string // production (default) or a URL
	// sign_type RSA: the partner's private key and Alipay's public key.
	AppPrivateKey, AlipayPublicKey string
	NotifyVerify                   bool
}

// NewLegacy checks cfg, reads its keys and returns the protocol. Every
// error names the setting at fault.
func NewLegacy(cfg LegacyConfig) (*Legacy, []Warning, error) {
	if !ValidAlipayID(cfg.Partner) {
		return nil, nil, settingError("partner", fmt.Errorf("%q is not an Alipay partner id (2088 and 12 digits)", cfg.Partner))
	}
	p := &Legacy{Partner: cfg.Partner, SellerID: cfg.SellerID, SellerEmail: cfg.SellerEmail, NotifyVerify: cfg.NotifyVerify}
	switch strings.ToLower(cfg.InputCharset) {
	case "", "utf-8", "utf8":
		p.Charset = "utf-8"
	case "gbk":
		p.Charset = "gbk"
	default:
		return nil, nil, settingError("input_charset", fmt.Errorf("%q: want utf-8 or gbk", cfg.InputCharset))
	}
	var warnings []Warning
	switch cfg.SignType {
	case "", SignTypeMD5:
		for _, s := range []struct{ setting, value string }{{"app_private_key", cfg.AppPrivateKey}, {"alipay_public_key", cfg.AlipayPublicKey}} {
			if s.value != "" {
				return nil, nil, settingError(s.setting, errors.New("not used with sign_type MD5, which signs with md5_key"))
			}
		}
		key, err := loadMD5Key(cfg.MD5Key)
		if err != nil {
			return nil, nil, settingError("md5_key", err)
		}
		p.Signer, p.Verifier = key, key
	case SignTypeRSA:
		if cfg.MD5Key != "" {
			return nil, nil, settingError("md5_key", errors.New("not used with sign_type RSA, which signs with app_private_key"))
		}
		appKey, err := loadPrivateKey("app_private_key", cfg.AppPrivateKey)
		if err != nil {
			return nil, nil, err
		}
		alipayKey, err := loadPublicKey("alipay_public_key", cfg.AlipayPublicKey)
		if err != nil {
			return nil, nil, err
		}
		if warnings, err = checkKeySizes(appKey, alipayKey, true); err != nil {
			return nil, nil, err
		}
		if alipayKey.Equal(&appKey.PublicKey) {
			return nil, nil, settingError("alipay_public_key", errors.New("this is the partner's own public key; use Alipay's"))
		}
		p.Signer, _ = NewRSASigner(appKey, SignTypeRSA)
		p.Verifier, _ = NewRSAVerifier(alipayKey, SignTypeRSA)
	default:
		return nil, nil, settingError("sign_type", fmt.Errorf("%q: the legacy protocol (partner) signs with MD5 or RSA", cfg.SignType))
	}
	switch {
	case cfg.SellerID != "" && cfg.SellerEmail != "":
		return nil, nil, settingError("seller_email", errors.New("give seller_id or seller_email, not both"))
	case cfg.SellerEmail != "" && !ValidEmail(cfg.SellerEmail):
		return nil, nil, settingError("seller_email", fmt.Errorf("%q is not an email address", cfg.SellerEmail))
	case cfg.SellerID != "" && !ValidAlipayID(cfg.SellerID):
		return nil, nil, settingError("seller_id", fmt.Errorf("%q is not an Alipay seller id (2088 and 12 digits)", cfg.SellerID))
	case cfg.SellerID == "" && cfg.SellerEmail == "":
		p.SellerID = cfg.Partner
	}
	switch cfg.Gateway {
	case "", "production":
		p.Gateway = GatewayMapi
	case "sandbox":
		return nil, nil, settingError("gateway", errors.New("Alipay has no sandbox for the legacy protocol; use production, or the URL of a local alipay_sandbox"))
	default:
		if err := CheckGateway(cfg.Gateway); err != nil {
			return nil, nil, settingError("gateway", err)
		}
		p.Gateway = cfg.Gateway
	}
	return p, warnings, nil
}

// maxMD5KeyFile bounds what md5_key may read from a file.
const maxMD5KeyFile = 1024

// loadMD5Key reads an md5_key setting: the key itself, or a file that
// holds it. Neither the key nor a mistyped one is ever echoed.
func loadMD5Key(value string) (*MD5Key, error) {
	v := strings.TrimSpace(value)
	if v == "" {
		return nil, errors.New("required with sign_type MD5 (an unset environment variable or a missing {file.*}?)")
	}
	if !md5KeyRE.MatchString(v) {
		// Only something that names a file is read as one: a mistyped
		// key must not end up in an error as a "file name".
		if !strings.ContainsAny(v, "/.") || len(v) > 256 || strings.ContainsAny(v, "\r\n") {
			return nil, errors.New("must be the partner's 32 letters and digits, or a file that holds them")
		}
		data, err := readSecretFile(v, maxMD5KeyFile)
		if err != nil {
			return nil, err
		}
		v = strings.TrimSpace(string(data))
	}
	key, err := NewMD5Key(v)
	if err != nil {
		return nil, err
	}
	return key, nil
}
