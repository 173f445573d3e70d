package sandbox

import (
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/caddy-alipay/caddy-alipay/internal/protocol"
	"go.uber.org/zap"
)

// Face-to-face payment (当面付), as Alipay plays it:
//
//   - alipay.trade.precreate answers a qr_code, here a URL of the sandbox:
//     <the gateway's scheme and host>/sandbox/qr/<id>. Until a buyer opens
//     it (the scan), Alipay has no trade: query, close and refund answer
//     ACQ.TRADE_NOT_EXIST, and cancel closes the order (action close).
//     The scan creates the trade, WAIT_BUYER_PAY, and shows the cashier,
//     whose Pay makes it TRADE_SUCCESS and sends the notification.
//   - alipay.trade.pay (barcode) takes the buyer's payment code, whose
//     last four digits choose the outcome, as test card numbers do:
//     1111 waits for the buyer (10003) and is paid barcodeConfirmDelay
//     later; 2222 waits for ever (so the shop cancels it: action close);
//     3333 is an invalid code (40004, no trade); 4444 answers 20000 while
//     the trade is in fact paid; any other is paid at once (10000).

const (
	qrPrefix       = "/sandbox/qr/"
	faceToFaceCode = "FACE_TO_FACE_PAYMENT"
)

// barcodeConfirmDelay is how long the buyer of a 1111 code takes to
// confirm the payment in the app. A variable, so that a test of the
// timer itself need not wait it out.
var barcodeConfirmDelay = 2 * time.Second

// The outcomes of a barcode payment, by the auth_code's last four digits.
const (
	barcodeConfirmLater = "1111"
	barcodeNeverPaid    = "2222"
	barcodeInvalidCode  = "3333"
	barcodeUnknownPaid  = "4444"
)

// authCodeRE is a buyer's payment code as Alipay takes it: 16 to 24
// digits starting 25 to 30.
var authCodeRE = regexp.MustCompile(`^(2[5-9]|30)[0-9]{14,22}$`)

// timeoutExpressRE is a timeout_express: minutes, hours or days, or 1c
// (the end of the day).
var timeoutExpressRE = regexp.MustCompile(`^([1-9][0-9]{0,4}[mhd]|1c)$`)

// An openingCall is an OpenAPI call of a method that opens a trade: its
// common parameters, its biz_content, when it came, and the scheme and
// host that the caller reached the gateway at.
type openingCall struct {
	params map[string]string
	biz    apiBiz
	at     time.Time
	base   string
}

// openingMethods are the OpenAPI methods that open a trade, which need
// the handler (its callback hosts) and the whole request.
var openingMethods = map[string]func(h *Handler, c openingCall) (*trade, apiFields){
	"alipay.trade.precreate": (*Handler).apiPrecreate,
	"alipay.trade.pay":       (*Handler).apiBarcodePay,
}

// baseURL is the scheme and host that r reached the sandbox at.
func baseURL(r *http.Request) string {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host
}

// checkOptionalStrings refuses a biz_content field of keys that is there
// but not a string, or longer than max bytes.
func checkOptionalStrings(biz apiBiz, max int, keys ...string) apiFields {
	for _, k := range keys {
		v, ok := biz[k]
		if !ok || v == nil {
			continue
		}
		if s, ok := v.(string); !ok || len(s) > max {
			return invalidParameter(k + " must be a string of at most " + strconv.Itoa(max) + " bytes")
		}
	}
	return nil
}

// faceToFaceTrade checks the fields that precreate and barcode pay share
// and makes the trade to open: the order, product_code
// FACE_TO_FACE_PAYMENT if given, the optional store fields, notify_url.
func (h *Handler) faceToFaceTrade(c openingCall, product string) (*trade, apiFields) {
	method := c.params["method"]
	o, ge := checkOrder(c.biz, method, faceToFaceCode, false)
	if ge != nil {
		return nil, invalidParameter(ge.reason)
	}
	if f := checkOptionalStrings(c.biz, 128, "store_id", "operator_id", "terminal_id", "body", "timeout_express"); f != nil {
		return nil, f
	}
	if te := c.biz.str("timeout_express"); te != "" && !timeoutExpressRE.MatchString(te) {
		return nil, invalidParameter("timeout_express must be minutes, hours or days (90m, 2h, 1d) or 1c")
	}
	if ge := h.checkCallbackURL("notify_url", c.params["notify_url"]); ge != nil {
		return nil, invalidParameter(ge.reason)
	}
	return &trade{
		appID: c.params["app_id"], method: method, signType: c.params["sign_type"], product: product,
		outTradeNo: o.outTradeNo, amount: o.amount, subject: o.subject, body: c.biz.str("body"),
		passback: c.biz.str("passback_params"), notifyURL: c.params["notify_url"],
	}, nil
}

// openFailed is the answer to a trade that the store would not open
// (the order number paid, closed, or opened with another order).
func openFailed(err error) apiFields {
	if ge, ok := err.(*gatewayError); ok {
		return bizFailed(ge.code, ge.reason)
	}
	return bizFailed("ACQ.SYSTEM_ERROR", err.Error())
}

// apiPrecreate answers alipay.trade.precreate: the order's QR code. The
// same order again answers the same code.
func (h *Handler) apiPrecreate(c openingCall) (*trade, apiFields) {
	nt, fail := h.faceToFaceTrade(c, productQR)
	if fail != nil {
		return nil, fail
	}
	nt.unscanned = true // no other goroutine has it yet
	t, err := h.trades.open(nt)
	if err != nil {
		return nil, openFailed(err)
	}
	return t, apiSuccess(apiFields{"out_trade_no": t.outTradeNo, "qr_code": c.base + qrPrefix + t.id})
}

// apiBarcodePay answers alipay.trade.pay, the buyer's payment code
// scanned by the merchant, with the outcome the code's last four digits
// choose. The same order again, unpaid, answers 10003 again and changes
// nothing; paid, ACQ.TRADE_HAS_SUCCESS.
func (h *Handler) apiBarcodePay(c openingCall) (*trade, apiFields) {
	authCode, _ := c.biz["auth_code"].(string)
	switch scene, _ := c.biz["scene"].(string); {
	case scene == "":
		return nil, invalidParameter("scene is required: bar_code or wave_code")
	case scene != "bar_code" && scene != "wave_code":
		return nil, invalidParameter("scene must be bar_code or wave_code")
	case !authCodeRE.MatchString(authCode):
		return nil, authCodeInvalid()
	}
	nt, fail := h.faceToFaceTrade(c, productBarcode)
	if fail != nil {
		return nil, fail
	}
	outcome := authCode[len(authCode)-4:]
	if outcome == barcodeInvalidCode {
		return nil, authCodeInvalid()
	}
	t, created, err := h.trades.openNew(nt)
	if err != nil {
		return nil, openFailed(err)
	}
	if !created {
		return t, barcodeWaiting(t)
	}
	switch outcome {
	case barcodeConfirmLater:
		h.trades.payLater(t, c.at.Add(barcodeConfirmDelay))
		return t, barcodeWaiting(t)
	case barcodeNeverPaid:
		return t, barcodeWaiting(t)
	}
	if ge := h.trades.markPaid(t, c.at); ge != nil {
		return t, bizFailed(ge.code, ge.reason)
	}
	h.logger.Info("sandbox: barcode trade paid", zap.String("out_trade_no", t.outTradeNo), zap.String("trade_no", t.tradeNo))
	if outcome == barcodeUnknownPaid {
		// Alipay's answer was lost on its side: the trade is paid, and
		// only a query tells.
		return t, apiFields{"code": "20000", "msg": "Service Currently Unavailable", "sub_code": "ACQ.SYSTEM_ERROR", "sub_msg": "系统异常"}
	}
	s := h.trades.snapshot(t)
	total := s.amount.String()
	return t, apiSuccess(apiFields{
		"trade_no": s.tradeNo, "out_trade_no": s.outTradeNo,
		"buyer_logon_id": sandboxBuyerLogon, "buyer_user_id": sandboxBuyerID,
		"total_amount": total, "receipt_amount": total, "buyer_pay_amount": total, "invoice_amount": total,
		"point_amount": "0.00", "gmt_payment": protocol.Timestamp(s.paid),
		"fund_bill_list": []map[string]string{{"amount": total, "fund_channel": "ALIPAYACCOUNT"}},
	})
}

// authCodeInvalid is Alipay's refusal of a payment code.
func authCodeInvalid() apiFields {
	return bizFailed("ACQ.PAYMENT_AUTH_CODE_INVALID", "支付授权码无效: the buyer's payment code must be 16 to 24 digits starting 25 to 30; the sandbox refuses those ending 3333")
}

// barcodeWaiting is the answer to a barcode payment that the buyer must
// still confirm in the app: 10003, with the trade.
func barcodeWaiting(t *trade) apiFields {
	return apiFields{"code": "10003", "msg": "Waiting Payment", "sub_code": "ACQ.PAYMENT_WAIT_BUYER_PAY", "sub_msg": "等待用户付款",
		"out_trade_no": t.outTradeNo, "trade_no": t.tradeNo, "buyer_logon_id": sandboxBuyerLogon, "total_amount": t.amount.String()}
}

// serveScan is the buyer's scan of a precreated trade's QR code: GET
// /sandbox/qr/<id> creates the trade at Alipay, WAIT_BUYER_PAY, and
// sends the buyer to its cashier.
func (h *Handler) serveScan(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		methodNotAllowed(w, "GET")
		return
	}
	t := h.trades.byCashierID(strings.TrimPrefix(r.URL.Path, qrPrefix))
	if t == nil || t.product != productQR {
		renderPage(w, http.StatusNotFound, errorPageTemplate, &gatewayError{"TRADE_NOT_EXIST", "no such QR code"})
		return
	}
	if ge := h.trades.scan(t); ge != nil {
		renderPage(w, http.StatusConflict, errorPageTemplate, ge)
		return
	}
	h.logger.Info("sandbox: QR code scanned", zap.String("out_trade_no", t.outTradeNo), zap.String("trade_no", t.tradeNo))
	h.trades.event(t, tradeEvent{at: now(), kind: "scan", source: "buyer", detail: "the buyer scanned the QR code: the trade exists, WAIT_BUYER_PAY"})
	http.Redirect(w, r, cashierPrefix+t.id, http.StatusFound)
}
