package protocol

import (
	"context"
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

// The legacy "instant arrival" protocol (即时到账, create_direct_pay_by_user
// on the mapi gateway), which partners that joined before OpenAPI still
// run: requests and callbacks signed with the partner's 32-character MD5
// key, or with RSA (SHA1withRSA), in the partner's charset; with
// NotifyVerify, notifications confirmed by asking Alipay (notify_verify).

// GatewayMapi is the legacy protocol's gateway.
const GatewayMapi = "https://mapi.alipay.com/gateway.do"

// NotifyVerifyTimeout bounds one notify_verify question.
const NotifyVerifyTimeout = 5 * time.Second

// Legacy is the legacy protocol for one partner.
type Legacy struct {
	Partner string
	// The seller that callbacks must name: SellerEmail when it is set,
	// else SellerID.
	SellerID, SellerEmail string
	Charset               string   // utf-8 or gbk: _input_charset
	Signer                Signer   // the MD5 key, or the partner's RSA key
	Verifier              Verifier // the MD5 key, or Alipay's RSA key
	Gateway               string
	// NotifyVerify: ask Alipay about every notification, and every return
	// that carries a notify_id, before it counts as verified.
	NotifyVerify bool
	// HTTP is the client for notify_verify and the API's calls, a
	// NoRedirectClient; the API's calls never follow a redirect, whatever
	// its CheckRedirect.
	HTTP *http.Client
	// ConfirmTimeout bounds one notify_verify question; 0 is
	// NotifyVerifyTimeout.
	ConfirmTimeout time.Duration
	// APITimeout bounds one call of the API, connection to last byte; 0
	// is LegacyAPITimeout.
	APITimeout time.Duration
	// Now is the clock of refund_date and of batch_no's date; nil is
	// time.Now.
	Now func() time.Time
	// Timer is told how long each call and notify_verify took; nil for
	// none.
	Timer CallTimer
}

// now is the time on p's clock.
func (p *Legacy) now() time.Time {
	if p.Now != nil {
		return p.Now()
	}
	return time.Now()
}

// Name implements Protocol.
func (*Legacy) Name() string { return "legacy" }

// Audience implements Protocol.
func (p *Legacy) Audience() string { return p.Partner }

var (
	itBPayRE      = regexp.MustCompile(`^([1-9][0-9]{0,5})([mhd])$|^1c$`)
	defaultBankRE = regexp.MustCompile(`^[A-Za-z0-9_-]{1,32}$`)
)

// legacyClaims are the optional pay token claims that the legacy request
// carries, each with its check.
var legacyClaims = []optionalClaim{
	{"body", text(400)},
	{"show_url", checkShowURL},
	{"it_b_pay", checkItBPay},
	{"extra_common_param", text(100)},
	{"paymethod", oneOf("directPay", "bankPay", "cartoon", "CASH", "creditPay")},
	{"defaultbank", func(s string) string {
		if !defaultBankRE.MatchString(s) {
			return "must be a bank code like CMB or ICBCB2C"
		}
		return ""
	}},
	{"qr_pay_mode", checkQRPayMode},
	{"qrcode_width", checkQRCodeWidth},
}

// checkShowURL accepts an absolute http(s) URL of at most 400 bytes.
func checkShowURL(s string) string {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || len(s) > 400 {
		return "must be an absolute http(s) URL of at most 400 characters"
	}
	return ""
}

// checkItBPay accepts 1m to 15d, and 1c (the end of today).
func checkItBPay(s string) string {
	if !itBPayRE.MatchString(s) {
		return "must be like 30m, 2h, 3d or 1c"
	}
	return checkTimeout(s)
}

// openAPIOnly are the OpenAPI claims that the legacy request has no place
// for, with the legacy claim that does the same where there is one.
var openAPIOnly = map[string]string{
	"timeout_express": "it_b_pay", "time_expire": "it_b_pay", "passback_params": "extra_common_param", "biz": "",
}

// ParseOrder implements Protocol: the claims that the legacy request
// carries; product wap, the OpenAPI claims and text that the charset
// cannot hold are refused.
func (p *Legacy) ParseOrder(claims map[string]json.RawMessage) (*Order, error) {
	if err := refuseForeignClaims(claims, openAPIOnly, "is an OpenAPI claim; the legacy protocol has no such field"); err != nil {
		return nil, err
	}
	o, err := parseOrder(claims, legacyClaims, false)
	if err != nil {
		return nil, err
	}
	if o.Product.Name != "page" {
		return nil, &ClaimError{"product", "the legacy protocol pays in the browser only: page (app and qr are OpenAPI's)"}
	}
	if _, err := p.params(o, "", "", ""); err != nil {
		return nil, err
	}
	return o, nil
}

// params are the legacy request's parameters for o, in UTF-8, unsigned;
// a claim whose text the charset cannot hold is a ClaimError.
func (p *Legacy) params(o *Order, notifyURL, returnURL, signType string) (map[string]string, error) {
	amount, err := ParseAmount(o.TotalAmount)
	if err != nil {
		return nil, &ClaimError{"total_amount", err.Error()}
	}
	params := map[string]string{
		"service":        "create_direct_pay_by_user",
		"partner":        p.Partner,
		"_input_charset": p.Charset,
		"payment_type":   "1",
		"out_trade_no":   o.OutTradeNo,
		"subject":        o.Subject,
		"total_fee":      amount.String(),
		"notify_url":     notifyURL,
		"return_url":     returnURL,
		"sign_type":      signType,
	}
	if p.SellerEmail != "" {
		params["seller_email"] = p.SellerEmail
	} else {
		params["seller_id"] = p.SellerID
	}
	for _, f := range o.Fields {
		var v string
		if err := json.Unmarshal(f.Value, &v); err != nil {
			return nil, &ClaimError{f.Key, "must be a string"}
		}
		params[f.Key] = v
	}
	for _, claim := range []string{"subject", "body", "extra_common_param", "show_url"} {
		if _, err := encodeCharset(params[claim], p.Charset); err != nil {
			return nil, &ClaimError{claim, "has characters that " + p.Charset + " cannot hold"}
		}
	}
	return params, nil
}

// LegacyContent returns the string to sign of a legacy request or
// callback: every parameter but sign, sign_type and those with an empty
// value, sorted by name, joined as k=v&k=v with the raw values.
func LegacyContent(params map[string]string) []byte {
	return sortedContent(params, func(k, v string) bool { return k == "sign" || k == "sign_type" || v == "" })
}

// EncodeLegacy signs params (UTF-8) with s as the legacy protocol signs:
// the string to sign and every value taken in charset. It returns the
// parameters form-encoded in charset, sign and sign_type among them: the
// query of a request, the body of a notification.
func EncodeLegacy(params map[string]string, charset string, s Signer) (string, error) {
	enc := make(map[string]string, len(params)+2)
	for k, v := range params {
		if v == "" {
			continue // not signed, so not sent
		}
		b, err := encodeCharset(v, charset)
		if err != nil {
			return "", fmt.Errorf("%s: %w", k, err)
		}
		enc[k] = string(b)
	}
	delete(enc, "sign")
	delete(enc, "sign_type")
	sign, err := s.Sign(LegacyContent(enc))
	if err != nil {
		return "", err
	}
	enc["sign"], enc["sign_type"] = sign, s.SignType()
	return Encode(enc), nil
}

// PayURL implements Protocol: create_direct_pay_by_user, signed, in the
// query of the gateway URL (which so carries _input_charset), encoded in
// the partner's charset.
func (p *Legacy) PayURL(o *Order, notifyURL, returnURL string, _ time.Time) (string, error) {
	params, err := p.params(o, notifyURL, returnURL, "")
	if err != nil {
		return "", err
	}
	q, err := EncodeLegacy(params, p.Charset, p.Signer)
	if err != nil {
		return "", err
	}
	return p.Gateway + "?" + q, nil
}

// ParseCallback implements Protocol: the values are in the partner's
// charset, whatever the callback says.
func (p *Legacy) ParseCallback(raw string) (*Callback, error) {
	c, err := ParseForm(raw)
	if err != nil {
		return nil, err
	}
	if err := c.setCharset(p.Charset); err != nil {
		return nil, err
	}
	c.amountKey = "total_fee"
	return c, nil
}

// VerifyCallback implements Protocol: sign_type must be the configured one
// and the signature hold over the one string that the legacy protocol
// signs; the seller must be this partner's (checkSeller); a return must
// say is_success T; and, with NotifyVerify, Alipay must confirm the
// notify_id.
func (p *Legacy) VerifyCallback(ctx context.Context, c *Callback, event string) error {
	st := c.find("sign_type")
	if st == nil || string(st.value) != p.Verifier.SignType() {
		got := "none"
		if st != nil {
			got = fmt.Sprintf("%q", st.value)
		}
		return fmt.Errorf("%w: %s", ErrSignType, got)
	}
	if sign := c.find("sign"); sign != nil && p.Verifier.SignType() != SignTypeMD5 {
		// A sign read from a query may have lost its + to a space;
		// Alipay's own demo puts them back (base64 has no spaces).
		for i, b := range sign.value {
			if b == ' ' {
				sign.value[i] = '+'
			}
		}
	}
	if err := c.verifySign(p.Verifier, signedV1NoEmpty); err != nil {
		return err
	}
	if err := p.checkSeller(c, event); err != nil {
		return err
	}
	if event == EventReturn && c.Get("is_success") != "T" {
		return fmt.Errorf("%w: is_success is %q", ErrNotConfirmed, c.Get("is_success"))
	}
	id := c.Get("notify_id")
	if !p.NotifyVerify || (event == EventReturn && id == "") {
		return nil
	}
	if id == "" {
		return fmt.Errorf("%w: no notify_id", ErrMalformed)
	}
	return p.confirm(ctx, id)
}

// NotifyTypeBatchRefund is the notify_type of a refund batch's result,
// which Alipay posts to the refund's notify_url.
const NotifyTypeBatchRefund = "batch_refund_notify"

// checkSeller checks that c names this partner's seller: seller_email
// when that is configured, else seller_id. A refund batch's result
// (batch_refund_notify) names no seller, so there the field is checked
// only where it has a value (an empty one is not signed); a trade's notification and a return must
// always name it. notify_type is signed, so the exception cannot be
// claimed by a callback that the signature does not cover. With sign_type
// RSA, Alipay signs every partner's notifications with the one key, so
// another partner's refund result verifies too: notify_verify, which
// answers invalid for another partner's notify_id, tells them apart, and
// so does the shop's own batch_no.
func (p *Legacy) checkSeller(c *Callback, event string) error {
	name, want := "seller_id", p.SellerID
	if p.SellerEmail != "" {
		name, want = "seller_email", p.SellerEmail
	}
	if event == EventNotify && c.Get("notify_type") == NotifyTypeBatchRefund && c.Get(name) == "" {
		return nil
	}
	if c.Get(name) != want {
		return fmt.Errorf("%w: %s is not the configured one", ErrNotOurs, name)
	}
	return nil
}

// confirm asks Alipay whether it sent the notification notify_id: only
// the answer "true" confirms it.
func (p *Legacy) confirm(ctx context.Context, notifyID string) error {
	timeout := p.ConfirmTimeout
	if timeout == 0 {
		timeout = NotifyVerifyTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	q := url.Values{"service": {"notify_verify"}, "partner": {p.Partner}, "notify_id": {notifyID}}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.Gateway+"?"+q.Encode(), nil)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrNoConfirmation, err)
	}
	start := time.Now()
	defer p.Timer.since("notify_verify", start)
	res, err := p.HTTP.Do(req)
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			return fmt.Errorf("%w: notify_verify gave no answer in %v", ErrNoConfirmation, timeout)
		}
		return fmt.Errorf("%w: notify_verify could not be asked", ErrNoConfirmation)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(io.LimitReader(res.Body, 256))
	if err != nil {
		return fmt.Errorf("%w: reading the answer to notify_verify failed", ErrNoConfirmation)
	}
	if res.StatusCode != http.StatusOK {
		return fmt.Errorf("%w: notify_verify answered HTTP %d", ErrNoConfirmation, res.StatusCode)
	}
	if answer := strings.TrimSpace(string(body)); answer != "true" {
		if len(answer) > 64 {
			answer = answer[:64]
		}
		return fmt.Errorf("%w: notify_verify answered %q", ErrNotConfirmed, answer)
	}
	return nil
}
