package alipay

// The legacy protocol (即时到账), through the handler and through a real
// Caddy: pay, notify with each answer of notify_verify, return and the
// token. Its configuration errors are tested in module_test.go.

import (
	"encoding/json"
	"net"
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

// fakeMapi answers notify_verify as it is told: "true", "false",
// "invalid", or "hang" (no answer until the question is given up).
type fakeMapi struct {
	mu     sync.Mutex
	answer string
	asked  []url.Values // each request's query and form
}

func (g *fakeMapi) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	_ = r.ParseForm()
	g.mu.Lock()
	g.asked = append(g.asked, r.Form)
	answer := g.answer
	g.mu.Unlock()
	if answer == "hang" {
		select {
		case <-r.Context().Done():
		case <-time.After(10 * time.Second):
		}
		return
	}
	_, _ = w.Write([]byte(answer))
}

func (g *fakeMapi) set(answer string) {
	g.mu.Lock()
	g.answer, g.asked = answer, nil
	g.mu.Unlock()
}

func (g *fakeMapi) questions() []url.Values {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.asked
}

// legacyCase is the named case of the legacy vectors.
func legacyCase(t testing.TB, name string) (*testvec.LegacyVectors, testvec.Legacy) {
	t.Helper()
	v := testvec.LoadLegacy(t)
	for _, c := range v.Cases {
		if c.Name == name {
			return v, c
		}
	}
	t.Fatalf("no legacy vector %s", name)
	return nil, testvec.Legacy{}
}

// newLegacyHandler is a legacy sidecar for the vectors' MD5 partner, its
// notify_verify asked at gw.
func newLegacyHandler(t *testing.T, charset string, gw *httptest.Server, edit func(*Handler)) *Handler {
	t.Helper()
	v := testvec.LoadLegacy(t)
	return newTestHandler(t, func(h *Handler) {
		h.AppID, h.AppPrivateKey, h.AlipayPublicKey = "", "", ""
		h.Partner, h.MD5Key, h.InputCharset = v.Partner, v.MD5Key, charset
		h.Gateway = gw.URL + "/gateway.do"
		if edit != nil {
			edit(h)
		}
	})
}

func TestLegacyPay(t *testing.T) {
	gw := httptest.NewServer(&fakeMapi{})
	defer gw.Close()
	for _, charset := range []string{"utf-8", "gbk"} {
		h := newLegacyHandler(t, charset, gw, nil)
		tok := payToken(t, map[string]any{"out_trade_no": "L1", "total_amount": "88.8", "subject": "西湖龙井 茶", "body": "a+b c",
			"it_b_pay": "30m", "paymethod": "bankPay", "defaultbank": "CMB", "extra_common_param": "uid=1&x=2"})
		w := serve(t, h, &upstream{}, httptest.NewRequest("GET", "http://shop.example.com/alipay/pay?token="+tok, nil))
		require.Equal(t, http.StatusFound, w.Code, w.Body.String())
		loc, err := url.Parse(w.Header().Get("Location"))
		require.NoError(t, err)
		assert.Equal(t, gw.URL+"/gateway.do", loc.Scheme+"://"+loc.Host+loc.Path)
		q := loc.Query()
		params := map[string]string{}
		for k := range q {
			params[k] = q.Get(k)
		}
		subject := params["subject"]
		if charset == "gbk" {
			assert.NotEqual(t, "西湖龙井 茶", subject, "GBK bytes in the query")
		}
		assert.Equal(t, map[string]string{"service": "create_direct_pay_by_user", "partner": testvec.LoadLegacy(t).Partner,
			"_input_charset": charset, "payment_type": "1", "seller_id": testvec.LoadLegacy(t).Partner, "out_trade_no": "L1",
			"subject": subject, "total_fee": "88.80", "body": params["body"], "it_b_pay": "30m", "paymethod": "bankPay",
			"defaultbank": "CMB", "extra_common_param": "uid=1&x=2",
			"notify_url": "http://shop.example.com/alipay/notify", "return_url": "http://shop.example.com/alipay/return",
			"sign_type": "MD5", "sign": params["sign"]}, params)
		key, err := protocol.NewMD5Key(testvec.LoadLegacy(t).MD5Key)
		require.NoError(t, err)
		assert.NoError(t, key.Verify(protocol.LegacyContent(params), params["sign"]), "signed over the bytes in the charset")
	}
	h := newLegacyHandler(t, "gbk", gw, nil)
	for claim, claims := range map[string]map[string]any{
		"product":         {"out_trade_no": "L2", "total_amount": "1", "subject": "s", "product": "wap"},
		"passback_params": {"out_trade_no": "L2", "total_amount": "1", "subject": "s", "passback_params": "x"},
		"subject":         {"out_trade_no": "L2", "total_amount": "1", "subject": "emoji 😀"},
	} {
		w := serve(t, h, &upstream{}, httptest.NewRequest("GET", "http://shop.example.com/alipay/pay?token="+payToken(t, claims), nil))
		assert.Equal(t, http.StatusBadRequest, w.Code, claim)
		assert.Contains(t, w.Body.String(), claim)
	}
}

// A notification goes on only when notify_verify says true; another answer
// is refused with 400, no answer is 502 so that Alipay sends it again.
func TestLegacyNotify(t *testing.T) {
	mapi := &fakeMapi{}
	gw := httptest.NewServer(mapi)
	defer gw.Close()
	fixClock(t, tokenNow)
	for _, name := range []string{"md5_notify_utf8_trade_success", "md5_notify_gbk_trade_finished"} {
		v, c := legacyCase(t, name)
		h := newLegacyHandler(t, c.Charset, gw, func(h *Handler) { h.ForwardNotify = "/notify.php" })
		h.protocol.(*protocol.Legacy).ConfirmTimeout = 200 * time.Millisecond
		logs := observe(h)
		for _, tc := range []struct {
			answer  string
			status  int
			body    string
			outcome outcome
			calls   int
		}{
			{"true", 200, "success", outcomeOK, 1},
			{"false", 400, "fail", outcomeRefused, 0},
			{"invalid", 400, "fail", outcomeRefused, 0},
			{"hang", 502, "fail", outcomeUnconfirmed, 0},
		} {
			mapi.set(tc.answer)
			next := &upstream{status: 200}
			w := serve(t, h, next, notifyRequest(c.PostBody))
			assert.Equal(t, tc.status, w.Code, "%s %s", name, tc.answer)
			assert.Equal(t, tc.body, w.Body.String())
			assert.Equal(t, tc.calls, next.calls)
			ev := lastEvent(t, logs)
			assert.Equal(t, tc.outcome, outcomeOf(ev))
			amountKey := "total_amount"
			if tc.outcome != outcomeOK {
				amountKey = "unverified_total_amount" // not confirmed by notify_verify
			}
			assert.Equal(t, c.Params["total_fee"], ev[amountKey], "the log's amount is total_fee")
			if tc.answer != "true" {
				assert.Contains(t, ev["reason"], "notify_verify")
			}
			if tc.answer == "false" {
				assert.Contains(t, ev["reason"], `"false"`, "the answer in the log line")
			}
			require.Len(t, mapi.questions(), 1)
			assert.Equal(t, c.Params["notify_id"], mapi.questions()[0].Get("notify_id"))
			assert.Equal(t, v.Partner, mapi.questions()[0].Get("partner"))
			if tc.calls == 0 {
				continue
			}
			assert.Equal(t, "/notify.php", next.req.URL.Path)
			assert.Equal(t, c.PostBody, next.body)
			claims, err := h.tokens.Parse(next.req.Header.Get(TokenHeader), tokenNow)
			require.NoError(t, err)
			var cc CallbackClaims
			require.NoError(t, json.Unmarshal(must(json.Marshal(claims)), &cc))
			assert.Equal(t, v.Partner, cc.Audience)
			assert.Equal(t, "legacy", cc.Protocol)
			assert.Equal(t, c.Params["notify_id"], cc.ID)
			want := map[string]string{}
			for k, val := range c.Params {
				if val != "" {
					want[k] = val
				}
			}
			assert.Equal(t, want, cc.Params, "the callback's own fields, as UTF-8, empty ones not signed")
		}
		// Forged, and with notify_verify off.
		mapi.set("true")
		forged := strings.Replace(c.PostBody, "total_fee="+c.Params["total_fee"], "total_fee=999.99", 1)
		require.NotEqual(t, c.PostBody, forged)
		assert.Equal(t, 400, serve(t, h, &upstream{status: 200}, notifyRequest(forged)).Code)
		assert.Empty(t, mapi.questions(), "a forged notification is not asked about")
		off := newLegacyHandler(t, c.Charset, gw, func(h *Handler) { h.NotifyVerify = new(bool) })
		assert.Equal(t, "success", serve(t, off, &upstream{status: 200}, notifyRequest(c.PostBody)).Body.String())
		assert.Empty(t, mapi.questions())
	}
}

func TestLegacyReturn(t *testing.T) {
	mapi := &fakeMapi{answer: "true"}
	gw := httptest.NewServer(mapi)
	defer gw.Close()
	for _, name := range []string{"md5_return_utf8", "md5_return_gbk"} {
		_, c := legacyCase(t, name)
		h := newLegacyHandler(t, c.Charset, gw, nil)
		next := &upstream{status: 200}
		w := serve(t, h, next, httptest.NewRequest("GET", "http://shop.example.com/alipay/return?"+c.Query, nil))
		require.Equal(t, 200, w.Code, name)
		require.Equal(t, 1, next.calls)
		assert.Len(t, mapi.questions(), 1, "a return that carries notify_id is confirmed")
		claims, err := h.tokens.Parse(next.req.Header.Get(TokenHeader), time.Now())
		require.NoError(t, err)
		assert.JSONEq(t, `"return"`, string(claims["event"]))
		assert.JSONEq(t, `"legacy"`, string(claims["protocol"]))

		mapi.set("false")
		w = serve(t, h, &upstream{status: 200}, httptest.NewRequest("GET", "http://shop.example.com/alipay/return?"+c.Query, nil))
		assert.Equal(t, 400, w.Code)
		assert.Contains(t, w.Body.String(), "could not be confirmed")
		notSuccess := strings.Replace(c.Query, "is_success=T", "is_success=F", 1)
		w = serve(t, h, &upstream{status: 200}, httptest.NewRequest("GET", "http://shop.example.com/alipay/return?"+notSuccess, nil))
		assert.Equal(t, 400, w.Code)
		mapi.set("true")
	}
}

// The API is OpenAPI's: a legacy sidecar serves none of it.
// The API serves the legacy services, Alipay's XML answer as JSON; the
// OpenAPI methods are not served.
func TestLegacyAPI(t *testing.T) {
	mapi := &fakeMapi{}
	gw := httptest.NewServer(mapi)
	defer gw.Close()
	v := testvec.LoadLegacy(t)
	h := newLegacyHandler(t, "utf-8", gw, nil)
	h.protocol.(*protocol.Legacy).APITimeout = 200 * time.Millisecond
	call := func(service, body string) *httptest.ResponseRecorder {
		return serve(t, h, &upstream{}, apiRequest("POST", "/alipay/api/"+service, bearer(t, time.Minute), body))
	}
	assert.Equal(t, http.StatusNotFound, call("alipay.trade.query", `{"out_trade_no":"L1"}`).Code, "no OpenAPI method")

	mapi.set(`<?xml version="1.0" encoding="utf-8"?><alipay><is_success>T</is_success>` +
		`<request><param name="out_trade_no">L1</param><param name="service">single_trade_query</param></request>` +
		`<response><trade><out_trade_no>L1</out_trade_no><trade_status>TRADE_FINISHED</trade_status><total_fee>9.90</total_fee></trade></response>` +
		`<sign>x</sign><sign_type>MD5</sign_type></alipay>`)
	w := call("SINGLE_TRADE_QUERY", `{"out_trade_no":"L1"}`)
	require.Equal(t, 200, w.Code, w.Body.String())
	var answer map[string]any
	require.NoError(t, json.Unmarshal(w.Body.Bytes(), &answer))
	assert.Equal(t, "T", answer["is_success"])
	assert.Equal(t, "TRADE_FINISHED", pick(answer["response"].(map[string]any)["trade"].(map[string]any), "trade_status")["trade_status"])
	assert.Equal(t, map[string]any{"out_trade_no": "L1", "service": "single_trade_query"}, answer["request"])
	asked := mapi.questions()
	require.Len(t, asked, 1)
	sent := map[string]string{}
	for k := range asked[0] {
		sent[k] = asked[0].Get(k)
	}
	assert.Equal(t, "single_trade_query", sent["service"])
	assert.Equal(t, v.Partner, sent["partner"])
	key, err := protocol.NewMD5Key(v.MD5Key)
	require.NoError(t, err)
	assert.NoError(t, key.Verify(protocol.LegacyContent(sent), sent["sign"]), "signed with md5_key")

	mapi.set(`<alipay><is_success>F</is_success><error>TRADE_NOT_EXIST</error></alipay>`)
	w = call("single_trade_query", `{"trade_no":"2024"}`)
	assert.Equal(t, 200, w.Code)
	assert.JSONEq(t, `{"is_success":"F","error":"TRADE_NOT_EXIST"}`, w.Body.String())

	mapi.set("<html>a proxy's page</html>")
	assert.Equal(t, http.StatusBadGateway, call("close_trade", `{"out_order_no":"L1"}`).Code, "not Alipay's XML")
	mapi.set("hang")
	assert.Equal(t, http.StatusGatewayTimeout, call("close_trade", `{"out_order_no":"L1"}`).Code)

	mapi.set(`<alipay><is_success>T</is_success></alipay>`)
	w = call("close_trade", `{"out_trade_no":"L1"}`)
	assert.Equal(t, http.StatusBadRequest, w.Code)
	assert.Contains(t, w.Body.String(), "out_order_no", "Alipay's name for it")

	// A refund batch: the sidecar joins the items and names the site's
	// notify URL.
	mapi.set(`<alipay><is_success>T</is_success></alipay>`)
	batch := time.Now().In(protocol.Beijing).Format("20060102") + "R001"
	w = call("refund_fastpay_by_platform_nopwd", `{"batch_no":"`+batch+`","refunds":[{"trade_no":"2024052022001400001","amount":"9.9","reason":"退货"}]}`)
	require.Equal(t, 200, w.Code, w.Body.String())
	asked = mapi.questions()
	require.Len(t, asked, 1)
	assert.Equal(t, "2024052022001400001^9.90^退货", asked[0].Get("detail_data"))
	assert.Equal(t, "1", asked[0].Get("batch_num"))
	assert.Equal(t, "http://shop.example.com/alipay/notify", asked[0].Get("notify_url"))
	for body, field := range map[string]string{
		`{"batch_no":"19990101R001","refunds":[{"trade_no":"1","amount":"1","reason":""}]}`:  "batch_no",
		`{"batch_no":"` + batch + `","refunds":[{"trade_no":"1","amount":"0","reason":""}]}`: "amount",
		`{"batch_no":"` + batch + `"}`: "refunds",
	} {
		w = call("refund_fastpay_by_platform_nopwd", body)
		assert.Equal(t, http.StatusBadRequest, w.Code, body)
		assert.Contains(t, w.Body.String(), field, body)
	}
}

// The refund link: a refund token, and only one, opens the seller's
// refund page at Alipay; it opens nothing else.
func TestRefundLink(t *testing.T) {
	gw := httptest.NewServer(&fakeMapi{})
	defer gw.Close()
	v := testvec.LoadLegacy(t)
	h := newLegacyHandler(t, "gbk", gw, nil)
	batch := time.Now().In(protocol.Beijing).Format("20060102") + "R002"
	refundToken := func(exp time.Duration) string {
		return payToken(t, map[string]any{"scope": protocol.RefundScope, "exp": time.Now().Add(exp).Unix(), "batch_no": batch,
			"refunds": []map[string]string{{"trade_no": "2024052022001400001", "amount": "9.90", "reason": "退货"}}})
	}
	w := serve(t, h, &upstream{}, requestTo("GET", "/alipay/refund", "token="+refundToken(5*time.Minute), ""))
	require.Equal(t, http.StatusFound, w.Code, w.Body.String())
	loc := must(url.Parse(w.Header().Get("Location")))
	assert.Equal(t, gw.URL+"/gateway.do", loc.Scheme+"://"+loc.Host+loc.Path)
	assert.Equal(t, "refund_fastpay_by_platform_pwd", loc.Query().Get("service"))
	assert.Equal(t, v.Partner, loc.Query().Get("partner"))
	assert.Equal(t, batch, loc.Query().Get("batch_no"))
	assert.Equal(t, "http://shop.example.com/alipay/notify", loc.Query().Get("notify_url"))
	assert.Equal(t, "no-store", w.Header().Get("Cache-Control"))

	r := requestTo("GET", "/ALIPAY/Refund/", "token="+refundToken(5*time.Minute), "")
	r.Header.Set("Accept", "application/json")
	w = serve(t, h, &upstream{}, r)
	require.Equal(t, 200, w.Code)
	assert.Contains(t, w.Body.String(), `"url":"`+gw.URL)

	for name, tok := range map[string]string{
		"a pay token":      payToken(t, map[string]any{"out_trade_no": "L1", "total_amount": "1", "subject": "s"}),
		"an API bearer":    bearer(t, time.Minute),
		"expired":          refundToken(-time.Minute),
		"exp too far":      refundToken(time.Hour),
		"none":             "",
		"another secret's": protocoltest.RawToken(strings.Repeat("x", 32), `{"alg":"HS256"}`, `{"scope":"refund","exp":9999999999}`),
	} {
		next := &upstream{}
		w := serve(t, h, next, requestTo("GET", "/alipay/refund", "token="+tok, ""))
		assert.Equal(t, http.StatusForbidden, w.Code, name)
		assert.Zero(t, next.calls, name)
	}
	assert.Contains(t, serve(t, h, &upstream{}, requestTo("GET", "/alipay/refund", "token="+refundToken(-time.Minute), "")).Body.String(), "expired")

	// A refund token opens nothing else.
	w = serve(t, h, &upstream{}, requestTo("GET", "/alipay/pay", "token="+refundToken(5*time.Minute), ""))
	assert.Equal(t, http.StatusBadRequest, w.Code)
	assert.Contains(t, w.Body.String(), "scope")
	w = serve(t, h, &upstream{}, apiRequest("POST", "/alipay/api/single_trade_query", refundToken(5*time.Minute), `{"out_trade_no":"L1"}`))
	assert.Equal(t, http.StatusUnauthorized, w.Code)

	// OpenAPI has no refund link: the path is refused, never passed on.
	next := &upstream{}
	w = serve(t, newTestHandler(t, nil), next, requestTo("GET", "/alipay/refund", "token="+refundToken(5*time.Minute), ""))
	assert.Equal(t, http.StatusNotFound, w.Code)
	assert.Zero(t, next.calls)
}

// The legacy protocol through a real Caddy: a GBK and a UTF-8 partner, the
// pay redirect, notifications with each answer of notify_verify (and a
// gateway that never answers), and a return.
func TestCaddyLegacy(t *testing.T) {
	mapi := &fakeMapi{answer: "true"}
	gw := httptest.NewServer(mapi)
	defer gw.Close()
	silent, err := net.Listen("tcp", "127.0.0.1:0") // accepts, never answers
	require.NoError(t, err)
	defer silent.Close()
	v := testvec.LoadLegacy(t)
	t.Setenv("TEST_MD5_KEY", v.MD5Key)
	legacySite := func(charset, gateway, upstream string) string {
		return `
	` + caddyURL + ` {
		alipay {
			partner ` + v.Partner + `
			md5_key {env.TEST_MD5_KEY}
			input_charset ` + charset + `
			secret {env.TEST_ALIPAY_SECRET}
			gateway ` + gateway + `
			forward_notify /shop/notify
		}
		` + upstream + `
	}`
	}
	for _, c := range []struct{ charset, notify, ret string }{
		{"gbk", "md5_notify_gbk_trade_finished", "md5_return_gbk"},
		{"utf-8", "md5_notify_utf8_trade_success", "md5_return_utf8"},
	} {
		t.Run(c.charset, func(t *testing.T) {
			s, upstream := startShop(t)
			s.aud = v.Partner
			tester := loadCaddyfile(t, "", legacySite(c.charset, gw.URL+"/gateway.do", upstream))

			tok := payToken(t, map[string]any{"out_trade_no": "LC1", "total_amount": "9.9", "subject": "西湖龙井"})
			resp, _ := getStatus(t, tester, caddyURL+"/alipay/pay?token="+tok, 302)
			loc := must(url.Parse(resp.Header.Get("Location")))
			assert.Equal(t, "create_direct_pay_by_user", loc.Query().Get("service"))
			assert.Equal(t, c.charset, loc.Query().Get("_input_charset"))
			assert.Equal(t, "9.90", loc.Query().Get("total_fee"))
			assert.Equal(t, caddyURL+"/alipay/notify", loc.Query().Get("notify_url"))

			_, nc := legacyCase(t, c.notify)
			for _, a := range []struct {
				answer, body string
				status       int
				reached      bool
			}{{"true", "success", 200, true}, {"false", "fail", 400, false}, {"invalid", "fail", 400, false}} {
				mapi.set(a.answer)
				req, _ := http.NewRequest("POST", caddyURL+"/alipay/notify", strings.NewReader(nc.PostBody))
				req.Header.Set("Content-Type", nc.ContentType)
				tester.AssertResponse(req, a.status, a.body)
				got := s.take()
				if !a.reached {
					assert.Empty(t, got, a.answer)
					continue
				}
				require.Len(t, got, 1)
				assert.Equal(t, "/shop/notify", got[0].path)
				assert.Equal(t, nc.PostBody, got[0].body)
				assert.Equal(t, "legacy", got[0].claims["protocol"])
				assert.Equal(t, v.Partner, got[0].claims["aud"])
				assert.Equal(t, nc.Params["subject"], got[0].claims["params"].(map[string]any)["subject"], "UTF-8 in the token")
				assert.Equal(t, nc.Params["total_fee"], got[0].claims["params"].(map[string]any)["total_fee"])
			}

			_, rc := legacyCase(t, c.ret)
			mapi.set("true")
			tester.AssertGetResponse(caddyURL+"/alipay/return?"+rc.Query, 200, "shop saw /alipay/return")
			got := s.take()
			require.Len(t, got, 1)
			assert.Equal(t, "return", got[0].claims["event"])
		})
	}

	t.Run("notify_verify never answers", func(t *testing.T) {
		s, upstream := startShop(t)
		tester := loadCaddyfile(t, "", legacySite("utf-8", "http://"+silent.Addr().String()+"/gateway.do", upstream))
		tester.Client.Timeout = 3 * protocol.NotifyVerifyTimeout
		_, nc := legacyCase(t, "md5_notify_utf8_trade_success")
		before := eventCount(eventNotify, outcomeUnconfirmed)
		start := time.Now()
		req, _ := http.NewRequest("POST", caddyURL+"/alipay/notify", strings.NewReader(nc.PostBody))
		tester.AssertResponse(req, 502, "fail")
		assert.InDelta(t, protocol.NotifyVerifyTimeout.Seconds(), time.Since(start).Seconds(), 2)
		assert.Equal(t, before+1, eventCount(eventNotify, outcomeUnconfirmed))
		assert.Empty(t, s.take())
	})
}
