package protocol

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// v3Answer is what a fake v3 gateway answers: a status, a body, and
// whether (and how) it is signed.
type v3Answer struct {
	status   int
	body     string
	unsigned bool
	badSign  bool
	sn       string
}

// v3World is a client in v3 against a gateway that checks each request
// as Alipay does (the authorization over the request as sent) and gives
// the answer that reply makes of the request's plaintext body.
func v3World(t *testing.T, key *ContentKey, reply func(path, body string) v3Answer) *Client {
	t.Helper()
	alipay := testSigner(t, "alipay_private_key_pkcs1.pem", SignTypeRSA2)
	app := testVerifier(t, "app_public_key.pem", SignTypeRSA2)
	gw := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		raw, _ := io.ReadAll(r.Body)
		auth, pairs, sign, err := ParseV3Authorization(r.Header.Get("Authorization"))
		require.NoError(t, err)
		assert.Equal(t, "2021000000000001", pairs["app_id"])
		assert.Equal(t, r.Header.Get("Alipay-Request-Id"), pairs["nonce"])
		assert.NoError(t, app.Verify(V3RequestContent(auth, r.Method, r.URL.RequestURI(), string(raw)), sign), "signed over the request as sent")
		body := string(raw)
		if key != nil {
			assert.Equal(t, "AES", r.Header.Get("Alipay-Encrypt-Type"))
			assert.Equal(t, "text/plain", r.Header.Get("Content-Type"))
			plain, err := key.Decrypt(body)
			require.NoError(t, err)
			body = string(plain)
		} else {
			assert.Equal(t, "application/json", r.Header.Get("Content-Type"))
		}
		a := reply(r.URL.Path, body)
		out := a.body
		if key != nil && a.status == http.StatusOK && !a.unsigned {
			out = key.Encrypt([]byte(out))
		}
		if !a.unsigned {
			ts, nonce := "1716182055120", "n0nce"
			s, _ := alipay.Sign(V3ResponseContent(ts, nonce, []byte(out)))
			if a.badSign {
				s, _ = alipay.Sign([]byte("something else"))
			}
			w.Header().Set("Alipay-Timestamp", ts)
			w.Header().Set("Alipay-Nonce", nonce)
			w.Header().Set("Alipay-Signature", s)
			if a.sn != "" {
				w.Header().Set("Alipay-Sn", a.sn)
			}
		}
		w.WriteHeader(a.status)
		_, _ = io.WriteString(w, out)
	}))
	t.Cleanup(gw.Close)
	c := testClient(t, gw.URL+"/gateway.do")
	c.API.V3, c.API.V3Origin, c.API.ContentKey = true, gw.URL, key
	return c
}

func TestV3Call(t *testing.T) {
	const paid = `{"out_trade_no":"T1","trade_no":"2024052022001400000000000001","trade_status":"TRADE_SUCCESS","total_amount":"88.88"}`
	for _, key := range []*ContentKey{nil, must(NewContentKey("aYA0GP8JEW+D7/UFaskCWA=="))} {
		c := v3World(t, key, func(path, body string) v3Answer {
			switch path {
			case "/v3/alipay/trade/query":
				assert.JSONEq(t, `{"out_trade_no":"T1"}`, body)
				return v3Answer{status: 200, body: paid}
			case "/v3/alipay/trade/precreate":
				assert.JSONEq(t, `{"out_trade_no":"T2","total_amount":"1.00","subject":"s","notify_url":"https://shop.example.com/alipay/notify"}`, body,
					"notify_url goes into the body")
				return v3Answer{status: 200, body: `{"out_trade_no":"T2","qr_code":"https://qr.alipay.com/x"}`}
			case "/v3/alipay/trade/close":
				return v3Answer{status: 404, body: `{"code":"ACQ.TRADE_NOT_EXIST","message":"交易不存在","links":[]}`}
			case "/v3/alipay/trade/pay":
				return v3Answer{status: 500, body: `{"code":"ACQ.SYSTEM_ERROR","message":"系统异常"}`}
			}
			return v3Answer{status: 401, body: `{"code":"invalid-signature","message":"验签出错"}`, unsigned: true}
		})
		var timed []string
		c.Timer = func(method string, _ time.Duration) { timed = append(timed, method) }
		ctx := context.Background()
		resp, err := c.Call(ctx, "alipay.trade.query", []byte(`{"out_trade_no":"T1"}`))
		require.NoError(t, err)
		assert.Equal(t, []string{"alipay.trade.query"}, timed, "the Timer is told of each v3 call, by method")
		var got map[string]string
		require.NoError(t, json.Unmarshal(resp.Raw, &got))
		assert.Equal(t, map[string]string{"code": "10000", "msg": "Success", "out_trade_no": "T1", "trade_no": "2024052022001400000000000001",
			"trade_status": "TRADE_SUCCESS", "total_amount": "88.88"}, got, "v2's shape")

		qr, err := c.Precreate(ctx, &Order{OutTradeNo: "T2", TotalAmount: "1.00", Subject: "s", Product: Products[3]}, "https://shop.example.com/alipay/notify")
		require.NoError(t, err)
		assert.Equal(t, "https://qr.alipay.com/x", qr)

		resp, err = c.Call(ctx, "alipay.trade.close", []byte(`{"out_trade_no":"T3"}`))
		require.NoError(t, err, "a signed business failure is an answer")
		assert.JSONEq(t, `{"code":"40004","msg":"Business Failed","sub_code":"ACQ.TRADE_NOT_EXIST","sub_msg":"交易不存在"}`, string(resp.Raw))

		resp, err = c.Call(ctx, "alipay.trade.pay", []byte(`{"out_trade_no":"T4"}`))
		require.NoError(t, err)
		assert.JSONEq(t, `{"code":"20000","msg":"Service Currently Unavailable","sub_code":"ACQ.SYSTEM_ERROR","sub_msg":"系统异常"}`, string(resp.Raw),
			"a signed 5xx is an unknown result, as v2's 20000")

		_, err = c.Call(ctx, "alipay.trade.refund", []byte(`{"out_trade_no":"T5"}`))
		ce := requireCallError(t, err, CallRefused)
		assert.Equal(t, map[string]string{"sub_code": "invalid-signature", "sub_msg": "验签出错"}, ce.Fields)
	}
}

func TestV3UntrustedAnswers(t *testing.T) {
	const body = `{"out_trade_no":"T1","trade_status":"TRADE_SUCCESS"}`
	for name, c := range map[string]struct {
		a    v3Answer
		key  *ContentKey
		cert bool
	}{
		"bad signature":              {a: v3Answer{status: 200, body: body, badSign: true}},
		"unsigned 200":               {a: v3Answer{status: 200, body: body, unsigned: true}},
		"another certificate":        {a: v3Answer{status: 200, body: body, sn: "0123"}, cert: true},
		"no certificate named":       {a: v3Answer{status: 200, body: body}, cert: true},
		"plaintext error, encrypted": {a: v3Answer{status: 400, body: `{"code":"isv.decryption-error-unknown","message":"解密出错"}`, unsigned: true}, key: must(NewContentKey("aYA0GP8JEW+D7/UFaskCWA=="))},
		"unsigned 4xx business":      {a: v3Answer{status: 404, body: `{"code":"ACQ.TRADE_NOT_EXIST","message":"交易不存在"}`, unsigned: true}},
		"unsigned 5xx, not JSON":     {a: v3Answer{status: 502, body: `<html>bad gateway</html>`, unsigned: true}},
	} {
		cl := v3World(t, c.key, func(string, string) v3Answer { return c.a })
		if c.cert {
			cl.API.AlipayCertSN = "5e57030bba758a176a2dcead790355b0"
		}
		_, err := cl.Call(context.Background(), "alipay.trade.query", []byte(`{"out_trade_no":"T1"}`))
		var ce *CallError
		require.ErrorAs(t, err, &ce, name)
		if name == "plaintext error, encrypted" || name == "unsigned 4xx business" {
			assert.Equal(t, CallRefused, ce.Kind, name)
			assert.NotEmpty(t, ce.Fields["sub_code"], name)
		} else {
			assert.Equal(t, CallBadAnswer, ce.Kind, name)
		}
	}
}
