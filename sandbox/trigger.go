package sandbox

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/caddy-alipay/caddy-alipay/internal/protocol"
	"go.uber.org/zap"
)

// A notification on demand, for a shop developer who tests the shop's
// notify handler: POST /sandbox/notify, which the alipay-sandbox-notify
// command (notifycmd.go) calls. It makes a real trade in the store, as if
// a buyer had got that far, and has the store start its notification
// exactly as the cashier or a refund starts one: signed as Alipay signs,
// retried on notify_retry until the answer is success, confirmed by
// notify_verify (legacy), and shown on the trade pages with its attempts.
//
//	POST /sandbox/notify   a JSON object or a form of the fields of triggerRequest
//	201 {"out_trade_no", "trade_no", "notification", "trade", ...}   triggerAnswer
//	4xx {"error": "...", "code": "..."}
//
// Kinds, in either protocol:
//
//	paid      a trade opened and paid, as the cashier's Pay does (markPaid): the payment's notification
//	closed    a trade opened and closed unpaid, as Alipay closes one whose time to pay ran out
//	          (expire): the TRADE_CLOSED notification that Alipay sends then (closedFields)
//	refunded  a paid trade refunded in full by the trade page's Refund in full (refundInFull,
//	          refundLegacyInFull): OpenAPI's trade_status_sync with the refund's fields, the legacy
//	          batch_refund_notify. A trade of that out_trade_no that the sandbox has paid already is
//	          refunded; otherwise a new one is paid first, and its payment's notification goes out,
//	          and gets its first answer, before the refund's, as it would at Alipay
//
// The endpoint changes state, as the trade pages' buttons do, but its
// caller has no cashier id to show: the site's Host check (ServeHTTP)
// keeps out DNS rebinding, and a request that a browser marks as coming
// from another origin (Sec-Fetch-Site, Origin) is refused, so that a page
// open in the developer's browser cannot make the sandbox notify the
// developer's shop. The notify_url obeys callback_hosts as a pay
// request's does.

const notifyPath = "/sandbox/notify"

// maxTriggerBody bounds the request body, as the trade pages' forms are
// bounded.
const maxTriggerBody = 4096

// The kinds of notification on demand.
const (
	kindPaid     = "paid"
	kindClosed   = "closed"
	kindRefunded = "refunded"
)

// noteAboutClose is what the notification of a trade closed unpaid tells
// of (beside notices.go's noteAbout* values).
const noteAboutClose = "close"

// triggerEventKind names the trigger in a trade's events.
const triggerEventKind = "alipay-sandbox-notify"

// defaultTriggerSubject is the subject of a trade made on demand when
// none is given: plain ASCII, so that every charset holds it.
const defaultTriggerSubject = "sandbox notification"

// firstAttemptWait bounds how long a refund on demand of a new trade
// waits for the payment's first attempt: the notifier's HTTP timeout
// (15 s) and a little more.
const firstAttemptWait = 20 * time.Second

// A triggerRequest is what POST /sandbox/notify takes, as JSON or as a
// form with the same names. Only kind and notify_url are required, and
// app_id for OpenAPI.
type triggerRequest struct {
	Kind      string `json:"kind"`       // paid, closed or refunded
	Protocol  string `json:"protocol"`   // openapi (default) or legacy
	NotifyURL string `json:"notify_url"` // where the notification goes: absolute http(s), loopback or callback_hosts
	// The order: out_trade_no (default: a fresh one), amount (yuan, at
	// most 2 decimals; default 0.01) and subject (default
	// defaultTriggerSubject).
	OutTradeNo string `json:"out_trade_no"`
	Amount     string `json:"amount"`
	Subject    string `json:"subject"`
	// OpenAPI: the app whose trade it is (the notification's app_id),
	// required; seller_id, if given, must be the sandbox's, which every
	// OpenAPI notification of the sandbox carries.
	AppID string `json:"app_id"`
	// Legacy: the seller that the pay request named, seller_id (default:
	// the partner) or seller_email, echoed in the notification.
	SellerID    string `json:"seller_id"`
	SellerEmail string `json:"seller_email"`
	// How the notification is signed (OpenAPI RSA2 or RSA, default RSA2;
	// legacy MD5 or RSA, default MD5) and, for legacy, encoded (utf-8 or
	// gbk, default utf-8), as the sidecar is set up to verify it.
	SignType string `json:"sign_type"`
	Charset  string `json:"charset"`
}

// triggerFields are the form's names, which are triggerRequest's JSON
// names.
var triggerFields = []string{"kind", "protocol", "notify_url", "out_trade_no", "amount", "subject",
	"app_id", "seller_id", "seller_email", "sign_type", "charset"}

// A triggerAnswer is POST /sandbox/notify's answer: the trade made (or,
// for a refund of a trade paid before, found) and the notification
// started, whose attempts the trade's page lists (GET <trade> with
// Accept: application/json: the trade of trade_no, its notification of
// id notification).
type triggerAnswer struct {
	Kind       string `json:"kind"`
	Protocol   string `json:"protocol"`
	OutTradeNo string `json:"out_trade_no"`
	TradeNo    string `json:"trade_no"`
	ID         string `json:"id"` // the cashier id, the trade page forms' id
	Status     string `json:"status"`
	Amount     string `json:"amount"`
	// The notification asked for: its id on the trade's page (the Send
	// again form's notification), what it tells of, its notify_type, its notify_id (OpenAPI; "" for legacy, whose every
	// attempt has a fresh one) and where it goes.
	Notification string `json:"notification"`
	About        string `json:"about"` // payment, close, refund or batch_refund
	NotifyType   string `json:"notify_type"`
	NotifyID     string `json:"notify_id"`
	URL          string `json:"url"`
	// Trade is the path of the trade's page, whose JSON lists the
	// attempts.
	Trade string `json:"trade"`
	// PaymentNotification is, for a refund of a new trade, the id of its
	// payment's notification, which went first.
	PaymentNotification string `json:"payment_notification,omitempty"`
	// NotifyRetry is the sandbox's schedule: the waits between attempts
	// until one is accepted.
	NotifyRetry []string `json:"notify_retry"`
}

// A triggerPlan is a checked request: the trade to open and what to do
// with it.
type triggerPlan struct {
	kind     string
	protocol string
	trade    *trade
}

// serveTrigger answers POST /sandbox/notify.
func (h *Handler) serveTrigger(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", "POST")
		triggerError(w, http.StatusMethodNotAllowed, "METHOD_NOT_ALLOWED", "POST a JSON object or a form")
		return
	}
	if reason := otherOrigin(r); reason != "" {
		h.logger.Warn("sandbox: notification on demand refused", zap.String("reason", reason))
		triggerError(w, http.StatusForbidden, "FORBIDDEN", reason)
		return
	}
	req, status, ge := readTrigger(w, r)
	var plan triggerPlan
	if ge == nil {
		plan, status, ge = h.checkTrigger(req)
	}
	var ans triggerAnswer
	if ge == nil {
		ans, status, ge = h.trigger(r.Context(), plan)
	}
	if ge != nil {
		h.logger.Warn("sandbox: notification on demand refused", zap.String("code", ge.code), zap.String("reason", ge.reason))
		triggerError(w, status, ge.code, ge.reason)
		return
	}
	h.logger.Info("sandbox: notification on demand", zap.String("kind", ans.Kind), zap.String("protocol", ans.Protocol),
		zap.String("out_trade_no", ans.OutTradeNo), zap.String("trade_no", ans.TradeNo), zap.String("notification", ans.Notification))
	w.Header().Set("Location", ans.Trade)
	writeJSON(w, http.StatusCreated, ans)
}

// triggerError answers with {"error", "code"}, as the trade pages' JSON
// errors are.
func triggerError(w http.ResponseWriter, status int, code, reason string) {
	writeJSON(w, status, map[string]string{"error": reason, "code": code})
}

// otherOrigin says why r comes from a page of another origin, or "". The
// command sends neither header; a browser sends Sec-Fetch-Site on every
// request and Origin on every POST. A page on another port of the same
// host is same-site but not same-origin, so Origin is compared with the
// request's Host.
func otherOrigin(r *http.Request) string {
	switch s := r.Header.Get("Sec-Fetch-Site"); s {
	case "", "same-origin", "none":
	default:
		return "a request from another site (Sec-Fetch-Site: " + s + ")"
	}
	if o := r.Header.Get("Origin"); o != "" {
		if u, err := url.Parse(o); err != nil || u.Host == "" || !strings.EqualFold(u.Host, r.Host) {
			return "a request from another origin (Origin: " + o + ")"
		}
	}
	return ""
}

// readTrigger reads the request body, a JSON object or a form of at most
// maxTriggerBody bytes, each field once and none unknown.
func readTrigger(w http.ResponseWriter, r *http.Request) (triggerRequest, int, *gatewayError) {
	var req triggerRequest
	mediaType, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if mediaType != "application/json" && mediaType != "application/x-www-form-urlencoded" {
		return req, http.StatusUnsupportedMediaType, &gatewayError{"invalid-content-type", "send application/json or application/x-www-form-urlencoded"}
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxTriggerBody))
	if err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			return req, http.StatusRequestEntityTooLarge, &gatewayError{"invalid-parameter", fmt.Sprintf("the body is larger than %d bytes", maxTriggerBody)}
		}
		return req, http.StatusBadRequest, &gatewayError{"invalid-parameter", "reading the body: " + err.Error()}
	}
	if mediaType == "application/json" {
		dec := json.NewDecoder(bytes.NewReader(body))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&req); err != nil || dec.More() {
			return req, http.StatusBadRequest, &gatewayError{"invalid-parameter", "the body is not one JSON object of string fields among " + strings.Join(triggerFields, ", ")}
		}
		return req, 0, nil
	}
	form, err := url.ParseQuery(string(body))
	if err != nil {
		return req, http.StatusBadRequest, &gatewayError{"invalid-parameter", "malformed form"}
	}
	values := map[string]string{}
	for k, v := range form {
		switch {
		case !slices.Contains(triggerFields, k):
			return req, http.StatusBadRequest, &gatewayError{"invalid-parameter", "unknown field " + k + "; the fields are " + strings.Join(triggerFields, ", ")}
		case len(v) != 1:
			return req, http.StatusBadRequest, &gatewayError{"invalid-parameter", k + " given more than once"}
		}
		values[k] = v[0]
	}
	// The form's names are the JSON's, every one a string.
	b, _ := json.Marshal(values)
	_ = json.Unmarshal(b, &req)
	return req, 0, nil
}

// triggerAppIDRE is an Alipay APPID, as the sidecar takes it: digits.
var triggerAppIDRE = regexp.MustCompile(`^[0-9]{1,32}$`)

// checkTrigger checks a request as the gateway checks a pay request, and
// returns the trade to open.
func (h *Handler) checkTrigger(req triggerRequest) (triggerPlan, int, *gatewayError) {
	bad := func(reason string) (triggerPlan, int, *gatewayError) {
		return triggerPlan{}, http.StatusBadRequest, &gatewayError{"invalid-parameter", reason}
	}
	p := triggerPlan{kind: req.Kind, protocol: req.Protocol}
	switch p.kind {
	case kindPaid, kindClosed, kindRefunded:
	case "":
		return bad("kind is required: paid, closed or refunded")
	default:
		return bad(fmt.Sprintf("kind %q: want paid, closed or refunded", p.kind))
	}
	if p.protocol == "" {
		p.protocol = "openapi"
	}
	switch {
	case p.protocol != "openapi" && p.protocol != "legacy":
		return bad(fmt.Sprintf("protocol %q: want openapi or legacy", p.protocol))
	case p.protocol == "openapi" && !h.openAPI:
		return triggerPlan{}, http.StatusConflict, &gatewayError{"PROTOCOL_NOT_CONFIGURED",
			"this sandbox plays only the legacy gateway (partner and md5_key, without app_public_key and alipay_private_key): use protocol legacy"}
	case p.protocol == "legacy" && h.legacy == nil:
		return triggerPlan{}, http.StatusConflict, &gatewayError{"PROTOCOL_NOT_CONFIGURED",
			"this sandbox has no legacy gateway: give it partner and md5_key to send legacy notifications"}
	}
	if req.NotifyURL == "" {
		return bad("notify_url is required: the shop's notify URL (the sidecar's {prefix}/notify)")
	}
	if ge := h.checkCallbackURL("notify_url", req.NotifyURL); ge != nil {
		return bad(ge.reason)
	}
	if req.OutTradeNo == "" {
		req.OutTradeNo = freshOutTradeNo(now())
	}
	if !protocol.ValidOutTradeNo(req.OutTradeNo) {
		return bad("out_trade_no must be 1 to 64 letters, digits or _")
	}
	if req.Amount == "" {
		req.Amount = "0.01"
	}
	amount, err := protocol.ParseAmount(req.Amount)
	if err != nil {
		return bad(fmt.Sprintf("amount %q %v", req.Amount, err))
	}
	if req.Subject == "" {
		req.Subject = defaultTriggerSubject
	}
	if reason := checkSubject(req.Subject); reason != "" {
		return bad("subject " + reason)
	}
	t := &trade{outTradeNo: req.OutTradeNo, amount: amount, subject: req.Subject, notifyURL: req.NotifyURL}
	if p.protocol == "legacy" {
		ge := h.checkLegacyTrigger(req, t)
		if ge != nil {
			return triggerPlan{}, http.StatusBadRequest, ge
		}
		p.trade = t
		return p, 0, nil
	}
	switch {
	case req.AppID == "":
		return bad("app_id is required for an OpenAPI notification: the sidecar's app_id, which it checks")
	case !triggerAppIDRE.MatchString(req.AppID):
		return bad(fmt.Sprintf("app_id %q is not an Alipay APPID (digits)", req.AppID))
	case req.SellerID != "" && req.SellerID != sandboxSellerID:
		return bad("seller_id: the sandbox's OpenAPI notifications carry seller_id " + sandboxSellerID +
			", the sandbox's seller, as its cashier's do; set the sidecar's seller_id to it, or leave that out")
	case req.SellerEmail != "":
		return bad("seller_email is for legacy notifications; OpenAPI's carry the sandbox's seller_email " + sandboxSellerEmail)
	case req.Charset != "" && !strings.EqualFold(req.Charset, "utf-8"):
		return bad("charset: OpenAPI notifications are utf-8")
	}
	t.appID, t.product, t.method, t.signType = req.AppID, productPage, "alipay.trade.page.pay", protocol.SignTypeRSA2
	if req.SignType != "" {
		if h.signers[req.SignType] == nil {
			return bad(fmt.Sprintf("sign_type %q: want RSA2 or RSA", req.SignType))
		}
		t.signType = req.SignType
	}
	p.trade = t
	return p, 0, nil
}

// checkLegacyTrigger checks the legacy fields of a request and completes
// t as create_direct_pay_by_user would have opened it.
func (h *Handler) checkLegacyTrigger(req triggerRequest, t *trade) *gatewayError {
	bad := func(reason string) *gatewayError { return &gatewayError{"invalid-parameter", reason} }
	charset := strings.ToLower(req.Charset)
	if charset == "" {
		charset = "utf-8"
	}
	signType := req.SignType
	if signType == "" {
		signType = protocol.SignTypeMD5
	}
	switch {
	case req.AppID != "":
		return bad("app_id is for OpenAPI notifications; legacy ones carry no app_id, and name the sandbox's partner " + h.legacy.partner)
	case req.SellerID != "" && req.SellerEmail != "":
		return bad("give seller_id or seller_email, as the sidecar's config does, not both")
	case req.SellerID != "" && !protocol.ValidAlipayID(req.SellerID):
		return bad(fmt.Sprintf("seller_id %q is not an Alipay seller id (2088 and 12 digits)", req.SellerID))
	case req.SellerEmail != "" && !protocol.ValidEmail(req.SellerEmail):
		return bad(fmt.Sprintf("seller_email %q is not an email address", req.SellerEmail))
	case charset != "utf-8" && charset != "gbk":
		return bad(fmt.Sprintf("charset %q: want utf-8 or gbk (the sidecar's input_charset)", req.Charset))
	case h.legacy.signers[signType] == nil:
		reason := fmt.Sprintf("sign_type %q: want MD5", signType)
		if h.openAPI {
			reason += " or RSA"
		}
		return bad(reason)
	}
	if _, err := protocol.EncodeLegacy(map[string]string{"subject": t.subject}, charset, h.legacy.signers[signType]); err != nil {
		return bad("subject has characters that " + charset + " cannot hold")
	}
	t.signType = signType
	t.legacy = &legacyTrade{partner: h.legacy.partner, charset: charset, sellerID: req.SellerID, sellerEmail: req.SellerEmail}
	return nil
}

// checkSubject checks a subject as Alipay's page pay takes one, and says
// what is wrong, or "".
func checkSubject(s string) string {
	switch {
	case utf8.RuneCountInString(s) > 256:
		return "is longer than 256 characters"
	case strings.ContainsAny(s, "/=&"):
		return "must not contain / = &"
	case strings.ContainsFunc(s, unicode.IsControl):
		return "must not contain control characters"
	}
	return ""
}

// freshOutTradeNo is an order number that no shop made: the time in
// Beijing and random hex digits.
func freshOutTradeNo(at time.Time) string {
	return "sandbox_" + at.In(protocol.Beijing).Format("20060102150405") + "_" + protocol.RandomID()[:8]
}

// trigger opens p's trade and has the store start its notification.
func (h *Handler) trigger(ctx context.Context, p triggerPlan) (triggerAnswer, int, *gatewayError) {
	t, _, err := h.trades.openNew(p.trade)
	if err != nil {
		ge := asStoreError(err)
		if p.kind == kindRefunded && ge.code == "ACQ.TRADE_HAS_SUCCESS" {
			return h.refundPaid(p)
		}
		return triggerAnswer{}, http.StatusConflict, h.tradeCodes(p, ge)
	}
	at := now()
	var ge *gatewayError
	if p.kind == kindClosed {
		ge = h.trades.expire(t, at)
	} else {
		ge = h.trades.markPaid(t, at)
	}
	if ge != nil {
		// The trade was reopened, not new, and changed meanwhile.
		return triggerAnswer{}, http.StatusConflict, h.tradeCodes(p, ge)
	}
	detail := "caddy alipay-sandbox-notify --kind " + p.kind + ": "
	if p.kind == kindClosed {
		detail += "closed unpaid, as when its time to pay runs out"
	} else {
		detail += "paid"
	}
	h.trades.event(t, tradeEvent{at: at, kind: triggerEventKind, source: "page", detail: detail})
	if p.kind != kindRefunded {
		return h.triggerAnswer(p, t, ""), 0, nil
	}
	// The payment's notification goes first, as it would have at Alipay
	// long before the refund: a shop told of the refund first would find
	// an order it thinks unpaid.
	payment := h.trades.snapshot(t).notices[0].id
	h.awaitFirstAttempt(ctx, t)
	if ge := h.refundTrade(t); ge != nil {
		return triggerAnswer{}, http.StatusConflict, ge
	}
	return h.triggerAnswer(p, t, payment), 0, nil
}

// asStoreError is err, an error of the trade store, as a gatewayError.
func asStoreError(err error) *gatewayError {
	if ge, ok := errors.AsType[*gatewayError](err); ok {
		return ge
	}
	return &gatewayError{"invalid-parameter", err.Error()}
}

// tradeCodes adds to a store's refusal where to look, with the legacy
// gateway's names for a legacy trade.
func (h *Handler) tradeCodes(p triggerPlan, ge *gatewayError) *gatewayError {
	if p.protocol == "legacy" {
		ge = legacyGatewayError(ge)
	}
	return &gatewayError{ge.code, ge.reason + " (see " + tradesPath + "/" + p.trade.outTradeNo + "; leave out_trade_no out for a fresh one)"}
}

// refundPaid is a refund on demand of the trade of p's out_trade_no that
// the sandbox paid before: it must be paid, not refunded in full, of p's
// amount and notify_url, since its notifications go to the URL that its
// request named.
func (h *Handler) refundPaid(p triggerPlan) (triggerAnswer, int, *gatewayError) {
	var t *trade
	if p.protocol == "legacy" {
		t = h.trades.findLegacy("", p.trade.outTradeNo)
	} else {
		t = h.trades.find(p.trade.appID, "", p.trade.outTradeNo)
	}
	if t == nil { // dropped meanwhile
		return triggerAnswer{}, http.StatusConflict, h.tradeCodes(p, &gatewayError{"ACQ.TRADE_NOT_EXIST", "the paid trade is gone"})
	}
	s := h.trades.snapshot(t)
	conflict := func(code, reason string) (triggerAnswer, int, *gatewayError) {
		return triggerAnswer{}, http.StatusConflict, h.tradeCodes(p, &gatewayError{code, reason})
	}
	switch {
	case s.status == "TRADE_CLOSED":
		return conflict("ACQ.TRADE_HAS_CLOSE", "the trade "+t.outTradeNo+" is refunded in full already")
	case t.notifyURL != p.trade.notifyURL:
		return conflict("ACQ.CONTEXT_INCONSISTENT", "the trade "+t.outTradeNo+"'s notifications go to the notify_url that its request named, "+t.notifyURL)
	case t.amount != p.trade.amount:
		return conflict("ACQ.CONTEXT_INCONSISTENT", "the trade "+t.outTradeNo+" is of "+t.amount.String()+", not "+p.trade.amount.String())
	}
	if ge := h.refundTrade(t); ge != nil {
		return triggerAnswer{}, http.StatusConflict, ge
	}
	return h.triggerAnswer(p, t, ""), 0, nil
}

// refundTrade refunds what is left of paid trade t in full, as the trade
// page's Refund in full does, and reports a refusal, which t's events
// record.
func (h *Handler) refundTrade(t *trade) *gatewayError {
	before := len(h.trades.snapshot(t).refundList)
	if t.legacy != nil {
		h.refundLegacyInFull(t)
	} else {
		h.refundInFull(t)
	}
	if s := h.trades.snapshot(t); len(s.refundList) == before || len(s.notices) == 0 {
		return &gatewayError{"REFUND_REFUSED", "the refund in full was refused: see the events at " + tradesPath + "/" + t.outTradeNo}
	}
	return nil
}

// awaitFirstAttempt waits until the first attempt of t's first
// notification is recorded, or its loop has ended, for at most
// firstAttemptWait or until ctx ends.
func (h *Handler) awaitFirstAttempt(ctx context.Context, t *trade) {
	limit := time.NewTimer(firstAttemptWait)
	defer limit.Stop()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		if n := h.trades.snapshot(t).notices[0]; n.attemptsTotal > 0 || n.next.IsZero() {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-limit.C:
			return
		case <-tick.C:
		}
	}
}

// triggerAnswer describes t and its latest notification, the one just
// started.
func (h *Handler) triggerAnswer(p triggerPlan, t *trade, payment string) triggerAnswer {
	s := h.trades.snapshot(t)
	n := s.notices[len(s.notices)-1]
	a := triggerAnswer{Kind: p.kind, Protocol: p.protocol, OutTradeNo: t.outTradeNo, TradeNo: t.tradeNo, ID: t.id,
		Status: s.status, Amount: t.amount.String(), Notification: n.id, About: n.about, NotifyType: n.notifyType, NotifyID: n.notifyID,
		URL: n.url, Trade: tradesPath + "/" + t.outTradeNo, PaymentNotification: payment, NotifyRetry: []string{}}
	for _, d := range h.trades.current().retry {
		a.NotifyRetry = append(a.NotifyRetry, d.String())
	}
	return a
}

// closedFields are what the notification of a trade closed unpaid tells,
// as Alipay sends it when a trade's time to pay runs out: the payment's
// fields (paymentFields) with trade_status TRADE_CLOSED and gmt_close,
// and nothing paid: no gmt_payment, no fund_bill_list, OpenAPI's paid
// amounts 0.00. The caller holds the lock.
func closedFields(t *trade, at time.Time) map[string]string {
	p := paymentFields(t)
	delete(p, "gmt_payment")
	delete(p, "fund_bill_list")
	if t.legacy == nil {
		for _, k := range []string{"receipt_amount", "invoice_amount", "buyer_pay_amount", "point_amount"} {
			p[k] = "0.00"
		}
	}
	p["trade_status"], p["gmt_close"] = "TRADE_CLOSED", protocol.Timestamp(at)
	return p
}
