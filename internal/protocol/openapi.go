package protocol

import (
	"bytes"
	"context"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"time"
)

// Alipay's OpenAPI 2.0 gateways.
const (
	GatewayProduction = "https://openapi.alipay.com/gateway.do"
	GatewaySandbox    = "https://openapi-sandbox.dl.alipaydev.com/gateway.do"
)

// OpenAPI is Alipay's OpenAPI 2.0 protocol for one app: RSA2 (or RSA)
// signed requests with a JSON biz_content, callbacks signed by Alipay.
type OpenAPI struct {
	AppID    string
	SellerID string   // when set, a callback's seller_id must equal it
	Signer   Signer   // the app's private key
	Verifier Verifier // Alipay's public key
	Gateway  string   // the gateway URL

	// Certificate mode (公钥证书模式): the serial numbers that every
	// request carries, and the one that Alipay's responses must name.
	// Empty otherwise.
	AppCertSN, RootCertSN, AlipayCertSN string
}

// Name implements Protocol.
func (*OpenAPI) Name() string { return "openapi" }

// Audience implements Protocol.
func (p *OpenAPI) Audience() string { return p.AppID }

// openAPIClaims are the optional pay token claims copied into
// biz_content, each with its check.
var openAPIClaims = []optionalClaim{
	{"body", text(128)},
	{"timeout_express", checkTimeout},
	{"time_expire", checkTimeExpire},
	{"passback_params", text(512)},
	{"qr_pay_mode", checkQRPayMode},
	{"qrcode_width", checkQRCodeWidth},
}

// ParseOrder implements Protocol: the required claims, the optional
// ones above, and a biz object merged into biz_content.
func (*OpenAPI) ParseOrder(claims map[string]json.RawMessage) (*Order, error) {
	for name, instead := range legacyOnly {
		if _, ok := claims[name]; ok {
			reason := "is a claim of the legacy protocol; OpenAPI has no such field"
			if instead != "" {
				reason += "; use " + instead
			}
			return nil, &ClaimError{name, reason}
		}
	}
	return parseOrder(claims, openAPIClaims, true)
}

// legacyOnly are the legacy protocol's claims that an OpenAPI request has
// no place for, with the OpenAPI claim that does the same where there is
// one: a shop that moves from one protocol to the other hears of them.
var legacyOnly = map[string]string{
	"it_b_pay": "timeout_express", "extra_common_param": "passback_params", "show_url": "", "paymethod": "", "defaultbank": "",
}

// RequestParams are the common parameters of an OpenAPI request for
// method, unsigned: app_id, method, format, charset, sign_type,
// timestamp, version, biz_content and, in certificate mode, the serial
// numbers. The caller adds notify_url or return_url, then signs with
// SignParams.
func (p *OpenAPI) RequestParams(method string, bizContent []byte, at time.Time) map[string]string {
	params := map[string]string{
		"app_id":      p.AppID,
		"method":      method,
		"format":      "JSON",
		"charset":     "utf-8",
		"sign_type":   p.Signer.SignType(),
		"timestamp":   Timestamp(at),
		"version":     "1.0",
		"biz_content": string(bizContent),
	}
	if p.AppCertSN != "" {
		params["app_cert_sn"] = p.AppCertSN
		params["alipay_root_cert_sn"] = p.RootCertSN
	}
	return params
}

// PayURL implements Protocol: the page-pay or WAP-pay request in the
// query of the gateway URL, as the SDKs' GET form sends it.
func (p *OpenAPI) PayURL(o *Order, notifyURL, returnURL string, at time.Time) (string, error) {
	params := p.RequestParams(o.Product.Method, o.BizContent(), at)
	params["notify_url"], params["return_url"] = notifyURL, returnURL
	if err := SignParams(p.Signer, params); err != nil {
		return "", err
	}
	return p.Gateway + "?" + Encode(params), nil
}

// ParseCallback implements Protocol: the values are in the callback's
// own charset field.
func (*OpenAPI) ParseCallback(raw string) (*Callback, error) {
	c, err := ParseForm(raw)
	if err != nil {
		return nil, err
	}
	cs := c.Get("charset")
	if cs == "" {
		cs = c.Get("_input_charset")
	}
	if err := c.setCharset(cs); err != nil {
		return nil, err
	}
	c.amountKey = "total_amount"
	return c, nil
}

// VerifyCallback implements Protocol. It accepts the strings to sign that
// Alipay really uses: V1 (sign and sign_type left out, the form of trade
// notifications and returns), V1 without empty values, and V2 (only sign
// left out). Each is a string that Alipay signed, so accepting any of them
// adds no way to forge. A sign_type other than the configured one is
// refused: the callback's own, unsigned sign_type never picks the hash.
// Then app_id, and seller_id when configured, must be this app's.
func (p *OpenAPI) VerifyCallback(_ context.Context, c *Callback, _ string) error {
	if err := verifyOpenAPISign(c, p.Verifier); err != nil {
		return err
	}
	if c.Get("app_id") != p.AppID {
		return fmt.Errorf("%w: app_id is not this app's", ErrNotOurs)
	}
	if p.SellerID != "" && c.Get("seller_id") != p.SellerID {
		return fmt.Errorf("%w: seller_id is not the configured one", ErrNotOurs)
	}
	return nil
}

func verifyOpenAPISign(c *Callback, v Verifier) error {
	if st := c.find("sign_type"); st != nil && string(st.value) != v.SignType() {
		return fmt.Errorf("%w: %q", ErrSignType, st.value)
	}
	return c.verifySign(v, signedString{false, true}, signedString{false, false}, signedString{true, true})
}

// A Client calls the OpenAPI gateway: it signs a request as Alipay's SDKs
// sign one, POSTs it (the common parameters in the query, biz_content in
// the form body, as the SDKs' exec does) and returns the response once its
// signature holds.
type Client struct {
	API     *OpenAPI
	HTTP    *http.Client
	Timeout time.Duration // for one call, connection to last byte
	Now     func() time.Time
}

// MaxResponseSize bounds a gateway response.
const MaxResponseSize = 1 << 20

// CallError is a call that gave no answer to trust.
type CallError struct {
	Kind CallErrorKind
	Msg  string
	// For an unsigned error_response: its code, msg, sub_code and sub_msg.
	Fields map[string]string
}

func (e *CallError) Error() string { return e.Msg }

// CallErrorKind tells why a call failed.
type CallErrorKind int

const (
	CallTimeout     CallErrorKind = iota // no answer in time
	CallUnreachable                      // no connection, or a broken answer
	CallBadAnswer                        // an answer that is not a verified response
	CallRefused                          // an unsigned error_response: the gateway refused the call
)

// Call makes one OpenAPI call of method with bizContent.
func (c *Client) Call(ctx context.Context, method string, bizContent []byte) (*Response, error) {
	params := c.API.RequestParams(method, bizContent, c.Now())
	if err := SignParams(c.API.Signer, params); err != nil {
		return nil, err
	}
	query := url.Values{}
	for k, v := range params {
		if k != "biz_content" {
			query.Set(k, v)
		}
	}
	form := url.Values{"biz_content": {params["biz_content"]}}
	ctx, cancel := context.WithTimeout(ctx, c.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.API.Gateway+"?"+query.Encode(), strings.NewReader(form.Encode()))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded;charset=utf-8")
	res, err := c.HTTP.Do(req)
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			return nil, &CallError{Kind: CallTimeout, Msg: "the gateway did not answer in time"}
		}
		return nil, &CallError{Kind: CallUnreachable, Msg: "the gateway could not be reached"}
	}
	defer res.Body.Close()
	body, err := io.ReadAll(io.LimitReader(res.Body, MaxResponseSize+1))
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return nil, &CallError{Kind: CallTimeout, Msg: "the gateway did not answer in time"}
	case err != nil:
		return nil, &CallError{Kind: CallUnreachable, Msg: "reading the gateway's answer failed"}
	case len(body) > MaxResponseSize:
		return nil, &CallError{Kind: CallBadAnswer, Msg: "the gateway's answer is too large"}
	case res.StatusCode != http.StatusOK:
		return nil, &CallError{Kind: CallBadAnswer, Msg: fmt.Sprintf("the gateway answered HTTP %d", res.StatusCode)}
	}
	resp, err := ParseResponse(body, method)
	if err != nil {
		return nil, &CallError{Kind: CallBadAnswer, Msg: err.Error()}
	}
	if resp.IsError && resp.Sign == "" {
		// Alipay leaves failures of the call itself unsigned: pass on what
		// they say, as an error, never as a good answer.
		var fields map[string]string
		_ = json.Unmarshal(resp.Raw, &fields)
		out := map[string]string{}
		for _, k := range []string{"code", "msg", "sub_code", "sub_msg"} {
			if v := fields[k]; v != "" {
				out[k] = v
			}
		}
		return nil, &CallError{Kind: CallRefused, Msg: "the gateway refused the call (error_response)", Fields: out}
	}
	if c.API.AlipayCertSN != "" && resp.CertSN != c.API.AlipayCertSN {
		// Alipay rotated its certificate, or someone else answered: either
		// way the old key must not vouch for this.
		return nil, &CallError{Kind: CallBadAnswer, Msg: "the answer names another Alipay certificate (alipay_cert_sn); download Alipay's current alipayCertPublicKey_RSA2.crt"}
	}
	if err := resp.Verify(c.API.Verifier); err != nil {
		return nil, &CallError{Kind: CallBadAnswer, Msg: "the gateway's answer is not signed by Alipay"}
	}
	return resp, nil
}

// TradeStatus asks alipay.trade.query for the status of the trade
// outTradeNo (with Alipay's tradeNo, when known). It returns an error
// when there is no verified answer with code 10000 about that trade: its
// out_trade_no must be outTradeNo, and its trade_no tradeNo where both
// have one.
func (c *Client) TradeStatus(ctx context.Context, outTradeNo, tradeNo string) (string, error) {
	biz, _ := MarshalJSON(map[string]string{"out_trade_no": outTradeNo})
	resp, err := c.Call(ctx, "alipay.trade.query", biz)
	if err != nil {
		return "", err
	}
	// Read by exact name, as Alipay writes them: encoding/json's struct
	// fields would match any case.
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(resp.Raw, &raw); err != nil {
		return "", err
	}
	get := func(k string) string {
		var s string
		_ = json.Unmarshal(raw[k], &s)
		return s
	}
	switch {
	case get("code") != "10000":
		return "", fmt.Errorf("alipay.trade.query: %s %s", get("code"), get("sub_code"))
	case get("out_trade_no") != outTradeNo:
		return "", errors.New("alipay.trade.query answered about another trade (out_trade_no)")
	case tradeNo != "" && get("trade_no") != "" && get("trade_no") != tradeNo:
		return "", errors.New("alipay.trade.query answered about another trade (trade_no)")
	}
	return get("trade_status"), nil
}

// MarshalJSON encodes v as compact JSON as Alipay writes it: without HTML
// escaping, so that & and < stay themselves.
func MarshalJSON(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
}

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
	// Now is the time that certificates' dates are checked against;
	// zero is time.Now().
	Now time.Time
}

// A Warning is a setting that works but should change.
type Warning struct {
	Setting, Message string
}

var (
	appIDRE    = regexp.MustCompile(`^[0-9]{1,32}$`)
)

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
