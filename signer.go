package alipay

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"fmt"
	"net/url"
	"sort"
	"strings"
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

// A Signer signs the string to sign of a request. Implementations hold the
// merchant's secret (an RSA key; for the legacy protocol, an MD5 key).
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
	// PKCS#1 v1.5 is deterministic; rand only serves blinding.
	sig, err := rsa.SignPKCS1v15(rand.Reader, s.key, s.hash, hh.Sum(nil))
	if err != nil {
		return "", fmt.Errorf("signing: %w", err)
	}
	return base64.StdEncoding.EncodeToString(sig), nil
}

// RequestContent returns the string to sign of a request: every parameter
// but sign, empty values left out, sorted by key in byte order, joined as
// key=value&key=value with the raw values (sign_type included).
func RequestContent(params map[string]string) []byte {
	return requestContent(params, false)
}

// requestContent is RequestContent, keeping empty values if keepEmpty (as
// Alipay's Node SDK signs them).
func requestContent(params map[string]string, keepEmpty bool) []byte {
	keys := make([]string, 0, len(params))
	size := 0
	for k, v := range params {
		if k == "sign" || (v == "" && !keepEmpty) {
			continue
		}
		keys = append(keys, k)
		size += len(k) + len(v) + 2
	}
	sort.Strings(keys)
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

// chinaTime is Beijing time. A fixed zone, because containers often lack
// tzdata and Asia/Shanghai has had no daylight saving since 1991.
var chinaTime = time.FixedZone("CST", 8*60*60)

// Timestamp formats t as an OpenAPI request's timestamp.
func Timestamp(t time.Time) string {
	return t.In(chinaTime).Format(time.DateTime)
}

// OpenAPIParams returns the common parameters of an OpenAPI 2.0 request
// (alipay.trade.page.pay and every other method) for app appID, without
// the sign: app_id, method, format, charset, sign_type, timestamp,
// version and biz_content. The caller adds notify_url, return_url and
// other optional parameters, then signs with SignParams.
func OpenAPIParams(appID, method, signType string, bizContent []byte, t time.Time) map[string]string {
	return map[string]string{
		"app_id":      appID,
		"method":      method,
		"format":      "JSON",
		"charset":     "utf-8",
		"sign_type":   signType,
		"timestamp":   Timestamp(t),
		"version":     "1.0",
		"biz_content": string(bizContent),
	}
}

// GatewayURL returns the URL that sends a browser to the gateway with
// params (signed) in the query, as the SDKs' page-pay GET form does.
func GatewayURL(gateway string, params map[string]string) string {
	var b strings.Builder
	keys := make([]string, 0, len(params))
	size := len(gateway) + 1
	for k, v := range params {
		keys = append(keys, k)
		size += len(k) + len(v)*3/2 + 2
	}
	sort.Strings(keys)
	b.Grow(size)
	b.WriteString(gateway)
	b.WriteByte('?')
	for i, k := range keys {
		if i > 0 {
			b.WriteByte('&')
		}
		b.WriteString(url.QueryEscape(k))
		b.WriteByte('=')
		b.WriteString(url.QueryEscape(params[k]))
	}
	return b.String()
}
