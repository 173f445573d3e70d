// Package shoptoken makes caddy-alipay pay tokens and checks its X-Alipay-Token.
package shoptoken

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"time"
)

// Order is what a pay token asks for.
type Order struct {
	OutTradeNo  string `json:"out_trade_no"`
	TotalAmount string `json:"total_amount"` // yuan, like "88.80"
	Subject     string `json:"subject"`
	Product     string `json:"product,omitempty"` // "page" (default), "wap", "app" or "qr"
	Exp         int64  `json:"exp"`               // set by MakePayToken
}

// Claims are what a verified X-Alipay-Token says.
type Claims struct {
	Iss    string            `json:"iss"`
	Aud    string            `json:"aud"`
	Iat    int64             `json:"iat"`
	Exp    int64             `json:"exp"`
	Jti    string            `json:"jti"`
	Event  string            `json:"event"` // "notify" or "return"
	Params map[string]string `json:"params"`
}

var b64 = base64.RawURLEncoding

func mac(secret, input string) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(input))
	return b64.EncodeToString(m.Sum(nil))
}

// MakePayToken signs o with the secret shared with Caddy, valid for ttl.
func MakePayToken(o Order, secret string, ttl time.Duration) string {
	o.Exp = time.Now().Add(ttl).Unix()
	body, _ := json.Marshal(o)
	s := b64.EncodeToString([]byte(`{"alg":"HS256","typ":"JWT"}`)) + "." + b64.EncodeToString(body)
	return s + "." + mac(secret, s)
}

// PayURL is the link that starts the payment: send the buyer's browser there.
func PayURL(o Order, secret string) string {
	return "/alipay/pay?token=" + MakePayToken(o, secret, 5*time.Minute)
}

// VerifyAlipayToken checks an X-Alipay-Token (r.Header.Get("X-Alipay-Token")) and returns its claims.
func VerifyAlipayToken(token, secret, appID string) (*Claims, error) {
	p := strings.Split(token, ".")
	if len(p) != 3 || !hmac.Equal([]byte(p[2]), []byte(mac(secret, p[0]+"."+p[1]))) {
		return nil, errors.New("bad signature")
	}
	var h struct {
		Alg string `json:"alg"`
	}
	var c Claims
	hj, _ := b64.DecodeString(p[0])
	cj, _ := b64.DecodeString(p[1])
	if json.Unmarshal(hj, &h) != nil || h.Alg != "HS256" {
		return nil, errors.New("alg is not HS256")
	}
	if json.Unmarshal(cj, &c) != nil || c.Iss != "caddy-alipay" || c.Aud != appID {
		return nil, errors.New("not for this app")
	}
	if time.Now().Unix() >= c.Exp+60 { // 60 s of leeway for clock skew
		return nil, errors.New("expired")
	}
	return &c, nil
}
