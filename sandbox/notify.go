package sandbox

import (
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/caddy-alipay/caddy-alipay/internal/protocol"
	"go.uber.org/zap"
)

// The notifier: each notification's retry loop, its attempts, and the
// trade page's Send again. What each notification tells is fixed when it
// is made (notices.go); each sending adds notify_time (and, for the
// legacy gateway, a fresh notify_id) and signs it.

// maxAnswerPreview is how many bytes of the shop's answer an attempt
// keeps.
const maxAnswerPreview = 200

// deliver is n's retry loop, started when n is made: it POSTs the
// notification until the answer is exactly success, at once and then
// after each wait of the current sandbox's notify_retry. A resend from
// the trade's page while it waits takes the wait's place (resend). It
// runs on the store's lifetime, not a config's, so a reload does not
// stop it (pool.go); each attempt reads the current sandbox's settings.
// It ends when an attempt (its own or a resend's) is accepted, when the
// schedule ends, or when the last sandbox lets go of the store.
func (ts *tradeStore) deliver(n *notification) {
	defer ts.loops.Done()
	for {
		number, due, ok := ts.scheduled(n)
		switch {
		case !ok:
			return
		case ts.ctx.Err() != nil: // the store has stopped
			ts.endLoop(n)
			return
		case number == 0: // a resend sends the attempt: wait for it
			if !ts.await(n, -1) {
				return
			}
		case due.After(now()):
			if !ts.await(n, due.Sub(now())) {
				return
			}
		case ts.claim(n, number):
			h := ts.current()
			a := h.notifyOnce(n, false)
			ts.recordAttempt(n, a, number)
			h.logAttempt(n, a, number)
		}
	}
}

// await waits d (d < 0: with no time limit) or until a resend moves n's
// schedule, and returns false once the store has stopped.
func (ts *tradeStore) await(n *notification, d time.Duration) bool {
	var timeout <-chan time.Time
	if d >= 0 {
		timer := time.NewTimer(d)
		defer timer.Stop()
		timeout = timer.C
	}
	select {
	case <-ts.ctx.Done():
		ts.endLoop(n)
		return false
	case <-n.wake:
	case <-timeout:
	}
	return true
}

// resend sends n once, now, for the page's send-again button, and
// returns once the attempt is recorded. If the retry loop is waiting,
// the attempt takes the wait's place: it is the schedule's next one, and
// the loop goes on with the rest of the schedule unless it is accepted.
// Otherwise (the loop is sending, or has ended) it is one attempt more,
// beside the schedule; if it is accepted, the loop sends no more.
func (h *Handler) resend(n *notification) {
	number := h.trades.claimForResend(n, now())
	a := h.notifyOnce(n, true)
	h.trades.recordAttempt(n, a, number)
	h.logAttempt(n, a, number)
}

// logAttempt logs a, attempt number of n's schedule (0: a resend beside
// it).
func (h *Handler) logAttempt(n *notification, a notifyAttempt, number int) {
	fields := []zap.Field{zap.String("notify_type", n.notifyType), zap.String("about", n.about),
		zap.String("out_trade_no", n.outTradeNo), zap.Int("attempt", number), zap.Bool("resend", a.resend)}
	if n.batchNo != "" {
		fields = append(fields, zap.String("batch_no", n.batchNo))
	}
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

// notifyOnce POSTs n once and returns what happened. It runs on the
// store's context, so that the attempt is made and recorded even if the
// page that asked for it goes away, and stops with the store.
func (h *Handler) notifyOnce(n *notification, resend bool) notifyAttempt {
	at := now()
	a := notifyAttempt{at: at, url: n.url, resend: resend}
	form, notifyID, err := h.noteForm(n, at)
	a.notifyID = notifyID
	if err != nil {
		a.err = "signing the notification: " + err.Error()
		return a
	}
	req, err := http.NewRequestWithContext(h.trades.ctx, http.MethodPost, n.url, strings.NewReader(form))
	if err != nil {
		a.err = err.Error()
		return a
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded; charset="+n.charset)
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

// noteForm is the form body of one sending of n, at at, signed as Alipay
// signs it: OpenAPI's with the notification's one notify_id, sign_type
// and empty values left out of the string; a legacy one encoded and
// signed in its charset, with a fresh notify_id that notify_verify then
// confirms.
func (h *Handler) noteForm(n *notification, at time.Time) (form, notifyID string, err error) {
	p := maps.Clone(n.fields)
	p["notify_time"] = protocol.Timestamp(at)
	if n.legacy {
		p["notify_id"] = h.trades.sent.add(at)
		form, err = h.signLegacy(p, n.charset, n.signType)
		return form, p["notify_id"], err
	}
	p["notify_id"] = n.notifyID
	form, err = h.signCallback(p, n.signType)
	return form, n.notifyID, err
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

// returnQuery is the query Alipay's return carries: no trade_status.
func (h *Handler) returnQuery(t tradeSnapshot) (string, error) {
	p := map[string]string{
		"charset": "utf-8", "out_trade_no": t.outTradeNo, "method": t.method + ".return",
		"total_amount": t.amount.String(), "trade_no": t.tradeNo, "auth_app_id": t.appID, "version": "1.0",
		"app_id": t.appID, "seller_id": sandboxSellerID, "timestamp": protocol.Timestamp(now()),
	}
	return h.signCallback(p, t.signType)
}

// signCallback signs p as Alipay signs OpenAPI callbacks (V1: sign_type
// and empty values left out of the string) and form-encodes it.
func (h *Handler) signCallback(p map[string]string, signType string) (string, error) {
	signer := h.signers[signType]
	if signer == nil {
		return "", fmt.Errorf("no signer for sign_type %q", signType)
	}
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
