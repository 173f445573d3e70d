package sandbox

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/caddy-alipay/caddy-alipay/internal/protocol"
	"go.uber.org/zap"
)

// A notifyAttempt is one POST of a trade's notification to its
// notify_url, as the trade's page shows it.
type notifyAttempt struct {
	at       time.Time // when it was sent
	url      string
	status   int    // the shop's HTTP status; 0 when no answer came
	err      string // why no answer came (connection refused, a timeout)
	duration time.Duration
	answer   string // the answer's first bytes
	accepted bool   // the answer was success
	notifyID string // the notify_id it carried
	resend   bool   // sent by the page's send-again button
}

// maxAnswerPreview is how many bytes of the shop's answer an attempt
// keeps.
const maxAnswerPreview = 200

// deliver POSTs the trade's notification until the answer is exactly
// success: at once, then after each wait of the retry schedule. A resend
// from the trade's page while it waits takes the wait's place: the
// attempt is sent at once, as the schedule's next one. It ends with the
// config that started it, or when an attempt (its own or a resend's) is
// accepted.
func (s *Sandbox) deliver(t *trade) {
	var wake chan chan struct{} // nil for the first attempt: at once
	var wait time.Duration
	for n := 1; ; n++ {
		var done chan struct{} // a resend's, waiting for this attempt
		if wake != nil {
			var ok bool
			if done, ok = s.awaitAttempt(t, wake, wait); !ok {
				return
			}
		}
		a := s.notifyOnce(t, done != nil)
		wake, wait = s.trades.recordAttempt(t, a, n, s.retry)
		if done != nil {
			close(done)
		}
		s.logAttempt(t, a, n)
		if wake == nil {
			return
		}
	}
}

// awaitAttempt waits before the schedule's next attempt, until the wait
// is over or until a resend claims wake, and then returns the resend's
// channel, to close once the attempt is recorded. It returns false when
// the config has ended.
func (s *Sandbox) awaitAttempt(t *trade, wake chan chan struct{}, wait time.Duration) (done chan struct{}, ok bool) {
	timer := time.NewTimer(wait)
	defer timer.Stop()
	stopped := false
	select {
	case <-s.ctx.Done():
		stopped = true
	case <-timer.C:
	case done = <-wake:
	}
	s.trades.mu.Lock()
	claimed := t.wake == nil // a resend took wake, and sends on it
	t.wake = nil
	if stopped {
		t.next, t.nextNumber = time.Time{}, 0
	}
	s.trades.mu.Unlock()
	if claimed && done == nil {
		done = <-wake
	}
	if stopped {
		if done != nil {
			close(done)
		}
		return nil, false
	}
	return done, true
}

// resend sends t's notification once, now, for the page's send-again
// button, and returns once the attempt is recorded. If the retry loop is
// waiting, the attempt takes the wait's place: the loop sends it, and
// goes on with the rest of its schedule unless it is accepted. Otherwise
// (the loop is sending, or has ended) it is one attempt more, beside the
// schedule; if it is accepted, the loop sends no more.
func (s *Sandbox) resend(ctx context.Context, t *trade) {
	s.trades.mu.Lock()
	wake := t.wake
	t.wake = nil
	s.trades.mu.Unlock()
	if wake != nil {
		done := make(chan struct{})
		wake <- done // awaitAttempt receives it, in its select or after
		select {
		case <-done:
		case <-ctx.Done():
		}
		return
	}
	a := s.notifyOnce(t, true)
	s.trades.recordAttempt(t, a, 0, nil)
	s.logAttempt(t, a, 0)
}

// recordAttempt adds a to t's attempts. For attempt number n of the
// schedule (n 0: a resend beside it) it also moves the loop on, in the
// same step: if more attempts are due, it sets when the next one is and
// returns the channel by which a resend may take the wait's place, and
// the wait; if the loop has ended (delivered, or given up), nil.
func (ts *tradeStore) recordAttempt(t *trade, a notifyAttempt, n int, retry []time.Duration) (wake chan chan struct{}, wait time.Duration) {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	t.attempts = appendBounded(t.attempts, a)
	t.attemptsTotal++
	if a.accepted {
		t.delivered = true
	}
	if n == 0 {
		return nil, 0
	}
	if t.delivered || n > len(retry) {
		t.next, t.nextNumber = time.Time{}, 0
		t.gaveUp = !t.delivered
		return nil, 0
	}
	wait = retry[n-1]
	t.next, t.nextNumber = now().Add(wait), n+1
	t.wake = make(chan chan struct{})
	return t.wake, wait
}

// logAttempt logs a, attempt number n of the schedule (0: a resend
// beside it).
func (s *Sandbox) logAttempt(t *trade, a notifyAttempt, n int) {
	fields := []zap.Field{zap.String("out_trade_no", t.outTradeNo), zap.Int("attempt", n), zap.Bool("resend", a.resend)}
	if a.accepted {
		s.logger.Info("sandbox: notification accepted", fields...)
		return
	}
	reason := a.err
	if reason == "" {
		reason = fmt.Sprintf("answer %d %q", a.status, a.answer)
	}
	s.logger.Warn("sandbox: notification not accepted", append(fields, zap.String("error", reason))...)
}

// notifyOnce POSTs t's notification once and returns what happened.
func (s *Sandbox) notifyOnce(t *trade, resend bool) notifyAttempt {
	at := now()
	a := notifyAttempt{at: at, url: t.notifyURL, resend: resend}
	var form string
	var err error
	charset := "utf-8"
	if t.legacy != nil {
		form, charset, a.notifyID, err = s.legacyNotification(t, at)
	} else {
		form, a.notifyID, err = s.notification(t, at)
	}
	if err != nil {
		a.err = "signing the notification: " + err.Error()
		return a
	}
	req, err := http.NewRequestWithContext(s.ctx, http.MethodPost, t.notifyURL, strings.NewReader(form))
	if err != nil {
		a.err = err.Error()
		return a
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded; charset="+charset)
	start := time.Now()
	resp, err := s.client.Do(req)
	if err != nil {
		a.duration = time.Since(start)
		a.err = networkError(err)
		return a
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
	a.duration = time.Since(start)
	a.status = resp.StatusCode
	preview := body
	if len(preview) > maxAnswerPreview {
		preview = preview[:maxAnswerPreview]
	}
	a.answer = strings.ToValidUTF8(string(preview), "\ufffd")
	a.accepted = strings.TrimSpace(string(body)) == "success"
	return a
}

// networkError is why a POST got no answer, without the method and URL
// that the page shows beside it: "dial tcp 127.0.0.1:8080: connect:
// connection refused", a timeout.
func networkError(err error) string {
	var ue *url.Error
	if errors.As(err, &ue) {
		if ue.Timeout() {
			return "timeout: " + ue.Err.Error()
		}
		return ue.Err.Error()
	}
	return err.Error()
}

// notification is the form body of a trade_status_sync notification, with
// the fields Alipay sends, signed as Alipay signs it: sign_type and empty
// values left out of the string. It tells of the payment: a retry sent
// after a refund or a close still says TRADE_SUCCESS, as Alipay's does.
func (s *Sandbox) notification(t *trade, at time.Time) (form, notifyID string, err error) {
	s.trades.mu.Lock()
	p := map[string]string{
		"notify_time": protocol.Timestamp(at), "notify_type": "trade_status_sync", "notify_id": t.notifyID,
		"app_id": t.appID, "auth_app_id": t.appID, "charset": "utf-8", "version": "1.0",
		"trade_no": t.tradeNo, "out_trade_no": t.outTradeNo,
		"buyer_id": sandboxBuyerID, "buyer_logon_id": sandboxBuyerLogon,
		"seller_id": sandboxSellerID, "seller_email": sandboxSellerEmail,
		"trade_status": "TRADE_SUCCESS", "total_amount": t.amount.String(), "receipt_amount": t.amount.String(),
		"invoice_amount": t.amount.String(), "buyer_pay_amount": t.amount.String(), "point_amount": "0.00",
		"subject": t.subject, "body": t.body, "passback_params": t.passback,
		"gmt_create": protocol.Timestamp(t.created), "gmt_payment": protocol.Timestamp(t.paid),
		"fund_bill_list": `[{"amount":"` + t.amount.String() + `","fundChannel":"ALIPAYACCOUNT"}]`,
	}
	signType := t.signType
	s.trades.mu.Unlock()
	form, err = s.signCallback(p, signType)
	return form, p["notify_id"], err
}

// returnQuery is the query Alipay's return carries: no trade_status.
func (s *Sandbox) returnQuery(t *trade) (string, error) {
	s.trades.mu.Lock()
	p := map[string]string{
		"charset": "utf-8", "out_trade_no": t.outTradeNo, "method": t.method + ".return",
		"total_amount": t.amount.String(), "trade_no": t.tradeNo, "auth_app_id": t.appID, "version": "1.0",
		"app_id": t.appID, "seller_id": sandboxSellerID, "timestamp": protocol.Timestamp(now()),
	}
	signType := t.signType
	s.trades.mu.Unlock()
	return s.signCallback(p, signType)
}

// signCallback signs p as Alipay signs callbacks (V1) and form-encodes it.
func (s *Sandbox) signCallback(p map[string]string, signType string) (string, error) {
	signer := s.signers[signType]
	sign, err := signer.Sign(protocol.RequestContent(p))
	if err != nil {
		return "", err
	}
	v := url.Values{}
	for k, val := range p {
		if val != "" {
			v.Set(k, val)
		}
	}
	v.Set("sign_type", signType)
	v.Set("sign", sign)
	return v.Encode(), nil
}
