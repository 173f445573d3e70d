package sandbox

import (
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

// deliver is t's retry loop, started when t is paid: it POSTs the
// notification until the answer is exactly success, at once and then
// after each wait of the current sandbox's notify_retry. A resend from
// the trade's page while it waits takes the wait's place (resend). It
// runs on the store's lifetime, not a config's, so a reload does not
// stop it (pool.go); each attempt reads the current sandbox's settings.
// It ends when an attempt (its own or a resend's) is accepted, when the
// schedule ends, or when the last sandbox lets go of the store.
func (ts *tradeStore) deliver(t *trade) {
	defer ts.loops.Done()
	for {
		n, due, ok := ts.scheduled(t)
		switch {
		case !ok:
			return
		case ts.ctx.Err() != nil: // the store has stopped
			ts.endLoop(t)
			return
		case n == 0: // a resend sends the attempt: wait for it
			if !ts.await(t, -1) {
				return
			}
		case due.After(now()):
			if !ts.await(t, due.Sub(now())) {
				return
			}
		case ts.claim(t, n):
			h := ts.current()
			a := h.notifyOnce(t, false)
			ts.recordAttempt(t, a, n)
			h.logAttempt(t, a, n)
		}
	}
}

// await waits d (d < 0: with no time limit) or until a resend moves t's
// schedule, and returns false once the store has stopped.
func (ts *tradeStore) await(t *trade, d time.Duration) bool {
	var timeout <-chan time.Time
	if d >= 0 {
		timer := time.NewTimer(d)
		defer timer.Stop()
		timeout = timer.C
	}
	select {
	case <-ts.ctx.Done():
		ts.endLoop(t)
		return false
	case <-t.wake:
	case <-timeout:
	}
	return true
}

// resend sends t's notification once, now, for the page's send-again
// button, and returns once the attempt is recorded. If the retry loop is
// waiting, the attempt takes the wait's place: it is the schedule's next
// one, and the loop goes on with the rest of the schedule unless it is
// accepted. Otherwise (the loop is sending, or has ended) it is one
// attempt more, beside the schedule; if it is accepted, the loop sends
// no more.
func (h *Handler) resend(t *trade) {
	n := h.trades.claimForResend(t, now())
	a := h.notifyOnce(t, true)
	h.trades.recordAttempt(t, a, n)
	h.logAttempt(t, a, n)
}

// logAttempt logs a, attempt number n of the schedule (0: a resend
// beside it).
func (h *Handler) logAttempt(t *trade, a notifyAttempt, n int) {
	fields := []zap.Field{zap.String("out_trade_no", t.outTradeNo), zap.Int("attempt", n), zap.Bool("resend", a.resend)}
	if a.accepted {
		h.logger.Info("sandbox: notification accepted", fields...)
		return
	}
	reason := a.err
	if reason == "" {
		reason = fmt.Sprintf("answer %d %q", a.status, a.answer)
	}
	h.logger.Warn("sandbox: notification not accepted", append(fields, zap.String("error", reason))...)
}

// notifyOnce POSTs t's notification once and returns what happened. It
// runs on the store's context, so that the attempt is made and recorded
// even if the page that asked for it goes away, and stops with the store.
func (h *Handler) notifyOnce(t *trade, resend bool) notifyAttempt {
	at := now()
	a := notifyAttempt{at: at, url: t.notifyURL, resend: resend}
	var form string
	var err error
	charset := "utf-8"
	if snap := h.trades.snapshot(t); t.legacy != nil {
		form, charset, a.notifyID, err = h.legacyNotification(snap, at)
	} else {
		form, a.notifyID, err = h.notification(snap, at)
	}
	if err != nil {
		a.err = "signing the notification: " + err.Error()
		return a
	}
	req, err := http.NewRequestWithContext(h.trades.ctx, http.MethodPost, t.notifyURL, strings.NewReader(form))
	if err != nil {
		a.err = err.Error()
		return a
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded; charset="+charset)
	start := time.Now()
	resp, err := h.client.Do(req)
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
func (h *Handler) notification(t tradeSnapshot, at time.Time) (form, notifyID string, err error) {
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
	form, err = h.signCallback(p, t.signType)
	return form, p["notify_id"], err
}

// returnQuery is the query Alipay's return carries: no trade_status.
func (h *Handler) returnQuery(t tradeSnapshot) (string, error) {
	p := map[string]string{
		"charset": "utf-8", "out_trade_no": t.outTradeNo, "method": t.method + ".return",
		"total_amount": t.amount.String(), "trade_no": t.tradeNo, "auth_app_id": t.appID, "version": "1.0",
		"app_id": t.appID, "seller_id": sandboxSellerID, "timestamp": protocol.Timestamp(now()),
	}
	return h.signCallback(p, t.signType)
}

// signCallback signs p as Alipay signs callbacks (V1) and form-encodes it.
func (h *Handler) signCallback(p map[string]string, signType string) (string, error) {
	signer := h.signers[signType]
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
