package alipay

import (
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/caddy-alipay/caddy-alipay/internal/protocol"
)

// The refund link of the legacy protocol: GET {prefix}/refund?token=<JWT>
// sends the seller's browser to Alipay's refund_fastpay_by_platform_pwd,
// where the seller confirms a batch of refunds with a password. The
// token is the shop's, with "scope": "refund", so that neither a buyer's
// pay link nor the shop's API bearer can open it, and it opens nothing
// else.

// A refundLinker is a protocol that has refund links for the seller.
type refundLinker interface {
	RefundURL(claims map[string]json.RawMessage, notifyURL string, at time.Time) (string, error)
}

// serveRefund turns a refund token into the signed gateway URL of a
// refund batch and sends the browser there.
func (h *Handler) serveRefund(w http.ResponseWriter, r *http.Request) error {
	ev := event{name: eventRefund}
	defer h.log(&ev)
	linker, ok := h.protocol.(refundLinker)
	if !ok {
		return ev.reply(w, http.StatusNotFound, outcomeInvalid, "refund links are the legacy protocol's",
			"not found: refund through the API (alipay.trade.refund)\n")
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		return ev.reply(w, http.StatusMethodNotAllowed, outcomeInvalid, "method not allowed", "use GET\n")
	}
	t := now()
	claims, err := h.tokens.ParseScoped(r.URL.Query().Get("token"), protocol.RefundScope, t)
	if err != nil {
		return ev.reply(w, http.StatusForbidden, outcomeForbidden, err.Error(), linkRefusal("refund", err))
	}
	_ = json.Unmarshal(claims["batch_no"], &ev.batchNo)
	notifyURL, hostErr := h.callbackURL(r, h.NotifyURL, h.notifyPath)
	target, err := linker.RefundURL(claims, notifyURL, t)
	var claim *protocol.ClaimError
	switch {
	case errors.As(err, &claim) && claim.Claim == "notify_url" && hostErr != nil:
		return ev.reply(w, http.StatusMisdirectedRequest, outcomeInvalid, "host "+strconv.Quote(r.Host)+": "+hostErr.Error(),
			"this site does not take refunds for this host name\n")
	case errors.As(err, &claim):
		return ev.reply(w, http.StatusBadRequest, outcomeInvalid, err.Error(), err.Error()+"\n")
	case err != nil:
		return ev.reply(w, http.StatusInternalServerError, outcomeInvalid, err.Error(), "internal error\n")
	}
	ev.outcome = outcomeOK
	return sendTo(w, r, target)
}
