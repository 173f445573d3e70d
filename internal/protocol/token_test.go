package protocol

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/caddy-alipay/caddy-alipay/internal/testvec"
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
	k, err := NewTokenKey(testvec.Secret)
	require.NoError(t, err)
	tok, err := k.Sign(map[string]any{"exp": tokenNow.Unix() + 60, "subject": "a&b<c>"})
	require.NoError(t, err)
	assert.True(t, strings.HasPrefix(tok, "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9."), "the fixed header of every token")
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
	k, err := NewTokenKey(testvec.Secret)
	require.NoError(t, err)
	const hs = `{"alg":"HS256","typ":"JWT"}`
	good := `{"exp":1716182115}`
	valid := rawToken(testvec.Secret, hs, good)
	parts := strings.Split(valid, ".")
	enc := base64.RawURLEncoding
	cases := map[string]struct {
		token string
		err   error
	}{
		"alg none":            {enc.EncodeToString([]byte(`{"alg":"none"}`)) + "." + parts[1] + ".", ErrTokenInvalid},
		"alg HS512":           {rawToken(testvec.Secret, `{"alg":"HS512"}`, good), ErrTokenInvalid},
		"alg hs256":           {rawToken(testvec.Secret, `{"alg":"hs256"}`, good), ErrTokenInvalid},
		"alg RS256":           {rawToken(testvec.Secret, `{"alg":"RS256"}`, good), ErrTokenInvalid},
		"typ other":           {rawToken(testvec.Secret, `{"alg":"HS256","typ":"at+jwt"}`, good), ErrTokenInvalid},
		"crit":                {rawToken(testvec.Secret, `{"alg":"HS256","crit":["exp"]}`, good), ErrTokenInvalid},
		"wrong secret":        {rawToken(strings.Repeat("y", 40), hs, good), ErrTokenInvalid},
		"tampered payload":    {parts[0] + "." + enc.EncodeToString([]byte(`{"exp":1716182999}`)) + "." + parts[2], ErrTokenInvalid},
		"truncated signature": {valid[:len(valid)-2], ErrTokenInvalid},
		"padded signature":    {valid + "=", ErrTokenInvalid},
		// Go's base64 decoder skips \r and \n: one token, many spellings.
		"CR in signature":   {parts[0] + "." + parts[1] + "." + parts[2][:5] + "\r" + parts[2][5:], ErrTokenInvalid},
		"LF in signature":   {parts[0] + "." + parts[1] + "." + parts[2][:5] + "\n" + parts[2][5:], ErrTokenInvalid},
		"CR in header":      {parts[0][:5] + "\r" + parts[0][5:] + "." + parts[1] + "." + parts[2], ErrTokenInvalid},
		"two parts":         {parts[0] + "." + parts[1], ErrTokenInvalid},
		"four parts":        {valid + ".x", ErrTokenInvalid},
		"empty":             {"", ErrTokenInvalid},
		"expired":           {rawToken(testvec.Secret, hs, `{"exp":1716182055}`), ErrTokenExpired},
		"no exp":            {rawToken(testvec.Secret, hs, `{"sub":"x"}`), ErrTokenInvalid},
		"exp as string":     {rawToken(testvec.Secret, hs, `{"exp":"1716182115"}`), ErrTokenInvalid},
		"exp huge":          {rawToken(testvec.Secret, hs, `{"exp":1e300}`), ErrTokenInvalid},
		"nbf in future":     {rawToken(testvec.Secret, hs, `{"exp":1716182115,"nbf":1716182100}`), ErrTokenInvalid},
		"claims not object": {rawToken(testvec.Secret, hs, `[1]`), ErrTokenInvalid},
		// Decoders disagree on these: the shop's may read another value.
		"ALG":                 {rawToken(testvec.Secret, `{"ALG":"HS256","typ":"JWT"}`, good), ErrTokenInvalid},
		"Alg and alg":         {rawToken(testvec.Secret, `{"Alg":"none","alg":"HS256"}`, good), ErrTokenInvalid},
		"alg twice":           {rawToken(testvec.Secret, `{"alg":"none","alg":"HS256"}`, good), ErrTokenInvalid},
		"typ twice":           {rawToken(testvec.Secret, `{"alg":"HS256","typ":"JWT","typ":"JWT"}`, good), ErrTokenInvalid},
		"Typ":                 {rawToken(testvec.Secret, `{"alg":"HS256","Typ":"JWT"}`, good), ErrTokenInvalid},
		"exp twice":           {rawToken(testvec.Secret, hs, `{"exp":1,"exp":1716182115}`), ErrTokenInvalid},
		"EXP":                 {rawToken(testvec.Secret, hs, `{"EXP":1716182115}`), ErrTokenInvalid},
		"Exp and exp":         {rawToken(testvec.Secret, hs, `{"exp":1716182115,"Exp":1}`), ErrTokenInvalid},
		"claim twice":         {rawToken(testvec.Secret, hs, `{"exp":1716182115,"total_amount":"1.00","total_amount":"0.01"}`), ErrTokenInvalid},
		"claim in two cases":  {rawToken(testvec.Secret, hs, `{"exp":1716182115,"total_amount":"1.00","TOTAL_AMOUNT":"0.01"}`), ErrTokenInvalid},
		"long s folds":        {rawToken(testvec.Secret, hs, `{"exp":1716182115,"scope":"api","ſcope":"x"}`), ErrTokenInvalid},
		"nested name twice":   {rawToken(testvec.Secret, hs, `{"exp":1716182115,"biz":{"a":{"b":1,"B":2}}}`), ErrTokenInvalid},
		"name twice in array": {rawToken(testvec.Secret, hs, `{"exp":1716182115,"biz":{"a":[{"b":1,"b":2}]}}`), ErrTokenInvalid},
		"trailing data":       {rawToken(testvec.Secret, hs, `{"exp":1716182115} {}`), ErrTokenInvalid},
		"claims null":         {rawToken(testvec.Secret, hs, `null`), ErrTokenInvalid},
		"too long":            {rawToken(testvec.Secret, hs, `{"exp":1716182115,"p":"`+strings.Repeat("a", maxTokenLen)+`"}`), ErrTokenInvalid},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := k.Parse(c.token, tokenNow)
			assert.ErrorIs(t, err, c.err)
			reason := TokenReason(err)
			assert.NotEqual(t, "invalid", reason, "every refusal has a reason")
			assert.NotContains(t, reason, testvec.Secret)
			assert.NotContains(t, reason, `"`, "a reason never repeats the token's own text")
		})
	}
	_, err = k.Parse(cases["tampered payload"].token, tokenNow)
	assert.Equal(t, "the signature does not verify: signed with another secret, or changed since", TokenReason(err),
		"a token whose MAC fails is told nothing about its claims")
	_, err = k.Parse(valid, tokenNow)
	assert.NoError(t, err, "the valid token the cases are made from")
	_, err = k.Parse(rawToken(testvec.Secret, `{"alg":"HS256"}`, `{"exp":1716182115.5,"nbf":1716182000}`), tokenNow)
	assert.NoError(t, err, "typ is optional, exp may have a fraction, nbf in the past")
}

func TestSignCallbackClaims(t *testing.T) {
	k, err := NewTokenKey(testvec.Secret)
	require.NoError(t, err)
	cb, err := parseCallback("subject=%E6%B5%8B%E8%AF%95+%22%5C%0A%3C%26&total_amount=88.88&sign=x&sign_type=RSA2")
	require.NoError(t, err)
	tok := k.SignCallback(&CallbackClaims{Issuer: "ignored", Audience: testvec.AppID, IssuedAt: tokenNow.Unix(),
		ExpiresAt: tokenNow.Unix() + 300, ID: "nid-1", Event: EventNotify, Params: map[string]string{"ignored": "x"}}, cb)
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
		"iss": "caddy-alipay", "aud": testvec.AppID, "iat": float64(tokenNow.Unix()), "exp": float64(tokenNow.Unix() + 300),
		"jti": "nid-1", "event": "notify", "params": map[string]any{"subject": "测试 \"\\\n<&", "total_amount": "88.88"},
	}, c)
	var typed CallbackClaims
	require.NoError(t, json.Unmarshal(payload, &typed))
	assert.Equal(t, CallbackClaims{Issuer: TokenIssuer, Audience: testvec.AppID, IssuedAt: tokenNow.Unix(), ExpiresAt: tokenNow.Unix() + 300,
		ID: "nid-1", Event: "notify", Params: cb.Params()}, typed)
	_, err = k.Parse(tok, tokenNow)
	assert.NoError(t, err)

	// The optional claims, when set.
	tok = k.SignCallback(&CallbackClaims{Audience: "2088000000000001", ExpiresAt: tokenNow.Unix() + 300, Event: EventReturn,
		Protocol: "legacy", TradeStatus: "TRADE_SUCCESS"}, cb)
	claims, err := k.Parse(tok, tokenNow)
	require.NoError(t, err)
	assert.JSONEq(t, `"legacy"`, string(claims["protocol"]))
	assert.JSONEq(t, `"TRADE_SUCCESS"`, string(claims["trade_status"]))
}
