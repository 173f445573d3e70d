package sandbox

import (
	"context"
	"encoding/json"
	"html"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddy-alipay/caddy-alipay/internal/protocol"
	"github.com/caddy-alipay/caddy-alipay/internal/testvec"
	"github.com/caddyserver/caddy/v2"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The legacy gateway, played against the protocol package's merchant side
// (protocol.Legacy): it signs the pay requests, and verifies the
// notifications and returns, asking the sandbox's notify_verify over HTTP
// as it asks Alipay's.

// clockShift moves the package clock ahead of the real one. The
// notifier's goroutines read the clock, so it is set once, before any
// test runs, and moved atomically.
var clockShift atomic.Int64

func init() {
	now = func() time.Time { return time.Now().Add(time.Duration(clockShift.Load())) }
}

// advanceClock moves the package clock d ahead for the rest of the test.
func advanceClock(t *testing.T, d time.Duration) {
	clockShift.Add(int64(d))
	t.Cleanup(func() { clockShift.Add(-int64(d)) })
}

// legacyWorld is a sandbox that plays the vectors' partner, served over
// HTTP (for notify_verify), and a shop on loopback that verifies its
// notifications as the sidecar does.
type legacyWorld struct {
	vec     *testvec.LegacyVectors
	sandbox *Sandbox
	gateway *httptest.Server
	shop    *merchantShop
	site    *httptest.Server
}

// newLegacyWorld provisions the sandbox with the vectors' partner and MD5
// key and the OpenAPI test keys (for sign_type RSA); edit, if not nil,
// changes the config first.
func newLegacyWorld(t *testing.T, edit func(*Sandbox)) *legacyWorld {
	t.Helper()
	v := testvec.LoadLegacy(t)
	w := &legacyWorld{vec: v, sandbox: newTestSandbox(t, func(s *Sandbox) {
		s.Partner, s.MD5Key = v.Partner, v.MD5Key
		if edit != nil {
			edit(s)
		}
	})}
	w.gateway = httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		// As on a site for sandbox.test and this server's loopback address.
		_ = w.sandbox.ServeHTTP(rw, onSite(w.sandbox, r, "sandbox.test", r.Host), upstream{})
	}))
	t.Cleanup(w.gateway.Close)
	w.shop = &merchantShop{status: http.StatusOK, arrived: make(chan struct{}, 16)}
	w.site = httptest.NewServer(w.shop)
	t.Cleanup(w.site.Close)
	return w
}

// legacyKeys are the files of a legacy RSA merchant: its private key,
// and the public half of the sandbox's alipay_private_key.
type legacyKeys struct{ appPrivate, alipayPublic string }

var testLegacyRSAKeys = legacyKeys{testvec.Key("app_private_key_pkcs1.pem"), testvec.Key("alipay_public_key.pem")}

// merchant is the partner as the sidecar speaks for it: sign_type MD5
// (keys ignored) or RSA (with keys), in charset, asking the sandbox's
// notify_verify. The shop verifies with it from now on.
func (w *legacyWorld) merchant(t *testing.T, signType, charset string, keys legacyKeys, edit func(*protocol.LegacyConfig)) *protocol.Legacy {
	t.Helper()
	cfg := protocol.LegacyConfig{Partner: w.vec.Partner, SignType: signType, InputCharset: charset,
		Gateway: w.gateway.URL + "/gateway.do", NotifyVerify: true}
	if signType == protocol.SignTypeMD5 {
		cfg.MD5Key = w.vec.MD5Key
	} else {
		cfg.AppPrivateKey, cfg.AlipayPublicKey = keys.appPrivate, keys.alipayPublic
	}
	if edit != nil {
		edit(&cfg)
	}
	m, _, err := protocol.NewLegacy(cfg)
	require.NoError(t, err)
	m.HTTP = w.gateway.Client()
	w.shop.mu.Lock()
	w.shop.merchant = m
	w.shop.mu.Unlock()
	return m
}

// payURL is the gateway URL that m signs for claims, with the shop's
// callback URLs.
func (w *legacyWorld) payURL(t *testing.T, m *protocol.Legacy, claims map[string]any) string {
	t.Helper()
	raw := map[string]json.RawMessage{}
	for k, v := range claims {
		b, err := json.Marshal(v)
		require.NoError(t, err)
		raw[k] = b
	}
	o, err := m.ParseOrder(raw)
	require.NoError(t, err)
	u, err := m.PayURL(o, w.site.URL+"/alipay/notify", w.site.URL+"/alipay/return", time.Now())
	require.NoError(t, err)
	return u
}

// request sends a signed gateway URL to the sandbox: as a GET, or as the
// legacy demos' POST form, every parameter in the body and
// _input_charset also in the action URL.
func (w *legacyWorld) request(t *testing.T, signedURL string, post bool) *httptest.ResponseRecorder {
	t.Helper()
	gw, query, _ := strings.Cut(signedURL, "?")
	if !post {
		return serve(t, w.sandbox, httptest.NewRequest("GET", signedURL, nil))
	}
	q, err := url.ParseQuery(query)
	require.NoError(t, err)
	r := httptest.NewRequest("POST", gw+"?_input_charset="+url.QueryEscape(q.Get("_input_charset")), strings.NewReader(query))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return serve(t, w.sandbox, r)
}

// cashier opens the cashier the gateway redirected to.
func (w *legacyWorld) cashier(t *testing.T, gw *httptest.ResponseRecorder) (string, map[string]string) {
	t.Helper()
	return (&sandboxWorld{sandbox: w.sandbox}).cashier(t, gw)
}

func (w *legacyWorld) press(t *testing.T, action string) *httptest.ResponseRecorder {
	t.Helper()
	return (&sandboxWorld{sandbox: w.sandbox}).postCashier(t, action)
}

// notifyVerify asks the sandbox's notify_verify, as a shop does.
func (w *legacyWorld) notifyVerify(t *testing.T, partner, notifyID string) string {
	t.Helper()
	q := url.Values{"service": {"notify_verify"}, "partner": {partner}, "notify_id": {notifyID}}
	res, err := w.gateway.Client().Get(w.gateway.URL + "/gateway.do?" + q.Encode())
	require.NoError(t, err)
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, res.StatusCode)
	return string(body)
}

// refusedWith checks that the gateway showed the error page with code,
// and no cashier.
func refusedWith(t *testing.T, rec *httptest.ResponseRecorder, code string) {
	t.Helper()
	assert.Equal(t, http.StatusBadRequest, rec.Code)
	assert.Contains(t, rec.Body.String(), `<b id="error-code">`+html.EscapeString(code)+`</b>`)
	assert.NotContains(t, rec.Body.String(), `id="pay"`)
}

// The whole legacy loop, signed with MD5 and RSA, in utf-8 and gbk, by
// GET and by POST form: the cashier shows the order; Pay sends the
// buyer back with a signed return and the shop a signed notification,
// both in the request's charset, both confirmed by notify_verify.
func TestLegacyPayLoop(t *testing.T) {
	rsa1024Priv, rsa1024Pub := testvec.NewKeyFiles(t, 1024)
	for _, c := range []struct {
		name, signType, charset string
		post                    bool
		keys                    legacyKeys
		sandbox                 func(*Sandbox)
	}{
		{"md5 utf-8 get", protocol.SignTypeMD5, "utf-8", false, legacyKeys{}, nil},
		{"md5 utf-8 post", protocol.SignTypeMD5, "utf-8", true, legacyKeys{}, nil},
		{"md5 gbk get", protocol.SignTypeMD5, "gbk", false, legacyKeys{}, nil},
		{"md5 gbk post", protocol.SignTypeMD5, "gbk", true, legacyKeys{}, nil},
		{"rsa utf-8 get", protocol.SignTypeRSA, "utf-8", false, testLegacyRSAKeys, nil},
		{"rsa utf-8 post", protocol.SignTypeRSA, "utf-8", true, testLegacyRSAKeys, nil},
		{"rsa gbk get", protocol.SignTypeRSA, "gbk", false, testLegacyRSAKeys, nil},
		{"rsa gbk post", protocol.SignTypeRSA, "gbk", true, testLegacyRSAKeys, nil},
		// Legacy partners often still have 1024-bit keys, on both sides.
		{"rsa 1024-bit gbk get", protocol.SignTypeRSA, "gbk", false,
			legacyKeys{rsa1024Priv, testvec.Path("legacy", "alipay_rsa1024_public.pem")}, func(s *Sandbox) {
				s.AppPublicKey, s.AlipayPrivateKey = rsa1024Pub, testvec.Path("legacy", "alipay_rsa1024_private.pem")
			}},
	} {
		t.Run(c.name, func(t *testing.T) {
			w := newLegacyWorld(t, c.sandbox)
			m := w.merchant(t, c.signType, c.charset, c.keys, nil)
			subject := "會員價 测试订单（王堃）"
			gw := w.request(t, w.payURL(t, m, map[string]any{"out_trade_no": "L1", "total_amount": "88.80", "subject": subject,
				"body": "规格=大&数量=2+1 赠品", "extra_common_param": "uid=42&ref=a+b c"}), c.post)
			page, forms := w.cashier(t, gw)
			assert.Contains(t, page, `<p id="subject">`+html.EscapeString(subject)+`</p>`)
			assert.Contains(t, page, `<span id="amount">88.80</span>`)
			assert.Contains(t, page, `<span id="service">create_direct_pay_by_user</span>`)
			require.Contains(t, forms, "pay")
			require.Contains(t, forms, "cancel")

			paid := w.press(t, forms["pay"])
			require.Equal(t, http.StatusFound, paid.Code, paid.Body.String())
			back, err := url.Parse(paid.Header().Get("Location"))
			require.NoError(t, err)
			assert.Equal(t, w.site.URL+"/alipay/return", back.Scheme+"://"+back.Host+back.Path)

			// The return verifies, notify_verify included.
			ret, err := m.ParseCallback(back.RawQuery)
			require.NoError(t, err)
			require.NoError(t, m.VerifyCallback(context.Background(), ret, protocol.EventReturn))
			rp := ret.Params()
			for k, v := range map[string]string{"is_success": "T", "exterface": "create_direct_pay_by_user",
				"notify_type": "trade_status_sync", "out_trade_no": "L1", "trade_status": "TRADE_FINISHED", "total_fee": "88.80",
				"subject": subject, "body": "规格=大&数量=2+1 赠品", "extra_common_param": "uid=42&ref=a+b c",
				"payment_type": "1", "seller_id": w.vec.Partner, "buyer_email": sandboxBuyerEmail, "buyer_id": sandboxBuyerID} {
				assert.Equal(t, v, rp[k], "return "+k)
			}
			for _, k := range []string{"notify_id", "notify_time", "trade_no", "seller_email"} {
				assert.NotEmpty(t, rp[k], "return "+k)
			}
			assert.Equal(t, c.signType, back.Query().Get("sign_type"))

			// The notification reached the shop, and verified.
			w.shop.waitNotify(t)
			w.shop.mu.Lock()
			require.Empty(t, w.shop.refused)
			require.Len(t, w.shop.notify, 1)
			np, contentType := w.shop.notify[0], w.shop.contentTypes[0]
			w.shop.mu.Unlock()
			assert.Equal(t, "application/x-www-form-urlencoded; charset="+c.charset, contentType)
			for k, v := range map[string]string{"notify_type": "trade_status_sync", "out_trade_no": "L1",
				"trade_status": "TRADE_FINISHED", "total_fee": "88.80", "price": "88.80", "quantity": "1",
				"subject": subject, "body": "规格=大&数量=2+1 赠品", "extra_common_param": "uid=42&ref=a+b c",
				"payment_type": "1", "seller_id": w.vec.Partner, "seller_email": sandboxSellerEmail,
				"buyer_id": sandboxBuyerID, "buyer_email": sandboxBuyerEmail,
				"is_total_fee_adjust": "N", "use_coupon": "N", "discount": "0.00", "trade_no": rp["trade_no"]} {
				assert.Equal(t, v, np[k], "notify "+k)
			}
			for _, k := range []string{"notify_id", "notify_time", "gmt_create", "gmt_payment"} {
				assert.NotEmpty(t, np[k], "notify "+k)
			}
			_, hasAppID := np["app_id"]
			assert.False(t, hasAppID, "a legacy notification has no OpenAPI fields")
			assert.NotEqual(t, rp["notify_id"], np["notify_id"], "the return and the notification have notify_ids of their own")

			// The trade is paid, once.
			again := w.press(t, forms["pay"])
			assert.Equal(t, http.StatusConflict, again.Code)
			assert.Contains(t, again.Body.String(), "TRADE_HAS_SUCCESS")
		})
	}
}

// A notification that the shop does not accept is sent again on the
// schedule, each time with a fresh notify_id, until the answer is
// success. notify_verify confirms each for a minute, and then no more.
func TestLegacyNotifyRetried(t *testing.T) {
	w := newLegacyWorld(t, withRetry(20*time.Millisecond, 20*time.Millisecond, 20*time.Millisecond, 20*time.Millisecond))
	m := w.merchant(t, protocol.SignTypeMD5, "gbk", legacyKeys{}, nil)
	w.shop.setStatus(http.StatusInternalServerError)
	_, forms := w.cashier(t, w.request(t, w.payURL(t, m, map[string]any{"out_trade_no": "R1", "total_amount": "1", "subject": "重试"}), false))
	paid := w.press(t, forms["pay"])
	require.Equal(t, http.StatusFound, paid.Code)
	back, _ := url.Parse(paid.Header().Get("Location"))
	returnID := back.Query().Get("notify_id")

	w.shop.waitNotify(t)
	w.shop.waitNotify(t)
	w.shop.setStatus(http.StatusOK)
	w.shop.waitNotify(t)
	select {
	case <-w.shop.arrived:
		t.Fatal("sent again after success")
	case <-time.After(60 * time.Millisecond):
	}
	w.shop.mu.Lock()
	require.Empty(t, w.shop.refused, "every attempt verified, notify_verify included")
	require.Len(t, w.shop.notify, 3)
	ids := map[string]bool{returnID: true}
	for _, n := range w.shop.notify {
		ids[n["notify_id"]] = true
		assert.Equal(t, "TRADE_FINISHED", n["trade_status"])
		assert.Equal(t, "重试", n["subject"])
	}
	w.shop.mu.Unlock()
	require.Len(t, ids, 4, "each sending, and the return, with a notify_id of its own")

	for id := range ids {
		assert.Equal(t, "true", w.notifyVerify(t, w.vec.Partner, id), "within the minute")
		assert.Equal(t, "invalid", w.notifyVerify(t, "2088000000000002", id), "another partner")
	}
	assert.Equal(t, "false", w.notifyVerify(t, w.vec.Partner, "0123456789abcdef0123456789abcdef"), "never sent")
	advanceClock(t, notifyIDLifetime+time.Second)
	for id := range ids {
		assert.Equal(t, "false", w.notifyVerify(t, w.vec.Partner, id), "after the minute")
	}
	w.sandbox.legacy.sent.mu.Lock()
	assert.Empty(t, w.sandbox.legacy.sent.at, "expired ids are forgotten")
	w.sandbox.legacy.sent.mu.Unlock()

	// A return after the minute no longer verifies: notify_verify says false.
	ret, err := m.ParseCallback(back.RawQuery)
	require.NoError(t, err)
	assert.ErrorIs(t, m.VerifyCallback(context.Background(), ret, protocol.EventReturn), protocol.ErrNotConfirmed)
}

// notify_verify: plain text, GET only, and the remembered ids stay
// bounded.
func TestLegacyNotifyVerifyService(t *testing.T) {
	w := newLegacyWorld(t, nil)
	for partner, want := range map[string]string{w.vec.Partner: "false", "": "invalid", "2088000000000002": "invalid"} {
		assert.Equal(t, want, w.notifyVerify(t, partner, "unknown"), partner)
	}
	rec := serve(t, w.sandbox, httptest.NewRequest("POST", "http://sandbox.test/gateway.do?service=notify_verify&partner="+w.vec.Partner+"&notify_id=x", nil))
	assert.Equal(t, http.StatusMethodNotAllowed, rec.Code)
	rec = serve(t, w.sandbox, httptest.NewRequest("GET", "http://sandbox.test/gateway.do?service=notify_verify&partner="+w.vec.Partner+"&notify_id=x", nil))
	assert.Equal(t, "text/plain; charset=utf-8", rec.Header().Get("Content-Type"))
	assert.Equal(t, "false", rec.Body.String())

	sent := &sentNotifyIDs{at: map[string]time.Time{}, max: 3}
	t0 := time.Now()
	var ids []string
	for i := range 4 {
		ids = append(ids, sent.add(t0.Add(time.Duration(i)*time.Second)))
	}
	assert.Len(t, sent.at, 3)
	assert.False(t, sent.confirm(ids[0], t0.Add(4*time.Second)), "the oldest made room")
	assert.True(t, sent.confirm(ids[3], t0.Add(4*time.Second)))
	assert.True(t, sent.confirm(ids[1], t0.Add(61*time.Second)), "sent at 1s: a minute is not yet over")
	assert.False(t, sent.confirm(ids[1], t0.Add(62*time.Second)))
	assert.Len(t, sent.at, 2, "pruned")
}

// Requests that the legacy gateway refuses get its error page, with its
// error code, and no cashier.
func TestLegacyRefused(t *testing.T) {
	w := newLegacyWorld(t, func(s *Sandbox) { s.CallbackHosts = []string{"shop.example.com"} })
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
		"another service":         {signed(func(p map[string]string) { p["service"] = "refund_fastpay_by_platform_pwd" }), "ILLEGAL_SERVICE", false},
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
	// With another _input_charset than the one signed, the sign breaks.
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

// The vectors' own requests, as seed 002's code built them: each opens a
// cashier that shows its subject and amount, by GET and by POST form;
// tampered, it is refused.
func TestLegacyVectorRequests(t *testing.T) {
	w := newLegacyWorld(t, func(s *Sandbox) { s.CallbackHosts = []string{"shop.example.com"} })
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

// A request that named seller_email gets it back in its callbacks.
func TestLegacySellerEmail(t *testing.T) {
	w := newLegacyWorld(t, nil)
	m := w.merchant(t, protocol.SignTypeMD5, "utf-8", legacyKeys{}, func(c *protocol.LegacyConfig) { c.SellerEmail = "seller@example.com" })
	gw := w.request(t, w.payURL(t, m, map[string]any{"out_trade_no": "E1", "total_amount": "2.00", "subject": "email"}), false)
	_, forms := w.cashier(t, gw)
	paid := w.press(t, forms["pay"])
	back, err := url.Parse(paid.Header().Get("Location"))
	require.NoError(t, err)
	ret, err := m.ParseCallback(back.RawQuery)
	require.NoError(t, err)
	require.NoError(t, m.VerifyCallback(context.Background(), ret, protocol.EventReturn))
	assert.Equal(t, "seller@example.com", ret.Get("seller_email"))
	w.shop.waitNotify(t)
	w.shop.mu.Lock()
	defer w.shop.mu.Unlock()
	require.Len(t, w.shop.notify, 1, w.shop.refused)
	assert.Equal(t, "seller@example.com", w.shop.notify[0]["seller_email"])
	assert.Equal(t, w.vec.Partner, w.shop.notify[0]["seller_id"])
}

// Cancel sends the buyer back to the shop, as for OpenAPI trades.
func TestLegacyCancel(t *testing.T) {
	w := newLegacyWorld(t, nil)
	m := w.merchant(t, protocol.SignTypeMD5, "utf-8", legacyKeys{}, nil)
	_, forms := w.cashier(t, w.request(t, w.payURL(t, m, map[string]any{"out_trade_no": "C1", "total_amount": "1", "subject": "cancel"}), false))
	rec := w.press(t, forms["cancel"])
	assert.Equal(t, http.StatusFound, rec.Code)
	assert.Equal(t, w.site.URL+"/", rec.Header().Get("Location"))
	select {
	case <-w.shop.arrived:
		t.Fatal("a cancelled trade was notified")
	case <-time.After(20 * time.Millisecond):
	}
}

// OpenAPI calls do not see legacy trades: they belong to no app_id. An
// OpenAPI trade may have the same out_trade_no.
func TestLegacyTradesAreNotOpenAPIs(t *testing.T) {
	w := newLegacyWorld(t, nil)
	m := w.merchant(t, protocol.SignTypeMD5, "utf-8", legacyKeys{}, nil)
	_, forms := w.cashier(t, w.request(t, w.payURL(t, m, map[string]any{"out_trade_no": "B1", "total_amount": "5.00", "subject": "both"}), false))
	paid := w.press(t, forms["pay"])
	back, _ := url.Parse(paid.Header().Get("Location"))
	tradeNo := back.Query().Get("trade_no")
	require.NotEmpty(t, tradeNo)
	w.shop.waitNotify(t)

	for _, c := range []struct{ key, value string }{{"out_trade_no", "B1"}, {"trade_no", tradeNo}} {
		for _, call := range []struct {
			method string
			biz    map[string]any
		}{
			{"alipay.trade.query", map[string]any{c.key: c.value}},
			{"alipay.trade.refund", map[string]any{c.key: c.value, "refund_amount": "1.00"}},
			{"alipay.trade.fastpay.refund.query", map[string]any{c.key: c.value, "out_request_no": "B1"}},
			{"alipay.trade.close", map[string]any{c.key: c.value}},
		} {
			f := sandboxAPICall(t, w.sandbox, call.method, call.biz)
			assert.Equal(t, "ACQ.TRADE_NOT_EXIST", f["sub_code"], call)
		}
	}
	// The OpenAPI side is as before, with an order of the same number.
	ow := &sandboxWorld{sandbox: w.sandbox, api: merchantAPI(t, protocol.SignTypeRSA2)}
	rec := serve(t, w.sandbox, httptest.NewRequest("GET", payURL(t, ow.api, "http://127.0.0.1:1/n", "http://127.0.0.1:1/r",
		map[string]any{"out_trade_no": "B1", "total_amount": "7.00", "subject": "openapi"}), nil))
	require.Equal(t, http.StatusFound, rec.Code, rec.Body.String())
	f := sandboxAPICall(t, w.sandbox, "alipay.trade.query", map[string]any{"out_trade_no": "B1"})
	assert.Equal(t, "10000", f["code"])
	assert.Equal(t, "7.00", f["total_amount"])
	assert.Equal(t, "WAIT_BUYER_PAY", f["trade_status"])
}

// With partner and md5_key alone the sandbox plays only the legacy
// gateway: MD5 requests open a cashier; RSA ones and every OpenAPI
// request are refused. md5_key may name a file.
func TestLegacyOnly(t *testing.T) {
	w := newLegacyWorld(t, func(s *Sandbox) {
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
	f := sandboxAPIError(t, serve(t, w.sandbox, sandboxAPIRequest(t, "POST", testAppID, "alipay.trade.query", protocol.SignTypeRSA2,
		map[string]any{"out_trade_no": "O1"}, nil)), "alipay.trade.query")
	assert.Equal(t, "isv.invalid-app-id", f["sub_code"])
}

// Without partner, a legacy request is what it was before: a request
// that lacks OpenAPI's parameters.
func TestLegacyWithoutPartner(t *testing.T) {
	v := testvec.LoadLegacy(t)
	s := newTestSandbox(t, func(s *Sandbox) { s.CallbackHosts = []string{"shop.example.com"} })
	u, err := url.Parse(v.Cases[0].GatewayURL)
	require.NoError(t, err)
	rec := serve(t, s, httptest.NewRequest("GET", "http://sandbox.test/gateway.do?"+u.RawQuery, nil))
	refusedWith(t, rec, "missing-parameter")
	rec = serve(t, s, httptest.NewRequest("GET", "http://sandbox.test/gateway.do?service=notify_verify&partner="+v.Partner+"&notify_id=x", nil))
	refusedWith(t, rec, "missing-parameter")
}

func TestLegacyProvisionErrors(t *testing.T) {
	v := testvec.LoadLegacy(t)
	keys := func(s Sandbox) Sandbox {
		s.AppPublicKey, s.AlipayPrivateKey = testvec.Key("app_public_key.pem"), testvec.Key("alipay_private_key_pkcs1.pem")
		return s
	}
	badKey := "notthekey" + v.MD5Key[9:31]
	for name, c := range map[string]struct {
		s       Sandbox
		setting string
	}{
		"md5_key without partner":      {keys(Sandbox{MD5Key: v.MD5Key}), "md5_key"},
		"partner without md5_key":      {Sandbox{Partner: v.Partner}, "md5_key"},
		"partner without md5_key, rsa": {keys(Sandbox{Partner: v.Partner}), "md5_key"},
		"not a partner id":             {Sandbox{Partner: "2021000000000001", MD5Key: v.MD5Key}, "partner"},
		"partner from an unset env":    {Sandbox{Partner: "{env.CADDY_ALIPAY_TEST_UNSET}", MD5Key: v.MD5Key}, "partner"},
		"md5_key from an unset env":    {Sandbox{Partner: v.Partner, MD5Key: "{env.CADDY_ALIPAY_TEST_UNSET}"}, "md5_key"},
		"short md5_key":                {Sandbox{Partner: v.Partner, MD5Key: badKey}, "md5_key"},
		"md5_key not alnum":            {Sandbox{Partner: v.Partner, MD5Key: v.MD5Key[:31] + "-"}, "md5_key"},
		"md5_key file absent":          {Sandbox{Partner: v.Partner, MD5Key: "/nonexistent/md5.key"}, "md5_key"},
		"app key alone":                {Sandbox{Partner: v.Partner, MD5Key: v.MD5Key, AppPublicKey: testvec.Key("app_public_key.pem")}, "alipay_private_key"},
		"alipay key alone":             {Sandbox{Partner: v.Partner, MD5Key: v.MD5Key, AlipayPrivateKey: testvec.Key("alipay_private_key_pkcs1.pem")}, "app_public_key"},
		"certificates without keys":    {Sandbox{Partner: v.Partner, MD5Key: v.MD5Key, Certificates: t.TempDir()}, "certificates"},
	} {
		t.Run(name, func(t *testing.T) {
			ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
			defer cancel()
			s := c.s
			err := s.Provision(ctx)
			require.Error(t, err)
			assert.True(t, strings.HasPrefix(err.Error(), c.setting+": "), err.Error())
			assert.NotContains(t, err.Error(), v.MD5Key[9:31], "no key in an error")
		})
	}
	for name, s := range map[string]Sandbox{
		"partner and md5_key":       {Partner: v.Partner, MD5Key: v.MD5Key},
		"md5_key file":              {Partner: v.Partner, MD5Key: testvec.Path("legacy", "md5_key.txt")},
		"partner, md5_key and keys": keys(Sandbox{Partner: v.Partner, MD5Key: v.MD5Key}),
	} {
		t.Run(name, func(t *testing.T) {
			ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
			defer cancel()
			require.NoError(t, s.Provision(ctx))
			require.NotNil(t, s.legacy)
			assert.Equal(t, s.AppPublicKey != "", s.openAPI)
			_, rsa := s.legacy.verifiers[protocol.SignTypeRSA]
			assert.Equal(t, s.openAPI, rsa, "sign_type RSA with the OpenAPI keys")
		})
	}
}

// The JSON config names the legacy settings partner and md5_key.
func TestLegacyJSONConfig(t *testing.T) {
	v := testvec.LoadLegacy(t)
	var s Sandbox
	require.NoError(t, json.Unmarshal([]byte(`{"partner":"`+v.Partner+`","md5_key":"`+v.MD5Key+`"}`), &s))
	assert.Equal(t, Sandbox{Partner: v.Partner, MD5Key: v.MD5Key}, s)
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	defer cancel()
	require.NoError(t, s.Provision(ctx))
	out, err := json.Marshal(Sandbox{Partner: v.Partner, MD5Key: "/keys/md5.key"})
	require.NoError(t, err)
	assert.JSONEq(t, `{"partner":"`+v.Partner+`","md5_key":"/keys/md5.key"}`, string(out))
}
