package alipay

import (
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/caddy-alipay/caddy-alipay/internal/caddyconf"
	"github.com/caddy-alipay/caddy-alipay/internal/protocol"
)

// maxPayBody bounds a POSTed pay form: a token and little else.
const maxPayBody = 64 << 10

// servePay turns a pay token into a signed page-pay or WAP-pay request and
// sends the browser to the gateway.
func (h *Handler) servePay(w http.ResponseWriter, r *http.Request) error {
	ev := event{name: eventPay}
	defer h.log(&ev)
	if r.Method != http.MethodGet && r.Method != http.MethodPost {
		w.Header().Set("Allow", "GET, POST")
		return ev.reply(w, http.StatusMethodNotAllowed, outcomeInvalid, "method not allowed", "use GET or POST\n")
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxPayBody)
	if err := r.ParseForm(); err != nil {
		status := http.StatusBadRequest
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			status = http.StatusRequestEntityTooLarge
		}
		return ev.reply(w, status, outcomeInvalid, err.Error(), "bad request\n")
	}
	t := now()
	claims, err := h.tokens.Parse(r.Form.Get("token"), t)
	if err != nil {
		return ev.reply(w, http.StatusForbidden, outcomeForbidden, err.Error(), linkRefusal("payment", err))
	}
	order, err := h.protocol.ParseOrder(claims)
	if err != nil {
		_ = json.Unmarshal(claims["out_trade_no"], &ev.outTradeNo)
		return ev.reply(w, http.StatusBadRequest, outcomeInvalid, err.Error(), err.Error()+"\n")
	}
	ev.outTradeNo, ev.totalAmount = order.OutTradeNo, order.TotalAmount

	notifyURL, err := h.callbackURL(r, h.NotifyURL, h.notifyPath)
	if err != nil {
		return hostRefusal(w, r, &ev, err)
	}
	switch order.Product.Kind {
	case protocol.InApp:
		return h.serveAppPay(w, &ev, order, notifyURL, t)
	case protocol.ByQRCode:
		return h.serveQRPay(w, r, &ev, order, notifyURL)
	}
	returnURL, err := h.callbackURL(r, h.ReturnURL, h.returnPath)
	if err != nil {
		return hostRefusal(w, r, &ev, err)
	}
	target, err := h.protocol.PayURL(order, notifyURL, returnURL, t)
	if err != nil {
		return ev.reply(w, http.StatusInternalServerError, outcomeInvalid, err.Error(), "internal error\n")
	}
	ev.outcome = outcomeOK
	return sendTo(w, r, target)
}

// linkRefusal is the answer to a pay or refund link whose token is
// refused: why, in the few words of protocol.TokenReason, so that the
// shop's developer sees what to fix and a forger learns nothing.
func linkRefusal(kind string, err error) string {
	if errors.Is(err, protocol.ErrTokenExpired) {
		return "this " + kind + " link has expired\n"
	}
	return "invalid " + kind + " token: " + protocol.TokenReason(err) + "\n"
}

// hostRefusal answers a pay request whose callback URLs cannot be built
// from its Host.
func hostRefusal(w http.ResponseWriter, r *http.Request, ev *event, err error) error {
	if errors.Is(err, errBadHost) {
		return ev.reply(w, http.StatusBadRequest, outcomeInvalid, err.Error(), "bad request: no valid Host\n")
	}
	return ev.reply(w, http.StatusMisdirectedRequest, outcomeInvalid, "host "+strconv.Quote(r.Host)+": "+err.Error(),
		"this site does not take payments for this host name\n")
}

// serveAppPay answers an app-pay order with its signed order string, for
// the shop's mobile app to hand to Alipay's app SDK: always JSON, since
// the shop's server, not a browser, asks for it.
func (h *Handler) serveAppPay(w http.ResponseWriter, ev *event, order *protocol.Order, notifyURL string, t time.Time) error {
	s, err := h.client.API.AppOrderString(order, notifyURL, t)
	if err != nil {
		return ev.reply(w, http.StatusInternalServerError, outcomeInvalid, err.Error(), "internal error\n")
	}
	ev.outcome = outcomeOK
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	return json.NewEncoder(w).Encode(struct {
		OrderString string `json:"order_string"`
	}{s})
}

// sendTo sends the browser to a signed gateway URL: a 302, or with
// Accept: application/json the URL as {"url": ...}, for a page that
// sends it there itself. Never cached: the URL is signed for one use.
func sendTo(w http.ResponseWriter, r *http.Request, target string) error {
	w.Header().Set("Cache-Control", "no-store")
	if caddyconf.AcceptsJSON(r) {
		w.Header().Set("Content-Type", "application/json")
		return json.NewEncoder(w).Encode(struct {
			URL string `json:"url"`
		}{target})
	}
	http.Redirect(w, r, target, http.StatusFound)
	return nil
}
