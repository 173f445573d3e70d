package alipay

import (
	"bytes"
	"context"
	"errors"
	"html"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/caddy-alipay/caddy-alipay/internal/protocol"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"
)

// serveNotify verifies an asynchronous notification, hands it to the
// upstream and answers Alipay success only once the upstream acknowledged
// it.
func (h *Handler) serveNotify(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	ev := event{name: eventNotify}
	defer h.log(&ev)
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", "POST")
		return ev.reply(w, http.StatusMethodNotAllowed, outcomeInvalid, "method not allowed", "fail")
	}
	if r.ContentLength > protocol.MaxCallbackSize {
		return ev.reply(w, http.StatusRequestEntityTooLarge, outcomeInvalid, "body too large", "fail")
	}
	body, err := readWithin(w, r, protocol.MaxCallbackSize+1, h.notifyTimeout())
	if errors.Is(err, errTooSlow) {
		return ev.reply(w, http.StatusRequestTimeout, outcomeInvalid, "the body did not arrive within notify_timeout", "fail")
	}
	if err != nil {
		return ev.reply(w, http.StatusBadRequest, outcomeInvalid, "reading body: "+err.Error(), "fail")
	}
	if len(body) > protocol.MaxCallbackSize {
		return ev.reply(w, http.StatusRequestEntityTooLarge, outcomeInvalid, "body too large", "fail")
	}
	cb, err := h.verifyCallback(r.Context(), string(body), protocol.EventNotify, &ev)
	if err != nil {
		status, outcome := refusal(err)
		return ev.reply(w, status, outcome, err.Error(), "fail")
	}
	token := h.callbackToken(protocol.EventNotify, cb.Get("notify_id"), cb, "")

	// The upstream gets the body as read, with a length and no trailers
	// (Alipay sends none; a client's would travel on next to the token).
	offered := &offeredBody{r: bytes.NewReader(body)}
	r.Body = offered
	r.ContentLength = int64(len(body))
	r.TransferEncoding = nil
	r.Trailer = nil
	r.Header.Del("Content-Length")
	h.forward(r, h.ForwardNotify, token)

	// The upstream's answer is Alipay's business only as an
	// acknowledgement: its headers and body go nowhere. No answer at all
	// counts as failure, so a site without an upstream never tells Alipay
	// success; nor does one that answers without being offered the whole
	// notification (respond), nor a 2xx that does not acknowledge it (a
	// catch-all page, an SPA fallback, a default vhost).
	// The wait is bounded: past notify_timeout the request to the upstream
	// is cancelled and Alipay hears fail, so a hanging shop cannot hold
	// Alipay's connections.
	alipay := r.Context()
	ctx, cancel := context.WithTimeout(alipay, h.notifyTimeout())
	defer cancel()
	rec := &ackRecorder{header: make(http.Header)}
	start := time.Now()
	brokeOff, err := serveUpstream(next, rec, r.WithContext(ctx))
	h.metrics.upstreamTook(eventNotify, time.Since(start))
	answered2xx := err == nil && !brokeOff && rec.status >= 200 && rec.status <= 299
	switch {
	case alipay.Err() != nil:
		// Alipay hung up first: it will send the notification again, and
		// the shop is not to blame.
		return ev.reply(w, http.StatusBadGateway, outcomeAborted, "alipay closed the connection", "fail")
	case answered2xx && !offered.done.Load():
		ev.upstreamStatus = rec.status
		return ev.reply(w, http.StatusBadGateway, outcomeUpstreamFailed, "upstream answered 2xx before it was sent the whole notification", "fail")
	case answered2xx:
		if missing := h.acknowledgement(rec, cb.Get("notify_id")); missing != "" {
			ev.upstreamStatus = rec.status
			return ev.reply(w, http.StatusBadGateway, outcomeUnacknowledged, missing, "fail")
		}
	case ctx.Err() != nil:
		return ev.reply(w, http.StatusGatewayTimeout, outcomeUpstreamFailed,
			"upstream did not answer within notify_timeout ("+h.notifyTimeout().String()+"); its request was cancelled", "fail")
	case brokeOff:
		return ev.reply(w, http.StatusBadGateway, outcomeUpstreamFailed, "upstream broke off its answer", "fail")
	case err != nil:
		return ev.reply(w, http.StatusBadGateway, outcomeUpstreamFailed, "upstream: "+err.Error(), "fail")
	default:
		ev.upstreamStatus = rec.status
		return ev.reply(w, http.StatusBadGateway, outcomeUpstreamFailed, "upstream did not answer 2xx", "fail")
	}
	ev.outcome = outcomeOK
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(http.StatusOK)
	_, _ = io.WriteString(w, "success")
	return nil
}

// serveReturn verifies the synchronous return and hands it to the upstream,
// whose answer goes to the browser as it is.
func (h *Handler) serveReturn(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	ev := event{name: eventReturn}
	defer h.log(&ev)
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		return ev.reply(w, http.StatusMethodNotAllowed, outcomeInvalid, "method not allowed", "method not allowed\n")
	}
	cb, err := h.verifyCallback(r.Context(), r.URL.RawQuery, protocol.EventReturn, &ev)
	if err != nil {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		status, outcome := refusal(err)
		return ev.reply(w, status, outcome, err.Error(), returnErrorPage)
	}
	var tradeStatus string
	if h.QueryOnReturn {
		// Without an answer the claim is left out: the shop must not take
		// its absence for anything but "not known".
		if tradeStatus, err = h.queries.tradeStatus(r.Context(), h, cb.Get("out_trade_no"), cb.Get("trade_no")); err != nil {
			ev.reason = "query_on_return: " + err.Error()
		}
		ev.tradeStatus = tradeStatus
	}
	token := h.callbackToken(protocol.EventReturn, protocol.RandomID(), cb, tradeStatus)
	h.forward(r, h.ForwardReturn, token)

	// The upstream's answer goes to the browser as it is; the log says
	// whether there was one.
	rec := caddyhttp.NewResponseRecorder(w, nil, nil) // streams, keeping the status
	start := time.Now()
	brokeOff, err := serveUpstream(next, rec, r)
	h.metrics.upstreamTook(eventReturn, time.Since(start))
	switch {
	case brokeOff:
		ev.outcome, ev.reason, ev.upstreamStatus = outcomeUpstreamFailed, "upstream broke off its answer", rec.Status()
		// As reverse_proxy does: abort the browser's connection, so that
		// it does not take a truncated page for a whole one.
		panic(http.ErrAbortHandler)
	case err != nil:
		ev.outcome, ev.reason = outcomeUpstreamFailed, "upstream: "+err.Error()
	case rec.Status() >= 500:
		ev.outcome, ev.reason, ev.upstreamStatus = outcomeUpstreamFailed, "upstream answered 5xx", rec.Status()
	default:
		ev.outcome = outcomeOK
	}
	return err
}

var returnErrorPage = `<!doctype html><meta charset="utf-8"><title>Payment not confirmed</title>` +
	`<p>This payment result could not be confirmed. If you paid, your order will be updated shortly.</p>` +
	`<p>` + html.EscapeString("无法确认支付结果。如已付款，订单将很快更新。") + `</p>` + "\n"

// verifyCallback parses and verifies a callback as the protocol does:
// signature, merchant, confirmation. It fills ev for the log from what
// the callback says: its trade fields once verified, and otherwise the
// same fields as unverified ones, which the log names so, lest a search
// for a trade take a forgery for Alipay's word.
func (h *Handler) verifyCallback(ctx context.Context, raw, event string, ev *event) (*protocol.Callback, error) {
	cb, err := h.protocol.ParseCallback(raw)
	if err != nil {
		return nil, err
	}
	fields := tradeFields{cb.Get("out_trade_no"), cb.Get("trade_no"), cb.Get("trade_status"), cb.Amount(), cb.Get("batch_no")}
	if err := h.protocol.VerifyCallback(ctx, cb, event); err != nil {
		ev.unverified = fields
		return nil, err
	}
	ev.tradeFields = fields
	return cb, nil
}

// refusal is the answer to a callback that failed verifyCallback and its
// outcome: 400 and invalid when it is not even a well-formed callback;
// 502 and unconfirmed when Alipay could not be asked to confirm it, so
// that Alipay sends it again; 400 and refused otherwise.
func refusal(err error) (int, outcome) {
	switch {
	case errors.Is(err, protocol.ErrMalformed):
		return http.StatusBadRequest, outcomeInvalid
	case errors.Is(err, protocol.ErrNoConfirmation):
		return http.StatusBadGateway, outcomeUnconfirmed
	}
	return http.StatusBadRequest, outcomeRefused
}

// callbackToken makes the X-Alipay-Token of a verified callback: id is
// its jti, tradeStatus the query_on_return answer ("" for none).
func (h *Handler) callbackToken(event, id string, cb *protocol.Callback, tradeStatus string) string {
	t := now()
	cc := &protocol.CallbackClaims{Audience: h.protocol.Audience(), IssuedAt: t.Unix(),
		ExpiresAt: t.Add(protocol.TokenLifetime).Unix(), ID: id, Event: event, TradeStatus: tradeStatus}
	if name := h.protocol.Name(); name != "openapi" {
		cc.Protocol = name
	}
	token := h.tokens.SignCallback(cc, cb)
	if len(token) > largeToken {
		h.logger.Warn("X-Alipay-Token is larger than 8 KiB: servers that bound a request header to 8 KiB (nginx, Apache, gunicorn) or all of them to 16 KiB (Node.js) refuse it, and the callback fails until the shop's server accepts larger headers",
			zap.String("event", event), zap.Int("token_bytes", len(token)))
	}
	return token
}

// largeToken is the size past which a token is logged: real callbacks
// make tokens of about 3 KiB; 8 KiB is the header limit of nginx's
// large_client_header_buffers, Apache's LimitRequestFieldSize and
// gunicorn's limit_request_field_size.
const largeToken = 8 << 10

// forward readies r for the upstream: its path replaced if configured,
// the token set, and no header left that would route it elsewhere.
func (h *Handler) forward(r *http.Request, path, token string) {
	if path != "" {
		r.URL.Path = path
		r.URL.RawPath = ""
	}
	for _, name := range rewriteHeaders {
		r.Header.Del(name)
	}
	r.Header.Set(TokenHeader, token)
}

// acknowledgement says what the upstream's 2xx answer rec lacks to
// acknowledge the notification whose notify_id is id ("" if nothing):
// with notify_ack success (the default), a body that is success, as a
// shop answers Alipay itself, or the header X-Alipay-Ack: <id>; with
// notify_ack status, nothing.
func (h *Handler) acknowledgement(rec *ackRecorder, id string) string {
	if h.NotifyAck == notifyAckStatus {
		return ""
	}
	ack := rec.header.Values(AckHeader)
	switch {
	case len(ack) == 1 && strings.TrimSpace(ack[0]) == id:
		return ""
	case len(ack) > 0:
		return "upstream answered " + strconv.Itoa(rec.status) + " with an " + AckHeader + " that is not this notification's jti"
	case !rec.overflow && isSuccess(rec.body):
		return ""
	}
	return "upstream answered " + strconv.Itoa(rec.status) + " without acknowledging the notification: its body is not success and it has no " +
		AckHeader + " header with the token's jti (a misrouted request? notify_ack status accepts any 2xx)"
}

// isSuccess reports whether body is success, whitespace (and the byte
// order mark that some PHP editors write) around it aside.
func isSuccess(body []byte) bool {
	body = bytes.TrimPrefix(bytes.TrimSpace(body), []byte("\uFEFF"))
	return string(bytes.TrimSpace(body)) == "success"
}
