package sandbox

import (
	"fmt"
	"html"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/caddy-alipay/caddy-alipay/internal/protocol"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The notifier: the retry schedule, what each attempt records for the
// trade's page, and the page's Send again.

// The shop is down for the first notification: the sandbox retries on its
// schedule, with the same notify_id, until the shop says success.
func TestSandboxRetriesUntilSuccess(t *testing.T) {
	w := newWorld(t, withRetry(20*time.Millisecond, 20*time.Millisecond, 20*time.Millisecond))
	w.shop.setStatus(500)
	_, forms := w.cashier(t, w.startPay(t, map[string]any{"out_trade_no": "S2", "total_amount": "1", "subject": "retry"}))
	w.postCashier(t, forms["pay"])
	w.shop.waitNotify(t)
	w.shop.setStatus(200)
	w.shop.waitNotify(t)
	time.Sleep(100 * time.Millisecond) // room for a wrong extra attempt
	w.shop.mu.Lock()
	defer w.shop.mu.Unlock()
	require.Len(t, w.shop.notify, 2, "sent until success, then no more")
	assert.Equal(t, w.shop.notify[0]["notify_id"], w.shop.notify[1]["notify_id"], "a retry keeps its notify_id")
}

// A shop that never answers success gets 1 + len(notify_retry) attempts.
func TestSandboxGivesUp(t *testing.T) {
	w := newWorld(t, withRetry(time.Millisecond, time.Millisecond))
	w.shop.setStatus(503)
	_, forms := w.cashier(t, w.startPay(t, map[string]any{"out_trade_no": "S3", "total_amount": "1", "subject": "never"}))
	w.postCashier(t, forms["pay"])
	for range 3 {
		w.shop.waitNotify(t)
	}
	select {
	case <-w.shop.arrived:
		t.Fatal("a fourth attempt")
	case <-time.After(200 * time.Millisecond):
	}
}

// The shop fails the first notification: the page shows the failed
// attempt and the next one on the schedule (by the package clock). Send
// again, once the shop is back: accepted at once, and nothing more is
// scheduled.
func TestTradePageFailedAttemptThenResend(t *testing.T) {
	advanceClock(t, 3*time.Hour) // the page's times are the sandbox's clock's
	w := newWorld(t, withRetry(time.Hour, time.Hour))
	w.shop.setStatus(http.StatusInternalServerError)
	pay := w.openTestOrder(t, "R1", "9.90", "retry")
	require.Equal(t, http.StatusFound, w.postCashier(t, pay).Code)
	w.shop.waitNotify(t)
	d := waitTrade(t, w.sandbox, "R1", waiting(1))

	a := d.Attempts[0]
	require.NotNil(t, a.Status)
	assert.Equal(t, 500, *a.Status)
	assert.Equal(t, "", a.Error)
	assert.Equal(t, "fail", a.Answer)
	assert.False(t, a.Accepted)
	assert.False(t, a.Resend)
	assert.Equal(t, w.site.URL+"/alipay/notify", a.URL)
	assert.GreaterOrEqual(t, a.DurationMS, int64(0))
	w.shop.mu.Lock()
	assert.Equal(t, w.shop.notify[0]["notify_id"], a.NotifyID)
	w.shop.mu.Unlock()
	at := parseRFC3339(t, a.At)
	assert.WithinDuration(t, now(), at, 5*time.Second, "the package clock, 3 h ahead of the real one")
	assert.WithinDuration(t, now().Add(time.Hour), parseRFC3339(t, *d.NextAttempt), 5*time.Second)
	assert.False(t, d.Delivered)
	assert.False(t, d.GivenUp)
	assert.Equal(t, 1, d.AttemptsTotal)
	assert.False(t, nothingLeftToSend(tradeListJSON(t, w.sandbox)))

	page := tradePage(t, w.sandbox, "R1")
	assert.Contains(t, page, "<td>HTTP 500</td>")
	assert.Contains(t, page, "<code>fail</code>")
	assert.Contains(t, page, "✗ not accepted")
	assert.Contains(t, page, "attempt 2 of 3 on the schedule, at "+protocol.Timestamp(parseRFC3339(t, *d.NextAttempt)))
	assert.Contains(t, page, `<span id="next-attempt" class="muted">`)
	assert.Contains(t, page, `id="resend"`)
	assert.Contains(t, page, `id="refund"`)
	assert.Contains(t, page, "in place of the wait")
	forms := hiddenIDRE.FindAllStringSubmatch(page, -1)
	require.Len(t, forms, 2)
	for _, f := range forms {
		assert.Equal(t, "R1", f[1])
		assert.Equal(t, d.ID, f[3], "each form carries the cashier id")
	}
	assert.Equal(t, strings.TrimPrefix(strings.TrimSuffix(pay, "/pay"), cashierPrefix), d.ID)

	w.shop.setStatus(http.StatusOK)
	pressed(t, press(t, w.sandbox, "R1", "resend", d.ID), "R1")
	w.shop.waitNotify(t) // it came before the 303
	d = tradeJSON(t, w.sandbox, "R1")[0]
	require.Len(t, d.Attempts, 2)
	b := d.Attempts[1]
	assert.True(t, b.Accepted)
	assert.True(t, b.Resend)
	assert.Equal(t, 200, *b.Status)
	assert.Equal(t, "success", b.Answer)
	assert.Equal(t, a.NotifyID, b.NotifyID, "OpenAPI: the trade's one notify_id")
	assert.Nil(t, d.NextAttempt, "nothing more is scheduled")
	assert.True(t, d.Delivered)
	assert.False(t, d.GivenUp)
	assert.True(t, nothingLeftToSend(tradeListJSON(t, w.sandbox)))

	page = tradePage(t, w.sandbox, "R1")
	assert.Contains(t, page, "Delivered 已送达")
	assert.Contains(t, page, `<span class="tag">send again</span>`)
	assert.Contains(t, page, "✓ accepted")
	assert.NotContains(t, page, `id="next-attempt"`)
	assert.Contains(t, page, "Sends one attempt more", "a resend now is beside the schedule")
	w.shop.mu.Lock()
	assert.Len(t, w.shop.notify, 2)
	w.shop.mu.Unlock()
}

// A resend while the loop waits is the schedule's next attempt: the rest
// of the schedule follows it, to its end; after that a resend is one
// attempt more.
func TestTradePageResendTakesTheWaitsPlace(t *testing.T) {
	w := newWorld(t, withRetry(time.Hour, time.Hour))
	w.shop.setStatus(http.StatusServiceUnavailable)
	pay := w.openTestOrder(t, "R2", "1.00", "resend")
	w.postCashier(t, pay)
	w.shop.waitNotify(t)
	d := waitTrade(t, w.sandbox, "R2", waiting(1))

	pressed(t, press(t, w.sandbox, "R2", "resend", d.ID), "R2")
	d = tradeJSON(t, w.sandbox, "R2")[0]
	require.Len(t, d.Attempts, 2)
	assert.False(t, d.Attempts[1].Accepted)
	require.NotNil(t, d.NextAttempt, "the schedule goes on")
	assert.WithinDuration(t, now().Add(time.Hour), parseRFC3339(t, *d.NextAttempt), 5*time.Second, "after its next wait")
	assert.Contains(t, tradePage(t, w.sandbox, "R2"), "attempt 3 of 3 on the schedule")

	pressed(t, press(t, w.sandbox, "R2", "resend", d.ID), "R2")
	d = tradeJSON(t, w.sandbox, "R2")[0]
	require.Len(t, d.Attempts, 3)
	assert.Nil(t, d.NextAttempt, "that was the schedule's last")
	assert.True(t, d.GivenUp)
	assert.False(t, d.Delivered)
	assert.Contains(t, tradePage(t, w.sandbox, "R2"), "Given up 已放弃: none of the 3 attempts")
	assert.True(t, nothingLeftToSend(tradeListJSON(t, w.sandbox)))

	w.shop.setStatus(http.StatusOK)
	pressed(t, press(t, w.sandbox, "R2", "resend", d.ID), "R2")
	d = tradeJSON(t, w.sandbox, "R2")[0]
	require.Len(t, d.Attempts, 4)
	assert.True(t, d.Attempts[3].Accepted)
	assert.True(t, d.Delivered)
	assert.Nil(t, d.NextAttempt)
	for range 3 { // the resends'
		w.shop.waitNotify(t)
	}
}

// An accepted resend stops the schedule: no attempt follows it, though
// the schedule's next waits are short.
func TestTradePageResendStopsTheSchedule(t *testing.T) {
	w := newWorld(t, withRetry(time.Hour, 20*time.Millisecond, 20*time.Millisecond))
	w.shop.setStatus(http.StatusInternalServerError)
	w.postCashier(t, w.openTestOrder(t, "R3", "1.00", "stop"))
	w.shop.waitNotify(t)
	d := waitTrade(t, w.sandbox, "R3", waiting(1))
	w.shop.setStatus(http.StatusOK)
	pressed(t, press(t, w.sandbox, "R3", "resend", d.ID), "R3")
	w.shop.waitNotify(t)
	select {
	case <-w.shop.arrived:
		t.Fatal("the schedule went on after an accepted resend")
	case <-time.After(150 * time.Millisecond):
	}
	d = tradeJSON(t, w.sandbox, "R3")[0]
	assert.Len(t, d.Attempts, 2)
	assert.True(t, delivered(d))
}

// Until the first attempt is answered, next_attempt says that one is
// due: a script that waits for next_attempt null everywhere waits for it.
func TestTradePagesNothingLeftToSend(t *testing.T) {
	w := newWorld(t, withRetry(time.Hour))
	release := make(chan struct{})
	hold := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		<-release
		_, _ = io.WriteString(rw, "success")
	}))
	defer hold.Close()
	defer func() {
		select {
		case <-release:
		default:
			close(release)
		}
	}()
	_, forms := w.cashier(t, w.gateway(t, "GET", payURL(t, w.api, hold.URL+"/notify", w.site.URL+"/alipay/return",
		map[string]any{"out_trade_no": "N1", "total_amount": "1.00", "subject": "held"}), ""))
	w.openTestOrder(t, "N2", "1.00", "unpaid")
	assert.True(t, nothingLeftToSend(tradeListJSON(t, w.sandbox)), "unpaid trades have nothing to send")

	require.Equal(t, http.StatusFound, w.postCashier(t, forms["pay"]).Code)
	doc := tradeListJSON(t, w.sandbox)
	assert.False(t, nothingLeftToSend(doc), "paid: the first attempt is due")
	d := tradeJSON(t, w.sandbox, "N1")[0]
	require.NotNil(t, d.NextAttempt)
	assert.Contains(t, tradePage(t, w.sandbox, "N1"), "Sending attempt 1 of 2")
	close(release)
	d = waitTrade(t, w.sandbox, "N1", delivered)
	assert.Len(t, d.Attempts, 1)
	assert.True(t, nothingLeftToSend(tradeListJSON(t, w.sandbox)))
}

// A trade keeps its latest maxTradeLog attempts and events, and says how
// many there were.
func TestTradePageLogBounded(t *testing.T) {
	w := newWorld(t, nil)
	w.postCashier(t, w.openTestOrder(t, "G1", "1.00", "many"))
	w.shop.waitNotify(t)
	d := waitTrade(t, w.sandbox, "G1", delivered)
	extra := maxTradeLog + 5
	for range extra {
		pressed(t, press(t, w.sandbox, "G1", "resend", d.ID), "G1")
		w.shop.waitNotify(t)
		apiCall(t, w.sandbox, "alipay.trade.query", map[string]any{"out_trade_no": "G1"})
	}
	d = tradeJSON(t, w.sandbox, "G1")[0]
	assert.Len(t, d.Attempts, maxTradeLog)
	assert.Equal(t, extra+1, d.AttemptsTotal)
	assert.True(t, d.Attempts[maxTradeLog-1].Resend)
	assert.Len(t, d.Events, maxTradeLog)
	assert.Equal(t, extra+1, d.EventsTotal)
	assert.Equal(t, "alipay.trade.query", d.Events[0].Kind, "the return is forgotten")
	page := tradePage(t, w.sandbox, "G1")
	assert.Contains(t, page, fmt.Sprintf("%d attempts in all; the latest %d are kept.", extra+1, maxTradeLog))
	assert.Contains(t, page, fmt.Sprintf(`<td class="nowrap">%d<span`, extra+1-maxTradeLog+1), "numbered among all attempts")
	assert.NotContains(t, page, fmt.Sprintf(`<td class="nowrap">%d<span`, extra+1-maxTradeLog))
}

// A shop that does not answer at all: the attempt shows the network
// error.
func TestTradePageNetworkError(t *testing.T) {
	w := newWorld(t, withRetry(time.Hour))
	down := httptest.NewServer(http.NotFoundHandler())
	downURL := down.URL
	down.Close()
	_, forms := w.cashier(t, w.gateway(t, "GET", payURL(t, w.api, downURL+"/notify", w.site.URL+"/alipay/return",
		map[string]any{"out_trade_no": "E1", "total_amount": "1.00", "subject": "down"}), ""))
	w.postCashier(t, forms["pay"])
	d := waitTrade(t, w.sandbox, "E1", waiting(1))
	a := d.Attempts[0]
	assert.Nil(t, a.Status)
	assert.Contains(t, a.Error, "connection refused")
	assert.NotContains(t, a.Error, "Post ", "the URL is beside it")
	assert.False(t, a.Accepted)
	page := tradePage(t, w.sandbox, "E1")
	assert.Contains(t, page, `<span class="bad">`+html.EscapeString(a.Error)+`</span>`)
}
