package sandbox

import (
	"html"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/caddy-alipay/caddy-alipay/internal/protocol"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The legacy batch refunds: refund_fastpay_by_platform_nopwd (XML) and
// refund_fastpay_by_platform_pwd (the seller's password page), their
// codes, the batch_refund_notify that a batch sends, and the trade
// page's refund of a legacy trade.

// today is the start of a batch_no sent now: the date in China Standard
// Time.
func today() string { return now().In(protocol.Beijing).Format("20060102") }

// batchParams are a refund request's own parameters, notifying the shop.
func (w *legacyWorld) batchParams(service, batchNo, detail string, num int) map[string]string {
	return map[string]string{"service": service, "seller_user_id": w.vec.Partner, "refund_date": protocol.Timestamp(now()),
		"batch_no": batchNo, "batch_num": strconv.Itoa(num), "detail_data": detail, "notify_url": w.site.URL + "/alipay/notify"}
}

// legacyTradeDoc is the newest trade of out_trade_no no.
func legacyTradeDoc(t *testing.T, w *legacyWorld, no string) tradeDoc {
	t.Helper()
	return tradeJSON(t, w.sandbox, no)[0]
}

// A batch in each way: two trades, one refunded in part with a Chinese
// reason, the other in full; the answer T; the shop's batch_refund_notify
// in the request's charset and sign type, its notify_id confirmed by
// notify_verify; the trades' refunds. The same batch again refunds and
// sends nothing more; the same batch_no with other items is refused.
func TestLegacyBatchRefund(t *testing.T) {
	for _, c := range legacyCases {
		t.Run(c.name, func(t *testing.T) {
			w := newLegacyWorld(t, nil)
			m := w.merchant(t, c.signType, c.charset, c.keys, nil)
			a := w.paidLegacyTrade(t, m, "BA", "10.00", "甲")
			b := w.paidLegacyTrade(t, m, "BB", "20.00", "乙")
			reason := "七天无理由退货（王堃）"
			batchNo := today() + "001"
			p := w.batchParams("refund_fastpay_by_platform_nopwd", batchNo, a+"^4.00^"+reason+"#"+b+"^20.00^缺货", 2)
			takenXML(t, w.call(t, c.signType, c.charset, c.post, p), c.charset)

			w.shop.waitNotify(t)
			n := w.shop.notified()
			require.Len(t, n, 3, w.shop.refused)
			bn := n[2]
			assertStrings(t, map[string]string{"notify_type": "batch_refund_notify", "batch_no": batchNo, "success_num": "2",
				"result_details": a + "^4.00^SUCCESS#" + b + "^20.00^SUCCESS", "sign_type": c.signType}, bn)
			for _, k := range []string{"notify_time", "notify_id", "sign"} {
				assert.NotEmpty(t, bn[k], k)
			}
			assert.NotContains(t, bn, "seller_id", "a batch's notification names no seller")
			assert.Equal(t, "true", w.notifyVerify(t, w.vec.Partner, bn["notify_id"]), "notify_verify confirms it")
			w.shop.mu.Lock()
			assert.Equal(t, "application/x-www-form-urlencoded; charset="+c.charset, w.shop.contentTypes[2])
			w.shop.mu.Unlock()

			da, db := legacyTradeDoc(t, w, "BA"), legacyTradeDoc(t, w, "BB")
			assert.Equal(t, "TRADE_FINISHED", da.Status, "money left")
			assert.Equal(t, "4.00", da.Refunded)
			assert.Equal(t, "TRADE_CLOSED", db.Status, "refunded in full")
			require.Len(t, da.Refunds, 1)
			assert.Equal(t, refundDoc{Amount: "4.00", BatchNo: batchNo, Reason: reason, By: "batch", Method: "refund_fastpay_by_platform_nopwd"},
				withoutTime(da.Refunds[0]), "the GBK reason, as text")
			require.Len(t, da.Notifications, 2)
			require.Len(t, db.Notifications, 2)
			assert.Equal(t, da.Notifications[1].ID, db.Notifications[1].ID, "one notification for the batch, on both trades")
			assert.Equal(t, "batch_refund", da.Notifications[1].About)
			assert.Equal(t, batchNo, da.Notifications[1].BatchNo)
			assert.Equal(t, c.charset, da.Notifications[1].Charset)
			waitTrade(t, w.sandbox, "BB", delivered)
			q := readXML(t, w.call(t, c.signType, c.charset, c.post, map[string]string{"service": "single_trade_query", "trade_no": a}), c.charset)
			assertStrings(t, map[string]string{"refund_fee": "4.00", "trade_status": "TRADE_FINISHED"}, q.fields)

			// Sent again (the sidecar signs a new refund_date): answered as
			// before, nothing more refunded or sent.
			advanceClock(t, time.Second)
			p["refund_date"] = protocol.Timestamp(now())
			takenXML(t, w.call(t, c.signType, c.charset, c.post, p), c.charset)
			w.shop.noArrival(t, 40*time.Millisecond, "a batch sent again")
			assert.Equal(t, "4.00", legacyTradeDoc(t, w, "BA").Refunded)
			p["detail_data"], p["batch_num"] = a+"^1.00^"+reason, "1"
			refusedXML(t, w.call(t, c.signType, c.charset, c.post, p), c.charset, "DUPLICATE_BATCH_NO")

			// What is left, and no more.
			p = w.batchParams("refund_fastpay_by_platform_nopwd", today()+"002", a+"^6.01^x", 1)
			refusedXML(t, w.call(t, c.signType, c.charset, c.post, p), c.charset, "REFUND_AMOUNT_NOT_VALID")
			p = w.batchParams("refund_fastpay_by_platform_nopwd", today()+"003", a+"^6.00^x", 1)
			takenXML(t, w.call(t, c.signType, c.charset, c.post, p), c.charset)
			w.shop.waitNotify(t)
			assert.Equal(t, "TRADE_CLOSED", legacyTradeDoc(t, w, "BA").Status)
			p = w.batchParams("refund_fastpay_by_platform_nopwd", today()+"004", a+"^0.01^x", 1)
			refusedXML(t, w.call(t, c.signType, c.charset, c.post, p), c.charset, "TRADE_STATUS_ERROR")
		})
	}
}

// withoutTime is r without its time, for comparing.
func withoutTime(r refundDoc) refundDoc {
	r.At, r.AtTime = "", time.Time{}
	return r
}

// Every code with which the refund services refuse a batch, in XML
// (nopwd) and on the error page (pwd); nothing is refunded.
func TestLegacyBatchRefused(t *testing.T) {
	w := newLegacyWorld(t, func(s *Handler) { s.CallbackHosts = []string{"shop.example.com"} })
	m := w.merchant(t, protocol.SignTypeMD5, "utf-8", legacyKeys{}, nil)
	paid := w.paidLegacyTrade(t, m, "BR1", "5.00", "r")
	other := w.paidLegacyTrade(t, m, "BR2", "5.00", "r")
	w.request(t, w.payURL(t, m, map[string]any{"out_trade_no": "BR3", "total_amount": "1.00", "subject": "unpaid"}), false)
	unpaid := legacyTradeDoc(t, w, "BR3").TradeNo
	openAPI := serve(t, w.sandbox, httptest.NewRequest("GET", signedPayURL(t, w.site.URL+"/n", w.site.URL+"/r",
		map[string]any{"out_trade_no": "BR4", "total_amount": "1.00", "subject": "openapi"}), nil))
	require.Equal(t, http.StatusFound, openAPI.Code)
	openAPINo := tradeJSON(t, w.sandbox, "BR4")[0].TradeNo
	yesterday := now().Add(-24 * time.Hour).In(protocol.Beijing).Format("20060102")
	many := strings.Repeat(paid+"^0.01^x#", 1000) + paid + "^0.01^x"
	takenBefore := today() + "900"
	for _, service := range []string{"refund_fastpay_by_platform_nopwd", "refund_fastpay_by_platform_pwd"} {
		taken := w.batchParams("refund_fastpay_by_platform_nopwd", takenBefore, other+"^1.00^x", 1)
		takenXML(t, w.call(t, protocol.SignTypeMD5, "utf-8", false, taken), "utf-8")
		w.shop.waitNotify(t)
		takenBefore = today() + "901"
		for name, c := range map[string]struct {
			edit func(map[string]string)
			code string
		}{
			"yesterday's batch_no":   {func(p map[string]string) { p["batch_no"] = yesterday + "001" }, "BATCH_NO_FORMAT_ERROR"},
			"batch_no 000":           {func(p map[string]string) { p["batch_no"] = today() + "000" }, "BATCH_NO_FORMAT_ERROR"},
			"batch_no too short":     {func(p map[string]string) { p["batch_no"] = today() + "01" }, "BATCH_NO_FORMAT_ERROR"},
			"batch_no too long":      {func(p map[string]string) { p["batch_no"] = today() + strings.Repeat("1", 25) }, "BATCH_NO_FORMAT_ERROR"},
			"batch_no not alnum":     {func(p map[string]string) { p["batch_no"] = today() + "00-1" }, "BATCH_NO_FORMAT_ERROR"},
			"no batch_no":            {func(p map[string]string) { delete(p, "batch_no") }, "BATCH_NO_FORMAT_ERROR"},
			"batch_no used":          {func(p map[string]string) { p["batch_no"] = today() + "900" }, "DUPLICATE_BATCH_NO"},
			"batch_num not equal":    {func(p map[string]string) { p["batch_num"] = "2" }, "BATCH_NUM_NOT_EQUAL_TOTAL"},
			"batch_num over 1000":    {func(p map[string]string) { p["batch_num"] = "1001" }, "BATCH_NUM_EXCEED_LIMIT"},
			"1001 items":             {func(p map[string]string) { p["detail_data"], p["batch_num"] = many, "1001" }, "BATCH_NUM_EXCEED_LIMIT"},
			"batch_num not a number": {func(p map[string]string) { p["batch_num"] = "one" }, "ILLEGAL_ARGUMENT"},
			"no detail_data":         {func(p map[string]string) { delete(p, "detail_data") }, "DETAIL_DATA_FORMAT_ERROR"},
			"two parts":              {func(p map[string]string) { p["detail_data"] = paid + "^1.00" }, "DETAIL_DATA_FORMAT_ERROR"},
			"bad amount":             {func(p map[string]string) { p["detail_data"] = paid + "^1.001^x" }, "DETAIL_DATA_FORMAT_ERROR"},
			"zero amount":            {func(p map[string]string) { p["detail_data"] = paid + "^0^x" }, "DETAIL_DATA_FORMAT_ERROR"},
			"bad trade_no":           {func(p map[string]string) { p["detail_data"] = "BR-1^1.00^x" }, "DETAIL_DATA_FORMAT_ERROR"},
			"reason with a tab":      {func(p map[string]string) { p["detail_data"] = paid + "^1.00^a\tb" }, "DETAIL_DATA_FORMAT_ERROR"},
			"reason with $":          {func(p map[string]string) { p["detail_data"] = paid + "^1.00^a$b" }, "DETAIL_DATA_FORMAT_ERROR"},
			"reason with |":          {func(p map[string]string) { p["detail_data"] = paid + "^1.00^a|b" }, "DETAIL_DATA_FORMAT_ERROR"},
			"reason of 256 bytes":    {func(p map[string]string) { p["detail_data"] = paid + "^1.00^" + strings.Repeat("退", 85) + "x" }, "DETAIL_DATA_FORMAT_ERROR"},
			"a trade twice": {func(p map[string]string) {
				p["detail_data"], p["batch_num"] = paid+"^1.00^x#"+paid+"^2.00^y", "2"
			}, "DUBL_TRADE_NO_IN_SAME_BATCH"},
			"unknown trade":        {func(p map[string]string) { p["detail_data"] = "2024052022001000000000000000^1.00^x" }, "NOT_THIS_PARTNERS_TRADE"},
			"OpenAPI's trade":      {func(p map[string]string) { p["detail_data"] = openAPINo + "^1.00^x" }, "NOT_THIS_PARTNERS_TRADE"},
			"unpaid trade":         {func(p map[string]string) { p["detail_data"] = unpaid + "^1.00^x" }, "TRADE_STATUS_ERROR"},
			"more than left":       {func(p map[string]string) { p["detail_data"] = paid + "^5.01^x" }, "REFUND_AMOUNT_NOT_VALID"},
			"one item refused":     {func(p map[string]string) { p["detail_data"], p["batch_num"] = paid+"^1.00^x#"+unpaid+"^1.00^y", "2" }, "TRADE_STATUS_ERROR"},
			"no seller":            {func(p map[string]string) { delete(p, "seller_user_id") }, "ILLEGAL_ARGUMENT"},
			"bad seller":           {func(p map[string]string) { p["seller_user_id"] = "1234" }, "ILLEGAL_ARGUMENT"},
			"bad refund_date":      {func(p map[string]string) { p["refund_date"] = "today" }, "ILLEGAL_ARGUMENT"},
			"notify_url elsewhere": {func(p map[string]string) { p["notify_url"] = "https://attacker.example/n" }, "ILLEGAL_ARGUMENT"},
			"another partner":      {func(p map[string]string) { p["partner"] = "2088000000000002" }, "ILLEGAL_PARTNER"},
		} {
			t.Run(service+" "+name, func(t *testing.T) {
				p := w.batchParams(service, today()+"100", paid+"^1.00^x", 1)
				c.edit(p)
				rec := w.call(t, protocol.SignTypeMD5, "utf-8", false, p)
				if service == "refund_fastpay_by_platform_nopwd" {
					refusedXML(t, rec, "utf-8", c.code)
				} else {
					refusedWith(t, rec, c.code)
					assert.NotContains(t, rec.Body.String(), `id="confirm"`)
				}
			})
		}
		// Tampered: ILLEGAL_SIGN.
		target := strings.Replace(w.signedURL(t, protocol.SignTypeMD5, "utf-8", w.batchParams(service, today()+"100", paid+"^1.00^x", 1)), "%5E1.00%5E", "%5E5.00%5E", 1)
		require.Contains(t, target, "%5E5.00%5E")
		if rec := w.request(t, target, false); service == "refund_fastpay_by_platform_nopwd" {
			refusedXML(t, rec, "utf-8", "ILLEGAL_SIGN")
		} else {
			refusedWith(t, rec, "ILLEGAL_SIGN")
		}
	}
	assert.Equal(t, "0.00", legacyTradeDoc(t, w, "BR1").Refunded, "nothing was refunded")
	// A reason of 255 bytes is taken.
	p := w.batchParams("refund_fastpay_by_platform_nopwd", today()+"101", paid+"^1.00^"+strings.Repeat("退", 85), 1)
	takenXML(t, w.call(t, protocol.SignTypeMD5, "utf-8", false, p), "utf-8")
}

// A batch_refund_notify that the shop does not accept is sent again on
// the schedule, each time with a fresh notify_id that notify_verify
// confirms, until the answer is success.
func TestLegacyBatchNotifyRetried(t *testing.T) {
	w := newLegacyWorld(t, withRetry(20*time.Millisecond, 20*time.Millisecond, 20*time.Millisecond))
	m := w.merchant(t, protocol.SignTypeMD5, "gbk", legacyKeys{}, nil)
	tradeNo := w.paidLegacyTrade(t, m, "BN1", "3.00", "重试")
	w.shop.setStatus(http.StatusInternalServerError)
	p := w.batchParams("refund_fastpay_by_platform_nopwd", today()+"R01", tradeNo+"^3.00^重试退款", 1)
	takenXML(t, w.call(t, protocol.SignTypeMD5, "gbk", true, p), "gbk")
	w.shop.waitNotify(t)
	w.shop.waitNotify(t)
	w.shop.setStatus(http.StatusOK)
	w.shop.waitNotify(t)
	w.shop.noArrival(t, 60*time.Millisecond, "after success")
	n := w.shop.notified()
	require.Len(t, n, 4, w.shop.refused)
	ids := map[string]bool{}
	for _, bn := range n[1:] {
		assert.Equal(t, "batch_refund_notify", bn["notify_type"])
		ids[bn["notify_id"]] = true
	}
	assert.Len(t, ids, 3, "a fresh notify_id each sending, each confirmed by notify_verify")
	d := waitTrade(t, w.sandbox, "BN1", delivered)
	require.Len(t, d.Notifications, 2)
	assert.Equal(t, 3, d.Notifications[1].AttemptsTotal)
	assert.Equal(t, 1, d.Notifications[0].AttemptsTotal, "the payment's schedule is its own")
}

var confirmFormRE = regexp.MustCompile(`<form method="post" action="(/sandbox/refund/[0-9a-f]+/confirm)">`)

// The seller's password page: the batch's items, a password field and
// Confirm; nothing is refunded until Confirm, which refuses another
// site's form and takes any password; Confirm again refunds nothing
// more; a trade that changed since the page opened refuses it.
func TestLegacyPasswordPage(t *testing.T) {
	w := newLegacyWorld(t, nil)
	m := w.merchant(t, protocol.SignTypeRSA, "gbk", testLegacyRSAKeys, nil)
	tradeNo := w.paidLegacyTrade(t, m, "PW1", "8.00", "密码")
	reason := "尺码不合适（王堃）"
	p := w.batchParams("refund_fastpay_by_platform_pwd", today()+"PW1", tradeNo+"^8.00^"+reason, 1)
	rec := w.call(t, protocol.SignTypeRSA, "gbk", false, p)
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	page := rec.Body.String()
	assert.Contains(t, page, `<code id="batch-no">`+today()+`PW1</code>`)
	assert.Contains(t, page, "<td><code>"+tradeNo+"</code></td><td class=\"num\">¥8.00</td><td>"+html.EscapeString(reason)+"</td>")
	assert.Contains(t, page, `<input type="password" id="password" name="password"`)
	assert.Contains(t, page, `<button id="confirm" type="submit">`)
	form := confirmFormRE.FindStringSubmatch(page)
	require.NotNil(t, form, page)
	assert.Equal(t, "0.00", legacyTradeDoc(t, w, "PW1").Refunded, "nothing until Confirm")

	confirm := func(header ...string) *httptest.ResponseRecorder {
		r := httptest.NewRequest("POST", "http://sandbox.test"+form[1], strings.NewReader(url.Values{"password": {"anything at all"}}.Encode()))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		for i := 0; i+1 < len(header); i += 2 {
			r.Header.Set(header[i], header[i+1])
		}
		return serve(t, w.sandbox, r)
	}
	rec = confirm("Sec-Fetch-Site", "cross-site")
	assert.Equal(t, http.StatusForbidden, rec.Code)
	assert.Equal(t, "0.00", legacyTradeDoc(t, w, "PW1").Refunded)

	rec = confirm("Sec-Fetch-Site", "same-origin")
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	assert.Contains(t, rec.Body.String(), `id="refund-result"`)
	assert.NotContains(t, rec.Body.String(), `id="confirm"`)
	w.shop.waitNotify(t)
	bn := w.shop.notified()[1]
	assertStrings(t, map[string]string{"notify_type": "batch_refund_notify", "batch_no": today() + "PW1", "success_num": "1",
		"result_details": tradeNo + "^8.00^SUCCESS", "sign_type": "RSA"}, bn)
	d := legacyTradeDoc(t, w, "PW1")
	assert.Equal(t, "TRADE_CLOSED", d.Status)
	require.Len(t, d.Refunds, 1)
	assert.Equal(t, reason, d.Refunds[0].Reason)
	assert.Equal(t, "refund_fastpay_by_platform_pwd", d.Refunds[0].Method)
	last := d.Events[len(d.Events)-1]
	assert.Equal(t, []string{"refund_fastpay_by_platform_pwd", "seller", "T"}, []string{last.Kind, last.Source, last.Code})

	// Confirm again, and the same link again: nothing more.
	rec = confirm()
	require.Equal(t, http.StatusOK, rec.Code)
	assert.Contains(t, rec.Body.String(), "nothing more was refunded")
	rec = w.call(t, protocol.SignTypeRSA, "gbk", false, p)
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	assert.Contains(t, rec.Body.String(), `id="repeated"`)
	w.shop.noArrival(t, 40*time.Millisecond, "a batch confirmed again")
	assert.Len(t, legacyTradeDoc(t, w, "PW1").Refunds, 1)

	// The page opened, then the trade refunded otherwise: Confirm is
	// refused with the code.
	other := w.paidLegacyTrade(t, m, "PW2", "2.00", "两次")
	rec = w.call(t, protocol.SignTypeRSA, "gbk", false, w.batchParams("refund_fastpay_by_platform_pwd", today()+"PW2", other+"^2.00^x", 1))
	form = confirmFormRE.FindStringSubmatch(rec.Body.String())
	require.NotNil(t, form)
	takenXML(t, w.call(t, protocol.SignTypeRSA, "gbk", false, w.batchParams("refund_fastpay_by_platform_nopwd", today()+"PW3", other+"^2.00^x", 1)), "gbk")
	w.shop.waitNotify(t)
	refusedWith(t, confirm(), "TRADE_STATUS_ERROR")

	for _, c := range []struct {
		method, path string
		status       int
	}{
		{"GET", form[1], http.StatusMethodNotAllowed},
		{"POST", "/sandbox/refund/0123456789abcdef0123456789abcdef/confirm", http.StatusNotFound},
		{"POST", "/sandbox/refund/x", http.StatusNotFound},
	} {
		assert.Equal(t, c.status, serve(t, w.sandbox, httptest.NewRequest(c.method, "http://sandbox.test"+c.path, nil)).Code, c)
	}
}

// The password page in each way: the page opens, Confirm refunds, and
// the batch_refund_notify comes in the request's charset and sign type,
// its reason as text.
func TestLegacyPasswordPageEachWay(t *testing.T) {
	for _, c := range legacyCases {
		t.Run(c.name, func(t *testing.T) {
			w := newLegacyWorld(t, nil)
			m := w.merchant(t, c.signType, c.charset, c.keys, nil)
			tradeNo := w.paidLegacyTrade(t, m, "PE1", "1.50", "每种")
			reason := "质量问题（堃）"
			rec := w.call(t, c.signType, c.charset, c.post, w.batchParams("refund_fastpay_by_platform_pwd", today()+"PE1", tradeNo+"^1.50^"+reason, 1))
			require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
			assert.Contains(t, rec.Body.String(), "<td>"+reason+"</td>")
			form := confirmFormRE.FindStringSubmatch(rec.Body.String())
			require.NotNil(t, form)
			r := httptest.NewRequest("POST", "http://sandbox.test"+form[1], strings.NewReader("password="))
			r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			require.Equal(t, http.StatusOK, serve(t, w.sandbox, r).Code, "an empty password is taken too")
			w.shop.waitNotify(t)
			n := w.shop.notified()
			require.Len(t, n, 2, w.shop.refused)
			assertStrings(t, map[string]string{"notify_type": "batch_refund_notify", "result_details": tradeNo + "^1.50^SUCCESS",
				"sign_type": c.signType}, n[1])
			d := legacyTradeDoc(t, w, "PE1")
			assert.Equal(t, "TRADE_CLOSED", d.Status)
			assert.Equal(t, reason, d.Refunds[0].Reason)
		})
	}
}

// The trade page's Refund in full of a legacy trade: a batch of one item
// with a batch_no that the sandbox makes, whose batch_refund_notify goes
// to the trade's notify_url, in its charset and sign type.
func TestTradePageLegacyRefund(t *testing.T) {
	w := newLegacyWorld(t, nil)
	m := w.merchant(t, protocol.SignTypeMD5, "gbk", legacyKeys{}, nil)
	tradeNo := w.paidLegacyTrade(t, m, "PL1", "6.60", "页面退款")
	d := legacyTradeDoc(t, w, "PL1")
	assert.Contains(t, tradePage(t, w.sandbox, "PL1"), `Refund in full 全额退款 ¥6.60</button>`)
	pressed(t, press(t, w.sandbox, "PL1", "refund", d.ID), "PL1")
	w.shop.waitNotify(t)
	bn := w.shop.notified()[1]
	assert.Equal(t, "batch_refund_notify", bn["notify_type"])
	assert.Regexp(t, `^`+today()+`SANDBOX[0-9a-f]{12}$`, bn["batch_no"])
	assertStrings(t, map[string]string{"success_num": "1", "result_details": tradeNo + "^6.60^SUCCESS", "sign_type": "MD5"}, bn)

	d = waitTrade(t, w.sandbox, "PL1", delivered)
	assert.Equal(t, "TRADE_CLOSED", d.Status)
	require.Len(t, d.Refunds, 1)
	assert.Equal(t, refundDoc{Amount: "6.60", BatchNo: bn["batch_no"], Reason: "refund in full from the sandbox's trade page", By: "page"}, withoutTime(d.Refunds[0]))
	require.Len(t, d.Notifications, 2)
	assert.Equal(t, w.site.URL+"/alipay/notify", d.Notifications[1].URL)
	last := d.Events[len(d.Events)-1]
	assert.Equal(t, []string{"refund in full", "page", "T"}, []string{last.Kind, last.Source, last.Code})
	page := tradePage(t, w.sandbox, "PL1")
	assert.NotContains(t, page, `id="refund"`)
	assert.Contains(t, page, "batch refund 批量退款, batch_no "+bn["batch_no"])
	assert.Contains(t, page, `id="resend-n2"`)

	// Pressed again (an old page): refused as a batch would be, recorded.
	pressed(t, press(t, w.sandbox, "PL1", "refund", d.ID), "PL1")
	last = legacyTradeDoc(t, w, "PL1").Events[len(d.Events)]
	assert.Equal(t, []string{"refund in full", "page", "F", "TRADE_STATUS_ERROR"}, []string{last.Kind, last.Source, last.Code, last.SubCode})
}
