package sandbox

import (
	"encoding/base64"
	"maps"
	"net/http"
	"net/url"
	"strings"

	"go.uber.org/zap"
)

// App pay (alipay.trade.app.pay): the shop's mobile app hands Alipay's
// app SDK a signed order string, k=v&k=v…&sign=…, each value URL-encoded.
// The sandbox's /sandbox/app?order_string=<the string, URL-encoded> is the
// page that the SDK would show: it reads the string as Alipay's gateway
// does, then opens the trade and shows the cashier. A string the gateway
// refuses (a bad signature, an empty parameter, anything added after
// signing) gets the error page with the app's result, resultStatus 4000
// (系统繁忙). App pay has no return_url: after Pay the cashier says it
// is paid (resultStatus 9000), and the notification goes to the
// string's notify_url, if it has one.

const (
	appPath         = "/sandbox/app"
	appMethod       = "alipay.trade.app.pay"
	appProductCode  = "QUICK_MSECURITY_PAY"
	maxOrderStrings = 16 << 10 // an order string's most bytes, as the page reads it
)

// serveApp is the app SDK's page: a GET with the order string.
func (h *Handler) serveApp(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		methodNotAllowed(w, "GET")
		return
	}
	t, ge := h.openAppOrder(r.URL.RawQuery)
	if ge != nil {
		h.logger.Warn("sandbox: app order string refused", zap.String("code", ge.code), zap.String("reason", ge.reason))
		renderPage(w, http.StatusBadRequest, errorPageTemplate, appRefusal{ge})
		return
	}
	h.logger.Info("sandbox: app trade opened", zap.String("out_trade_no", t.outTradeNo), zap.String("trade_no", t.tradeNo))
	http.Redirect(w, r, cashierPrefix+t.id, http.StatusFound)
}

// openAppOrder reads the page's query, whose one parameter is
// order_string, checks the string and opens its trade.
func (h *Handler) openAppOrder(rawQuery string) (*trade, *gatewayError) {
	q, err := url.ParseQuery(rawQuery)
	if err != nil || len(q) != 1 || len(q["order_string"]) != 1 {
		return nil, &gatewayError{"invalid-parameter", "the page takes one parameter, order_string: the order string, URL-encoded"}
	}
	p, afterSign, ge := parseOrderString(q.Get("order_string"))
	if ge != nil {
		return nil, ge
	}
	if p["method"] != appMethod {
		return nil, &gatewayError{"invalid-method", "the app SDK's order string is for " + appMethod + ", not " + p["method"]}
	}
	for k, want := range map[string]string{"version": "1.0", "format": "JSON"} {
		if v, ok := p[k]; ok && !strings.EqualFold(v, want) {
			return nil, &gatewayError{"invalid-parameter", k + " must be " + want}
		}
	}
	if ge := h.checkRequestOf(p, "app_id", "method", "sign_type", "timestamp", "biz_content", "sign"); ge != nil {
		if ge.code == "invalid-signature" {
			if added := h.appendedAfterSigning(p, afterSign); added != nil {
				return nil, errAppended(strings.Join(added, ", ") + " after sign")
			}
		}
		return nil, ge
	}
	// App pay has no return_url: the buyer stays in the app. One in the
	// string is signed, and otherwise unused.
	t, err := h.openOrder(p, productApp, appProductCode, false, "")
	if err != nil {
		ge, ok := err.(*gatewayError)
		if !ok {
			ge = &gatewayError{"invalid-parameter", err.Error()}
		}
		return nil, ge
	}
	return t, nil
}

// parseOrderString reads an app order string as Alipay's gateway does:
// k=v parameters joined by &, in any order (the Node SDK keeps its
// insertion order and puts sign last; the Java SDK sorts every key, sign
// among them), each value URL-encoded (+ or %20 for a space), no
// parameter twice, none empty (the gateway signs a present-but-empty
// one, which the merchant's SDK left out of its string), and sign,
// base64. It also returns the keys that came after sign, in order.
func parseOrderString(s string) (map[string]string, []string, *gatewayError) {
	if s == "" {
		return nil, nil, &gatewayError{"missing-parameter", "empty order string"}
	}
	if len(s) > maxOrderStrings {
		return nil, nil, &gatewayError{"invalid-parameter", "the order string is too long"}
	}
	p := map[string]string{}
	var afterSign []string
	parts := strings.Split(s, "&")
	for i, part := range parts {
		if part == "" && i == len(parts)-1 {
			return nil, nil, errAppended("a trailing &")
		}
		rawKey, rawValue, ok := strings.Cut(part, "=")
		key, kerr := url.QueryUnescape(rawKey)
		value, verr := url.QueryUnescape(rawValue)
		switch {
		case !ok || key == "" || kerr != nil || verr != nil:
			return nil, nil, &gatewayError{"invalid-parameter", "malformed order string: " + part + " is not key=URL-encoded value"}
		case value == "":
			return nil, nil, &gatewayError{"empty-parameter", "parameter " + key + " is present but empty: the gateway signs it, so the signature fails; leave it out"}
		}
		if _, dup := p[key]; dup {
			return nil, nil, &gatewayError{"invalid-parameter", "parameter " + key + " given more than once"}
		}
		if _, signed := p["sign"]; signed {
			afterSign = append(afterSign, key)
		}
		p[key] = value
	}
	sign, ok := p["sign"]
	if !ok {
		return nil, nil, &gatewayError{"missing-parameter", "missing sign"}
	}
	if _, err := base64.StdEncoding.Strict().DecodeString(sign); err != nil {
		return nil, nil, errAppended("text after the signature (sign is not base64)")
	}
	return p, afterSign, nil
}

// errAppended refuses an order string that something was added to after
// it was signed.
func errAppended(what string) *gatewayError {
	return &gatewayError{"appended-after-signing", "the order string was changed after signing: " + what + "; nothing may be added to it"}
}

// appendedAfterSigning returns the parameters that were added to p
// after it was signed, if its signature fails for them: the last ones
// of those after sign, without which it verifies. (The Java SDK's sorted
// strings put signed parameters after sign too; those are in the
// signature.) nil if there are none such.
func (h *Handler) appendedAfterSigning(p map[string]string, afterSign []string) []string {
	v, ok := h.verifiers[p["sign_type"]]
	if !ok {
		return nil
	}
	before := maps.Clone(p)
	for i := len(afterSign) - 1; i >= 0; i-- {
		delete(before, afterSign[i])
		if _, ok := before["sign_type"]; ok && verifyRequest(v, before) {
			return afterSign[i:]
		}
	}
	return nil
}
