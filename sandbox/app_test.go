package sandbox

import (
	"maps"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/caddy-alipay/caddy-alipay/internal/protocol"
	"github.com/caddy-alipay/caddy-alipay/internal/protocol/protocoltest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// appParams are the parameters of an app order, signed by the app's key
// as the SDKs sign them; edit, if not nil, changes them before signing.
func appParams(t *testing.T, api *protocol.OpenAPI, notifyURL string, claims map[string]any, edit func(map[string]string)) map[string]string {
	t.Helper()
	claims["product"] = "app"
	p := api.RequestParams("alipay.trade.app.pay", order(t, claims).BizContent(), time.Now())
	if notifyURL != "" {
		p["notify_url"] = notifyURL
	}
	if edit != nil {
		edit(p)
	}
	require.NoError(t, protocol.SignParams(api.Signer, p))
	return p
}

// nodeKeyOrder is the order in which Alipay's Node SDK's sdkExecute
// writes the parameters: insertion order, sign last.
var nodeKeyOrder = []string{"method", "app_id", "charset", "version", "sign_type", "timestamp", "notify_url", "biz_content"}

// javaKeyOrder is the Java SDK's: every key sorted, sign among them.
var javaKeyOrder = []string{"alipay_sdk", "app_id", "biz_content", "charset", "format", "method", "notify_url", "sign", "sign_type", "timestamp", "version"}

// orderString writes p as an order string: keys in order (those of p
// not named there after them, sorted), sign last unless order places
// it, each value encoded with a space as space (+ or %20).
func orderString(p map[string]string, order []string, space string) string {
	keys := slices.DeleteFunc(slices.Clone(order), func(k string) bool { _, ok := p[k]; return !ok })
	for _, k := range slices.Sorted(maps.Keys(p)) {
		if k != "sign" && !slices.Contains(keys, k) {
			keys = append(keys, k)
		}
	}
	if !slices.Contains(keys, "sign") {
		keys = append(keys, "sign")
	}
	var parts []string
	for _, k := range keys {
		parts = append(parts, k+"="+strings.ReplaceAll(url.QueryEscape(p[k]), "+", space))
	}
	return strings.Join(parts, "&")
}

// appPage opens the app page for s and returns its answer, not
// following the redirect.
func appPage(t *testing.T, sb *Handler, s string) *httptest.ResponseRecorder {
	t.Helper()
	return serve(t, sb, httptest.NewRequest("GET", "http://sandbox.test/sandbox/app?order_string="+url.QueryEscape(s), nil))
}

// An order string in any key order (the Node SDK's, sign last; the Java
// SDK's, sorted, sign among them), with + or %20 for a space, and with
// or without the optional parameters, opens the cashier; Pay shows
// the paid page and sends the notification.
func TestAppPayAccepted(t *testing.T) {
	w := newWorld(t, nil)
	notify := w.site.URL + "/alipay/notify"
	sorted := slices.Sorted(slices.Values(nodeKeyOrder))
	for i, c := range []struct {
		name  string
		order []string
		space string
		edit  func(map[string]string)
	}{
		{"node order, %20", nodeKeyOrder, "%20", nil},
		{"node order, +", nodeKeyOrder, "+", nil},
		{"sorted, +", sorted, "+", nil},
		{"sorted, %20", sorted, "%20", nil},
		{"Java SDK: sorted, sign among them", javaKeyOrder, "+", func(p map[string]string) {
			p["alipay_sdk"], p["format"] = "alipay-sdk-java-dynamicVersionNo", "json"
		}},
		{"sign first", append([]string{"sign"}, nodeKeyOrder...), "%20", nil},
		{"no format, charset, version", nodeKeyOrder, "%20", func(p map[string]string) {
			delete(p, "format")
			delete(p, "charset")
			delete(p, "version")
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			no := "APP" + string(rune('A'+i))
			p := appParams(t, w.api, notify, map[string]any{"out_trade_no": no, "total_amount": "6.60", "subject": "App 订单 " + no}, c.edit)
			rec := appPage(t, w.sandbox, orderString(p, c.order, c.space))
			require.Equal(t, http.StatusFound, rec.Code, rec.Body.String())
			page, forms := w.cashier(t, rec)
			assert.Contains(t, page, `<p id="subject">App 订单 `+no+`</p>`)
			assert.Contains(t, page, `<span id="amount">6.60</span>`)
			assert.Contains(t, page, `id="cancel"`)
			require.Contains(t, forms, "pay")

			paid := w.postCashier(t, forms["pay"])
			require.Equal(t, http.StatusOK, paid.Code, "no return_url: a page")
			assert.Contains(t, paid.Body.String(), `id="paid"`)
			assert.Contains(t, paid.Body.String(), `<b id="result-status">9000</b>`)
			w.shop.waitNotify(t)
			n := w.lastNotify(t)
			assertStrings(t, map[string]string{"out_trade_no": no, "trade_status": "TRADE_SUCCESS", "total_amount": "6.60",
				"notify_type": "trade_status_sync", "app_id": testAppID}, n)
			q := apiCall(t, w.sandbox, "alipay.trade.query", map[string]any{"out_trade_no": no})
			assertAPIFields(t, map[string]any{"trade_status": "TRADE_SUCCESS", "trade_no": n["trade_no"]}, q)
			d := tradeJSON(t, w.sandbox, no)[0]
			assert.Equal(t, "app", d.Product)
			assert.Equal(t, "alipay.trade.app.pay", d.Method)
			assert.Empty(t, d.ReturnURL)

			// Reopened once paid: refused, as the gateway refuses it.
			again := appPage(t, w.sandbox, orderString(p, c.order, c.space))
			assert.Equal(t, http.StatusBadRequest, again.Code)
			assert.Contains(t, again.Body.String(), `<b id="error-code">ACQ.TRADE_HAS_SUCCESS</b>`)
		})
	}
}

// Without notify_url nothing is sent; Cancel shows the app's 6001, and
// the trade stays open; the same order with another amount is refused,
// the same again reopens it.
func TestAppPayCancelAndReopen(t *testing.T) {
	w := newWorld(t, nil)
	p := appParams(t, w.api, "", map[string]any{"out_trade_no": "APPC", "total_amount": "1.00", "subject": "s"}, nil)
	_, forms := w.cashier(t, appPage(t, w.sandbox, orderString(p, nodeKeyOrder, "%20")))
	cancel := w.postCashier(t, forms["cancel"])
	require.Equal(t, http.StatusOK, cancel.Code)
	assert.Contains(t, cancel.Body.String(), `id="cancelled"`)
	assert.Contains(t, cancel.Body.String(), `<b id="result-status">6001</b>`)
	assertAPIFields(t, map[string]any{"trade_status": "WAIT_BUYER_PAY"}, apiCall(t, w.sandbox, "alipay.trade.query", map[string]any{"out_trade_no": "APPC"}))

	other := appParams(t, w.api, "", map[string]any{"out_trade_no": "APPC", "total_amount": "2.00", "subject": "s"}, nil)
	rec := appPage(t, w.sandbox, orderString(other, nodeKeyOrder, "%20"))
	assert.Contains(t, rec.Body.String(), `<b id="error-code">ACQ.CONTEXT_INCONSISTENT</b>`)
	rec = appPage(t, w.sandbox, orderString(p, nodeKeyOrder, "+"))
	require.Equal(t, http.StatusFound, rec.Code, rec.Body.String())
	assert.Equal(t, strings.TrimSuffix(forms["pay"], "/pay"), rec.Header().Get("Location"), "the same trade")

	require.Equal(t, http.StatusOK, w.postCashier(t, forms["pay"]).Code)
	w.shop.noArrival(t, 50*time.Millisecond, "the order string had no notify_url")
	assertAPIFields(t, map[string]any{"trade_status": "TRADE_SUCCESS"}, apiCall(t, w.sandbox, "alipay.trade.query", map[string]any{"out_trade_no": "APPC"}))
}

// Every string that Alipay's gateway refuses gets the error page, with
// the app's 4000 (系统繁忙), and no cashier.
func TestAppPayRefused(t *testing.T) {
	w := newWorld(t, nil)
	notify := w.site.URL + "/alipay/notify"
	claims := func() map[string]any {
		return map[string]any{"out_trade_no": "APPR", "total_amount": "3.00", "subject": "refused"}
	}
	good := orderString(appParams(t, w.api, notify, claims(), nil), nodeKeyOrder, "%20")
	signed := func(edit func(map[string]string)) string {
		return orderString(appParams(t, w.api, notify, claims(), edit), nodeKeyOrder, "%20")
	}
	bizWith := func(biz string) func(map[string]string) {
		return func(p map[string]string) { p["biz_content"] = biz }
	}
	java := orderString(appParams(t, w.api, notify, claims(), nil), javaKeyOrder, "+")
	otherKey := merchantAPI(t, protocol.SignTypeRSA2)
	otherKey.Signer = protocoltest.Signer(t, "alipay_private_key_pkcs1.pem", protocol.SignTypeRSA2)
	sign := strings.LastIndex(good, "&sign=")
	for name, c := range map[string]struct{ s, code string }{
		"bad signature":                    {strings.Replace(good, "3.00", "0.01", 1), "invalid-signature"},
		"signed by another key":            {orderString(appParams(t, otherKey, notify, claims(), nil), nodeKeyOrder, "%20"), "invalid-signature"},
		"empty parameter":                  {good[:sign] + "&return_url=" + good[sign:], "empty-parameter"},
		"empty, left out of the signature": {signed(func(p map[string]string) { p["return_url"] = "" }), "empty-parameter"},
		"parameter after sign":             {good + "&return_url=" + url.QueryEscape("http://127.0.0.1/r"), "appended-after-signing"},
		"two after sign":                   {good + "&a=1&b=2", "appended-after-signing"},
		"after Java's sign":                {java + "&return_url=x", "appended-after-signing"},
		"trailing &":                       {good + "&", "appended-after-signing"},
		"trailing text":                    {good + "xyz", "appended-after-signing"},
		"parameter before sign":            {good[:sign] + "&a=1" + good[sign:], "invalid-signature"},
		"no sign":                          {good[:sign], "missing-parameter"},
		"twice":                            {"charset=utf-8&" + good, "invalid-parameter"},
		"not key=value":                    {"junk&" + good, "invalid-parameter"},
		"bad escape":                       {"x=%zz&" + good, "invalid-parameter"},
		"page pay method":                  {signed(func(p map[string]string) { p["method"] = "alipay.trade.page.pay" }), "invalid-method"},
		"no timestamp":                     {signed(func(p map[string]string) { delete(p, "timestamp") }), "missing-parameter"},
		"bad timestamp":                    {signed(func(p map[string]string) { p["timestamp"] = "2024/05/20" }), "invalid-timestamp"},
		"gbk":                              {signed(func(p map[string]string) { p["charset"] = "gbk" }), "invalid-charset"},
		"version 2":                        {signed(func(p map[string]string) { p["version"] = "2.0" }), "invalid-parameter"},
		"biz not json":                     {signed(bizWith(`{"out_trade_no":`)), "invalid-parameter"},
		"no subject":                       {signed(bizWith(`{"out_trade_no":"APPR","total_amount":"3.00"}`)), "ACQ.INVALID_PARAMETER"},
		"bad amount":                       {signed(bizWith(`{"out_trade_no":"APPR","total_amount":"3.001","subject":"s"}`)), "ACQ.INVALID_PARAMETER"},
		"bad out_trade_no":                 {signed(bizWith(`{"out_trade_no":"a b","total_amount":"3.00","subject":"s"}`)), "ACQ.INVALID_PARAMETER"},
		"page product_code":                {signed(bizWith(`{"out_trade_no":"APPR","total_amount":"3.00","subject":"s","product_code":"FAST_INSTANT_TRADE_PAY"}`)), "ACQ.INVALID_PARAMETER"},
		"notify_url elsewhere":             {signed(func(p map[string]string) { p["notify_url"] = "https://shop.example.com/n" }), "invalid-parameter"},
		"empty order string":               {"", "missing-parameter"},
	} {
		t.Run(name, func(t *testing.T) {
			rec := appPage(t, w.sandbox, c.s)
			assert.Equal(t, http.StatusBadRequest, rec.Code)
			page := rec.Body.String()
			assert.Contains(t, page, `<b id="error-code">`+c.code+`</b>`)
			assert.Contains(t, page, `<b id="result-status">4000</b>`)
			assert.Contains(t, page, "系统繁忙")
			assert.NotContains(t, page, `id="pay"`)
		})
	}
	// The page takes order_string alone.
	for _, q := range []string{"", "order_string=a&order_string=b", "order_string=" + url.QueryEscape(good) + "&x=1"} {
		rec := serve(t, w.sandbox, httptest.NewRequest("GET", "http://sandbox.test/sandbox/app?"+q, nil))
		assert.Contains(t, rec.Body.String(), `<b id="error-code">invalid-parameter</b>`, q)
	}
	rec := serve(t, w.sandbox, httptest.NewRequest("POST", "http://sandbox.test/sandbox/app?order_string="+url.QueryEscape(good), nil))
	assert.Equal(t, http.StatusMethodNotAllowed, rec.Code)
	assert.Empty(t, w.sandbox.trades.summary().trades, "nothing refused opened a trade")
	// The good one opens it.
	assert.Equal(t, http.StatusFound, appPage(t, w.sandbox, good).Code)
}

// The order string that the sidecar makes (sorted, + for a space) opens
// the cashier.
func TestAppPaySidecarOrderString(t *testing.T) {
	w := newWorld(t, nil)
	s, err := w.api.AppOrderString(order(t, map[string]any{"out_trade_no": "APPS", "total_amount": "8.00", "subject": "sidecar 订单", "product": "app"}),
		w.site.URL+"/alipay/notify", time.Now())
	require.NoError(t, err)
	page, forms := w.cashier(t, appPage(t, w.sandbox, s))
	assert.Contains(t, page, `<p id="subject">sidecar 订单</p>`)
	require.Equal(t, http.StatusOK, w.postCashier(t, forms["pay"]).Code)
	w.shop.waitNotify(t)
}
