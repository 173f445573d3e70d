package sandbox

import (
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/caddy-alipay/caddy-alipay/internal/protocol"
	"go.uber.org/zap"
)

// The legacy batch refunds: refund_fastpay_by_platform_nopwd, which the
// shop's server sends and which answers in XML, and
// refund_fastpay_by_platform_pwd, a page that the seller's browser opens
// and where the seller confirms with a password. Both take the same
// parameters, checked here as Alipay checks them and with its codes;
// then the store takes the batch, or refuses it, whole (the sandbox's
// simplification: Alipay may refund some items and report the others'
// errors in result_details). A batch taken refunds every item and sends
// batch_refund_notify to the request's notify_url.
//
//	GET /gateway.do?service=refund_fastpay_by_platform_pwd&…   the password page, or the error page
//	POST /sandbox/refund/<id>/confirm  password=…              the seller's Confirm
//
// <id> is the page's unguessable id for the batch, which only the page
// knows; Confirm refuses a form posted from another site.

const refundPagePrefix = "/sandbox/refund/"

// maxBatchItems is the most items a batch may have (batch_num).
const maxBatchItems = protocol.MaxRefunds

// maxPendingBatches bounds the password pages' batches kept until the
// seller confirms; the oldest is forgotten beyond it.
const maxPendingBatches = 100

// A legacyBatch is a legacy batch refund, well formed.
type legacyBatch struct {
	batchNo string
	items   []batchItem
	// detail is detail_data as text: the same batch_no sent again must
	// carry the same to be the same batch.
	detail            string
	notifyURL         string // "" sends no batch_refund_notify
	charset, signType string // the request's: its notification speaks as it spoke
	service           string // the service that sent it; "" for the trade page's button
	by                string // refundByBatch, or refundByPage
}

// A batchItem is one refund of a batch: trade_no^amount^reason.
type batchItem struct {
	tradeNo string
	amount  protocol.Amount
	reason  string
}

// parseDetailData reads detail_data, text, with the sidecar's rules
// (protocol.ParseDetailData: items trade_no^amount^reason joined by #,
// the reason under 256 bytes in charset and without ^ $ | #, so no
// split-refund parts), and names a refusal with Alipay's codes: more
// than 1000 items BATCH_NUM_EXCEED_LIMIT, a trade_no twice
// DUBL_TRADE_NO_IN_SAME_BATCH, anything else DETAIL_DATA_FORMAT_ERROR.
func parseDetailData(detail, charset string) ([]batchItem, *gatewayError) {
	if n := strings.Count(detail, "#") + 1; n > maxBatchItems {
		return nil, &gatewayError{"BATCH_NUM_EXCEED_LIMIT", "a batch has at most 1000 items, detail_data has " + strconv.Itoa(n)}
	}
	refunds, err := protocol.ParseDetailData(detail, charset)
	if err != nil {
		seen := map[string]bool{}
		for _, item := range strings.Split(detail, "#") {
			tradeNo, _, _ := strings.Cut(item, "^")
			if seen[tradeNo] {
				return nil, &gatewayError{"DUBL_TRADE_NO_IN_SAME_BATCH", "trade_no " + tradeNo + " is in the batch twice"}
			}
			seen[tradeNo] = true
		}
		return nil, &gatewayError{"DETAIL_DATA_FORMAT_ERROR", "detail_data: " + err.Error()}
	}
	items := make([]batchItem, len(refunds))
	for i, r := range refunds {
		amount, err := protocol.ParseAmount(r.Amount)
		if err != nil { // not reached: ParseDetailData checked it
			return nil, &gatewayError{"DETAIL_DATA_FORMAT_ERROR", "detail_data: refund " + strconv.Itoa(i+1) + ": amount " + err.Error()}
		}
		items[i] = batchItem{tradeNo: r.TradeNo, amount: amount, reason: r.Reason}
	}
	return items, nil
}

// parseBatch checks a refund request's own parameters, its signature
// already checked, as Alipay does: the seller, refund_date, batch_no,
// detail_data, batch_num, and notify_url where the sandbox may send.
func (h *Handler) parseBatch(p map[string]string, charset, service string) (*legacyBatch, *gatewayError) {
	text, ge := decodeLegacy(p, charset, "seller_email")
	if ge != nil {
		return nil, ge
	}
	switch {
	case p["seller_user_id"] == "" && p["seller_email"] == "":
		return nil, &gatewayError{"ILLEGAL_ARGUMENT", "seller_user_id or seller_email is required"}
	case p["seller_user_id"] != "" && !protocol.ValidAlipayID(p["seller_user_id"]):
		return nil, &gatewayError{"ILLEGAL_ARGUMENT", "seller_user_id must be 2088 and 12 digits"}
	case p["seller_email"] != "" && !protocol.ValidEmail(text["seller_email"]):
		return nil, &gatewayError{"ILLEGAL_ARGUMENT", "seller_email is not an email address"}
	}
	if _, err := protocol.ParseTimestamp(p["refund_date"]); err != nil {
		return nil, &gatewayError{"ILLEGAL_ARGUMENT", "refund_date must be yyyy-MM-dd HH:mm:ss"}
	}
	if err := protocol.CheckBatchNo(p["batch_no"], now()); err != nil {
		return nil, &gatewayError{"BATCH_NO_FORMAT_ERROR", "batch_no " + err.Error()}
	}
	detail, err := protocol.DecodeCharset([]byte(p["detail_data"]), charset)
	if err != nil {
		return nil, &gatewayError{"DETAIL_DATA_FORMAT_ERROR", "detail_data is not text in " + charset}
	}
	items, ge := parseDetailData(detail, charset)
	if ge != nil {
		return nil, ge
	}
	num, err := strconv.Atoi(p["batch_num"])
	switch {
	case err != nil || num < 1:
		return nil, &gatewayError{"ILLEGAL_ARGUMENT", "batch_num must be the number of items, from 1"}
	case num > maxBatchItems:
		return nil, &gatewayError{"BATCH_NUM_EXCEED_LIMIT", "a batch has at most 1000 items"}
	case num != len(items):
		return nil, &gatewayError{"BATCH_NUM_NOT_EQUAL_TOTAL", "batch_num is " + p["batch_num"] + " but detail_data has " + strconv.Itoa(len(items)) + " items"}
	}
	if ge := h.checkCallbackURL("notify_url", p["notify_url"]); ge != nil {
		return nil, &gatewayError{"ILLEGAL_ARGUMENT", ge.reason}
	}
	return &legacyBatch{batchNo: p["batch_no"], items: items, detail: detail, notifyURL: p["notify_url"],
		charset: charset, signType: p["sign_type"], service: service, by: refundByBatch}, nil
}

// takeBatch has the store refund b, records what it did in the events of
// its trades (source: who asked), and reports whether b was refunded
// before (nothing more moved).
func (h *Handler) takeBatch(b *legacyBatch, source string) (repeated bool, ge *gatewayError) {
	res := h.trades.refundBatch(b, true, now())
	if res.code != "" {
		return false, &gatewayError{res.code, "the batch is refused whole: " + batchReason(res.code)}
	}
	kind := b.service
	if kind == "" {
		kind = "refund in full"
	}
	for i, t := range res.trades {
		detail := "batch_no " + b.batchNo + ": sent again, nothing more refunded"
		if !res.repeated {
			detail = "batch_no " + b.batchNo + ", refund " + b.items[i].amount.String()
		}
		h.trades.event(t, tradeEvent{at: now(), kind: kind, source: source, code: "T", detail: detail})
	}
	h.logger.Info("sandbox: legacy batch refunded", zap.String("batch_no", b.batchNo), zap.Int("items", len(b.items)),
		zap.Bool("repeated", res.repeated), zap.String("by", source))
	return res.repeated, nil
}

// batchReason says what a store's code means.
func batchReason(code string) string {
	switch code {
	case "DUPLICATE_BATCH_NO":
		return "this batch_no was used before with other items"
	case "NOT_THIS_PARTNERS_TRADE":
		return "a trade_no is not a legacy trade of this partner"
	case "TRADE_STATUS_ERROR":
		return "a trade is not paid, or is closed"
	}
	return "an amount is more than is left of its trade"
}

// refundNoPassword answers refund_fastpay_by_platform_nopwd: the batch
// checked and taken, or refused, at once; is_success T, or F with the
// code.
func (h *Handler) refundNoPassword(p map[string]string, charset string) (*xmlDoc, *gatewayError) {
	b, ge := h.parseBatch(p, charset, "refund_fastpay_by_platform_nopwd")
	if ge == nil {
		_, ge = h.takeBatch(b, "shop")
	}
	if ge != nil {
		return nil, ge
	}
	return xmlSuccess(), nil
}

// servePasswordPage answers refund_fastpay_by_platform_pwd: the batch is
// checked, against the trades too, and the seller gets the password page
// with its items, or the error page with the code. The batch waits for
// the seller's Confirm.
func (h *Handler) servePasswordPage(w http.ResponseWriter, p map[string]string, perr error) {
	if perr != nil {
		h.legacyErrorPage(w, perr)
		return
	}
	charset, ge := h.verifyLegacyRequest(p)
	var b *legacyBatch
	if ge == nil {
		b, ge = h.parseBatch(p, charset, "refund_fastpay_by_platform_pwd")
	}
	var res batchResult
	if ge == nil {
		if res = h.trades.refundBatch(b, false, now()); res.code != "" {
			ge = &gatewayError{res.code, "the batch is refused whole: " + batchReason(res.code)}
		}
	}
	if ge != nil {
		h.legacyErrorPage(w, ge)
		return
	}
	renderPage(w, http.StatusOK, passwordPageTemplate, batchPage(b, h.trades.pending.add(b), res.repeated))
}

// passwordPageDoc is what the password page, and the page after Confirm,
// show.
type passwordPageDoc struct {
	ID, BatchNo, Total string
	Items              []batchItemDoc
	Repeated           bool // the batch was refunded before: Confirm refunds nothing more
	Done               bool // after Confirm
}

type batchItemDoc struct{ TradeNo, Amount, Reason string }

func batchPage(b *legacyBatch, id string, repeated bool) passwordPageDoc {
	d := passwordPageDoc{ID: id, BatchNo: b.batchNo, Repeated: repeated}
	var total protocol.Amount
	for _, it := range b.items {
		d.Items = append(d.Items, batchItemDoc{it.tradeNo, it.amount.String(), it.reason})
		total += it.amount
	}
	d.Total = total.String()
	return d
}

// serveRefundPage takes the password page's Confirm: the store takes the
// batch, as the trades are now, or the error page says why not.
func (h *Handler) serveRefundPage(w http.ResponseWriter, r *http.Request) {
	id, action, _ := strings.Cut(strings.TrimPrefix(r.URL.Path, refundPagePrefix), "/")
	if action != "confirm" {
		renderPage(w, http.StatusNotFound, errorPageTemplate, &gatewayError{"NOT_FOUND", "no such page"})
		return
	}
	if r.Method != http.MethodPost {
		methodNotAllowed(w, "POST")
		return
	}
	if r.Header.Get("Sec-Fetch-Site") == "cross-site" {
		// The password page posts its own form; a page of another site
		// must not confirm a refund for the seller.
		renderPage(w, http.StatusForbidden, errorPageTemplate, &gatewayError{"FORBIDDEN", "a form from another site"})
		return
	}
	b := h.trades.pending.get(id)
	if b == nil {
		renderPage(w, http.StatusNotFound, errorPageTemplate, &gatewayError{"BATCH_NOT_EXIST", "no such refund: open the seller's link again"})
		return
	}
	repeated, ge := h.takeBatch(b, "seller")
	if ge != nil {
		h.legacyErrorPage(w, ge)
		return
	}
	d := batchPage(b, id, repeated)
	d.Done = true
	renderPage(w, http.StatusOK, passwordPageTemplate, d)
}

// refundLegacyInFull is the trade page's Refund in full for legacy trade
// t: a batch of one item, what is left of t, with a batch_no that the
// sandbox makes, taken as a nopwd batch is; its batch_refund_notify goes
// to the trade's notify_url, in its charset, signed with its sign type.
func (h *Handler) refundLegacyInFull(t *trade) {
	at := now()
	s := h.trades.snapshot(t)
	left := t.amount - s.refunded
	if left <= 0 {
		left = t.amount // refused as the trade's state has it
	}
	reason := "refund in full from the sandbox's trade page"
	b := &legacyBatch{batchNo: at.In(protocol.Beijing).Format("20060102") + "SANDBOX" + protocol.RandomID()[:12],
		items: []batchItem{{t.tradeNo, left, reason}}, notifyURL: t.notifyURL,
		charset: s.legacy.charset, signType: s.signType, by: refundByPage}
	b.detail = t.tradeNo + "^" + left.String() + "^" + reason
	if _, ge := h.takeBatch(b, "page"); ge != nil {
		h.trades.event(t, tradeEvent{at: at, kind: "refund in full", source: "page", code: "F", subCode: ge.code, detail: ge.reason})
	}
}

// pendingBatches are the password pages' batches until the seller
// confirms, by the page's id: at most max, the oldest forgotten first.
type pendingBatches struct {
	mu    sync.Mutex
	byID  map[string]*legacyBatch
	order []string
	max   int
}

// add keeps b and returns its page's id.
func (p *pendingBatches) add(b *legacyBatch) string {
	id := protocol.RandomID()
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.order) >= p.max {
		delete(p.byID, p.order[0])
		p.order = slices.Delete(p.order, 0, 1)
	}
	p.byID[id] = b
	p.order = append(p.order, id)
	return id
}

// get returns the batch of a page's id, or nil.
func (p *pendingBatches) get(id string) *legacyBatch {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.byID[id]
}
