package alipay

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddy-alipay/caddy-alipay/internal/protocol"
	"github.com/caddy-alipay/caddy-alipay/internal/protocol/protocoltest"
	"github.com/caddy-alipay/caddy-alipay/internal/testvec"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// fakeGateway plays Alipay's OpenAPI gateway for the API tests: it checks
// the request as Alipay does and answers as it is told.
type fakeGateway struct {
	t      *testing.T
	mu     sync.Mutex
	answer func(method string, biz map[string]any) string // the whole body
	calls  []url.Values
}

func (g *fakeGateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	body, _ := io.ReadAll(r.Body)
	form, err := url.ParseQuery(string(body))
	require.NoError(g.t, err)
	// The SDKs' exec: common parameters and sign in the query, biz_content in the body.
	assert.Empty(g.t, q.Get("biz_content"))
	assert.Equal(g.t, "POST", r.Method)
	assert.Equal(g.t, "application/x-www-form-urlencoded;charset=utf-8", r.Header.Get("Content-Type"))
	params := map[string]string{"biz_content": form.Get("biz_content")}
	for k := range q {
		params[k] = q.Get(k)
	}
	for _, k := range []string{"app_id", "method", "format", "charset", "sign_type", "timestamp", "version"} {
		assert.NotEmpty(g.t, params[k], k)
	}
	v := protocoltest.Verifier(g.t, "app_public_key.pem", protocol.SignTypeRSA2)
	assert.NoError(g.t, v.Verify(protocol.RequestContent(params), params["sign"]), "the request is signed with the app key")
	var biz map[string]any
	require.NoError(g.t, json.Unmarshal([]byte(params["biz_content"]), &biz))
	g.mu.Lock()
	g.calls = append(g.calls, url.Values{"method": {params["method"]}, "biz_content": {params["biz_content"]}})
	answer := g.answer
	g.mu.Unlock()
	io.WriteString(w, answer(params["method"], biz))
}

func (g *fakeGateway) setAnswer(f func(method string, biz map[string]any) string) {
	g.mu.Lock()
	g.answer = f
	g.mu.Unlock()
}

func newAPIWorld(t *testing.T, edit func(*Handler)) (*Handler, *fakeGateway) {
	g := &fakeGateway{t: t}
	srv := httptest.NewServer(g)
	t.Cleanup(srv.Close)
	h := newTestHandler(t, func(h *Handler) {
		h.Gateway = srv.URL + "/gateway.do"
		if edit != nil {
			edit(h)
		}
	})
	return h, g
}

func bearer(t testing.TB, exp time.Duration) string {
	k, err := protocol.NewTokenKey(testSecret)
	require.NoError(t, err)
	tok, err := k.Sign(map[string]any{"exp": time.Now().Add(exp).Unix(), "scope": protocol.APIScope})
	require.NoError(t, err)
	return tok
}

func apiRequest(method, path, token, body string) *http.Request {
	r := httptest.NewRequest(method, "http://shop.example.com"+path, strings.NewReader(body))
	if token != "" {
		r.Header.Set("Authorization", "Bearer "+token)
	}
	r.Header.Set("Content-Type", "application/json")
	return r
}

const queryValue = `{"code":"10000","msg":"Success","trade_status":"TRADE_SUCCESS","out_trade_no":"A1","total_amount":"88.88","qr_code":"https:\/\/qr.alipay.com\/x","buyer_logon_id":"测***@example.com"}`

func TestAPIVerifiedAnswer(t *testing.T) {
	h, g := newAPIWorld(t, nil)
	g.setAnswer(func(method string, biz map[string]any) string { return protocoltest.SignedBody(t, method, queryValue) })
	next := &upstream{status: 200}
	w := serve(t, h, next, apiRequest("POST", "/alipay/api/alipay.trade.query", bearer(t, 5*time.Minute), `{"out_trade_no": "A1"}`))
	require.Equal(t, 200, w.Code, w.Body.String())
	assert.Equal(t, queryValue, w.Body.String(), "the signed value, byte for byte")
	assert.Equal(t, "application/json; charset=utf-8", w.Header().Get("Content-Type"))
	assert.Zero(t, next.calls)
	require.Len(t, g.calls, 1)
	assert.Equal(t, `{"out_trade_no":"A1"}`, g.calls[0].Get("biz_content"))

	// A business failure that Alipay signed is an answer like any other.
	failure := `{"code":"40004","msg":"Business Failed","sub_code":"ACQ.TRADE_NOT_EXIST","sub_msg":"交易不存在"}`
	g.setAnswer(func(method string, biz map[string]any) string { return protocoltest.SignedBody(t, method, failure) })
	w = serve(t, h, next, apiRequest("POST", "/alipay/api/alipay.trade.query", bearer(t, time.Minute), `{"out_trade_no":"X"}`))
	assert.Equal(t, 200, w.Code)
	assert.Equal(t, failure, w.Body.String())
}

// An unverifiable answer is never passed on as if it were good.
func TestAPIUntrustedAnswers(t *testing.T) {
	h, g := newAPIWorld(t, nil)
	h.client.Timeout = 200 * time.Millisecond
	good := protocoltest.SignedBody(t, "alipay.trade.query", queryValue)
	cases := map[string]struct {
		body   string
		delay  time.Duration
		status int
		want   string
	}{
		"tampered":        {strings.Replace(good, "88.88", "0.01", 1), 0, 502, "not signed by Alipay"},
		"unsigned":        {`{"alipay_trade_query_response":` + queryValue + `}`, 0, 502, "not signed by Alipay"},
		"signed by other": {strings.Replace(good, `"sign":"`, `"sign":"A`, 1), 0, 502, "not signed by Alipay"},
		"another method":  {protocoltest.SignedBody(t, "alipay.trade.refund", queryValue), 0, 502, "no alipay_trade_query_response"},
		"duplicated key":  {strings.Replace(good, `,"sign"`, `,"alipay_trade_query_response":{"code":"10000"},"sign"`, 1), 0, 502, "given twice"},
		"not JSON":        {"<html>busy</html>", 0, 502, "not a JSON object"},
		"error_response":  {`{"error_response":{"code":"40002","msg":"Invalid Arguments","sub_code":"isv.invalid-signature","sub_msg":"验签出错"}}`, 0, 502, `"sub_code":"isv.invalid-signature"`},
		"too slow":        {good, time.Second, 504, "in time"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			g.setAnswer(func(string, map[string]any) string { time.Sleep(c.delay); return c.body })
			w := serve(t, h, &upstream{}, apiRequest("POST", "/alipay/api/alipay.trade.query", bearer(t, time.Minute), `{"out_trade_no":"A1"}`))
			assert.Equal(t, c.status, w.Code)
			assert.Contains(t, w.Body.String(), c.want)
			assert.NotContains(t, w.Body.String(), "TRADE_SUCCESS")
			var body map[string]string
			assert.NoError(t, json.Unmarshal(w.Body.Bytes(), &body), "errors are JSON")
			assert.NotEmpty(t, body["error"])
		})
	}
	t.Run("unreachable", func(t *testing.T) {
		h2 := newTestHandler(t, func(h *Handler) { h.Gateway = "http://127.0.0.1:1/gateway.do" })
		w := serve(t, h2, &upstream{}, apiRequest("POST", "/alipay/api/alipay.trade.query", bearer(t, time.Minute), `{"out_trade_no":"A1"}`))
		assert.Equal(t, 502, w.Code)
	})
}

func TestAPIRefused(t *testing.T) {
	h, g := newAPIWorld(t, func(h *Handler) { h.APIMethods = []string{"alipay.trade.query", "alipay.trade.refund"} })
	g.setAnswer(func(method string, biz map[string]any) string { return protocoltest.SignedBody(t, method, queryValue) })
	good := bearer(t, 5*time.Minute)
	cases := map[string]struct {
		method, path, token, body string
		status                    int
	}{
		"no token":                      {"POST", "/alipay/api/alipay.trade.query", "", `{}`, 401},
		"garbage token":                 {"POST", "/alipay/api/alipay.trade.query", "x.y.z", `{}`, 401},
		"expired":                       {"POST", "/alipay/api/alipay.trade.query", bearer(t, -time.Second), `{}`, 401},
		"exp too far ahead":             {"POST", "/alipay/api/alipay.trade.query", bearer(t, 11*time.Minute), `{}`, 401},
		"alg none":                      {"POST", "/alipay/api/alipay.trade.query", protocoltest.RawToken(testSecret, `{"alg":"none"}`, fmt.Sprintf(`{"exp":%d}`, time.Now().Unix()+60)), `{}`, 401},
		"a pay token":                   {"POST", "/alipay/api/alipay.trade.refund", payToken(t, map[string]any{"out_trade_no": "A1", "total_amount": "1", "subject": "s", "exp": time.Now().Add(5 * time.Minute).Unix()}), `{"out_trade_no":"A1","refund_amount":"1.00","out_request_no":"R9"}`, 401},
		"other scope":                   {"POST", "/alipay/api/alipay.trade.query", protocoltest.RawToken(testSecret, `{"alg":"HS256"}`, fmt.Sprintf(`{"exp":%d,"scope":"admin"}`, time.Now().Unix()+60)), `{}`, 401},
		"not in api_methods":            {"POST", "/alipay/api/alipay.trade.close", good, `{}`, 404},
		"unknown method":                {"POST", "/alipay/api/alipay.fund.trans.uni.transfer", good, `{}`, 404},
		"no method":                     {"POST", "/alipay/api/", good, `{}`, 404},
		"deeper path":                   {"POST", "/alipay/api/alipay.trade.query/x", good, `{}`, 404},
		"GET":                           {"GET", "/alipay/api/alipay.trade.query", good, ``, 405},
		"body not an object":            {"POST", "/alipay/api/alipay.trade.query", good, `["A1"]`, 400},
		"body not JSON":                 {"POST", "/alipay/api/alipay.trade.query", good, `out_trade_no=A1`, 400},
		"refund without out_request_no": {"POST", "/alipay/api/alipay.trade.refund", good, `{"out_trade_no":"A1","refund_amount":"1.00"}`, 400},
		// Alipay reads names exactly; Go's decoder would take these for
		// out_request_no, and the last of two names wins in it.
		"OUT_REQUEST_NO":                 {"POST", "/alipay/api/alipay.trade.refund", good, `{"out_trade_no":"A1","refund_amount":"1.00","OUT_REQUEST_NO":"R1"}`, 400},
		"Out_Request_No":                 {"POST", "/alipay/api/alipay.trade.refund", good, `{"out_trade_no":"A1","refund_amount":"1.00","Out_Request_No":"R1"}`, 400},
		"out_request_no empty":           {"POST", "/alipay/api/alipay.trade.refund", good, `{"out_trade_no":"A1","refund_amount":"1.00","out_request_no":""}`, 400},
		"out_request_no a number":        {"POST", "/alipay/api/alipay.trade.refund", good, `{"out_trade_no":"A1","refund_amount":"1.00","out_request_no":1}`, 400},
		"out_request_no twice":           {"POST", "/alipay/api/alipay.trade.refund", good, `{"out_trade_no":"A1","refund_amount":"1.00","out_request_no":"R1","out_request_no":""}`, 400},
		"out_request_no in two cases":    {"POST", "/alipay/api/alipay.trade.refund", good, `{"out_trade_no":"A1","refund_amount":"1.00","out_request_no":"R1","OUT_REQUEST_NO":""}`, 400},
		"a name twice, deeper":           {"POST", "/alipay/api/alipay.trade.query", good, `{"out_trade_no":"A1","extend_params":{"a":1,"A":2}}`, 400},
		"out_trade_no twice, in a query": {"POST", "/alipay/api/alipay.trade.query", good, `{"out_trade_no":"A1","out_trade_no":"A2"}`, 400},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			w := serve(t, h, &upstream{}, apiRequest(c.method, c.path, c.token, c.body))
			assert.Equal(t, c.status, w.Code, w.Body.String())
			if c.status == 401 {
				assert.Contains(t, w.Header().Get("WWW-Authenticate"), "Bearer")
			}
		})
	}
	assert.Empty(t, g.calls, "nothing refused reached the gateway")
	w := serve(t, h, &upstream{}, apiRequest("POST", "/alipay/api/alipay.trade.refund", good, `{"out_trade_no":"A1","refund_amount":"1.00","out_request_no":"R1"}`))
	assert.Equal(t, 200, w.Code)
}

// query_on_return: the return's token carries alipay.trade.query's answer,
// or no trade_status at all when there is no trustworthy answer.
func TestQueryOnReturn(t *testing.T) {
	fixClock(t, time.Now())
	vec := testvec.Load(t)
	u, err := url.Parse(vec.Return.RedirectURL)
	require.NoError(t, err)
	h, g := newAPIWorld(t, func(h *Handler) { h.QueryOnReturn = true })
	answer := func(outTradeNo, tradeNo string) string {
		return `{"code":"10000","msg":"Success","trade_status":"TRADE_SUCCESS","out_trade_no":"` + outTradeNo +
			`","trade_no":"` + tradeNo + `","total_amount":"88.88"}`
	}
	no, tradeNo := u.Query().Get("out_trade_no"), u.Query().Get("trade_no")
	require.NotEmpty(t, tradeNo)
	for name, c := range map[string]struct {
		answer string
		want   string
	}{
		"paid": {protocoltest.SignedBody(t, "alipay.trade.query", answer(no, tradeNo)), `"TRADE_SUCCESS"`},
		"no trade_no in the answer": {protocoltest.SignedBody(t, "alipay.trade.query",
			`{"code":"10000","msg":"Success","trade_status":"TRADE_SUCCESS","out_trade_no":"`+no+`"}`), `"TRADE_SUCCESS"`},
		"not signed": {`{"alipay_trade_query_response":` + answer(no, tradeNo) + `}`, ""},
		"not found":  {protocoltest.SignedBody(t, "alipay.trade.query", `{"code":"40004","msg":"Business Failed","sub_code":"ACQ.TRADE_NOT_EXIST"}`), ""},
		// Signed by Alipay, but about another trade: a replayed answer.
		"another out_trade_no":     {protocoltest.SignedBody(t, "alipay.trade.query", answer("A1", tradeNo)), ""},
		"another trade_no":         {protocoltest.SignedBody(t, "alipay.trade.query", answer(no, "2024000000000000000000000001")), ""},
		"out_trade_no in capitals": {protocoltest.SignedBody(t, "alipay.trade.query", strings.Replace(answer("A1", tradeNo), `,"out_trade_no"`, `,"OUT_TRADE_NO":"`+no+`","out_trade_no"`, 1)), ""},
	} {
		t.Run(name, func(t *testing.T) {
			g.setAnswer(func(method string, biz map[string]any) string {
				assert.Equal(t, "alipay.trade.query", method)
				assert.Equal(t, "20240520131415000001", biz["out_trade_no"])
				return c.answer
			})
			next := &upstream{status: 200}
			w := serve(t, h, next, httptest.NewRequest("GET", "http://shop.example.com/alipay/return?"+u.RawQuery, nil))
			require.Equal(t, 200, w.Code)
			require.Equal(t, 1, next.calls, "the return goes on either way")
			claims, err := h.tokens.Parse(next.req.Header.Get(TokenHeader), now())
			require.NoError(t, err)
			assert.Equal(t, c.want, string(claims["trade_status"]))
		})
	}
}

// Concurrent returns of one trade share one query; past the bound on
// queries in flight, returns go on at once without the claim.
func TestQueryOnReturnBounded(t *testing.T) {
	fixClock(t, time.Now())
	h, g := newAPIWorld(t, func(h *Handler) { h.QueryOnReturn = true })
	logs := observe(h)
	release := make(chan struct{})
	var asked sync.Map // out_trade_no → count
	g.setAnswer(func(method string, biz map[string]any) string {
		n, _ := asked.LoadOrStore(biz["out_trade_no"], new(atomic.Int32))
		n.(*atomic.Int32).Add(1)
		<-release
		no := biz["out_trade_no"].(string)
		return protocoltest.SignedBody(t, method, `{"code":"10000","msg":"Success","trade_status":"TRADE_SUCCESS","out_trade_no":"`+no+`"}`)
	})
	ret := testvec.Load(t).Return.Params
	returnOf := func(no string) *http.Request {
		p := maps.Clone(ret)
		p["out_trade_no"] = no
		return httptest.NewRequest("GET", "http://shop.example.com/alipay/return?"+protocoltest.SignedCallback(t, p), nil)
	}
	type result struct {
		code        int
		tradeStatus string
	}
	run := func(r *http.Request, out chan<- result) {
		next := &upstream{status: 200}
		w := serve(t, h, next, r)
		res := result{code: w.Code}
		if next.req != nil {
			claims, err := h.tokens.Parse(next.req.Header.Get(TokenHeader), now())
			assert.NoError(t, err) // not require: this runs in goroutines
			res.tradeStatus = string(claims["trade_status"])
		}
		out <- res
	}
	// Ten returns of one trade while its query hangs: one gateway call.
	same := make(chan result, 10)
	for range 10 {
		go run(returnOf("SAME1"), same)
	}
	require.Eventually(t, func() bool { n, ok := asked.Load("SAME1"); return ok && n.(*atomic.Int32).Load() == 1 }, 5*time.Second, time.Millisecond)
	// Other trades fill the remaining slots; beyond them, returns go on at once.
	held := make(chan result, maxReturnQueries)
	for i := range maxReturnQueries - 1 {
		go run(returnOf(fmt.Sprintf("HELD%d", i)), held)
	}
	require.Eventually(t, func() bool {
		n := 0
		asked.Range(func(any, any) bool { n++; return true })
		return n == maxReturnQueries
	}, 5*time.Second, time.Millisecond)
	over := make(chan result, 1)
	run(returnOf("OVER1"), over)
	res := <-over
	assert.Equal(t, 200, res.code)
	assert.Empty(t, res.tradeStatus, "past the bound, no claim")
	_, askedOver := asked.Load("OVER1")
	assert.False(t, askedOver, "past the bound, no call")
	assert.Contains(t, lastEvent(t, logs)["reason"], "too many queries in flight")

	close(release)
	for range 10 {
		r := <-same
		assert.Equal(t, 200, r.code)
		assert.Equal(t, `"TRADE_SUCCESS"`, r.tradeStatus)
	}
	for range maxReturnQueries - 1 {
		assert.Equal(t, `"TRADE_SUCCESS"`, (<-held).tradeStatus)
	}
	n, _ := asked.Load("SAME1")
	assert.Equal(t, int32(1), n.(*atomic.Int32).Load(), "one query for the ten returns")
}
