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
	"testing"
	"time"

	"github.com/caddy-alipay/caddy-alipay/internal/protocol"
	"github.com/caddy-alipay/caddy-alipay/internal/testvec"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The legacy gateway, played against the protocol package's merchant side
// (protocol.Legacy): it signs the pay requests, and verifies the
// notifications and returns, asking the sandbox's notify_verify over HTTP
// as it asks Alipay's.

// legacyWorld is a sandbox that plays the vectors' partner, served over
// HTTP (for notify_verify), and a shop on loopback that verifies its
// notifications as the sidecar does.
type legacyWorld struct {
	vec     *testvec.LegacyVectors
	sandbox *Handler
	gateway *httptest.Server
	shop    *merchantShop
	site    *httptest.Server
}

// newLegacyWorld provisions the sandbox with the vectors' partner and MD5
// key and the OpenAPI test keys (for sign_type RSA); edit, if not nil,
// changes the config first.
func newLegacyWorld(t *testing.T, edit func(*Handler)) *legacyWorld {
	t.Helper()
	v := testvec.LoadLegacy(t)
	w := &legacyWorld{vec: v, sandbox: newTestSandbox(t, func(s *Handler) {
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
// notify_verify. The shop verifies with it from now on, and with its
// keys the batch_refund_notify (verifyBatchNotify).
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
	w.shop.batchVerify = func(ctx context.Context, body []byte) (map[string]string, error) {
		return w.verifyBatchNotify(ctx, body, m.Verifier, cfg.InputCharset)
	}
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
	return (&world{sandbox: w.sandbox}).cashier(t, gw)
}

func (w *legacyWorld) press(t *testing.T, action string) *httptest.ResponseRecorder {
	t.Helper()
	return (&world{sandbox: w.sandbox}).postCashier(t, action)
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
		sandbox                 func(*Handler)
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
			legacyKeys{rsa1024Priv, testvec.Path("legacy", "alipay_rsa1024_public.pem")}, func(s *Handler) {
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
	sent := w.sandbox.trades.sent
	sent.mu.Lock()
	assert.Empty(t, sent.at, "expired ids are forgotten")
	sent.mu.Unlock()

	// A return after the minute no longer verifies: notify_verify says false.
	ret, err := m.ParseCallback(back.RawQuery)
	require.NoError(t, err)
	assert.ErrorIs(t, m.VerifyCallback(context.Background(), ret, protocol.EventReturn), protocol.ErrNotConfirmed)
}

// notify_verify: plain text, not for POST, and the remembered ids stay
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
			f := apiCall(t, w.sandbox, call.method, call.biz)
			assert.Equal(t, "ACQ.TRADE_NOT_EXIST", f["sub_code"], call)
		}
	}
	// The OpenAPI side is as before, with an order of the same number.
	ow := &world{sandbox: w.sandbox, api: merchantAPI(t, protocol.SignTypeRSA2)}
	rec := serve(t, w.sandbox, httptest.NewRequest("GET", payURL(t, ow.api, "http://127.0.0.1:1/n", "http://127.0.0.1:1/r",
		map[string]any{"out_trade_no": "B1", "total_amount": "7.00", "subject": "openapi"}), nil))
	require.Equal(t, http.StatusFound, rec.Code, rec.Body.String())
	f := apiCall(t, w.sandbox, "alipay.trade.query", map[string]any{"out_trade_no": "B1"})
	assert.Equal(t, "10000", f["code"])
	assert.Equal(t, "7.00", f["total_amount"])
	assert.Equal(t, "WAIT_BUYER_PAY", f["trade_status"])
}
