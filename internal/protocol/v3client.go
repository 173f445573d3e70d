package protocol

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"time"
)

// callV3 makes one call as an OpenAPI v3 REST call: POST
// <origin>/v3/<method as a path>, the biz_content (with the common
// parameters, such as notify_url, inside it) as the JSON body, encrypted
// when the app has content encryption on, signed in the authorization
// header. The answer is verified over its headers and raw body, then
// given the shape of a v2 answer, so that every caller, and the shop,
// reads one shape in either version.
func (c *Client) callV3(ctx context.Context, method string, bizContent []byte, common map[string]string) (*Response, error) {
	body, err := withCommon(bizContent, common)
	if err != nil {
		return nil, err
	}
	path := V3Path(method)
	contentType := "application/json"
	if k := c.API.ContentKey; k != nil {
		body, contentType = []byte(k.Encrypt(body)), "text/plain"
	}
	nonce := newNonce()
	authz, err := V3Authorization(c.API.Signer, V3AuthString(c.API.AppID, c.API.AppCertSN, nonce, c.Now()), http.MethodPost, path, string(body))
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, c.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.API.V3Origin+path, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", contentType)
	req.Header.Set("Accept", "application/json")
	req.Header.Set("Alipay-Request-Id", nonce)
	req.Header.Set("Authorization", authz)
	if c.API.RootCertSN != "" {
		req.Header.Set("Alipay-Root-Cert-Sn", c.API.RootCertSN)
	}
	if c.API.ContentKey != nil {
		req.Header.Set("Alipay-Encrypt-Type", "AES")
	}
	start := time.Now()
	status, header, raw, err := roundTrip(c.HTTP, req)
	c.Timer.since(method, start)
	if err != nil {
		return nil, err
	}
	return c.readV3(status, header, raw)
}

// withCommon is biz_content with the non-empty common parameters added
// as members, as v3 takes them.
func withCommon(bizContent []byte, common map[string]string) ([]byte, error) {
	if len(common) == 0 {
		return bizContent, nil
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(bizContent, &fields); err != nil || fields == nil {
		return nil, &ClaimError{"body", "must be a JSON object"}
	}
	for k, v := range common {
		if v != "" {
			fields[k], _ = MarshalJSON(v)
		}
	}
	return MarshalJSON(fields)
}

// newNonce is a request's nonce and request id: 128 random bits.
func newNonce() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// readV3 checks a v3 answer and gives it v2's shape. A signed answer must
// verify (and, in certificate mode, name Alipay's certificate in
// alipay-sn) whatever its status. Then: a 200 is the method's response
// (code 10000 added where it has none); a signed 4xx a business failure
// (v2's 40004, the v3 code as sub_code); a signed 5xx an unknown result
// (v2's 20000); anything else, a 401 above all, a refusal of the call
// itself, passed on as an error with what it says, never as an answer.
func (c *Client) readV3(status int, h http.Header, raw []byte) (*Response, error) {
	sign := h.Get("Alipay-Signature")
	if sign != "" {
		if c.API.AlipayCertSN != "" && h.Get("Alipay-Sn") != c.API.AlipayCertSN {
			return nil, &CallError{Kind: CallBadAnswer, Msg: "the answer names another Alipay certificate (alipay-sn); download Alipay's current alipayCertPublicKey_RSA2.crt"}
		}
		if c.API.Verifier.Verify(V3ResponseContent(h.Get("Alipay-Timestamp"), h.Get("Alipay-Nonce"), raw), sign) != nil {
			return nil, &CallError{Kind: CallBadAnswer, Msg: "the gateway's answer is not signed by Alipay"}
		}
	}
	plain := raw
	if k := c.API.ContentKey; k != nil && len(raw) > 0 && raw[0] != '{' {
		var err error
		if plain, err = k.Decrypt(string(raw)); err != nil {
			return nil, &CallError{Kind: CallBadAnswer, Msg: "the answer does not decrypt with encrypt_key: is it the app's current key?"}
		}
	}
	var fields map[string]json.RawMessage
	if json.Unmarshal(plain, &fields) != nil || fields == nil {
		if sign == "" && status != http.StatusOK {
			return nil, &CallError{Kind: CallBadAnswer, Msg: fmt.Sprintf("the gateway answered HTTP %d", status)}
		}
		if sign == "" {
			return nil, &CallError{Kind: CallBadAnswer, Msg: "the gateway's answer is not signed by Alipay"}
		}
		return nil, &CallError{Kind: CallBadAnswer, Msg: "the answer is not a JSON object"}
	}
	v3Error := func() map[string]string {
		return map[string]string{"sub_code": stringField(fields, "code"), "sub_msg": stringField(fields, "message")}
	}
	switch {
	case sign == "" && status == http.StatusOK:
		return nil, &CallError{Kind: CallBadAnswer, Msg: "the gateway's answer is not signed by Alipay"}
	case sign == "":
		return nil, &CallError{Kind: CallRefused, Msg: fmt.Sprintf("the gateway refused the call (HTTP %d)", status), Fields: v3Error()}
	case status == http.StatusOK:
		if c.API.ContentKey != nil && bytes.Equal(plain, raw) {
			return nil, &CallError{Kind: CallBadAnswer, Msg: "a plaintext success to an encrypted call"}
		}
		if _, ok := fields["code"]; !ok {
			fields["code"], _ = MarshalJSON("10000")
			fields["msg"], _ = MarshalJSON("Success")
		}
	case status >= 400 && status < 500 && status != http.StatusUnauthorized:
		e := v3Error()
		fields = map[string]json.RawMessage{}
		for k, v := range map[string]string{"code": "40004", "msg": "Business Failed", "sub_code": e["sub_code"], "sub_msg": e["sub_msg"]} {
			fields[k], _ = MarshalJSON(v)
		}
	case status >= 500:
		e := v3Error()
		fields = map[string]json.RawMessage{}
		for k, v := range map[string]string{"code": "20000", "msg": "Service Currently Unavailable", "sub_code": e["sub_code"], "sub_msg": e["sub_msg"]} {
			fields[k], _ = MarshalJSON(v)
		}
	default:
		return nil, &CallError{Kind: CallRefused, Msg: fmt.Sprintf("the gateway refused the call (HTTP %d)", status), Fields: v3Error()}
	}
	out, err := MarshalJSON(fields)
	if err != nil {
		return nil, err
	}
	return &Response{Raw: out, Sign: sign, CertSN: h.Get("Alipay-Sn")}, nil
}

// V3OriginOf is the origin that v3 calls go to for a v2 gateway URL: its
// scheme, host and port.
func V3OriginOf(gateway string) (string, error) {
	u, err := url.Parse(gateway)
	if err != nil || u.Scheme == "" || u.Host == "" {
		return "", fmt.Errorf("%q is not a URL", gateway)
	}
	return u.Scheme + "://" + u.Host, nil
}
