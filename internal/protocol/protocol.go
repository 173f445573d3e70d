// Package protocol is what the sidecar and the local Alipay speak: Alipay's
// merchant protocols, their keys, signatures, callbacks, responses and
// certificate serial numbers, the order that a pay token carries, and the
// HS256 token that the sidecar and the shop share. It knows nothing of
// Caddy; its only uses of the network are the gateway clients (OpenAPI's,
// and the legacy protocol's API) and the legacy protocol's notify_verify.
//
// One concept to a file:
//
//   - protocol.go: the Protocol interface, its callback events and errors
//   - openapi.go: OpenAPI 2.0 (pay requests, callbacks)
//   - legacy.go: the legacy 即时到账 protocol (pay requests, callbacks,
//     notify_verify)
//   - api.go: the API interface of the shop's calls after a payment, and
//     OpenAPI's
//   - legacyapi.go: the legacy protocol's API (single_trade_query,
//     close_trade, refund_fastpay_by_platform_nopwd): the shop's
//     parameters, the signed POST, the answer
//   - legacyrefund.go: the legacy refunds' parameters, and the seller's
//     refund link (refund_fastpay_by_platform_pwd)
//   - refunds.go: a refund batch's detail_data and batch_no
//   - legacyxml.go: the legacy gateway's XML answers, read as JSON
//   - client.go: the OpenAPI gateway client (Call, TradeStatus)
//   - config.go: the protocols' settings, checked and loaded (NewOpenAPI,
//     NewLegacy)
//   - keys.go: RSA keys in the forms users hold them, and key settings
//   - md5.go: the legacy partner's MD5 key
//   - sign.go: RSA signers and verifiers, a request's string to sign,
//     Alipay's timestamps
//   - callback.go: a callback: its own strict form parser (every escape
//     valid, no key twice, the values kept as the bytes that were
//     signed), its strings to sign, its signed parameters
//   - charset.go: conversions between UTF-8 and Alipay's other charsets
//   - response.go: OpenAPI responses, verified over their raw text
//   - cert.go: certificate mode's serial numbers
//   - order.go: the pay token's order: its claims, amount and product
//   - token.go: the HS256 token, and tokens with a scope (the API bearer,
//     the refund link)
//   - claims.go: the X-Alipay-Token's claims
//   - json.go: JSON as Alipay writes it, and strict member names
//   - ids.go: Alipay ids, e-mail addresses, the no-redirect HTTP client
//   - urls.go: gateway and callback URLs, host names
//
// Package protocoltest helps the tests of the packages that use this one.
package protocol

import (
	"context"
	"encoding/json"
	"errors"
	"time"
)

// The callbacks: Alipay's asynchronous notification (a POST to
// notify_url) and the buyer's return (a GET of return_url).
const (
	EventNotify = "notify"
	EventReturn = "return"
)

// A Protocol is one of Alipay's merchant protocols, chosen when the config
// loads: how a pay request is signed, and how a callback is read,
// verified and confirmed.
type Protocol interface {
	// Name is the protocol's name in the token ("openapi", "legacy").
	Name() string
	// Audience is the merchant's id at Alipay, the token's aud: the app
	// id, or the partner id.
	Audience() string
	// ParseOrder checks the claims of a verified pay token.
	ParseOrder(claims map[string]json.RawMessage) (*Order, error)
	// PayURL is the signed gateway URL that sends the buyer to pay o.
	PayURL(o *Order, notifyURL, returnURL string, at time.Time) (string, error)
	// ParseCallback reads a notification's form body or a return's query,
	// in the charset the protocol reads it in: the callback's own
	// (OpenAPI), or the partner's (legacy).
	ParseCallback(raw string) (*Callback, error)
	// VerifyCallback checks a parsed callback: Alipay's signature, that it
	// is for this merchant and, where the protocol asks Alipay to confirm
	// it, Alipay's answer. event is EventNotify or EventReturn.
	VerifyCallback(ctx context.Context, c *Callback, event string) error
}

// Errors of callback parsing and verification. Each wraps into a more
// detailed one; callers log the detail and answer the client generically.
var (
	ErrMalformed    = errors.New("malformed callback")
	ErrMissingSign  = errors.New("callback has no sign")
	ErrSignType     = errors.New("callback sign_type is not the configured one")
	ErrBadSignature = errors.New("signature does not verify")
	ErrNotOurs      = errors.New("callback is for another merchant")
	// ErrNotConfirmed: Alipay said the callback is not one it sent.
	ErrNotConfirmed = errors.New("alipay does not confirm the callback")
	// ErrNoConfirmation: Alipay could not be asked; it may be genuine.
	ErrNoConfirmation = errors.New("alipay could not be asked to confirm the callback")
)
