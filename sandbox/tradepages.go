package sandbox

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/caddy-alipay/caddy-alipay/internal/caddyconf"
	"github.com/caddy-alipay/caddy-alipay/internal/protocol"
	"go.uber.org/zap"
)

// The developer's window onto the sandbox, as payment platforms' webhook
// logs are: /sandbox/trades lists the trades, newest first, and
// /sandbox/trades/<out_trade_no> shows each trade of that out_trade_no
// with every notification attempt, the retry loop's next attempt, and
// the returns and OpenAPI calls that touched it. Its buttons are plain
// HTML forms (POST), each carrying the trade's cashier id, which only
// the sandbox's own pages know, so that another page in the developer's
// browser cannot press them:
//
//	POST /sandbox/trades/<out_trade_no>/resend  id=<id>  send the notification again, now
//	POST /sandbox/trades/<out_trade_no>/refund  id=<id>  refund in full (OpenAPI trades)
//
// Both answer 303 See Other back to the trade's page. Resend sends only
// to the trade's own notify_url, which its signed pay request named.
//
// With Accept: application/json both pages give the same data as JSON.
// The field names are stable:
//
//	GET /sandbox/trades:
//	  kept        number of trades kept now
//	  max_trades  the most kept (max_trades); beyond it the oldest is dropped
//	  dropped     number of trades dropped so far, oldest first
//	  trades      the trades, newest first, each without attempts and events
//	GET /sandbox/trades/<out_trade_no> (404 {"error": ...} if none):
//	  out_trade_no, trades (newest first)
//	a trade:
//	  id              the cashier id, the forms' id field
//	  out_trade_no, trade_no, subject
//	  amount          yuan, two decimals ("88.80")
//	  status          WAIT_BUYER_PAY, TRADE_SUCCESS, TRADE_CLOSED, TRADE_FINISHED (legacy, paid)
//	  protocol        "openapi" or "legacy"
//	  app_id          OpenAPI's app id; "" for legacy
//	  partner         the legacy partner; "" for OpenAPI
//	  method          alipay.trade.page.pay, alipay.trade.wap.pay or create_direct_pay_by_user
//	  sign_type, notify_url, return_url
//	  created         RFC 3339, in Beijing time (+08:00), to the millisecond
//	  paid            RFC 3339, or null while unpaid
//	  refunded        yuan refunded so far ("0.00")
//	  attempts        the latest 50 notification attempts, oldest first (trade page only):
//	    at            RFC 3339
//	    url           where it was POSTed: the trade's notify_url
//	    status        the shop's HTTP status, or null when no answer came
//	    error         why no answer came ("...: connection refused", "timeout: ..."); "" when one came
//	    duration_ms   how long it took, answer read
//	    answer        the answer's first 200 bytes
//	    accepted      the answer was success (the attempt counted)
//	    notify_id     the notify_id it carried (legacy: a fresh one each time)
//	    resend        sent by the send-again button
//	  attempts_total  attempts made in all (more than len(attempts) once the oldest are forgotten)
//	  next_attempt    RFC 3339: when the retry loop's next attempt is due, or was due while it
//	                  is being sent; null when nothing is left to send (unpaid, no notify_url,
//	                  delivered, given up)
//	  delivered       an attempt was accepted
//	  given_up        the schedule ended with no attempt accepted
//	  events          the latest 50 returns, cancels and OpenAPI calls, oldest first (trade page only):
//	    at            RFC 3339
//	    kind          "return", "cancel", or the OpenAPI method (alipay.trade.query, ...)
//	    source        "buyer", "shop" (a call signed with the app's key) or "page" (a button here)
//	    code, sub_code  an OpenAPI call's answer ("10000", "ACQ.TRADE_HAS_CLOSE"); "" otherwise
//	    detail        what it asked and was told, in words
//	  events_total    events in all
//
// The sandbox has nothing left to send when next_attempt is null for
// every trade.

const tradesPath = "/sandbox/trades"

// isTradesPath reports whether path is one of the trade pages'.
func isTradesPath(path string) bool {
	return path == tradesPath || strings.HasPrefix(path, tradesPath+"/")
}

type tradeListDoc struct {
	Kept      int            `json:"kept"`
	MaxTrades int            `json:"max_trades"`
	Dropped   int64          `json:"dropped"`
	Trades    []tradeSummary `json:"trades"`
}

type tradePageDoc struct {
	OutTradeNo string     `json:"out_trade_no"`
	Trades     []tradeDoc `json:"trades"`
}

// tradeSummary is a trade as the list shows it and its JSON gives it;
// the fields without a JSON name are for the HTML pages.
type tradeSummary struct {
	ID            string  `json:"id"`
	OutTradeNo    string  `json:"out_trade_no"`
	TradeNo       string  `json:"trade_no"`
	Subject       string  `json:"subject"`
	Amount        string  `json:"amount"`
	Status        string  `json:"status"`
	Protocol      string  `json:"protocol"`
	AppID         string  `json:"app_id"`
	Partner       string  `json:"partner"`
	Method        string  `json:"method"`
	SignType      string  `json:"sign_type"`
	NotifyURL     string  `json:"notify_url"`
	ReturnURL     string  `json:"return_url"`
	Created       string  `json:"created"`
	Paid          *string `json:"paid"`
	Refunded      string  `json:"refunded"`
	AttemptsTotal int     `json:"attempts_total"`
	NextAttempt   *string `json:"next_attempt"`
	Delivered     bool    `json:"delivered"`
	GivenUp       bool    `json:"given_up"`
	EventsTotal   int     `json:"events_total"`

	CreatedAt, PaidAt, NextAt time.Time `json:"-"`
	Legacy                    bool      `json:"-"`
	Charset                   string    `json:"-"` // legacy: the request's _input_charset
	NotifyID                  string    `json:"-"` // OpenAPI: the trade's one notify_id
	// The notification's state in words: Delivery for the trade's page,
	// DeliveryShort for the list; DeliveryClass is ok, bad or empty.
	Delivery, DeliveryShort, DeliveryClass string `json:"-"`
	// The buttons: whether each is offered, and what each does.
	CanResend, CanRefund bool   `json:"-"`
	ResendNote           string `json:"-"`
	RefundAmount         string `json:"-"`
	// Suffix makes the page's element ids unique: "" for the newest trade
	// of the page (ids resend, refund, delivery, attempts, ...), and
	// "-<trade_no>" for the others.
	Suffix string `json:"-"`
}

// tradeDoc is a trade as its own page shows it: the summary, with its
// notification attempts and events. The list leaves them out, so that
// its size grows with the trades alone.
type tradeDoc struct {
	tradeSummary
	Attempts []attemptDoc `json:"attempts"`
	Events   []eventDoc   `json:"events"`
}

type attemptDoc struct {
	At         string `json:"at"`
	URL        string `json:"url"`
	Status     *int   `json:"status"`
	Error      string `json:"error"`
	DurationMS int64  `json:"duration_ms"`
	Answer     string `json:"answer"`
	Accepted   bool   `json:"accepted"`
	NotifyID   string `json:"notify_id"`
	Resend     bool   `json:"resend"`

	AtTime time.Time `json:"-"`
	Number int       `json:"-"` // its number among all the trade's attempts, from 1
}

type eventDoc struct {
	At      string `json:"at"`
	Kind    string `json:"kind"`
	Source  string `json:"source"`
	Code    string `json:"code"`
	SubCode string `json:"sub_code"`
	Detail  string `json:"detail"`

	AtTime time.Time `json:"-"`
}

// rfc3339 writes a time in RFC 3339, in Beijing time, to the millisecond.
func rfc3339(t time.Time) string {
	return t.In(protocol.Beijing).Format("2006-01-02T15:04:05.000Z07:00")
}

// summaryOf describes a trade, as its snapshot t has it, at at.
func (h *Handler) summaryOf(t tradeSnapshot, at time.Time) tradeSummary {
	d := tradeSummary{ID: t.id, OutTradeNo: t.outTradeNo, TradeNo: t.tradeNo, Subject: t.subject,
		Amount: t.amount.String(), Status: t.status, Protocol: "openapi", AppID: t.appID, Method: t.method,
		SignType: t.signType, NotifyURL: t.notifyURL, ReturnURL: t.returnURL,
		Created: rfc3339(t.created), Refunded: t.refunded.String(),
		AttemptsTotal: t.attemptsTotal, Delivered: t.delivered, GivenUp: t.gaveUp, EventsTotal: t.eventsTotal,
		CreatedAt: t.created, PaidAt: t.paid, NextAt: t.next, NotifyID: t.notifyID}
	if t.legacy != nil {
		d.Protocol, d.Legacy, d.Charset, d.NotifyID = "legacy", true, t.legacy.charset, ""
		d.Method = "create_direct_pay_by_user"
		if h.legacy != nil {
			d.Partner = h.legacy.partner
		}
	}
	if !t.paid.IsZero() {
		paid := rfc3339(t.paid)
		d.Paid = &paid
	}
	if !t.next.IsZero() {
		next := rfc3339(t.next)
		d.NextAttempt = &next
	}
	h.describeDelivery(&d, t, at)
	d.CanResend = !t.paid.IsZero() && t.notifyURL != ""
	if d.CanResend {
		if t.waiting(at) {
			d.ResendNote = fmt.Sprintf("Sends attempt %d of the schedule now, in place of the wait; the schedule goes on unless it is accepted.", t.nextNumber)
		} else {
			d.ResendNote = "Sends one attempt more, now, beside the schedule."
		}
	}
	if t.legacy == nil && !t.paid.IsZero() && t.status == "TRADE_SUCCESS" {
		d.CanRefund = true
		d.RefundAmount = (t.amount - t.refunded).String()
	}
	return d
}

// docOf is summaryOf with t's attempts and events.
func (h *Handler) docOf(t tradeSnapshot, at time.Time) tradeDoc {
	d := tradeDoc{tradeSummary: h.summaryOf(t, at), Attempts: []attemptDoc{}, Events: []eventDoc{}}
	first := t.attemptsTotal - len(t.attempts) + 1
	for i, a := range t.attempts {
		ad := attemptDoc{At: rfc3339(a.at), URL: a.url, Error: a.err, DurationMS: a.duration.Milliseconds(),
			Answer: a.answer, Accepted: a.accepted, NotifyID: a.notifyID, Resend: a.resend, AtTime: a.at, Number: first + i}
		if a.status != 0 {
			status := a.status
			ad.Status = &status
		}
		d.Attempts = append(d.Attempts, ad)
	}
	for _, e := range t.events {
		d.Events = append(d.Events, eventDoc{At: rfc3339(e.at), Kind: e.kind, Source: e.source, Code: e.code,
			SubCode: e.subCode, Detail: e.detail, AtTime: e.at})
	}
	return d
}

// describeDelivery puts the notification's state in words.
func (h *Handler) describeDelivery(d *tradeSummary, t tradeSnapshot, at time.Time) {
	schedule := len(h.retry) + 1
	switch {
	case t.notifyURL == "":
		d.Delivery, d.DeliveryShort = "No notify_url: the sandbox sends no notification for this trade.", "no notify_url"
	case t.paid.IsZero():
		d.Delivery, d.DeliveryShort = "Not paid: nothing to send.", "—"
	case t.delivered:
		d.Delivery, d.DeliveryShort, d.DeliveryClass = "Delivered 已送达: the shop accepted the notification. Nothing more is scheduled.", "delivered", "ok"
	case !t.next.IsZero() && t.next.After(at):
		d.Delivery = fmt.Sprintf("Next attempt 下次通知: attempt %d of %d on the schedule, at %s (in %s).",
			t.nextNumber, schedule, protocol.Timestamp(t.next), t.next.Sub(at).Round(time.Second))
		d.DeliveryShort, d.DeliveryClass = "next "+protocol.Timestamp(t.next), "bad"
	case !t.next.IsZero():
		d.Delivery = fmt.Sprintf("Sending attempt %d of %d on the schedule now.", t.nextNumber, schedule)
		d.DeliveryShort = "sending"
	case t.gaveUp:
		d.Delivery = fmt.Sprintf("Given up 已放弃: none of the %d attempts on the schedule was accepted. Nothing more is scheduled.", schedule)
		d.DeliveryShort, d.DeliveryClass = "given up", "bad"
	default:
		d.Delivery, d.DeliveryShort, d.DeliveryClass = "Stopped: the sandbox stopped before the notification was accepted.", "stopped", "bad"
	}
}

// serveTrades serves the trade pages and their buttons.
func (h *Handler) serveTrades(w http.ResponseWriter, r *http.Request) {
	rest := strings.TrimPrefix(strings.TrimPrefix(r.URL.Path, tradesPath), "/")
	no, action, _ := strings.Cut(rest, "/")
	get := r.Method == http.MethodGet || r.Method == http.MethodHead
	w.Header().Set("Vary", "Accept")
	switch {
	case no == "" && get:
		h.serveTradeList(w, r)
	case no == "":
		methodNotAllowed(w, "GET")
	case !protocol.ValidOutTradeNo(no) || (action != "" && action != "resend" && action != "refund"):
		h.tradesError(w, r, http.StatusNotFound, "TRADE_NOT_EXIST", "no such page")
	case action == "" && get:
		h.serveTradePage(w, r, no)
	case action == "":
		methodNotAllowed(w, "GET")
	case r.Method == http.MethodPost:
		h.serveTradeButton(w, r, no, action)
	default:
		methodNotAllowed(w, "POST")
	}
}

func methodNotAllowed(w http.ResponseWriter, allow string) {
	w.Header().Set("Allow", allow)
	http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
}

func (h *Handler) serveTradeList(w http.ResponseWriter, r *http.Request) {
	at := now()
	sum := h.trades.summary()
	doc := tradeListDoc{Kept: sum.kept, MaxTrades: sum.max, Dropped: sum.dropped, Trades: make([]tradeSummary, 0, len(sum.trades))}
	for _, t := range sum.trades {
		doc.Trades = append(doc.Trades, h.summaryOf(t, at))
	}
	if caddyconf.AcceptsJSON(r) {
		writeJSON(w, http.StatusOK, doc)
		return
	}
	renderPage(w, http.StatusOK, tradeListTemplate, doc)
}

func (h *Handler) serveTradePage(w http.ResponseWriter, r *http.Request, no string) {
	at := now()
	var docs []tradeDoc
	for _, t := range h.trades.withOutTradeNo(no) {
		docs = append(docs, h.docOf(t, at))
	}
	if len(docs) == 0 {
		h.tradesError(w, r, http.StatusNotFound, "TRADE_NOT_EXIST", "the sandbox has no trade with out_trade_no "+no+" (or it was dropped: max_trades)")
		return
	}
	for i := 1; i < len(docs); i++ {
		docs[i].Suffix = "-" + docs[i].TradeNo
	}
	doc := tradePageDoc{OutTradeNo: no, Trades: docs}
	if caddyconf.AcceptsJSON(r) {
		writeJSON(w, http.StatusOK, doc)
		return
	}
	renderPage(w, http.StatusOK, tradePageTemplate, doc)
}

// serveTradeButton takes a trade page's form. The form's id must be the
// cashier id of a trade with this out_trade_no: a page of another site in
// the developer's browser cannot know it.
func (h *Handler) serveTradeButton(w http.ResponseWriter, r *http.Request, no, action string) {
	if r.Header.Get("Sec-Fetch-Site") == "cross-site" {
		h.tradesError(w, r, http.StatusForbidden, "FORBIDDEN", "a form from another site")
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 4096)
	if err := r.ParseForm(); err != nil {
		h.tradesError(w, r, http.StatusBadRequest, "invalid-parameter", "malformed form")
		return
	}
	t := h.trades.byCashierID(r.PostForm.Get("id"))
	if t == nil || t.outTradeNo != no {
		h.tradesError(w, r, http.StatusForbidden, "FORBIDDEN", "the form's id is not the cashier id of a trade "+no+
			": the sandbox's buttons work from the trade's own page")
		return
	}
	paid, legacy := !h.trades.snapshot(t).paid.IsZero(), t.legacy != nil
	switch {
	case action == "resend" && !paid:
		h.tradesError(w, r, http.StatusConflict, "TRADE_NOT_PAID", "the trade is not paid: there is no notification to send")
		return
	case action == "resend" && t.notifyURL == "":
		h.tradesError(w, r, http.StatusConflict, "NO_NOTIFY_URL", "the trade's pay request named no notify_url")
		return
	case action == "resend":
		h.logger.Info("sandbox: send again", zap.String("out_trade_no", t.outTradeNo), zap.String("trade_no", t.tradeNo))
		h.resend(t)
	case legacy:
		h.tradesError(w, r, http.StatusConflict, "NO_REFUND", "the sandbox's legacy gateway has no refund")
		return
	default:
		h.refundInFull(t)
	}
	http.Redirect(w, r, tradesPath+"/"+no, http.StatusSeeOther)
}

// refundInFull refunds what is left of t's amount as alipay.trade.refund
// does, with the same store logic, and records the call in t's events.
// The out_request_no is the out_trade_no, as for a refund made without
// one, unless a refund has it already.
func (h *Handler) refundInFull(t *trade) {
	at := now()
	snap := h.trades.snapshot(t)
	amount := t.amount - snap.refunded
	if amount <= 0 {
		amount = t.amount // refused as the trade's state has it
	}
	reqNo := t.outTradeNo
	for n := 2; snap.refunds[reqNo] != nil; n++ {
		reqNo = fmt.Sprintf("sandbox_refund_%d", n)
	}
	biz := apiBiz{"trade_no": t.tradeNo, "out_request_no": reqNo, "refund_amount": amount.String(),
		"refund_reason": "refund in full from the sandbox's trade page"}
	_, f := apiRefund(h.trades, t.appID, biz, at)
	h.trades.event(t, apiEvent("alipay.trade.refund", "page", biz, f, at))
	h.logger.Info("sandbox: refund in full", zap.String("out_trade_no", t.outTradeNo),
		zap.Any("code", f["code"]), zap.Any("sub_code", f["sub_code"]))
}

// tradesError answers a trade page's request with an error, as JSON if
// asked for.
func (h *Handler) tradesError(w http.ResponseWriter, r *http.Request, status int, code, reason string) {
	if caddyconf.AcceptsJSON(r) {
		writeJSON(w, status, map[string]string{"error": reason, "code": code})
		return
	}
	renderPage(w, status, errorPageTemplate, &gatewayError{code, reason})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		http.Error(w, "encoding error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}
