package protocol

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddy-alipay/caddy-alipay/internal/testvec"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// legacyKey is the signer or verifier that a vector names: md5, or a key
// file under testdata/.
func legacyKey(t testing.TB, v *testvec.LegacyVectors, name string, private bool) interface {
	Signer
	Verifier
} {
	t.Helper()
	if name == "md5" {
		k, err := NewMD5Key(v.MD5Key)
		require.NoError(t, err)
		return k
	}
	data := testvec.Read(t, strings.Split(name, "/")...)
	if private {
		key, err := ParsePrivateKey(data)
		require.NoError(t, err)
		s, err := NewRSASigner(key, SignTypeRSA)
		require.NoError(t, err)
		return signerOnly{s}
	}
	key, err := ParsePublicKey(data)
	require.NoError(t, err)
	ver, err := NewRSAVerifier(key, SignTypeRSA)
	require.NoError(t, err)
	return verifierOnly{ver}
}

type signerOnly struct{ *RSASigner }

func (signerOnly) Verify([]byte, string) error { return errors.New("a signer") }

type verifierOnly struct{ *RSAVerifier }

func (verifierOnly) Sign([]byte) (string, error) { return "", errors.New("a verifier") }

// legacyFor is the protocol of the vectors' partner for case c.
func legacyFor(t testing.TB, v *testvec.LegacyVectors, c testvec.Legacy) *Legacy {
	t.Helper()
	p := &Legacy{Partner: v.Partner, SellerID: v.Partner, Charset: c.Charset, Gateway: v.Gateway,
		Signer: legacyKey(t, v, c.Key, true), Verifier: legacyKey(t, v, c.VerifyKey, false)}
	if c.Key == "md5" {
		p.Verifier = p.Signer.(Verifier)
	}
	return p
}

// Requests: the string to sign in the charset, the sign (MD5 and RSA are
// deterministic) and the query, as testdata/legacy/make_vectors.py made
// them (seed 002's signing code ported to Python 3, and openssl).
func TestLegacyRequestVectors(t *testing.T) {
	v := testvec.LoadLegacy(t)
	for _, c := range v.Cases {
		if c.Kind != "request" {
			continue
		}
		t.Run(c.Name, func(t *testing.T) {
			p := legacyFor(t, v, c)
			q, err := EncodeLegacy(c.Params, c.Charset, p.Signer)
			require.NoError(t, err)
			got, err := url.ParseQuery(q)
			require.NoError(t, err)
			u, err := url.Parse(c.GatewayURL)
			require.NoError(t, err)
			assert.Equal(t, u.Query(), got, "the same parameters, bytes in the charset")
			assert.Equal(t, c.Sign, got.Get("sign"))
			assert.Equal(t, c.SignType, got.Get("sign_type"))
			flat := map[string]string{}
			for k := range got {
				flat[k] = got.Get(k)
			}
			assert.Equal(t, c.HexToSign, hex.EncodeToString(LegacyContent(flat)))
		})
	}
}

// The pay URL that the protocol makes from an order is the vectors'.
func TestLegacyPayURL(t *testing.T) {
	v := testvec.LoadLegacy(t)
	for _, c := range v.Cases {
		if c.Kind != "request" || c.Params["anti_phishing_key"] != "" {
			continue // claims cannot set the anti-phishing fields
		}
		t.Run(c.Name, func(t *testing.T) {
			p := legacyFor(t, v, c)
			if c.Params["seller_email"] != "" {
				p.SellerID, p.SellerEmail = "", c.Params["seller_email"]
			}
			claims := map[string]json.RawMessage{"exp": json.RawMessage("9999999999")}
			for k, val := range c.Params {
				switch k {
				case "service", "partner", "_input_charset", "payment_type", "seller_id", "seller_email", "notify_url", "return_url":
					continue
				case "total_fee":
					k = "total_amount"
				}
				b, _ := json.Marshal(val)
				claims[k] = b
			}
			o, err := p.ParseOrder(claims)
			require.NoError(t, err)
			got, err := p.PayURL(o, c.Params["notify_url"], c.Params["return_url"], time.Now())
			require.NoError(t, err)
			gu, err := url.Parse(got)
			require.NoError(t, err)
			wu, err := url.Parse(c.GatewayURL)
			require.NoError(t, err)
			assert.Equal(t, wu.Host+wu.Path, gu.Host+gu.Path)
			assert.Equal(t, wu.Query(), gu.Query())
		})
	}
}

// Notifications and returns verify as sent, and their parameters come out
// in UTF-8, the empty ones (never signed) left out.
func TestLegacyCallbackVectors(t *testing.T) {
	v := testvec.LoadLegacy(t)
	for _, c := range v.Cases {
		if c.Kind != "notify" && c.Kind != "return" {
			continue
		}
		raw, event := c.PostBody, EventNotify
		if c.Kind == "return" {
			raw, event = c.Query, EventReturn
		}
		t.Run(c.Name, func(t *testing.T) {
			p := legacyFor(t, v, c)
			cb, err := p.ParseCallback(raw)
			require.NoError(t, err)
			require.NoError(t, p.VerifyCallback(context.Background(), cb, event))
			want := map[string]string{}
			for k, val := range c.Params {
				if val != "" {
					want[k] = val
				}
			}
			assert.Equal(t, want, cb.Params())
			assert.Equal(t, c.Params["total_fee"], cb.Amount())

			// Another seller, another sign_type, none, a changed amount
			// (a refund's result has no amount: its success_num). A
			// refund's result names no seller, so another seller does not
			// matter there.
			refund := c.Params["notify_type"] == NotifyTypeBatchRefund
			for name, edit := range map[string]func(*Legacy) string{
				"other seller": func(p *Legacy) string { p.SellerID = "2088000000000009"; return raw },
				"seller_email": func(p *Legacy) string { p.SellerEmail = "other@example.com"; return raw },
				"sign_type":    func(p *Legacy) string { return strings.Replace(raw, "sign_type="+c.SignType, "sign_type=RSA2", 1) },
				"no sign_type": func(p *Legacy) string { return strings.Replace(raw, "sign_type="+c.SignType, "x=1", 1) },
				"amount changed": func(p *Legacy) string {
					from, to := "total_fee="+c.Params["total_fee"], "total_fee=999.99"
					if refund {
						from, to = "success_num="+c.Params["success_num"], "success_num=9"
					}
					changed := strings.Replace(raw, from, to, 1)
					require.NotEqual(t, raw, changed)
					return changed
				},
			} {
				p := legacyFor(t, v, c)
				cb, err := p.ParseCallback(edit(p))
				if err == nil {
					err = p.VerifyCallback(context.Background(), cb, event)
				}
				if refund && (name == "other seller" || name == "seller_email") {
					assert.NoError(t, err, name)
				} else {
					assert.Error(t, err, name)
				}
			}
		})
	}
}

// A sign read from a query whose + became a space still verifies (RSA).
func TestLegacyReturnSignWithSpaces(t *testing.T) {
	v := testvec.LoadLegacy(t)
	for _, c := range v.Cases {
		if c.Kind != "return" || c.SignType != SignTypeRSA {
			continue
		}
		u, err := url.ParseQuery(c.Query)
		require.NoError(t, err)
		require.Contains(t, u.Get("sign"), "+", "the vector's sign has a + to lose")
		raw := strings.Replace(c.Query, url.QueryEscape(u.Get("sign")), strings.ReplaceAll(url.QueryEscape(u.Get("sign")), "%2B", "+"), 1)
		p := legacyFor(t, v, c)
		cb, err := p.ParseCallback(raw)
		require.NoError(t, err)
		assert.NoError(t, p.VerifyCallback(context.Background(), cb, EventReturn))
	}
}

// notify_verify: only the answer true confirms; another answer refuses;
// no answer is no confirmation (Alipay will send it again).
func TestLegacyNotifyVerify(t *testing.T) {
	v := testvec.LoadLegacy(t)
	var c testvec.Legacy
	for _, vc := range v.Cases {
		if vc.Name == "md5_notify_utf8_trade_success" {
			c = vc
		}
	}
	require.NotEmpty(t, c.Name)
	var (
		mu     sync.Mutex
		answer = "true"
		asked  url.Values
	)
	gw := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		asked = r.URL.Query()
		answer := answer
		mu.Unlock()
		switch answer {
		case "hang":
			<-r.Context().Done()
		case "500":
			w.WriteHeader(500)
		default:
			_, _ = w.Write([]byte(answer))
		}
	}))
	defer gw.Close()
	for _, tc := range []struct {
		answer string
		want   error
	}{
		{"true", nil}, {"true\r\n", nil}, {"false", ErrNotConfirmed}, {"invalid", ErrNotConfirmed}, {"TRUE", ErrNotConfirmed},
		{"true false", ErrNotConfirmed}, {"<html>true</html>", ErrNotConfirmed}, {"", ErrNotConfirmed},
		{"500", ErrNoConfirmation}, {"hang", ErrNoConfirmation},
	} {
		mu.Lock()
		answer = tc.answer
		mu.Unlock()
		p := legacyFor(t, v, c)
		p.Gateway, p.NotifyVerify, p.HTTP, p.ConfirmTimeout = gw.URL+"/gateway.do", true, gw.Client(), 200*time.Millisecond
		var timed []string
		p.Timer = func(method string, _ time.Duration) { timed = append(timed, method) }
		cb, err := p.ParseCallback(c.PostBody)
		require.NoError(t, err)
		err = p.VerifyCallback(context.Background(), cb, EventNotify)
		assert.Equal(t, []string{"notify_verify"}, timed, "the Timer is told of each question, answered or not")
		if tc.want == nil {
			assert.NoError(t, err, tc.answer)
		} else {
			assert.ErrorIs(t, err, tc.want, tc.answer)
		}
		mu.Lock()
		assert.Equal(t, url.Values{"service": {"notify_verify"}, "partner": {v.Partner}, "notify_id": {c.Params["notify_id"]}}, asked)
		mu.Unlock()
	}
	// A gateway that nobody answers on.
	p := legacyFor(t, v, c)
	p.Gateway, p.NotifyVerify, p.HTTP = "http://127.0.0.1:1/gateway.do", true, http.DefaultClient
	cb, err := p.ParseCallback(c.PostBody)
	require.NoError(t, err)
	assert.ErrorIs(t, p.VerifyCallback(context.Background(), cb, EventNotify), ErrNoConfirmation)
}

// Pay claims: the legacy ones pass, the OpenAPI ones and wap are refused,
// and text that GBK cannot hold is refused for a GBK partner.
func TestLegacyParseOrder(t *testing.T) {
	p := &Legacy{Partner: "2088000000000001", SellerID: "2088000000000001", Charset: "gbk"}
	base := `"out_trade_no":"L1","total_amount":"1.5","subject":"测试","exp":1`
	o, err := p.ParseOrder(claimsOf(t, `{`+base+`,"body":"b","it_b_pay":"30m","extra_common_param":"x=1","paymethod":"bankPay","defaultbank":"CMB","show_url":"https://shop.example.com/p/1"}`))
	require.NoError(t, err)
	params, err := p.params(o, "n", "r", "")
	require.NoError(t, err)
	assert.Equal(t, "1.50", params["total_fee"])
	assert.Equal(t, "CMB", params["defaultbank"])
	for claim, extra := range map[string]string{
		"product": `"product":"wap"`, "timeout_express": `"timeout_express":"30m"`, "passback_params": `"passback_params":"x"`,
		"biz": `"biz":{}`, "subject": `"subject":"😀"`, "it_b_pay": `"it_b_pay":"30s"`, "paymethod": `"paymethod":"x"`,
		"defaultbank": `"defaultbank":"a b"`, "show_url": `"show_url":"javascript:x"`,
	} {
		js := `{` + base + `,` + extra + `}`
		if claim == "subject" {
			js = `{"out_trade_no":"L1","total_amount":"1.5","exp":1,` + extra + `}`
		}
		_, err := p.ParseOrder(claimsOf(t, js))
		var ce *ClaimError
		require.ErrorAs(t, err, &ce, claim)
		assert.Equal(t, claim, ce.Claim)
	}
	// And OpenAPI refuses the legacy claims.
	_, err = parseOpenAPIOrder(claimsOf(t, `{`+base+`,"it_b_pay":"30m"}`))
	assert.ErrorContains(t, err, "timeout_express")
}
