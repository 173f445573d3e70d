package protocol

import (
	"context"
	"encoding/json"
	"slices"
)

// An API serves the shop's calls of {prefix}/api/<method>: it checks the
// shop's body, signs the call as the protocol signs one, sends it to the
// gateway and returns the answer that the shop gets, as JSON, only once
// it is Alipay's. OpenAPI's is OpenAPICalls; the legacy protocol's is
// Legacy itself.
type API interface {
	// Methods are the methods (OpenAPI) or services (legacy) it serves.
	Methods() []string
	// Call makes one call of method, one of Methods, with the shop's
	// body: compact JSON, and its members by exact name. notifyURL is
	// the site's notify URL, for the calls that name one. A body that it
	// refuses is a *ClaimError naming the field; a call with no answer
	// to trust is a *CallError.
	Call(ctx context.Context, method string, body []byte, fields map[string]json.RawMessage, notifyURL string) ([]byte, error)
}

// DefaultOpenAPIMethods are the OpenAPI methods that the API serves
// unless the operator lists others.
var DefaultOpenAPIMethods = []string{"alipay.trade.query", "alipay.trade.refund",
	"alipay.trade.fastpay.refund.query", "alipay.trade.close", "alipay.trade.cancel", "alipay.trade.pay"}

// OpenAPICalls is OpenAPI's API: the Client's calls of the listed
// methods, the shop's body as their biz_content; alipay.trade.pay, a
// barcode payment, runs Barcode's whole flow.
type OpenAPICalls struct {
	Client  *Client
	List    []string
	Barcode *Barcode
}

// Methods implements API.
func (c *OpenAPICalls) Methods() []string { return slices.Clone(c.List) }

// Call implements API. A barcode payment (alipay.trade.pay) is settled
// before it answers: see Barcode.Pay. A refund must carry an
// out_request_no: Alipay refunds once per out_request_no, so without one
// a retried call could refund twice.
func (c *OpenAPICalls) Call(ctx context.Context, method string, body []byte, fields map[string]json.RawMessage, notifyURL string) ([]byte, error) {
	if method == "alipay.trade.pay" {
		biz, err := BarcodeBiz(fields)
		if err != nil {
			return nil, err
		}
		res, err := c.Barcode.Pay(ctx, biz, notifyURL)
		if err != nil {
			return nil, err
		}
		return MarshalJSON(res)
	}
	if method == "alipay.trade.refund" && stringField(fields, "out_request_no") == "" {
		return nil, &ClaimError{"out_request_no", "required, so that a retried alipay.trade.refund cannot refund twice"}
	}
	resp, err := c.Client.Call(ctx, method, body)
	if err != nil {
		return nil, err
	}
	return resp.Raw, nil
}

// stringField is the string member name of fields, by its exact name, or
// "" when it is absent or not a string.
func stringField(fields map[string]json.RawMessage, name string) string {
	var s string
	_ = json.Unmarshal(fields[name], &s)
	return s
}

// Interface guards.
var _ API = (*OpenAPICalls)(nil)
