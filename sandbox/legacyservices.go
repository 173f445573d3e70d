package sandbox

import (
	"encoding/xml"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/caddy-alipay/caddy-alipay/internal/protocol"
	"go.uber.org/zap"
	"golang.org/x/text/encoding"
	"golang.org/x/text/encoding/simplifiedchinese"
)

// The legacy services after the payment that answer the shop's server in
// XML, as the mapi gateway does, in the request's charset:
//
//	<?xml version="1.0" encoding="utf-8"?>
//	<alipay><is_success>T</is_success>...</alipay>
//	<alipay><is_success>F</is_success><error>TRADE_NOT_EXIST</error></alipay>
//
// single_trade_query adds the request's parameters (<request><param
// name="…">…</param></request>), the trade (<response><trade>…</trade>
// </response>) and a <sign> with its <sign_type>; close_trade and
// refund_fastpay_by_platform_nopwd answer is_success alone. Every answer
// is HTTP 200: the shop reads is_success.

// xmlDoc writes an XML answer in UTF-8; encodeText converts it to the
// request's charset.
type xmlDoc struct{ b strings.Builder }

func (x *xmlDoc) open(tag string) *xmlDoc  { x.b.WriteString("<" + tag + ">"); return x }
func (x *xmlDoc) close(tag string) *xmlDoc { x.b.WriteString("</" + tag + ">"); return x }

// elem writes <tag>text</tag>, text escaped.
func (x *xmlDoc) elem(tag, text string) *xmlDoc {
	x.open(tag)
	_ = xml.EscapeText(&x.b, []byte(text))
	return x.close(tag)
}

// param writes <param name="name">text</param>.
func (x *xmlDoc) param(name, text string) {
	x.b.WriteString(`<param name="`)
	_ = xml.EscapeText(&x.b, []byte(name))
	x.b.WriteString(`">`)
	_ = xml.EscapeText(&x.b, []byte(text))
	x.b.WriteString("</param>")
}

// xmlFailure is the answer that refuses a request with code.
func xmlFailure(code string) *xmlDoc {
	x := &xmlDoc{}
	return x.open("alipay").elem("is_success", "F").elem("error", code).close("alipay")
}

// xmlSuccess is the answer of a request taken, with nothing to tell.
func xmlSuccess() *xmlDoc {
	x := &xmlDoc{}
	return x.open("alipay").elem("is_success", "T").close("alipay")
}

// encodeText converts s to charset (utf-8 or gbk); a character that GBK
// cannot hold becomes a character reference (&#NNNN;), which XML and
// HTML read back as the character.
func encodeText(s, charset string) []byte {
	if charset != "gbk" {
		return []byte(s)
	}
	b, err := encoding.HTMLEscapeUnsupported(simplifiedchinese.GBK.NewEncoder()).Bytes([]byte(s))
	if err != nil {
		return []byte(s) // not reached: every character is held or escaped
	}
	return b
}

// writeXML writes x in charset, with its declaration.
func writeXML(w http.ResponseWriter, charset string, x *xmlDoc) {
	body := append([]byte(`<?xml version="1.0" encoding="`+charset+`"?>`), encodeText(x.b.String(), charset)...)
	w.Header().Set("Content-Type", "text/xml; charset="+charset)
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(body)
}

// answerCharset is the charset that an answer to p is written in: the
// request's _input_charset, or utf-8 when it names neither.
func answerCharset(p map[string]string) string {
	if strings.EqualFold(p["_input_charset"], "gbk") {
		return "gbk"
	}
	return "utf-8"
}

// serveLegacyXML answers single_trade_query, close_trade and
// refund_fastpay_by_platform_nopwd; perr is gatewayParams' error. A
// request that the gateway refuses (ILLEGAL_SIGN, ILLEGAL_PARTNER, …)
// gets is_success F with the code, as a business failure does.
func (h *Handler) serveLegacyXML(w http.ResponseWriter, service string, p map[string]string, perr error) {
	charset := answerCharset(p)
	var x *xmlDoc
	ge := asGatewayError(perr)
	if ge == nil {
		if charset, ge = h.verifyLegacyRequest(p); ge == nil {
			switch service {
			case "single_trade_query":
				x, ge = h.singleTradeQuery(p, charset)
			case "close_trade":
				x, ge = h.closeTrade(p)
			default:
				x, ge = h.refundNoPassword(p, charset)
			}
		}
	}
	if ge != nil {
		if charset == "" {
			charset = answerCharset(p)
		}
		ge = legacyGatewayError(ge)
		h.logger.Warn("sandbox: legacy service refused", zap.String("service", service), zap.String("code", ge.code), zap.String("reason", ge.reason))
		x = xmlFailure(ge.code)
	}
	writeXML(w, charset, x)
}

// asGatewayError is err as a *gatewayError, nil for nil.
func asGatewayError(err error) *gatewayError {
	if err == nil {
		return nil
	}
	return asLegacyError(err)
}

// legacyEvent records a legacy service's call in t's events.
func (h *Handler) legacyEvent(t *trade, service, source string, ge *gatewayError, detail string) {
	e := tradeEvent{at: now(), kind: service, source: source, code: "T", detail: detail}
	if ge != nil {
		e.code, e.subCode = "F", ge.code
	}
	h.trades.event(t, e)
}

// singleTradeQuery answers single_trade_query: the legacy trade of
// trade_no or out_trade_no, with the request's parameters. How Alipay
// signs this answer is not documented; the sandbox signs the <trade>
// fields as a legacy callback is signed (sorted k=v, in the charset,
// with the request's sign type), so that it carries one, and nothing
// should rely on it.
func (h *Handler) singleTradeQuery(p map[string]string, charset string) (*xmlDoc, *gatewayError) {
	if p["trade_no"] == "" && p["out_trade_no"] == "" {
		return nil, &gatewayError{"ILLEGAL_ARGUMENT", "trade_no or out_trade_no is required"}
	}
	t := h.trades.findLegacy(p["trade_no"], p["out_trade_no"])
	if t == nil {
		return nil, &gatewayError{"TRADE_NOT_EXIST", "no legacy trade of this partner has that trade_no or out_trade_no"}
	}
	s := h.trades.snapshot(t)
	keys, fields := queryFields(s)
	content := map[string]string{}
	for k, v := range fields {
		content[k] = string(encodeText(v, charset))
	}
	sign, err := h.legacy.signers[p["sign_type"]].Sign(protocol.LegacyContent(content))
	if err != nil {
		return nil, &gatewayError{"SYSTEM_ERROR", "signing the answer failed"}
	}
	x := &xmlDoc{}
	x.open("alipay").elem("is_success", "T").open("request")
	for _, k := range slices.Sorted(maps.Keys(p)) {
		if k == "sign" || k == "sign_type" {
			continue
		}
		if v, err := protocol.DecodeCharset([]byte(p[k]), charset); err == nil {
			x.param(k, v)
		}
	}
	x.close("request").open("response").open("trade")
	for _, k := range keys {
		x.elem(k, fields[k])
	}
	x.close("trade").close("response").elem("sign", sign).elem("sign_type", p["sign_type"]).close("alipay")
	h.legacyEvent(t, "single_trade_query", "shop", nil, "trade_status "+s.status)
	return x, nil
}

// queryFields are the fields of a legacy trade that single_trade_query
// tells, in the order written, and their values; empty ones are left
// out.
func queryFields(s tradeSnapshot) ([]string, map[string]string) {
	f := legacyCallbackFields(&s.trade)
	f["trade_status"], f["payment_type"] = s.status, "1"
	f["price"], f["quantity"], f["gmt_create"] = s.amount.String(), "1", protocol.Timestamp(s.created)
	f["is_total_fee_adjust"], f["use_coupon"], f["discount"] = "F", "F", "0.00"
	if s.paid.IsZero() {
		f["buyer_id"], f["buyer_email"] = "", ""
	} else {
		f["gmt_payment"] = protocol.Timestamp(s.paid)
	}
	if s.refunded > 0 {
		f["refund_fee"] = s.refunded.String()
		f["gmt_refund"] = protocol.Timestamp(s.refundList[len(s.refundList)-1].at)
	}
	delete(f, "notify_type")
	keys := []string{"out_trade_no", "trade_no", "trade_status", "total_fee", "buyer_id", "seller_id", "gmt_create",
		"gmt_payment", "subject", "body", "price", "quantity", "payment_type", "buyer_email", "seller_email",
		"refund_fee", "gmt_refund", "extra_common_param", "is_total_fee_adjust", "use_coupon", "discount"}
	keys = slices.DeleteFunc(keys, func(k string) bool { return f[k] == "" })
	for k, v := range f {
		if v == "" {
			delete(f, k)
		}
	}
	return keys, f
}

// closeTrade answers close_trade: the legacy trade of trade_no or
// out_order_no (its name here) is closed if it is unpaid; a paid one is
// refused with TRADE_STATUS_NOT_AVAILD. Closing it again is a success.
func (h *Handler) closeTrade(p map[string]string) (*xmlDoc, *gatewayError) {
	if p["trade_no"] == "" && p["out_order_no"] == "" {
		return nil, &gatewayError{"ILLEGAL_ARGUMENT", "trade_no or out_order_no is required"}
	}
	t := h.trades.findLegacy(p["trade_no"], p["out_order_no"])
	if t == nil {
		return nil, &gatewayError{"TRADE_NOT_EXIST", "no legacy trade of this partner has that trade_no or out_order_no"}
	}
	if !h.trades.close(t) {
		ge := &gatewayError{"TRADE_STATUS_NOT_AVAILD", "a paid trade cannot be closed; refund it"}
		h.legacyEvent(t, "close_trade", "shop", ge, "")
		return nil, ge
	}
	h.legacyEvent(t, "close_trade", "shop", nil, "trade_status TRADE_CLOSED")
	h.logger.Info("sandbox: legacy trade closed", zap.String("out_trade_no", t.outTradeNo))
	return xmlSuccess(), nil
}
