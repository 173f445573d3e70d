package sandbox

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
	"time"

	"github.com/caddy-alipay/caddy-alipay/internal/protocol"
)

// What the trade pages show of a trade, as HTML and as JSON (the names
// are documented at the top of tradepages.go), made from a snapshot.

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
	Product       string  `json:"product"`
	AwaitingScan  bool    `json:"awaiting_scan"`
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
	NoticeCount               int       `json:"-"` // how many notifications
	// The notifications' state in words, when there are none to show
	// one by one: Delivery for the trade's page, DeliveryShort for the
	// list; DeliveryClass is ok, bad or empty.
	Delivery, DeliveryShort, DeliveryClass string `json:"-"`
	// The buttons: whether each is offered, and what each does.
	CanResend, CanRefund bool   `json:"-"`
	RefundAmount         string `json:"-"`
	// Suffix makes the page's element ids unique: "" for the newest trade
	// of the page (ids resend, refund, delivery, attempts, ...), and
	// "-<trade_no>" for the others.
	Suffix string `json:"-"`
}

// tradeDoc is a trade as its own page shows it: the summary, with its
// refunds, notifications, attempts and events. The list leaves them out,
// so that its size grows with the trades alone.
type tradeDoc struct {
	tradeSummary
	Attempts      []attemptDoc `json:"attempts"`
	Events        []eventDoc   `json:"events"`
	Refunds       []refundDoc  `json:"refunds"`
	Notifications []noteDoc    `json:"notifications"`
}

type attemptDoc struct {
	At           string `json:"at"`
	Notification string `json:"notification"`
	URL          string `json:"url"`
	Status       *int   `json:"status"`
	Error        string `json:"error"`
	DurationMS   int64  `json:"duration_ms"`
	Answer       string `json:"answer"`
	Accepted     bool   `json:"accepted"`
	NotifyID     string `json:"notify_id"`
	Resend       bool   `json:"resend"`

	AtTime time.Time `json:"-"`
	Number int       `json:"-"` // its number among all its notification's attempts, from 1
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

type refundDoc struct {
	Amount       string `json:"amount"`
	OutRequestNo string `json:"out_request_no"`
	BatchNo      string `json:"batch_no"`
	Reason       string `json:"reason"`
	At           string `json:"at"`
	By           string `json:"by"`
	Method       string `json:"method"`

	AtTime time.Time `json:"-"`
}

type noteDoc struct {
	ID            string            `json:"id"`
	NotifyType    string            `json:"notify_type"`
	About         string            `json:"about"`
	OutRequestNo  string            `json:"out_request_no"`
	BatchNo       string            `json:"batch_no"`
	URL           string            `json:"url"`
	NotifyID      string            `json:"notify_id"`
	Charset       string            `json:"charset"`
	SignType      string            `json:"sign_type"`
	Fields        map[string]string `json:"fields"`
	Created       string            `json:"created"`
	Attempts      []attemptDoc      `json:"attempts"`
	AttemptsTotal int               `json:"attempts_total"`
	NextAttempt   *string           `json:"next_attempt"`
	Delivered     bool              `json:"delivered"`
	GivenUp       bool              `json:"given_up"`

	// Number is its place among the trade's notifications, from 1; Tag
	// makes its element ids unique within the trade: "" for the first
	// (ids resend, delivery, attempts, next-attempt), "-n<Number>" for
	// the others.
	Number                  int       `json:"-"`
	Tag                     string    `json:"-"`
	NextAt                  time.Time `json:"-"`
	Delivery, DeliveryClass string    `json:"-"`
	ResendNote              string    `json:"-"`
	FieldKeys               []string  `json:"-"` // Fields' keys, sorted
}

// rfc3339 writes a time in RFC 3339, in Beijing time, to the millisecond.
func rfc3339(t time.Time) string {
	return t.In(protocol.Beijing).Format("2006-01-02T15:04:05.000Z07:00")
}

// optTime is rfc3339 of t, or nil for zero.
func optTime(t time.Time) *string {
	if t.IsZero() {
		return nil
	}
	s := rfc3339(t)
	return &s
}

// summaryOf describes a trade, as its snapshot t has it, at at. Its
// notification fields sum up all its notifications: attempts_total is
// theirs in all, next_attempt the earliest due, delivered that every one
// was accepted, given_up that one was given up.
func (h *Handler) summaryOf(t tradeSnapshot, at time.Time) tradeSummary {
	next := t.nextDue()
	d := tradeSummary{ID: t.id, OutTradeNo: t.outTradeNo, TradeNo: t.tradeNo, Subject: t.subject,
		Amount: t.amount.String(), Status: t.status, Protocol: "openapi", AppID: t.appID, Method: t.method,
		SignType: t.signType, NotifyURL: t.notifyURL, ReturnURL: t.returnURL,
		Created: rfc3339(t.created), Paid: optTime(t.paid), Refunded: t.refunded.String(),
		NextAttempt: optTime(next), EventsTotal: t.eventsTotal,
		CreatedAt: t.created, PaidAt: t.paid, NextAt: next, NoticeCount: len(t.notices),
		Product: t.product, AwaitingScan: t.unscanned}
	if t.legacy != nil {
		d.Protocol, d.Legacy, d.Charset, d.Product = "legacy", true, t.legacy.charset, productPage
		d.Method, d.Partner = "create_direct_pay_by_user", t.legacy.partner
	}
	d.Delivered = len(t.notices) > 0
	for _, n := range t.notices {
		d.AttemptsTotal += n.attemptsTotal
		d.Delivered = d.Delivered && n.delivered
		d.GivenUp = d.GivenUp || n.gaveUp
	}
	h.describeDelivery(&d, t, at)
	d.CanResend = len(t.notices) > 0
	if !t.paid.IsZero() && t.status != "TRADE_CLOSED" {
		d.CanRefund = true
		d.RefundAmount = (t.amount - t.refunded).String()
	}
	return d
}

// docOf is summaryOf with t's refunds, notifications, attempts and
// events. attempts are all its notifications' attempts kept, merged,
// oldest first, the latest maxTradeLog of them.
func (h *Handler) docOf(t tradeSnapshot, at time.Time) tradeDoc {
	d := tradeDoc{tradeSummary: h.summaryOf(t, at), Attempts: []attemptDoc{}, Events: []eventDoc{},
		Refunds: []refundDoc{}, Notifications: []noteDoc{}}
	for i, n := range t.notices {
		nd := h.noteDocOf(n, i, at)
		d.Notifications = append(d.Notifications, nd)
		d.Attempts = append(d.Attempts, nd.Attempts...)
	}
	slices.SortStableFunc(d.Attempts, func(a, b attemptDoc) int { return a.AtTime.Compare(b.AtTime) })
	if len(d.Attempts) > maxTradeLog {
		d.Attempts = d.Attempts[len(d.Attempts)-maxTradeLog:]
	}
	for _, r := range t.refundList {
		d.Refunds = append(d.Refunds, refundDoc{Amount: r.amount.String(), OutRequestNo: r.outRequestNo, BatchNo: r.batchNo,
			Reason: r.reason, At: rfc3339(r.at), By: r.by, Method: r.method, AtTime: r.at})
	}
	for _, e := range t.events {
		d.Events = append(d.Events, eventDoc{At: rfc3339(e.at), Kind: e.kind, Source: e.source, Code: e.code,
			SubCode: e.subCode, Detail: e.detail, AtTime: e.at})
	}
	return d
}

// noteDocOf describes n, the trade's notification number i (from 0).
func (h *Handler) noteDocOf(n noteSnapshot, i int, at time.Time) noteDoc {
	d := noteDoc{ID: n.id, NotifyType: n.notifyType, About: n.about, OutRequestNo: n.outRequestNo, BatchNo: n.batchNo,
		URL: n.url, NotifyID: n.notifyID, Charset: n.charset, SignType: n.signType, Fields: n.fields,
		Created: rfc3339(n.created), Attempts: []attemptDoc{}, AttemptsTotal: n.attemptsTotal,
		NextAttempt: optTime(n.next), Delivered: n.delivered, GivenUp: n.gaveUp,
		Number: i + 1, NextAt: n.next, FieldKeys: slices.Sorted(maps.Keys(n.fields))}
	if i > 0 {
		d.Tag = "-n" + strconv.Itoa(i+1)
	}
	first := n.attemptsTotal - len(n.attempts) + 1
	for j, a := range n.attempts {
		ad := attemptDoc{At: rfc3339(a.at), Notification: n.id, URL: a.url, Error: a.err, DurationMS: a.duration.Milliseconds(),
			Answer: a.answer, Accepted: a.accepted, NotifyID: a.notifyID, Resend: a.resend, AtTime: a.at, Number: first + j}
		if a.status != 0 {
			status := a.status
			ad.Status = &status
		}
		d.Attempts = append(d.Attempts, ad)
	}
	schedule := len(h.retry) + 1
	switch {
	case n.delivered:
		d.Delivery, d.DeliveryClass = "Delivered 已送达: the shop accepted the notification. Nothing more is scheduled.", "ok"
	case !n.next.IsZero() && n.next.After(at):
		d.Delivery = fmt.Sprintf("Next attempt 下次通知: attempt %d of %d on the schedule, at %s (in %s).",
			n.nextNumber, schedule, protocol.Timestamp(n.next), n.next.Sub(at).Round(time.Second))
		d.DeliveryClass = "bad"
	case !n.next.IsZero():
		d.Delivery = fmt.Sprintf("Sending attempt %d of %d on the schedule now.", n.nextNumber, schedule)
	case n.gaveUp:
		d.Delivery = fmt.Sprintf("Given up 已放弃: none of the %d attempts on the schedule was accepted. Nothing more is scheduled.", schedule)
		d.DeliveryClass = "bad"
	default:
		d.Delivery, d.DeliveryClass = "Stopped: the sandbox stopped before the notification was accepted.", "bad"
	}
	if n.waiting(at) {
		d.ResendNote = fmt.Sprintf("Sends attempt %d of the schedule now, in place of the wait; the schedule goes on unless it is accepted.", n.nextNumber)
	} else {
		d.ResendNote = "Sends one attempt more, now, beside the schedule."
	}
	return d
}

// describeDelivery puts the trade's notifications' state in words: for
// the list in short, and for the trade's page when it has none.
func (h *Handler) describeDelivery(d *tradeSummary, t tradeSnapshot, at time.Time) {
	switch {
	case len(t.notices) == 0 && t.notifyURL == "":
		d.Delivery, d.DeliveryShort = "No notify_url: the sandbox sends no notification for this trade.", "no notify_url"
	case len(t.notices) == 0:
		d.Delivery, d.DeliveryShort = "Not paid: nothing to send.", "—"
	case !d.NextAt.IsZero() && d.NextAt.After(at):
		d.DeliveryShort, d.DeliveryClass = "next "+protocol.Timestamp(d.NextAt), "bad"
	case !d.NextAt.IsZero():
		d.DeliveryShort = "sending"
	case d.Delivered:
		d.DeliveryShort, d.DeliveryClass = "delivered", "ok"
	case d.GivenUp:
		d.DeliveryShort, d.DeliveryClass = "given up", "bad"
	default:
		d.DeliveryShort, d.DeliveryClass = "stopped", "bad"
	}
}

// ByText says who made the refund, for the page.
func (r refundDoc) ByText() string {
	switch r.By {
	case refundByAPI:
		return "shop API (" + r.Method + ")"
	case refundByBatch:
		return "legacy batch (" + r.Method + ")"
	}
	return "page button"
}

// AboutText says what the notification tells, for the page.
func (d noteDoc) AboutText() string {
	switch d.About {
	case noteAboutRefund:
		return "refund 退款, out_request_no " + d.OutRequestNo
	case noteAboutBatch:
		return "batch refund 批量退款, batch_no " + d.BatchNo
	case noteAboutClose:
		return "close 交易关闭, unpaid in time"
	}
	return "payment 支付"
}

// ProductText names the trade's product, for the pages.
func (d tradeSummary) ProductText() string {
	switch d.Product {
	case productWAP:
		return "wap 手机网站支付"
	case productApp:
		return "app APP支付"
	case productQR:
		return "qr 当面付扫码"
	case productBarcode:
		return "barcode 当面付条码"
	}
	return "page 电脑网站支付"
}
