package protocol

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// fakeClock is a Clock whose Sleep returns at once, moving the time on.
type fakeClock struct {
	mu     sync.Mutex
	now    time.Time
	sleeps []time.Duration
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Sleep(_ context.Context, d time.Duration) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	c.sleeps = append(c.sleeps, d)
	return nil
}

// scriptedGateway answers each method's calls in turn from its script
// (the last answer again once the script runs out): a response value,
// signed, or "" for no answer (the connection closed).
type scriptedGateway struct {
	t      *testing.T
	mu     sync.Mutex
	script map[string][]string
	calls  []string // the methods, in order
	params []url.Values
}

func (g *scriptedGateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	_ = r.ParseForm()
	method := r.Form.Get("method")
	g.mu.Lock()
	g.calls = append(g.calls, method)
	g.params = append(g.params, r.Form)
	answers := g.script[method]
	var value string
	if len(answers) > 0 {
		value = answers[0]
		if len(answers) > 1 {
			g.script[method] = answers[1:]
		}
	}
	g.mu.Unlock()
	if value == "" {
		hj, _ := w.(http.Hijacker)
		conn, _, _ := hj.Hijack()
		conn.Close()
		return
	}
	_, _ = w.Write([]byte(signedBody(g.t, method, value)))
}

// barcodeWorld is a Barcode against a scripted gateway, on a fake clock.
func barcodeWorld(t *testing.T, script map[string][]string) (*Barcode, *scriptedGateway, *fakeClock) {
	g := &scriptedGateway{t: t, script: script}
	c := testGateway(t, g.ServeHTTP)
	c.Timeout = 2 * time.Second
	clock := &fakeClock{now: clientNow}
	return &Barcode{Client: c, Poll: 5 * time.Second, Wait: 30 * time.Second, Clock: clock}, g, clock
}

const (
	barcodeBiz  = `{"out_trade_no":"F1","total_amount":"9.90","subject":"咖啡","auth_code":"281234567890123456","scene":"bar_code","product_code":"FACE_TO_FACE_PAYMENT"}`
	payPaid     = `{"code":"10000","msg":"Success","out_trade_no":"F1","trade_no":"2024052022001400000000000009","total_amount":"9.90"}`
	payWaiting  = `{"code":"10003","msg":"等待用户付款","out_trade_no":"F1","trade_no":"2024052022001400000000000009"}`
	payBusy     = `{"code":"20000","msg":"Service Currently Unavailable","sub_code":"isp.unknow-error"}`
	payFailed   = `{"code":"40004","msg":"Business Failed","sub_code":"ACQ.PAYMENT_AUTH_CODE_INVALID","sub_msg":"支付失败，获取顾客账户信息失败"}`
	queryWait   = `{"code":"10000","msg":"Success","out_trade_no":"F1","trade_no":"2024052022001400000000000009","trade_status":"WAIT_BUYER_PAY"}`
	queryPaid   = `{"code":"10000","msg":"Success","out_trade_no":"F1","trade_no":"2024052022001400000000000009","trade_status":"TRADE_SUCCESS"}`
	queryNone   = `{"code":"40004","msg":"Business Failed","sub_code":"ACQ.TRADE_NOT_EXIST"}`
	cancelDone  = `{"code":"10000","msg":"Success","out_trade_no":"F1","retry_flag":"N","action":"close"}`
	cancelRetry = `{"code":"20000","msg":"Service Currently Unavailable","sub_code":"ACQ.SYSTEM_ERROR","retry_flag":"Y"}`
)

// Every way a barcode payment ends, never sleeping: the steps it took,
// and how long it waited between them.
func TestBarcodePay(t *testing.T) {
	for _, c := range []struct {
		name    string
		script  map[string][]string
		result  string
		calls   []string
		sleeps  []time.Duration
		tradeNo string
	}{
		{"paid at once", map[string][]string{"alipay.trade.pay": {payPaid}},
			BarcodePaid, []string{"alipay.trade.pay"}, nil, "2024052022001400000000000009"},
		{"paid after polling", map[string][]string{"alipay.trade.pay": {payWaiting}, "alipay.trade.query": {queryWait, queryWait, queryPaid}},
			BarcodePaid, []string{"alipay.trade.pay", "alipay.trade.query", "alipay.trade.query", "alipay.trade.query"},
			[]time.Duration{5 * time.Second, 5 * time.Second, 5 * time.Second}, "2024052022001400000000000009"},
		{"never paid: cancelled, retry_flag Y then done", map[string][]string{"alipay.trade.pay": {payWaiting}, "alipay.trade.query": {queryWait},
			"alipay.trade.cancel": {cancelRetry, cancelDone}},
			BarcodeCancelled, append(append([]string{"alipay.trade.pay"}, repeat("alipay.trade.query", 6)...), "alipay.trade.cancel", "alipay.trade.cancel"),
			append(durations(5*time.Second, 6), 2*time.Second), "2024052022001400000000000009"},
		{"system error on pay, found paid", map[string][]string{"alipay.trade.pay": {payBusy}, "alipay.trade.query": {queryPaid}},
			BarcodePaid, []string{"alipay.trade.pay", "alipay.trade.query"}, nil, "2024052022001400000000000009"},
		{"no answer to pay, no trade, never paid", map[string][]string{"alipay.trade.pay": {""}, "alipay.trade.query": {queryNone},
			"alipay.trade.cancel": {`{"code":"40004","msg":"Business Failed","sub_code":"ACQ.TRADE_NOT_EXIST","retry_flag":"N"}`}},
			BarcodeFailed, append(append([]string{"alipay.trade.pay"}, repeat("alipay.trade.query", 7)...), "alipay.trade.cancel"),
			durations(5*time.Second, 6), ""},
		{"failed", map[string][]string{"alipay.trade.pay": {payFailed}},
			BarcodeFailed, []string{"alipay.trade.pay"}, nil, ""},
		{"cancel never settles", map[string][]string{"alipay.trade.pay": {payWaiting}, "alipay.trade.query": {queryWait},
			"alipay.trade.cancel": {cancelRetry}},
			BarcodeUnknown, append(append([]string{"alipay.trade.pay"}, repeat("alipay.trade.query", 6)...), repeat("alipay.trade.cancel", 3)...),
			append(durations(5*time.Second, 6), 2*time.Second, 2*time.Second), "2024052022001400000000000009"},
		{"cancel refused without a retry", map[string][]string{"alipay.trade.pay": {payWaiting}, "alipay.trade.query": {queryWait},
			"alipay.trade.cancel": {`{"code":"40004","msg":"Business Failed","sub_code":"ACQ.REASON_TRADE_BEEN_FREEZEN","retry_flag":"N"}`}},
			BarcodeUnknown, append(append([]string{"alipay.trade.pay"}, repeat("alipay.trade.query", 6)...), "alipay.trade.cancel"),
			durations(5*time.Second, 6), "2024052022001400000000000009"},
		{"cancel unanswered", map[string][]string{"alipay.trade.pay": {payWaiting}, "alipay.trade.query": {queryWait},
			"alipay.trade.cancel": {""}},
			BarcodeUnknown, append(append([]string{"alipay.trade.pay"}, repeat("alipay.trade.query", 6)...), repeat("alipay.trade.cancel", 3)...),
			append(durations(5*time.Second, 6), 2*time.Second, 2*time.Second), "2024052022001400000000000009"},
	} {
		t.Run(c.name, func(t *testing.T) {
			b, g, clock := barcodeWorld(t, c.script)
			res, err := b.Pay(context.Background(), []byte(barcodeBiz), "https://shop.example.com/alipay/notify")
			require.NoError(t, err)
			assert.Equal(t, c.result, res.Result)
			assert.Equal(t, c.tradeNo, res.TradeNo)
			assert.Equal(t, c.calls, g.calls)
			assert.Equal(t, c.sleeps, clock.sleeps)
			require.Len(t, res.Steps, len(c.calls))
			for i, step := range res.Steps {
				assert.Equal(t, c.calls[i], step.Method)
				assert.True(t, step.Response != nil || step.Error != "", "a step has a response or the reason it has none")
			}
			assert.Equal(t, "https://shop.example.com/alipay/notify", g.params[0].Get("notify_url"), "the payment's notification goes to the site")
			for i, p := range g.params[1:] {
				assert.JSONEq(t, `{"out_trade_no":"F1"}`, p.Get("biz_content"), "query and cancel name the trade: %s", c.calls[i+1])
			}
		})
	}
}

// A shop that hangs up does not leave the payment half done.
func TestBarcodePayOutlivesTheRequest(t *testing.T) {
	b, g, _ := barcodeWorld(t, map[string][]string{"alipay.trade.pay": {payWaiting}, "alipay.trade.query": {queryWait},
		"alipay.trade.cancel": {cancelDone}})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	res, err := b.Pay(ctx, []byte(barcodeBiz), "")
	require.NoError(t, err)
	assert.Equal(t, BarcodeCancelled, res.Result)
	assert.Equal(t, "alipay.trade.cancel", g.calls[len(g.calls)-1])
}

// An unsigned error_response (a wrong key, say) ends the flow with that
// error: nothing was settled, and the shop must hear why.
func TestBarcodePayRefused(t *testing.T) {
	c := testGateway(t, answer(200, `{"error_response":{"code":"40002","msg":"Invalid Arguments","sub_code":"isv.invalid-signature"}}`))
	_, err := (&Barcode{Client: c, Clock: &fakeClock{now: clientNow}}).Pay(context.Background(), []byte(barcodeBiz), "")
	ce := requireCallError(t, err, CallRefused)
	assert.Equal(t, "isv.invalid-signature", ce.Fields["sub_code"])
}

// The shop's body: the order's fields checked, scene and product_code
// supplied.
func TestBarcodeBiz(t *testing.T) {
	fields := func(body string) map[string]json.RawMessage {
		var f map[string]json.RawMessage
		require.NoError(t, json.Unmarshal([]byte(body), &f))
		return f
	}
	biz, err := BarcodeBiz(fields(`{"out_trade_no":"F1","total_amount":"9.90","subject":"咖啡","auth_code":"281234567890123456","store_id":"S1"}`))
	require.NoError(t, err)
	assert.JSONEq(t, `{"out_trade_no":"F1","total_amount":"9.90","subject":"咖啡","auth_code":"281234567890123456","store_id":"S1",
		"scene":"bar_code","product_code":"FACE_TO_FACE_PAYMENT"}`, string(biz))
	biz, err = BarcodeBiz(fields(`{"out_trade_no":"F1","total_amount":"9.90","subject":"s","auth_code":"251234567890123456","scene":"wave_code"}`))
	require.NoError(t, err)
	assert.Contains(t, string(biz), `"scene":"wave_code"`, "the shop's own scene stays")
	for body, claim := range map[string]string{
		`{"out_trade_no":"F1","total_amount":"9.90","subject":"s"}`:                                       "auth_code",
		`{"out_trade_no":"F1","total_amount":"9.90","subject":"s","auth_code":"131234567890123456"}`:      "auth_code",
		`{"out_trade_no":"F1","total_amount":"9.90","subject":"s","auth_code":"28123"}`:                   "auth_code",
		`{"out_trade_no":"F-1","total_amount":"9.90","subject":"s","auth_code":"281234567890123456"}`:     "out_trade_no",
		`{"out_trade_no":"F1","total_amount":"0","subject":"s","auth_code":"281234567890123456"}`:         "total_amount",
		`{"out_trade_no":"F1","total_amount":"9.90","subject":"a/b","auth_code":"281234567890123456"}`:    "subject",
		`{"out_trade_no":"F1","total_amount":"9.90","auth_code":"281234567890123456"}`:                    "subject",
		`{"out_trade_no":"F1","total_amount":"9.999","subject":"s","auth_code":"281234567890123456"}`:     "total_amount",
		`{"out_trade_no":"F1","total_amount":"9.90","subject":"s","auth_code":"28123456789012345678901"}`: "",
	} {
		_, err := BarcodeBiz(fields(body))
		if claim == "" {
			assert.NoError(t, err, body)
			continue
		}
		var ce *ClaimError
		require.ErrorAs(t, err, &ce, body)
		assert.Equal(t, claim, ce.Claim, body)
	}
}

// The app order string: every parameter the gateway signs, none empty,
// the signature over the sorted raw k=v, and nothing after sign.
func TestAppOrderString(t *testing.T) {
	api := &OpenAPI{AppID: "2021000000000001", Signer: testSigner(t, "app_private_key_pkcs1.pem", SignTypeRSA2)}
	o, err := parseOpenAPIOrder(map[string]json.RawMessage{"out_trade_no": json.RawMessage(`"A1"`), "total_amount": json.RawMessage(`"9.90"`),
		"subject": json.RawMessage(`"手机 壳+膜"`), "product": json.RawMessage(`"app"`), "exp": json.RawMessage(`9999999999`)})
	require.NoError(t, err)
	s, err := api.AppOrderString(o, "https://shop.example.com/alipay/notify", clientNow)
	require.NoError(t, err)
	assert.True(t, strings.HasPrefix(s[strings.LastIndex(s, "&")+1:], "sign="), "sign is last")
	params := map[string]string{}
	for _, kv := range strings.Split(s, "&") {
		k, v, ok := strings.Cut(kv, "=")
		require.True(t, ok)
		v, err := url.QueryUnescape(v)
		require.NoError(t, err)
		assert.NotEmpty(t, v, "no empty parameter: %s", k)
		params[k] = v
	}
	assert.Equal(t, "alipay.trade.app.pay", params["method"])
	assert.JSONEq(t, `{"out_trade_no":"A1","total_amount":"9.90","subject":"手机 壳+膜","product_code":"QUICK_MSECURITY_PAY"}`, params["biz_content"])
	assert.Equal(t, "https://shop.example.com/alipay/notify", params["notify_url"])
	assert.NotContains(t, params, "return_url", "app pay has none")
	v := testVerifier(t, "app_public_key.pem", SignTypeRSA2)
	assert.NoError(t, v.Verify(RequestContent(params), params["sign"]))

	s, err = api.AppOrderString(o, "", clientNow)
	require.NoError(t, err)
	assert.NotContains(t, s, "notify_url", "no empty notify_url")
}

func repeat(s string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = s
	}
	return out
}

func durations(d time.Duration, n int) []time.Duration {
	out := make([]time.Duration, n)
	for i := range out {
		out[i] = d
	}
	return out
}
