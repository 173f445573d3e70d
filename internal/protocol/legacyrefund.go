package protocol

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"time"
)

// The legacy refunds: refund_fastpay_by_platform_nopwd, which the API
// sends server to server, and refund_fastpay_by_platform_pwd, a link that
// sends the seller's browser to Alipay to confirm the batch with a
// password. Both carry the same parameters; the result comes later, as a
// batch_refund_notify notification to notify_url.

// RefundService is the service of a refund link.
const RefundService = "refund_fastpay_by_platform_pwd"

// refundFields are the shop's own parameters of a refund.
var refundFields = []string{"batch_no", "detail_data", "refunds", "notify_url"}

// tokenOnly are a refund token's claims that are not the refund's:
// RFC 7519's registered claims and scope, which the token layer checks.
var tokenOnly = append(slices.Clone(registeredClaims), "scope")

// RefundURL returns the signed gateway URL of refund_fastpay_by_platform_pwd
// (every parameter in the query, as PayURL's) for the claims of a refund
// token: batch_no, refunds or detail_data, and notify_url, which defaults
// to notifyURL. refund_date and batch_no's date are taken at at.
func (p *Legacy) RefundURL(claims map[string]json.RawMessage, notifyURL string, at time.Time) (string, error) {
	if err := onlyParams(claims, RefundService, refundFields, tokenOnly); err != nil {
		return "", err
	}
	fields := maps.Clone(claims)
	for _, name := range tokenOnly {
		delete(fields, name)
	}
	params, err := p.refundParams(RefundService, fields, notifyURL, at)
	if err != nil {
		return "", err
	}
	q, err := EncodeLegacy(params, p.Charset, p.Signer)
	if err != nil {
		return "", err
	}
	return p.Gateway + "?" + q, nil
}

// refundParams are the parameters of a refund by service at time at,
// from the shop's fields: batch_no (CheckBatchNo), exactly one of
// detail_data (ParseDetailData) and refunds (a JSON list of Refund,
// JoinRefunds), and notify_url (CheckCallbackURL), which defaults to
// notifyURL. The sidecar adds refund_date, batch_num and the seller.
func (p *Legacy) refundParams(service string, fields map[string]json.RawMessage, notifyURL string, at time.Time) (map[string]string, error) {
	if err := onlyParams(fields, service, refundFields, nil); err != nil {
		return nil, err
	}
	batchNo, err := stringParam(fields, "batch_no")
	if err != nil {
		return nil, err
	}
	if batchNo == "" {
		return nil, &ClaimError{"batch_no", "required: the shop's name of the batch, which Alipay refunds once"}
	}
	if err := CheckBatchNo(batchNo, at); err != nil {
		return nil, &ClaimError{"batch_no", err.Error()}
	}
	detail, count, err := p.refundDetail(fields)
	if err != nil {
		return nil, err
	}
	notify, err := stringParam(fields, "notify_url")
	if err != nil {
		return nil, err
	}
	if notify == "" {
		notify = notifyURL
	}
	if notify == "" {
		return nil, &ClaimError{"notify_url", "required: none was given, and the site's own notify URL is not known for this request"}
	}
	if err := CheckCallbackURL(notify); err != nil {
		return nil, &ClaimError{"notify_url", err.Error()}
	}
	params := p.serviceBase(service)
	params["batch_no"] = batchNo
	params["batch_num"] = strconv.Itoa(count)
	params["detail_data"] = detail
	params["refund_date"] = Timestamp(at)
	params["notify_url"] = notify
	if p.SellerEmail != "" {
		params["seller_email"] = p.SellerEmail
	} else {
		params["seller_user_id"] = p.SellerID
	}
	return params, nil
}

// refundDetail is the detail_data of fields, as the shop wrote it or
// joined from its refunds, with the number of items.
func (p *Legacy) refundDetail(fields map[string]json.RawMessage) (string, int, error) {
	raw, hasList := fields["refunds"]
	_, hasDetail := fields["detail_data"]
	switch {
	case hasList && hasDetail:
		return "", 0, &ClaimError{"refunds", "give refunds or detail_data, not both"}
	case hasDetail:
		detail, err := stringParam(fields, "detail_data")
		if err != nil {
			return "", 0, err
		}
		refunds, err := ParseDetailData(detail, p.Charset)
		if err != nil {
			return "", 0, &ClaimError{"detail_data", err.Error()}
		}
		return detail, len(refunds), nil
	case !hasList:
		return "", 0, &ClaimError{"refunds", "required (or detail_data): the trades to refund"}
	}
	refunds, err := parseRefundList(raw)
	if err != nil {
		return "", 0, &ClaimError{"refunds", err.Error()}
	}
	detail, count, err := JoinRefunds(refunds, p.Charset)
	if err != nil {
		return "", 0, &ClaimError{"refunds", err.Error()}
	}
	return detail, count, nil
}

// refundMembers are the members of an item of refunds, by exact name.
var refundMembers = []string{"trade_no", "amount", "reason"}

// parseRefundList reads refunds, a JSON list of {"trade_no", "amount",
// "reason"}: strings, but for amount, which may be a number as
// total_amount may (kept as written, never through float64). A reason
// may be left out.
func parseRefundList(raw json.RawMessage) ([]Refund, error) {
	var items []map[string]json.RawMessage
	if err := json.Unmarshal(raw, &items); err != nil || items == nil {
		return nil, errors.New(`must be a list of {"trade_no", "amount", "reason"} objects`)
	}
	if err := checkRefundCount(len(items)); err != nil {
		return nil, err
	}
	refunds := make([]Refund, len(items))
	for i, item := range items {
		if item == nil {
			return nil, fmt.Errorf("refund %d: must be an object", i+1)
		}
		for _, name := range slices.Sorted(maps.Keys(item)) {
			if !slices.Contains(refundMembers, name) {
				return nil, fmt.Errorf("refund %d: %s is not a member of a refund (trade_no, amount, reason)", i+1, name)
			}
		}
		for _, m := range []struct {
			name   string
			into   *string
			number bool
		}{{"trade_no", &refunds[i].TradeNo, false}, {"amount", &refunds[i].Amount, true}, {"reason", &refunds[i].Reason, false}} {
			v, ok := item[m.name]
			switch {
			case !ok && m.name == "reason":
			case !ok:
				return nil, fmt.Errorf("refund %d: %s is required", i+1, m.name)
			case len(v) > 0 && v[0] == '"':
				if json.Unmarshal(v, m.into) != nil {
					return nil, fmt.Errorf("refund %d: %s must be a string", i+1, m.name)
				}
			case m.number && isJSONNumber(v):
				*m.into = string(v)
			case m.number:
				return nil, fmt.Errorf("refund %d: %s must be a string or a number", i+1, m.name)
			default:
				return nil, fmt.Errorf("refund %d: %s must be a string", i+1, m.name)
			}
		}
	}
	return refunds, nil
}

// isJSONNumber reports whether v, one JSON value, is a number.
func isJSONNumber(v json.RawMessage) bool {
	var n json.Number
	return len(v) > 0 && (v[0] == '-' || v[0] >= '0' && v[0] <= '9') && json.Unmarshal(v, &n) == nil
}
