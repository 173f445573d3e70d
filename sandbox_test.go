package alipay

// The sidecar and alipay_sandbox in one Caddy, as in the demo. Every test
// here waits, as it ends, until the sandbox has nothing left to send (see
// sandboxSite), so that no notification of its trades reaches another
// test.

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/caddy-alipay/caddy-alipay/internal/protocol"
	"github.com/caddy-alipay/caddy-alipay/internal/testvec"
	"github.com/caddy-alipay/caddy-alipay/sandbox"
	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddytest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The sidecar and the sandbox in one Caddy, as in the demo: a buyer's
// whole payment, and the notification reaching the shop through the
// sidecar, over real HTTP.
func TestCaddySandbox(t *testing.T) {
	s, upstream := startShop(t)
	tester := loadSidecar(t, `
		app_private_key `+testvec.Key("app_private_key_pkcs1.pem")+`
		alipay_public_key `+testvec.Key("alipay_public_key.pem")+`
		gateway `+sandboxURL+`/gateway.do
		query_on_return on`, upstream, sandboxSite(t, ""))

	sbx1, sbx2 := orderNo("SBX1"), orderNo("SBX2")
	tok := payToken(t, map[string]any{"out_trade_no": sbx1, "total_amount": "66.60", "subject": "沙箱商品"})
	resp, _ := getStatus(t, tester, caddyURL+"/alipay/pay?token="+tok, 302)
	resp, _ = getStatus(t, tester, resp.Header.Get("Location"), 302)
	cashier := sandboxURL + resp.Header.Get("Location")
	_, page := getStatus(t, tester, cashier, 200)
	assert.Contains(t, page, `<span id="amount">66.60</span>`)
	m := cashierFormRE.FindStringSubmatch(page)
	require.NotNil(t, m)
	req, _ := http.NewRequest("POST", sandboxURL+m[1], nil)
	resp = tester.AssertResponseCode(req, 302)
	back := resp.Header.Get("Location")
	require.True(t, strings.HasPrefix(back, caddyURL+"/alipay/return?"), back)
	tester.AssertGetResponse(back, 200, "shop saw /alipay/return")
	s.mu.Lock()
	returns := 0
	for _, r := range s.requests {
		if r.path == "/alipay/return" {
			returns++
			assert.Equal(t, "TRADE_SUCCESS", r.claims["trade_status"], "query_on_return asked the sandbox")
		}
	}
	s.mu.Unlock()
	assert.Equal(t, 1, returns)

	require.Eventually(t, func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		for _, r := range s.requests {
			if r.path == "/alipay/notify" && r.tokenErr == "" && r.claims["params"].(map[string]any)["trade_status"] == "TRADE_SUCCESS" {
				return true
			}
		}
		return false
	}, 10*time.Second, 20*time.Millisecond, "the verified notification reaches the shop")
	got := s.take()
	var notifies int
	for _, r := range got {
		if r.path == "/alipay/notify" {
			notifies++
			assert.Equal(t, "66.60", r.claims["params"].(map[string]any)["total_amount"])
		}
	}
	assert.Equal(t, 1, notifies, "answered success at once: no retry")

	// The shop's API, through the sidecar, against the sandbox's state.
	api := func(method, body string) (int, map[string]any) { t.Helper(); return callAPI(t, tester, method, body) }
	code, v := api("alipay.trade.query", `{"out_trade_no":"`+sbx1+`"}`)
	require.Equal(t, 200, code, v)
	assert.Equal(t, "TRADE_SUCCESS", v["trade_status"])
	assert.Equal(t, "66.60", v["total_amount"])

	_, v = api("alipay.trade.refund", `{"out_trade_no":"`+sbx1+`","refund_amount":"10.00","out_request_no":"R1"}`)
	assert.Equal(t, map[string]any{"code": "10000", "fund_change": "Y", "refund_fee": "10.00"}, pick(v, "code", "fund_change", "refund_fee"))
	_, v = api("alipay.trade.refund", `{"out_trade_no":"`+sbx1+`","refund_amount":"10.00","out_request_no":"R1"}`)
	assert.Equal(t, map[string]any{"code": "10000", "fund_change": "N", "refund_fee": "10.00"}, pick(v, "code", "fund_change", "refund_fee"), "a retry refunds once")
	_, v = api("alipay.trade.refund", `{"out_trade_no":"`+sbx1+`","refund_amount":"56.61","out_request_no":"R2"}`)
	assert.Equal(t, "40004", v["code"], "more than is left")
	_, v = api("alipay.trade.refund", `{"out_trade_no":"`+sbx1+`","refund_amount":"56.60","out_request_no":"R2"}`)
	assert.Equal(t, map[string]any{"code": "10000", "fund_change": "Y", "refund_fee": "66.60"}, pick(v, "code", "fund_change", "refund_fee"))
	_, v = api("alipay.trade.fastpay.refund.query", `{"out_trade_no":"`+sbx1+`","out_request_no":"R1"}`)
	assert.Equal(t, "10.00", v["refund_amount"])
	_, v = api("alipay.trade.query", `{"out_trade_no":"`+sbx1+`"}`)
	assert.Equal(t, "TRADE_CLOSED", v["trade_status"], "refunded in full")

	// Close a trade that was opened but never paid.
	tok = payToken(t, map[string]any{"out_trade_no": sbx2, "total_amount": "1.00", "subject": "unpaid"})
	resp, _ = getStatus(t, tester, caddyURL+"/alipay/pay?token="+tok, 302)
	getStatus(t, tester, resp.Header.Get("Location"), 302)
	_, v = api("alipay.trade.close", `{"out_trade_no":"`+sbx2+`"}`)
	assert.Equal(t, "10000", v["code"])
	_, v = api("alipay.trade.query", `{"out_trade_no":"`+sbx2+`"}`)
	assert.Equal(t, "TRADE_CLOSED", v["trade_status"])

	code, v = api("alipay.trade.refund", `{"out_trade_no":"`+sbx1+`","refund_amount":"1.00"}`)
	assert.Equal(t, 400, code, "a refund without out_request_no never leaves Caddy")
	assert.Contains(t, v["error"], "out_request_no")

	// Each refund's notification reaches the shop, verified: the total
	// refunded so far, partial then full.
	refunds := awaitNotifications(t, s, 2, func(p map[string]any) bool { return p["out_trade_no"] == sbx1 && p["refund_fee"] != nil })
	assert.Equal(t, []map[string]any{
		{"refund_fee": "10.00", "out_biz_no": "R1", "trade_status": "TRADE_SUCCESS"},
		{"refund_fee": "66.60", "out_biz_no": "R2", "trade_status": "TRADE_CLOSED"},
	}, []map[string]any{pick(refunds[0], "refund_fee", "out_biz_no", "trade_status"), pick(refunds[1], "refund_fee", "out_biz_no", "trade_status")})

	// alipay.trade.cancel is served by default: an unpaid trade is closed.
	sbx3 := orderNo("SBX3")
	tok = payToken(t, map[string]any{"out_trade_no": sbx3, "total_amount": "2.00", "subject": "cancelled"})
	resp, _ = getStatus(t, tester, caddyURL+"/alipay/pay?token="+tok, 302)
	getStatus(t, tester, resp.Header.Get("Location"), 302)
	_, v = api("alipay.trade.cancel", `{"out_trade_no":"`+sbx3+`"}`)
	assert.Equal(t, map[string]any{"code": "10000", "action": "close", "retry_flag": "N"}, pick(v, "code", "action", "retry_flag"))
}

// callAPI calls the sidecar's {prefix}/api/<method> as the shop does,
// with a fresh bearer token, and returns the status and the JSON answer.
func callAPI(t *testing.T, tester *caddytest.Tester, method, body string) (int, map[string]any) {
	t.Helper()
	req, err := http.NewRequest("POST", caddyURL+"/alipay/api/"+method, strings.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+bearer(t, 5*time.Minute))
	resp, err := tester.Client.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	var v map[string]any
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&v))
	return resp.StatusCode, v
}

// callAPIOK is callAPI for a call that must answer 200.
func callAPIOK(t *testing.T, tester *caddytest.Tester, method, body string) map[string]any {
	t.Helper()
	code, v := callAPI(t, tester, method, body)
	require.Equal(t, http.StatusOK, code, v)
	return v
}

// awaitNotifications waits until the shop has had n verified
// notifications whose params match, and returns their params in the
// order they came.
func awaitNotifications(t *testing.T, s *shop, n int, match func(params map[string]any) bool) []map[string]any {
	t.Helper()
	var got []map[string]any
	require.Eventually(t, func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		got = nil
		for _, r := range s.requests {
			if p, ok := r.claims["params"].(map[string]any); ok && r.tokenErr == "" && r.claims["event"] == "notify" && match(p) {
				got = append(got, p)
			}
		}
		return len(got) >= n
	}, 10*time.Second, 20*time.Millisecond, "%d notifications reach the shop", n)
	return got
}

// The legacy protocol's API and refunds through a real Caddy against the
// sandbox's legacy gateway, for a GBK and a UTF-8 partner: the query,
// close_trade, a batch refund and its batch_refund_notify, a repeated and
// a refused batch, the seller's refund link and password page, and a
// batch_refund_notify that notify_verify denies.
func TestCaddyLegacySandbox(t *testing.T) {
	v := testvec.LoadLegacy(t)
	t.Setenv("TEST_MD5_KEY", v.MD5Key)
	for _, charset := range []string{"gbk", "utf-8"} {
		t.Run(charset, func(t *testing.T) {
			s, upstream := startShop(t)
			s.aud = v.Partner
			tester := loadCaddyfile(t, "", caddyURL+` {
		alipay {
			partner `+v.Partner+`
			md5_key {env.TEST_MD5_KEY}
			input_charset `+charset+`
			secret {env.TEST_ALIPAY_SECRET}
			gateway `+sandboxURL+`/gateway.do
		}
		`+upstream+`
	}
	`+sandboxSite(t, "partner "+v.Partner+"\n\t\t\tmd5_key {env.TEST_MD5_KEY}"))
			api := func(service, body string) map[string]any { t.Helper(); return callAPIOK(t, tester, service, body) }
			open := func(no string) string { // the cashier's page
				tok := payToken(t, map[string]any{"out_trade_no": no, "total_amount": "9.90", "subject": "西湖龙井"})
				resp, _ := getStatus(t, tester, caddyURL+"/alipay/pay?token="+tok, 302)
				resp, _ = getStatus(t, tester, resp.Header.Get("Location"), 302)
				_, page := getStatus(t, tester, sandboxURL+resp.Header.Get("Location"), 200)
				return page
			}

			// Paid, then queried.
			paid := orderNo("LSB")
			m := cashierFormRE.FindStringSubmatch(open(paid))
			require.NotNil(t, m)
			req, _ := http.NewRequest("POST", sandboxURL+m[1], nil)
			tester.AssertResponseCode(req, 302)
			payment := awaitNotifications(t, s, 1, func(p map[string]any) bool { return p["out_trade_no"] == paid })[0]
			tradeNo := payment["trade_no"].(string)
			answer := api("single_trade_query", `{"out_trade_no":"`+paid+`"}`)
			assert.Equal(t, "T", answer["is_success"])
			trade := answer["response"].(map[string]any)["trade"].(map[string]any)
			assert.Equal(t, map[string]any{"trade_no": tradeNo, "trade_status": "TRADE_FINISHED", "total_fee": "9.90"}, pick(trade, "trade_no", "trade_status", "total_fee"))

			// A batch refund: accepted, then its result as a notification.
			today := time.Now().In(protocol.Beijing).Format("20060102")
			batch := fmt.Sprintf("%sR%05d", today, orderSeq.Add(1))
			refund := `{"batch_no":"` + batch + `","refunds":[{"trade_no":"` + tradeNo + `","amount":"1.50","reason":"退货 少了一盒"}]}`
			assert.Equal(t, map[string]any{"is_success": "T"}, api("refund_fastpay_by_platform_nopwd", refund))
			result := awaitNotifications(t, s, 1, func(p map[string]any) bool { return p["batch_no"] == batch })[0]
			assert.Equal(t, map[string]any{"notify_type": "batch_refund_notify", "success_num": "1", "result_details": tradeNo + "^1.50^SUCCESS"},
				pick(result, "notify_type", "success_num", "result_details"))
			assert.Equal(t, "T", api("refund_fastpay_by_platform_nopwd", refund)["is_success"], "the same batch again is answered as before")
			over := `{"batch_no":"` + batch + `X","refunds":[{"trade_no":"` + tradeNo + `","amount":"8.50","reason":"r"}]}`
			assert.Equal(t, map[string]any{"is_success": "F", "error": "REFUND_AMOUNT_NOT_VALID"}, api("refund_fastpay_by_platform_nopwd", over), "more than is left")

			// close_trade: an unpaid trade is closed; a paid one is not.
			unpaid := orderNo("LSB")
			open(unpaid)
			assert.Equal(t, "T", api("close_trade", `{"out_order_no":"`+unpaid+`"}`)["is_success"])
			trade = api("single_trade_query", `{"out_trade_no":"`+unpaid+`"}`)["response"].(map[string]any)["trade"].(map[string]any)
			assert.Equal(t, "TRADE_CLOSED", trade["trade_status"])
			assert.Equal(t, map[string]any{"is_success": "F", "error": "TRADE_STATUS_NOT_AVAILD"}, api("close_trade", `{"trade_no":"`+tradeNo+`"}`))

			// The seller's refund link: the sidecar signs it, the sandbox's
			// password page takes the seller's Confirm.
			batch2 := batch + "P"
			link := payToken(t, map[string]any{"scope": "refund", "exp": time.Now().Add(5 * time.Minute).Unix(), "batch_no": batch2,
				"refunds": []map[string]string{{"trade_no": tradeNo, "amount": "2.00", "reason": "破损"}}})
			resp, _ := getStatus(t, tester, caddyURL+"/alipay/refund?token="+link, 302)
			_, page := getStatus(t, tester, resp.Header.Get("Location"), 200)
			assert.Contains(t, page, `<code id="batch-no">`+batch2+`</code>`)
			confirm := regexp.MustCompile(`action="(/sandbox/refund/[0-9a-f]+/confirm)"`).FindStringSubmatch(page)
			require.NotNil(t, confirm, page)
			req, _ = http.NewRequest("POST", sandboxURL+confirm[1], strings.NewReader("password=123456"))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			tester.AssertResponseCode(req, 200)
			result = awaitNotifications(t, s, 1, func(p map[string]any) bool { return p["batch_no"] == batch2 })[0]
			assert.Equal(t, tradeNo+"^2.00^SUCCESS", result["result_details"])

			// A batch_refund_notify signed with the partner's key, but not
			// one the sandbox sent: notify_verify says false, and the shop
			// never sees it.
			forged := map[string]string{"notify_time": protocol.Timestamp(time.Now()), "notify_type": "batch_refund_notify",
				"notify_id": "forged0123456789", "batch_no": batch + "F", "success_num": "1", "result_details": tradeNo + "^9.90^SUCCESS"}
			form, err := protocol.EncodeLegacy(forged, charset, must(protocol.NewMD5Key(v.MD5Key)))
			require.NoError(t, err)
			req, _ = http.NewRequest("POST", caddyURL+"/alipay/notify", strings.NewReader(form))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			tester.AssertResponse(req, 400, "fail")
			for _, r := range s.take() {
				assert.NotEqual(t, batch+"F", r.claims["params"].(map[string]any)["batch_no"], "the forged result reached the shop")
			}
		})
	}
}

// The legacy API through a real Caddy when the gateway fails: an answer
// that is not Alipay's XML is a 502, none at all a 504.
func TestCaddyLegacyAPIFailures(t *testing.T) {
	v := testvec.LoadLegacy(t)
	t.Setenv("TEST_MD5_KEY", v.MD5Key)
	garbage := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, "<html><body>502 Bad Gateway</body></html>")
	}))
	defer garbage.Close()
	silent, err := net.Listen("tcp", "127.0.0.1:0") // accepts, never answers
	require.NoError(t, err)
	defer silent.Close()
	for _, c := range []struct {
		gateway string
		status  int
	}{{garbage.URL + "/gateway.do", http.StatusBadGateway}, {"http://" + silent.Addr().String() + "/gateway.do", http.StatusGatewayTimeout}} {
		tester := loadCaddyfile(t, "", caddyURL+` {
		alipay {
			partner `+v.Partner+`
			md5_key {env.TEST_MD5_KEY}
			secret {env.TEST_ALIPAY_SECRET}
			gateway `+c.gateway+`
		}
	}`)
		tester.Client.Timeout = 3 * protocol.LegacyAPITimeout
		req, _ := http.NewRequest("POST", caddyURL+"/alipay/api/single_trade_query", strings.NewReader(`{"out_trade_no":"L1"}`))
		req.Header.Set("Authorization", "Bearer "+bearer(t, time.Minute))
		resp := tester.AssertResponseCode(req, c.status)
		resp.Body.Close()
	}
}

// Certificate mode through a real Caddy: the sidecar uses the
// certificates that the sandbox issued (here issued first, since Caddy
// provisions its servers in no fixed order).
func TestCaddyCertificateMode(t *testing.T) {
	dir := sandboxCertificates(t)
	_, upstream := startShop(t)
	tester := loadSidecar(t, `
		app_private_key `+testvec.Key("app_private_key_pkcs1.pem")+`
		app_cert {env.TEST_APP_CERT}
		alipay_cert {env.TEST_ALIPAY_CERT}
		alipay_root_cert {env.TEST_ALIPAY_ROOT_CERT}
		gateway `+sandboxURL+`/gateway.do`, upstream, sandboxSite(t, "certificates "+dir))

	cert1 := orderNo("CERT1")
	tok := payToken(t, map[string]any{"out_trade_no": cert1, "total_amount": "3.00", "subject": "证书模式"})
	resp, _ := getStatus(t, tester, caddyURL+"/alipay/pay?token="+tok, 302)
	assert.NotEmpty(t, must(url.Parse(resp.Header.Get("Location"))).Query().Get("app_cert_sn"))
	resp, _ = getStatus(t, tester, resp.Header.Get("Location"), 302)
	back := payAtCashier(t, tester, resp.Header.Get("Location"), 302).Header.Get("Location")
	tester.AssertGetResponse(back, 200, "shop saw /alipay/return")

	req, _ := http.NewRequest("POST", caddyURL+"/alipay/api/alipay.trade.query", strings.NewReader(`{"out_trade_no":"`+cert1+`"}`))
	req.Header.Set("Authorization", "Bearer "+bearer(t, time.Minute))
	resp = tester.AssertResponseCode(req, 200)
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	resp.Body.Close()
	assert.Contains(t, string(body), `"trade_status":"TRADE_SUCCESS"`)
}

// App, QR-code and barcode payments through a real Caddy against the
// sandbox, in OpenAPI v2 and v3: the app's order string accepted by the
// sandbox's app page, a precreated QR code scanned and paid, and each
// barcode outcome that the sandbox's test payment codes choose; every
// payment's notification reaches the shop through the sidecar.
func TestCaddyFaceToFace(t *testing.T) {
	// In both versions of the OpenAPI: precreate and the barcode flow's
	// calls go as v3 REST calls with api_version v3.
	for _, version := range []string{"v2", "v3"} {
		t.Run(version, func(t *testing.T) {
			s, upstream := startShop(t)
			tester := loadSidecar(t, `
				app_private_key `+testvec.Key("app_private_key_pkcs1.pem")+`
				alipay_public_key `+testvec.Key("alipay_public_key.pem")+`
				gateway `+sandboxURL+`/gateway.do
				barcode_poll 300ms
				barcode_wait 3s
				api_version `+version, upstream, sandboxSite(t, ""))
			paidNotice := func(no string) func(map[string]any) bool {
				return func(p map[string]any) bool { return p["out_trade_no"] == no && p["trade_status"] == "TRADE_SUCCESS" }
			}
			api := func(method, body string) map[string]any { t.Helper(); return callAPIOK(t, tester, method, body) }
			// payOnCashier follows target to the sandbox's cashier and pays there;
			// with no return_url the cashier itself says it is paid.
			payOnCashier := func(target string) {
				t.Helper()
				resp, _ := getStatus(t, tester, target, 302)
				resp = payAtCashier(t, tester, resp.Header.Get("Location"), 200)
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				assert.Contains(t, string(body), `id="paid"`)
			}

			t.Run("app", func(t *testing.T) {
				no := orderNo("APP")
				tok := payToken(t, map[string]any{"out_trade_no": no, "total_amount": "6.00", "subject": "会员 月卡", "product": "app"})
				_, body := getStatus(t, tester, caddyURL+"/alipay/pay?token="+tok, 200)
				var answer struct {
					OrderString string `json:"order_string"`
				}
				require.NoError(t, json.Unmarshal([]byte(body), &answer))
				payOnCashier(sandboxURL + "/sandbox/app?order_string=" + url.QueryEscape(answer.OrderString))
				awaitNotifications(t, s, 1, paidNotice(no))

				// What Alipay's app SDK refuses, the sandbox's page refuses.
				_, page := getStatus(t, tester, sandboxURL+"/sandbox/app?order_string="+url.QueryEscape(answer.OrderString+"&extra=1"), 400)
				assert.Contains(t, page, `id="error-code"`)
			})

			// qrCode is the sidecar's JSON answer to a QR-code pay token.
			qrCode := func(tok string) (answer struct {
				QRCode     string `json:"qr_code"`
				OutTradeNo string `json:"out_trade_no"`
			}) {
				t.Helper()
				req, _ := http.NewRequest("GET", caddyURL+"/alipay/pay?token="+tok, nil)
				req.Header.Set("Accept", "application/json")
				resp := tester.AssertResponseCode(req, 200)
				defer resp.Body.Close()
				require.NoError(t, json.NewDecoder(resp.Body).Decode(&answer))
				return answer
			}

			t.Run("qr", func(t *testing.T) {
				no := orderNo("QR")
				tok := payToken(t, map[string]any{"out_trade_no": no, "total_amount": "12.50", "subject": "Latte", "product": "qr"})
				answer := qrCode(tok)
				assert.Equal(t, no, answer.OutTradeNo)
				require.True(t, strings.HasPrefix(answer.QRCode, sandboxURL+"/sandbox/qr/"), answer.QRCode)

				// The page shows the same code: precreate again answers it.
				_, page := getStatus(t, tester, caddyURL+"/alipay/pay?token="+tok, 200)
				assert.Contains(t, page, `<code id="qr-code">`+answer.QRCode+`</code>`)
				assert.Contains(t, page, `<span id="amount">12.50</span>`)

				v := api("alipay.trade.query", `{"out_trade_no":"`+no+`"}`)
				assert.Equal(t, map[string]any{"code": "40004", "sub_code": "ACQ.TRADE_NOT_EXIST"}, pick(v, "code", "sub_code"), "before the scan")
				payOnCashier(answer.QRCode)
				awaitNotifications(t, s, 1, paidNotice(no))
				v = api("alipay.trade.query", `{"out_trade_no":"`+no+`"}`)
				assert.Equal(t, "TRADE_SUCCESS", v["trade_status"])
			})

			t.Run("qr scanned, not paid", func(t *testing.T) {
				no := orderNo("QRW")
				tok := payToken(t, map[string]any{"out_trade_no": no, "total_amount": "1.00", "subject": "Tea", "product": "qr"})
				getStatus(t, tester, qrCode(tok).QRCode, 302)
				v := api("alipay.trade.query", `{"out_trade_no":"`+no+`"}`)
				assert.Equal(t, "WAIT_BUYER_PAY", v["trade_status"], "after the scan")
			})

			t.Run("barcode", func(t *testing.T) {
				for _, c := range []struct {
					authCode, result string
					methods          []string // the steps' methods, in order; nil: not checked
					paid             bool
				}{
					{"280000000000000000", "paid", []string{"alipay.trade.pay"}, true},
					{"280000000000001111", "paid", nil, true},
					{"280000000000002222", "cancelled", nil, false},
					{"280000000000003333", "failed", []string{"alipay.trade.pay"}, false},
					{"280000000000004444", "paid", []string{"alipay.trade.pay", "alipay.trade.query"}, true},
				} {
					no := orderNo("BAR" + c.authCode[14:])
					v := api("alipay.trade.pay", `{"out_trade_no":"`+no+`","total_amount":"3.50","subject":"Latte","auth_code":"`+c.authCode+`"}`)
					assert.Equal(t, c.result, v["result"], c.authCode)
					var methods []string
					for _, step := range v["steps"].([]any) {
						methods = append(methods, step.(map[string]any)["method"].(string))
					}
					if c.methods != nil {
						assert.Equal(t, c.methods, methods, c.authCode)
					}
					switch c.authCode[14:] {
					case "1111":
						assert.Contains(t, methods, "alipay.trade.query", "paid while polling")
					case "2222":
						assert.Equal(t, "alipay.trade.cancel", methods[len(methods)-1])
						q := api("alipay.trade.query", `{"out_trade_no":"`+no+`"}`)
						assert.Equal(t, "TRADE_CLOSED", q["trade_status"], "cancelled: closed")
					}
					if c.paid {
						awaitNotifications(t, s, 1, paidNotice(no))
					}
				}
			})
		})
	}
}

// The API in OpenAPI v3, in v2 with content encryption (AES) and in v3
// with it, through a real Caddy against the sandbox: query, refund, refund
// query and close answer the shop exactly as in plain v2, a business
// failure (v3: a signed 4xx) as v2's 40004; and an answer that the
// sidecar cannot trust, or Alipay's plaintext refusal of an encrypted call
// made with the wrong key or none, reaches the shop as a 502.
func TestCaddyAPIVersions(t *testing.T) {
	const key, wrongKey = "aYA0GP8JEW+D7/UFaskCWA==", "AAAAAAAAAAAAAAAAAAAAAA=="
	_, otherAlipayKey := testvec.NewKeyFiles(t, 2048)
	for _, mode := range []struct{ name, version, key string }{{"v3", "v3", ""}, {"v2+AES", "v2", key}, {"v3+AES", "v3", key}} {
		t.Run(mode.name, func(t *testing.T) {
			s, upstream := startShop(t)
			sandboxSettings := ""
			if mode.key != "" {
				sandboxSettings = "encrypt_key " + mode.key
			}
			sandbox := sandboxSite(t, sandboxSettings)
			load := func(alipayKey, encryptKey string) *caddytest.Tester {
				settings := "api_version " + mode.version
				if encryptKey != "" {
					settings += "\n\t\tencrypt_key " + encryptKey
				}
				return loadSidecar(t, `
		app_private_key `+testvec.Key("app_private_key_pkcs1.pem")+`
		alipay_public_key `+alipayKey+`
		gateway `+sandboxURL+`/gateway.do
		`+settings, upstream, sandbox)
			}
			tester := load(testvec.Key("alipay_public_key.pem"), mode.key)
			api := func(method, body string) map[string]any { t.Helper(); return callAPIOK(t, tester, method, body) }

			paid, unpaid := orderNo("API1"), orderNo("API2")
			for _, no := range []string{paid, unpaid} {
				tok := payToken(t, map[string]any{"out_trade_no": no, "total_amount": "8.00", "subject": "加密 订单"})
				resp, _ := getStatus(t, tester, caddyURL+"/alipay/pay?token="+tok, 302)
				resp, _ = getStatus(t, tester, resp.Header.Get("Location"), 302)
				if no == unpaid {
					continue
				}
				payAtCashier(t, tester, resp.Header.Get("Location"), 302)
			}
			awaitNotifications(t, s, 1, func(p map[string]any) bool { return p["out_trade_no"] == paid })

			v := api("alipay.trade.query", `{"out_trade_no":"`+paid+`"}`)
			assert.Equal(t, map[string]any{"code": "10000", "msg": "Success", "trade_status": "TRADE_SUCCESS", "total_amount": "8.00"},
				pick(v, "code", "msg", "trade_status", "total_amount"))
			v = api("alipay.trade.refund", `{"out_trade_no":"`+paid+`","refund_amount":"1.00","out_request_no":"R1"}`)
			assert.Equal(t, map[string]any{"code": "10000", "fund_change": "Y", "refund_fee": "1.00"}, pick(v, "code", "fund_change", "refund_fee"))
			v = api("alipay.trade.fastpay.refund.query", `{"out_trade_no":"`+paid+`","out_request_no":"R1"}`)
			assert.Equal(t, "1.00", v["refund_amount"])
			v = api("alipay.trade.close", `{"out_trade_no":"`+unpaid+`"}`)
			assert.Equal(t, "10000", v["code"])
			v = api("alipay.trade.query", `{"out_trade_no":"`+orderNo("NONE")+`"}`)
			assert.Equal(t, map[string]any{"code": "40004", "sub_code": "ACQ.TRADE_NOT_EXIST"}, pick(v, "code", "sub_code"), "a business failure")
			awaitNotifications(t, s, 1, func(p map[string]any) bool { return p["out_trade_no"] == paid && p["refund_fee"] == "1.00" })

			failures := map[string][2]string{"an answer signed by another key": {otherAlipayKey, mode.key}}
			if mode.key != "" {
				failures["the wrong encrypt_key"] = [2]string{testvec.Key("alipay_public_key.pem"), wrongKey}
				failures["no encrypt_key"] = [2]string{testvec.Key("alipay_public_key.pem"), ""}
			}
			for name, f := range failures {
				tester = load(f[0], f[1])
				code, v := callAPI(t, tester, "alipay.trade.query", `{"out_trade_no":"`+paid+`"}`)
				assert.Equal(t, http.StatusBadGateway, code, name)
				assert.NotContains(t, v, "trade_status", name)
				if name != "an answer signed by another key" {
					assert.Contains(t, v["sub_code"], "isv.", "Alipay's plaintext refusal, passed on (%s): %v", name, v)
				}
			}
		})
	}
}

// sandboxCertificates has a sandbox with the vectors' keys issue its
// certificates into a new directory, which it returns, and names the
// three files a sidecar needs in TEST_APP_CERT, TEST_ALIPAY_CERT and
// TEST_ALIPAY_ROOT_CERT: through the environment, since caddytest
// rewrites any "/name.crt" in a Caddyfile to a file of its own.
func sandboxCertificates(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	t.Cleanup(cancel)
	issuer := &sandbox.Handler{AppPublicKey: testvec.Key("app_public_key.pem"),
		AlipayPrivateKey: testvec.Key("alipay_private_key_pkcs1.pem"), Certificates: dir}
	require.NoError(t, issuer.Provision(ctx))
	t.Cleanup(func() { _ = issuer.Cleanup() })
	t.Setenv("TEST_APP_CERT", filepath.Join(dir, "appCertPublicKey.crt"))
	t.Setenv("TEST_ALIPAY_CERT", filepath.Join(dir, "alipayCertPublicKey_RSA2.crt"))
	t.Setenv("TEST_ALIPAY_ROOT_CERT", filepath.Join(dir, "alipayRootCert.crt"))
	return dir
}

// OpenAPI v3 in certificate mode through a real Caddy: the call names the
// app's certificate and Alipay's root, the answer Alipay's certificate in
// alipay-sn; an answer naming another certificate (changed on the way by
// a proxy between the sidecar and the sandbox) is a 502.
func TestCaddyV3CertificateMode(t *testing.T) {
	dir := sandboxCertificates(t)
	target := must(url.Parse(sandboxURL))
	tamper := httptest.NewServer(&httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) { r.SetURL(target); r.Out.Host = target.Host },
		ModifyResponse: func(resp *http.Response) error {
			if resp.Header.Get("Alipay-Sn") != "" {
				resp.Header.Set("Alipay-Sn", "00000000000000000000000000000000")
			}
			return nil
		},
	})
	defer tamper.Close()
	_, upstream := startShop(t)
	sandbox := sandboxSite(t, "certificates "+dir)
	load := func(gateway string) *caddytest.Tester {
		return loadSidecar(t, `
		app_private_key `+testvec.Key("app_private_key_pkcs1.pem")+`
		app_cert {env.TEST_APP_CERT}
		alipay_cert {env.TEST_ALIPAY_CERT}
		alipay_root_cert {env.TEST_ALIPAY_ROOT_CERT}
		api_version v3
		gateway `+gateway+`/gateway.do`, upstream, sandbox)
	}
	tester := load(sandboxURL)
	code, v := callAPI(t, tester, "alipay.trade.query", `{"out_trade_no":"`+orderNo("CERTV3")+`"}`)
	assert.Equal(t, http.StatusOK, code, v)
	assert.Equal(t, map[string]any{"code": "40004", "sub_code": "ACQ.TRADE_NOT_EXIST"}, pick(v, "code", "sub_code"), "signed, and naming Alipay's certificate")

	tester = load(tamper.URL)
	code, v = callAPI(t, tester, "alipay.trade.query", `{"out_trade_no":"`+orderNo("CERTV3")+`"}`)
	assert.Equal(t, http.StatusBadGateway, code)
	assert.Contains(t, v["error"], "alipay-sn")
}
