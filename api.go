package alipay

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
)

// The upstream API (SPEC section 9): the shop POSTs a method's biz_content
// to {prefix}/api/<method> with a short-lived bearer JWT made with the
// shared secret; the sidecar signs the call as Alipay's SDKs do, sends it
// to the gateway and hands back the response's value only once its
// signature holds.

// DefaultAPIMethods are the methods the API serves unless api_methods says
// otherwise.
var DefaultAPIMethods = []string{"alipay.trade.query", "alipay.trade.refund", "alipay.trade.fastpay.refund.query", "alipay.trade.close"}

// APIScope is the scope claim that an API bearer token must carry, and a
// pay token never does.
const APIScope = "api"

const (
	// maxBearerLifetime bounds how far ahead an API token's exp may lie.
	maxBearerLifetime = 10 * time.Minute
	// defaultAPITimeout bounds one gateway call, connection to last byte.
	defaultAPITimeout = 15 * time.Second
	// maxResponseSize bounds a gateway response.
	maxResponseSize = 1 << 20
)

// apiError is a failed gateway call: the status the shop gets and why.
type apiError struct {
	status int
	msg    string
	// for an unsigned error_response: its own fields, passed on
	fields map[string]string
}

func (e *apiError) Error() string { return e.msg }

// serveAPI handles POST {prefix}/api/<method>; segment is the path's
// method segment, as the router read it.
func (h *Handler) serveAPI(w http.ResponseWriter, r *http.Request, segment string) error {
	ev := event{name: eventAPI}
	defer h.log(&ev)
	i := slices.IndexFunc(h.APIMethods, func(m string) bool { return strings.EqualFold(m, segment) })
	if i < 0 {
		ev.method = segment
		return ev.replyJSON(w, http.StatusNotFound, outcomeInvalid, "no such API method", map[string]string{"error": "no such API method"})
	}
	method := h.APIMethods[i]
	ev.method = method
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", "POST")
		return ev.replyJSON(w, http.StatusMethodNotAllowed, outcomeInvalid, "method not allowed", map[string]string{"error": "use POST"})
	}
	bearer, ok := bearerToken(r.Header.Get("Authorization"))
	if !ok {
		w.Header().Set("WWW-Authenticate", `Bearer realm="caddy-alipay"`)
		return ev.replyJSON(w, http.StatusUnauthorized, outcomeForbidden, "no bearer token", map[string]string{"error": "missing bearer token"})
	}
	t := now()
	claims, err := h.tokens.Parse(bearer, t)
	if err == nil {
		if exp, _ := numericDate(claims["exp"]); exp.After(t.Add(maxBearerLifetime)) {
			err = fmt.Errorf("%w: exp more than %v ahead", ErrTokenInvalid, maxBearerLifetime)
		} else if string(claims["scope"]) != `"`+APIScope+`"` {
			// Pay tokens are made with the same secret and travel in
			// buyers' links: without this, a buyer could refund his own
			// order with the pay link he was given.
			err = fmt.Errorf("%w: scope is not %q (a pay token?)", ErrTokenInvalid, APIScope)
		}
	}
	if err != nil {
		w.Header().Set("WWW-Authenticate", `Bearer realm="caddy-alipay", error="invalid_token"`)
		return ev.replyJSON(w, http.StatusUnauthorized, outcomeForbidden, err.Error(), map[string]string{"error": "invalid or expired bearer token"})
	}
	biz, err := readBizContent(w, r)
	if err == nil && method == "alipay.trade.refund" {
		// Without it a retried call could refund twice.
		var f struct {
			OutRequestNo string `json:"out_request_no"`
		}
		if json.Unmarshal(biz, &f) != nil || f.OutRequestNo == "" {
			err = errors.New("alipay.trade.refund needs an out_request_no, so that a retry cannot refund twice")
		}
	}
	if err != nil {
		return ev.replyJSON(w, http.StatusBadRequest, outcomeInvalid, err.Error(), map[string]string{"error": err.Error()})
	}
	var ids struct {
		OutTradeNo string `json:"out_trade_no"`
		TradeNo    string `json:"trade_no"`
	}
	_ = json.Unmarshal(biz, &ids)
	ev.outTradeNo, ev.tradeNo = ids.OutTradeNo, ids.TradeNo

	resp, err := h.callAPI(r.Context(), method, biz)
	if err != nil {
		var ae *apiError
		if !errors.As(err, &ae) {
			ae = &apiError{status: http.StatusBadGateway, msg: err.Error()}
		}
		body := map[string]string{"error": ae.msg}
		for k, v := range ae.fields {
			body[k] = v
		}
		return ev.replyJSON(w, ae.status, outcomeUpstreamFailed, ae.msg, body)
	}
	ev.outcome = outcomeOK
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(resp.Raw)
	return nil
}

// bearerToken reads the token of an Authorization header of the Bearer
// scheme, whose name is case-insensitive (RFC 7235 section 2.1).
func bearerToken(header string) (string, bool) {
	scheme, token, ok := strings.Cut(strings.TrimSpace(header), " ")
	token = strings.TrimSpace(token)
	if !ok || !strings.EqualFold(scheme, "Bearer") || token == "" {
		return "", false
	}
	return token, true
}

// readBizContent reads the request body, a JSON object, as compact JSON.
func readBizContent(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxCallbackSize))
	if err != nil {
		return nil, errors.New("body too large or unreadable")
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(body, &obj); err != nil || obj == nil {
		return nil, errors.New("the body must be the method's biz_content, a JSON object")
	}
	var compact bytes.Buffer
	if err := json.Compact(&compact, body); err != nil {
		return nil, err
	}
	return compact.Bytes(), nil
}

// callAPI signs method with bizContent as Alipay's SDKs sign an OpenAPI
// call, sends it to the gateway (the common parameters in the query,
// biz_content in the form body, as the SDKs' exec does) and returns the
// response once its signature holds.
func (h *Handler) callAPI(ctx context.Context, method string, bizContent []byte) (*Response, error) {
	params := h.requestParams(method, bizContent, now())
	if err := SignParams(h.signer, params); err != nil {
		return nil, err
	}
	query := url.Values{}
	for k, v := range params {
		if k != "biz_content" {
			query.Set(k, v)
		}
	}
	form := url.Values{"biz_content": {params["biz_content"]}}
	ctx, cancel := context.WithTimeout(ctx, h.apiTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, h.gatewayURL+"?"+query.Encode(), strings.NewReader(form.Encode()))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded;charset=utf-8")
	res, err := h.apiClient.Do(req)
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			return nil, &apiError{status: http.StatusGatewayTimeout, msg: "the gateway did not answer in time"}
		}
		return nil, &apiError{status: http.StatusBadGateway, msg: "the gateway could not be reached"}
	}
	defer res.Body.Close()
	body, err := io.ReadAll(io.LimitReader(res.Body, maxResponseSize+1))
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return nil, &apiError{status: http.StatusGatewayTimeout, msg: "the gateway did not answer in time"}
	case err != nil:
		return nil, &apiError{status: http.StatusBadGateway, msg: "reading the gateway's answer failed"}
	case len(body) > maxResponseSize:
		return nil, &apiError{status: http.StatusBadGateway, msg: "the gateway's answer is too large"}
	case res.StatusCode != http.StatusOK:
		return nil, &apiError{status: http.StatusBadGateway, msg: fmt.Sprintf("the gateway answered HTTP %d", res.StatusCode)}
	}
	resp, err := ParseResponse(body, method)
	if err != nil {
		return nil, &apiError{status: http.StatusBadGateway, msg: err.Error()}
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
		return nil, &apiError{status: http.StatusBadGateway, msg: "the gateway refused the call (error_response)", fields: out}
	}
	if h.alipayCertSN != "" && resp.CertSN != h.alipayCertSN {
		// Alipay rotated its certificate, or someone else answered: either
		// way the old key must not vouch for this.
		return nil, &apiError{status: http.StatusBadGateway, msg: "the answer names another Alipay certificate (alipay_cert_sn); download Alipay's current alipayCertPublicKey_RSA2.crt"}
	}
	if err := resp.Verify(h.verifier); err != nil {
		return nil, &apiError{status: http.StatusBadGateway, msg: "the gateway's answer is not signed by Alipay"}
	}
	return resp, nil
}

// queryTradeStatus asks alipay.trade.query for a trade's status, for
// query_on_return. It returns "" when there is no trustworthy answer.
func (h *Handler) queryTradeStatus(ctx context.Context, outTradeNo string) (string, error) {
	biz, _ := marshalNoEscape(map[string]string{"out_trade_no": outTradeNo})
	resp, err := h.callAPI(ctx, "alipay.trade.query", biz)
	if err != nil {
		return "", err
	}
	var v struct {
		Code        string `json:"code"`
		SubCode     string `json:"sub_code"`
		TradeStatus string `json:"trade_status"`
	}
	if err := json.Unmarshal(resp.Raw, &v); err != nil {
		return "", err
	}
	if v.Code != "10000" {
		return "", fmt.Errorf("alipay.trade.query: %s %s", v.Code, v.SubCode)
	}
	return v.TradeStatus, nil
}
