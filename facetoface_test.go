package alipay

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"html"
	"image"
	"image/png"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/caddy-alipay/caddy-alipay/internal/protocol"
	"github.com/caddy-alipay/caddy-alipay/internal/protocol/protocoltest"
	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap/zapcore"
)

// An app-pay token gets the signed order string for the shop's mobile
// app: every parameter present has a value, the signature is the last
// one and covers exactly the others.
func TestAppPay(t *testing.T) {
	h := newTestHandler(t, nil)
	tok := payToken(t, map[string]any{"out_trade_no": "APP1", "total_amount": "9.90", "subject": "会员 一个月", "product": "app"})
	w := serve(t, h, &upstream{}, httptest.NewRequest("GET", "http://shop.example.com/alipay/pay?token="+tok, nil))
	require.Equal(t, http.StatusOK, w.Code, w.Body.String())
	assert.Equal(t, "application/json", w.Header().Get("Content-Type"))
	assert.Equal(t, "no-store", w.Header().Get("Cache-Control"))
	var answer struct {
		OrderString string `json:"order_string"`
	}
	require.NoError(t, json.Unmarshal(w.Body.Bytes(), &answer))

	pairs := strings.Split(answer.OrderString, "&")
	require.True(t, strings.HasPrefix(pairs[len(pairs)-1], "sign="), "the signature comes last: %s", answer.OrderString)
	params := map[string]string{}
	for _, p := range pairs {
		k, v, ok := strings.Cut(p, "=")
		require.True(t, ok, p)
		require.NotEmpty(t, v, "no empty parameter: %s", k)
		dv, err := url.QueryUnescape(v)
		require.NoError(t, err)
		require.NotContains(t, params, k, "each parameter once")
		params[k] = dv
	}
	assert.Equal(t, "alipay.trade.app.pay", params["method"])
	assert.Equal(t, "http://shop.example.com/alipay/notify", params["notify_url"])
	assert.NotContains(t, params, "return_url", "an app has no return")
	var biz map[string]string
	require.NoError(t, json.Unmarshal([]byte(params["biz_content"]), &biz))
	assert.Equal(t, map[string]string{"out_trade_no": "APP1", "total_amount": "9.90", "subject": "会员 一个月",
		"product_code": "QUICK_MSECURITY_PAY"}, biz)
	v := protocoltest.Verifier(t, "app_public_key.pem", protocol.SignTypeRSA2)
	assert.NoError(t, v.Verify(protocol.RequestContent(params), params["sign"]))
}

// A QR-code order asks Alipay to precreate the trade, and answers its code
// as JSON or as a page that shows it.
func TestQRPay(t *testing.T) {
	h, g := newAPIWorld(t, nil)
	const answer = `{"code":"10000","msg":"Success","out_trade_no":"QR1","qr_code":"https:\/\/qr.alipay.com\/bax08861"}`
	g.setAnswer(func(method string, biz map[string]any) string {
		assert.Equal(t, "alipay.trade.precreate", method)
		return protocoltest.SignedBody(t, method, answer)
	})
	tok := payToken(t, map[string]any{"out_trade_no": "QR1", "total_amount": "12.00", "subject": "咖啡 <large>", "product": "qr"})
	get := func(accept string) *httptest.ResponseRecorder {
		r := httptest.NewRequest("GET", "http://shop.example.com/alipay/pay?token="+tok, nil)
		if accept != "" {
			r.Header.Set("Accept", accept)
		}
		return serve(t, h, &upstream{}, r)
	}

	w := get("application/json")
	require.Equal(t, http.StatusOK, w.Code, w.Body.String())
	assert.JSONEq(t, `{"qr_code":"https://qr.alipay.com/bax08861","out_trade_no":"QR1"}`, w.Body.String())
	assert.Equal(t, "no-store", w.Header().Get("Cache-Control"))
	require.Len(t, g.calls, 1)
	assert.JSONEq(t, `{"out_trade_no":"QR1","total_amount":"12.00","subject":"咖啡 <large>"}`, g.calls[0].Get("biz_content"),
		"precreate takes no product_code")

	w = get("text/html")
	require.Equal(t, http.StatusOK, w.Code, w.Body.String())
	page := w.Body.String()
	assert.Contains(t, page, `<p id="subject">咖啡 &lt;large&gt;</p>`)
	assert.Contains(t, page, `<span id="amount">12.00</span>`)
	assert.Contains(t, page, `<code id="qr-code">https://qr.alipay.com/bax08861</code>`)
	m := regexp.MustCompile(`<img id="qr" src="data:image/png;base64,([^"]+)"`).FindStringSubmatch(page)
	require.NotNil(t, m, page)
	img, err := base64.StdEncoding.DecodeString(html.UnescapeString(m[1]))
	require.NoError(t, err)
	decoded, err := png.Decode(bytes.NewReader(img))
	require.NoError(t, err)
	assert.Equal(t, 320, decoded.Bounds().Dx())
	// A quiet zone: the outermost pixels are white all round.
	for i := range 320 {
		for _, p := range []image.Point{{i, 0}, {i, 319}, {0, i}, {319, i}, {i, 8}, {8, i}} {
			r, g, b, _ := decoded.At(p.X, p.Y).RGBA()
			require.Equal(t, [3]uint32{0xffff, 0xffff, 0xffff}, [3]uint32{r, g, b}, "pixel %v", p)
		}
	}

	// Alipay's verified refusal is passed on, with its reasons.
	g.setAnswer(func(method string, _ map[string]any) string {
		return protocoltest.SignedBody(t, method, `{"code":"40004","msg":"Business Failed","sub_code":"ACQ.TRADE_HAS_SUCCESS","sub_msg":"交易已被支付"}`)
	})
	w = get("application/json")
	assert.Equal(t, http.StatusBadGateway, w.Code)
	assert.JSONEq(t, `{"error":"alipay refused the order","code":"40004","sub_code":"ACQ.TRADE_HAS_SUCCESS","sub_msg":"交易已被支付"}`, w.Body.String())

	// An answer that does not verify shows no code.
	g.setAnswer(func(method string, _ map[string]any) string {
		return strings.Replace(protocoltest.SignedBody(t, method, answer), "bax08861", "bax66666", 1)
	})
	w = get("")
	assert.Equal(t, http.StatusBadGateway, w.Code)
	assert.NotContains(t, w.Body.String(), "bax")
}

// App and QR pay are OpenAPI's: a legacy partner's token that asks for
// them is refused, naming the claim.
func TestLegacyRefusesAppAndQR(t *testing.T) {
	gw := httptest.NewServer(&fakeMapi{})
	defer gw.Close()
	h := newLegacyHandler(t, "utf-8", gw, nil)
	for _, product := range []string{"app", "qr"} {
		tok := payToken(t, map[string]any{"out_trade_no": "L1", "total_amount": "1", "subject": "s", "product": product})
		w := serve(t, h, &upstream{}, httptest.NewRequest("GET", "http://shop.example.com/alipay/pay?token="+tok, nil))
		assert.Equal(t, http.StatusBadRequest, w.Code, product)
		assert.Contains(t, w.Body.String(), "product", product)
	}
}

// barcodeGateway answers a barcode payment's calls from a script: each
// method's answers in turn, the last one repeated.
func barcodeGateway(t *testing.T, g *fakeGateway, script map[string][]string) {
	seen := map[string]int{}
	g.setAnswer(func(method string, _ map[string]any) string {
		answers := script[method]
		require.NotEmpty(t, answers, "unexpected call of %s", method)
		i := min(seen[method], len(answers)-1)
		seen[method]++
		return protocoltest.SignedBody(t, method, answers[i])
	})
}

const (
	barcodeBody    = `{"out_trade_no":"B1","total_amount":"3.50","subject":"Latte","auth_code":"280000000000000000"}`
	barcodePaid    = `{"code":"10000","msg":"Success","out_trade_no":"B1","trade_no":"2024052022001400000001","total_amount":"3.50"}`
	barcodeWaiting = `{"code":"10003","msg":"Waiting Payment","out_trade_no":"B1","trade_no":"2024052022001400000001"}`
	queryWaiting   = `{"code":"10000","msg":"Success","out_trade_no":"B1","trade_no":"2024052022001400000001","trade_status":"WAIT_BUYER_PAY"}`
	querySuccess   = `{"code":"10000","msg":"Success","out_trade_no":"B1","trade_no":"2024052022001400000001","trade_status":"TRADE_SUCCESS"}`
)

// POST {prefix}/api/alipay.trade.pay runs the whole barcode payment and
// answers once it is settled, with every verified step.
func TestBarcodeAPI(t *testing.T) {
	h, g := newAPIWorld(t, func(h *Handler) {
		h.BarcodePoll, h.BarcodeWait = caddy.Duration(5*time.Millisecond), caddy.Duration(30*time.Millisecond)
	})
	logs := observe(h)
	pay := func(body string) (int, protocol.BarcodeResult) {
		g.calls = nil
		w := serve(t, h, &upstream{}, apiRequest("POST", "/alipay/api/alipay.trade.pay", bearer(t, time.Minute), body))
		var res protocol.BarcodeResult
		if w.Code == http.StatusOK {
			require.NoError(t, json.Unmarshal(w.Body.Bytes(), &res), w.Body.String())
		}
		return w.Code, res
	}
	methods := func(res protocol.BarcodeResult) (out []string) {
		for _, s := range res.Steps {
			out = append(out, s.Method)
		}
		return out
	}

	t.Run("paid at once", func(t *testing.T) {
		barcodeGateway(t, g, map[string][]string{"alipay.trade.pay": {barcodePaid}})
		code, res := pay(barcodeBody)
		require.Equal(t, http.StatusOK, code)
		assert.Equal(t, "paid", res.Result)
		assert.Equal(t, "2024052022001400000001", res.TradeNo)
		require.Len(t, res.Steps, 1)
		assert.JSONEq(t, barcodePaid, string(res.Steps[0].Response), "the verified answer")
		var biz map[string]string
		require.NoError(t, json.Unmarshal([]byte(g.calls[0].Get("biz_content")), &biz))
		assert.Equal(t, "bar_code", biz["scene"], "the default scene")
		assert.Equal(t, "FACE_TO_FACE_PAYMENT", biz["product_code"])
		assert.Equal(t, "barcode paid", lastEvent(t, logs)["trade_status"])
	})
	t.Run("paid while polling", func(t *testing.T) {
		barcodeGateway(t, g, map[string][]string{"alipay.trade.pay": {barcodeWaiting}, "alipay.trade.query": {queryWaiting, querySuccess}})
		code, res := pay(barcodeBody)
		require.Equal(t, http.StatusOK, code)
		assert.Equal(t, "paid", res.Result)
		assert.Equal(t, []string{"alipay.trade.pay", "alipay.trade.query", "alipay.trade.query"}, methods(res))
	})
	t.Run("never paid: cancelled", func(t *testing.T) {
		barcodeGateway(t, g, map[string][]string{"alipay.trade.pay": {barcodeWaiting}, "alipay.trade.query": {queryWaiting},
			"alipay.trade.cancel": {`{"code":"10000","msg":"Success","out_trade_no":"B1","retry_flag":"N","action":"close"}`}})
		code, res := pay(barcodeBody)
		require.Equal(t, http.StatusOK, code)
		assert.Equal(t, "cancelled", res.Result)
		got := methods(res)
		assert.Equal(t, "alipay.trade.cancel", got[len(got)-1])
		assert.LessOrEqual(t, len(got), 2+6, "at most wait/poll queries")
	})
	t.Run("refused: failed", func(t *testing.T) {
		barcodeGateway(t, g, map[string][]string{"alipay.trade.pay": {
			`{"code":"40004","msg":"Business Failed","sub_code":"ACQ.PAYMENT_AUTH_CODE_INVALID","sub_msg":"支付失败，获取顾客账户信息失败"}`}})
		code, res := pay(barcodeBody)
		require.Equal(t, http.StatusOK, code)
		assert.Equal(t, "failed", res.Result)
	})
	t.Run("cancel unsettled: unknown, and the log says so", func(t *testing.T) {
		barcodeGateway(t, g, map[string][]string{"alipay.trade.pay": {barcodeWaiting}, "alipay.trade.query": {queryWaiting},
			"alipay.trade.cancel": {`{"code":"40004","msg":"Business Failed","sub_code":"ACQ.REASON_TRADE_STATUS_INVALID","sub_msg":"交易状态不合法","retry_flag":"N"}`}})
		code, res := pay(barcodeBody)
		require.Equal(t, http.StatusOK, code)
		assert.Equal(t, "unknown", res.Result)
		last := logs.All()[logs.Len()-1]
		assert.Equal(t, zapcore.WarnLevel, last.Level, "a trade that needs a person is a warning")
		fields := last.ContextMap()
		assert.Equal(t, "barcode unknown", fields["trade_status"])
		assert.Equal(t, "B1", fields["out_trade_no"])
		assert.Contains(t, fields["reason"], "needs a person")
	})
	t.Run("a bad payment code never reaches Alipay", func(t *testing.T) {
		code, _ := pay(strings.Replace(barcodeBody, "280000000000000000", "123", 1))
		assert.Equal(t, http.StatusBadRequest, code)
		assert.Empty(t, g.calls)
	})
}

func TestBarcodeSettings(t *testing.T) {
	var h Handler
	require.NoError(t, h.UnmarshalCaddyfile(caddyfile.NewTestDispenser("alipay {\n barcode_poll 3s\n barcode_wait 45s\n}")))
	assert.Equal(t, caddy.Duration(3*time.Second), h.BarcodePoll)
	assert.Equal(t, caddy.Duration(45*time.Second), h.BarcodeWait)
	for _, bad := range []string{"alipay {\n barcode_poll\n}", "alipay {\n barcode_wait never\n}", "alipay {\n barcode_poll 0s\n}"} {
		var h Handler
		assert.Error(t, h.UnmarshalCaddyfile(caddyfile.NewTestDispenser(bad)), bad)
	}

	calls := newTestHandler(t, func(h *Handler) { h.BarcodePoll = caddy.Duration(time.Second) }).api.(*protocol.OpenAPICalls)
	assert.Equal(t, time.Second, calls.Barcode.Poll)
	assert.Zero(t, calls.Barcode.Wait, "the default")
	for _, c := range []struct {
		setting string
		edit    func(*Handler)
	}{
		{"barcode_poll", func(h *Handler) { h.BarcodePoll = caddy.Duration(-time.Second) }},
		{"barcode_wait", func(h *Handler) { h.BarcodeWait = caddy.Duration(-time.Second) }},
		// Polling less often than the wait would cancel without one query.
		{"barcode_poll", func(h *Handler) { h.BarcodeWait = caddy.Duration(2 * time.Second) }},
	} {
		_, err := provisionHandler(t, c.edit)
		assert.ErrorContains(t, err, c.setting+": ")
	}
}
