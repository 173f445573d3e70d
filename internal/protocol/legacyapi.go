package protocol

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
)

// The legacy protocol's API: the shop's calls of the mapi gateway's
// services after a payment, each signed as create_direct_pay_by_user is
// (the same string to sign, MD5 or RSA, bytes in the partner's charset),
// POSTed server to server, and answered in XML, which the shop gets as
// JSON (LegacyXMLToJSON).
//
// Alipay signs these answers too (<sign>, <sign_type>), but how is not
// documented, and no known port checks it, so the sidecar does not verify
// it: the answer is trusted as the gateway's over TLS, and the shop gets
// sign and sign_type as they came.

// LegacyServices are the services that the legacy API serves.
var LegacyServices = []string{"single_trade_query", "close_trade", "refund_fastpay_by_platform_nopwd"}

// LegacyAPITimeout bounds one call of the legacy API unless
// Legacy.APITimeout says otherwise.
const LegacyAPITimeout = 15 * time.Second

// sidecarParams are the parameters that the sidecar sets itself: a shop's
// body or token that names one is refused.
var sidecarParams = []string{"service", "partner", "_input_charset", "sign", "sign_type",
	"refund_date", "batch_num", "seller_user_id", "seller_email"}

// Methods implements API.
func (*Legacy) Methods() []string { return slices.Clone(LegacyServices) }

// Call implements API: fields are the service's own parameters, strings
// by their exact names (refunds, a list, is the one exception); anything
// else is a *ClaimError that names the field. The answer is Alipay's XML
// as JSON, whatever its is_success.
func (p *Legacy) Call(ctx context.Context, method string, body []byte, fields map[string]json.RawMessage, notifyURL string) ([]byte, error) {
	if fields == nil && len(body) > 0 {
		if err := json.Unmarshal(body, &fields); err != nil || fields == nil {
			return nil, &ClaimError{"body", "must be a JSON object of the service's parameters"}
		}
	}
	var params map[string]string
	var err error
	switch method {
	case "single_trade_query":
		params, err = p.lookupParams(method, fields, "out_trade_no")
	case "close_trade":
		if _, ok := fields["out_trade_no"]; ok {
			return nil, &ClaimError{"out_trade_no", "close_trade names the shop's order number out_order_no"}
		}
		params, err = p.lookupParams(method, fields, "out_order_no")
	case "refund_fastpay_by_platform_nopwd":
		params, err = p.refundParams(method, fields, notifyURL, p.now())
	default:
		return nil, fmt.Errorf("%q is not a service of the legacy api", method)
	}
	if err != nil {
		return nil, err
	}
	return p.post(ctx, params)
}

// lookupParams are the parameters of a service that names one trade by
// trade_no, or by outName, the shop's order number: at least one.
func (p *Legacy) lookupParams(service string, fields map[string]json.RawMessage, outName string) (map[string]string, error) {
	if err := onlyParams(fields, service, []string{"trade_no", outName}, nil); err != nil {
		return nil, err
	}
	params := p.serviceBase(service)
	for _, name := range []string{"trade_no", outName} {
		s, err := stringParam(fields, name)
		if err != nil {
			return nil, err
		}
		if s == "" {
			continue
		}
		if name == "trade_no" && !ValidTradeNo(s) || name != "trade_no" && !ValidOutTradeNo(s) {
			return nil, &ClaimError{name, "must be 1 to 64 letters, digits or _"}
		}
		params[name] = s
	}
	if params["trade_no"] == "" && params[outName] == "" {
		return nil, &ClaimError{"trade_no", service + " needs trade_no or " + outName}
	}
	return params, nil
}

// serviceBase are the parameters that every call of service carries but
// sign and sign_type, which EncodeLegacy adds.
func (p *Legacy) serviceBase(service string) map[string]string {
	return map[string]string{"service": service, "partner": p.Partner, "_input_charset": p.Charset}
}

// onlyParams refuses a field that is not one of allowed (nor of ignored,
// which are left for the caller to skip), naming it; in name order, so
// that the same input always names the same field.
func onlyParams(fields map[string]json.RawMessage, service string, allowed, ignored []string) error {
	for _, name := range slices.Sorted(maps.Keys(fields)) {
		switch {
		case slices.Contains(allowed, name), slices.Contains(ignored, name):
		case slices.Contains(sidecarParams, name):
			return &ClaimError{name, "is set by the sidecar, not by the shop"}
		default:
			return &ClaimError{name, "is not a parameter of " + service + ": it takes " + strings.Join(allowed, ", ")}
		}
	}
	return nil
}

// stringParam is the string field name ("" when absent or empty: the
// legacy protocol neither signs nor sends an empty value); a field that
// is not a string is a ClaimError.
func stringParam(fields map[string]json.RawMessage, name string) (string, error) {
	raw, ok := fields[name]
	if !ok {
		return "", nil
	}
	var s string
	if len(raw) == 0 || raw[0] != '"' || json.Unmarshal(raw, &s) != nil {
		return "", &ClaimError{name, "must be a string"}
	}
	return s, nil
}

// post signs params, sends them to the gateway as a form (with
// _input_charset in the URL's query too, as Alipay reads the charset
// there before it decodes the body) and returns the answer as JSON.
func (p *Legacy) post(ctx context.Context, params map[string]string) ([]byte, error) {
	form, err := EncodeLegacy(params, p.Charset, p.Signer)
	if err != nil {
		return nil, err
	}
	timeout := p.APITimeout
	if timeout == 0 {
		timeout = LegacyAPITimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	target := p.Gateway + "?" + url.Values{"_input_charset": {p.Charset}}.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, strings.NewReader(form))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded; charset="+p.Charset)
	start := time.Now()
	body, err := exchange(p.noRedirect(), req)
	p.Timer.since(params["service"], start)
	if err != nil {
		return nil, err
	}
	answer, err := LegacyXMLToJSON(body)
	if err != nil {
		return nil, &CallError{Kind: CallBadAnswer, Msg: "the gateway's answer is not Alipay's XML: " + err.Error()}
	}
	return answer, nil
}

// noRedirect is p.HTTP (or a client of its own) that returns a redirect
// as the answer: a gateway that redirects gives no answer to trust, and
// following it would send the signed form elsewhere.
func (p *Legacy) noRedirect() *http.Client {
	c := NoRedirectClient(0)
	if p.HTTP != nil {
		copied := *p.HTTP
		copied.CheckRedirect = c.CheckRedirect
		c = &copied
	}
	return c
}

// Interface guards.
var _ API = (*Legacy)(nil)
