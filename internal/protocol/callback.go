package protocol

import (
	"errors"
	"fmt"
	"slices"
	"strings"
)

// A Callback is a notification (the form body of the POST to notify_url)
// or a return (the query of the GET to return_url), parsed exactly once
// and kept as the bytes that Alipay signed.
type Callback struct {
	params  []param // sorted by key, no duplicates
	charset string  // canonical: utf-8, gbk or gb18030
	size    int     // bytes of the raw form, a bound for what is derived from it
	// amountKey names the field of the amount: total_amount, or the
	// legacy protocol's total_fee.
	amountKey string
	// emptySigned: the string that verified kept the empty values, so
	// they are Alipay's too. Until then, and when it left them out, they
	// are not passed on: anyone can append "&anything=" to a callback.
	emptySigned bool
}

type param struct {
	key   string
	value []byte // form-decoded once; bytes in the callback's charset
}

// MaxCallbackSize bounds a callback: the notify body and the return query.
// Real notifications are about 2 KiB; 64 KiB leaves room for long
// fund_bill_list and passback_params values.
const MaxCallbackSize = 64 << 10

// ParseForm parses raw, an application/x-www-form-urlencoded string,
// strictly: every escape must be valid, a key may appear once only, and
// keys are printable ASCII without spaces. The values stay bytes, decoded
// from their escapes once, in whatever charset they were sent; setCharset
// names it.
func ParseForm(raw string) (*Callback, error) {
	if len(raw) > MaxCallbackSize {
		return nil, fmt.Errorf("%w: larger than %d bytes", ErrMalformed, MaxCallbackSize)
	}
	c := &Callback{params: make([]param, 0, 32), size: len(raw), charset: "utf-8"}
	// Decoding never grows a field, so every value fits in one arena the
	// size of raw, sliced rather than allocated field by field.
	arena := make([]byte, 0, len(raw))
	for raw != "" {
		var field string
		field, raw, _ = strings.Cut(raw, "&")
		if field == "" {
			continue
		}
		k, v, _ := strings.Cut(field, "=")
		start := len(arena)
		var err error
		if arena, err = appendFormUnescaped(arena, k); err != nil {
			return nil, fmt.Errorf("%w: parameter name: %v", ErrMalformed, err)
		}
		key := arena[start:]
		if !validKey(key) {
			return nil, fmt.Errorf("%w: invalid parameter name %q", ErrMalformed, key)
		}
		name := string(key)
		arena = arena[:start]
		if arena, err = appendFormUnescaped(arena, v); err != nil {
			return nil, fmt.Errorf("%w: parameter %s: %v", ErrMalformed, name, err)
		}
		c.params = append(c.params, param{key: name, value: arena[start:len(arena):len(arena)]})
	}
	if len(c.params) == 0 {
		return nil, fmt.Errorf("%w: no parameters", ErrMalformed)
	}
	slices.SortFunc(c.params, func(a, b param) int { return strings.Compare(a.key, b.key) })
	for i := 1; i < len(c.params); i++ {
		if c.params[i].key == c.params[i-1].key {
			return nil, fmt.Errorf("%w: parameter %s appears more than once", ErrMalformed, c.params[i].key)
		}
	}
	return c, nil
}

// setCharset names the charset of the values: one that Alipay uses.
func (c *Callback) setCharset(cs string) error {
	switch strings.ToLower(cs) {
	case "", "utf-8", "utf8":
		c.charset = "utf-8"
	case "gbk", "gb2312":
		c.charset = "gbk"
	case "gb18030":
		c.charset = "gb18030"
	default:
		return fmt.Errorf("%w: unsupported charset %q", ErrMalformed, cs)
	}
	return nil
}

// validKey accepts the names Alipay uses (and any printable ASCII, so that
// an unknown field still verifies); it refuses spaces, control and
// non-ASCII bytes.
func validKey(k []byte) bool {
	if len(k) == 0 {
		return false
	}
	for _, c := range k {
		if c <= ' ' || c >= 0x7f {
			return false
		}
	}
	return true
}

// formUnescape decodes one form field as url.QueryUnescape does: '+' is a
// space, %XX is the byte XX, a bad escape is an error. ParseForm decodes
// every field of a callback into one buffer with appendFormUnescaped.
func formUnescape(s string) ([]byte, error) {
	return appendFormUnescaped(nil, s)
}

// appendFormUnescaped appends the decoded form field s to out; on a bad
// escape it returns out unchanged and an error.
func appendFormUnescaped(out []byte, s string) ([]byte, error) {
	for i := 0; i < len(s); i++ {
		if s[i] == '%' {
			if i+2 >= len(s) || !isHex(s[i+1]) || !isHex(s[i+2]) {
				return out, errors.New("invalid percent escape")
			}
			i += 2
		}
	}
	if out == nil {
		out = make([]byte, 0, len(s))
	}
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '+':
			out = append(out, ' ')
		case '%':
			out = append(out, unhex(s[i+1])<<4|unhex(s[i+2]))
			i += 2
		default:
			out = append(out, c)
		}
	}
	return out, nil
}

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case c >= '0' && c <= '9':
		return c - '0'
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10
	default:
		return c - 'A' + 10
	}
}

// Get returns the raw value of key ("" if absent). Use it for ASCII fields
// (ids, amounts, statuses); Params gives every value as UTF-8.
func (c *Callback) Get(key string) string {
	if p := c.find(key); p != nil {
		return string(p.value)
	}
	return ""
}

func (c *Callback) find(key string) *param {
	i, ok := slices.BinarySearchFunc(c.params, key, func(p param, k string) int { return strings.Compare(p.key, k) })
	if !ok {
		return nil
	}
	return &c.params[i]
}

// Charset is the callback's charset: utf-8, gbk or gb18030.
func (c *Callback) Charset() string { return c.charset }

// Amount is the callback's amount field, as sent.
func (c *Callback) Amount() string { return c.Get(c.amountKey) }

// A signedString is one of the forms of a callback's string to sign: its
// parameters sorted by name and joined as k=v&k=v with the values as sent,
// sign always left out, sign_type and the empty values kept or not.
type signedString struct {
	withSignType, withEmpty bool
}

// The forms that Alipay signs callbacks with; each protocol's
// VerifyCallback names those it accepts.
var (
	// signedV1, "V1", leaves sign_type out and keeps empty values: the
	// string of OpenAPI trade notifications (notify_url) and returns
	// (return_url), as the Node.js SDK's checkNotifySign checks them.
	signedV1 = signedString{withSignType: false, withEmpty: true}
	// signedV1NoEmpty is V1 with the empty values left out too: V1 as
	// current Java and Go SDKs compute it, and the only string of the
	// legacy protocol's notifications and returns (as LegacyContent).
	signedV1NoEmpty = signedString{withSignType: false, withEmpty: false}
	// signedV2, "V2", keeps sign_type and empty values: the string of the
	// OpenAPI callbacks that Alipay signs with sign_type in it, as the
	// Node.js SDK's checkNotifySignV2 checks them.
	signedV2 = signedString{withSignType: true, withEmpty: true}
)

// verifySign checks Alipay's signature with v over the first of forms that
// holds. Each form is one that Alipay signs, so that trying several adds
// no way to forge. A form with sign_type is tried only when the callback
// has one; a form without empty values is skipped when the callback has
// none and forms hold its twin with them, the same string.
func (c *Callback) verifySign(v Verifier, forms ...signedString) error {
	sign := c.find("sign")
	if sign == nil || len(sign.value) == 0 {
		return ErrMissingSign
	}
	hasEmpty := slices.ContainsFunc(c.params, func(p param) bool { return len(p.value) == 0 })
	signStr := string(sign.value)
	buf := make([]byte, 0, c.size)
	for _, f := range forms {
		if f.withSignType && c.find("sign_type") == nil {
			continue
		}
		if !f.withEmpty && !hasEmpty && slices.Contains(forms, signedString{withSignType: f.withSignType, withEmpty: true}) {
			continue // the same string as the form with empty values
		}
		buf = c.content(buf[:0], f)
		if v.Verify(buf, signStr) == nil {
			c.emptySigned = f.withEmpty && hasEmpty
			return nil
		}
	}
	return ErrBadSignature
}

// content appends the string to sign of form f to b: sorted key=value
// pairs joined by '&', without sign, with sign_type only if
// f.withSignType, and with empty values only if f.withEmpty.
func (c *Callback) content(b []byte, f signedString) []byte {
	first := true
	for _, p := range c.params {
		if p.key == "sign" || (p.key == "sign_type" && !f.withSignType) || (len(p.value) == 0 && !f.withEmpty) {
			continue
		}
		if !first {
			b = append(b, '&')
		}
		first = false
		b = append(b, p.key...)
		b = append(b, '=')
		b = append(b, p.value...)
	}
	return b
}

// Params returns the parameters that Alipay signed, sign_type left out,
// converted from the callback's charset to UTF-8. Call it after the
// protocol's VerifyCallback: conversion comes only once the signature
// holds over the bytes as sent, and empty values count as signed only once
// a string with them verified. Bytes that are not valid in the charset
// become U+FFFD.
func (c *Callback) Params() map[string]string {
	m := make(map[string]string, len(c.params))
	for _, p := range c.params {
		if c.signed(p) {
			m[p.key] = toUTF8(p.value, c.charset)
		}
	}
	return m
}

// signed reports whether p is one of the parameters that Params returns.
func (c *Callback) signed(p param) bool {
	return p.key != "sign" && p.key != "sign_type" && (len(p.value) > 0 || c.emptySigned)
}
