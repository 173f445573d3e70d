package protocol

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"maps"
	"net/url"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/caddy-alipay/caddy-alipay/internal/testvec"
)

// FuzzCallback feeds arbitrary form strings to the callback parser and
// verifier: no panic, no forged acceptance, and only valid UTF-8 out.
func FuzzCallback(f *testing.F) {
	vec := testvec.Load(f)
	for _, c := range vec.Notify.Cases {
		f.Add(c.PostBody)
	}
	u, err := url.Parse(vec.Return.RedirectURL)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(u.RawQuery)
	for _, s := range []string{"", "&", "=", "a=%", "a=%zz", "sign=&sign_type=RSA2", "a=1&a=2", "%00=1",
		"charset=gbk&subject=%B2%E2&sign=AAAA", "charset=gb18030&x=%81%30%81%30&sign=" + strings.Repeat("A", 344)} {
		f.Add(s)
	}
	v := testVerifier(f, "alipay_public_key.pem", SignTypeRSA2)
	valid := make(map[string]bool)
	for _, c := range vec.Notify.Cases {
		valid[c.PostBody] = true
	}
	valid[u.RawQuery] = true
	f.Fuzz(func(t *testing.T, raw string) {
		cb, err := parseCallback(raw)
		if err != nil {
			return
		}
		if verifyOpenAPISign(cb, v) == nil && !valid[raw] {
			// Only a reordering or re-encoding of a signed callback may
			// verify: the same parameters, byte for byte.
			same := false
			for body := range valid {
				orig, err := parseCallback(body)
				if err == nil && sameParams(orig, cb) {
					same = true
				}
			}
			if !same {
				t.Fatalf("forged callback verified: %q", raw)
			}
		}
		params := cb.Params()
		for k, val := range params {
			if !utf8.ValidString(val) {
				t.Fatalf("parameter %s is not UTF-8: %q", k, val)
			}
		}
		var fromJSON map[string]string
		if err := json.Unmarshal(appendParams(nil, cb), &fromJSON); err != nil {
			t.Fatalf("params JSON: %v: %s", err, appendParams(nil, cb))
		}
		if !maps.Equal(params, fromJSON) {
			t.Fatalf("params JSON %s differs from %v", appendParams(nil, cb), params)
		}
	})
}

// sameParams reports whether two callbacks have the same parameters, with
// sign_type and empty values not counted (the accepted forms differ there).
func sameParams(a, b *Callback) bool {
	return string(a.content(nil, signedV1NoEmpty)) == string(b.content(nil, signedV1NoEmpty))
}

// FuzzToken feeds arbitrary strings to the token parser: no panic, and
// nothing accepted but the canonical encoding of a correctly MACed token.
func FuzzToken(f *testing.F) {
	k, err := NewTokenKey(testvec.Secret)
	if err != nil {
		f.Fatal(err)
	}
	good, err := k.Sign(map[string]any{"exp": tokenNow.Unix() + 60, "out_trade_no": "A1"})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add(rawToken(testvec.Secret, `{"alg":"none"}`, `{"exp":9999999999}`))
	f.Add(rawToken(testvec.Secret, `{"alg":"HS256","typ":"JWT"}`, `{"exp":1716182115.5,"nbf":1}`))
	f.Add(rawToken(testvec.Secret, `{"alg":"HS256"}`, `{"exp":"1716182115"}`))
	f.Add("..")
	f.Add("a.b.c")
	f.Fuzz(func(t *testing.T, token string) {
		claims, err := k.Parse(token, tokenNow)
		if err != nil {
			return
		}
		parts := strings.Split(token, ".")
		m := hmac.New(sha256.New, k.secret)
		m.Write([]byte(parts[0] + "." + parts[1]))
		if parts[2] != base64.RawURLEncoding.EncodeToString(m.Sum(nil)) {
			t.Fatalf("accepted a token whose signature is not the canonical MAC: %q", token)
		}
		if _, ok := claims["exp"]; !ok {
			t.Fatalf("accepted a token without exp: %q", token)
		}
	})
}

// FuzzOrder feeds arbitrary claims to the order parser: an accepted order
// always gives valid JSON biz_content with the claims' own values.
func FuzzOrder(f *testing.F) {
	f.Add(`{"out_trade_no":"A1","total_amount":"88.80","subject":"测试","biz":{"quit_url":"https://x"}}`)
	f.Add(`{"out_trade_no":"A1","total_amount":1,"subject":"s","product":"wap","qr_pay_mode":4,"timeout_express":"15d"}`)
	f.Add(`{"out_trade_no":"A1","total_amount":"1e2","subject":"s"}`)
	f.Fuzz(func(t *testing.T, claimsJSON string) {
		var claims map[string]json.RawMessage
		if json.Unmarshal([]byte(claimsJSON), &claims) != nil {
			return
		}
		o, err := parseOpenAPIOrder(claims)
		if err != nil {
			return
		}
		var biz map[string]any
		if err := json.Unmarshal(o.BizContent(), &biz); err != nil {
			t.Fatalf("biz_content is not JSON: %v: %s", err, o.BizContent())
		}
		if biz["out_trade_no"] != o.OutTradeNo || biz["total_amount"] != o.TotalAmount || biz["subject"] != o.Subject {
			t.Fatalf("biz_content does not carry the order: %s", o.BizContent())
		}
	})
}

// FuzzResponse feeds arbitrary bodies to the OpenAPI response parser: no
// panic, and nothing verifies but the signed text itself.
func FuzzResponse(f *testing.F) {
	cases := testvec.Load(f).Responses.Cases
	signed := map[string]bool{}
	for _, c := range cases {
		f.Add(c.RawBody)
		signed[c.SignedSubstring] = true
	}
	f.Add(`{"error_response":{"code":"40002"}}`)
	f.Add(`{"alipay_trade_query_response":{},"alipay_trade_query_response":{}}`)
	v := testVerifier(f, "alipay_public_key.pem", SignTypeRSA2)
	f.Fuzz(func(t *testing.T, body string) {
		r, err := ParseResponse([]byte(body), "alipay.trade.query")
		if err != nil {
			return
		}
		if r.Verify(v) == nil && !signed[string(r.Raw)] && !signed[strings.ReplaceAll(string(r.Raw), `\/`, "/")] {
			t.Fatalf("an unsigned response verified: %q", body)
		}
	})
}

// FuzzLegacyCallback feeds arbitrary form strings to the legacy callback
// parser and MD5 verifier, as a utf-8 and a gbk partner read them: no
// panic, no forged acceptance, only valid UTF-8 out.
func FuzzLegacyCallback(f *testing.F) {
	v := testvec.LoadLegacy(f)
	valid := map[string]bool{}
	for _, c := range v.Cases {
		switch c.Kind {
		case "notify":
			f.Add(c.PostBody)
			valid[c.PostBody] = true
		case "return":
			f.Add(c.Query)
			valid[c.Query] = true
		}
	}
	for _, s := range []string{"", "sign_type=MD5", "sign=&sign_type=MD5", "a=%B2%E2&sign_type=MD5&sign=" + strings.Repeat("0", 32),
		"seller_id=2088000000000001&sign_type=RSA&sign=" + strings.Repeat("A", 172)} {
		f.Add(s)
	}
	key, err := NewMD5Key(v.MD5Key)
	if err != nil {
		f.Fatal(err)
	}
	partners := []*Legacy{
		{Partner: v.Partner, SellerID: v.Partner, Charset: "utf-8", Signer: key, Verifier: key},
		{Partner: v.Partner, SellerID: v.Partner, Charset: "gbk", Signer: key, Verifier: key},
	}
	f.Fuzz(func(t *testing.T, raw string) {
		for _, p := range partners {
			cb, err := p.ParseCallback(raw)
			if err != nil {
				return
			}
			if p.VerifyCallback(context.Background(), cb, EventNotify) == nil && !valid[raw] {
				// Only a reordering or re-encoding of a signed callback may
				// verify: the same parameters, byte for byte.
				same := false
				for body := range valid {
					orig, err := p.ParseCallback(body)
					if err == nil && sameParams(orig, cb) {
						same = true
					}
				}
				if !same {
					t.Fatalf("forged callback verified: %q", raw)
				}
			}
			for k, val := range cb.Params() {
				if !utf8.ValidString(val) {
					t.Fatalf("parameter %s is not UTF-8: %q", k, val)
				}
			}
		}
	})
}
