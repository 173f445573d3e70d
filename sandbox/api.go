package sandbox

import (
	"bytes"
	"encoding/json"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/caddy-alipay/caddy-alipay/internal/protocol"
	"go.uber.org/zap"
)

// The sandbox's OpenAPI: alipay.trade.query, alipay.trade.refund,
// alipay.trade.fastpay.refund.query, alipay.trade.close and
// alipay.trade.cancel, answered from the trades that its cashier made,
// and the face-to-face alipay.trade.precreate and alipay.trade.pay
// (facetoface.go), which open trades, as Alipay answers them:
//
//	{"<method with _ for .>_response":{"code":"10000","msg":"Success",...},"sign":"..."}
//
// signed with alipay_private_key over the exact bytes of the value, with
// the request's sign_type; with encrypt_key, the call's biz_content and
// the answer's value are encrypted (encrypt.go). Business failures are
// signed too (code 40004, sub_code ACQ.*); a request that fails the
// gateway's own checks (missing parameters, unknown method, bad
// signature) gets an unsigned {"error_response":{...}}. Every answer is HTTP 200, as Alipay's. A
// refund that moves money (alipay.trade.refund, or the cancel of a paid
// trade) sends the trade's notify_url its notification (notices.go).

// apiMethods is the OpenAPI methods the sandbox answers, each with the
// request's app_id and biz_content. Each returns the trade it found (nil
// if none), whose events record the call, and the answer.
var apiMethods = map[string]func(ts *tradeStore, appID string, biz apiBiz, at time.Time) (*trade, apiFields){
	"alipay.trade.query":                apiQuery,
	"alipay.trade.refund":               apiRefund,
	"alipay.trade.fastpay.refund.query": apiRefundQuery,
	"alipay.trade.close":                apiClose,
	"alipay.trade.cancel":               apiCancel,
}

// isAPIRequest reports whether a gateway request is an OpenAPI call rather
// than a page or WAP pay: a method is named and it is not one that opens a
// cashier. When the parameters could not be read, the query's method
// decides.
func isAPIRequest(r *http.Request, params map[string]string) bool {
	method := params["method"]
	if params == nil {
		method = r.URL.Query().Get("method")
	}
	_, pay := protocol.ProductOf(method)
	return method != "" && !pay
}

// apiFields is a response value. It is written with code, msg, sub_code
// and sub_msg first and the rest in key order, as Alipay writes them; a
// value is a string, or anything else encoding/json writes (a list).
type apiFields map[string]any

var apiHeadKeys = []string{"code", "msg", "sub_code", "sub_msg"}

// marshal writes f as compact JSON, HTML characters and Chinese as
// themselves.
func (f apiFields) marshal() ([]byte, error) {
	rest := slices.DeleteFunc(slices.Sorted(maps.Keys(f)), func(k string) bool { return slices.Contains(apiHeadKeys, k) })
	var b bytes.Buffer
	b.WriteByte('{')
	for _, k := range slices.Concat(apiHeadKeys, rest) {
		v, ok := f[k]
		if !ok {
			continue
		}
		value, err := protocol.MarshalJSON(v)
		if err != nil {
			return nil, err
		}
		if b.Len() > 1 {
			b.WriteByte(',')
		}
		key, _ := protocol.MarshalJSON(k)
		b.Write(key)
		b.WriteByte(':')
		b.Write(value)
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

func apiSuccess(f apiFields) apiFields {
	f["code"], f["msg"] = "10000", "Success"
	return f
}

// bizFailed is a business failure: code 40004 with Alipay's sub_code.
func bizFailed(subCode, subMsg string) apiFields {
	return apiFields{"code": "40004", "msg": "Business Failed", "sub_code": subCode, "sub_msg": subMsg}
}

// invalidParameter is Alipay's answer to a bad business parameter.
func invalidParameter(detail string) apiFields {
	return bizFailed("ACQ.INVALID_PARAMETER", "参数无效: "+detail)
}

// tradeNotExist is a fresh answer for an unknown trade (apiQuery adds
// fields to it).
func tradeNotExist() apiFields { return bizFailed("ACQ.TRADE_NOT_EXIST", "交易不存在") }

// gatewayFailure is an error_response: code 40001 for a missing common
// parameter, 40002 for an invalid one.
func gatewayFailure(code, subCode, subMsg string) apiFields {
	msg := "Invalid Arguments"
	if code == "40001" {
		msg = "Missing Required Arguments"
	}
	return apiFields{"code": code, "msg": msg, "sub_code": subCode, "sub_msg": subMsg}
}

// The sub_code of each missing common parameter.
var missingSubCodes = []struct{ param, subCode string }{
	{"method", "isv.missing-method"},
	{"app_id", "isv.missing-app-id"},
	{"sign_type", "isv.missing-signature-type"},
	{"sign", "isv.missing-signature"},
	{"timestamp", "isv.missing-timestamp"},
	{"version", "isv.missing-version"},
	{"charset", "isv.missing-charset"},
	{"biz_content", "isv.missing-biz-content"},
}

// serveAPI answers an OpenAPI call; perr is gatewayParams' error.
func (h *Handler) serveAPI(w http.ResponseWriter, r *http.Request, p map[string]string, perr error) {
	method := p["method"]
	f := h.checkAPIRequest(p, perr)
	var content string
	if f == nil {
		content, f = h.apiContent(p)
	}
	if f != nil {
		h.logger.Warn("sandbox: api request refused", zap.String("method", method),
			zap.Any("sub_code", f["sub_code"]), zap.Any("sub_msg", f["sub_msg"]))
		writeErrorResponse(w, f)
		return
	}
	biz, ok := decodeBiz(content)
	if !ok {
		f = invalidParameter("biz_content is not a JSON object")
	} else {
		f = h.callAPI(method, p, biz, baseURL(r))
	}
	h.logger.Info("sandbox: api call", zap.String("method", method), zap.String("out_trade_no", biz.str("out_trade_no")),
		zap.String("trade_no", biz.str("trade_no")), zap.Any("code", f["code"]), zap.Any("sub_code", f["sub_code"]))
	value, err := f.marshal()
	if err == nil {
		certSN := ""
		if h.certs != nil {
			certSN = h.certs.alipayCertSN
		}
		var body []byte
		if h.contentKey != nil {
			body, err = encryptedResponse(method, h.contentKey.Encrypt(value), certSN, h.signers[p["sign_type"]])
		} else {
			body, err = protocol.SignedResponse(method, value, certSN, h.signers[p["sign_type"]])
		}
		if err == nil {
			writeAPIBody(w, body)
			return
		}
	}
	h.logger.Error("sandbox: api response", zap.Error(err))
	writeErrorResponse(w, apiFields{"code": "20000", "msg": "Service Currently Unavailable", "sub_code": "isp.unknow-error", "sub_msg": "系统繁忙"})
}

// decodeBiz reads a biz_content, numbers kept as written; ok is false
// unless it is one JSON object.
func decodeBiz(content string) (biz apiBiz, ok bool) {
	dec := json.NewDecoder(strings.NewReader(content))
	dec.UseNumber()
	if err := dec.Decode(&biz); err != nil || biz == nil || dec.More() {
		return nil, false
	}
	return biz, true
}

// callAPI runs a checked OpenAPI call, v2's or v3's, of method on the
// trade store and records it in the trade's events. p holds the call's
// app_id, sign_type and notify_url (and, for v2, its other common
// parameters); base is the scheme and host it came to.
func (h *Handler) callAPI(method string, p map[string]string, biz apiBiz, base string) apiFields {
	at := now()
	var t *trade
	var f apiFields
	if m := apiMethods[method]; m != nil {
		t, f = m(h.trades, p["app_id"], biz, at)
	} else {
		t, f = openingMethods[method](h, openingCall{params: p, biz: biz, at: at, base: base})
	}
	if t != nil {
		h.trades.event(t, apiEvent(method, "shop", biz, f, at))
	}
	return f
}

// apiEvent is an OpenAPI call's record in its trade's events: its code,
// sub_code, and what it asked and was told.
func apiEvent(method, source string, biz apiBiz, f apiFields, at time.Time) tradeEvent {
	str := func(v any) string { s, _ := v.(string); return s }
	var detail []string
	for _, k := range []string{"refund_amount", "out_request_no", "scene", "auth_code"} {
		if v := biz.str(k); v != "" {
			detail = append(detail, k+" "+v)
		}
	}
	for _, k := range []string{"trade_status", "qr_code", "refund_fee", "fund_change", "refund_status", "action", "sub_msg"} {
		if v := str(f[k]); v != "" {
			detail = append(detail, k+" "+v)
		}
	}
	if method == "alipay.trade.fastpay.refund.query" && str(f["code"]) == "10000" && f["refund_status"] == nil {
		detail = append(detail, "no such refund")
	}
	return tradeEvent{at: at, kind: method, source: source, code: str(f["code"]), subCode: str(f["sub_code"]),
		detail: strings.Join(detail, ", ")}
}

// checkAPIRequest makes the gateway's checks of an OpenAPI call, those of
// a pay request (checkRequest) and then the timestamp and format, and
// returns the error_response of the first that fails.
func (h *Handler) checkAPIRequest(p map[string]string, perr error) apiFields {
	if perr != nil {
		reason := perr.Error()
		if ge, ok := perr.(*gatewayError); ok {
			reason = ge.reason
		}
		return gatewayFailure("40002", "isv.invalid-parameter", reason)
	}
	for _, m := range missingSubCodes {
		if p[m.param] == "" {
			return gatewayFailure("40001", m.subCode, "缺少必选参数: "+m.param)
		}
	}
	if apiMethods[p["method"]] == nil && openingMethods[p["method"]] == nil {
		methods := slices.Concat(slices.Collect(maps.Keys(apiMethods)), slices.Collect(maps.Keys(openingMethods)))
		slices.Sort(methods)
		return gatewayFailure("40002", "isv.invalid-method", "不存在的方法名: the sandbox answers "+strings.Join(methods, ", "))
	}
	if ge := h.checkRequest(p); ge != nil {
		switch ge.code {
		case "invalid-signature":
			return gatewayFailure("40002", "isv.invalid-signature",
				"验签出错，建议检查签名字符串或签名私钥与应用公钥是否匹配，网关生成的验签字符串为："+string(protocol.RequestContent(p)))
		case "missing-parameter":
			return gatewayFailure("40001", "isv.missing-parameter", ge.reason)
		default:
			return gatewayFailure("40002", "isv."+ge.code, ge.reason)
		}
	}
	if _, err := protocol.ParseTimestamp(p["timestamp"]); err != nil {
		return gatewayFailure("40002", "isv.invalid-timestamp", "非法的时间戳参数: timestamp must be yyyy-MM-dd HH:mm:ss")
	}
	if f := p["format"]; f != "" && !strings.EqualFold(f, "JSON") {
		return gatewayFailure("40002", "isv.invalid-format", "无效的数据格式: format must be JSON")
	}
	return nil
}

// writeErrorResponse writes an unsigned error_response.
func writeErrorResponse(w http.ResponseWriter, f apiFields) {
	value, _ := f.marshal()
	writeAPIBody(w, append(append([]byte(`{"error_response":`), value...), '}'))
}

func writeAPIBody(w http.ResponseWriter, body []byte) {
	w.Header().Set("Content-Type", "application/json;charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(body)
}

// apiBiz is a request's biz_content, numbers kept as written.
type apiBiz map[string]any

// str returns a string field, or a number as written ("" otherwise).
func (b apiBiz) str(k string) string {
	switch v := b[k].(type) {
	case string:
		return v
	case json.Number:
		return v.String()
	}
	return ""
}

// findTrade returns the app's trade that biz names by trade_no or
// out_trade_no (tradeStore.find), or the failure to answer.
func findTrade(ts *tradeStore, appID string, biz apiBiz) (*trade, apiFields) {
	outTradeNo, tradeNo := biz.str("out_trade_no"), biz.str("trade_no")
	if outTradeNo == "" && tradeNo == "" {
		return nil, invalidParameter("out_trade_no or trade_no is required")
	}
	t := ts.find(appID, tradeNo, outTradeNo)
	if t == nil {
		return nil, tradeNotExist()
	}
	return t, nil
}

// apiQuery answers alipay.trade.query.
func apiQuery(ts *tradeStore, appID string, biz apiBiz, _ time.Time) (*trade, apiFields) {
	t, fail := findTrade(ts, appID, biz)
	if fail != nil {
		// Alipay's TRADE_NOT_EXIST carries zero amounts and the order number.
		for _, k := range []string{"buyer_pay_amount", "invoice_amount", "point_amount", "receipt_amount"} {
			fail[k] = "0.00"
		}
		if n := biz.str("out_trade_no"); n != "" {
			fail["out_trade_no"] = n
		}
		return t, fail
	}
	s := ts.snapshot(t)
	total := s.amount.String()
	f := apiSuccess(apiFields{
		"trade_no": s.tradeNo, "out_trade_no": s.outTradeNo, "trade_status": s.status,
		"total_amount": total, "subject": s.subject, "point_amount": "0.00",
		"buyer_pay_amount": "0.00", "invoice_amount": "0.00", "receipt_amount": "0.00",
	})
	if !s.paid.IsZero() {
		f["buyer_pay_amount"], f["invoice_amount"], f["receipt_amount"] = total, total, total
		f["buyer_logon_id"], f["buyer_user_id"] = sandboxBuyerLogon, sandboxBuyerID
		f["send_pay_date"] = protocol.Timestamp(s.paid)
		f["fund_bill_list"] = []map[string]string{{"amount": total, "fund_channel": "ALIPAYACCOUNT"}}
	}
	return t, f
}

// apiRefund answers alipay.trade.refund. An out_request_no already
// refunded is not refunded again: the answer is the same, with
// fund_change N, and no notification is sent.
func apiRefund(ts *tradeStore, appID string, biz apiBiz, at time.Time) (*trade, apiFields) {
	return refundCall(ts, appID, biz, at, refundByAPI)
}

// refundCall is alipay.trade.refund asked by by: the shop's call, or the
// trade page's button.
func refundCall(ts *tradeStore, appID string, biz apiBiz, at time.Time, by string) (*trade, apiFields) {
	t, fail := findTrade(ts, appID, biz)
	if fail != nil {
		return t, fail
	}
	amountText := biz.str("refund_amount")
	if amountText == "" {
		return t, invalidParameter("refund_amount is required")
	}
	amount, err := protocol.ParseAmount(amountText)
	if err != nil {
		return t, invalidParameter("refund_amount must be yuan with at most 2 decimals, from 0.01")
	}
	reqNo := biz.str("out_request_no")
	if reqNo == "" {
		reqNo = t.outTradeNo // Alipay's default: one refund per trade
	}
	if len(reqNo) > 64 {
		return t, invalidParameter("out_request_no is longer than 64 characters")
	}
	res := ts.refund(t, reqNo, amount, biz.str("refund_reason"), by, "alipay.trade.refund", at)
	fundChange := "N"
	switch res.outcome {
	case refundOtherAmount:
		return t, bizFailed("ACQ.REFUND_AMT_NOT_EQUAL_TOTAL", "退款金额超限: out_request_no "+reqNo+" already refunded "+
			res.refund.amount.String()+"; a retry must ask for the same refund_amount, a new refund needs a new out_request_no")
	case refundNotPaid:
		return t, bizFailed("ACQ.TRADE_STATUS_ERROR", "交易状态不合法: the trade is not paid")
	case refundClosed:
		return t, bizFailed("ACQ.TRADE_HAS_CLOSE", "交易已经关闭")
	case refundTooMuch:
		return t, bizFailed("ACQ.REFUND_AMT_NOT_EQUAL_TOTAL", "退款金额超限: "+res.refunded.String()+" of "+
			t.amount.String()+" already refunded")
	case refundMade:
		fundChange = "Y"
	}
	return t, apiSuccess(apiFields{
		"trade_no": t.tradeNo, "out_trade_no": t.outTradeNo,
		"buyer_logon_id": sandboxBuyerLogon, "buyer_user_id": sandboxBuyerID,
		"fund_change": fundChange, "refund_fee": res.refunded.String(),
		"send_back_fee": res.refund.amount.String(), "gmt_refund_pay": protocol.Timestamp(res.refund.at),
	})
}

// apiRefundQuery answers alipay.trade.fastpay.refund.query. A refund it
// does not know is a success with no refund fields, as at Alipay.
func apiRefundQuery(ts *tradeStore, appID string, biz apiBiz, _ time.Time) (*trade, apiFields) {
	t, fail := findTrade(ts, appID, biz)
	if fail != nil {
		return t, fail
	}
	reqNo := biz.str("out_request_no")
	if reqNo == "" {
		return t, invalidParameter("out_request_no is required (the out_trade_no, for a refund made without one)")
	}
	r := ts.snapshot(t).refunds[reqNo]
	if r == nil {
		return t, apiSuccess(apiFields{})
	}
	f := apiSuccess(apiFields{
		"trade_no": t.tradeNo, "out_trade_no": t.outTradeNo, "out_request_no": reqNo,
		"total_amount": t.amount.String(), "refund_amount": r.amount.String(),
		"refund_status": "REFUND_SUCCESS", "gmt_refund_pay": protocol.Timestamp(r.at),
	})
	if r.reason != "" {
		f["refund_reason"] = r.reason
	}
	return t, f
}

// apiClose answers alipay.trade.close: an unpaid trade becomes
// TRADE_CLOSED and its cashier refuses to pay. Closing it again is a
// success; closing a paid trade is refused.
func apiClose(ts *tradeStore, appID string, biz apiBiz, _ time.Time) (*trade, apiFields) {
	t, fail := findTrade(ts, appID, biz)
	if fail != nil {
		return t, fail
	}
	if !ts.close(t) {
		return t, bizFailed("ACQ.TRADE_STATUS_ERROR", "交易状态不合法: a paid trade cannot be closed; refund it")
	}
	return t, apiSuccess(apiFields{"trade_no": t.tradeNo, "out_trade_no": t.outTradeNo})
}

// apiCancel answers alipay.trade.cancel, as Alipay does: an unpaid trade
// (a precreated order not scanned yet too) is closed (action close), a
// paid one refunded in full (action refund,
// with its refund's notification); cancelling again answers the same and
// moves nothing more. retry_flag is N: the sandbox never asks for a
// retry.
func apiCancel(ts *tradeStore, appID string, biz apiBiz, at time.Time) (*trade, apiFields) {
	t, fail := findTrade(ts, appID, biz)
	if fail != nil {
		if u := ts.findUnscanned(appID, biz.str("out_trade_no")); u != nil && biz.str("trade_no") == "" {
			// A precreated order that no buyer scanned: Alipay has no
			// trade yet, and cancel closes the order, so that a scan
			// later cannot pay it.
			action, _ := ts.cancelTrade(u, at)
			return u, apiSuccess(apiFields{"out_trade_no": u.outTradeNo, "retry_flag": "N", "action": action})
		}
		return t, fail
	}
	action, res := ts.cancelTrade(t, at)
	f := apiSuccess(apiFields{"trade_no": t.tradeNo, "out_trade_no": t.outTradeNo, "retry_flag": "N", "action": action})
	if res.outcome == refundMade {
		// Alipay's answer says when a cancel refunded.
		f["gmt_refund_pay"] = protocol.Timestamp(res.refund.at)
	}
	return t, f
}
