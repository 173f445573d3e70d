package protocol

import (
	"context"
	"encoding/json"
	"errors"
	"regexp"
	"time"
)

// Face-to-face payment (当面付): a QR code that the buyer scans
// (alipay.trade.precreate), and the buyer's payment code that the
// merchant scans (alipay.trade.pay, barcode), with the poll-and-cancel
// flow that Alipay prescribes for it.

// A PrecreateError is Alipay's verified refusal of a precreate: its code,
// sub_code and sub_msg, for the shop.
type PrecreateError struct {
	Code, SubCode, SubMsg string
}

func (e *PrecreateError) Error() string {
	return "alipay.trade.precreate: " + e.Code + " " + e.SubCode + " " + e.SubMsg
}

// Precreate asks the gateway for the QR code of order o, whose payment
// Alipay notifies at notifyURL. It returns the code's text (a URL that
// the buyer's Alipay app opens). An answer that is not a verified success
// is a *CallError or a *PrecreateError.
func (c *Client) Precreate(ctx context.Context, o *Order, notifyURL string) (string, error) {
	resp, err := c.CallWith(ctx, o.Product.Method, o.BizContent(), map[string]string{"notify_url": notifyURL})
	if err != nil {
		return "", err
	}
	var v map[string]json.RawMessage
	if err := json.Unmarshal(resp.Raw, &v); err != nil {
		return "", &CallError{Kind: CallBadAnswer, Msg: "the precreate answer is not a JSON object"}
	}
	if code := stringField(v, "code"); code != "10000" {
		return "", &PrecreateError{code, stringField(v, "sub_code"), stringField(v, "sub_msg")}
	}
	qr := stringField(v, "qr_code")
	if qr == "" || stringField(v, "out_trade_no") != o.OutTradeNo {
		return "", &CallError{Kind: CallBadAnswer, Msg: "the precreate answer has no qr_code for this order"}
	}
	return qr, nil
}

// The results of a barcode payment, as the shop reads them.
const (
	BarcodePaid      = "paid"      // Alipay took the money
	BarcodeFailed    = "failed"    // it did not, and there is no trade to settle
	BarcodeCancelled = "cancelled" // it was not paid in time, and the trade is cancelled (refunded if it was paid meanwhile)
	BarcodeUnknown   = "unknown"   // the cancel could not be settled: a person must look at the trade
)

// A BarcodeResult is the outcome of a barcode payment and every call it
// took, each answer verified.
type BarcodeResult struct {
	Result  string        `json:"result"`
	TradeNo string        `json:"trade_no,omitempty"`
	Steps   []BarcodeStep `json:"steps"`
}

// A BarcodeStep is one call of a barcode payment: the verified response,
// or why there is none.
type BarcodeStep struct {
	Method   string          `json:"method"`
	Response json.RawMessage `json:"response,omitempty"`
	Error    string          `json:"error,omitempty"`
}

// A Clock is the time of a barcode payment: tests give one that never
// sleeps.
type Clock interface {
	Now() time.Time
	// Sleep waits d, or until ctx is done (its error).
	Sleep(ctx context.Context, d time.Duration) error
}

// RealClock is the wall clock.
type RealClock struct{}

// Now implements Clock.
func (RealClock) Now() time.Time { return time.Now() }

// Sleep implements Clock.
func (RealClock) Sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// The defaults of a barcode payment's timing: Alipay's face-to-face
// guidance is to query every 3 to 6 s for about 60 s, then cancel at
// once, and again while cancel's retry_flag is Y (its 2015 demo: 3
// cancels 2 s apart).
const (
	DefaultBarcodePoll = 5 * time.Second
	DefaultBarcodeWait = 60 * time.Second
	barcodeCancels     = 3
	barcodeCancelPause = 2 * time.Second
)

// A Barcode runs barcode payments.
type Barcode struct {
	Client     *Client
	Poll, Wait time.Duration // 0: the defaults
	Clock      Clock         // nil: RealClock
}

// authCodeRE is a buyer's payment code: 16 to 24 digits starting 25 to 30.
var authCodeRE = regexp.MustCompile(`^(2[5-9]|30)[0-9]{14,22}$`)

// BarcodeBiz checks the shop's body of a barcode payment (its members by
// exact name) and returns its biz_content, with scene bar_code and
// product_code FACE_TO_FACE_PAYMENT where the body has none. A field out
// of range is a *ClaimError.
func BarcodeBiz(fields map[string]json.RawMessage) ([]byte, error) {
	biz := make(map[string]json.RawMessage, len(fields)+2)
	for k, v := range fields {
		biz[k] = v
	}
	if !authCodeRE.MatchString(stringField(fields, "auth_code")) {
		return nil, &ClaimError{"auth_code", "must be the buyer's payment code: 16 to 24 digits starting 25 to 30"}
	}
	if _, err := outTradeNoClaim(fields); err != nil {
		return nil, err
	}
	if _, err := amountClaim(fields["total_amount"]); err != nil {
		return nil, err
	}
	if _, err := subjectClaim(fields); err != nil {
		return nil, err
	}
	for k, def := range map[string]string{"scene": "bar_code", "product_code": "FACE_TO_FACE_PAYMENT"} {
		if _, ok := fields[k]; !ok {
			biz[k], _ = MarshalJSON(def)
		}
	}
	return MarshalJSON(biz)
}

// Pay runs a barcode payment of biz (BarcodeBiz's) to its end, as Alipay
// prescribes: alipay.trade.pay; on 10003 (the buyer must confirm) or an
// unknown result (20000, no answer) alipay.trade.query every Poll for at
// most Wait, until the trade is paid or closed; if it never is,
// alipay.trade.cancel right after the last query, and again while its
// retry_flag is Y, at most three times. It runs to its end even if ctx
// is cancelled (a payment left half done is one that nobody settles);
// each call is bounded by the client's timeout. A call that the gateway
// refuses outright (an unsigned error_response: a wrong key, a method not
// enabled) ends it with that error.
func (b *Barcode) Pay(ctx context.Context, biz []byte, notifyURL string) (*BarcodeResult, error) {
	ctx = context.WithoutCancel(ctx)
	clock := b.Clock
	if clock == nil {
		clock = RealClock{}
	}
	poll, wait := b.Poll, b.Wait
	if poll <= 0 {
		poll = DefaultBarcodePoll
	}
	if wait <= 0 {
		wait = DefaultBarcodeWait
	}
	var fields map[string]json.RawMessage
	_ = json.Unmarshal(biz, &fields)
	ids, _ := MarshalJSON(map[string]string{"out_trade_no": stringField(fields, "out_trade_no")})
	res := &BarcodeResult{}
	start := clock.Now()

	// call makes one step and returns its verified answer (nil for none).
	call := func(method string, body []byte, common map[string]string) (map[string]json.RawMessage, error) {
		resp, err := b.Client.CallWith(ctx, method, body, common)
		step := BarcodeStep{Method: method}
		var refused *CallError
		switch {
		case errors.As(err, &refused) && refused.Kind == CallRefused:
			return nil, err
		case err != nil:
			step.Error = err.Error()
			res.Steps = append(res.Steps, step)
			return nil, nil
		}
		step.Response = resp.Raw
		res.Steps = append(res.Steps, step)
		var v map[string]json.RawMessage
		_ = json.Unmarshal(resp.Raw, &v)
		if no := stringField(v, "trade_no"); no != "" {
			res.TradeNo = no
		}
		return v, nil
	}
	done := func(result string) (*BarcodeResult, error) {
		res.Result = result
		return res, nil
	}

	v, err := call("alipay.trade.pay", biz, map[string]string{"notify_url": notifyURL})
	if err != nil {
		return nil, err
	}
	switch code := stringField(v, "code"); {
	case code == "10000":
		return done(BarcodePaid)
	case code == "10003", code == "20000", v == nil:
		// The buyer must confirm, or the result is unknown: poll.
	default:
		return done(BarcodeFailed)
	}

	// Poll every poll while the next query falls within wait; an unknown
	// result is queried at once, a 10003 after the first wait.
	for sleep := stringField(v, "code") == "10003"; ; sleep = true {
		if sleep {
			if clock.Now().Add(poll).Sub(start) > wait || clock.Sleep(ctx, poll) != nil {
				break
			}
		}
		q, err := call("alipay.trade.query", ids, nil)
		if err != nil {
			return nil, err
		}
		if stringField(q, "code") == "10000" {
			switch stringField(q, "trade_status") {
			case "TRADE_SUCCESS", "TRADE_FINISHED":
				return done(BarcodePaid)
			case "TRADE_CLOSED":
				return done(BarcodeFailed)
			}
		}
	}

	// Never paid in time: cancel, right away, and again while Alipay asks.
	for i := range barcodeCancels {
		if i > 0 {
			_ = clock.Sleep(ctx, barcodeCancelPause)
		}
		c, err := call("alipay.trade.cancel", ids, nil)
		if err != nil {
			return nil, err
		}
		switch {
		case stringField(c, "code") == "10000":
			return done(BarcodeCancelled)
		case stringField(c, "sub_code") == "ACQ.TRADE_NOT_EXIST":
			return done(BarcodeFailed) // there was never a trade: nothing taken
		case c != nil && stringField(c, "retry_flag") != "Y":
			return done(BarcodeUnknown)
		}
	}
	return done(BarcodeUnknown)
}
