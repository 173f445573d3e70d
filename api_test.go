package alipay

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddy-alipay/caddy-alipay/internal/protocol"
	"github.com/caddy-alipay/caddy-alipay/internal/protocol/protocoltest"
	"github.com/caddy-alipay/caddy-alipay/internal/testvec"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// fakeGateway plays Alipay's OpenAPI gateway for the tests of the API and
// of query_on_return: it checks the request as Alipay does and answers as
// it is told.
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

// The Authorization scheme's name is case-insensitive.
func TestAPIBearerScheme(t *testing.T) {
	h, g := newAPIWorld(t, nil)
	g.setAnswer(func(method string, biz map[string]any) string { return protocoltest.SignedBody(t, method, queryValue) })
	tok := bearer(t, time.Minute)
	for header, status := range map[string]int{
		"Bearer " + tok:         200,
		"bearer " + tok:         200,
		"BEARER  " + tok:        200,
		"Basic " + tok:          401,
		"Bearer":                401,
		"Bearer ":               401,
		tok:                     401,
		"Bearer" + tok:          401,
		"Bearer x " + tok:       401,
		"Token " + tok:          401,
		"  bearer " + tok + " ": 200,
	} {
		r := apiRequest("POST", "/alipay/api/alipay.trade.query", "", `{"out_trade_no":"A1"}`)
		r.Header.Set("Authorization", header)
		assert.Equal(t, status, serve(t, h, &upstream{}, r).Code, "%q", header)
	}
}

// Every signed request carries the serial numbers, signed with the rest.
func TestCertModeRequests(t *testing.T) {
	h, g := newAPIWorld(t, certMode)
	tok := payToken(t, map[string]any{"out_trade_no": "C1", "total_amount": "1", "subject": "cert"})
	w := serve(t, h, &upstream{}, httptest.NewRequest("GET", "http://shop.example.com/alipay/pay?token="+tok, nil))
	loc, err := url.Parse(w.Header().Get("Location"))
	require.NoError(t, err)
	params := map[string]string{}
	for k := range loc.Query() {
		params[k] = loc.Query().Get(k)
	}
	assert.Equal(t, "a810ae600acd4de14858a277a600aa06", params["app_cert_sn"])
	assert.Equal(t, "b04ff0e1d8d025e3d0abf6b7a0884742_189e35c3bd7baa0cbfaefa9c7cc62695", params["alipay_root_cert_sn"])
	require.NoError(t, protocoltest.Verifier(t, "app_public_key.pem", protocol.SignTypeRSA2).Verify(protocol.RequestContent(params), params["sign"]))

	// Responses must name alipay_cert: the vector's certificate-mode refund does.
	refund := testvec.Load(t).Responses.Cases[3]
	require.Contains(t, refund.RawBody, `"alipay_cert_sn":"5e57030bba758a176a2dcead790355b0"`)
	for name, c := range map[string]struct {
		body   string
		status int
	}{
		"its certificate":     {refund.RawBody, 200},
		"another certificate": {strings.Replace(refund.RawBody, "5e57030bba758a176a2dcead790355b0", "00000000000000000000000000000000", 1), 502},
		"no certificate":      {strings.Replace(refund.RawBody, `"alipay_cert_sn":"5e57030bba758a176a2dcead790355b0",`, "", 1), 502},
	} {
		t.Run(name, func(t *testing.T) {
			g.setAnswer(func(method string, biz map[string]any) string { return c.body })
			w := serve(t, h, &upstream{}, apiRequest("POST", "/alipay/api/alipay.trade.refund", bearer(t, time.Minute),
				`{"out_trade_no":"20240520131415000001","refund_amount":"10.00","out_request_no":"R1"}`))
			assert.Equal(t, c.status, w.Code, w.Body.String())
			if c.status == 200 {
				var v map[string]string
				require.NoError(t, json.Unmarshal(w.Body.Bytes(), &v))
				assert.Equal(t, "10.00", v["refund_fee"])
			}
		})
	}
	require.NotEmpty(t, g.calls)
}

// A refused pay link or bearer says why in a few words: enough for the
// shop's developer to fix the token, and never the secret.
func TestTokenRefusalReasons(t *testing.T) {
	h, _ := newAPIWorld(t, nil)
	noExp := protocoltest.RawToken(testSecret, `{"alg":"HS256"}`, `{"out_trade_no":"A1","total_amount":"1.00","subject":"s","scope":"api"}`)
	other, err := protocol.NewTokenKey(strings.Repeat("z", 32))
	require.NoError(t, err)
	forged, err := other.Sign(map[string]any{"exp": time.Now().Add(time.Minute).Unix(), "scope": protocol.APIScope})
	require.NoError(t, err)
	pay := payToken(t, map[string]any{"out_trade_no": "A1", "total_amount": "1", "subject": "s", "exp": time.Now().Add(5 * time.Minute).Unix()})
	expiredPay := payToken(t, map[string]any{"out_trade_no": "A1", "total_amount": "1", "subject": "s", "exp": time.Now().Add(-time.Second).Unix()})

	for token, want := range map[string]string{
		"x":                       `invalid bearer token: not a JWT`,
		forged:                    `invalid bearer token: the signature does not verify: signed with another secret`,
		noExp:                     `invalid bearer token: no exp claim`,
		bearer(t, -time.Second):   `invalid bearer token: expired`,
		bearer(t, 11*time.Minute): `invalid bearer token: exp is more than 10m0s ahead`,
		pay:                       `invalid bearer token: scope is not \"api\"`,
	} {
		w := serve(t, h, &upstream{}, apiRequest("POST", "/alipay/api/alipay.trade.query", token, `{"out_trade_no":"A1"}`))
		assert.Equal(t, http.StatusUnauthorized, w.Code)
		assert.Contains(t, w.Body.String(), want)
		assert.NotContains(t, w.Body.String(), testSecret[:16])
	}
	// Text that the client wrote into a token never comes back: a link
	// cannot make the shop's site say what it likes.
	spoof := protocoltest.RawToken(testSecret, `{"alg":"Your order is cancelled: call 400-000-0000"}`, `{"exp":9999999999}`)
	for token, want := range map[string]string{
		"x":        "invalid payment token: not a JWT",
		spoof:      "invalid payment token: alg is not HS256\n",
		forged:     "invalid payment token: the signature does not verify",
		noExp:      "invalid payment token: no exp claim",
		expiredPay: "this payment link has expired\n",
	} {
		w := serve(t, h, &upstream{}, httptest.NewRequest("GET", "http://shop.example.com/alipay/pay?token="+token, nil))
		assert.Equal(t, http.StatusForbidden, w.Code)
		assert.Contains(t, w.Body.String(), want)
		assert.NotContains(t, w.Body.String(), "call 400")
		assert.Equal(t, "nosniff", w.Header().Get("X-Content-Type-Options"))
	}
}
