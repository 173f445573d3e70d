package sandbox

import (
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/caddy-alipay/caddy-alipay/internal/protocol"
)

// The notifications that the sandbox sends, and what each tells. A trade
// has one per event that Alipay notifies: the payment, and each refund
// (OpenAPI's trade_status_sync with the refund's fields, or the legacy
// batch_refund_notify, which one batch sends for all its trades). Each
// notification has its fields, fixed when it is made, its own notify_id
// (OpenAPI; the legacy gateway gives each sending a fresh one), and its
// own retry schedule and attempts (notify.go, schedule.go).

// A notification is one message to a notify_url, sent until the shop
// answers success. The fields of its first group are fixed when it is
// made and may be read without the lock; the others are the store's,
// under its lock.
type notification struct {
	// Fixed when it is made.
	id         string // the store's number for it, which the Send again form names
	notifyType string // trade_status_sync or batch_refund_notify
	about      string // noteAboutPayment, noteAboutRefund or noteAboutBatch
	url        string
	legacy     bool
	// charset and signType: how it is encoded and signed, as the request
	// that caused it spoke (OpenAPI: utf-8 and the trade's sign_type).
	charset, signType string
	// notifyID is OpenAPI's one notify_id, kept by every retry; "" for a
	// legacy notification, which takes a fresh one each sending.
	notifyID string
	// fields are what it tells, in UTF-8: everything it carries but
	// notify_time, notify_id, sign_type and sign, which each sending adds.
	// Never changed once made.
	fields  map[string]string
	created time.Time
	// For the log and the page: the trade (a batch's first trade) and
	// the refund it tells of.
	outTradeNo, outRequestNo, batchNo string
	// wake tells the retry loop, while it waits, that a resend moved its
	// schedule (notify.go).
	wake chan struct{}

	// Under the lock: the latest maxTradeLog attempts, oldest first, and
	// how many there were in all.
	attempts      []notifyAttempt
	attemptsTotal int
	// The retry loop. next is when the schedule's next attempt is due,
	// or was due while that attempt is being sent: zero once the loop has
	// ended (or never started, the store being stopped). nextNumber is
	// that attempt's number on the schedule, from 1. sending: that
	// attempt is being sent, by the loop or, in the wait's place, by a
	// resend.
	next       time.Time
	nextNumber int
	sending    bool
	delivered  bool // an attempt was accepted
	gaveUp     bool // the schedule ended with no attempt accepted
}

// What a notification tells of.
const (
	noteAboutPayment = "payment"
	noteAboutRefund  = "refund"       // OpenAPI: trade_status_sync after a refund
	noteAboutBatch   = "batch_refund" // legacy: batch_refund_notify
)

// A notifyAttempt is one POST of a notification to its URL, as the
// trade's page shows it.
type notifyAttempt struct {
	at       time.Time // when it was sent
	url      string
	status   int    // the shop's HTTP status; 0 when no answer came
	err      string // why no answer came (connection refused, a timeout)
	duration time.Duration
	answer   string // the answer's first bytes
	accepted bool   // the answer was success
	notifyID string // the notify_id it carried
	resend   bool   // sent by the page's send-again button
}

// waiting reports whether the retry loop waits, at at, for the
// schedule's next attempt: a resend then takes the wait's place.
func (n *notification) waiting(at time.Time) bool {
	return !n.next.IsZero() && !n.sending && n.next.After(at)
}

// A noteSnapshot is a copy of a notification, taken under the store's
// lock.
type noteSnapshot struct{ notification }

// snapshot copies n, with its attempts if logs. The caller holds the
// lock.
func (n *notification) snapshot(logs bool) noteSnapshot {
	s := noteSnapshot{*n}
	s.attempts = nil
	if logs {
		s.attempts = slices.Clone(n.attempts)
	}
	return s
}

// newNote is a notification of t's, to url, with fields; the store gives
// it its id. The caller holds the lock (it reads t's sign type).
func newNote(t *trade, about, url string, fields map[string]string, at time.Time) *notification {
	maps.DeleteFunc(fields, func(_, v string) bool { return v == "" }) // neither signed nor sent
	n := &notification{notifyType: fields["notify_type"], about: about, url: url, fields: fields, created: at,
		charset: "utf-8", signType: t.signType, outTradeNo: t.outTradeNo, wake: make(chan struct{}, 1)}
	if t.legacy != nil {
		n.legacy, n.charset = true, t.legacy.charset
	} else {
		n.notifyID = protocol.RandomID()
	}
	return n
}

// paymentFields are what the payment's notification tells, with the
// fields Alipay sends: OpenAPI's trade_status_sync, or the legacy one.
// The caller holds the lock.
func paymentFields(t *trade) map[string]string {
	if t.legacy != nil {
		p := legacyCallbackFields(t)
		p["payment_type"] = "1"
		p["price"], p["quantity"] = t.amount.String(), "1"
		p["gmt_create"], p["gmt_payment"] = protocol.Timestamp(t.created), protocol.Timestamp(t.paid)
		p["is_total_fee_adjust"], p["use_coupon"], p["discount"] = "N", "N", "0.00"
		return p
	}
	return map[string]string{
		"notify_type": "trade_status_sync", "app_id": t.appID, "auth_app_id": t.appID, "charset": "utf-8", "version": "1.0",
		"trade_no": t.tradeNo, "out_trade_no": t.outTradeNo,
		"buyer_id": sandboxBuyerID, "buyer_logon_id": sandboxBuyerLogon,
		"seller_id": sandboxSellerID, "seller_email": sandboxSellerEmail,
		"trade_status": "TRADE_SUCCESS", "total_amount": t.amount.String(), "receipt_amount": t.amount.String(),
		"invoice_amount": t.amount.String(), "buyer_pay_amount": t.amount.String(), "point_amount": "0.00",
		"subject": t.subject, "body": t.body, "passback_params": t.passback,
		"gmt_create": protocol.Timestamp(t.created), "gmt_payment": protocol.Timestamp(t.paid),
		"fund_bill_list": `[{"amount":"` + t.amount.String() + `","fundChannel":"ALIPAYACCOUNT"}]`,
	}
}

// refundFields are what OpenAPI's notification after refund r tells: the
// payment's fields, with refund_fee the total refunded so far, gmt_refund
// (with milliseconds, as Alipay writes it), out_biz_no the refund's
// out_request_no, and trade_status TRADE_SUCCESS while money is left,
// TRADE_CLOSED (with gmt_close) once it is refunded in full. The caller
// holds the lock, after the refund.
func refundFields(t *trade, r *refund) map[string]string {
	p := paymentFields(t)
	p["refund_fee"] = t.refunded.String()
	p["gmt_refund"] = r.at.In(protocol.Beijing).Format("2006-01-02 15:04:05.000")
	p["out_biz_no"] = r.outRequestNo
	if t.status == "TRADE_CLOSED" {
		p["trade_status"], p["gmt_close"] = "TRADE_CLOSED", protocol.Timestamp(r.at)
	}
	return p
}

// legacyCallbackFields are the fields that the legacy payment's
// notification and return share. The seller is the request's own: the
// seller_id or seller_email it named, the other one the sandbox's. The
// caller holds the lock, or reads a snapshot.
func legacyCallbackFields(t *trade) map[string]string {
	sellerID, sellerEmail := t.legacy.sellerID, t.legacy.sellerEmail
	if sellerID == "" {
		sellerID = t.legacy.partner
	}
	if sellerEmail == "" {
		sellerEmail = sandboxSellerEmail
	}
	return map[string]string{
		"notify_type": "trade_status_sync", "out_trade_no": t.outTradeNo, "trade_no": t.tradeNo,
		"trade_status": legacyPaidStatus, "total_fee": t.amount.String(),
		"subject": t.subject, "body": t.body, "extra_common_param": t.legacy.extraCommonParam,
		"seller_id": sellerID, "seller_email": sellerEmail,
		"buyer_id": sandboxBuyerID, "buyer_email": sandboxBuyerEmail,
	}
}

// batchFields are what a legacy batch's batch_refund_notify tells: the
// batch_no, how many items were refunded, and each as
// trade_no^amount^SUCCESS, joined by #.
func batchFields(b *legacyBatch) map[string]string {
	items := make([]string, len(b.items))
	for i, it := range b.items {
		items[i] = it.tradeNo + "^" + it.amount.String() + "^SUCCESS"
	}
	return map[string]string{"notify_type": "batch_refund_notify", "batch_no": b.batchNo,
		"success_num": strconv.Itoa(len(b.items)), "result_details": strings.Join(items, "#")}
}
