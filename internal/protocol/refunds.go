package protocol

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"
	"unicode/utf8"
)

// The legacy refund batch (refund_fastpay_by_platform_nopwd and _pwd): its
// detail_data, the refunds joined as trade_no^amount^reason with # between
// them, and its batch_no, the shop's name of the batch. The sidecar writes
// them, and the local Alipay reads them, with the same rules.

// A Refund is one item of a refund batch: the Alipay trade to refund, the
// amount, and the reason that Alipay records.
type Refund struct {
	TradeNo string `json:"trade_no"`
	Amount  string `json:"amount"` // yuan, as ParseAmount reads them
	Reason  string `json:"reason"`
}

// MaxRefunds is the most items that one batch holds.
const MaxRefunds = 1000

// MaxRefundReason is the longest reason, in bytes in the partner's
// charset: Alipay takes reasons under 256 bytes.
const MaxRefundReason = 255

// refundSeparators are the characters that structure detail_data: ^
// between an item's fields, # between items, $ before a fee refund and |
// before a royalty refund. A reason holds none of them.
const refundSeparators = "^$|#"

// tradeNoRE is an Alipay trade_no as this package accepts one: 1 to 64
// letters, digits or _. Alipay's own are digits; the wider rule keeps
// every separator of detail_data and the form encoding out.
var tradeNoRE = regexp.MustCompile(`^[A-Za-z0-9_]{1,64}$`)

// ValidTradeNo reports whether s is an Alipay trade_no: 1 to 64 letters,
// digits or _.
func ValidTradeNo(s string) bool { return tradeNoRE.MatchString(s) }

// JoinRefunds writes refunds as detail_data, the text (UTF-8) that the
// request carries, and returns it with the number of items, batch_num.
// There must be 1 to MaxRefunds items, each with a valid trade_no, an
// amount that ParseAmount accepts (written with 2 decimals) and a reason
// that checkReason accepts in charset, and no trade_no twice.
func JoinRefunds(refunds []Refund, charset string) (string, int, error) {
	if err := checkRefundCount(len(refunds)); err != nil {
		return "", 0, err
	}
	seen := make(map[string]bool, len(refunds))
	var b strings.Builder
	for i, r := range refunds {
		amount, err := checkRefund(r, charset)
		if err != nil {
			return "", 0, fmt.Errorf("refund %d: %w", i+1, err)
		}
		if seen[r.TradeNo] {
			return "", 0, fmt.Errorf("refund %d: trade_no %s is already in the batch", i+1, r.TradeNo)
		}
		seen[r.TradeNo] = true
		if i > 0 {
			b.WriteByte('#')
		}
		b.WriteString(r.TradeNo)
		b.WriteByte('^')
		b.WriteString(amount.String())
		b.WriteByte('^')
		b.WriteString(r.Reason)
	}
	return b.String(), len(refunds), nil
}

// ParseDetailData reads detail_data (UTF-8 text) of a partner whose
// charset is charset, with JoinRefunds' rules; the amounts stay as
// written. Fee refunds ($) and royalty refunds (|) are not read: their
// separators are refused.
func ParseDetailData(detail, charset string) ([]Refund, error) {
	if detail == "" {
		return nil, errors.New("no refunds")
	}
	if err := checkRefundCount(strings.Count(detail, "#") + 1); err != nil {
		return nil, err
	}
	items := strings.Split(detail, "#")
	refunds := make([]Refund, 0, len(items))
	seen := make(map[string]bool, len(items))
	for i, item := range items {
		fields := strings.Split(item, "^")
		if len(fields) != 3 {
			if strings.ContainsAny(item, "$|") {
				return nil, fmt.Errorf("refund %d: fee refunds ($) and royalty refunds (|) are not supported", i+1)
			}
			return nil, fmt.Errorf("refund %d: must be trade_no^amount^reason", i+1)
		}
		r := Refund{TradeNo: fields[0], Amount: fields[1], Reason: fields[2]}
		if _, err := checkRefund(r, charset); err != nil {
			return nil, fmt.Errorf("refund %d: %w", i+1, err)
		}
		if seen[r.TradeNo] {
			return nil, fmt.Errorf("refund %d: trade_no %s is already in the batch", i+1, r.TradeNo)
		}
		seen[r.TradeNo] = true
		refunds = append(refunds, r)
	}
	return refunds, nil
}

// checkRefundCount checks the number of items of a batch.
func checkRefundCount(n int) error {
	switch {
	case n == 0:
		return errors.New("no refunds")
	case n > MaxRefunds:
		return fmt.Errorf("%d refunds: at most %d in one batch", n, MaxRefunds)
	}
	return nil
}

// checkRefund checks one item and returns its amount.
func checkRefund(r Refund, charset string) (Amount, error) {
	if !ValidTradeNo(r.TradeNo) {
		return 0, errors.New("trade_no must be 1 to 64 letters, digits or _")
	}
	amount, err := ParseAmount(r.Amount)
	if err != nil {
		return 0, fmt.Errorf("amount %w", err)
	}
	if err := checkReason(r.Reason, charset); err != nil {
		return 0, err
	}
	return amount, nil
}

// checkReason accepts a reason of at most MaxRefundReason bytes in
// charset, without the separators of detail_data or control characters.
// It may be empty.
func checkReason(reason, charset string) error {
	if !utf8.ValidString(reason) {
		return errors.New("reason is not valid utf-8")
	}
	if strings.ContainsAny(reason, refundSeparators) {
		return errors.New("reason must not contain ^ $ | or #, which structure detail_data")
	}
	if hasControl(reason) {
		return errors.New("reason must not contain control characters")
	}
	b, err := encodeCharset(reason, charset)
	if err != nil {
		return fmt.Errorf("reason has characters that %s cannot hold", charset)
	}
	if len(b) > MaxRefundReason {
		return fmt.Errorf("reason is %d bytes in %s: Alipay takes at most %d", len(b), charset, MaxRefundReason)
	}
	return nil
}

// batchNoRE is a batch_no: a date, yyyyMMdd, and 3 to 24 letters or
// digits.
var batchNoRE = regexp.MustCompile(`^([0-9]{8})([A-Za-z0-9]{3,24})$`)

// CheckBatchNo checks batchNo, a refund batch's name at Alipay, at time
// at: the date of that day in China Standard Time (yyyyMMdd), which
// Alipay requires, followed by 3 to 24 letters or digits, which must not
// be 000 (Alipay refuses it). Alipay refunds a batch_no once, so the
// shop's own batch_no is its guard against refunding twice: the sidecar
// never makes one up.
func CheckBatchNo(batchNo string, at time.Time) error {
	today := at.In(Beijing).Format("20060102")
	m := batchNoRE.FindStringSubmatch(batchNo)
	switch {
	case m == nil:
		return fmt.Errorf("must be today's date in China Standard Time (%s) followed by 3 to 24 letters or digits", today)
	case m[1] != today:
		return fmt.Errorf("must begin with today's date in China Standard Time, %s: Alipay refuses a batch dated another day", today)
	case m[2] == "000":
		return errors.New("the serial after the date must not be 000, which Alipay refuses")
	}
	return nil
}
