package protocol

import (
	"crypto/rand"
	"encoding/hex"
	"strconv"
	"time"
)

// The X-Alipay-Token that the sidecar hands the shop with a verified
// callback: an HS256 JWT whose claims this file writes, and whose shape
// CallbackClaims is.

// TokenIssuer is the iss claim of every X-Alipay-Token.
const TokenIssuer = "caddy-alipay"

// TokenLifetime is how long an X-Alipay-Token is valid after it is made.
const TokenLifetime = 5 * time.Minute

// CallbackClaims are the claims of an X-Alipay-Token.
type CallbackClaims struct {
	Issuer    string `json:"iss"`
	Audience  string `json:"aud"` // the app id, or the legacy partner id
	IssuedAt  int64  `json:"iat"`
	ExpiresAt int64  `json:"exp"`
	// ID is the notification's notify_id; for a return, a random id.
	ID    string `json:"jti"`
	Event string `json:"event"` // "notify" or "return"
	// Protocol is "legacy" for the legacy protocol, absent for OpenAPI.
	Protocol string `json:"protocol,omitempty"`
	// TradeStatus is alipay.trade.query's answer, on returns with
	// query_on_return (absent when the query gave no verified answer).
	TradeStatus string `json:"trade_status,omitempty"`
	// Params are the callback's parameters that Alipay signed, but
	// sign_type, as UTF-8.
	Params map[string]string `json:"params"`
}

// SignCallback returns the X-Alipay-Token of a verified callback c with
// the claims of cc, but for Issuer and Params, which are TokenIssuer and
// c's signed parameters whatever cc holds.
//
// The JSON is written by hand, the params straight from the parsed
// callback (already sorted), because encoding/json's reflection over a map
// was a quarter of the handler's own cost per notification.
func (k *TokenKey) SignCallback(cc *CallbackClaims, c *Callback) string {
	b := make([]byte, 0, 256+2*c.size)
	b = append(b, `{"iss":"`+TokenIssuer+`","aud":`...)
	b = appendJSONString(b, cc.Audience)
	b = append(b, `,"iat":`...)
	b = strconv.AppendInt(b, cc.IssuedAt, 10)
	b = append(b, `,"exp":`...)
	b = strconv.AppendInt(b, cc.ExpiresAt, 10)
	b = append(b, `,"jti":`...)
	b = appendJSONString(b, cc.ID)
	b = append(b, `,"event":`...)
	b = appendJSONString(b, cc.Event)
	for _, f := range []struct{ name, value string }{{"protocol", cc.Protocol}, {"trade_status", cc.TradeStatus}} {
		if f.value != "" {
			b = append(b, `,"`+f.name+`":`...)
			b = appendJSONString(b, f.value)
		}
	}
	b = append(b, `,"params":`...)
	b = appendParams(b, c)
	b = append(b, '}')
	return k.SignJSON(b)
}

// appendParams appends what c.Params returns as a JSON object, keys in
// byte order, without building the map.
func appendParams(b []byte, c *Callback) []byte {
	b = append(b, '{')
	first := true
	for _, p := range c.params {
		if !c.signed(p) {
			continue
		}
		if !first {
			b = append(b, ',')
		}
		first = false
		b = appendJSONString(b, p.key)
		b = append(b, ':')
		b = appendJSONString(b, toUTF8(p.value, c.charset))
	}
	return append(b, '}')
}

// RandomID is a random 128-bit id in hex: a return's jti, and the local
// Alipay's cashier ids and notify_ids.
func RandomID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
