package alipay

import (
	"io"
	"net/http"

	"github.com/caddy-alipay/caddy-alipay/internal/protocol"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// event is one pay, notify or return, for its log line and counter.
type event struct {
	name    string
	method  string // api: the OpenAPI method
	outcome outcome
	reason  string
	tradeFields
	// unverified: what a refused callback claims, logged under names
	// that say so.
	unverified     tradeFields
	upstreamStatus int
}

// tradeFields are the trade an event is about, and for a legacy refund
// its batch.
type tradeFields struct {
	outTradeNo, tradeNo, tradeStatus, totalAmount, batchNo string
}

// reply records the outcome and writes a short answer. reason goes to the
// log only; body is what the client sees.
//
// Unlike most Caddy handlers, failures are answered here rather than
// returned as caddyhttp.Error for handle_errors: Alipay must read exactly
// "fail" from a notification's answer, and a buyer sent back from Alipay
// should see a page that says what happened, not an empty error.
func (ev *event) reply(w http.ResponseWriter, status int, o outcome, reason, body string) error {
	ev.outcome, ev.reason = o, reason
	if w.Header().Get("Content-Type") == "" {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	}
	w.Header().Set("Cache-Control", "no-store")
	// A refusal may name what a client sent wrong: never a page to sniff.
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, _ = io.WriteString(w, body)
	return nil
}

// replyJSON is reply for the API, whose clients read JSON.
func (ev *event) replyJSON(w http.ResponseWriter, status int, o outcome, reason string, body map[string]string) error {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	b, _ := protocol.MarshalJSON(body) // an error may quote the shop's own <, > or &
	return ev.reply(w, status, o, reason, string(b)+"\n")
}

// log writes the event's one line and counts it. Never a key, the
// secret, a sign or a token: only ids, status, amount and outcome.
func (h *Handler) log(ev *event) {
	h.metrics.count(ev.name, ev.outcome)
	level := zapcore.InfoLevel
	if ev.outcome != outcomeOK || ev.reason != "" {
		level = zapcore.WarnLevel
	}
	ce := h.logger.Check(level, ev.name)
	if ce == nil {
		return
	}
	fields := make([]zap.Field, 0, 14)
	fields = append(fields, zap.String("event", ev.name), zap.String("outcome", string(ev.outcome)))
	for _, f := range []struct{ k, v string }{
		{"method", ev.method},
		{"out_trade_no", ev.outTradeNo}, {"trade_no", ev.tradeNo},
		{"trade_status", ev.tradeStatus}, {"total_amount", ev.totalAmount}, {"batch_no", ev.batchNo},
		{"unverified_out_trade_no", ev.unverified.outTradeNo}, {"unverified_trade_no", ev.unverified.tradeNo},
		{"unverified_trade_status", ev.unverified.tradeStatus}, {"unverified_total_amount", ev.unverified.totalAmount},
		{"unverified_batch_no", ev.unverified.batchNo},
		{"reason", ev.reason},
	} {
		if f.v != "" {
			fields = append(fields, zap.String(f.k, f.v))
		}
	}
	if ev.upstreamStatus != 0 {
		fields = append(fields, zap.Int("upstream_status", ev.upstreamStatus))
	}
	ce.Write(fields...)
}
