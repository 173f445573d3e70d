package sandbox

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/caddy-alipay/caddy-alipay/internal/protocol"
)

// The trade store: every trade the sandbox keeps, what happened to each,
// and the retry loops of their notifications. Its lock is taken here and
// in schedule.go only: the rest of the package asks the store's methods,
// which copy what they are asked for (tradeSnapshot) or make one change,
// under the lock. The store outlives a reload (pool.go).

// defaultMaxTrades is how many trades the sandbox keeps by default.
const defaultMaxTrades = 5000

// maxBatches bounds the legacy batches remembered, by which a batch sent
// again refunds nothing more. A batch_no carries the day it is sent on,
// and only today's are taken, so the store forgets the others' first.
const maxBatches = 1000

// tradeStore holds the trades in memory, at most max of them, and runs
// the retry loops of their notifications. Every sandbox of one identity
// shares one store across reloads (pool.go); its retry loops run until
// the last of them lets go (Destruct). Its lock guards every trade's and
// every notification's changing fields too.
type tradeStore struct {
	mu        sync.Mutex
	max       int               // the current sandbox's max_trades
	order     []*trade          // oldest first
	byKey     map[string]*trade // app_id + out_trade_no
	byCashier map[string]*trade // cashier id
	byNo      map[string]*trade // trade_no
	counter   int64
	dropped   int64 // trades dropped to stay within max
	notes     int64 // notifications made, which numbers them

	// The legacy batches refunded, by batch_no, oldest first in
	// batchOrder.
	batches    map[string]*legacyBatch
	batchOrder []string

	// handlers are the sandboxes that share the store, in the order they
	// were provisioned: the last is the current one, whose settings
	// (max_trades, notify_retry, logger, signers) the store follows.
	// last is the last to let go, which loops still ending read.
	handlers []*Handler
	last     *Handler

	// sent remembers the notify_ids of legacy callbacks for
	// notify_verify, and pending the legacy password pages' batches
	// until the seller confirms, across reloads like the trades (each
	// with its own lock).
	sent    *sentNotifyIDs
	pending *pendingBatches

	// The store's lifetime: the retry loops end when ctx is done.
	ctx     context.Context
	cancel  context.CancelFunc
	loops   sync.WaitGroup
	stopped bool // Destruct began: no loop starts, none is scheduled
}

func newTradeStore() *tradeStore {
	ctx, cancel := context.WithCancel(context.Background())
	return &tradeStore{max: defaultMaxTrades, byKey: map[string]*trade{}, byCashier: map[string]*trade{}, byNo: map[string]*trade{},
		batches: map[string]*legacyBatch{},
		sent:    &sentNotifyIDs{at: map[string]time.Time{}, max: maxSentNotifyIDs},
		pending: &pendingBatches{byID: map[string]*legacyBatch{}, max: maxPendingBatches},
		ctx:     ctx, cancel: cancel}
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
	t, _, err := ts.openNew(t)
	return t, err
}

// openNew is open, and reports whether the trade is t, new.
func (ts *tradeStore) openNew(t *trade) (*trade, bool, error) {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	key := tradeKey(t.appID, t.outTradeNo)
	if old := ts.byKey[key]; old != nil {
		ts.settle(old)
		switch {
		case old.closedUnpaid():
			return nil, false, errTradeClosed
		case old.status != "WAIT_BUYER_PAY":
			return nil, false, &gatewayError{"ACQ.TRADE_HAS_SUCCESS", "交易已支付: this order is already paid"}
		case old.amount != t.amount || old.subject != t.subject:
			return nil, false, &gatewayError{"ACQ.CONTEXT_INCONSISTENT", "交易信息被篡改: this order number was opened with another amount or subject"}
		case old.notifyURL != t.notifyURL || old.returnURL != t.returnURL || old.quitURL != t.quitURL:
			// Where the payment's notification goes is fixed when the
			// trade opens.
			return nil, false, &gatewayError{"ACQ.CONTEXT_INCONSISTENT", "交易信息被篡改: this order number was opened with another notify_url, return_url or quit_url"}
		case old.product != t.product && !(browserProduct(old.product) && browserProduct(t.product)):
			// An app, QR or barcode trade is paid its own way; only page
			// and WAP pay share a cashier.
			return nil, false, &gatewayError{"ACQ.CONTEXT_INCONSISTENT", "交易信息被篡改: this order number was opened by another product (" + old.product + ")"}
		}
		old.signType, old.method = t.signType, t.method
		if old.legacy != nil && t.legacy != nil {
			// The callbacks speak as the latest request spoke; the
			// pointer stays.
			*old.legacy = *t.legacy
		}
		return old, false, nil
	}
	if len(ts.order) >= ts.max {
		ts.drop(ts.order[0])
	}
	ts.counter++
	created := now()
	t.id = protocol.RandomID()
	// 28 digits, as Alipay's: the date, 22001, then 15 digits unique here.
	t.tradeNo = fmt.Sprintf("%s22001%015d", created.In(protocol.Beijing).Format("20060102"), created.UnixMilli()%1e9*1e6+ts.counter%1e6)
	t.status = "WAIT_BUYER_PAY"
	t.created = created
	ts.byKey[key] = t
	ts.byCashier[t.id] = t
	ts.byNo[t.tradeNo] = t
	ts.order = append(ts.order, t)
	return t, true, nil
}

// drop forgets the oldest trade t. Its notifications that are still
// being retried go on. The caller holds the lock.
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
// app: findLegacy finds them.
func (ts *tradeStore) find(appID, tradeNo, outTradeNo string) *trade {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	t := ts.lookup(appID, tradeNo, outTradeNo)
	if t != nil && (t.legacy != nil || t.unscanned) {
		return nil
	}
	return t
}

// findUnscanned returns the app's precreated trade of out_trade_no whose
// QR code is not scanned yet, which find does not see; nil if there is
// none.
func (ts *tradeStore) findUnscanned(appID, outTradeNo string) *trade {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	if t := ts.byKey[tradeKey(appID, outTradeNo)]; t != nil && t.unscanned {
		return t
	}
	return nil
}

// scan is the buyer's scan of t's QR code: Alipay creates the trade,
// WAIT_BUYER_PAY. A closed trade stays closed (errTradeClosed), a paid
// one paid; scanning again changes nothing.
func (ts *tradeStore) scan(t *trade) *gatewayError {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	if t.closedUnpaid() {
		return errTradeClosed
	}
	t.unscanned = false
	return nil
}

// findLegacy returns the legacy trade with trade_no or, without one,
// out_trade_no, as the legacy services look trades up; nil if there is
// none.
func (ts *tradeStore) findLegacy(tradeNo, outTradeNo string) *trade {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	t := ts.lookup("", tradeNo, outTradeNo)
	if t != nil && t.legacy == nil {
		return nil
	}
	return t
}

// lookup is find's and findLegacy's search. The caller holds the lock.
func (ts *tradeStore) lookup(appID, tradeNo, outTradeNo string) *trade {
	var t *trade
	if tradeNo == "" {
		t = ts.byKey[tradeKey(appID, outTradeNo)]
	} else if t = ts.byNo[tradeNo]; t != nil && (t.appID != appID || (outTradeNo != "" && outTradeNo != t.outTradeNo)) {
		t = nil
	}
	if t != nil {
		ts.settle(t)
	}
	return t
}

// snapshot copies t as it is now, without its events and attempts.
func (ts *tradeStore) snapshot(t *trade) tradeSnapshot {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	ts.settle(t)
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
		ts.settle(t)
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
			ts.settle(t)
			list = append(list, t.snapshot(true))
		}
	}
	return list
}

// view is t as the cashier page shows it.
func (ts *tradeStore) view(t *trade) tradeView {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	ts.settle(t)
	v := tradeView{ID: t.id, OutTradeNo: t.outTradeNo, TradeNo: t.tradeNo, Subject: t.subject,
		Amount: t.amount.String(), Status: t.status, Product: t.product, Paid: !t.paid.IsZero(), Unscanned: t.unscanned}
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

// note returns t's notification of id ("": its first), or nil.
func (ts *tradeStore) note(t *trade, id string) *notification {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	for _, n := range t.notes {
		if n.id == id || id == "" {
			return n
		}
	}
	return nil
}

// startNote numbers n, adds it to the notifications of trades (one, or a
// legacy batch's) and starts its retry loop, its first attempt due at
// once. The caller holds the lock.
func (ts *tradeStore) startNote(n *notification, trades ...*trade) {
	ts.notes++
	n.id = strconv.FormatInt(ts.notes, 10)
	for _, t := range trades {
		t.addNote(n)
	}
	ts.startLoop(n, n.created)
}

// markPaid moves t from WAIT_BUYER_PAY to TRADE_SUCCESS (a legacy trade to
// legacyPaidStatus), once; a paid or closed trade is refused. With a
// notify_url, the payment's notification is made and its retry loop
// starts.
func (ts *tradeStore) markPaid(t *trade, at time.Time) *gatewayError {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	ts.settle(t)
	if ge := awaitingPayment(t); ge != nil {
		return ge
	}
	ts.paidLocked(t, at)
	return nil
}

// awaitingPayment refuses a trade that is not waiting for its buyer: paid,
// closed, or a QR code that no buyer has scanned. The caller holds the
// store's lock.
func awaitingPayment(t *trade) *gatewayError {
	switch {
	case !t.paid.IsZero():
		return &gatewayError{"ACQ.TRADE_HAS_SUCCESS", "this trade is already paid"}
	case t.status != "WAIT_BUYER_PAY":
		return errTradeClosed
	case t.unscanned:
		return errNotScanned
	}
	return nil
}

// errNotScanned refuses to pay a precreated trade whose QR code no buyer
// has scanned: Alipay has no trade to pay yet.
var errNotScanned = &gatewayError{"ACQ.TRADE_NOT_EXIST", "交易不存在: the QR code has not been scanned"}

// paidLocked makes t, WAIT_BUYER_PAY, paid at at, and starts the
// payment's notification if it has a notify_url. The caller holds the
// lock.
func (ts *tradeStore) paidLocked(t *trade, at time.Time) {
	t.status = "TRADE_SUCCESS"
	if t.legacy != nil {
		t.status = legacyPaidStatus
	}
	t.paid = at
	if t.notifyURL != "" {
		ts.startNote(newNote(t, noteAboutPayment, t.notifyURL, paymentFields(t), at), t)
	}
}

// settle pays t if it is a barcode payment whose payAt has come and it
// is still WAIT_BUYER_PAY (not cancelled meanwhile), paid at payAt. The
// store calls it wherever it reads or changes a trade, so that the
// trade's state follows the clock even before payLater's timer fires.
// The caller holds the lock.
func (ts *tradeStore) settle(t *trade) {
	if !t.payAt.IsZero() && t.paid.IsZero() && t.status == "WAIT_BUYER_PAY" && !now().Before(t.payAt) {
		ts.paidLocked(t, t.payAt)
	}
}

// close closes t unless it is paid, as alipay.trade.close and
// close_trade do, and reports whether t is now closed unpaid (closing it
// again is no error).
func (ts *tradeStore) close(t *trade) bool {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	ts.settle(t)
	if t.status == "WAIT_BUYER_PAY" {
		t.status = "TRADE_CLOSED"
	}
	return t.closedUnpaid()
}

// expire closes t, WAIT_BUYER_PAY, as Alipay closes a trade whose time to
// pay has run out, and, with a notify_url, starts the TRADE_CLOSED
// notification that Alipay sends then (closedFields, about
// noteAboutClose), which alipay.trade.close and close_trade do not send.
// A paid or closed trade is refused, as markPaid refuses one.
func (ts *tradeStore) expire(t *trade, at time.Time) *gatewayError {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	ts.settle(t)
	if ge := awaitingPayment(t); ge != nil {
		return ge
	}
	t.status = "TRADE_CLOSED"
	if t.notifyURL != "" {
		ts.startNote(newNote(t, noteAboutClose, t.notifyURL, closedFields(t, at), at), t)
	}
	return nil
}

// refund refunds amount of t as out_request_no reqNo, as
// alipay.trade.refund does: money moves once per out_request_no, and a
// trade refunded in full is TRADE_CLOSED. A refund that moved money
// sends its notification. by and method say who asked, and how.
func (ts *tradeStore) refund(t *trade, reqNo string, amount protocol.Amount, reason, by, method string, at time.Time) refundResult {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	ts.settle(t)
	if r := t.refunds[reqNo]; r != nil {
		if r.amount != amount {
			return refundResult{refundOtherAmount, r, t.refunded}
		}
		return refundResult{refundRepeated, r, t.refunded}
	}
	if outcome := t.refundCheck(amount); outcome != refundMade {
		return refundResult{outcome: outcome, refunded: t.refunded}
	}
	r := &refund{outRequestNo: reqNo, reason: reason, amount: amount, at: at, by: by, method: method}
	ts.refundOpenAPI(t, r)
	return refundResult{refundMade, r, t.refunded}
}

// refundOpenAPI records r, an allowed refund of OpenAPI trade t, and
// starts its notification to the trade's notify_url. The caller holds
// the lock.
func (ts *tradeStore) refundOpenAPI(t *trade, r *refund) {
	t.addRefund(r)
	if t.notifyURL != "" {
		n := newNote(t, noteAboutRefund, t.notifyURL, refundFields(t, r), r.at)
		n.outRequestNo = r.outRequestNo
		ts.startNote(n, t)
	}
}

// cancelTrade cancels t as alipay.trade.cancel does, and returns the action
// it took: "close" for an unpaid trade, closed (or closed before);
// "refund" for a paid one, whose amount left is refunded in full, with
// the refund's notification (nothing moves if nothing is left, and res
// is then refundRepeated).
func (ts *tradeStore) cancelTrade(t *trade, at time.Time) (action string, res refundResult) {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	ts.settle(t)
	if t.status == "WAIT_BUYER_PAY" {
		t.status = "TRADE_CLOSED"
	}
	if t.closedUnpaid() {
		return "close", refundResult{outcome: refundNotPaid}
	}
	res = refundResult{outcome: refundRepeated, refunded: t.refunded}
	if left := t.amount - t.refunded; left > 0 {
		r := &refund{outRequestNo: t.freeRequestNo(), amount: left, at: at, by: refundByAPI, method: "alipay.trade.cancel"}
		ts.refundOpenAPI(t, r)
		res = refundResult{refundMade, r, t.refunded}
	}
	return "refund", res
}

// A batchResult is what refundBatch did with a legacy batch: the error
// code that refuses it ("" when it is taken), whether it is one refunded
// before (taken, nothing more moved), and the trades of its items (those
// still kept, for a repeat).
type batchResult struct {
	code     string
	repeated bool
	trades   []*trade
}

// refundBatch checks legacy batch b, well formed, against the trades as
// they are, and with apply refunds every item, as Alipay's refund
// services do: a batch_no refunded before is answered as before if the
// batch is the same (nothing more moves) and refused otherwise; every
// item must be a legacy trade of the partner, paid, not closed, with
// that much left. The batch is taken or refused whole. Its
// batch_refund_notify, if it names a notify_url, is made once for all
// its trades and its retry loop starts.
func (ts *tradeStore) refundBatch(b *legacyBatch, apply bool, at time.Time) batchResult {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	if old := ts.batches[b.batchNo]; old != nil {
		if old.detail != b.detail {
			return batchResult{code: "DUPLICATE_BATCH_NO"}
		}
		res := batchResult{repeated: true}
		for _, it := range old.items {
			if t := ts.byNo[it.tradeNo]; t != nil {
				res.trades = append(res.trades, t)
			}
		}
		return res
	}
	trades := make([]*trade, len(b.items))
	for i, it := range b.items {
		t := ts.byNo[it.tradeNo]
		if t == nil || t.legacy == nil {
			return batchResult{code: "NOT_THIS_PARTNERS_TRADE"}
		}
		switch t.refundCheck(it.amount) {
		case refundNotPaid, refundClosed:
			return batchResult{code: "TRADE_STATUS_ERROR"}
		case refundTooMuch:
			return batchResult{code: "REFUND_AMOUNT_NOT_VALID"}
		}
		trades[i] = t
	}
	if !apply {
		return batchResult{trades: trades}
	}
	today := at.In(protocol.Beijing).Format("20060102")
	for len(ts.batchOrder) > 0 && (len(ts.batchOrder) >= maxBatches || !strings.HasPrefix(ts.batchOrder[0], today)) {
		delete(ts.batches, ts.batchOrder[0])
		ts.batchOrder = ts.batchOrder[1:]
	}
	ts.batches[b.batchNo] = b
	ts.batchOrder = append(ts.batchOrder, b.batchNo)
	for i, t := range trades {
		t.addRefund(&refund{batchNo: b.batchNo, reason: b.items[i].reason, amount: b.items[i].amount, at: at, by: b.by, method: b.service})
	}
	if b.notifyURL != "" {
		n := newNote(trades[0], noteAboutBatch, b.notifyURL, batchFields(b), at)
		n.charset, n.signType, n.batchNo = b.charset, b.signType, b.batchNo
		ts.startNote(n, trades...)
	}
	return batchResult{trades: trades}
}
