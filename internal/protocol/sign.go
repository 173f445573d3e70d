package protocol

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"fmt"
	"net/url"
	"slices"
	"time"

	// Register the hash functions that sign types name.
	_ "crypto/sha1"
	_ "crypto/sha256"
)

// Sign types: the app's setting at Alipay, which names the signature
// algorithm of its requests, callbacks and responses.
const (
	SignTypeRSA2 = "RSA2" // RSA PKCS#1 v1.5 with SHA-256
	SignTypeRSA  = "RSA"  // RSA PKCS#1 v1.5 with SHA-1, for old apps
)

// hashOf returns the hash that a sign type signs with.
func hashOf(signType string) (crypto.Hash, error) {
	switch signType {
	case SignTypeRSA2:
		return crypto.SHA256, nil
	case SignTypeRSA:
		return crypto.SHA1, nil
	}
	return 0, fmt.Errorf("unknown sign type %q, want %s or %s", signType, SignTypeRSA2, SignTypeRSA)
}

// A Signer signs a string to sign: the merchant's requests, with its
// secret (an RSA key; for the legacy protocol, an MD5 key), or, in the
// local Alipay, Alipay's callbacks and responses.
type Signer interface {
	// SignType is the request's sign_type value.
	SignType() string
	// Sign returns the sign value for content, the string to sign.
	Sign(content []byte) (string, error)
}

// RSASigner signs with the app's RSA private key, as Alipay's SDKs do:
// PKCS#1 v1.5 over the UTF-8 bytes, standard base64 with padding.
type RSASigner struct {
	key      *rsa.PrivateKey
	hash     crypto.Hash
	signType string
}

// NewRSASigner returns a signer for signType (RSA2 or RSA).
func NewRSASigner(key *rsa.PrivateKey, signType string) (*RSASigner, error) {
	h, err := hashOf(signType)
	if err != nil {
		return nil, err
	}
	return &RSASigner{key: key, hash: h, signType: signType}, nil
}

// SignType implements Signer.
func (s *RSASigner) SignType() string { return s.signType }

// Sign implements Signer.
func (s *RSASigner) Sign(content []byte) (string, error) {
	hh := s.hash.New()
	hh.Write(content)
	// PKCS#1 v1.5 is deterministic: crypto/rsa ignores the random source.
	sig, err := rsa.SignPKCS1v15(rand.Reader, s.key, s.hash, hh.Sum(nil))
	if err != nil {
		return "", fmt.Errorf("signing: %w", err)
	}
	return base64.StdEncoding.EncodeToString(sig), nil
}

// A Verifier checks a signature over a string to sign: Alipay's, with
// Alipay's public key (for the legacy protocol, the MD5 key), or, in the
// local Alipay, the merchant's.
type Verifier interface {
	// SignType is the sign type that callbacks must use.
	SignType() string
	// Verify returns nil if sign is a valid signature of content.
	Verify(content []byte, sign string) error
}

// RSAVerifier verifies with Alipay's RSA public key.
type RSAVerifier struct {
	key      *rsa.PublicKey
	hash     crypto.Hash
	signType string
}

// NewRSAVerifier returns a verifier for signType (RSA2 or RSA).
func NewRSAVerifier(key *rsa.PublicKey, signType string) (*RSAVerifier, error) {
	h, err := hashOf(signType)
	if err != nil {
		return nil, err
	}
	return &RSAVerifier{key: key, hash: h, signType: signType}, nil
}

// SignType implements Verifier.
func (v *RSAVerifier) SignType() string { return v.signType }

// Verify implements Verifier.
func (v *RSAVerifier) Verify(content []byte, sign string) error {
	sig, err := base64.StdEncoding.DecodeString(sign)
	if err != nil || len(sig) != v.key.Size() {
		return ErrBadSignature
	}
	return v.verifyRaw(content, sig)
}

func (v *RSAVerifier) verifyRaw(content, sig []byte) error {
	h := v.hash.New()
	h.Write(content)
	if rsa.VerifyPKCS1v15(v.key, v.hash, h.Sum(nil), sig) != nil {
		return ErrBadSignature
	}
	return nil
}

// RequestContent returns the string to sign of a request: every parameter
// but sign, empty values left out, sorted by key in byte order, joined as
// key=value&key=value with the raw values (sign_type included).
func RequestContent(params map[string]string) []byte {
	return requestContent(params, false)
}

// RequestContentWithEmpty is RequestContent keeping the empty values, as
// Alipay's Node.js SDK signs a request.
func RequestContentWithEmpty(params map[string]string) []byte {
	return requestContent(params, true)
}

func requestContent(params map[string]string, keepEmpty bool) []byte {
	return sortedContent(params, func(k, v string) bool { return k == "sign" || (v == "" && !keepEmpty) })
}

// sortedContent joins the parameters that omit keeps, sorted by name, as
// k=v&k=v with the raw values: the shape of every string that Alipay
// signs or checks.
func sortedContent(params map[string]string, omit func(k, v string) bool) []byte {
	keys := make([]string, 0, len(params))
	size := 0
	for k, v := range params {
		if omit(k, v) {
			continue
		}
		keys = append(keys, k)
		size += len(k) + len(v) + 2
	}
	slices.Sort(keys)
	b := make([]byte, 0, size)
	for i, k := range keys {
		if i > 0 {
			b = append(b, '&')
		}
		b = append(b, k...)
		b = append(b, '=')
		b = append(b, params[k]...)
	}
	return b
}

// SignParams sets params["sign"] to the signature of the other parameters.
func SignParams(s Signer, params map[string]string) error {
	sign, err := s.Sign(RequestContent(params))
	if err != nil {
		return err
	}
	params["sign"] = sign
	return nil
}

// Encode form-encodes params, sorted by key: the query of a gateway URL,
// or the body of a callback.
func Encode(params map[string]string) string {
	v := make(url.Values, len(params))
	for k, val := range params {
		v[k] = []string{val}
	}
	return v.Encode()
}

// Beijing is China Standard Time, the zone of every timestamp Alipay
// reads and writes. A fixed zone, because containers often lack tzdata and
// Asia/Shanghai has had no daylight saving since 1991.
var Beijing = time.FixedZone("CST", 8*60*60)

// Timestamp formats t as Alipay writes times: yyyy-MM-dd HH:mm:ss in
// Beijing time.
func Timestamp(t time.Time) string {
	return t.In(Beijing).Format(time.DateTime)
}

// ParseTimestamp reads a time that Timestamp wrote.
func ParseTimestamp(s string) (time.Time, error) {
	return time.ParseInLocation(time.DateTime, s, Beijing)
}
