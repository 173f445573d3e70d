package protocol

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
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

	// ContentKey encrypts every API call's biz_content and decrypts its
	// answer, for an app with content encryption switched on; nil
	// otherwise. Pay redirects and app order strings stay plain.
	ContentKey *ContentKey

	// V3 sends the API's calls as OpenAPI v3 REST calls to V3Origin
	// (the gateway's scheme, host and port); pay redirects and app order
	// strings stay v2, as in Alipay's own v3 SDKs.
	V3       bool
	V3Origin string
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
// ones above, and a biz object merged into biz_content; the legacy
// protocol's claims are refused.
func (*OpenAPI) ParseOrder(claims map[string]json.RawMessage) (*Order, error) {
	if err := refuseForeignClaims(claims, legacyOnly, "is a claim of the legacy protocol; OpenAPI has no such field"); err != nil {
		return nil, err
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

// AppOrderString is the signed order string of an app-pay order o, which
// the shop's mobile app hands to Alipay's app SDK: every parameter
// URL-encoded, sorted, sign last of all, as the SDKs write it. It has no
// empty parameter (the gateway would sign a present-but-empty one, and
// the app shows "系统繁忙"), and nothing may be added to it after
// signing. notifyURL "" leaves notify_url out: the payment is then
// proved by a query only.
func (p *OpenAPI) AppOrderString(o *Order, notifyURL string, at time.Time) (string, error) {
	params := p.RequestParams(o.Product.Method, o.BizContent(), at)
	if notifyURL != "" {
		params["notify_url"] = notifyURL
	}
	if err := SignParams(p.Signer, params); err != nil {
		return "", err
	}
	sign := params["sign"]
	delete(params, "sign")
	return Encode(params) + "&sign=" + url.QueryEscape(sign), nil
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
// Alipay really uses: signedV1 (sign and sign_type left out, the form of
// trade notifications and returns), signedV1NoEmpty (V1 without empty
// values), and signedV2 (only sign left out). Each is a string that Alipay
// signed, so accepting any of them adds no way to forge. A sign_type other
// than the configured one is refused: the callback's own, unsigned
// sign_type never picks the hash. Then app_id, and seller_id when
// configured, must be this app's.
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
	return c.verifySign(v, signedV1, signedV1NoEmpty, signedV2)
}
