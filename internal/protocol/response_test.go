package protocol

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/caddy-alipay/caddy-alipay/internal/testvec"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Responses verify over their raw text as the SDKs verify them: a query, a
// precreate with \/ escapes, a 40004 failure with Chinese text, and a
// certificate-mode refund that names its certificate.
func TestResponseVectors(t *testing.T) {
	v := testVerifier(t, "alipay_public_key.pem", SignTypeRSA2)
	for _, c := range testvec.Load(t).Responses.Cases {
		t.Run(c.Method, func(t *testing.T) {
			r, err := ParseResponse([]byte(c.RawBody), c.Method)
			require.NoError(t, err)
			assert.Equal(t, c.SignedSubstring, string(r.Raw))
			assert.Equal(t, c.Sign, r.Sign)
			assert.False(t, r.IsError)
			require.NoError(t, r.Verify(v))

			tampered := strings.Replace(c.RawBody, `"msg":"`, `"msg":"x`, 1)
			r, err = ParseResponse([]byte(tampered), c.Method)
			require.NoError(t, err)
			assert.ErrorIs(t, r.Verify(v), ErrBadSignature)
			assert.ErrorIs(t, r.Verify(testVerifier(t, "app_public_key.pem", SignTypeRSA2)), ErrBadSignature)
		})
	}
	cases := testvec.Load(t).Responses.Cases
	r, err := ParseResponse([]byte(cases[3].RawBody), cases[3].Method)
	require.NoError(t, err)
	assert.Equal(t, "5e57030bba758a176a2dcead790355b0", r.CertSN)
}

func TestResponseRefused(t *testing.T) {
	q := testvec.Load(t).Responses.Cases[0]
	for name, body := range map[string]string{
		"not JSON":       "<html>",
		"array":          "[1]",
		"other method":   `{"alipay_trade_refund_response":{"code":"10000"},"sign":"x"}`,
		"duplicated key": strings.Replace(q.RawBody, `{"alipay_trade_query_response":`, `{"alipay_trade_query_response":{"code":"10000"},"alipay_trade_query_response":`, 1),
		"trailing data":  q.RawBody + "{}",
	} {
		_, err := ParseResponse([]byte(body), q.Method)
		assert.ErrorIs(t, err, ErrResponse, name)
	}
	r, err := ParseResponse([]byte(`{"error_response":{"code":"40002","msg":"Invalid Arguments","sub_code":"isv.invalid-signature"}}`), q.Method)
	require.NoError(t, err)
	assert.True(t, r.IsError)
	assert.ErrorIs(t, r.Verify(testVerifier(t, "alipay_public_key.pem", SignTypeRSA2)), ErrResponse, "unsigned")
}

// Nested objects and arrays, Chinese, and values that would fool a
// brace-counting or "up to the last sign" extractor: the value is taken
// byte for byte all the same.
func TestResponseNested(t *testing.T) {
	value := `{"code":"10000","msg":"Success","fund_bill_list":[{"amount":"88.88","fund_channel":"ALIPAYACCOUNT"},{"amount":"0.00","fund_channel":"POINT"}],` +
		`"ext_infos":{"商品":"西湖龙井 \"}\" ,\"sign\":\"x\"","nested":{"a":[1,{"b":null}]}},"memo":"退款 \/ 说明"}`
	body := signedBody(t, "alipay.trade.query", value)
	r, err := ParseResponse([]byte(body), "alipay.trade.query")
	require.NoError(t, err)
	assert.Equal(t, value, string(r.Raw))
	require.NoError(t, r.Verify(testVerifier(t, "alipay_public_key.pem", SignTypeRSA2)))

	// The same data re-serialised does not verify: only the text counts.
	var v any
	require.NoError(t, json.Unmarshal([]byte(value), &v))
	again, err := json.Marshal(v)
	require.NoError(t, err)
	r2, err := ParseResponse([]byte(strings.Replace(body, value, string(again), 1)), "alipay.trade.query")
	require.NoError(t, err)
	assert.ErrorIs(t, r2.Verify(testVerifier(t, "alipay_public_key.pem", SignTypeRSA2)), ErrBadSignature)
}
