package sandbox

import (
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

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
// legacy services (service=create_direct_pay_by_user, notify_verify) are
// answered by serveLegacy (legacy.go).
func (s *Sandbox) serveGateway(w http.ResponseWriter, r *http.Request) {
	params, err := gatewayParams(w, r)
	if s.legacy != nil && isLegacyRequest(r, params) {
		s.serveLegacy(w, r, params, err)
		return
	}
	if isAPIRequest(r, params) {
		s.serveAPI(w, params, err)
		return
	}
	if err == nil {
		var t *trade
		if t, err = s.openTrade(params); err == nil {
			s.logger.Info("sandbox: trade opened", zap.String("out_trade_no", t.outTradeNo), zap.String("trade_no", t.tradeNo))
			http.Redirect(w, r, cashierPrefix+t.id, http.StatusFound)
			return
		}
	}
	var ge *gatewayError
	if !errors.As(err, &ge) {
		ge = &gatewayError{"invalid-parameter", err.Error()}
	}
	s.logger.Warn("sandbox: request refused", zap.String("code", ge.code), zap.String("reason", ge.reason))
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
func (s *Sandbox) openTrade(p map[string]string) (*trade, error) {
	if err := s.checkRequest(p); err != nil {
		return nil, err
	}
	product, ok := protocol.ProductOf(p["method"])
	if !ok {
		return nil, &gatewayError{"invalid-method", "the sandbox cashier serves alipay.trade.page.pay and alipay.trade.wap.pay"}
	}
	if _, err := time.ParseInLocation(time.DateTime, p["timestamp"], protocol.Beijing); err != nil {
		return nil, &gatewayError{"invalid-timestamp", "timestamp must be yyyy-MM-dd HH:mm:ss"}
	}
	var biz map[string]any
	dec := json.NewDecoder(strings.NewReader(p["biz_content"]))
	dec.UseNumber()
	if err := dec.Decode(&biz); err != nil || biz == nil {
		return nil, &gatewayError{"invalid-parameter", "biz_content is not a JSON object"}
	}
	str := func(k string) string { s, _ := biz[k].(string); return s }
	switch {
	case !protocol.ValidOutTradeNo(str("out_trade_no")):
		return nil, &gatewayError{"ACQ.INVALID_PARAMETER", "out_trade_no"}
	case str("subject") == "":
		return nil, &gatewayError{"ACQ.INVALID_PARAMETER", "subject"}
	case str("product_code") != product.Code:
		return nil, &gatewayError{"ACQ.INVALID_PARAMETER", "product_code must be " + product.Code + " for " + p["method"]}
	}
	amountText := str("total_amount")
	if n, ok := biz["total_amount"].(json.Number); ok {
		amountText = n.String()
	}
	amount, err := protocol.ParseAmount(amountText)
	if err != nil {
		return nil, &gatewayError{"ACQ.INVALID_PARAMETER", "total_amount"}
	}
	for _, u := range []struct{ name, value string }{{"notify_url", p["notify_url"]}, {"return_url", p["return_url"]}, {"quit_url", str("quit_url")}} {
		if ge := s.checkCallbackURL(u.name, u.value); ge != nil {
			return nil, ge
		}
	}
	return s.trades.open(&trade{
		appID: p["app_id"], method: p["method"], signType: p["sign_type"],
		outTradeNo: str("out_trade_no"), amount: amount, subject: str("subject"), body: str("body"),
		passback: str("passback_params"), quitURL: str("quit_url"),
		notifyURL: p["notify_url"], returnURL: p["return_url"],
	})
}

// checkCallbackURL refuses a URL that the sandbox would send a
// notification or a buyer to, unless it is absolute and on this machine
// or on one of callback_hosts.
func (s *Sandbox) checkCallbackURL(name, raw string) *gatewayError {
	if raw == "" {
		return nil
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil {
		return &gatewayError{"invalid-parameter", name + " is not an absolute http(s) URL"}
	}
	host := hostKey(u.Hostname())
	if !protocol.IsLoopback(host) && !s.callbackHosts[host] {
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
// OpenAPI: the required parameters, utf-8, the sign type, the signature.
func (s *Sandbox) checkRequest(p map[string]string) *gatewayError {
	if !s.openAPI {
		return &gatewayError{"invalid-app-id", "无效的AppID参数: the sandbox plays only the legacy gateway (partner and md5_key, without app_public_key and alipay_private_key)"}
	}
	for _, k := range []string{"app_id", "method", "charset", "sign_type", "timestamp", "version", "biz_content", "sign"} {
		if p[k] == "" {
			return &gatewayError{"missing-parameter", "missing " + k}
		}
	}
	if !strings.EqualFold(p["charset"], "utf-8") {
		return &gatewayError{"invalid-charset", "the sandbox speaks utf-8 only"}
	}
	v, ok := s.verifiers[p["sign_type"]]
	if !ok {
		return &gatewayError{"invalid-signature-type", "sign_type must be RSA2 or RSA"}
	}
	if s.certs != nil {
		if ge := s.certs.check(p); ge != nil {
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
func (s *Sandbox) serveCashier(w http.ResponseWriter, r *http.Request) {
	id, action, _ := strings.Cut(strings.TrimPrefix(r.URL.Path, cashierPrefix), "/")
	t := s.trades.byID(id)
	if t == nil {
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
		v := s.trades.view(t)
		if v.Status == "TRADE_CLOSED" && !v.Paid {
			renderPage(w, http.StatusConflict, errorPageTemplate, errTradeClosed)
			return
		}
		renderPage(w, http.StatusOK, cashierTemplate, v)
	case action == "pay" && r.Method == http.MethodPost:
		s.pay(w, r, t)
	case action == "cancel" && r.Method == http.MethodPost:
		target := t.quitURL
		if target == "" {
			target = originOf(t.returnURL) + "/"
		}
		s.logger.Info("sandbox: buyer cancelled", zap.String("out_trade_no", t.outTradeNo))
		s.trades.event(t, tradeEvent{at: now(), kind: "cancel", source: "buyer", detail: "sent back to " + target})
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
// the shop says success), the buyer goes back to return_url.
func (s *Sandbox) pay(w http.ResponseWriter, r *http.Request, t *trade) {
	if ge := s.trades.markPaid(t, now()); ge != nil {
		if t.legacy != nil {
			ge = legacyGatewayError(ge)
		}
		renderPage(w, http.StatusConflict, errorPageTemplate, ge)
		return
	}
	s.logger.Info("sandbox: trade paid", zap.String("out_trade_no", t.outTradeNo), zap.String("trade_no", t.tradeNo))
	if t.notifyURL != "" {
		go s.deliver(t)
	}
	if t.returnURL == "" {
		renderPage(w, http.StatusOK, cashierTemplate, s.trades.view(t))
		return
	}
	var q, notifyID string
	var err error
	if t.legacy != nil {
		q, notifyID, err = s.legacyReturnQuery(t)
	} else {
		q, err = s.returnQuery(t)
	}
	if err != nil {
		http.Error(w, "signing the return failed", http.StatusInternalServerError)
		return
	}
	detail := "sent back to " + t.returnURL
	if notifyID != "" {
		detail += ", notify_id " + notifyID
	}
	s.trades.event(t, tradeEvent{at: now(), kind: "return", source: "buyer", detail: detail})
	sep := "?"
	if strings.Contains(t.returnURL, "?") {
		sep = "&"
	}
	http.Redirect(w, r, t.returnURL+sep+q, http.StatusFound)
}
