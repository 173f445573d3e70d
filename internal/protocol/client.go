package protocol

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// A Client calls the OpenAPI gateway: it signs a request as Alipay's SDKs
// sign one, POSTs it (the common parameters in the query, biz_content in
// the form body, as the SDKs' exec does) and returns the response once its
// signature holds.
type Client struct {
	API  *OpenAPI
	HTTP *http.Client // NoRedirectClient: a redirect is an answer, not followed
	// Timeout bounds one call, connection to last byte; it must be set,
	// since a zero Timeout gives every call a deadline already past.
	Timeout time.Duration
	Now     func() time.Time // the request's timestamp
	// Timer is told how long each call took; nil for none.
	Timer CallTimer
}

// A CallTimer is told how long each exchange with the gateway took, by
// the OpenAPI method or legacy service called, or notify_verify: the
// connection and the answer's last byte, whatever the answer was.
type CallTimer func(method string, took time.Duration)

// since tells t how long method took since start.
func (t CallTimer) since(method string, start time.Time) {
	if t != nil {
		t(method, time.Since(start))
	}
}

// MaxResponseSize bounds a gateway response.
const MaxResponseSize = 1 << 20

// CallError is a call that gave no answer to trust.
type CallError struct {
	Kind CallErrorKind
	Msg  string
	// For an unsigned error_response: its code, msg, sub_code and sub_msg.
	Fields map[string]string
}

func (e *CallError) Error() string { return e.Msg }

// CallErrorKind tells why a call failed.
type CallErrorKind int

const (
	CallTimeout     CallErrorKind = iota // no answer in time
	CallUnreachable                      // no connection, or a broken answer
	CallBadAnswer                        // an answer that is not a verified response
	CallRefused                          // an unsigned error_response: the gateway refused the call
)

// exchange sends req to a gateway with client and returns the answer's
// body: a 200 of at most MaxResponseSize bytes, or a *CallError that says
// why there is none.
func exchange(client *http.Client, req *http.Request) ([]byte, error) {
	status, _, body, err := roundTrip(client, req)
	if err == nil && status != http.StatusOK {
		return nil, &CallError{Kind: CallBadAnswer, Msg: fmt.Sprintf("the gateway answered HTTP %d", status)}
	}
	return body, err
}

// roundTrip sends req with client and returns the answer, whatever its
// status, of at most MaxResponseSize bytes, or a *CallError that says why
// there is none.
func roundTrip(client *http.Client, req *http.Request) (int, http.Header, []byte, error) {
	res, err := client.Do(req)
	if err != nil {
		if isTimeout(err) {
			return 0, nil, nil, &CallError{Kind: CallTimeout, Msg: "the gateway did not answer in time"}
		}
		return 0, nil, nil, &CallError{Kind: CallUnreachable, Msg: "the gateway could not be reached"}
	}
	defer res.Body.Close()
	body, err := io.ReadAll(io.LimitReader(res.Body, MaxResponseSize+1))
	switch {
	case err != nil && isTimeout(err):
		return 0, nil, nil, &CallError{Kind: CallTimeout, Msg: "the gateway did not answer in time"}
	case err != nil:
		return 0, nil, nil, &CallError{Kind: CallUnreachable, Msg: "reading the gateway's answer failed"}
	case len(body) > MaxResponseSize:
		return 0, nil, nil, &CallError{Kind: CallBadAnswer, Msg: "the gateway's answer is too large"}
	}
	return res.StatusCode, res.Header, body, nil
}

// isTimeout reports whether err is a deadline passed, the call's or the
// connection's.
func isTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, context.DeadlineExceeded) || errors.As(err, &ne) && ne.Timeout()
}

// Call makes one OpenAPI call of method with bizContent.
func (c *Client) Call(ctx context.Context, method string, bizContent []byte) (*Response, error) {
	return c.CallWith(ctx, method, bizContent, nil)
}

// CallWith is Call with more common parameters, such as notify_url
// (empty ones are left out).
func (c *Client) CallWith(ctx context.Context, method string, bizContent []byte, common map[string]string) (*Response, error) {
	if c.API.V3 {
		return c.callV3(ctx, method, bizContent, common)
	}
	params := c.API.RequestParams(method, bizContent, c.Now())
	for k, v := range common {
		if v != "" {
			params[k] = v
		}
	}
	if k := c.API.ContentKey; k != nil {
		// Encrypted first, then signed: the signature covers the
		// ciphertext and encrypt_type.
		params["biz_content"], params["encrypt_type"] = k.Encrypt([]byte(params["biz_content"])), "AES"
	}
	if err := SignParams(c.API.Signer, params); err != nil {
		return nil, err
	}
	query := url.Values{}
	for k, v := range params {
		if k != "biz_content" {
			query.Set(k, v)
		}
	}
	form := url.Values{"biz_content": {params["biz_content"]}}
	ctx, cancel := context.WithTimeout(ctx, c.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.API.Gateway+"?"+query.Encode(), strings.NewReader(form.Encode()))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded;charset=utf-8")
	start := time.Now()
	body, err := exchange(c.HTTP, req)
	c.Timer.since(method, start)
	if err != nil {
		return nil, err
	}
	resp, err := ParseResponse(body, method)
	if err != nil {
		return nil, &CallError{Kind: CallBadAnswer, Msg: err.Error()}
	}
	if resp.IsError && resp.Sign == "" {
		// Alipay leaves failures of the call itself unsigned: pass on what
		// they say, as an error, never as a good answer.
		var fields map[string]string
		_ = json.Unmarshal(resp.Raw, &fields)
		out := map[string]string{}
		for _, k := range []string{"code", "msg", "sub_code", "sub_msg"} {
			if v := fields[k]; v != "" {
				out[k] = v
			}
		}
		return nil, &CallError{Kind: CallRefused, Msg: "the gateway refused the call (error_response)", Fields: out}
	}
	if c.API.AlipayCertSN != "" && resp.CertSN != c.API.AlipayCertSN {
		// Alipay rotated its certificate, or someone else answered: either
		// way the old key must not vouch for this.
		return nil, &CallError{Kind: CallBadAnswer, Msg: "the answer names another Alipay certificate (alipay_cert_sn); download Alipay's current alipayCertPublicKey_RSA2.crt"}
	}
	if err := resp.Verify(c.API.Verifier); err != nil {
		return nil, &CallError{Kind: CallBadAnswer, Msg: "the gateway's answer is not signed by Alipay"}
	}
	if err := c.decrypt(resp); err != nil {
		return nil, err
	}
	return resp, nil
}

// decrypt replaces a verified answer's encrypted value (a JSON string of
// base64, over which the signature ran, quotes included) with its
// plaintext, a JSON object. Encryption and its absence must match the
// app's setting; but a plaintext answer to an encrypted call is how
// Alipay reports a call it could not decrypt, so one that is not a
// success is passed on as the error it is.
func (c *Client) decrypt(resp *Response) error {
	encrypted := len(resp.Raw) > 0 && resp.Raw[0] == '"'
	k := c.API.ContentKey
	switch {
	case k == nil && encrypted:
		return &CallError{Kind: CallBadAnswer, Msg: "the answer is encrypted: the app has content encryption (AES) switched on; set encrypt_key"}
	case k == nil:
		return nil
	case !encrypted:
		var v map[string]json.RawMessage
		if json.Unmarshal(resp.Raw, &v) != nil || stringField(v, "code") == "10000" {
			return &CallError{Kind: CallBadAnswer, Msg: "a plaintext success to an encrypted call"}
		}
		return nil
	}
	var b64 string
	if err := json.Unmarshal(resp.Raw, &b64); err != nil {
		return &CallError{Kind: CallBadAnswer, Msg: "the encrypted answer is not a JSON string"}
	}
	plain, err := k.Decrypt(b64)
	if err != nil {
		return &CallError{Kind: CallBadAnswer, Msg: "the answer does not decrypt with encrypt_key: is it the app's current key?"}
	}
	var v map[string]json.RawMessage
	if json.Unmarshal(plain, &v) != nil {
		return &CallError{Kind: CallBadAnswer, Msg: "the decrypted answer is not a JSON object"}
	}
	resp.Raw = plain
	return nil
}

// TradeStatus asks alipay.trade.query for the status of the trade
// outTradeNo (with Alipay's tradeNo, when known). It returns an error
// when there is no verified answer with code 10000 about that trade: its
// out_trade_no must be outTradeNo, and its trade_no tradeNo where both
// have one.
func (c *Client) TradeStatus(ctx context.Context, outTradeNo, tradeNo string) (string, error) {
	biz, _ := MarshalJSON(map[string]string{"out_trade_no": outTradeNo})
	resp, err := c.Call(ctx, "alipay.trade.query", biz)
	if err != nil {
		return "", err
	}
	// Read by exact name, as Alipay writes them: encoding/json's struct
	// fields would match any case.
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(resp.Raw, &raw); err != nil {
		return "", err
	}
	get := func(k string) string {
		var s string
		_ = json.Unmarshal(raw[k], &s)
		return s
	}
	switch {
	case get("code") != "10000":
		return "", fmt.Errorf("alipay.trade.query: %s %s", get("code"), get("sub_code"))
	case get("out_trade_no") != outTradeNo:
		return "", errors.New("alipay.trade.query answered about another trade (out_trade_no)")
	case tradeNo != "" && get("trade_no") != "" && get("trade_no") != tradeNo:
		return "", errors.New("alipay.trade.query answered about another trade (trade_no)")
	}
	return get("trade_status"), nil
}
