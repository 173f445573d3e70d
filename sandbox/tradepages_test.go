package sandbox

import (
	"encoding/json"
	"html"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/caddy-alipay/caddy-alipay/internal/protocol"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The trade pages, /sandbox/trades and /sandbox/trades/<out_trade_no>:
// what they show, their JSON, and their buttons.

// tradesGet GETs a trade page, as JSON if asked.
func tradesGet(t *testing.T, sb *Handler, path string, asJSON bool) *httptest.ResponseRecorder {
	t.Helper()
	r := httptest.NewRequest("GET", "http://sandbox.test"+path, nil)
	if asJSON {
		r.Header.Set("Accept", "application/json")
	}
	return serve(t, sb, r)
}

func tradeListJSON(t *testing.T, sb *Handler) tradeListDoc {
	t.Helper()
	rec := tradesGet(t, sb, "/sandbox/trades", true)
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	require.Equal(t, "application/json; charset=utf-8", rec.Header().Get("Content-Type"))
	var doc tradeListDoc
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &doc), rec.Body.String())
	return doc
}

// tradeJSON is the trades with out_trade_no no, newest first.
func tradeJSON(t *testing.T, sb *Handler, no string) []tradeDoc {
	t.Helper()
	rec := tradesGet(t, sb, "/sandbox/trades/"+no, true)
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	var doc tradePageDoc
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &doc), rec.Body.String())
	require.Equal(t, no, doc.OutTradeNo)
	require.NotEmpty(t, doc.Trades)
	return doc.Trades
}

func tradePage(t *testing.T, sb *Handler, no string) string {
	t.Helper()
	rec := tradesGet(t, sb, "/sandbox/trades/"+no, false)
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	require.Equal(t, "text/html; charset=utf-8", rec.Header().Get("Content-Type"))
	return rec.Body.String()
}

// waitTrade polls the newest trade of no until ok, within 10 s.
func waitTrade(t *testing.T, sb *Handler, no string, ok func(tradeDoc) bool) tradeDoc {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		d := tradeJSON(t, sb, no)[0]
		if ok(d) {
			return d
		}
		if time.Now().After(deadline) {
			t.Fatalf("trade %s never got there: %+v", no, d)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// waiting: n attempts are recorded, and the loop waits for the next.
func waiting(n int) func(tradeDoc) bool {
	return func(d tradeDoc) bool {
		if len(d.Attempts) != n || d.NextAttempt == nil {
			return false
		}
		next, err1 := time.Parse(time.RFC3339, *d.NextAttempt)
		last, err2 := time.Parse(time.RFC3339, d.Attempts[n-1].At)
		return err1 == nil && err2 == nil && next.After(last)
	}
}

func delivered(d tradeDoc) bool { return d.Delivered && d.NextAttempt == nil }

// press POSTs a trade page's button with the form's id.
func press(t *testing.T, sb *Handler, no, action, id string, header ...string) *httptest.ResponseRecorder {
	t.Helper()
	r := httptest.NewRequest("POST", "http://sandbox.test/sandbox/trades/"+no+"/"+action, strings.NewReader(url.Values{"id": {id}}.Encode()))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for i := 0; i+1 < len(header); i += 2 {
		r.Header.Set(header[i], header[i+1])
	}
	return serve(t, sb, r)
}

// pressed checks that a button answered 303 back to the trade's page.
func pressed(t *testing.T, rec *httptest.ResponseRecorder, no string) {
	t.Helper()
	require.Equal(t, http.StatusSeeOther, rec.Code, rec.Body.String())
	assert.Equal(t, "/sandbox/trades/"+no, rec.Header().Get("Location"))
}

func nothingLeftToSend(doc tradeListDoc) bool {
	return !slices.ContainsFunc(doc.Trades, func(d tradeSummary) bool { return d.NextAttempt != nil })
}

func parseRFC3339(t *testing.T, s string) time.Time {
	t.Helper()
	at, err := time.Parse(time.RFC3339, s)
	require.NoError(t, err, s)
	assert.True(t, strings.HasSuffix(s, "+08:00"), "Beijing time: %s", s)
	return at
}

var hiddenIDRE = regexp.MustCompile(`<form method="post" action="/sandbox/trades/([A-Za-z0-9_]+)/(resend|refund)"><input type="hidden" name="id" value="([0-9a-f]+)">`)

// The list: newest first, its fields, the max_trades note, escaping; and
// its JSON, with the documented names only.
func TestTradeListPage(t *testing.T) {
	w := newWorld(t, func(s *Handler) { s.MaxTrades = 3 })
	subject := `Tea <b>&</b> "cake"`
	w.openTestOrder(t, "P1", "1.00", "first")
	// The protocol package's orders refuse & in a subject; the sandbox's
	// gateway takes it, so this request is signed by hand.
	params := w.api.RequestParams("alipay.trade.page.pay", []byte(`{"out_trade_no":"P2","total_amount":"2.50","subject":`+
		strconvQuote(subject)+`,"product_code":"FAST_INSTANT_TRADE_PAY"}`), time.Now())
	params["notify_url"], params["return_url"] = w.site.URL+"/alipay/notify", w.site.URL+"/alipay/return"
	require.NoError(t, protocol.SignParams(w.api.Signer, params))
	w.cashier(t, w.gateway(t, "GET", w.api.Gateway+"?"+protocol.Encode(params), ""))
	pay := w.openTestOrder(t, "P3", "3", "paid")
	w.openTestOrder(t, "P4", "4.00", "newest")
	require.Equal(t, http.StatusFound, w.postCashier(t, pay).Code)
	w.shop.waitNotify(t)
	waitTrade(t, w.sandbox, "P3", delivered)

	rec := tradesGet(t, w.sandbox, "/sandbox/trades", false)
	require.Equal(t, http.StatusOK, rec.Code)
	page := rec.Body.String()
	assert.Contains(t, page, `<b id="max-trades">3</b> trades in memory (max_trades)`)
	assert.Contains(t, page, `<b id="kept">3</b>`)
	assert.Contains(t, page, `<b id="dropped">1</b>`)
	assert.Contains(t, page, `drops the oldest first`)
	assert.Contains(t, page, `<table id="trades">`)
	assert.Contains(t, page, `<body class="wide">`)
	assert.NotContains(t, page, `/sandbox/trades/P1"`, "dropped")
	i4, i3, i2 := strings.Index(page, `href="/sandbox/trades/P4"`), strings.Index(page, `href="/sandbox/trades/P3"`), strings.Index(page, `href="/sandbox/trades/P2"`)
	assert.True(t, i4 > 0 && i4 < i3 && i3 < i2, "newest first: %d %d %d", i4, i3, i2)
	assert.Contains(t, page, `<td>Tea &lt;b&gt;&amp;&lt;/b&gt; &#34;cake&#34;</td>`)
	assert.NotContains(t, page, "<b>&</b>")
	assert.Contains(t, page, `<td class="num">¥2.50</td>`)
	assert.Contains(t, page, `<td>OpenAPI</td>`)
	assert.Contains(t, page, `<td><span class="ok">delivered</span><br><span class="muted">1 attempt</span></td>`)

	doc := tradeListJSON(t, w.sandbox)
	assert.Equal(t, 3, doc.Kept)
	assert.Equal(t, 3, doc.MaxTrades)
	assert.EqualValues(t, 1, doc.Dropped)
	require.Len(t, doc.Trades, 3)
	var nos []string
	for _, d := range doc.Trades {
		nos = append(nos, d.OutTradeNo)
	}
	assert.Equal(t, []string{"P4", "P3", "P2"}, nos)
	p2, p3, p4 := doc.Trades[2], doc.Trades[1], doc.Trades[0]
	assert.Equal(t, subject, p2.Subject)
	assert.Equal(t, "2.50", p2.Amount)
	assert.Equal(t, "openapi", p2.Protocol)
	assert.Equal(t, testAppID, p2.AppID)
	assert.Equal(t, "WAIT_BUYER_PAY", p2.Status)
	assert.Len(t, p2.TradeNo, 28)
	assert.Contains(t, page, `<td class="time">`+protocol.Timestamp(parseRFC3339(t, p2.Created))+`</td>`, "Beijing time, as Alipay writes it")
	assert.Nil(t, p4.Paid)
	assert.Nil(t, p4.NextAttempt)
	assert.Zero(t, p4.AttemptsTotal)
	assert.Equal(t, "TRADE_SUCCESS", p3.Status)
	require.NotNil(t, p3.Paid)
	parseRFC3339(t, *p3.Paid)
	assert.True(t, p3.Delivered)
	assert.Equal(t, 1, p3.AttemptsTotal)
	require.Len(t, tradeJSON(t, w.sandbox, "P3")[0].Attempts, 1)
	assert.True(t, nothingLeftToSend(doc))

	// The names are the documented ones, and the subject's HTML
	// characters are escaped in the JSON text too.
	raw := tradesGet(t, w.sandbox, "/sandbox/trades", true).Body.String()
	assert.NotContains(t, raw, "<b>")
	var generic struct {
		Trades []map[string]any `json:"trades"`
	}
	require.NoError(t, json.Unmarshal([]byte(raw), &generic))
	var list map[string]any
	require.NoError(t, json.Unmarshal([]byte(raw), &list))
	assert.Equal(t, []string{"dropped", "kept", "max_trades", "trades"}, keysOf(list))
	summary := []string{"amount", "app_id", "attempts_total", "awaiting_scan", "created", "delivered", "events_total",
		"given_up", "id", "method", "next_attempt", "notify_url", "out_trade_no", "paid", "partner", "product", "protocol", "refunded",
		"return_url", "sign_type", "status", "subject", "trade_no"}
	assert.Equal(t, summary, keysOf(generic.Trades[1]), "the list leaves attempts and events to the trade's page")
	// The trade's page: the same names, with its attempts and events.
	var page3 struct {
		Trades []map[string]any `json:"trades"`
	}
	require.NoError(t, json.Unmarshal(tradesGet(t, w.sandbox, "/sandbox/trades/P3", true).Body.Bytes(), &page3))
	require.Len(t, page3.Trades, 1)
	full := append(slices.Clone(summary), "attempts", "events", "notifications", "refunds")
	slices.Sort(full)
	assert.Equal(t, full, keysOf(page3.Trades[0]))
	attempt := page3.Trades[0]["attempts"].([]any)[0].(map[string]any)
	assert.Equal(t, []string{"accepted", "answer", "at", "duration_ms", "error", "notification", "notify_id", "resend", "status", "url"}, keysOf(attempt))
	note := page3.Trades[0]["notifications"].([]any)[0].(map[string]any)
	assert.Equal(t, []string{"about", "attempts", "attempts_total", "batch_no", "charset", "created", "delivered", "fields",
		"given_up", "id", "next_attempt", "notify_id", "notify_type", "out_request_no", "sign_type", "url"}, keysOf(note))
	assert.Equal(t, note["id"], attempt["notification"])
	assert.Equal(t, []any{}, page3.Trades[0]["refunds"], "an empty list, not null")
	event := page3.Trades[0]["events"].([]any)[0].(map[string]any)
	assert.Equal(t, []string{"at", "code", "detail", "kind", "source", "sub_code"}, keysOf(event))
	assert.Equal(t, "return", event["kind"])
	assert.Equal(t, "buyer", event["source"])
	var page4 struct {
		Trades []map[string]any `json:"trades"`
	}
	require.NoError(t, json.Unmarshal(tradesGet(t, w.sandbox, "/sandbox/trades/P4", true).Body.Bytes(), &page4))
	assert.Equal(t, []any{}, page4.Trades[0]["attempts"], "an empty list, not null")

	// The trade's page escapes the subject too.
	tp := tradePage(t, w.sandbox, "P2")
	assert.Contains(t, tp, `<span id="subject">Tea &lt;b&gt;&amp;&lt;/b&gt; &#34;cake&#34;</span>`)
	assert.NotContains(t, tp, "<b>&</b>")
	assert.NotContains(t, tp, `id="resend"`, "an unpaid trade has nothing to send again")
	assert.Contains(t, tp, "Not paid: nothing to send.")

	// No trades yet: a sandbox of the same identity would share w's
	// trades, so w's lets go of them first.
	require.NoError(t, w.sandbox.Cleanup())
	empty := newTestSandbox(t, nil)
	assert.Contains(t, tradesGet(t, empty, "/sandbox/trades", false).Body.String(), `id="no-trades"`)
	assert.Contains(t, tradesGet(t, empty, "/sandbox/trades", false).Body.String(), `<b id="max-trades">5000</b>`)
	assert.Equal(t, tradeListDoc{Kept: 0, MaxTrades: 5000, Trades: []tradeSummary{}}, tradeListJSON(t, empty))
}

func strconvQuote(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

func keysOf(m map[string]any) []string { return slices.Sorted(maps.Keys(m)) }

// Refund in full does what alipay.trade.refund does: query then answers
// TRADE_CLOSED and refund.query finds it; the page records it.
func TestTradePageRefundInFull(t *testing.T) {
	w := newWorld(t, nil)
	sb := w.sandbox
	w.postCashier(t, w.openTestOrder(t, "F1", "9.90", "refund"))
	w.shop.waitNotify(t)
	d := waitTrade(t, sb, "F1", delivered)
	// The shop refunds part first, through the API.
	r := apiCall(t, sb, "alipay.trade.refund", map[string]any{"out_trade_no": "F1", "refund_amount": "1.00", "out_request_no": "R1"})
	require.Equal(t, "10000", r["code"])
	assert.Contains(t, tradePage(t, sb, "F1"), `Refund in full 全额退款 ¥8.90</button>`, "what is left")

	pressed(t, press(t, sb, "F1", "refund", d.ID), "F1")
	q := apiCall(t, sb, "alipay.trade.query", map[string]any{"out_trade_no": "F1"})
	assertAPIFields(t, map[string]any{"code": "10000", "trade_status": "TRADE_CLOSED"}, q)
	rq := apiCall(t, sb, "alipay.trade.fastpay.refund.query", map[string]any{"out_trade_no": "F1", "out_request_no": "F1"})
	assertAPIFields(t, map[string]any{"code": "10000", "refund_status": "REFUND_SUCCESS", "refund_amount": "8.90",
		"total_amount": "9.90", "refund_reason": "refund in full from the sandbox's trade page"}, rq)

	d = tradeJSON(t, sb, "F1")[0]
	assert.Equal(t, "TRADE_CLOSED", d.Status)
	assert.Equal(t, "9.90", d.Refunded)
	var got []string
	for _, e := range d.Events {
		got = append(got, e.Kind+" "+e.Source+" "+e.Code+" "+e.SubCode)
		parseRFC3339(t, e.At)
	}
	assert.Equal(t, []string{"return buyer  ", "alipay.trade.refund shop 10000 ", "alipay.trade.refund page 10000 ",
		"alipay.trade.query shop 10000 ", "alipay.trade.fastpay.refund.query shop 10000 "}, got)
	assert.Equal(t, "refund_amount 8.90, out_request_no F1, refund_fee 9.90, fund_change Y", d.Events[2].Detail)

	page := tradePage(t, sb, "F1")
	assert.Contains(t, page, `<b id="status">TRADE_CLOSED</b>`)
	assert.NotContains(t, page, `id="refund"`, "nothing left to refund")
	assert.Contains(t, page, `id="resend"`, "the notification can still be sent again")
	assert.Contains(t, page, "<td>page</td>")
	assert.Contains(t, page, "<code>alipay.trade.fastpay.refund.query</code>")

	// Pressed again (an old page): refused as the API refuses it, and
	// recorded.
	pressed(t, press(t, sb, "F1", "refund", d.ID), "F1")
	d = tradeJSON(t, sb, "F1")[0]
	last := d.Events[len(d.Events)-1]
	assert.Equal(t, []string{"alipay.trade.refund", "page", "40004", "ACQ.TRADE_HAS_CLOSE"}, []string{last.Kind, last.Source, last.Code, last.SubCode})
	assert.Equal(t, "9.90", d.Refunded)

	// An unpaid trade: the API's answer, recorded.
	w.openTestOrder(t, "F2", "1.00", "unpaid")
	u := tradeJSON(t, sb, "F2")[0]
	pressed(t, press(t, sb, "F2", "refund", u.ID), "F2")
	u = tradeJSON(t, sb, "F2")[0]
	require.Len(t, u.Events, 1)
	assert.Equal(t, "ACQ.TRADE_STATUS_ERROR", u.Events[0].SubCode)
	assert.Equal(t, "WAIT_BUYER_PAY", u.Status)
}

// The buttons work only with the trade's cashier id: a form from another
// page cannot press them.
func TestTradePageButtonsRefused(t *testing.T) {
	w := newWorld(t, nil)
	sb := w.sandbox
	w.postCashier(t, w.openTestOrder(t, "B1", "1.00", "paid"))
	w.shop.waitNotify(t)
	b1 := waitTrade(t, sb, "B1", delivered)
	w.openTestOrder(t, "B2", "1.00", "unpaid")
	b2 := tradeJSON(t, sb, "B2")[0]

	for name, c := range map[string]struct {
		no, action, id string
		header         []string
		status         int
	}{
		"no id":                {"B1", "resend", "", nil, http.StatusForbidden},
		"wrong id":             {"B1", "resend", "0123456789abcdef0123456789abcdef", nil, http.StatusForbidden},
		"another trade's id":   {"B1", "resend", b2.ID, nil, http.StatusForbidden},
		"refund, no id":        {"B1", "refund", "", nil, http.StatusForbidden},
		"refund, trade_no":     {"B1", "refund", b1.TradeNo, nil, http.StatusForbidden},
		"cross-site":           {"B1", "resend", b1.ID, []string{"Sec-Fetch-Site", "cross-site"}, http.StatusForbidden},
		"unpaid":               {"B2", "resend", b2.ID, nil, http.StatusConflict},
		"unknown out_trade_no": {"B3", "resend", b1.ID, nil, http.StatusForbidden},
	} {
		t.Run(name, func(t *testing.T) {
			rec := press(t, sb, c.no, c.action, c.id, c.header...)
			assert.Equal(t, c.status, rec.Code, rec.Body.String())
			assert.Empty(t, rec.Header().Get("Location"))
		})
	}
	d := tradeJSON(t, sb, "B1")[0]
	assert.Len(t, d.Attempts, 1, "no attempt was sent")
	assert.Len(t, d.Events, 1, "no refund: only the return")
	assert.Equal(t, "TRADE_SUCCESS", d.Status)

	// The id in the query rather than the form is not taken.
	rec := serve(t, sb, httptest.NewRequest("POST", "http://sandbox.test/sandbox/trades/B1/resend?id="+b1.ID, nil))
	assert.Equal(t, http.StatusForbidden, rec.Code)
	// JSON errors for JSON clients.
	r := httptest.NewRequest("POST", "http://sandbox.test/sandbox/trades/B1/resend", nil)
	r.Header.Set("Accept", "application/json")
	rec = serve(t, sb, r)
	assert.Equal(t, http.StatusForbidden, rec.Code)
	assert.Contains(t, rec.Body.String(), `"code": "FORBIDDEN"`)

	for _, c := range []struct {
		method, path string
		status       int
	}{
		{"GET", "/sandbox/trades/B1/resend", http.StatusMethodNotAllowed},
		{"POST", "/sandbox/trades/B1", http.StatusMethodNotAllowed},
		{"POST", "/sandbox/trades", http.StatusMethodNotAllowed},
		{"POST", "/sandbox/trades/B1/close", http.StatusNotFound},
		{"GET", "/sandbox/trades/B-1", http.StatusNotFound},
		{"GET", "/sandbox/trades/NOPE", http.StatusNotFound},
		{"GET", "/sandbox/tradesX", http.StatusNotFound}, // not the sandbox's: the next handler's
		{"GET", "/sandbox/trades/", http.StatusOK},
		{"HEAD", "/sandbox/trades/B1", http.StatusOK},
	} {
		rec := serve(t, sb, httptest.NewRequest(c.method, "http://sandbox.test"+c.path, nil))
		assert.Equal(t, c.status, rec.Code, c)
	}
	nope := tradesGet(t, sb, "/sandbox/trades/NOPE", true)
	assert.Equal(t, http.StatusNotFound, nope.Code)
	assert.Contains(t, nope.Body.String(), `"error": "the sandbox has no trade with out_trade_no NOPE`)
	assert.Contains(t, tradesGet(t, sb, "/sandbox/trades/NOPE", false).Body.String(), `<b id="error-code">TRADE_NOT_EXIST</b>`)
}

// A legacy trade's page: its attempts' notify_ids, fresh each time; an
// OpenAPI trade with the same out_trade_no is shown beside it.
func TestTradePageLegacy(t *testing.T) {
	w := newLegacyWorld(t, withRetry(time.Hour))
	m := w.merchant(t, protocol.SignTypeMD5, "gbk", legacyKeys{}, nil)
	// An OpenAPI trade L1 first, left unpaid.
	open := serve(t, w.sandbox, httptest.NewRequest("GET", signedPayURL(t, w.site.URL+"/alipay/notify", w.site.URL+"/alipay/return",
		map[string]any{"out_trade_no": "L1", "total_amount": "2.00", "subject": "OpenAPI L1"}), nil))
	require.Equal(t, http.StatusFound, open.Code, open.Body.String())

	w.shop.setStatus(http.StatusInternalServerError)
	subject := `會員價 <茶> "杯"`
	_, forms := w.cashier(t, w.request(t, w.payURL(t, m, map[string]any{"out_trade_no": "L1", "total_amount": "88.80", "subject": subject}), false))
	require.Equal(t, http.StatusFound, w.press(t, forms["pay"]).Code)
	w.shop.waitNotify(t)
	d := waitTrade(t, w.sandbox, "L1", waiting(1))
	assert.Equal(t, "legacy", d.Protocol)
	assert.Equal(t, w.vec.Partner, d.Partner)
	assert.Equal(t, "", d.AppID)
	assert.Equal(t, "create_direct_pay_by_user", d.Method)
	assert.Equal(t, subject, d.Subject)
	assert.Equal(t, "TRADE_FINISHED", d.Status)

	w.shop.setStatus(http.StatusOK)
	pressed(t, press(t, w.sandbox, "L1", "resend", d.ID), "L1")
	w.shop.waitNotify(t)
	trades := tradeJSON(t, w.sandbox, "L1")
	require.Len(t, trades, 2)
	d = trades[0]
	assert.Equal(t, "openapi", trades[1].Protocol)
	require.Len(t, d.Attempts, 2)
	assert.True(t, delivered(d))
	first, second := d.Attempts[0].NotifyID, d.Attempts[1].NotifyID
	assert.NotEmpty(t, first)
	assert.NotEmpty(t, second)
	assert.NotEqual(t, first, second, "each sending has a fresh notify_id")
	w.shop.mu.Lock()
	require.Len(t, w.shop.notify, 2, "the first failed on the shop's 500, after verifying")
	assert.Equal(t, second, w.shop.notify[1]["notify_id"])
	w.shop.mu.Unlock()
	require.Len(t, d.Events, 1)
	assert.Equal(t, "return", d.Events[0].Kind)
	assert.Contains(t, d.Events[0].Detail, "notify_id ", "the return's own notify_id")

	page := tradePage(t, w.sandbox, "L1")
	assert.Contains(t, page, "<th>notify_id</th></tr></thead>")
	assert.Contains(t, page, "<td><code>"+first+"</code></td>")
	assert.Contains(t, page, "<td><code>"+second+"</code></td>")
	assert.Contains(t, page, "legacy 即时到账 (create_direct_pay_by_user, gbk)")
	assert.Contains(t, page, "<th>partner</th><td><code>"+w.vec.Partner+"</code></td>")
	assert.Contains(t, page, html.EscapeString(subject))
	assert.Contains(t, page, "2 trades have this out_trade_no")
	assert.Contains(t, page, `id="resend"`)
	assert.Contains(t, page, `id="trade-`+trades[1].TradeNo+`"`, "the older trade's ids have its trade_no")
	assert.Contains(t, page, `id="refund"`, "a paid legacy trade can be refunded")
	assert.NotContains(t, page, `id="refund-`, "the OpenAPI one is unpaid")
	assert.NotContains(t, page, `id="resend-`, "nothing to send for the unpaid OpenAPI trade")
	// The trade list says which is which.
	list := tradesGet(t, w.sandbox, "/sandbox/trades", false).Body.String()
	assert.Contains(t, list, "<td>legacy 即时到账</td>")
	assert.Contains(t, list, "<td>OpenAPI</td>")
}
