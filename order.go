package alipay

import (
	"bytes"
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// A product is an Alipay payment product that the pay endpoint can start.
type product struct {
	method      string // the OpenAPI method
	productCode string // biz_content.product_code
}

// products maps the pay token's product claim to the Alipay product.
// New browser products (and, later, QR and app pay) are added here.
var products = map[string]product{
	"page": {method: "alipay.trade.page.pay", productCode: "FAST_INSTANT_TRADE_PAY"},
	"wap":  {method: "alipay.trade.wap.pay", productCode: "QUICK_WAP_WAY"},
}

// An Order is what a shop's pay token asks for, checked against Alipay's
// limits.
type Order struct {
	OutTradeNo  string
	TotalAmount string // as the shop wrote it: at most 2 decimals
	Subject     string
	Product     string // a key of products

	// biz holds the optional biz_content fields in the order they are
	// written: the named claims first, then the biz object's keys sorted.
	biz []bizField
}

type bizField struct {
	key   string
	value json.RawMessage
}

// ClaimError is a pay token claim that is missing or out of range; the pay
// endpoint answers 400 with it, since it names only the shop's own input.
type ClaimError struct {
	Claim  string
	Reason string
}

func (e *ClaimError) Error() string { return e.Claim + ": " + e.Reason }

var (
	outTradeNoRE = regexp.MustCompile(`^[A-Za-z0-9_]{1,64}$`)
	amountRE     = regexp.MustCompile(`^(0|[1-9][0-9]{0,8})(\.[0-9]{1,2})?$`)
	timeoutRE    = regexp.MustCompile(`^([1-9][0-9]{0,5})([mhd])$`)
)

// optionalClaims are copied into biz_content as strings when present, each
// with its check.
var optionalClaims = []struct {
	name  string
	check func(string) string // returns the reason it is refused, or ""
}{
	{"body", text(128)},
	{"timeout_express", checkTimeout},
	{"time_expire", checkTimeExpire},
	{"passback_params", text(512)},
	{"qr_pay_mode", checkQRPayMode},
	{"qrcode_width", checkQRCodeWidth},
}

// claimNames are every claim that a pay token may carry; ownBiz, the
// biz_content fields that a claim sets and biz must not.
var claimNames, ownBiz = func() ([]string, []string) {
	var optional []string
	for _, oc := range optionalClaims {
		optional = append(optional, oc.name)
	}
	return append(slices.Clone(payClaims), optional...), append(slices.Clone(reservedBiz), optional...)
}()

// reservedBiz are biz_content keys that only the named claims may set.
var reservedBiz = []string{"out_trade_no", "total_amount", "subject", "product_code"}

// payClaims are the claims that a pay token's names are compared with:
// a name that differs from one of them only in case, _ or - is refused,
// since the shop's JWT library may read it as that claim and this
// handler would not.
var payClaims = []string{"out_trade_no", "total_amount", "subject", "product", "biz", "scope",
	"exp", "nbf", "iat", "iss", "sub", "aud", "jti"}

// looseName is a field name as a lenient decoder may match it: in any
// case, with _ and - ignored. Alipay's JSON parser is one such decoder.
func looseName(s string) string {
	return strings.Map(func(r rune) rune {
		if r == '_' || r == '-' {
			return -1
		}
		return unicode.ToLower(unicode.ToUpper(r))
	}, s)
}

// lookalike returns the name of names that name spells differently, if any.
func lookalike(name string, names []string) (string, bool) {
	loose := looseName(name)
	for _, n := range names {
		if name != n && looseName(n) == loose {
			return n, true
		}
	}
	return "", false
}

// ParseOrder checks the claims of a verified pay token.
func ParseOrder(claims map[string]json.RawMessage) (*Order, error) {
	o := &Order{Product: "page"}
	if _, ok := claims["scope"]; ok {
		// An API bearer token is no pay order, and a pay link is no place
		// for one: it would hand the buyer the shop's API.
		return nil, &ClaimError{"scope", "a pay token has no scope claim (is this an API token?)"}
	}
	for name := range claims {
		if n, ok := lookalike(name, claimNames); ok {
			return nil, &ClaimError{name, "is not a claim; write it as " + n}
		}
	}
	var err error
	if o.OutTradeNo, err = stringClaim(claims, "out_trade_no", true); err != nil {
		return nil, err
	}
	if !outTradeNoRE.MatchString(o.OutTradeNo) {
		return nil, &ClaimError{"out_trade_no", "must be 1 to 64 letters, digits or _"}
	}
	if o.TotalAmount, err = amountClaim(claims["total_amount"]); err != nil {
		return nil, err
	}
	if o.Subject, err = stringClaim(claims, "subject", true); err != nil {
		return nil, err
	}
	if n := utf8.RuneCountInString(o.Subject); n > 256 {
		return nil, &ClaimError{"subject", "longer than 256 characters"}
	}
	if strings.ContainsAny(o.Subject, "/=&") {
		return nil, &ClaimError{"subject", "must not contain /, = or & (Alipay refuses them)"}
	}
	if hasControl(o.Subject) {
		return nil, &ClaimError{"subject", "must not contain control characters"}
	}
	if _, ok := claims["product"]; ok {
		if o.Product, err = stringClaim(claims, "product", true); err != nil {
			return nil, err
		}
		if _, ok := products[o.Product]; !ok {
			return nil, &ClaimError{"product", "must be page or wap"}
		}
	}
	for _, oc := range optionalClaims {
		if _, ok := claims[oc.name]; !ok {
			continue
		}
		v, err := stringOrNumberClaim(claims, oc.name)
		if err != nil {
			return nil, err
		}
		if reason := oc.check(v); reason != "" {
			return nil, &ClaimError{oc.name, reason}
		}
		raw, _ := marshalNoEscape(v)
		o.biz = append(o.biz, bizField{oc.name, raw})
	}
	if raw, ok := claims["biz"]; ok {
		var extra map[string]json.RawMessage
		if err := json.Unmarshal(raw, &extra); err != nil || extra == nil {
			return nil, &ClaimError{"biz", "must be a JSON object"}
		}
		keys := make([]string, 0, len(extra))
		for k := range extra {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			if slices.Contains(ownBiz, k) {
				return nil, &ClaimError{"biz", fmt.Sprintf("must not set %s, which has a claim of its own", k)}
			}
			if n, ok := lookalike(k, ownBiz); ok {
				return nil, &ClaimError{"biz", fmt.Sprintf("must not set %s, a spelling of %s, which has a claim of its own", k, n)}
			}
			var compact bytes.Buffer
			if err := json.Compact(&compact, extra[k]); err != nil {
				return nil, &ClaimError{"biz", err.Error()}
			}
			o.biz = append(o.biz, bizField{k, compact.Bytes()})
		}
	}
	return o, nil
}

// Method is the OpenAPI method that starts the order's payment.
func (o *Order) Method() string { return products[o.Product].method }

// BizContent returns the order as compact JSON biz_content, with raw
// UTF-8 (no \u escapes), in a fixed field order.
func (o *Order) BizContent() []byte {
	var b bytes.Buffer
	write := func(k string, v json.RawMessage) {
		if b.Len() == 0 {
			b.WriteByte('{')
		} else {
			b.WriteByte(',')
		}
		kk, _ := marshalNoEscape(k)
		b.Write(kk)
		b.WriteByte(':')
		b.Write(v)
	}
	for _, f := range []struct{ k, v string }{
		{"out_trade_no", o.OutTradeNo},
		{"total_amount", o.TotalAmount},
		{"subject", o.Subject},
		{"product_code", products[o.Product].productCode},
	} {
		v, _ := marshalNoEscape(f.v)
		write(f.k, v)
	}
	for _, f := range o.biz {
		write(f.key, f.value)
	}
	b.WriteByte('}')
	return b.Bytes()
}

// marshalNoEscape encodes v as JSON without HTML escaping, so that & and <
// reach Alipay as themselves.
func marshalNoEscape(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
}

func stringClaim(claims map[string]json.RawMessage, name string, required bool) (string, error) {
	raw, ok := claims[name]
	if !ok || string(raw) == "null" {
		if required {
			return "", &ClaimError{name, "required"}
		}
		return "", nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", &ClaimError{name, "must be a string"}
	}
	if required && s == "" {
		return "", &ClaimError{name, "required"}
	}
	return s, nil
}

// stringOrNumberClaim accepts "30m" or 4: shops write numbers unquoted.
func stringOrNumberClaim(claims map[string]json.RawMessage, name string) (string, error) {
	raw := claims[name]
	if len(raw) > 0 && raw[0] != '"' {
		var n json.Number
		if err := json.Unmarshal(raw, &n); err != nil {
			return "", &ClaimError{name, "must be a string or a number"}
		}
		return n.String(), nil
	}
	return stringClaim(claims, name, false)
}

// amountClaim reads total_amount, a string or a number of yuan with at
// most two decimals, from 0.01 to 100000000. It is kept as written: a
// number is never passed through float64, so 0.1+0.2 problems cannot arise.
func amountClaim(raw json.RawMessage) (string, error) {
	if raw == nil {
		return "", &ClaimError{"total_amount", "required"}
	}
	var s string
	if raw[0] == '"' {
		if json.Unmarshal(raw, &s) != nil {
			return "", &ClaimError{"total_amount", "must be a string or a number"}
		}
	} else {
		s = string(bytes.TrimSpace(raw))
	}
	if !amountRE.MatchString(s) {
		return "", &ClaimError{"total_amount", "must be yuan with at most 2 decimals, like 88.80"}
	}
	whole, frac, _ := strings.Cut(s, ".")
	w, _ := strconv.ParseInt(whole, 10, 64)
	f, _ := strconv.ParseInt((frac + "00")[:2], 10, 64)
	if cents := w*100 + f; cents < 1 || cents > 100000000*100 {
		return "", &ClaimError{"total_amount", "must be from 0.01 to 100000000"}
	}
	return s, nil
}

// text checks free text: at most n characters, none of them a control
// character (which would reach the buyer's cashier page and Alipay's
// records as they are).
func text(n int) func(string) string {
	return func(s string) string {
		if utf8.RuneCountInString(s) > n {
			return fmt.Sprintf("longer than %d characters", n)
		}
		if hasControl(s) {
			return "must not contain control characters"
		}
		return ""
	}
}

func hasControl(s string) bool {
	return strings.ContainsFunc(s, unicode.IsControl)
}

// checkTimeout accepts 1m to 15d, and 1c (the end of today).
func checkTimeout(s string) string {
	if s == "1c" {
		return ""
	}
	m := timeoutRE.FindStringSubmatch(s)
	if m == nil {
		return "must be like 30m, 2h, 3d or 1c"
	}
	n, _ := strconv.Atoi(m[1])
	minutes := map[string]int{"m": 1, "h": 60, "d": 24 * 60}[m[2]] * n
	if minutes > 15*24*60 {
		return "must be at most 15d"
	}
	return ""
}

func checkTimeExpire(s string) string {
	if _, err := time.Parse(time.DateTime, s); err != nil {
		return "must be yyyy-MM-dd HH:mm:ss"
	}
	return ""
}

func checkQRPayMode(s string) string {
	if len(s) != 1 || s[0] < '0' || s[0] > '4' {
		return "must be 0 to 4"
	}
	return ""
}

func checkQRCodeWidth(s string) string {
	if n, err := strconv.Atoi(s); err != nil || n < 1 || n > 10000 {
		return "must be a width in pixels"
	}
	return ""
}
