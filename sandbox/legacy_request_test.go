package sandbox

import (
	"html"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/caddy-alipay/caddy-alipay/internal/protocol"
	"github.com/caddy-alipay/caddy-alipay/internal/testvec"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Which requests the legacy gateway takes: what it refuses, and with
// which code; the vectors' own requests; the sandbox with the legacy
// gateway alone, and without it.

// refusedWith checks that the gateway showed the error page with code,
// and no cashier.
func refusedWith(t *testing.T, rec *httptest.ResponseRecorder, code string) {
	t.Helper()
	assert.Equal(t, http.StatusBadRequest, rec.Code)
	assert.Contains(t, rec.Body.String(), `<b id="error-code">`+html.EscapeString(code)+`</b>`)
	assert.NotContains(t, rec.Body.String(), `id="pay"`)
}

// Requests that the legacy gateway refuses get its error page, with its
// error code, and no cashier.
func TestLegacyRefused(t *testing.T) {
	w := newLegacyWorld(t, func(s *Handler) { s.CallbackHosts = []string{"shop.example.com"} })
	m := w.merchant(t, protocol.SignTypeMD5, "utf-8", legacyKeys{}, nil)
	order := map[string]any{"out_trade_no": "X1", "total_amount": "88.88", "subject": "测试"}
	good := w.payURL(t, m, order)
	key, err := protocol.NewMD5Key(w.vec.MD5Key)
	require.NoError(t, err)
	// signed signs params, raw bytes as they are, with the MD5 key.
	signed := func(edit func(map[string]string)) string {
		u, _ := url.Parse(good)
		p := map[string]string{}
		for k, v := range u.Query() {
			p[k] = v[0]
		}
		delete(p, "sign")
		delete(p, "sign_type")
		edit(p)
		sign, err := key.Sign(protocol.LegacyContent(p))
		require.NoError(t, err)
		p["sign"], p["sign_type"] = sign, protocol.SignTypeMD5
		return "http://sandbox.test/gateway.do?" + protocol.Encode(p)
	}
	other := w.merchant(t, protocol.SignTypeMD5, "utf-8", legacyKeys{}, func(c *protocol.LegacyConfig) { c.Partner = "2088000000000002" })
	otherKey := w.merchant(t, protocol.SignTypeMD5, "utf-8", legacyKeys{}, func(c *protocol.LegacyConfig) { c.MD5Key = strings.Repeat("k", 32) })
	for name, c := range map[string]struct {
		target, code string
		post         bool
	}{
		"tampered amount":         {strings.Replace(good, "total_fee=88.88", "total_fee=0.01", 1), "ILLEGAL_SIGN", false},
		"tampered amount, post":   {strings.Replace(good, "total_fee=88.88", "total_fee=0.01", 1), "ILLEGAL_SIGN", true},
		"tampered subject":        {strings.Replace(good, "subject=", "subject=X", 1), "ILLEGAL_SIGN", false},
		"another partner":         {w.payURL(t, other, order), "ILLEGAL_PARTNER", false},
		"another key":             {w.payURL(t, otherKey, order), "ILLEGAL_SIGN", false},
		"no sign":                 {strings.Replace(good, "&sign=", "&nosign=", 1), "ILLEGAL_SIGN", false},
		"sign type":               {strings.Replace(good, "sign_type=MD5", "sign_type=RSA2", 1), "ILLEGAL_SIGN_TYPE", false},
		"payment type":            {signed(func(p map[string]string) { p["payment_type"] = "2" }), "ILLEGAL_ARGUMENT", false},
		"no out_trade_no":         {signed(func(p map[string]string) { delete(p, "out_trade_no") }), "ILLEGAL_ARGUMENT", false},
		"bad out_trade_no":        {signed(func(p map[string]string) { p["out_trade_no"] = "a-b" }), "ILLEGAL_ARGUMENT", false},
		"no subject":              {signed(func(p map[string]string) { delete(p, "subject") }), "ILLEGAL_ARGUMENT", false},
		"bad total_fee":           {signed(func(p map[string]string) { p["total_fee"] = "1.001" }), "ILLEGAL_ARGUMENT", false},
		"no seller":               {signed(func(p map[string]string) { delete(p, "seller_id") }), "ILLEGAL_ARGUMENT", false},
		"bad seller_id":           {signed(func(p map[string]string) { p["seller_id"] = "2021000000000001" }), "ILLEGAL_ARGUMENT", false},
		"bad seller_email":        {signed(func(p map[string]string) { delete(p, "seller_id"); p["seller_email"] = "seller" }), "ILLEGAL_ARGUMENT", false},
		"charset":                 {signed(func(p map[string]string) { p["_input_charset"] = "big5" }), "ILLEGAL_CHARSET", false},
		"no charset":              {signed(func(p map[string]string) { delete(p, "_input_charset") }), "ILLEGAL_CHARSET", false},
		"not gbk":                 {signed(func(p map[string]string) { p["_input_charset"], p["subject"] = "gbk", "\x81\x20" }), "ILLEGAL_ARGUMENT", false},
		"not utf-8":               {signed(func(p map[string]string) { p["body"] = "\xff\xfe" }), "ILLEGAL_ARGUMENT", false},
		"notify_url elsewhere":    {signed(func(p map[string]string) { p["notify_url"] = "https://attacker.example/n" }), "ILLEGAL_ARGUMENT", false},
		"return_url not absolute": {signed(func(p map[string]string) { p["return_url"] = "/return" }), "ILLEGAL_ARGUMENT", false},
		"duplicate":               {good + "&subject=x", "ILLEGAL_ARGUMENT", false},
		"another service":         {signed(func(p map[string]string) { p["service"] = "create_partner_trade_by_buyer" }), "ILLEGAL_SERVICE", false},
		"no service":              {signed(func(p map[string]string) { delete(p, "service") }), "ILLEGAL_SERVICE", false},
	} {
		t.Run(name, func(t *testing.T) {
			refusedWith(t, w.request(t, c.target, c.post), c.code)
		})
	}
	rec := w.request(t, signed(func(p map[string]string) { p["notify_url"] = "https://attacker.example/n" }), false)
	assert.Contains(t, rec.Body.String(), "not on this machine")
	// The action URL and the form must name the same _input_charset.
	_, query, _ := strings.Cut(good, "?")
	r := httptest.NewRequest("POST", "http://sandbox.test/gateway.do?_input_charset=gbk", strings.NewReader(query))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	refusedWith(t, serve(t, w.sandbox, r), "ILLEGAL_ARGUMENT")
	// _input_charset in the action URL alone, not in the form, is one of
	// the parameters signed: the request is taken.
	r = httptest.NewRequest("POST", "http://sandbox.test/gateway.do?_input_charset=utf-8", strings.NewReader(strings.Replace(query, "_input_charset=utf-8&", "", 1)))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	assert.Equal(t, http.StatusFound, serve(t, w.sandbox, r).Code, "_input_charset from the action URL alone is signed too")

	// The good one opens the cashier, and the same order again the same
	// cashier; another amount for it is refused.
	first := w.request(t, good, false)
	require.Equal(t, http.StatusFound, first.Code, first.Body.String())
	assert.Equal(t, first.Header().Get("Location"), w.request(t, good, true).Header().Get("Location"))
	refusedWith(t, w.request(t, w.payURL(t, m, map[string]any{"out_trade_no": "X1", "total_amount": "1.00", "subject": "测试"}), false), "TRADE_DATA_MATCH_ERROR")
}

// The legacy vectors' own requests (testdata/legacy/vectors.json, which
// make_vectors.py builds apart from the Go code): each opens a cashier
// that shows its subject and amount, by GET and by POST form; tampered,
// it is refused.
func TestLegacyVectorRequests(t *testing.T) {
	w := newLegacyWorld(t, func(s *Handler) { s.CallbackHosts = []string{"shop.example.com"} })
	n := 0
	for _, c := range w.vec.Cases {
		if c.Kind != "request" {
			continue
		}
		n++
		t.Run(c.Name, func(t *testing.T) {
			u, err := url.Parse(c.GatewayURL)
			require.NoError(t, err)
			target := "http://sandbox.test/gateway.do?" + u.RawQuery
			for _, post := range []bool{false, true} {
				page, forms := w.cashier(t, w.request(t, target, post))
				assert.Contains(t, page, `<p id="subject">`+html.EscapeString(c.Params["subject"])+`</p>`)
				assert.Contains(t, page, `<span id="amount">`+c.Params["total_fee"]+`</span>`)
				assert.Contains(t, forms, "pay")
			}
			tampered := strings.Replace(target, "total_fee="+c.Params["total_fee"], "total_fee=1000.00", 1)
			require.NotEqual(t, target, tampered)
			refusedWith(t, w.request(t, tampered, false), "ILLEGAL_SIGN")
		})
	}
	assert.Equal(t, 5, n)
}

// With partner and md5_key alone the sandbox plays only the legacy
// gateway: MD5 requests open a cashier; RSA ones and every OpenAPI
// request are refused. md5_key may name a file.
func TestLegacyOnly(t *testing.T) {
	w := newLegacyWorld(t, func(s *Handler) {
		s.AppPublicKey, s.AlipayPrivateKey, s.MD5Key = "", "", testvec.Path("legacy", "md5_key.txt")
	})
	m := w.merchant(t, protocol.SignTypeMD5, "gbk", legacyKeys{}, nil)
	_, forms := w.cashier(t, w.request(t, w.payURL(t, m, map[string]any{"out_trade_no": "O1", "total_amount": "3.00", "subject": "只有旧版"}), true))
	paid := w.press(t, forms["pay"])
	require.Equal(t, http.StatusFound, paid.Code)
	w.shop.waitNotify(t)
	w.shop.mu.Lock()
	assert.Len(t, w.shop.notify, 1, w.shop.refused)
	w.shop.mu.Unlock()

	rsa := w.merchant(t, protocol.SignTypeRSA, "utf-8", testLegacyRSAKeys, nil)
	refusedWith(t, w.request(t, w.payURL(t, rsa, map[string]any{"out_trade_no": "O2", "total_amount": "3.00", "subject": "rsa"}), false), "ILLEGAL_SIGN_TYPE")

	rec := serve(t, w.sandbox, httptest.NewRequest("GET", signedPayURL(t, "http://127.0.0.1:1/n", "http://127.0.0.1:1/r",
		map[string]any{"out_trade_no": "O3", "total_amount": "1.00", "subject": "openapi"}), nil))
	assert.Equal(t, http.StatusBadRequest, rec.Code)
	assert.Contains(t, rec.Body.String(), "invalid-app-id")
	f := apiError(t, serve(t, w.sandbox, apiRequest(t, "POST", testAppID, "alipay.trade.query", protocol.SignTypeRSA2,
		map[string]any{"out_trade_no": "O1"}, nil)), "alipay.trade.query")
	assert.Equal(t, "isv.invalid-app-id", f["sub_code"])
}

// Without partner, a legacy request is what it was before: a request
// that lacks OpenAPI's parameters.
func TestLegacyWithoutPartner(t *testing.T) {
	v := testvec.LoadLegacy(t)
	s := newTestSandbox(t, func(s *Handler) { s.CallbackHosts = []string{"shop.example.com"} })
	u, err := url.Parse(v.Cases[0].GatewayURL)
	require.NoError(t, err)
	rec := serve(t, s, httptest.NewRequest("GET", "http://sandbox.test/gateway.do?"+u.RawQuery, nil))
	refusedWith(t, rec, "missing-parameter")
	rec = serve(t, s, httptest.NewRequest("GET", "http://sandbox.test/gateway.do?service=notify_verify&partner="+v.Partner+"&notify_id=x", nil))
	refusedWith(t, rec, "missing-parameter")
}
