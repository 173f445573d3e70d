package alipay

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var tokenNow = time.Unix(1716182055, 0)

// rawToken builds a token by hand, so tests can make any header.
func rawToken(secret, header, payload string) string {
	enc := base64.RawURLEncoding
	in := enc.EncodeToString([]byte(header)) + "." + enc.EncodeToString([]byte(payload))
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(in))
	return in + "." + enc.EncodeToString(m.Sum(nil))
}

func TestTokenRoundTrip(t *testing.T) {
	k, err := NewTokenKey(testSecret)
	require.NoError(t, err)
	tok, err := k.Sign(map[string]any{"exp": tokenNow.Unix() + 60, "subject": "a&b<c>"})
	require.NoError(t, err)
	assert.True(t, strings.HasPrefix(tok, "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9."), "the fixed header of SPEC 6")
	claims, err := k.Parse(tok, tokenNow)
	require.NoError(t, err)
	assert.JSONEq(t, `"a&b<c>"`, string(claims["subject"]))

	// Another secret of the same length does not verify it.
	other, err := NewTokenKey(strings.Repeat("x", MinSecretLen))
	require.NoError(t, err)
	_, err = other.Parse(tok, tokenNow)
	assert.ErrorIs(t, err, ErrTokenInvalid)
}

func TestTokenKeyShortSecret(t *testing.T) {
	_, err := NewTokenKey(strings.Repeat("x", MinSecretLen-1))
	assert.Error(t, err)
}

func TestTokenRefused(t *testing.T) {
	k, err := NewTokenKey(testSecret)
	require.NoError(t, err)
	const hs = `{"alg":"HS256","typ":"JWT"}`
	good := `{"exp":1716182115}`
	valid := rawToken(testSecret, hs, good)
	parts := strings.Split(valid, ".")
	enc := base64.RawURLEncoding
	cases := map[string]struct {
		token string
		err   error
	}{
		"alg none":            {enc.EncodeToString([]byte(`{"alg":"none"}`)) + "." + parts[1] + ".", ErrTokenInvalid},
		"alg HS512":           {rawToken(testSecret, `{"alg":"HS512"}`, good), ErrTokenInvalid},
		"alg hs256":           {rawToken(testSecret, `{"alg":"hs256"}`, good), ErrTokenInvalid},
		"alg RS256":           {rawToken(testSecret, `{"alg":"RS256"}`, good), ErrTokenInvalid},
		"typ other":           {rawToken(testSecret, `{"alg":"HS256","typ":"at+jwt"}`, good), ErrTokenInvalid},
		"crit":                {rawToken(testSecret, `{"alg":"HS256","crit":["exp"]}`, good), ErrTokenInvalid},
		"wrong secret":        {rawToken(strings.Repeat("y", 40), hs, good), ErrTokenInvalid},
		"tampered payload":    {parts[0] + "." + enc.EncodeToString([]byte(`{"exp":1716182999}`)) + "." + parts[2], ErrTokenInvalid},
		"truncated signature": {valid[:len(valid)-2], ErrTokenInvalid},
		"padded signature":    {valid + "=", ErrTokenInvalid},
		"two parts":           {parts[0] + "." + parts[1], ErrTokenInvalid},
		"four parts":          {valid + ".x", ErrTokenInvalid},
		"empty":               {"", ErrTokenInvalid},
		"expired":             {rawToken(testSecret, hs, `{"exp":1716182055}`), ErrTokenExpired},
		"no exp":              {rawToken(testSecret, hs, `{"sub":"x"}`), ErrTokenInvalid},
		"exp as string":       {rawToken(testSecret, hs, `{"exp":"1716182115"}`), ErrTokenInvalid},
		"exp huge":            {rawToken(testSecret, hs, `{"exp":1e300}`), ErrTokenInvalid},
		"nbf in future":       {rawToken(testSecret, hs, `{"exp":1716182115,"nbf":1716182100}`), ErrTokenInvalid},
		"claims not object":   {rawToken(testSecret, hs, `[1]`), ErrTokenInvalid},
		// Decoders disagree on these: the shop's may read another value.
		"ALG":                 {rawToken(testSecret, `{"ALG":"HS256","typ":"JWT"}`, good), ErrTokenInvalid},
		"Alg and alg":         {rawToken(testSecret, `{"Alg":"none","alg":"HS256"}`, good), ErrTokenInvalid},
		"alg twice":           {rawToken(testSecret, `{"alg":"none","alg":"HS256"}`, good), ErrTokenInvalid},
		"typ twice":           {rawToken(testSecret, `{"alg":"HS256","typ":"JWT","typ":"JWT"}`, good), ErrTokenInvalid},
		"Typ":                 {rawToken(testSecret, `{"alg":"HS256","Typ":"JWT"}`, good), ErrTokenInvalid},
		"exp twice":           {rawToken(testSecret, hs, `{"exp":1,"exp":1716182115}`), ErrTokenInvalid},
		"EXP":                 {rawToken(testSecret, hs, `{"EXP":1716182115}`), ErrTokenInvalid},
		"Exp and exp":         {rawToken(testSecret, hs, `{"exp":1716182115,"Exp":1}`), ErrTokenInvalid},
		"claim twice":         {rawToken(testSecret, hs, `{"exp":1716182115,"total_amount":"1.00","total_amount":"0.01"}`), ErrTokenInvalid},
		"claim in two cases":  {rawToken(testSecret, hs, `{"exp":1716182115,"total_amount":"1.00","TOTAL_AMOUNT":"0.01"}`), ErrTokenInvalid},
		"long s folds":        {rawToken(testSecret, hs, `{"exp":1716182115,"scope":"api","ſcope":"x"}`), ErrTokenInvalid},
		"nested name twice":   {rawToken(testSecret, hs, `{"exp":1716182115,"biz":{"a":{"b":1,"B":2}}}`), ErrTokenInvalid},
		"name twice in array": {rawToken(testSecret, hs, `{"exp":1716182115,"biz":{"a":[{"b":1,"b":2}]}}`), ErrTokenInvalid},
		"trailing data":       {rawToken(testSecret, hs, `{"exp":1716182115} {}`), ErrTokenInvalid},
		"claims null":         {rawToken(testSecret, hs, `null`), ErrTokenInvalid},
		"too long":            {rawToken(testSecret, hs, `{"exp":1716182115,"p":"`+strings.Repeat("a", maxTokenLen)+`"}`), ErrTokenInvalid},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := k.Parse(c.token, tokenNow)
			assert.ErrorIs(t, err, c.err)
		})
	}
	_, err = k.Parse(valid, tokenNow)
	assert.NoError(t, err, "the valid token the cases are made from")
	_, err = k.Parse(rawToken(testSecret, `{"alg":"HS256"}`, `{"exp":1716182115.5,"nbf":1716182000}`), tokenNow)
	assert.NoError(t, err, "typ is optional, exp may have a fraction, nbf in the past")
}

func TestCallbackTokenClaims(t *testing.T) {
	fixClock(t, tokenNow)
	h := newTestHandler(t, nil)
	cb, err := ParseCallback("subject=%E6%B5%8B%E8%AF%95+%22%5C%0A%3C%26&total_amount=88.88&sign=x&sign_type=RSA2")
	require.NoError(t, err)
	tok := h.callbackToken(eventNotify, "nid-1", cb, "")
	parts := strings.Split(tok, ".")
	require.Len(t, parts, 3)
	header, err := base64.RawURLEncoding.DecodeString(parts[0])
	require.NoError(t, err)
	assert.Equal(t, `{"alg":"HS256","typ":"JWT"}`, string(header))
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	require.NoError(t, err)
	var c map[string]any
	require.NoError(t, json.Unmarshal(payload, &c))
	assert.Equal(t, map[string]any{
		"iss": "caddy-alipay", "aud": testAppID, "iat": float64(tokenNow.Unix()), "exp": float64(tokenNow.Unix() + 300),
		"jti": "nid-1", "event": "notify", "params": map[string]any{"subject": "测试 \"\\\n<&", "total_amount": "88.88"},
	}, c)
	var typed CallbackClaims
	require.NoError(t, json.Unmarshal(payload, &typed))
	assert.Equal(t, CallbackClaims{Issuer: TokenIssuer, Audience: testAppID, IssuedAt: tokenNow.Unix(), ExpiresAt: tokenNow.Unix() + 300,
		ID: "nid-1", Event: "notify", Params: cb.Params()}, typed)
	_, err = h.tokens.Parse(tok, tokenNow)
	assert.NoError(t, err)
}

// Whatever the bytes, appendJSONString writes JSON that decodes back to the
// same text (invalid UTF-8 as U+FFFD, as encoding/json would).
func TestAppendJSONString(t *testing.T) {
	for _, in := range []string{"", "plain", `q"b\s`, "新\n\r\t\x00\x1f", "<&>", "bad \xff\xfe end", "\xe4\xb8", "ok\u2028"} {
		var got string
		out := appendJSONString(nil, in)
		assert.True(t, utf8.Valid(out), "PHP's json_decode refuses invalid UTF-8: %q", out)
		require.NoError(t, json.Unmarshal(out, &got), "%q", in)
		want, _ := json.Marshal(in)
		var wantStr string
		require.NoError(t, json.Unmarshal(want, &wantStr))
		assert.Equal(t, wantStr, got, "%q", in)
	}
}

func FuzzAppendJSONString(f *testing.F) {
	f.Add("a\"\\\x00\xff新")
	f.Fuzz(func(t *testing.T, in string) {
		var got string
		out := appendJSONString(nil, in)
		if !utf8.Valid(out) {
			t.Fatalf("%q: output not UTF-8: %q", in, out)
		}
		if err := json.Unmarshal(out, &got); err != nil {
			t.Fatalf("%q: %v", in, err)
		}
		want, _ := json.Marshal(in)
		var wantStr string
		_ = json.Unmarshal(want, &wantStr)
		if got != wantStr {
			t.Fatalf("%q: got %q want %q", in, got, wantStr)
		}
	})
}
