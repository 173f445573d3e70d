package sandbox

import (
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/caddy-alipay/caddy-alipay/internal/caddyconf"
	"github.com/caddy-alipay/caddy-alipay/internal/protocol"
	"go.uber.org/zap"
)

// The sandbox's legacy gateway (即时到账, the mapi gateway's services):
// create_direct_pay_by_user, its cashier, the notification and the
// return; service=notify_verify, which confirms the notify_id of each;
// and after the payment single_trade_query, close_trade and the batch
// refunds (legacyservices.go, batch.go). Every request but notify_verify
// is signed with the partner's MD5 key or RSA key, in the partner's
// charset, and the sandbox signs what it sends the same way. The
// protocol package's merchant side (EncodeLegacy, LegacyContent, MD5Key)
// does the signing, so that the sandbox signs exactly as the sidecar
// verifies.

// legacyGateway is the legacy gateway of one partner.
type legacyGateway struct {
	partner string
	// By sign_type: MD5 with md5_key, and RSA (SHA1withRSA) when the
	// OpenAPI keys are set: app_public_key checks the requests,
	// alipay_private_key signs the callbacks.
	verifiers map[string]protocol.Verifier
	signers   map[string]protocol.Signer
}

// legacyTrade is what a legacy trade remembers of its request: its
// callbacks speak as it spoke.
type legacyTrade struct {
	partner string
	charset string // utf-8 or gbk: the request's _input_charset
	// The seller as the request named it: one of them, or both.
	sellerID, sellerEmail string
	extraCommonParam      string // echoed in the notification and the return
}

// legacyPaidStatus is the trade_status of a paid legacy trade: a plain
// 即时到账 partner is told TRADE_FINISHED (the advanced product's is
// TRADE_SUCCESS). Shops must treat both as paid. The sandbox refunds
// such a trade all the same, so that the refund services can be tried
// on it; a trade refunded in full is TRADE_CLOSED.
const legacyPaidStatus = "TRADE_FINISHED"

// notifyIDLifetime is how long notify_verify confirms a notify_id, as
// Alipay's: about a minute after it was sent.
const notifyIDLifetime = time.Minute

// maxSentNotifyIDs bounds the notify_ids remembered within their minute.
const maxSentNotifyIDs = 10000

// legacyServices are the services that the sandbox's legacy gateway
// answers.
var legacyServices = []string{"create_direct_pay_by_user", "notify_verify", "single_trade_query", "close_trade",
	"refund_fastpay_by_platform_nopwd", "refund_fastpay_by_platform_pwd"}

// provisionLegacy sets up the legacy gateway when partner is set, from
// the resolved settings; partnerGiven and md5KeyGiven say whether each
// was set before its placeholders were resolved. The partner id and
// md5_key follow the sidecar's rules (protocol.NewLegacy, whose errors
// name the setting and never echo the key).
func (h *Handler) provisionLegacy(partnerGiven, md5KeyGiven bool) error {
	partner, md5Key := h.Partner, h.MD5Key
	switch {
	case !partnerGiven && md5KeyGiven:
		return caddyconf.SettingError("md5_key", errors.New("only with partner, which the legacy gateway serves"))
	case !partnerGiven:
		return nil
	case partner == "":
		return caddyconf.SettingError("partner", errors.New("empty (an unset environment variable or a missing {file.*}?)"))
	case md5Key == "":
		return caddyconf.SettingError("md5_key", errors.New("required with partner: the partner's 32 letters and digits, or a file that holds them (an unset environment variable or a missing {file.*}?)"))
	}
	l, _, err := protocol.NewLegacy(protocol.LegacyConfig{Partner: partner, SignType: protocol.SignTypeMD5, MD5Key: md5Key})
	if err != nil {
		return err
	}
	g := &legacyGateway{partner: partner,
		verifiers: map[string]protocol.Verifier{protocol.SignTypeMD5: l.Verifier},
		signers:   map[string]protocol.Signer{protocol.SignTypeMD5: l.Signer}}
	if h.openAPI {
		g.verifiers[protocol.SignTypeRSA] = h.verifiers[protocol.SignTypeRSA]
		g.signers[protocol.SignTypeRSA] = h.signers[protocol.SignTypeRSA]
	}
	h.legacy = g
	return nil
}

// legacyParam is a request parameter; when the parameters could not be
// read, the query's.
func legacyParam(r *http.Request, params map[string]string, key string) string {
	if params == nil {
		return r.URL.Query().Get(key)
	}
	return params[key]
}

// isLegacyRequest reports whether a gateway request is one of the legacy
// protocol's: it names one of its services, or, without an OpenAPI
// method, a service or an _input_charset (the action URL of a legacy POST
// form carries it).
func isLegacyRequest(r *http.Request, params map[string]string) bool {
	service := legacyParam(r, params, "service")
	if slices.Contains(legacyServices, service) {
		return true
	}
	return legacyParam(r, params, "method") == "" && (service != "" || legacyParam(r, params, "_input_charset") != "")
}

// serveLegacy answers a legacy request; perr is gatewayParams' error.
// The services after the payment answer in XML (legacyservices.go), but
// the password page's (batch.go), which the seller's browser opens;
// create_direct_pay_by_user, and any other service, opens the cashier
// or shows the error page.
func (h *Handler) serveLegacy(w http.ResponseWriter, r *http.Request, p map[string]string, perr error) {
	switch service := legacyParam(r, p, "service"); service {
	case "notify_verify":
		h.serveNotifyVerify(w, r, p)
		return
	case "single_trade_query", "close_trade", "refund_fastpay_by_platform_nopwd":
		h.serveLegacyXML(w, service, p, perr)
		return
	case "refund_fastpay_by_platform_pwd":
		h.servePasswordPage(w, p, perr)
		return
	}
	err := perr
	if err == nil {
		var t *trade
		if t, err = h.openLegacyTrade(p); err == nil {
			h.logger.Info("sandbox: legacy trade opened", zap.String("out_trade_no", t.outTradeNo), zap.String("trade_no", t.tradeNo))
			http.Redirect(w, r, cashierPrefix+t.id, http.StatusFound)
			return
		}
	}
	h.legacyErrorPage(w, err)
}

// legacyErrorPage shows the legacy gateway's error page for err, with
// the legacy gateway's code.
func (h *Handler) legacyErrorPage(w http.ResponseWriter, err error) {
	ge := asLegacyError(err)
	h.logger.Warn("sandbox: legacy request refused", zap.String("code", ge.code), zap.String("reason", ge.reason))
	renderPage(w, http.StatusBadRequest, errorPageTemplate, ge)
}

// asLegacyError is err as the legacy gateway names it.
func asLegacyError(err error) *gatewayError {
	var ge *gatewayError
	if !errors.As(err, &ge) {
		ge = &gatewayError{"ILLEGAL_ARGUMENT", err.Error()}
	}
	return legacyGatewayError(ge)
}

// legacyGatewayError names an error as the legacy gateway names it: the
// request parser's and the trade store's errors have OpenAPI's names.
// The legacy services' own codes are upper case without a dot, and stay.
func legacyGatewayError(ge *gatewayError) *gatewayError {
	code := ge.code
	switch {
	case code == "ACQ.TRADE_HAS_SUCCESS":
		code = "TRADE_HAS_SUCCESS"
	case code == "ACQ.CONTEXT_INCONSISTENT":
		code = "TRADE_DATA_MATCH_ERROR"
	case code == errTradeClosed.code:
		code = "TRADE_HAS_CLOSED"
	case code == strings.ToUpper(code) && !strings.Contains(code, "."):
		return ge
	default:
		code = "ILLEGAL_ARGUMENT"
	}
	return &gatewayError{code, ge.reason}
}

// verifyLegacyRequest makes the checks common to every signed legacy
// request, as the legacy gateway does: the partner, _input_charset, the
// sign type, and the signature over the values as sent, bytes in that
// charset. It returns the charset, utf-8 or gbk.
func (h *Handler) verifyLegacyRequest(p map[string]string) (string, *gatewayError) {
	g := h.legacy
	if p["partner"] != g.partner {
		return "", &gatewayError{"ILLEGAL_PARTNER", "合作伙伴ID不正确: partner is not the sandbox's " + g.partner}
	}
	var charset string
	switch strings.ToLower(p["_input_charset"]) {
	case "utf-8":
		charset = "utf-8"
	case "gbk":
		charset = "gbk"
	case "":
		return "", &gatewayError{"ILLEGAL_CHARSET", "_input_charset is required: utf-8 or gbk (in the action URL's query for a POST form)"}
	default:
		return "", &gatewayError{"ILLEGAL_CHARSET", "_input_charset must be utf-8 or gbk"}
	}
	signType := p["sign_type"]
	v, ok := g.verifiers[signType]
	if !ok {
		reason := "sign_type must be MD5"
		if h.openAPI {
			reason += " or RSA"
		} else {
			reason += " (RSA needs app_public_key and alipay_private_key in the sandbox)"
		}
		return "", &gatewayError{"ILLEGAL_SIGN_TYPE", reason}
	}
	sign := p["sign"]
	if sign == "" {
		return "", &gatewayError{"ILLEGAL_SIGN", "missing sign"}
	}
	if signType != protocol.SignTypeMD5 {
		// A sign read from a query may have lost its + to a space
		// (base64 has no spaces), as Alipay's own demos allow for.
		sign = strings.ReplaceAll(sign, " ", "+")
	}
	if v.Verify(protocol.LegacyContent(p), sign) != nil {
		reason := "签名不正确: the signature does not verify with md5_key"
		if signType != protocol.SignTypeMD5 {
			reason = "签名不正确: the signature does not verify with app_public_key (SHA1withRSA)"
		}
		return "", &gatewayError{"ILLEGAL_SIGN", reason + "; sign the values as sent, in " + charset + ", sorted, without sign, sign_type and empty values"}
	}
	return charset, nil
}

// decodeLegacy converts the values of keys, bytes in charset, to UTF-8,
// once the signature holds; a value that is not text in the charset is
// refused.
func decodeLegacy(p map[string]string, charset string, keys ...string) (map[string]string, *gatewayError) {
	text := map[string]string{}
	for _, k := range keys {
		t, err := protocol.DecodeCharset([]byte(p[k]), charset)
		if err != nil {
			return nil, &gatewayError{"ILLEGAL_ARGUMENT", k + " is not text in " + charset}
		}
		text[k] = t
	}
	return text, nil
}

// openLegacyTrade checks a create_direct_pay_by_user request as the legacy
// gateway does and returns its trade, new or (for the same order again)
// the existing one. The values are converted to UTF-8 only once the
// signature holds, for the cashier and for the callbacks, which
// EncodeLegacy encodes in that charset again.
func (h *Handler) openLegacyTrade(p map[string]string) (*trade, error) {
	if p["service"] != "create_direct_pay_by_user" {
		return nil, &gatewayError{"ILLEGAL_SERVICE", "接口名称不正确: the sandbox's legacy gateway serves " + strings.Join(legacyServices, ", ")}
	}
	charset, ge := h.verifyLegacyRequest(p)
	if ge != nil {
		return nil, ge
	}
	text, ge := decodeLegacy(p, charset, "subject", "body", "extra_common_param", "seller_email")
	if ge != nil {
		return nil, ge
	}
	amount, err := protocol.ParseAmount(p["total_fee"])
	switch {
	case p["payment_type"] != "1":
		return nil, &gatewayError{"ILLEGAL_ARGUMENT", "payment_type must be 1"}
	case !protocol.ValidOutTradeNo(p["out_trade_no"]):
		return nil, &gatewayError{"ILLEGAL_ARGUMENT", "out_trade_no must be 1 to 64 letters, digits or _"}
	case text["subject"] == "":
		return nil, &gatewayError{"ILLEGAL_ARGUMENT", "subject is required"}
	case err != nil:
		return nil, &gatewayError{"ILLEGAL_ARGUMENT", "total_fee must be yuan with at most 2 decimals, from 0.01"}
	case p["seller_id"] == "" && p["seller_email"] == "":
		return nil, &gatewayError{"ILLEGAL_ARGUMENT", "seller_id or seller_email is required"}
	case p["seller_id"] != "" && !protocol.ValidAlipayID(p["seller_id"]):
		return nil, &gatewayError{"ILLEGAL_ARGUMENT", "seller_id must be 2088 and 12 digits"}
	case p["seller_email"] != "" && !protocol.ValidEmail(text["seller_email"]):
		return nil, &gatewayError{"ILLEGAL_ARGUMENT", "seller_email is not an email address"}
	}
	for _, name := range []string{"notify_url", "return_url"} {
		if ge := h.checkCallbackURL(name, p[name]); ge != nil {
			return nil, &gatewayError{"ILLEGAL_ARGUMENT", ge.reason}
		}
	}
	t, err := h.trades.open(&trade{
		signType: p["sign_type"], outTradeNo: p["out_trade_no"], amount: amount,
		subject: text["subject"], body: text["body"],
		notifyURL: p["notify_url"], returnURL: p["return_url"],
		legacy: &legacyTrade{partner: h.legacy.partner, charset: charset, sellerID: p["seller_id"],
			sellerEmail: text["seller_email"], extraCommonParam: text["extra_common_param"]},
	})
	if err != nil {
		return nil, err
	}
	return t, nil
}

// serveNotifyVerify answers service=notify_verify (GET, unsigned) as
// Alipay does, in plain text: true for a notify_id that the sandbox sent
// to this partner, in a notification or a return, within the last
// minute; false for any other; invalid for another partner.
func (h *Handler) serveNotifyVerify(w http.ResponseWriter, r *http.Request, p map[string]string) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET")
		http.Error(w, "notify_verify takes GET", http.StatusMethodNotAllowed)
		return
	}
	answer := "false"
	switch {
	case p["partner"] != h.legacy.partner:
		answer = "invalid"
	case h.trades.sent.confirm(p["notify_id"], now()):
		answer = "true"
	}
	h.logger.Info("sandbox: notify_verify", zap.String("notify_id", p["notify_id"]), zap.String("answer", answer))
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	_, _ = w.Write([]byte(answer))
}

// sentNotifyIDs are the notify_ids sent within the last minute, by the
// time they were sent, for notify_verify. Older ones are pruned as new
// ones come, and at most max are kept.
type sentNotifyIDs struct {
	mu    sync.Mutex
	at    map[string]time.Time
	order []sentNotifyID // oldest first
	max   int
}

type sentNotifyID struct {
	id string
	at time.Time
}

// add remembers a fresh notify_id sent at at and returns it.
func (n *sentNotifyIDs) add(at time.Time) string {
	id := protocol.RandomID()
	n.mu.Lock()
	defer n.mu.Unlock()
	n.prune(at)
	if len(n.order) >= n.max {
		n.forgetOldest()
	}
	n.at[id] = at
	n.order = append(n.order, sentNotifyID{id, at})
	return id
}

// confirm reports whether id was sent within the minute before at.
func (n *sentNotifyIDs) confirm(id string, at time.Time) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.prune(at)
	sent, ok := n.at[id]
	return ok && !at.Before(sent) && at.Sub(sent) <= notifyIDLifetime
}

// prune forgets the ids sent more than a minute before at.
func (n *sentNotifyIDs) prune(at time.Time) {
	for len(n.order) > 0 && at.Sub(n.order[0].at) > notifyIDLifetime {
		n.forgetOldest()
	}
}

func (n *sentNotifyIDs) forgetOldest() {
	delete(n.at, n.order[0].id)
	n.order[0] = sentNotifyID{}
	n.order = n.order[1:]
}

// legacyReturnQuery is the query of the legacy return, signed like the
// notification, with a fresh notify_id of its own, which it returns too.
func (h *Handler) legacyReturnQuery(t tradeSnapshot) (query, notifyID string, err error) {
	at := now()
	p := legacyCallbackFields(&t.trade)
	p["is_success"], p["exterface"], p["notify_time"] = "T", "create_direct_pay_by_user", protocol.Timestamp(at)
	p["payment_type"] = "1"
	p["notify_id"] = h.trades.sent.add(at)
	query, err = h.signLegacy(p, t.legacy.charset, t.signType)
	return query, p["notify_id"], err
}

// signLegacy encodes p in charset and signs it as Alipay's legacy gateway
// signs callbacks; empty values are neither signed nor sent.
func (h *Handler) signLegacy(p map[string]string, charset, signType string) (string, error) {
	signer := h.legacy.signers[signType]
	if signer == nil {
		return "", fmt.Errorf("no signer for sign_type %q", signType)
	}
	return protocol.EncodeLegacy(p, charset, signer)
}
