package protocol

import (
	"errors"
	"strconv"
	"strings"
	"time"
)

// OpenAPI v3 (Alipay's current SDKs): REST paths, a JSON body, and
// signatures in headers instead of parameters. A request carries
//
//	authorization: ALIPAY-SHA256withRSA app_id=…[,app_cert_sn=…],nonce=…,timestamp=<ms>,sign=<b64>
//
// whose sign is SHA256withRSA over "<auth string>\n<METHOD>\n<path and
// query as sent>\n<body>\n"; an answer carries alipay-timestamp,
// alipay-nonce and alipay-signature, SHA256withRSA over
// "<timestamp>\n<nonce>\n<raw body>\n". These are the primitives; the
// signatures are pinned to Alipay's Node SDK's (testdata/v3_vectors.json).

// V3AuthScheme is the authorization header's scheme.
const V3AuthScheme = "ALIPAY-SHA256withRSA"

// V3Path is the REST path of a v2 method name: alipay.trade.query is
// /v3/alipay/trade/query.
func V3Path(method string) string {
	return "/v3/" + strings.ReplaceAll(method, ".", "/")
}

// V3AuthString is a request's auth string, before its sign: the app, its
// certificate's serial number in certificate mode, a nonce unique to the
// request, and the time in milliseconds.
func V3AuthString(appID, appCertSN, nonce string, at time.Time) string {
	var b strings.Builder
	b.WriteString("app_id=" + appID)
	if appCertSN != "" {
		b.WriteString(",app_cert_sn=" + appCertSN)
	}
	b.WriteString(",nonce=" + nonce + ",timestamp=" + strconv.FormatInt(at.UnixMilli(), 10))
	return b.String()
}

// V3RequestContent is what a v3 request's signature covers.
func V3RequestContent(authString, method, pathQuery, body string) []byte {
	return []byte(authString + "\n" + method + "\n" + pathQuery + "\n" + body + "\n")
}

// V3Authorization signs a request and returns its authorization header.
// v3 signs with SHA256withRSA only: s must be an RSA2 signer.
func V3Authorization(s Signer, authString, method, pathQuery, body string) (string, error) {
	if s.SignType() != SignTypeRSA2 {
		return "", errors.New("OpenAPI v3 signs with RSA2 (SHA256withRSA) only")
	}
	sign, err := s.Sign(V3RequestContent(authString, method, pathQuery, body))
	if err != nil {
		return "", err
	}
	return V3AuthScheme + " " + authString + ",sign=" + sign, nil
}

// ErrV3Authorization is an authorization header that is not v3's.
var ErrV3Authorization = errors.New("not an ALIPAY-SHA256withRSA authorization")

// ParseV3Authorization reads an authorization header: its auth string
// (everything before ",sign="), its k=v pairs in any order, and its sign.
// A pair given twice, or a part that is not k=v, is refused.
func ParseV3Authorization(header string) (authString string, pairs map[string]string, sign string, err error) {
	rest, ok := strings.CutPrefix(header, V3AuthScheme+" ")
	if !ok {
		return "", nil, "", ErrV3Authorization
	}
	i := strings.LastIndex(rest, ",sign=")
	if i < 0 {
		return "", nil, "", ErrV3Authorization
	}
	authString, sign = rest[:i], rest[i+len(",sign="):]
	if sign == "" || strings.Contains(sign, ",") {
		return "", nil, "", ErrV3Authorization
	}
	pairs = map[string]string{}
	for _, part := range strings.Split(authString, ",") {
		k, v, ok := strings.Cut(part, "=")
		if !ok || k == "" {
			return "", nil, "", ErrV3Authorization
		}
		if _, dup := pairs[k]; dup {
			return "", nil, "", ErrV3Authorization
		}
		pairs[k] = v
	}
	return authString, pairs, sign, nil
}

// V3ResponseContent is what a v3 answer's alipay-signature covers.
func V3ResponseContent(timestamp, nonce string, body []byte) []byte {
	return []byte(timestamp + "\n" + nonce + "\n" + string(body) + "\n")
}
