package sandbox

import (
	"maps"
	"slices"
	"strconv"
	"time"

	"github.com/caddy-alipay/caddy-alipay/internal/protocol"
)

// A trade and what the store keeps of it. The store (trades.go) owns the
// changing fields; this file holds the types and the helpers that the
// store calls with its lock held, or that read a snapshot.

// A trade is one order at the sandbox. The fields of its first group are
// fixed when the store opens it and may be read without the lock; the
// others change, and only the store's methods read or write them.
type trade struct {
	// Fixed when the trade opens.
	id                            string // the cashier's unguessable id
	appID, outTradeNo             string
	subject, body, passback       string
	amount                        protocol.Amount
	quitURL, notifyURL, returnURL string
	tradeNo                       string
	created                       time.Time
	// product is how the trade was opened: productPage, productWAP,
	// productApp, productQR or productBarcode ("" for a legacy trade).
	product string
	// legacy: a create_direct_pay_by_user trade, or nil for OpenAPI's.
	// A legacy trade has no appID, so no OpenAPI call finds it. The
	// pointer is fixed; the fields it points to change with the order's
	// latest request, under the lock.
	legacy *legacyTrade

	// Under the lock. method and signType are the order's latest
	// request's: the callbacks speak as it spoke.
	method, signType string
	status           string
	paid             time.Time
	// unscanned: a precreated trade whose QR code no buyer has scanned
	// yet. Alipay creates the trade at the scan: until then queries do
	// not find it and its cashier does not open.
	unscanned bool
	// payAt: when a barcode payment that the buyer confirms in the app
	// becomes paid by itself (zero: never). The store settles it then,
	// or earlier when something reads the trade after that time.
	payAt time.Time

	// The refunds: those of OpenAPI by out_request_no (legacy batch
	// refunds have none), every one in the order made, and their total.
	// alipay.trade.close makes an unpaid trade TRADE_CLOSED; a trade
	// refunded in full is TRADE_CLOSED too.
	refunds    map[string]*refund
	refundList []*refund
	refunded   protocol.Amount

	// The notifications that tell of the trade, oldest first: the
	// payment's, then one per refund (a legacy batch's is shared by the
	// trades of the batch). Each has its own retry loop (notify.go).
	notes []*notification

	// What else the sandbox did for the trade, for its page
	// (tradepages.go): the latest maxTradeLog events, oldest first, and
	// how many there were in all.
	events      []tradeEvent
	eventsTotal int
}

// A refund is money given back on a trade: by an OpenAPI call, a legacy
// batch, or a button of the trade's page. It never changes once made.
type refund struct {
	outRequestNo string // OpenAPI's; "" for a legacy batch's
	batchNo      string // a legacy batch's; "" for OpenAPI's
	reason       string
	amount       protocol.Amount
	at           time.Time
	// by is who asked for it: refundByAPI, refundByBatch or refundByPage;
	// method the OpenAPI method or legacy service that made it ("" for a
	// legacy trade's page button).
	by, method string
}

// Who asked for a refund.
const (
	refundByAPI   = "api"   // the shop, by an OpenAPI call
	refundByBatch = "batch" // the shop or its seller, by a legacy batch
	refundByPage  = "page"  // the developer, by the trade page's button
)

// maxTradeLog is how many notification attempts (per notification),
// events and notifications a trade keeps for its page: the latest ones.
// With max_trades it bounds the sandbox's memory.
const maxTradeLog = 50

// A tradeEvent is something other than a notification that touched a
// trade: the buyer sent back to return_url or to quit_url, or a call of
// the shop about it.
type tradeEvent struct {
	at time.Time
	// kind is "return", "cancel", the OpenAPI method or the legacy
	// service.
	kind string
	// source is who caused it: "buyer" (at the cashier), "shop" (a call
	// signed with the app's or the partner's key), "seller" (the legacy
	// password page) or "page" (a button of the trade's page).
	source        string
	code, subCode string // an OpenAPI call's answer; a legacy one's T or F and error
	detail        string
}

// appendBounded appends v to a log of at most maxTradeLog entries,
// forgetting the oldest.
func appendBounded[T any](log []T, v T) []T {
	if len(log) >= maxTradeLog {
		log = slices.Delete(log, 0, len(log)-maxTradeLog+1)
	}
	return append(log, v)
}

// tradeKey is a trade's key in byKey: app_id and out_trade_no. A legacy
// trade's app_id is empty, which no OpenAPI request has.
func tradeKey(appID, outTradeNo string) string { return appID + "\x00" + outTradeNo }

// closedUnpaid is a trade that alipay.trade.close or close_trade closed.
func (t *trade) closedUnpaid() bool { return t.status == "TRADE_CLOSED" && t.paid.IsZero() }

// A tradeSnapshot is a copy of a trade, taken under the store's lock:
// what a callback, an API answer or a page reads of it. Its notes are
// copies too, in notices; the trade's own notes field is nil.
type tradeSnapshot struct {
	trade
	notices []noteSnapshot
}

// snapshot copies t, with its events and the notifications' attempts if
// logs. The caller holds the lock.
func (t *trade) snapshot(logs bool) tradeSnapshot {
	s := tradeSnapshot{trade: *t}
	if t.legacy != nil {
		l := *t.legacy
		s.legacy = &l
	}
	s.refunds = maps.Clone(t.refunds)
	s.refundList = slices.Clone(t.refundList)
	s.notes, s.events = nil, nil
	if logs {
		s.events = slices.Clone(t.events)
	}
	for _, n := range t.notes {
		s.notices = append(s.notices, n.snapshot(logs))
	}
	return s
}

// nextDue is the earliest time that one of the trade's notifications is
// due, or zero when none has anything left to send.
func (s tradeSnapshot) nextDue() time.Time {
	var due time.Time
	for _, n := range s.notices {
		if !n.next.IsZero() && (due.IsZero() || n.next.Before(due)) {
			due = n.next
		}
	}
	return due
}

// The products a trade is opened by.
const (
	productPage    = "page"    // alipay.trade.page.pay
	productWAP     = "wap"     // alipay.trade.wap.pay
	productApp     = "app"     // alipay.trade.app.pay, the order string of the app SDK
	productQR      = "qr"      // alipay.trade.precreate, the QR code the buyer scans
	productBarcode = "barcode" // alipay.trade.pay, the buyer's payment code
)

// browserProduct reports whether p is a product whose buyer may switch
// to the other one with the same order: page and WAP pay open the same
// cashier, and a shop may send a buyer to either.
func browserProduct(p string) bool { return p == productPage || p == productWAP }

// tradeView is what the cashier page shows.
type tradeView struct {
	ID, OutTradeNo, TradeNo, Subject, Amount, Status string
	Service                                          string // legacy trades: the service
	Product                                          string
	Paid, Unscanned                                  bool
}

// A refundOutcome is what a refund did with a request.
type refundOutcome int

const (
	refundMade        refundOutcome = iota // money moved
	refundRepeated                         // out_request_no was refunded before, this amount: nothing moved
	refundOtherAmount                      // out_request_no was refunded before, another amount
	refundNotPaid                          // the trade is not paid
	refundClosed                           // the trade is closed (refunded in full, or closed unpaid)
	refundTooMuch                          // more than is left to refund
)

// A refundResult is what a refund did: the outcome, the refund of the
// out_request_no (new, or made before; nil when there is none), and the
// trade's total refunded after it.
type refundResult struct {
	outcome  refundOutcome
	refund   *refund
	refunded protocol.Amount
}

// refundCheck is whether amount more may be refunded of t, as OpenAPI
// and the legacy batches both require: t is paid, not closed, and has
// that much left. The caller holds the lock.
func (t *trade) refundCheck(amount protocol.Amount) refundOutcome {
	switch {
	case t.status == "WAIT_BUYER_PAY":
		return refundNotPaid
	case t.status == "TRADE_CLOSED":
		return refundClosed
	case t.refunded+amount > t.amount:
		return refundTooMuch
	}
	return refundMade
}

// addRefund records r on t, a refund that refundCheck allowed: the total
// grows, and a trade refunded in full is TRADE_CLOSED. The caller holds
// the lock.
func (t *trade) addRefund(r *refund) {
	if r.outRequestNo != "" {
		if t.refunds == nil {
			t.refunds = map[string]*refund{}
		}
		t.refunds[r.outRequestNo] = r
	}
	t.refundList = append(t.refundList, r)
	t.refunded += r.amount
	if t.refunded == t.amount {
		t.status = "TRADE_CLOSED"
	}
}

// freeRequestNo is an out_request_no that no refund of t has: its
// out_trade_no, Alipay's default for a trade's one refund, unless a
// refund has it already. For the refunds that the sandbox makes itself
// (the page's button, alipay.trade.cancel). The caller holds the lock,
// or reads a snapshot.
func (t *trade) freeRequestNo() string {
	reqNo := t.outTradeNo
	for n := 2; t.refunds[reqNo] != nil; n++ {
		reqNo = "sandbox_refund_" + strconv.Itoa(n)
	}
	return reqNo
}

// addNote adds n to t's notifications, keeping at most maxTradeLog: the
// first (the payment's, usually) stays, and the oldest of the others
// whose schedule has ended makes room, or else the oldest. A note
// forgotten here still runs its retry loop. The caller holds the lock.
func (t *trade) addNote(n *notification) {
	if len(t.notes) >= maxTradeLog {
		i := slices.IndexFunc(t.notes[1:], func(n *notification) bool { return n.next.IsZero() }) + 1
		if i == 0 {
			i = 1
		}
		t.notes = slices.Delete(t.notes, i, i+1)
	}
	t.notes = append(t.notes, n)
}
