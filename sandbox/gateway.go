package sandbox

import (
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"

	"github.com/caddy-alipay/caddy-alipay/internal/protocol"
	"go.uber.org/zap"
)

const cashierPrefix = "/sandbox/cashier/"

// gatewayError is what Alipay's gateway shows the buyer instead of the
// cashier: a code and a reason.
type gatewayError struct {
	code, reason string
}

func (e *gatewayError) Error() string { return e.code + ": " + e.reason }

// serveGateway takes a page-pay or WAP-pay request, GET or POST, as the
// SDKs send it, and opens the cashier for it. Any other method is an
// OpenAPI call, answered in JSON by serveAPI (api.go). With partner, the
// legacy services (service=create_direct_pay_by_user, notify_verify,
// single_trade_query, close_trade and the batch refunds) are answered by
// serveLegacy (legacy.go).
func (h *Handler) serveGateway(w http.ResponseWriter, r *http.Request) {
	params, err := gatewayParams(w, r)
	if h.legacy != nil && isLegacyRequest(r, params) {
		h.serveLegacy(w, r, params, err)
		return
	}
	if isAPIRequest(r, params) {
		h.serveAPI(w, r, params, err)
		return
	}
	if err == nil {
		var t *trade
		if t, err = h.openTrade(params); err == nil {
			h.logger.Info("sandbox: trade opened", zap.String("out_trade_no", t.outTradeNo), zap.String("trade_no", t.tradeNo))
			http.Redirect(w, r, cashierPrefix+t.id, http.StatusFound)
			return
		}
	}
	var ge *gatewayError
	if !errors.As(err, &ge) {
		ge = &gatewayError{"invalid-parameter", err.Error()}
	}
	h.logger.Warn("sandbox: request refused", zap.String("code", ge.code), zap.String("reason", ge.reason))
	renderPage(w, http.StatusBadRequest, errorPageTemplate, ge)
}

// gatewayParams collects the request's parameters from the query and, for
// a POST, the form body (the SDKs put the common ones in the action URL and
// biz_content in the body). A parameter given twice is refused, but for
// _input_charset given in both with the same value: the legacy protocol's
// POST forms carry it in the action URL and in the form. The values are
// the percent-decoded bytes, in whatever charset they were sent.
func gatewayParams(w http.ResponseWriter, r *http.Request) (map[string]string, error) {
	if r.Method != http.MethodGet && r.Method != http.MethodPost {
		return nil, &gatewayError{"invalid-method", "use GET or POST"}
	}
	params := map[string]string{}
	add := func(values url.Values) error {
		for k, v := range values {
			if old, dup := params[k]; len(v) != 1 || (dup && (k != "_input_charset" || old != v[0])) {
				return &gatewayError{"invalid-parameter", "parameter " + k + " given more than once"}
			}
			params[k] = v[0]
		}
		return nil
	}
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return nil, &gatewayError{"invalid-parameter", "malformed query"}
	}
	if err := add(q); err != nil {
		return nil, err
	}
	if r.Method == http.MethodPost {
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, protocol.MaxCallbackSize))
		if err != nil {
			return nil, &gatewayError{"invalid-parameter", "request body too large"}
		}
		f, err := url.ParseQuery(string(body))
		if err != nil {
			return nil, &gatewayError{"invalid-parameter", "malformed form body"}
		}
		if err := add(f); err != nil {
			return nil, err
		}
	}
	return params, nil
}

// openTrade checks a pay request as Alipay's gateway does and returns its
// trade, new or (for the same order again) the existing one.
func (h *Handler) openTrade(p map[string]string) (*trade, error) {
	if err := h.checkRequest(p); err != nil {
		return nil, err
	}
	product, ok := protocol.ProductOf(p["method"])
	if !ok {
		return nil, &gatewayError{"invalid-method", "the sandbox cashier serves alipay.trade.page.pay and alipay.trade.wap.pay"}
	}
	name := productPage
	if product.Name == productWAP {
		name = productWAP
	}
	return h.openOrder(p, name, product.Code, true, p["return_url"])
}

// openOrder checks the timestamp and biz_content of a signed pay request
// (checkRequest's) for product, whose biz_content.product_code must be
// code (required, or only if present), and opens its trade, with
// returnURL.
func (h *Handler) openOrder(p map[string]string, product, code string, codeRequired bool, returnURL string) (*trade, error) {
	if _, err := protocol.ParseTimestamp(p["timestamp"]); err != nil {
		return nil, &gatewayError{"invalid-timestamp", "timestamp must be yyyy-MM-dd HH:mm:ss"}
	}
	var biz map[string]any
	dec := json.NewDecoder(strings.NewReader(p["biz_content"]))
	dec.UseNumber()
	if err := dec.Decode(&biz); err != nil || biz == nil || dec.More() {
		return nil, &gatewayError{"invalid-parameter", "biz_content is not a JSON object"}
	}
	o, ge := checkOrder(biz, p["method"], code, codeRequired)
	if ge != nil {
		return nil, ge
	}
	str := apiBiz(biz).str
	for _, u := range []struct{ name, value string }{{"notify_url", p["notify_url"]}, {"return_url", returnURL}, {"quit_url", str("quit_url")}} {
		if ge := h.checkCallbackURL(u.name, u.value); ge != nil {
			return nil, ge
		}
	}
	return h.trades.open(&trade{
		appID: p["app_id"], method: p["method"], signType: p["sign_type"], product: product,
		outTradeNo: o.outTradeNo, amount: o.amount, subject: o.subject, body: str("body"),
		passback: str("passback_params"), quitURL: str("quit_url"),
		notifyURL: p["notify_url"], returnURL: returnURL,
	})
}

// An orderFields is what every pay request's biz_content must have.
type orderFields struct {
	outTradeNo, subject string
	amount              protocol.Amount
}

// checkOrder checks the fields that every pay request's biz_content
// has, as Alipay does: out_trade_no, subject, total_amount (yuan, as a
// string or a number), and product_code, which must be code for method:
// always if codeRequired, otherwise only if present. The strings must be
// strings.
func checkOrder(biz map[string]any, method, code string, codeRequired bool) (orderFields, *gatewayError) {
	str := func(k string) string { s, _ := biz[k].(string); return s }
	for _, k := range []string{"out_trade_no", "subject", "product_code", "body", "passback_params", "quit_url"} {
		if _, ok := biz[k].(string); biz[k] != nil && !ok {
			return orderFields{}, &gatewayError{"ACQ.INVALID_PARAMETER", k + " must be a string"}
		}
	}
	_, hasCode := biz["product_code"]
	switch {
	case !protocol.ValidOutTradeNo(str("out_trade_no")):
		return orderFields{}, &gatewayError{"ACQ.INVALID_PARAMETER", "out_trade_no"}
	case str("subject") == "":
		return orderFields{}, &gatewayError{"ACQ.INVALID_PARAMETER", "subject"}
	case (codeRequired || hasCode) && str("product_code") != code:
		return orderFields{}, &gatewayError{"ACQ.INVALID_PARAMETER", "product_code must be " + code + " for " + method}
	}
	amountText := str("total_amount")
	if n, ok := biz["total_amount"].(json.Number); ok {
		amountText = n.String()
	}
	amount, err := protocol.ParseAmount(amountText)
	if err != nil {
		return orderFields{}, &gatewayError{"ACQ.INVALID_PARAMETER", "total_amount"}
	}
	return orderFields{str("out_trade_no"), str("subject"), amount}, nil
}

// checkCallbackURL refuses a URL that the sandbox would send a
// notification or a buyer to, unless it is absolute and on this machine
// or on one of callback_hosts.
func (h *Handler) checkCallbackURL(name, raw string) *gatewayError {
	if raw == "" {
		return nil
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil {
		return &gatewayError{"invalid-parameter", name + " is not an absolute http(s) URL"}
	}
	host := hostKey(u.Hostname())
	if !protocol.IsLoopback(host) && !h.callbackHosts[host] {
		return &gatewayError{"invalid-parameter", name + " names " + host + ", which is not on this machine: the sandbox sends notifications and buyers only to loopback hosts and to those of callback_hosts"}
	}
	return nil
}

// hostKey is a host name in lower case, or an IP address in its
// canonical form, for comparing.
func hostKey(host string) string {
	if ip := net.ParseIP(host); ip != nil {
		return ip.String()
	}
	return strings.ToLower(host)
}

// checkRequest makes the checks common to every gateway request, pay or
// OpenAPI: the OpenAPI keys are set, the required parameters, utf-8, the
// sign type, in certificate mode the serial numbers, the signature.
func (h *Handler) checkRequest(p map[string]string) *gatewayError {
	return h.checkRequestOf(p, "app_id", "method", "charset", "sign_type", "timestamp", "version", "biz_content", "sign")
}

// checkRequestOf is checkRequest with the parameters that must be
// given; a charset left out is utf-8.
func (h *Handler) checkRequestOf(p map[string]string, required ...string) *gatewayError {
	if !h.openAPI {
		return &gatewayError{"invalid-app-id", "无效的AppID参数: the sandbox plays only the legacy gateway (partner and md5_key, without app_public_key and alipay_private_key)"}
	}
	for _, k := range required {
		if p[k] == "" {
			return &gatewayError{"missing-parameter", "missing " + k}
		}
	}
	if cs, ok := p["charset"]; ok && !strings.EqualFold(cs, "utf-8") {
		return &gatewayError{"invalid-charset", "the sandbox speaks utf-8 only"}
	}
	v, ok := h.verifiers[p["sign_type"]]
	if !ok {
		return &gatewayError{"invalid-signature-type", "sign_type must be RSA2 or RSA"}
	}
	if h.certs != nil {
		if ge := h.certs.check(p); ge != nil {
			return ge
		}
	}
	if !verifyRequest(v, p) {
		return &gatewayError{"invalid-signature", "验签出错: the signature does not verify with app_public_key; check the string to sign and that the app private key matches the app public key"}
	}
	return nil
}

// verifyRequest checks a merchant's request signature. The SDKs disagree on
// empty values (Java, PHP and Go leave them out, Node keeps them), so both
// strings are tried; each is one that the merchant's key signed.
func verifyRequest(v protocol.Verifier, p map[string]string) bool {
	return v.Verify(protocol.RequestContent(p), p["sign"]) == nil ||
		v.Verify(protocol.RequestContentWithEmpty(p), p["sign"]) == nil
}

// serveCashier shows a trade's cashier page and takes its Pay and Cancel
// forms.
func (h *Handler) serveCashier(w http.ResponseWriter, r *http.Request) {
	id, action, _ := strings.Cut(strings.TrimPrefix(r.URL.Path, cashierPrefix), "/")
	t := h.trades.byCashierID(id)
	if t == nil || t.product == productBarcode {
		// A barcode payment has no cashier: the buyer confirms it, if at
		// all, in the Alipay app.
		renderPage(w, http.StatusNotFound, errorPageTemplate, &gatewayError{"TRADE_NOT_EXIST", "no such cashier"})
		return
	}
	if r.Method == http.MethodPost && r.Header.Get("Sec-Fetch-Site") == "cross-site" {
		// The cashier's own page posts its buttons; a page of another
		// site that learnt a cashier id must not pay or cancel for the
		// buyer.
		renderPage(w, http.StatusForbidden, errorPageTemplate, &gatewayError{"FORBIDDEN", "a form from another site"})
		return
	}
	switch {
	case action == "" && (r.Method == http.MethodGet || r.Method == http.MethodHead):
		v := h.trades.view(t)
		if v.Unscanned {
			renderPage(w, http.StatusConflict, errorPageTemplate, errNotScanned)
			return
		}
		if v.Status == "TRADE_CLOSED" && !v.Paid {
			ge := errTradeClosed
			if t.legacy != nil {
				ge = legacyGatewayError(ge)
			}
			renderPage(w, http.StatusConflict, errorPageTemplate, ge)
			return
		}
		renderPage(w, http.StatusOK, cashierTemplate, v)
	case action == "pay" && r.Method == http.MethodPost:
		h.pay(w, r, t)
	case action == "cancel" && r.Method == http.MethodPost && (t.product == productApp || t.product == productQR):
		// Neither has a page of the shop to go back to: the app gets its
		// result (6001), the buyer of a QR code closes the cashier, and
		// the trade stays unpaid.
		h.logger.Info("sandbox: buyer cancelled", zap.String("out_trade_no", t.outTradeNo))
		h.trades.event(t, tradeEvent{at: now(), kind: "cancel", source: "buyer", detail: "the buyer left the cashier"})
		renderPage(w, http.StatusOK, cancelledTemplate, h.trades.view(t))
	case action == "cancel" && r.Method == http.MethodPost:
		target := t.quitURL
		if target == "" {
			target = originOf(t.returnURL) + "/"
		}
		h.logger.Info("sandbox: buyer cancelled", zap.String("out_trade_no", t.outTradeNo))
		h.trades.event(t, tradeEvent{at: now(), kind: "cancel", source: "buyer", detail: "sent back to " + target})
		http.Redirect(w, r, target, http.StatusFound)
	default:
		w.Header().Set("Allow", "GET, POST")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
	}
}

func originOf(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return ""
	}
	return u.Scheme + "://" + u.Host
}

// pay completes the trade: the notification goes out (and again, until
// the shop says success: markPaid starts its retry loop), the buyer goes
// back to return_url.
func (h *Handler) pay(w http.ResponseWriter, r *http.Request, t *trade) {
	if ge := h.trades.markPaid(t, now()); ge != nil {
		if t.legacy != nil {
			ge = legacyGatewayError(ge)
		}
		renderPage(w, http.StatusConflict, errorPageTemplate, ge)
		return
	}
	h.logger.Info("sandbox: trade paid", zap.String("out_trade_no", t.outTradeNo), zap.String("trade_no", t.tradeNo))
	if t.returnURL == "" {
		// App pay and face-to-face have no return_url: the buyer stays
		// in the Alipay app, which says it is paid.
		renderPage(w, http.StatusOK, cashierTemplate, h.trades.view(t))
		return
	}
	var q, notifyID string
	var err error
	if snap := h.trades.snapshot(t); t.legacy != nil {
		q, notifyID, err = h.legacyReturnQuery(snap)
	} else {
		q, err = h.returnQuery(snap)
	}
	if err != nil {
		http.Error(w, "signing the return failed", http.StatusInternalServerError)
		return
	}
	detail := "sent back to " + t.returnURL
	if notifyID != "" {
		detail += ", notify_id " + notifyID
	}
	h.trades.event(t, tradeEvent{at: now(), kind: "return", source: "buyer", detail: detail})
	sep := "?"
	if strings.Contains(t.returnURL, "?") {
		sep = "&"
	}
	http.Redirect(w, r, t.returnURL+sep+q, http.StatusFound)
}
