package sandbox

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/caddy-alipay/caddy-alipay/internal/protocol"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The sidecar's side of the legacy services, as the protocol package
// speaks it (Legacy.Call, Legacy.RefundURL, Legacy.VerifyCallback),
// against the sandbox: what one sends the other takes, and what the
// sandbox answers and notifies the sidecar reads and verifies.
func TestLegacySidecarAgainstSandbox(t *testing.T) {
	for _, c := range []struct {
		name, signType, charset string
		keys                    legacyKeys
	}{
		{"md5 gbk", protocol.SignTypeMD5, "gbk", legacyKeys{}},
		{"rsa utf-8", protocol.SignTypeRSA, "utf-8", testLegacyRSAKeys},
	} {
		t.Run(c.name, func(t *testing.T) {
			w := newLegacyWorld(t, nil)
			m := w.merchant(t, c.signType, c.charset, c.keys, nil)
			m.Now = now
			w.shop.mu.Lock()
			w.shop.batchVerify = nil // the protocol package verifies batch_refund_notify too
			w.shop.mu.Unlock()
			tradeNo := w.paidLegacyTrade(t, m, "SC1", "12.00", "边车")
			notifyURL := w.site.URL + "/alipay/notify"
			call := func(service, body string) map[string]any {
				t.Helper()
				out, err := m.Call(context.Background(), service, []byte(body), nil, notifyURL)
				require.NoError(t, err)
				var v map[string]any
				require.NoError(t, json.Unmarshal(out, &v), "%s", out)
				return v
			}

			q := call("single_trade_query", `{"out_trade_no":"SC1"}`)
			assert.Equal(t, "T", q["is_success"])
			trade := q["response"].(map[string]any)["trade"].(map[string]any)
			assert.Equal(t, "TRADE_FINISHED", trade["trade_status"])
			assert.Equal(t, "边车", trade["subject"])
			assert.Equal(t, tradeNo, trade["trade_no"])
			assert.Equal(t, "single_trade_query", q["request"].(map[string]any)["service"])
			assert.Equal(t, c.signType, q["sign_type"])

			batch := `{"batch_no":"` + today() + `SC1","refunds":[{"trade_no":"` + tradeNo + `","amount":"2.00","reason":"边车退款"}]}`
			assert.Equal(t, map[string]any{"is_success": "T"}, call("refund_fastpay_by_platform_nopwd", batch))
			w.shop.waitNotify(t)
			n := w.shop.notified()
			require.Len(t, n, 2, w.shop.refused)
			assertStrings(t, map[string]string{"notify_type": "batch_refund_notify", "batch_no": today() + "SC1",
				"result_details": tradeNo + "^2.00^SUCCESS", "success_num": "1"}, n[1])
			assert.Equal(t, map[string]any{"is_success": "T"}, call("refund_fastpay_by_platform_nopwd", batch), "sent again")
			w.shop.noArrival(t, 40*time.Millisecond, "a batch sent again")
			assert.Equal(t, map[string]any{"is_success": "F", "error": "TRADE_STATUS_NOT_AVAILD"}, call("close_trade", `{"trade_no":"`+tradeNo+`"}`))
			assert.Equal(t, map[string]any{"is_success": "F", "error": "TRADE_NOT_EXIST"}, call("single_trade_query", `{"out_trade_no":"NOPE"}`))

			// The refund link: the seller's password page, then Confirm.
			claims := map[string]json.RawMessage{"batch_no": json.RawMessage(`"` + today() + `SC2"`),
				"detail_data": json.RawMessage(`"` + tradeNo + `^10.00^全部"`)}
			link, err := m.RefundURL(claims, notifyURL, now())
			require.NoError(t, err)
			rec := serve(t, w.sandbox, httptest.NewRequest("GET", link, nil))
			require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
			form := confirmFormRE.FindStringSubmatch(rec.Body.String())
			require.NotNil(t, form, rec.Body.String())
			r := httptest.NewRequest("POST", "http://sandbox.test"+form[1], strings.NewReader("password=123456"))
			r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			require.Equal(t, http.StatusOK, serve(t, w.sandbox, r).Code)
			w.shop.waitNotify(t)
			require.Len(t, w.shop.notified(), 3, w.shop.refused)
			q = call("single_trade_query", `{"trade_no":"`+tradeNo+`"}`)
			trade = q["response"].(map[string]any)["trade"].(map[string]any)
			assert.Equal(t, "TRADE_CLOSED", trade["trade_status"])
			assert.Equal(t, "12.00", trade["refund_fee"])
		})
	}
}
