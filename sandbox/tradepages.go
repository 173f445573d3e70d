package sandbox

import (
	"encoding/json"
	"net/http"
	"strings"

	"github.com/caddy-alipay/caddy-alipay/internal/caddyconf"
	"github.com/caddy-alipay/caddy-alipay/internal/protocol"
	"go.uber.org/zap"
)

// The developer's window onto the sandbox, as payment platforms' webhook
// logs are: /sandbox/trades lists the trades, newest first, and
// /sandbox/trades/<out_trade_no> shows each trade of that out_trade_no
// with its refunds, each of its notifications (the payment's, then one
// per refund) with every attempt and the retry loop's next one, and the
// returns and calls that touched it. Its buttons are plain HTML forms
// (POST), each carrying the trade's cashier id, which only the sandbox's
// own pages know, so that another page in the developer's browser cannot
// press them:
//
//	POST /sandbox/trades/<out_trade_no>/resend  id=<id> notification=<n>  send notification n again, now
//	POST /sandbox/trades/<out_trade_no>/refund  id=<id>                   refund what is left, in full
//
// Both answer 303 See Other back to the trade's page. Resend sends only
// to the notification's own URL, which a signed request named; without
// notification it sends the trade's first. Refund refunds an OpenAPI
// trade as alipay.trade.refund does, and a legacy one as a batch of one
// item, whose batch_refund_notify goes to the trade's notify_url.
//
// With Accept: application/json both pages give the same data as JSON.
// The field names are stable:
//
//	GET /sandbox/trades:
//	  kept        number of trades kept now
//	  max_trades  the most kept (max_trades); beyond it the oldest is dropped
//	  dropped     number of trades dropped so far, oldest first
//	  trades      the trades, newest first, each without attempts, events, refunds and notifications
//	GET /sandbox/trades/<out_trade_no> (404 {"error": ...} if none):
//	  out_trade_no, trades (newest first)
//	a trade:
//	  id              the cashier id, the forms' id field
//	  out_trade_no, trade_no, subject
//	  amount          yuan, two decimals ("88.80")
//	  status          WAIT_BUYER_PAY, TRADE_SUCCESS, TRADE_CLOSED, TRADE_FINISHED (legacy, paid)
//	  protocol        "openapi" or "legacy"
//	  product         how it was opened: "page" (and every legacy trade), "wap", "app" (the app
//	                  SDK's order string), "qr" (alipay.trade.precreate) or "barcode"
//	                  (alipay.trade.pay)
//	  awaiting_scan   a qr trade whose QR code no buyer has scanned: queries do not find it yet
//	  app_id          OpenAPI's app id; "" for legacy
//	  partner         the legacy partner; "" for OpenAPI
//	  method          alipay.trade.page.pay, alipay.trade.wap.pay, alipay.trade.app.pay,
//	                  alipay.trade.precreate, alipay.trade.pay or create_direct_pay_by_user
//	  sign_type, notify_url, return_url
//	  created         RFC 3339, in Beijing time (+08:00), to the millisecond
//	  paid            RFC 3339, or null while unpaid
//	  refunded        yuan refunded so far ("0.00")
//	  attempts_total  attempts made in all, of all its notifications
//	  next_attempt    RFC 3339: when the earliest of its notifications' next attempts is due, or
//	                  was due while it is being sent; null when nothing is left to send (unpaid,
//	                  no notify_url, every notification delivered or given up)
//	  delivered       every one of its notifications was accepted (false with none)
//	  given_up        the schedule of one of its notifications ended with no attempt accepted
//	  events_total    events in all
//	  on the trade's page only:
//	  refunds         every refund, oldest first:
//	    amount        yuan
//	    out_request_no  OpenAPI's; "" for a legacy batch's
//	    batch_no      a legacy batch's; "" for OpenAPI's
//	    reason, at (RFC 3339)
//	    by            "api" (the shop's OpenAPI call), "batch" (a legacy batch: the shop's
//	                  nopwd request, or the seller's Confirm of the pwd page) or "page" (the
//	                  button here)
//	    method        alipay.trade.refund, alipay.trade.cancel, refund_fastpay_by_platform_nopwd,
//	                  refund_fastpay_by_platform_pwd; "" for a legacy trade's button
//	  notifications   oldest first, the latest 50 (the first, the payment's, always stays):
//	    id            its number, the Send again form's notification field
//	    notify_type   trade_status_sync or batch_refund_notify
//	    about         "payment", "refund" (OpenAPI, after a refund), "batch_refund" (legacy) or
//	                  "close" (closed unpaid, made by alipay-sandbox-notify --kind closed)
//	    out_request_no, batch_no  the refund it tells of
//	    url           where it is POSTed
//	    notify_id     OpenAPI: its one notify_id, kept by every retry; "" for legacy (each
//	                  attempt has a fresh one)
//	    charset, sign_type  how it is encoded and signed
//	    fields        what it tells, in UTF-8: all it carries but notify_time, notify_id,
//	                  sign_type and sign, which each sending adds
//	    created, attempts, attempts_total, next_attempt, delivered, given_up: as the trade's,
//	                  for this notification alone
//	  attempts        the latest 50 attempts of all its notifications, oldest first:
//	    at            RFC 3339
//	    notification  the id of its notification
//	    url           where it was POSTed
//	    status        the shop's HTTP status, or null when no answer came
//	    error         why no answer came ("...: connection refused", "timeout: ..."); "" when one came
//	    duration_ms   how long it took, answer read
//	    answer        the answer's first 200 bytes
//	    accepted      the answer was success (the attempt counted)
//	    notify_id     the notify_id it carried (legacy: a fresh one each time)
//	    resend        sent by the send-again button
//	  events          the latest 50 returns, cancels and calls, oldest first:
//	    at            RFC 3339
//	    kind          "return", "cancel", "scan" (a QR code opened), the OpenAPI method
//	                  (alipay.trade.query, alipay.trade.precreate, alipay.trade.pay, ...), the legacy
//	                  service (single_trade_query, ...), "refund in full" (a legacy trade's button)
//	                  or "alipay-sandbox-notify" (a trade made on demand)
//	    source        "buyer", "shop" (a call signed with the app's or the partner's key),
//	                  "seller" (the legacy password page) or "page" (a button here)
//	    code, sub_code  an OpenAPI call's answer ("10000", "ACQ.TRADE_HAS_CLOSE"), a legacy
//	                  one's is_success and error ("F", "TRADE_STATUS_NOT_AVAILD"); "" otherwise
//	    detail        what it asked and was told, in words
//
// The sandbox has nothing left to send when next_attempt is null for
// every trade.

const tradesPath = "/sandbox/trades"

// isTradesPath reports whether path is one of the trade pages'.
func isTradesPath(path string) bool {
	return path == tradesPath || strings.HasPrefix(path, tradesPath+"/")
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
	paid := !h.trades.snapshot(t).paid.IsZero()
	if action == "refund" {
		if t.legacy != nil {
			h.refundLegacyInFull(t)
		} else {
			h.refundInFull(t)
		}
		http.Redirect(w, r, tradesPath+"/"+no, http.StatusSeeOther)
		return
	}
	n := h.trades.note(t, r.PostForm.Get("notification"))
	switch {
	case n == nil && r.PostForm.Get("notification") != "":
		h.tradesError(w, r, http.StatusNotFound, "NO_SUCH_NOTIFICATION", "the trade has no notification "+r.PostForm.Get("notification"))
		return
	case n == nil && !paid:
		h.tradesError(w, r, http.StatusConflict, "TRADE_NOT_PAID", "the trade is not paid: there is no notification to send")
		return
	case n == nil:
		h.tradesError(w, r, http.StatusConflict, "NO_NOTIFY_URL", "the trade's requests named no notify_url")
		return
	}
	h.logger.Info("sandbox: send again", zap.String("out_trade_no", t.outTradeNo), zap.String("trade_no", t.tradeNo),
		zap.String("notification", n.id))
	h.resend(n)
	http.Redirect(w, r, tradesPath+"/"+no, http.StatusSeeOther)
}

// refundInFull refunds what is left of OpenAPI trade t's amount as
// alipay.trade.refund does, with the same store logic (its notification
// included), and records the call in t's events. The out_request_no is
// the out_trade_no, as for a refund made without one, unless a refund
// has it already.
func (h *Handler) refundInFull(t *trade) {
	at := now()
	snap := h.trades.snapshot(t)
	amount := t.amount - snap.refunded
	if amount <= 0 {
		amount = t.amount // refused as the trade's state has it
	}
	biz := apiBiz{"trade_no": t.tradeNo, "out_request_no": snap.freeRequestNo(), "refund_amount": amount.String(),
		"refund_reason": "refund in full from the sandbox's trade page"}
	_, f := refundCall(h.trades, t.appID, biz, at, refundByPage)
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
