package protocol

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"
)

// The token layer: HS256 JSON Web Tokens (RFC 7519) with the secret that
// Caddy shares with the shop, in both directions: the shop signs pay
// orders and API bearer tokens, the handler signs the X-Alipay-Token it
// forwards. Only HS256 is spoken, so there is no algorithm to confuse;
// that is also why the token is this file's own code rather than a
// general JWT library.

// Token errors. ErrTokenExpired is told apart so that the pay endpoint can
// tell the buyer "this payment link has expired" rather than "invalid";
// every other refusal is a *TokenError, which is ErrTokenInvalid.
var (
	ErrTokenInvalid = errors.New("invalid token")
	ErrTokenExpired = errors.New("token expired")
)

// A TokenError is a token refused for Reason: what is wrong with the
// token, in a few fixed words that the client who sent it may read. A
// reason names the part at fault and never repeats the token's own text,
// the secret or the MAC that was due; only a token whose MAC holds gets a
// reason about its claims, so a reason tells a forger nothing. Detail,
// for the log alone, is what the token said there.
type TokenError struct {
	Reason, Detail string
}

func (e *TokenError) Error() string {
	if e.Detail != "" {
		return "invalid token: " + e.Reason + ": " + e.Detail
	}
	return "invalid token: " + e.Reason
}

// Is makes every TokenError ErrTokenInvalid.
func (e *TokenError) Is(target error) bool { return target == ErrTokenInvalid }

func invalidToken(reason string) error { return &TokenError{Reason: reason} }

// invalidTokenSaid is invalidToken with what the token said, for the log.
func invalidTokenSaid(reason string, said any) error {
	return &TokenError{Reason: reason, Detail: fmt.Sprint(said)}
}

// TokenReason is why err refused a token, for the client: "expired", a
// TokenError's reason, or "invalid".
func TokenReason(err error) string {
	var te *TokenError
	switch {
	case errors.Is(err, ErrTokenExpired):
		return "expired"
	case errors.As(err, &te):
		return te.Reason
	}
	return "invalid"
}

// MinSecretLen is the shortest shared secret accepted: 32 bytes, the size
// of the HMAC-SHA256 output (RFC 7518 section 3.2).
const MinSecretLen = 32

// maxTokenLen bounds the work a token can cause before its MAC is checked.
const maxTokenLen = 16 << 10

// hs256Header is the fixed, pre-encoded header of every token made here.
var hs256Header = base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"HS256","typ":"JWT"}`))

// TokenKey signs and verifies HS256 tokens with one shared secret.
type TokenKey struct {
	secret []byte
}

// NewTokenKey returns a key for secret, which must be at least
// MinSecretLen bytes.
func NewTokenKey(secret string) (*TokenKey, error) {
	if len(secret) < MinSecretLen {
		return nil, fmt.Errorf("shorter than %d bytes", MinSecretLen)
	}
	return &TokenKey{secret: []byte(secret)}, nil
}

func (k *TokenKey) mac(signingInput []byte) []byte {
	m := hmac.New(sha256.New, k.secret)
	m.Write(signingInput)
	return m.Sum(nil)
}

// Sign returns a compact JWT whose claims are the JSON encoding of claims.
func (k *TokenKey) Sign(claims any) (string, error) {
	var payload bytes.Buffer
	enc := json.NewEncoder(&payload)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(claims); err != nil {
		return "", fmt.Errorf("encoding claims: %w", err)
	}
	return k.SignJSON(bytes.TrimSuffix(payload.Bytes(), []byte("\n"))), nil
}

// SignJSON returns a compact JWT whose claims are payload, which must be
// a JSON object.
func (k *TokenKey) SignJSON(payload []byte) string {
	n := len(hs256Header) + 1 + base64.RawURLEncoding.EncodedLen(len(payload))
	out := make([]byte, 0, n+1+base64.RawURLEncoding.EncodedLen(sha256.Size))
	out = append(out, hs256Header...)
	out = append(out, '.')
	out = base64.RawURLEncoding.AppendEncode(out, payload)
	out = append(out, '.')
	out = base64.RawURLEncoding.AppendEncode(out, k.mac(out[:n]))
	return string(out)
}

// Parse verifies token and returns its claims, each as raw JSON. The
// header must name HS256 (and nothing critical); the MAC is compared in
// constant time before the claims are even decoded; exp is required and
// must lie after now. Other claims are the caller's to check.
func (k *TokenKey) Parse(token string, now time.Time) (map[string]json.RawMessage, error) {
	if len(token) > maxTokenLen {
		return nil, invalidToken(fmt.Sprintf("longer than %d bytes", maxTokenLen))
	}
	header, rest, ok1 := strings.Cut(token, ".")
	payload, sig, ok2 := strings.Cut(rest, ".")
	if !ok1 || !ok2 || strings.Contains(sig, ".") {
		return nil, invalidToken("not a JWT (three base64url parts joined by dots)")
	}
	hb, err := decodeSegment(header)
	if err != nil {
		return nil, invalidToken("header is not base64url")
	}
	h, err := strictObject(hb, registeredHeaders)
	if err != nil {
		return nil, invalidTokenSaid("the header is not a JSON object with each name once, as registered", err)
	}
	if string(h["alg"]) != `"HS256"` {
		return nil, invalidTokenSaid("alg is not HS256", string(h["alg"]))
	}
	if typ, ok := h["typ"]; ok && !strings.EqualFold(string(typ), `"JWT"`) {
		return nil, invalidTokenSaid("typ is not JWT", string(typ))
	}
	if _, ok := h["crit"]; ok {
		return nil, invalidToken("crit header not supported")
	}
	got, err := decodeSegment(sig)
	if err != nil || !hmac.Equal(got, k.mac([]byte(token[:len(header)+1+len(payload)]))) {
		return nil, invalidToken("the signature does not verify: signed with another secret, or changed since")
	}
	pb, err := decodeSegment(payload)
	if err != nil {
		return nil, invalidToken("payload is not base64url")
	}
	claims, err := strictObject(pb, registeredClaims)
	if err != nil {
		return nil, invalidTokenSaid("the claims are not a JSON object with each name once, as registered", err)
	}
	exp, ok := numericDate(claims["exp"])
	if !ok {
		return nil, invalidToken("no exp claim (seconds since 1970, a number)")
	}
	if !now.Before(exp) {
		return nil, ErrTokenExpired
	}
	if nbf, ok := numericDate(claims["nbf"]); claims["nbf"] != nil && (!ok || now.Before(nbf)) {
		return nil, invalidToken("not valid yet (nbf)")
	}
	return claims, nil
}

// decodeSegment decodes one segment of a compact JWS: unpadded base64url
// and nothing else. Go's decoder skips \r and \n, even in Strict mode,
// which would accept one token in many spellings.
func decodeSegment(seg string) ([]byte, error) {
	for i := 0; i < len(seg); i++ {
		c := seg[i]
		if !('A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
			return nil, errors.New("not base64url")
		}
	}
	return base64.RawURLEncoding.Strict().DecodeString(seg)
}

// The names of RFC 7515's header parameters and RFC 7519's registered
// claims: each must be written as registered. Go's encoding/json, and
// other decoders, would take "ALG" or "Exp" for them.
var (
	registeredHeaders = []string{"alg", "typ", "cty", "crit", "kid", "jku", "jwk", "x5u", "x5c", "x5t", "x5t#S256", "b64", "zip", "enc"}
	registeredClaims  = []string{"iss", "sub", "aud", "exp", "nbf", "iat", "jti"}
)

// strictObject decodes a JSON object into its members' raw values, more
// strictly than encoding/json: a name may appear once only, even in
// another case, at every depth (decoders differ in which of two they
// keep, so the shop and this handler could read different values), and
// none of the names may be a spelling of one of registered in another
// case. Nothing may follow the object.
func strictObject(data []byte, registered []string) (map[string]json.RawMessage, error) {
	if err := CheckJSONNames(data); err != nil {
		return nil, err
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(data, &obj); err != nil || obj == nil {
		return nil, errors.New("not a JSON object")
	}
	for name := range obj {
		for _, r := range registered {
			if name != r && strings.EqualFold(name, r) {
				return nil, fmt.Errorf("%q is not written as %q", name, r)
			}
		}
	}
	return obj, nil
}

// numericDate reads a JWT NumericDate: seconds since the epoch, possibly
// with a fraction.
func numericDate(raw json.RawMessage) (time.Time, bool) {
	var f json.Number
	if len(raw) == 0 || raw[0] == '"' || json.Unmarshal(raw, &f) != nil {
		return time.Time{}, false
	}
	v, err := f.Float64()
	if err != nil || v < 0 || v > 1e11 {
		return time.Time{}, false
	}
	sec, frac := math.Modf(v)
	return time.Unix(int64(sec), int64(frac*1e9)), true
}

// The scopes of tokens that are not pay tokens: the shop's API bearer,
// and a legacy refund link for the seller. A pay token never carries a
// scope (pay tokens travel in buyers' links), and each kind is refused
// where another is expected.
const (
	APIScope    = "api"
	RefundScope = "refund"
)

// MaxBearerLifetime bounds how far ahead the exp of a token with a scope
// may lie.
const MaxBearerLifetime = 10 * time.Minute

// ParseScoped verifies a token of scope: a token as Parse checks it, whose
// exp lies at most MaxBearerLifetime ahead of now and whose scope claim is
// scope. It returns the claims.
func (k *TokenKey) ParseScoped(token, scope string, now time.Time) (map[string]json.RawMessage, error) {
	claims, err := k.Parse(token, now)
	if err != nil {
		return nil, err
	}
	if exp, _ := numericDate(claims["exp"]); exp.After(now.Add(MaxBearerLifetime)) {
		return nil, invalidToken(fmt.Sprintf("exp is more than %v ahead", MaxBearerLifetime))
	}
	if string(claims["scope"]) != `"`+scope+`"` {
		// Without this, a buyer could refund his own order with the pay
		// link he was given: all tokens are made with the same secret.
		return nil, invalidToken(fmt.Sprintf("scope is not %q", scope))
	}
	return claims, nil
}

// ParseBearer verifies an API bearer token: ParseScoped with APIScope.
func (k *TokenKey) ParseBearer(token string, now time.Time) error {
	_, err := k.ParseScoped(token, APIScope, now)
	return err
}
