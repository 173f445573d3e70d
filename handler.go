package alipay

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"html"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// TokenHeader is the request header that carries a verified callback to
// the upstream.
const TokenHeader = "X-Alipay-Token"

// tokenLifetime is how long an X-Alipay-Token is valid after it is made.
const tokenLifetime = 5 * time.Minute

// maxPayBody bounds a POSTed pay form: a token and little else.
const maxPayBody = 64 << 10

// now is the clock; tests replace it.
var now = time.Now

// ServeHTTP implements caddyhttp.MiddlewareHandler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	// Strip first, on every request: the upstream must only ever see a
	// token that this handler made.
	stripAlipayHeaders(r.Header)
	stripAlipayTrailers(r)
	h.site.check(r, h)
	ep, method := h.router.match(r.URL.Path)
	if ep == notAnEndpoint {
		return next.ServeHTTP(w, r)
	}
	if h.matchers != nil {
		matched, err := h.matchers.AnyMatchWithError(r)
		if err != nil {
			return caddyhttp.Error(http.StatusInternalServerError, err)
		}
		if !matched {
			// Passing it on would let a forged callback reach the shop
			// on a path that the shop may route to its Alipay view.
			h.logger.Warn("refused: the path is one of the endpoints, but the alipay matcher does not match the request",
				zap.String("path", r.URL.Path))
			http.Error(w, "not found", http.StatusNotFound)
			return nil
		}
	}
	switch ep {
	case endpointPay:
		return h.servePay(w, r)
	case endpointNotify:
		return h.serveNotify(w, r, next)
	case endpointReturn:
		return h.serveReturn(w, r, next)
	default:
		return h.serveAPI(w, r, method)
	}
}

// stripAlipayHeaders deletes every header that a CGI or PHP upstream would
// read as X-Alipay-*: the name compared case-insensitively, with _ and .
// standing for -. It allocates nothing.
func stripAlipayHeaders(hdr http.Header) {
	for name := range hdr {
		if isAlipayHeader(name) {
			delete(hdr, name)
		}
	}
}

// stripAlipayTrailers strips a request's X-Alipay-* trailers. net/http
// fills in the values of the trailers that a chunked request declared only
// when its body is read to the end, which happens after this handler ran,
// while reverse_proxy sends the body on (and then forwards those
// trailers); so they are stripped again at the end of the body. Trailers
// that a request did not declare land in net/http's own copy of the
// request, which neither handlers nor reverse_proxy read.
func stripAlipayTrailers(r *http.Request) {
	if r.Trailer == nil {
		return
	}
	stripAlipayHeaders(r.Trailer)
	if r.Body != nil && r.Body != http.NoBody {
		r.Body = &trailerStripper{ReadCloser: r.Body, trailer: r.Trailer}
	}
}

// trailerStripper strips X-Alipay-* trailers once the body has been read
// to its end (or failed), when net/http has filled them in.
type trailerStripper struct {
	io.ReadCloser
	trailer http.Header
}

func (t *trailerStripper) Read(p []byte) (int, error) {
	n, err := t.ReadCloser.Read(p)
	if err != nil {
		stripAlipayHeaders(t.trailer)
	}
	return n, err
}

func isAlipayHeader(name string) bool {
	const prefix = "x-alipay-"
	if len(name) < len(prefix) {
		return false
	}
	for i := 0; i < len(prefix); i++ {
		c := name[i]
		switch {
		case c == '_' || c == '.':
			c = '-'
		case c >= 'A' && c <= 'Z':
			c += 'a' - 'A'
		}
		if c != prefix[i] {
			return false
		}
	}
	return true
}

// servePay turns a pay token into a signed page-pay or WAP-pay request and
// sends the browser to the gateway.
func (h *Handler) servePay(w http.ResponseWriter, r *http.Request) error {
	ev := event{name: eventPay}
	defer h.log(&ev)
	if r.Method != http.MethodGet && r.Method != http.MethodPost {
		w.Header().Set("Allow", "GET, POST")
		return ev.reply(w, http.StatusMethodNotAllowed, outcomeInvalid, "method not allowed", "use GET or POST\n")
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxPayBody)
	if err := r.ParseForm(); err != nil {
		status := http.StatusBadRequest
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			status = http.StatusRequestEntityTooLarge
		}
		return ev.reply(w, status, outcomeInvalid, err.Error(), "bad request\n")
	}
	t := now()
	claims, err := h.tokens.Parse(r.Form.Get("token"), t)
	if err != nil {
		msg := "invalid payment token\n"
		if errors.Is(err, ErrTokenExpired) {
			msg = "this payment link has expired\n"
		}
		return ev.reply(w, http.StatusForbidden, outcomeForbidden, err.Error(), msg)
	}
	order, err := ParseOrder(claims)
	if err != nil {
		ev.outTradeNo, _ = stringClaim(claims, "out_trade_no", false)
		return ev.reply(w, http.StatusBadRequest, outcomeInvalid, err.Error(), err.Error()+"\n")
	}
	ev.outTradeNo, ev.totalAmount = order.OutTradeNo, order.TotalAmount

	params := h.requestParams(order.Method(), order.BizContent(), t)
	for _, u := range []struct{ param, configured, path string }{
		{"notify_url", h.NotifyURL, h.notifyPath}, {"return_url", h.ReturnURL, h.returnPath},
	} {
		if params[u.param], err = h.callbackURL(r, u.configured, u.path); err != nil {
			if errors.Is(err, errBadHost) {
				return ev.reply(w, http.StatusBadRequest, outcomeInvalid, err.Error(), "bad request: no valid Host\n")
			}
			return ev.reply(w, http.StatusMisdirectedRequest, outcomeInvalid, "host "+strconv.Quote(r.Host)+": "+err.Error(),
				"this site does not take payments for this host name\n")
		}
	}
	if err := SignParams(h.signer, params); err != nil {
		return ev.reply(w, http.StatusInternalServerError, outcomeInvalid, err.Error(), "internal error\n")
	}
	target := GatewayURL(h.gatewayURL, params)
	ev.outcome = outcomeOK

	w.Header().Set("Cache-Control", "no-store")
	if acceptsJSON(r) {
		w.Header().Set("Content-Type", "application/json")
		return json.NewEncoder(w).Encode(struct {
			URL string `json:"url"`
		}{target})
	}
	http.Redirect(w, r, target, http.StatusFound)
	return nil
}

// requestParams are the common parameters of a request for method: those
// of every OpenAPI call, and in certificate mode the serial numbers.
func (h *Handler) requestParams(method string, bizContent []byte, t time.Time) map[string]string {
	params := OpenAPIParams(h.AppID, method, h.signer.SignType(), bizContent, t)
	if h.appCertSN != "" {
		params["app_cert_sn"] = h.appCertSN
		params["alipay_root_cert_sn"] = h.rootCertSN
	}
	return params
}

// acceptsJSON reports whether the client asked for application/json.
func acceptsJSON(r *http.Request) bool {
	for _, part := range strings.Split(r.Header.Get("Accept"), ",") {
		if mt, _, err := mime.ParseMediaType(strings.TrimSpace(part)); err == nil && mt == "application/json" {
			return true
		}
	}
	return false
}

// serveNotify verifies an asynchronous notification, hands it to the
// upstream and answers Alipay success only once the upstream accepted it.
func (h *Handler) serveNotify(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	ev := event{name: eventNotify}
	defer h.log(&ev)
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", "POST")
		return ev.reply(w, http.StatusMethodNotAllowed, outcomeInvalid, "method not allowed", "fail")
	}
	if r.ContentLength > MaxCallbackSize {
		return ev.reply(w, http.StatusRequestEntityTooLarge, outcomeInvalid, "body too large", "fail")
	}
	var buf bytes.Buffer
	buf.Grow(int(max(r.ContentLength, 0)) + bytes.MinRead)
	_, err := buf.ReadFrom(io.LimitReader(r.Body, MaxCallbackSize+1))
	body := buf.Bytes()
	if err != nil {
		return ev.reply(w, http.StatusBadRequest, outcomeInvalid, "reading body: "+err.Error(), "fail")
	}
	if len(body) > MaxCallbackSize {
		return ev.reply(w, http.StatusRequestEntityTooLarge, outcomeInvalid, "body too large", "fail")
	}
	cb, err := h.verifyCallback(string(body), &ev)
	if err != nil {
		return ev.reply(w, http.StatusBadRequest, refusal(err), err.Error(), "fail")
	}
	token := h.callbackToken(eventNotify, cb.Get("notify_id"), cb, "")

	// The upstream gets the body as read, with a length and no trailers
	// (Alipay sends none; a client's would travel on next to the token).
	r.Body = io.NopCloser(bytes.NewReader(body))
	r.ContentLength = int64(len(body))
	r.TransferEncoding = nil
	r.Trailer = nil
	r.Header.Del("Content-Length")
	h.forward(r, h.ForwardNotify, token)

	// The upstream's answer is Alipay's business only as a status: its
	// headers and body go nowhere. No answer at all counts as failure, so
	// a site without an upstream never tells Alipay success.
	rec := &statusRecorder{header: make(http.Header)}
	err, brokeOff := serveUpstream(next, rec, r)
	if r.Context().Err() != nil {
		// Alipay hung up first: it will send the notification again, and
		// the shop is not to blame.
		return ev.reply(w, http.StatusBadGateway, outcomeAborted, "alipay closed the connection", "fail")
	}
	if brokeOff {
		return ev.reply(w, http.StatusBadGateway, outcomeUpstreamFailed, "upstream broke off its answer", "fail")
	}
	if err != nil {
		return ev.reply(w, http.StatusBadGateway, outcomeUpstreamFailed, "upstream: "+err.Error(), "fail")
	}
	if rec.status < 200 || rec.status > 299 {
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
	cb, err := h.verifyCallback(r.URL.RawQuery, &ev)
	if err != nil {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		return ev.reply(w, http.StatusBadRequest, refusal(err), err.Error(), returnErrorPage)
	}
	var tradeStatus string
	if h.QueryOnReturn {
		// Without an answer the claim is left out: the shop must not take
		// its absence for anything but "not known".
		if tradeStatus, err = h.queryTradeStatus(r.Context(), cb.Get("out_trade_no")); err != nil {
			ev.reason = "query_on_return: " + err.Error()
		}
		ev.tradeStatus = tradeStatus
	}
	token := h.callbackToken(eventReturn, randomID(), cb, tradeStatus)
	h.forward(r, h.ForwardReturn, token)

	// The upstream's answer goes to the browser as it is; the log says
	// whether there was one.
	sw := &statusWriter{ResponseWriterWrapper: &caddyhttp.ResponseWriterWrapper{ResponseWriter: w}}
	err, brokeOff := serveUpstream(next, sw, r)
	switch {
	case brokeOff:
		ev.outcome, ev.reason, ev.upstreamStatus = outcomeUpstreamFailed, "upstream broke off its answer", sw.status
		// As reverse_proxy does: abort the browser's connection, so that
		// it does not take a truncated page for a whole one.
		panic(http.ErrAbortHandler)
	case err != nil:
		ev.outcome, ev.reason = outcomeUpstreamFailed, "upstream: "+err.Error()
	case sw.status >= 500:
		ev.outcome, ev.reason, ev.upstreamStatus = outcomeUpstreamFailed, "upstream answered 5xx", sw.status
	default:
		ev.outcome = outcomeOK
	}
	return err
}

// serveUpstream runs next, turning the panic with which reverse_proxy
// aborts a response that the upstream broke off (a reset after the status
// and part of the body) into brokeOff, so that the caller can still answer
// and log what happened.
func serveUpstream(next caddyhttp.Handler, w http.ResponseWriter, r *http.Request) (err error, brokeOff bool) {
	defer func() {
		if p := recover(); p != nil {
			if p != http.ErrAbortHandler {
				panic(p)
			}
			brokeOff = true
		}
	}()
	return next.ServeHTTP(w, r), false
}

// statusWriter passes a response on and remembers its status.
type statusWriter struct {
	*caddyhttp.ResponseWriterWrapper
	status int
}

func (w *statusWriter) WriteHeader(status int) {
	if w.status == 0 && status >= 200 {
		w.status = status
	}
	w.ResponseWriterWrapper.WriteHeader(status)
}

func (w *statusWriter) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriterWrapper.Write(p)
}

var returnErrorPage = `<!doctype html><meta charset="utf-8"><title>Payment not confirmed</title>` +
	`<p>This payment result could not be confirmed. If you paid, your order will be updated shortly.</p>` +
	`<p>` + html.EscapeString("无法确认支付结果。如已付款，订单将很快更新。") + `</p>` + "\n"

// verifyCallback parses and verifies a callback and checks that it is for
// this app (and seller), filling ev for the log.
func (h *Handler) verifyCallback(raw string, ev *event) (*Callback, error) {
	cb, err := ParseCallback(raw)
	if err != nil {
		return nil, err
	}
	ev.outTradeNo, ev.tradeNo = cb.Get("out_trade_no"), cb.Get("trade_no")
	ev.tradeStatus, ev.totalAmount = cb.Get("trade_status"), cb.Get("total_amount")
	if err := cb.Verify(h.verifier); err != nil {
		return nil, err
	}
	if got := cb.Get("app_id"); got != h.AppID {
		return nil, errors.New("app_id is not this app's")
	}
	if h.SellerID != "" && cb.Get("seller_id") != h.SellerID {
		return nil, errors.New("seller_id is not the configured one")
	}
	return cb, nil
}

// refusal is the outcome of a callback that failed verifyCallback: invalid
// when it is not even a well-formed callback, refused otherwise.
func refusal(err error) string {
	if errors.Is(err, ErrMalformed) {
		return outcomeInvalid
	}
	return outcomeRefused
}

// CallbackClaims are the claims of an X-Alipay-Token, for Go upstreams
// to decode into (the handler writes them directly, see callbackToken).
type CallbackClaims struct {
	Issuer    string            `json:"iss"`
	Audience  string            `json:"aud"`
	IssuedAt  int64             `json:"iat"`
	ExpiresAt int64             `json:"exp"`
	ID        string            `json:"jti"`
	Event     string            `json:"event"`
	Params    map[string]string `json:"params"`
	// TradeStatus is alipay.trade.query's answer, on returns with
	// query_on_return (absent when the query gave no verified answer).
	TradeStatus string `json:"trade_status,omitempty"`
}

// TokenIssuer is the iss claim of every X-Alipay-Token.
const TokenIssuer = "caddy-alipay"

// callbackToken makes the X-Alipay-Token of a verified callback. The JSON
// of CallbackClaims is written by hand, params straight from the parsed
// callback (already sorted), because encoding/json's reflection over a map
// was a quarter of the handler's own cost per notification.
//
// tradeStatus, when not empty, is the query_on_return answer: a top-level
// trade_status claim.
func (h *Handler) callbackToken(event, id string, cb *Callback, tradeStatus string) string {
	t := now()
	b := make([]byte, 0, 256+2*cb.size)
	b = append(b, `{"iss":"`+TokenIssuer+`","aud":`...)
	b = appendJSONString(b, h.AppID)
	b = append(b, `,"iat":`...)
	b = strconv.AppendInt(b, t.Unix(), 10)
	b = append(b, `,"exp":`...)
	b = strconv.AppendInt(b, t.Add(tokenLifetime).Unix(), 10)
	b = append(b, `,"jti":`...)
	b = appendJSONString(b, id)
	b = append(b, `,"event":`...)
	b = appendJSONString(b, event)
	if tradeStatus != "" {
		b = append(b, `,"trade_status":`...)
		b = appendJSONString(b, tradeStatus)
	}
	b = append(b, `,"params":`...)
	b = cb.AppendParamsJSON(b)
	b = append(b, '}')
	return h.tokens.SignJSON(b)
}

// forward readies r for the upstream: its path replaced if configured
// and the token set.
func (h *Handler) forward(r *http.Request, path, token string) {
	if path != "" {
		r.URL.Path = path
		r.URL.RawPath = ""
	}
	r.Header.Set(TokenHeader, token)
}

// randomID is a return's jti: returns carry no notify_id.
func randomID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// statusRecorder takes the upstream's answer to a notification: it keeps
// the status and drops headers and body.
type statusRecorder struct {
	header http.Header
	status int
}

func (s *statusRecorder) Header() http.Header { return s.header }

func (s *statusRecorder) WriteHeader(status int) {
	if s.status == 0 && status >= 200 {
		s.status = status
	}
}

func (s *statusRecorder) Write(p []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	return len(p), nil
}

// Flush lets an upstream handler flush; there is nothing to flush.
func (s *statusRecorder) Flush() {}

// event is one pay, notify or return, for its log line and counter.
type event struct {
	name           string
	method         string // api: the OpenAPI method
	outcome        string
	reason         string
	outTradeNo     string
	tradeNo        string
	tradeStatus    string
	totalAmount    string
	upstreamStatus int
}

// reply records the outcome and writes a short answer. reason goes to the
// log only; body is what the client sees.
//
// Unlike most Caddy handlers, failures are answered here rather than
// returned as caddyhttp.Error for handle_errors: Alipay must read exactly
// "fail" from a notification's answer, and a buyer sent back from Alipay
// should see a page that says what happened, not an empty error.
func (ev *event) reply(w http.ResponseWriter, status int, outcome, reason, body string) error {
	ev.outcome, ev.reason = outcome, reason
	if w.Header().Get("Content-Type") == "" {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	}
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = io.WriteString(w, body)
	return nil
}

// replyJSON is reply for the API, whose clients read JSON.
func (ev *event) replyJSON(w http.ResponseWriter, status int, outcome, reason string, body map[string]string) error {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	b, _ := marshalNoEscape(body)
	return ev.reply(w, status, outcome, reason, string(b)+"\n")
}

// log writes the event's one line and counts it. Never a key, the
// secret, a sign or a token: only ids, status, amount and outcome.
func (h *Handler) log(ev *event) {
	h.metrics.count(ev.name, ev.outcome)
	level := zapcore.InfoLevel
	if ev.outcome != outcomeOK {
		level = zapcore.WarnLevel
	}
	ce := h.logger.Check(level, ev.name)
	if ce == nil {
		return
	}
	fields := make([]zap.Field, 0, 8)
	fields = append(fields, zap.String("event", ev.name), zap.String("outcome", ev.outcome))
	for _, f := range []struct{ k, v string }{
		{"method", ev.method},
		{"out_trade_no", ev.outTradeNo}, {"trade_no", ev.tradeNo},
		{"trade_status", ev.tradeStatus}, {"total_amount", ev.totalAmount}, {"reason", ev.reason},
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
