package sandbox

import (
	"fmt"
	"sync"
	"time"

	"github.com/caddy-alipay/caddy-alipay/internal/protocol"
)

// A trade is one order at the sandbox.
type trade struct {
	id                                      string // the cashier's unguessable id
	appID, method, signType                 string
	outTradeNo, subject, body               string
	amount                                  protocol.Amount
	passback, quitURL, notifyURL, returnURL string
	tradeNo, notifyID, status               string
	created, paid                           time.Time
	// legacy: a create_direct_pay_by_user trade, or nil for OpenAPI's.
	// A legacy trade has no appID, so no OpenAPI call finds it.
	legacy *legacyTrade

	// OpenAPI state (api.go): the refunds by out_request_no and
	// their total in cents. alipay.trade.close makes an unpaid trade
	// TRADE_CLOSED; a trade refunded in full is TRADE_CLOSED too.
	refunds  map[string]*sandboxRefund
	refunded protocol.Amount

	// What the sandbox did for the trade, for its page (tradepages.go):
	// the latest maxTradeLog notification attempts and events, oldest
	// first, and how many there were in all.
	attempts                   []notifyAttempt
	events                     []tradeEvent
	attemptsTotal, eventsTotal int
	// The retry loop (notify.go). next is when its next attempt is due,
	// or was due while that attempt is being sent: zero before the trade
	// is paid and once the loop has ended. nextNumber is that attempt's
	// number on the schedule, from 1. wake is set while the loop waits,
	// for a resend to take the wait's place.
	next       time.Time
	nextNumber int
	wake       chan chan struct{}
	delivered  bool // an attempt was accepted
	gaveUp     bool // the schedule ended with no attempt accepted
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

// addEvent records e, keeping the latest maxTradeLog. The caller holds
// the store's lock.
func (t *trade) addEvent(e tradeEvent) {
	t.events = appendBounded(t.events, e)
	t.eventsTotal++
}

// appendBounded appends v to a log of at most maxTradeLog entries,
// forgetting the oldest.
func appendBounded[T any](log []T, v T) []T {
	if len(log) >= maxTradeLog {
		n := copy(log, log[len(log)-maxTradeLog+1:])
		var zero T
		for i := n; i < len(log); i++ {
			log[i] = zero
		}
		log = log[:n]
	}
	return append(log, v)
}

// event records e for t under the store's lock.
func (ts *tradeStore) event(t *trade, e tradeEvent) {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	t.addEvent(e)
}

// key is the trade's key in byKey: app_id and out_trade_no. A legacy
// trade's app_id is empty, which no OpenAPI request has.
func (t *trade) key() string { return t.appID + "\x00" + t.outTradeNo }

// tradeView is what the cashier page shows.
type tradeView struct {
	ID, OutTradeNo, TradeNo, Subject, Amount, Status string
	Service                                          string // legacy trades: the service
	Paid                                             bool
}

// defaultMaxTrades is how many trades the sandbox keeps by default.
const defaultMaxTrades = 5000

// tradeStore holds the trades in memory, at most max of them. Its lock
// guards every trade's mutable fields too.
type tradeStore struct {
	mu      sync.Mutex
	max     int
	order   []*trade          // oldest first
	byKey   map[string]*trade // app_id + out_trade_no
	byCash  map[string]*trade // cashier id
	byNo    map[string]*trade // trade_no
	counter int64
	dropped int64 // trades dropped to stay within max
}

func newTradeStore(max int) *tradeStore {
	return &tradeStore{max: max, byKey: map[string]*trade{}, byCash: map[string]*trade{}, byNo: map[string]*trade{}}
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
	key := t.key()
	if old := ts.byKey[key]; old != nil {
		switch {
		case old.status == "TRADE_CLOSED" && old.paid.IsZero():
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
			// The callbacks speak as the latest request spoke. The
			// pointer stays: the notifier reads it without the lock.
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
	ts.byKey[key] = t
	ts.byCash[t.id] = t
	ts.byNo[t.tradeNo] = t
	ts.order = append(ts.order, t)
	return t, nil
}

// drop forgets the oldest trade t. A notification of it that is still
// being retried goes on.
func (ts *tradeStore) drop(t *trade) {
	delete(ts.byKey, t.key())
	delete(ts.byCash, t.id)
	delete(ts.byNo, t.tradeNo)
	ts.order[0] = nil
	ts.order = ts.order[1:]
	ts.dropped++
}

func (ts *tradeStore) byID(id string) *trade {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	return ts.byCash[id]
}

// markPaid moves t from WAIT_BUYER_PAY to TRADE_SUCCESS (a legacy trade to
// legacyPaidStatus), once; a paid or closed trade is refused.
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
	if t.notifyURL != "" {
		// The first notification is due at once (deliver sends it).
		t.next, t.nextNumber = at, 1
	}
	return nil
}

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
