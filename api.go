package alipay

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"

	"github.com/caddy-alipay/caddy-alipay/internal/protocol"
)

// The upstream API: the shop POSTs a method's biz_content to
// {prefix}/api/<method> with a short-lived bearer JWT made with the shared
// secret; the sidecar signs the call as Alipay's SDKs do, sends it to the
// gateway and hands back the response's value only once its signature
// holds.

// serveAPI handles POST {prefix}/api/<method>; segment is the path's
// method segment, as the router read it.
func (h *Handler) serveAPI(w http.ResponseWriter, r *http.Request, segment string) error {
	ev := event{name: eventAPI}
	defer h.log(&ev)
	methods := h.api.Methods()
	i := slices.IndexFunc(methods, func(m string) bool { return strings.EqualFold(m, segment) })
	if i < 0 {
		ev.method = segment
		return ev.replyJSON(w, http.StatusNotFound, outcomeInvalid, "no such API method", map[string]string{"error": "no such API method"})
	}
	method := methods[i]
	ev.method = method
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", "POST")
		return ev.replyJSON(w, http.StatusMethodNotAllowed, outcomeInvalid, "method not allowed", map[string]string{"error": "use POST"})
	}
	bearer, ok := bearerToken(r.Header.Get("Authorization"))
	if !ok {
		w.Header().Set("WWW-Authenticate", `Bearer realm="caddy-alipay"`)
		return ev.replyJSON(w, http.StatusUnauthorized, outcomeForbidden, "no bearer token", map[string]string{"error": "missing bearer token"})
	}
	if err := h.tokens.ParseBearer(bearer, now()); err != nil {
		w.Header().Set("WWW-Authenticate", `Bearer realm="caddy-alipay", error="invalid_token"`)
		return ev.replyJSON(w, http.StatusUnauthorized, outcomeForbidden, err.Error(), map[string]string{"error": "invalid bearer token: " + protocol.TokenReason(err)})
	}
	biz, fields, err := readBizContent(w, r)
	if err != nil {
		return ev.replyJSON(w, http.StatusBadRequest, outcomeInvalid, err.Error(), map[string]string{"error": err.Error()})
	}
	ev.outTradeNo, ev.tradeNo = stringField(fields, "out_trade_no"), stringField(fields, "trade_no")
	// For the calls that name a notify_url (legacy refunds): the site's
	// own, as for pay, when it can be known.
	notifyURL, _ := h.callbackURL(r, h.NotifyURL, h.notifyPath)

	answer, err := h.api.Call(r.Context(), method, biz, fields, notifyURL)
	var claim *protocol.ClaimError
	if errors.As(err, &claim) {
		return ev.replyJSON(w, http.StatusBadRequest, outcomeInvalid, err.Error(), map[string]string{"error": err.Error()})
	}
	if err != nil {
		status, body := http.StatusBadGateway, map[string]string{"error": err.Error()}
		var ce *protocol.CallError
		if errors.As(err, &ce) {
			if ce.Kind == protocol.CallTimeout {
				status = http.StatusGatewayTimeout
			}
			for k, v := range ce.Fields {
				body[k] = v
			}
		}
		return ev.replyJSON(w, status, outcomeUpstreamFailed, err.Error(), body)
	}
	ev.outcome = outcomeOK
	if method == "alipay.trade.pay" {
		var res protocol.BarcodeResult
		_ = json.Unmarshal(answer, &res)
		ev.tradeNo, ev.tradeStatus = res.TradeNo, "barcode "+res.Result
		if res.Result == protocol.BarcodeUnknown {
			ev.reason = "barcode pay: the cancel could not be settled; the trade needs a person (query it, cancel or refund it in Alipay's merchant portal)"
		}
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(answer)
	return nil
}

// bearerToken reads the token of an Authorization header of the Bearer
// scheme, whose name is case-insensitive (RFC 7235 section 2.1).
func bearerToken(header string) (string, bool) {
	scheme, token, ok := strings.Cut(strings.TrimSpace(header), " ")
	token = strings.TrimSpace(token)
	if !ok || !strings.EqualFold(scheme, "Bearer") || token == "" {
		return "", false
	}
	return token, true
}

// readBizContent reads the request body, a JSON object, as compact JSON
// and as its members. A name given twice, even in another case, is
// refused: the guards here read names exactly, as Alipay does, and must
// see what Alipay will.
func readBizContent(w http.ResponseWriter, r *http.Request) ([]byte, map[string]json.RawMessage, error) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, protocol.MaxCallbackSize))
	if err != nil {
		return nil, nil, errors.New("body too large or unreadable")
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(body, &obj); err != nil || obj == nil {
		return nil, nil, errors.New("the body must be the method's biz_content, a JSON object")
	}
	if err := protocol.CheckJSONNames(body); err != nil {
		return nil, nil, fmt.Errorf("the body's names: %w", err)
	}
	var compact bytes.Buffer
	if err := json.Compact(&compact, body); err != nil {
		return nil, nil, err
	}
	return compact.Bytes(), obj, nil
}

// stringField is the string member name of fields, by its exact name, or
// "" when it is absent or not a string.
func stringField(fields map[string]json.RawMessage, name string) string {
	var s string
	_ = json.Unmarshal(fields[name], &s)
	return s
}
