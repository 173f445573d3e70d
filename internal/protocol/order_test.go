package protocol

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func claimsOf(t testing.TB, js string) map[string]json.RawMessage {
	t.Helper()
	var m map[string]json.RawMessage
	require.NoError(t, json.Unmarshal([]byte(js), &m))
	return m
}

func TestParseOrder(t *testing.T) {
	o, err := parseOpenAPIOrder(claimsOf(t, `{"out_trade_no":"A_1","total_amount":88.8,"subject":"测试 & <b>","exp":1,
		"body":"a+b c","timeout_express":"30m","qr_pay_mode":4,"qrcode_width":"200",
		"biz":{"quit_url":"https://shop.example.com/cart","goods_detail":[{"goods_id":"1", "price":"1.00"}]}}`))
	require.Error(t, err, "subject with & is refused")
	o, err = parseOpenAPIOrder(claimsOf(t, `{"out_trade_no":"A_1","total_amount":88.8,"subject":"测试 <b>","exp":1,
		"body":"a+b & c","timeout_express":"30m","qr_pay_mode":4,"qrcode_width":"200","product":"wap",
		"biz":{"quit_url":"https://shop.example.com/cart","goods_detail":[{"goods_id":"1", "price":"1.00"}]}}`))
	require.NoError(t, err)
	assert.Equal(t, "alipay.trade.wap.pay", o.Product.Method)
	assert.Equal(t, `{"out_trade_no":"A_1","total_amount":"88.8","subject":"测试 <b>","product_code":"QUICK_WAP_WAY",`+
		`"body":"a+b & c","timeout_express":"30m","qr_pay_mode":"4","qrcode_width":"200",`+
		`"goods_detail":[{"goods_id":"1","price":"1.00"}],"quit_url":"https://shop.example.com/cart"}`, string(o.BizContent()))

	o, err = parseOpenAPIOrder(claimsOf(t, `{"out_trade_no":"X","total_amount":"0.01","subject":"s"}`))
	require.NoError(t, err)
	assert.Equal(t, "alipay.trade.page.pay", o.Product.Method)
	assert.Equal(t, `{"out_trade_no":"X","total_amount":"0.01","subject":"s","product_code":"FAST_INSTANT_TRADE_PAY"}`, string(o.BizContent()))
}

func TestParseOrderClaimErrors(t *testing.T) {
	base := map[string]string{"out_trade_no": `"A1"`, "total_amount": `"1.00"`, "subject": `"s"`}
	cases := []struct{ claim, value string }{
		{"out_trade_no", ""}, {"out_trade_no", `"a-b"`}, {"out_trade_no", `"` + strings.Repeat("a", 65) + `"`}, {"out_trade_no", `12`},
		{"total_amount", ""}, {"total_amount", `"0"`}, {"total_amount", `"0.00"`}, {"total_amount", `"1.001"`},
		{"total_amount", `"100000000.01"`}, {"total_amount", `"-1"`}, {"total_amount", `"01.5"`}, {"total_amount", `1e2`},
		{"total_amount", `" 1"`}, {"total_amount", `"1."`}, {"total_amount", `true`}, {"total_amount", `"１"`},
		{"subject", ""}, {"subject", `""`}, {"subject", `"` + strings.Repeat("中", 257) + `"`}, {"subject", `"a/b"`}, {"subject", `"a=b"`},
		{"product", `"APP"`}, {"product", `"card"`}, {"product", `1`},
		{"body", `"` + strings.Repeat("b", 129) + `"`},
		{"timeout_express", `"16d"`}, {"timeout_express", `"0m"`}, {"timeout_express", `"30s"`},
		{"time_expire", `"2024-05-20T10:00:00"`},
		{"passback_params", `"` + strings.Repeat("p", 513) + `"`},
		{"qr_pay_mode", `5`}, {"qrcode_width", `"wide"`},
		{"scope", `"api"`},
		{"biz", `[1]`}, {"biz", `{"total_amount":"0.01"}`}, {"biz", `{"subject":"x"}`}, {"biz", `{"body":"twice"}`},
		// Spellings of a field that Alipay's JSON parser may read as it.
		{"biz", `{"Total_Amount":"0.01"}`}, {"biz", `{"totalAmount":"0.01"}`}, {"biz", `{"total-amount":"0.01"}`},
		{"biz", `{"OUTTRADENO":"X"}`}, {"biz", `{"product-code":"X"}`}, {"biz", `{"Body":"x"}`}, {"biz", `{"passbackParams":"x"}`},
		// Spellings of a claim that the shop's JWT library may read as it.
		{"Total_Amount", `"0.01"`}, {"TOTAL_AMOUNT", `"0.01"`}, {"totalAmount", `"0.01"`}, {"outTradeNo", `"X"`},
		{"Subject", `"s"`}, {"Exp", `1`}, {"Biz", `{}`}, {"body-", `"x"`},
		// Control characters in what the buyer and Alipay's records see.
		{"subject", `"a\u0007b"`}, {"subject", `"a\nb"`}, {"subject", `"a\u0085b"`}, {"body", `"a\u0000"`},
		{"body", `"\u001b[31m"`}, {"passback_params", `"a\r\nb"`},
	}
	for _, c := range cases {
		t.Run(c.claim+"="+c.value, func(t *testing.T) {
			claims := map[string]json.RawMessage{}
			for k, v := range base {
				claims[k] = json.RawMessage(v)
			}
			if c.value == "" {
				delete(claims, c.claim)
			} else {
				claims[c.claim] = json.RawMessage(c.value)
			}
			if c.claim == "body" || strings.HasPrefix(c.value, `{"body"`) {
				claims["body"] = json.RawMessage(`"b"`)
			}
			if c.claim == "body" {
				claims["body"] = json.RawMessage(c.value)
			}
			_, err := parseOpenAPIOrder(claims)
			var ce *ClaimError
			require.ErrorAs(t, err, &ce)
			assert.Equal(t, c.claim, ce.Claim)
		})
	}
}

func TestAmountLimits(t *testing.T) {
	for _, ok := range []string{`"0.01"`, `"100000000"`, `"100000000.00"`, `88.88`, `"5"`, `"5.5"`, `0.1`} {
		_, err := amountClaim(json.RawMessage(ok))
		assert.NoError(t, err, ok)
	}
}
