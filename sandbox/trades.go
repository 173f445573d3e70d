package sandbox

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/caddy-alipay/caddy-alipay/internal/protocol"
)

// The trade store: every trade the sandbox keeps, what happened to each,
// and the retry loops of their notifications. Its lock is taken here and
// in schedule.go only: the rest of the package asks the store's methods,
// which copy what they are asked for (tradeSnapshot) or make one change,
// under the lock. The store outlives a reload (pool.go).

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
	tradeNo, notifyID             string
	created                       time.Time
	// legacy: a create_direct_pay_by_user trade, or nil for OpenAPI's.
	// A legacy trade has no appID, so no OpenAPI call finds it. The
	// pointer is fixed; the fields it points to change with the order's
	// latest request, under the lock.
	legacy *legacyTrade
	// wake tells the retry loop, while it waits, that a resend moved its
	// schedule (notify.go).
	wake chan struct{}

	// Under the lock. method and signType are the order's latest
	// request's: the callbacks speak as it spoke.
	method, signType string
	status           string
	paid             time.Time

	// The refunds by out_request_no, and their total. alipay.trade.close
	// makes an unpaid trade TRADE_CLOSED; a trade refunded in full is
	// TRADE_CLOSED too.
	refunds  map[string]*refund
	refunded protocol.Amount

	// What the sandbox did for the trade, for its page (tradepages.go):
	// the latest maxTradeLog notification attempts and events, oldest
	// first, and how many there were in all.
	attempts                   []notifyAttempt
	events                     []tradeEvent
	attemptsTotal, eventsTotal int

	// The retry loop (notify.go). next is when the schedule's next
	// attempt is due, or was due while that attempt is being sent: zero
	// before the trade is paid and once the loop has ended. nextNumber is
	// that attempt's number on the schedule, from 1. sending: that
	// attempt is being sent, by the loop or, in the wait's place, by a
	// resend.
	next       time.Time
	nextNumber int
	sending    bool
	delivered  bool // an attempt was accepted
	gaveUp     bool // the schedule ended with no attempt accepted
}

// A refund is one alipay.trade.refund that moved money. It never changes
// once made.
type refund struct {
	outRequestNo, reason string
	amount               protocol.Amount
	at                   time.Time
}

// maxTradeLog is how many notification attempts, and how many events, a
// trade keeps for its page: the latest ones. With max_trades it bounds
// the sandbox's memory.
const maxTradeLog = 50

// A tradeEvent is something other than a notification that touched a
// trade: the buyer sent back to return_url or to quit_url, or an OpenAPI
// call about it.
type tradeEvent struct {
	at time.Time
	// kind is "return", "cancel" or the OpenAPI method.
	kind string
	// source is who caused it: "buyer" (at the cashier), "shop" (an
	// OpenAPI call signed with the app's key) or "page" (a button of the
	// trade's page).
	source        string
	code, subCode string // an OpenAPI call's answer
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

// closedUnpaid is a trade that alipay.trade.close closed.
func (t *trade) closedUnpaid() bool { return t.status == "TRADE_CLOSED" && t.paid.IsZero() }

// waiting reports whether the retry loop waits, at at, for the
// schedule's next attempt: a resend then takes the wait's place.
func (t *trade) waiting(at time.Time) bool {
	return !t.next.IsZero() && !t.sending && t.next.After(at)
}

// A tradeSnapshot is a copy of a trade, taken under the store's lock:
// what a callback, an API answer or a page reads of it.
type tradeSnapshot struct{ trade }

// snapshot copies t, with its attempts and events if logs. The caller
// holds the lock.
func (t *trade) snapshot(logs bool) tradeSnapshot {
	s := tradeSnapshot{*t}
	if t.legacy != nil {
		l := *t.legacy
		s.legacy = &l
	}
	s.refunds = maps.Clone(t.refunds)
	s.attempts, s.events = nil, nil
	if logs {
		s.attempts, s.events = slices.Clone(t.attempts), slices.Clone(t.events)
	}
	return s
}

// tradeView is what the cashier page shows.
type tradeView struct {
	ID, OutTradeNo, TradeNo, Subject, Amount, Status string
	Service                                          string // legacy trades: the service
	Paid                                             bool
}

// defaultMaxTrades is how many trades the sandbox keeps by default.
const defaultMaxTrades = 5000

// tradeStore holds the trades in memory, at most max of them, and runs
// the retry loops of their notifications. Every sandbox of one identity
// shares one store across reloads (pool.go); its retry loops run until
// the last of them lets go (Destruct). Its lock guards every trade's
// changing fields too.
type tradeStore struct {
	mu        sync.Mutex
	max       int               // the current sandbox's max_trades
	order     []*trade          // oldest first
	byKey     map[string]*trade // app_id + out_trade_no
	byCashier map[string]*trade // cashier id
	byNo      map[string]*trade // trade_no
	counter   int64
	dropped   int64 // trades dropped to stay within max

	// handlers are the sandboxes that share the store, in the order they
	// were provisioned: the last is the current one, whose settings
	// (max_trades, notify_retry, logger, signers) the store follows.
	// last is the last to let go, which loops still ending read.
	handlers []*Handler
	last     *Handler

	// sent remembers the notify_ids of legacy callbacks for
	// notify_verify, across reloads like the trades (its own lock).
	sent *sentNotifyIDs

	// The store's lifetime: the retry loops end when ctx is done.
	ctx     context.Context
	cancel  context.CancelFunc
	loops   sync.WaitGroup
	stopped bool // Destruct began: no loop starts, none is scheduled
}

func newTradeStore() *tradeStore {
	ctx, cancel := context.WithCancel(context.Background())
	return &tradeStore{max: defaultMaxTrades, byKey: map[string]*trade{}, byCashier: map[string]*trade{}, byNo: map[string]*trade{},
		sent: &sentNotifyIDs{at: map[string]time.Time{}, max: maxSentNotifyIDs}, ctx: ctx, cancel: cancel}
}

// Destruct implements caddy.Destructor: when the last sandbox that
// shares the store lets go of it, its retry loops stop, and Destruct
// returns once they have.
func (ts *tradeStore) Destruct() error {
	ts.mu.Lock()
	ts.stopped = true
	ts.mu.Unlock()
	ts.cancel()
	ts.loops.Wait()
	return nil
}

// attach makes h the store's current sandbox, whose max_trades applies
// from now on.
func (ts *tradeStore) attach(h *Handler) {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	ts.handlers = append(ts.handlers, h)
	ts.limit(h.MaxTrades)
}

// detach forgets h, and reports whether h was attached. The sandbox
// provisioned before it, if it still runs, is the current one again (a
// reload that failed leaves the old config running).
func (ts *tradeStore) detach(h *Handler) bool {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	i := slices.Index(ts.handlers, h)
	if i < 0 {
		return false
	}
	ts.handlers = slices.Delete(ts.handlers, i, i+1)
	if n := len(ts.handlers); n > 0 {
		ts.limit(ts.handlers[n-1].MaxTrades)
	} else {
		ts.last = h
	}
	return true
}

// current is the sandbox whose settings the retry loops read: the one
// provisioned last of those that share the store.
func (ts *tradeStore) current() *Handler {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	return ts.currentLocked()
}

func (ts *tradeStore) currentLocked() *Handler {
	if n := len(ts.handlers); n > 0 {
		return ts.handlers[n-1]
	}
	return ts.last
}

// limit sets the most trades kept to n, dropping the oldest beyond it.
// The caller holds the lock.
func (ts *tradeStore) limit(n int) {
	ts.max = n
	for len(ts.order) > ts.max {
		ts.drop(ts.order[0])
	}
}

// errTradeClosed refuses the cashier of a trade that alipay.trade.close
// closed.
var errTradeClosed = &gatewayError{"ACQ.TRADE_HAS_CLOSE", "交易已关闭: this trade was closed and can no longer be paid"}

// open stores t, or returns the trade already opened for the same order.
// Alipay refuses an order number reused for another amount or subject,
// and one already paid.
func (ts *tradeStore) open(t *trade) (*trade, error) {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	key := tradeKey(t.appID, t.outTradeNo)
	if old := ts.byKey[key]; old != nil {
		switch {
		case old.closedUnpaid():
			return nil, errTradeClosed
		case old.status != "WAIT_BUYER_PAY":
			return nil, &gatewayError{"ACQ.TRADE_HAS_SUCCESS", "交易已支付: this order is already paid"}
		case old.amount != t.amount || old.subject != t.subject:
			return nil, &gatewayError{"ACQ.CONTEXT_INCONSISTENT", "交易信息被篡改: this order number was opened with another amount or subject"}
		case old.notifyURL != t.notifyURL || old.returnURL != t.returnURL || old.quitURL != t.quitURL:
			// Where the payment's notification goes is fixed when the
			// trade opens.
			return nil, &gatewayError{"ACQ.CONTEXT_INCONSISTENT", "交易信息被篡改: this order number was opened with another notify_url, return_url or quit_url"}
		}
		old.signType, old.method = t.signType, t.method
		if old.legacy != nil && t.legacy != nil {
			// The callbacks speak as the latest request spoke; the
			// pointer stays.
			*old.legacy = *t.legacy
		}
		return old, nil
	}
	if len(ts.order) >= ts.max {
		ts.drop(ts.order[0])
	}
	ts.counter++
	created := now()
	t.id = protocol.RandomID()
	// 28 digits, as Alipay's: the date, 22001, then 15 digits unique here.
	t.tradeNo = fmt.Sprintf("%s22001%015d", created.In(protocol.Beijing).Format("20060102"), created.UnixMilli()%1e9*1e6+ts.counter%1e6)
	t.notifyID = protocol.RandomID()
	t.status = "WAIT_BUYER_PAY"
	t.created = created
	t.wake = make(chan struct{}, 1)
	ts.byKey[key] = t
	ts.byCashier[t.id] = t
	ts.byNo[t.tradeNo] = t
	ts.order = append(ts.order, t)
	return t, nil
}

// drop forgets the oldest trade t. A notification of it that is still
// being retried goes on. The caller holds the lock.
func (ts *tradeStore) drop(t *trade) {
	delete(ts.byKey, tradeKey(t.appID, t.outTradeNo))
	delete(ts.byCashier, t.id)
	delete(ts.byNo, t.tradeNo)
	ts.order[0] = nil
	ts.order = ts.order[1:]
	ts.dropped++
}

// byCashierID returns the trade of a cashier id, or nil.
func (ts *tradeStore) byCashierID(id string) *trade {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	return ts.byCashier[id]
}

// find returns the app's trade with trade_no or, without one,
// out_trade_no (both given: they must name the same trade), as OpenAPI
// calls look trades up; nil if there is none. Legacy trades belong to no
// app: the legacy protocol has query services of its own.
func (ts *tradeStore) find(appID, tradeNo, outTradeNo string) *trade {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	var t *trade
	if tradeNo != "" {
		t = ts.byNo[tradeNo]
		if t != nil && (t.appID != appID || (outTradeNo != "" && outTradeNo != t.outTradeNo)) {
			t = nil
		}
	} else {
		t = ts.byKey[tradeKey(appID, outTradeNo)]
	}
	if t != nil && t.legacy != nil {
		return nil
	}
	return t
}

// snapshot copies t as it is now, without its attempts and events.
func (ts *tradeStore) snapshot(t *trade) tradeSnapshot {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	return t.snapshot(false)
}

// A storeSummary is the store as the trade list shows it.
type storeSummary struct {
	trades    []tradeSnapshot // newest first, without attempts and events
	kept, max int
	dropped   int64 // trades dropped so far to stay within max
}

// summary copies every trade, newest first, for the trade list.
func (ts *tradeStore) summary() storeSummary {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	s := storeSummary{trades: make([]tradeSnapshot, 0, len(ts.order)), kept: len(ts.order), max: ts.max, dropped: ts.dropped}
	for _, t := range slices.Backward(ts.order) {
		s.trades = append(s.trades, t.snapshot(false))
	}
	return s
}

// withOutTradeNo copies the trades of out_trade_no no (an app's, another
// app's, a legacy one), newest first, with their attempts and events.
func (ts *tradeStore) withOutTradeNo(no string) []tradeSnapshot {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	var list []tradeSnapshot
	for _, t := range slices.Backward(ts.order) {
		if t.outTradeNo == no {
			list = append(list, t.snapshot(true))
		}
	}
	return list
}

// view is t as the cashier page shows it.
func (ts *tradeStore) view(t *trade) tradeView {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	v := tradeView{ID: t.id, OutTradeNo: t.outTradeNo, TradeNo: t.tradeNo, Subject: t.subject,
		Amount: t.amount.String(), Status: t.status, Paid: !t.paid.IsZero()}
	if t.legacy != nil {
		v.Service = "create_direct_pay_by_user"
	}
	return v
}

// event records e in t's events, keeping the latest maxTradeLog.
func (ts *tradeStore) event(t *trade, e tradeEvent) {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	t.events = appendBounded(t.events, e)
	t.eventsTotal++
}

// markPaid moves t from WAIT_BUYER_PAY to TRADE_SUCCESS (a legacy trade to
// legacyPaidStatus), once; a paid or closed trade is refused. With a
// notify_url, the notification's retry loop starts, its first attempt
// due at once.
func (ts *tradeStore) markPaid(t *trade, at time.Time) *gatewayError {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	switch {
	case !t.paid.IsZero():
		return &gatewayError{"ACQ.TRADE_HAS_SUCCESS", "this trade is already paid"}
	case t.status != "WAIT_BUYER_PAY":
		return errTradeClosed
	}
	t.status = "TRADE_SUCCESS"
	if t.legacy != nil {
		t.status = legacyPaidStatus
	}
	t.paid = at
	if t.notifyURL != "" && !ts.stopped {
		t.next, t.nextNumber = at, 1
		ts.loops.Add(1)
		go ts.deliver(t)
	}
	return nil
}

// close closes t unless it is paid, as alipay.trade.close does, and
// reports whether t is now closed unpaid (closing it again is no error).
func (ts *tradeStore) close(t *trade) bool {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	if t.status == "WAIT_BUYER_PAY" {
		t.status = "TRADE_CLOSED"
	}
	return t.closedUnpaid()
}

// A refundOutcome is what refund did with a request.
type refundOutcome int

const (
	refundMade        refundOutcome = iota // money moved
	refundRepeated                         // out_request_no was refunded before, this amount: nothing moved
	refundOtherAmount                      // out_request_no was refunded before, another amount
	refundNotPaid                          // the trade is not paid
	refundClosed                           // the trade is closed (refunded in full, or closed unpaid)
	refundTooMuch                          // more than is left to refund
)

// A refundResult is what refund did: the outcome, the refund of the
// out_request_no (new, or made before; nil when there is none), and the
// trade's total refunded after it.
type refundResult struct {
	outcome  refundOutcome
	refund   *refund
	refunded protocol.Amount
}

// refund refunds amount of t as out_request_no reqNo, as
// alipay.trade.refund does: money moves once per out_request_no, and a
// trade refunded in full is TRADE_CLOSED.
func (ts *tradeStore) refund(t *trade, reqNo string, amount protocol.Amount, reason string, at time.Time) refundResult {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	r := t.refunds[reqNo]
	res := refundResult{refund: r, refunded: t.refunded}
	switch {
	case r != nil && r.amount != amount:
		res.outcome = refundOtherAmount
	case r != nil:
		res.outcome = refundRepeated
	case t.status == "WAIT_BUYER_PAY":
		res.outcome = refundNotPaid
	case t.status == "TRADE_CLOSED":
		res.outcome = refundClosed
	case t.refunded+amount > t.amount:
		res.outcome = refundTooMuch
	default:
		r = &refund{outRequestNo: reqNo, reason: reason, amount: amount, at: at}
		if t.refunds == nil {
			t.refunds = map[string]*refund{}
		}
		t.refunds[reqNo] = r
		t.refunded += amount
		if t.refunded == t.amount {
			t.status = "TRADE_CLOSED"
		}
		res = refundResult{outcome: refundMade, refund: r, refunded: t.refunded}
	}
	return res
}
