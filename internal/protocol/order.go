package protocol

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// A Product is an Alipay payment product that a pay token can start.
type Product struct {
	Name   string // the pay token's product claim
	Method string // the OpenAPI method
	Code   string // biz_content.product_code; "" for none
	Kind   ProductKind
}

// A ProductKind is how a product's payment starts.
type ProductKind int

const (
	// InBrowser: the buyer's browser is sent to the gateway with the
	// signed request (page and WAP pay).
	InBrowser ProductKind = iota
	// InApp: the shop's mobile app hands Alipay's app SDK a signed
	// order string (app pay).
	InApp
	// ByQRCode: the merchant asks the gateway for a QR code that the
	// buyer scans (face-to-face precreate).
	ByQRCode
)

// Products are the products that a pay token may name, the first the
// default.
var Products = []Product{
	{Name: "page", Method: "alipay.trade.page.pay", Code: "FAST_INSTANT_TRADE_PAY", Kind: InBrowser},
	{Name: "wap", Method: "alipay.trade.wap.pay", Code: "QUICK_WAP_WAY", Kind: InBrowser},
	{Name: "app", Method: "alipay.trade.app.pay", Code: "QUICK_MSECURITY_PAY", Kind: InApp},
	{Name: "qr", Method: "alipay.trade.precreate", Kind: ByQRCode},
}

// ProductOf returns the browser product that an OpenAPI method starts.
func ProductOf(method string) (Product, bool) {
	for _, p := range Products {
		if p.Method == method && p.Kind == InBrowser {
			return p, true
		}
	}
	return Product{}, false
}

// An Order is what a shop's pay token asks for, checked against Alipay's
// limits.
type Order struct {
	OutTradeNo  string
	TotalAmount string // as the shop wrote it: at most 2 decimals
	Subject     string
	Product     Product

	// Fields are the optional fields in the order they are written: the
	// named claims first, then the biz object's keys sorted. Values are
	// compact JSON.
	Fields []Field
}

// A Field is an optional field of an order.
type Field struct {
	Key   string
	Value json.RawMessage
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

// ValidOutTradeNo reports whether s is an out_trade_no that Alipay
// accepts: 1 to 64 letters, digits or _.
func ValidOutTradeNo(s string) bool { return outTradeNoRE.MatchString(s) }

// An optionalClaim is a pay token claim that a protocol copies into its
// request when present, with its check (the reason it is refused, or "").
type optionalClaim struct {
	name  string
	check func(string) string
}

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

// parseOrder checks the claims of a verified pay token, in the steps
// below: what no pay token may hold (a scope, a look-alike of a claim),
// the required claims, the product, the protocol's optional claims and,
// if withBiz, a biz object of more fields.
func parseOrder(claims map[string]json.RawMessage, optional []optionalClaim, withBiz bool) (*Order, error) {
	if err := refuseScope(claims); err != nil {
		return nil, err
	}
	if err := refuseLookalikeClaims(claims, optional); err != nil {
		return nil, err
	}
	o := &Order{}
	var err error
	if o.OutTradeNo, err = outTradeNoClaim(claims); err != nil {
		return nil, err
	}
	if o.TotalAmount, err = amountClaim(claims["total_amount"]); err != nil {
		return nil, err
	}
	if o.Subject, err = subjectClaim(claims); err != nil {
		return nil, err
	}
	if o.Product, err = productClaim(claims); err != nil {
		return nil, err
	}
	if o.Fields, err = optionalFields(claims, optional); err != nil {
		return nil, err
	}
	if raw, ok := claims["biz"]; ok && withBiz {
		biz, err := bizFields(raw, optional)
		if err != nil {
			return nil, err
		}
		o.Fields = append(o.Fields, biz...)
	}
	return o, nil
}

// refuseScope refuses a token with a scope claim: that is an API bearer
// token, which is no pay order, and a pay link is no place for one: it
// would hand the buyer the shop's API.
func refuseScope(claims map[string]json.RawMessage) error {
	if _, ok := claims["scope"]; ok {
		return &ClaimError{"scope", "a pay token has no scope claim (is this an API token?)"}
	}
	return nil
}

// refuseForeignClaims refuses the claims of the other protocol, foreign
// (each with the claim of this one that does the same, where there is
// one), with reason: a shop that moves from one protocol to the other
// hears of them rather than losing them without a word.
func refuseForeignClaims(claims map[string]json.RawMessage, foreign map[string]string, reason string) error {
	for name, instead := range foreign {
		if _, ok := claims[name]; ok {
			if instead != "" {
				reason += "; use " + instead
			}
			return &ClaimError{name, reason}
		}
	}
	return nil
}

// refuseLookalikeClaims refuses a claim whose name is a look-alike of a
// pay claim's or of one of the protocol's optional claims (it differs only
// in case, _ or -): the shop's JWT library may read it as that claim, and
// this handler would not, so the two would see different orders.
func refuseLookalikeClaims(claims map[string]json.RawMessage, optional []optionalClaim) error {
	known := withNames(payClaims, optional)
	for name := range claims {
		if n, ok := lookalike(name, known); ok {
			return &ClaimError{name, "is not a claim; write it as " + n}
		}
	}
	return nil
}

// withNames returns names followed by those of optional, in a new slice.
func withNames(names []string, optional []optionalClaim) []string {
	out := slices.Clone(names)
	for _, oc := range optional {
		out = append(out, oc.name)
	}
	return out
}

// outTradeNoClaim reads out_trade_no, the shop's order number, which is
// required and must be one that Alipay accepts (ValidOutTradeNo).
func outTradeNoClaim(claims map[string]json.RawMessage) (string, error) {
	s, err := stringClaim(claims, "out_trade_no", true)
	if err != nil {
		return "", err
	}
	if !ValidOutTradeNo(s) {
		return "", &ClaimError{"out_trade_no", "must be 1 to 64 letters, digits or _"}
	}
	return s, nil
}

// subjectClaim reads subject, the order's title, which is required: at
// most 256 characters, without /, = or &, which Alipay refuses, and
// without control characters, which would reach the buyer's cashier page
// and Alipay's records as they are.
func subjectClaim(claims map[string]json.RawMessage) (string, error) {
	s, err := stringClaim(claims, "subject", true)
	if err != nil {
		return "", err
	}
	if n := utf8.RuneCountInString(s); n > 256 {
		return "", &ClaimError{"subject", "longer than 256 characters"}
	}
	if strings.ContainsAny(s, "/=&") {
		return "", &ClaimError{"subject", "must not contain /, = or & (Alipay refuses them)"}
	}
	if hasControl(s) {
		return "", &ClaimError{"subject", "must not contain control characters"}
	}
	return s, nil
}

// productClaim reads product, the name of one of Products; without the
// claim, the first of them.
func productClaim(claims map[string]json.RawMessage) (Product, error) {
	if _, ok := claims["product"]; !ok {
		return Products[0], nil
	}
	name, err := stringClaim(claims, "product", true)
	if err != nil {
		return Product{}, err
	}
	i := slices.IndexFunc(Products, func(p Product) bool { return p.Name == name })
	if i < 0 {
		return Product{}, &ClaimError{"product", "must be page, wap, app or qr"}
	}
	return Products[i], nil
}

// optionalFields reads the protocol's optional claims that the token has,
// in the protocol's order: each a string or a number (shops write numbers
// unquoted), which its own check must pass, kept as a JSON string.
func optionalFields(claims map[string]json.RawMessage, optional []optionalClaim) ([]Field, error) {
	var fields []Field
	for _, oc := range optional {
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
		raw, _ := MarshalJSON(v)
		fields = append(fields, Field{oc.name, raw})
	}
	return fields, nil
}

// bizFields reads the biz claim, an object of the OpenAPI fields that have
// no claim of their own, into fields sorted by key, each value compact
// JSON. It refuses a key that a claim sets (reservedBiz and the optional
// claims), and any look-alike of one, which Alipay's lenient JSON parser
// may read as it: the claim and the key would be two values for one
// field of biz_content.
func bizFields(raw json.RawMessage, optional []optionalClaim) ([]Field, error) {
	var extra map[string]json.RawMessage
	if err := json.Unmarshal(raw, &extra); err != nil || extra == nil {
		return nil, &ClaimError{"biz", "must be a JSON object"}
	}
	own := withNames(reservedBiz, optional)
	var fields []Field
	for _, k := range slices.Sorted(maps.Keys(extra)) {
		if slices.Contains(own, k) {
			return nil, &ClaimError{"biz", fmt.Sprintf("must not set %s, which has a claim of its own", k)}
		}
		if n, ok := lookalike(k, own); ok {
			return nil, &ClaimError{"biz", fmt.Sprintf("must not set %s, a spelling of %s, which has a claim of its own", k, n)}
		}
		var compact bytes.Buffer
		if err := json.Compact(&compact, extra[k]); err != nil {
			return nil, &ClaimError{"biz", err.Error()}
		}
		fields = append(fields, Field{k, compact.Bytes()})
	}
	return fields, nil
}

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
		kk, _ := MarshalJSON(k)
		b.Write(kk)
		b.WriteByte(':')
		b.Write(v)
	}
	for _, f := range []struct{ k, v string }{
		{"out_trade_no", o.OutTradeNo},
		{"total_amount", o.TotalAmount},
		{"subject", o.Subject},
		{"product_code", o.Product.Code},
	} {
		if f.v == "" {
			continue // precreate has no product_code
		}
		v, _ := MarshalJSON(f.v)
		write(f.k, v)
	}
	for _, f := range o.Fields {
		write(f.Key, f.Value)
	}
	b.WriteByte('}')
	return b.Bytes()
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
	if _, err := ParseAmount(s); err != nil {
		return "", &ClaimError{"total_amount", err.Error()}
	}
	return s, nil
}

// An Amount is a sum of money in fen, hundredths of a yuan.
type Amount int64

// MaxAmount is the largest amount of one trade: 100000000 yuan.
const MaxAmount Amount = 100000000 * 100

// ParseAmount reads yuan as Alipay writes them: digits with at most two
// decimals, from 0.01 to 100000000.
func ParseAmount(s string) (Amount, error) {
	if !amountRE.MatchString(s) {
		return 0, errors.New("must be yuan with at most 2 decimals, like 88.80")
	}
	whole, frac, _ := strings.Cut(s, ".")
	w, _ := strconv.ParseInt(whole, 10, 64)
	f, _ := strconv.ParseInt((frac + "00")[:2], 10, 64)
	a := Amount(w*100 + f)
	if a < 1 || a > MaxAmount {
		return 0, errors.New("must be from 0.01 to 100000000")
	}
	return a, nil
}

// String writes a as yuan with two decimals, as Alipay does: 88.80.
func (a Amount) String() string {
	return strconv.FormatInt(int64(a)/100, 10) + "." + strconv.FormatInt(int64(a)%100/10, 10) + strconv.FormatInt(int64(a)%10, 10)
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

// oneOf checks a claim that takes one of a fixed set of values.
func oneOf(values ...string) func(string) string {
	return func(s string) string {
		if slices.Contains(values, s) {
			return ""
		}
		return "must be one of " + strings.Join(values, ", ")
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
