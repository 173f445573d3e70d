package protocol

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddy-alipay/caddy-alipay/internal/testvec"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// clientNow is the time of every test call: 2024-05-20 13:14:15 in Beijing.
var clientNow = time.Date(2024, 5, 20, 5, 14, 15, 0, time.UTC)

// queryAnswer is a verified alipay.trade.query answer about trade A1.
const queryAnswer = `{"code":"10000","msg":"Success","out_trade_no":"A1","trade_no":"2024052022001400000000000001","trade_status":"TRADE_SUCCESS","total_amount":"88.88"}`

// testGateway serves h as an OpenAPI gateway and returns a client of the
// vectors' app that calls it as the sidecar does: NoRedirectClient, a
// timeout that a test never reaches unless it means to.
func testGateway(t *testing.T, h http.HandlerFunc) *Client {
	t.Helper()
	gw := httptest.NewServer(h)
	t.Cleanup(gw.Close)
	return testClient(t, gw.URL+"/gateway.do")
}

// testClient is that client, of the gateway URL gateway.
func testClient(t *testing.T, gateway string) *Client {
	t.Helper()
	api := &OpenAPI{
		AppID:    testvec.AppID,
		Signer:   testSigner(t, "app_private_key_pkcs1.pem", SignTypeRSA2),
		Verifier: testVerifier(t, "alipay_public_key.pem", SignTypeRSA2),
		Gateway:  gateway,
	}
	return &Client{API: api, HTTP: NoRedirectClient(0), Timeout: 10 * time.Second, Now: func() time.Time { return clientNow }}
}

// answer is a handler that writes body with status.
func answer(status int, body string) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html;charset=utf-8")
		w.WriteHeader(status)
		_, _ = w.Write([]byte(body))
	}
}

// requireCallError asserts that err is a *CallError of kind, and returns it.
func requireCallError(t *testing.T, err error, kind CallErrorKind) *CallError {
	t.Helper()
	var ce *CallError
	require.ErrorAs(t, err, &ce)
	require.Equal(t, kind, ce.Kind, ce.Msg)
	return ce
}

// A call is signed as the SDKs sign one and sent as their exec sends it:
// a POST with the common parameters in the query and biz_content in the
// form body. A verified answer comes back as the raw response value.
func TestClientCallVerified(t *testing.T) {
	appKey := testVerifier(t, "app_public_key.pem", SignTypeRSA2)
	var asked atomic.Int32
	c := testGateway(t, func(w http.ResponseWriter, r *http.Request) {
		asked.Add(1)
		assert.Equal(t, http.MethodPost, r.Method)
		assert.Equal(t, "/gateway.do", r.URL.Path)
		assert.Equal(t, "application/x-www-form-urlencoded;charset=utf-8", r.Header.Get("Content-Type"))
		q := r.URL.Query()
		assert.NotContains(t, q, "biz_content", "biz_content travels in the body")
		assert.NoError(t, r.ParseForm())
		assert.Equal(t, []string{`{"out_trade_no":"A1"}`}, r.PostForm["biz_content"])
		params := map[string]string{}
		for k := range r.Form {
			params[k] = r.Form.Get(k)
		}
		assert.Equal(t, "alipay.trade.query", params["method"])
		assert.Equal(t, testvec.AppID, params["app_id"])
		assert.Equal(t, "2024-05-20 13:14:15", params["timestamp"])
		assert.NoError(t, appKey.Verify(RequestContent(params), params["sign"]), "signed with the app's key over every parameter")
		_, _ = w.Write([]byte(signedBody(t, "alipay.trade.query", queryAnswer)))
	})
	var timed []string
	c.Timer = func(method string, took time.Duration) {
		assert.Positive(t, took)
		timed = append(timed, method)
	}
	resp, err := c.Call(context.Background(), "alipay.trade.query", []byte(`{"out_trade_no":"A1"}`))
	require.NoError(t, err)
	assert.Equal(t, queryAnswer, string(resp.Raw))
	assert.False(t, resp.IsError)
	assert.NotEmpty(t, resp.Sign)
	assert.Equal(t, int32(1), asked.Load())
	assert.Equal(t, []string{"alipay.trade.query"}, timed, "the Timer is told of each call, by method")
}

// An answer that Alipay's key did not sign is refused, whatever it says.
func TestClientCallNotSigned(t *testing.T) {
	byApp, err := SignedResponse("alipay.trade.query", []byte(queryAnswer), "", testSigner(t, "app_private_key_pkcs1.pem", SignTypeRSA2))
	require.NoError(t, err)
	for name, body := range map[string]string{
		"another key": string(byApp),
		"tampered":    strings.Replace(signedBody(t, "alipay.trade.query", queryAnswer), "88.88", "0.01", 1),
		"no sign":     `{"alipay_trade_query_response":` + queryAnswer + `}`,
	} {
		t.Run(name, func(t *testing.T) {
			c := testGateway(t, answer(http.StatusOK, body))
			resp, err := c.Call(context.Background(), "alipay.trade.query", []byte(`{}`))
			assert.Nil(t, resp)
			ce := requireCallError(t, err, CallBadAnswer)
			assert.Contains(t, ce.Msg, "not signed by Alipay")
		})
	}
}

// An unsigned error_response (a failure of the call itself) is passed on
// as CallRefused with its code, msg, sub_code and sub_msg, and nothing
// else of it; a signed one is Alipay's answer, returned as a response.
func TestClientCallErrorResponse(t *testing.T) {
	c := testGateway(t, answer(http.StatusOK, `{"error_response":{"code":"40002","msg":"Invalid Arguments",`+
		`"sub_code":"isv.invalid-app-id","sub_msg":"无效的AppID参数","extra":"x","empty":""}}`))
	resp, err := c.Call(context.Background(), "alipay.trade.query", []byte(`{}`))
	assert.Nil(t, resp)
	ce := requireCallError(t, err, CallRefused)
	assert.Equal(t, map[string]string{"code": "40002", "msg": "Invalid Arguments", "sub_code": "isv.invalid-app-id", "sub_msg": "无效的AppID参数"}, ce.Fields)

	c = testGateway(t, answer(http.StatusOK, `{"error_response":{"code":"20000","msg":"Service Currently Unavailable","sub_msg":""}}`))
	_, err = c.Call(context.Background(), "alipay.trade.query", []byte(`{}`))
	ce = requireCallError(t, err, CallRefused)
	assert.Equal(t, map[string]string{"code": "20000", "msg": "Service Currently Unavailable"}, ce.Fields, "empty values left out")

	const failure = `{"code":"40002","msg":"Invalid Arguments"}`
	c = testGateway(t, answer(http.StatusOK, signedBody(t, "error", failure)))
	resp, err = c.Call(context.Background(), "alipay.trade.query", []byte(`{}`))
	require.NoError(t, err)
	assert.True(t, resp.IsError)
	assert.Equal(t, failure, string(resp.Raw))
}

// A status other than 200 is no answer, even with a signed body.
func TestClientCallStatus(t *testing.T) {
	for _, status := range []int{http.StatusInternalServerError, http.StatusBadGateway, http.StatusNotFound, http.StatusNoContent} {
		c := testGateway(t, answer(status, signedBody(t, "alipay.trade.query", queryAnswer)))
		_, err := c.Call(context.Background(), "alipay.trade.query", []byte(`{}`))
		ce := requireCallError(t, err, CallBadAnswer)
		assert.Equal(t, "the gateway answered HTTP "+strconv.Itoa(status), ce.Msg)
	}
}

// An answer of MaxResponseSize bytes is read; one byte more is refused
// without being parsed.
func TestClientCallMaxResponseSize(t *testing.T) {
	// A signed answer padded to exactly MaxResponseSize bytes: the sign of
	// a 2048-bit key has a fixed length, so only the padding varies.
	pad := func(n int) string {
		return signedBody(t, "alipay.trade.query", `{"code":"10000","msg":"Success","pad":"`+strings.Repeat("x", n)+`"}`)
	}
	body := pad(MaxResponseSize - len(pad(0)))
	require.Len(t, body, MaxResponseSize)
	c := testGateway(t, answer(http.StatusOK, body))
	_, err := c.Call(context.Background(), "alipay.trade.query", []byte(`{}`))
	require.NoError(t, err, "an answer of MaxResponseSize bytes")

	c = testGateway(t, answer(http.StatusOK, body+" "))
	_, err = c.Call(context.Background(), "alipay.trade.query", []byte(`{}`))
	ce := requireCallError(t, err, CallBadAnswer)
	assert.Contains(t, ce.Msg, "too large")
}

// hang answers nothing until the client gives up. It reads the request
// first: the server notices a closed connection, and ends the request's
// context, only once the body is read.
func hang(_ http.ResponseWriter, r *http.Request) {
	_, _ = io.Copy(io.Discard, r.Body)
	<-r.Context().Done()
}

// A gateway that does not answer within Timeout, before the headers or in
// the middle of the body, is CallTimeout; the caller's own deadline counts
// the same way.
func TestClientCallTimeout(t *testing.T) {
	for name, h := range map[string]http.HandlerFunc{
		"no headers": hang,
		"half a body": func(w http.ResponseWriter, r *http.Request) {
			_, _ = w.Write([]byte(`{"alipay_trade_query_response":`))
			w.(http.Flusher).Flush()
			hang(w, r)
		},
	} {
		t.Run(name, func(t *testing.T) {
			c := testGateway(t, h)
			c.Timeout = 50 * time.Millisecond
			start := time.Now()
			_, err := c.Call(context.Background(), "alipay.trade.query", []byte(`{}`))
			requireCallError(t, err, CallTimeout)
			assert.Less(t, time.Since(start), 5*time.Second)
		})
	}
	c := testGateway(t, hang)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err := c.Call(ctx, "alipay.trade.query", []byte(`{}`))
	requireCallError(t, err, CallTimeout)
}

// No gateway listening, or one that hangs up without an answer, is
// CallUnreachable.
func TestClientCallUnreachable(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	require.NoError(t, l.Close())
	c := testClient(t, "http://"+addr+"/gateway.do")
	_, err = c.Call(context.Background(), "alipay.trade.query", []byte(`{}`))
	requireCallError(t, err, CallUnreachable)

	c = testGateway(t, func(w http.ResponseWriter, r *http.Request) {
		conn, _, err := w.(http.Hijacker).Hijack()
		if assert.NoError(t, err) {
			_ = conn.Close()
		}
	})
	_, err = c.Call(context.Background(), "alipay.trade.query", []byte(`{}`))
	requireCallError(t, err, CallUnreachable)
}

// A redirect that the gateway answers is that answer, not followed: the
// client of NoRedirectClient never asks where it points.
func TestClientCallRedirectNotFollowed(t *testing.T) {
	var followed atomic.Int32
	elsewhere := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		followed.Add(1)
		_, _ = w.Write([]byte(signedBody(t, "alipay.trade.query", queryAnswer)))
	}))
	defer elsewhere.Close()
	for _, status := range []int{http.StatusFound, http.StatusTemporaryRedirect, http.StatusPermanentRedirect} {
		c := testGateway(t, func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, elsewhere.URL+"/gateway.do?"+r.URL.RawQuery, status)
		})
		_, err := c.Call(context.Background(), "alipay.trade.query", []byte(`{}`))
		ce := requireCallError(t, err, CallBadAnswer)
		assert.Equal(t, "the gateway answered HTTP "+strconv.Itoa(status), ce.Msg)
	}
	assert.Zero(t, followed.Load(), "the redirect's target was never asked")
}

// In certificate mode every request names the app's certificate and
// Alipay's root, and an answer must name the configured Alipay
// certificate: another one (a rotated key, or someone else) is refused
// even though the old key verifies it.
func TestClientCallCertSN(t *testing.T) {
	alipayKey := testSigner(t, "alipay_private_key_pkcs1.pem", SignTypeRSA2)
	for name, c := range map[string]struct {
		certSN string // in the answer
		ok     bool
	}{
		"the configured one": {"alipay-sn", true},
		"another":            {"rotated-sn", false},
		"none":               {"", false},
	} {
		t.Run(name, func(t *testing.T) {
			body, err := SignedResponse("alipay.trade.query", []byte(queryAnswer), c.certSN, alipayKey)
			require.NoError(t, err)
			var query url.Values
			client := testGateway(t, func(w http.ResponseWriter, r *http.Request) {
				query = r.URL.Query()
				_, _ = w.Write(body)
			})
			client.API.AppCertSN, client.API.RootCertSN, client.API.AlipayCertSN = "app-sn", "root-sn", "alipay-sn"
			resp, err := client.Call(context.Background(), "alipay.trade.query", []byte(`{}`))
			assert.Equal(t, "app-sn", query.Get("app_cert_sn"))
			assert.Equal(t, "root-sn", query.Get("alipay_root_cert_sn"))
			if c.ok {
				require.NoError(t, err)
				assert.Equal(t, "alipay-sn", resp.CertSN)
				return
			}
			ce := requireCallError(t, err, CallBadAnswer)
			assert.Contains(t, ce.Msg, "alipay_cert_sn")
		})
	}
}

// TradeStatus asks alipay.trade.query about out_trade_no and returns the
// trade_status of a verified answer with code 10000 about that trade.
func TestClientTradeStatus(t *testing.T) {
	const tradeNo = "2024052022001400000000000001"
	var asked url.Values
	answerWith := func(value string) *Client {
		return testGateway(t, func(w http.ResponseWriter, r *http.Request) {
			assert.NoError(t, r.ParseForm())
			asked = r.Form
			_, _ = w.Write([]byte(signedBody(t, "alipay.trade.query", value)))
		})
	}
	c := answerWith(queryAnswer)
	status, err := c.TradeStatus(context.Background(), "A1", tradeNo)
	require.NoError(t, err)
	assert.Equal(t, "TRADE_SUCCESS", status)
	assert.Equal(t, "alipay.trade.query", asked.Get("method"))
	assert.Equal(t, `{"out_trade_no":"A1"}`, asked.Get("biz_content"))

	status, err = c.TradeStatus(context.Background(), "A1", "")
	require.NoError(t, err, "without Alipay's trade_no")
	assert.Equal(t, "TRADE_SUCCESS", status)
	c = answerWith(`{"code":"10000","msg":"Success","out_trade_no":"A1","trade_status":"WAIT_BUYER_PAY"}`)
	status, err = c.TradeStatus(context.Background(), "A1", tradeNo)
	require.NoError(t, err, "an answer without trade_no")
	assert.Equal(t, "WAIT_BUYER_PAY", status)

	for name, tc := range map[string]struct {
		value, want string
	}{
		"another out_trade_no": {strings.Replace(queryAnswer, `"A1"`, `"A2"`, 1), "out_trade_no"},
		"another trade_no":     {strings.Replace(queryAnswer, tradeNo, "2024052022001400000000000002", 1), "trade_no"},
		"no out_trade_no":      {`{"code":"10000","msg":"Success","trade_status":"TRADE_SUCCESS"}`, "out_trade_no"},
		"not found": {`{"code":"40004","msg":"Business Failed","sub_code":"ACQ.TRADE_NOT_EXIST","sub_msg":"交易不存在","out_trade_no":"A1"}`,
			"40004 ACQ.TRADE_NOT_EXIST"},
		"no code": {`{"msg":"Success","out_trade_no":"A1","trade_status":"TRADE_SUCCESS"}`, "alipay.trade.query"},
		// Names are read exactly, as Alipay writes them: encoding/json
		// would take OUT_TRADE_NO for out_trade_no.
		"OUT_TRADE_NO": {`{"code":"10000","msg":"Success","OUT_TRADE_NO":"A1","trade_status":"TRADE_SUCCESS"}`, "out_trade_no"},
		"CODE":         {`{"CODE":"10000","msg":"Success","out_trade_no":"A1","trade_status":"TRADE_SUCCESS"}`, "alipay.trade.query"},
	} {
		t.Run(name, func(t *testing.T) {
			status, err := answerWith(tc.value).TradeStatus(context.Background(), "A1", tradeNo)
			require.Error(t, err)
			assert.Empty(t, status)
			assert.ErrorContains(t, err, tc.want)
			var ce *CallError
			assert.False(t, errors.As(err, &ce), "a verified answer, refused by TradeStatus itself")
		})
	}

	// TRADE_STATUS is not trade_status either.
	c = answerWith(`{"code":"10000","msg":"Success","out_trade_no":"A1","TRADE_STATUS":"TRADE_SUCCESS"}`)
	status, err = c.TradeStatus(context.Background(), "A1", tradeNo)
	require.NoError(t, err)
	assert.Empty(t, status)

	// A call that failed fails TradeStatus with the CallError.
	c = testGateway(t, answer(http.StatusOK, `{"error_response":{"code":"40002","msg":"Invalid Arguments"}}`))
	_, err = c.TradeStatus(context.Background(), "A1", tradeNo)
	requireCallError(t, err, CallRefused)
}
