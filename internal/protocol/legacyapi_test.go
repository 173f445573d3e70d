package protocol

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddy-alipay/caddy-alipay/internal/testvec"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// legacyCaseNamed is the legacy vector called name.
func legacyCaseNamed(t testing.TB, v *testvec.LegacyVectors, name string) testvec.Legacy {
	t.Helper()
	for _, c := range v.Cases {
		if c.Name == name {
			return c
		}
	}
	t.Fatalf("no legacy vector %s", name)
	return testvec.Legacy{}
}

// legacyAnswer is the XML of the answer sample called name.
func legacyAnswer(t testing.TB, v *testvec.LegacyVectors, name string) (xml []byte, asJSON string) {
	t.Helper()
	for _, a := range v.Answers {
		if a.Name == name {
			return testvec.Read(t, strings.Split(a.File, "/")...), string(a.JSON)
		}
	}
	t.Fatalf("no legacy answer %s", name)
	return nil, ""
}

// vectorPartner is the protocol of case c, with a clock at the case's
// refund_date (or any time, for a case without one) and its seller.
func vectorPartner(t testing.TB, v *testvec.LegacyVectors, c testvec.Legacy) *Legacy {
	t.Helper()
	p := legacyFor(t, v, c)
	if c.Params["seller_email"] != "" {
		p.SellerID, p.SellerEmail = "", c.Params["seller_email"]
	}
	at := clientNow
	if d := c.Params["refund_date"]; d != "" {
		var err error
		at, err = ParseTimestamp(d)
		require.NoError(t, err)
	}
	p.Now = func() time.Time { return at }
	return p
}

// mapiRequest is what a test gateway was sent.
type mapiRequest struct {
	method, path, query, contentType string
	form                             url.Values
}

// testMapi serves answer (status 200) as the legacy gateway and records
// what it was sent; p is pointed at it.
func testMapi(t *testing.T, p *Legacy, h http.HandlerFunc) (*atomic.Int32, func() mapiRequest) {
	t.Helper()
	var (
		mu    sync.Mutex
		last  mapiRequest
		calls atomic.Int32
	)
	gw := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		body, _ := io.ReadAll(r.Body)
		form, err := url.ParseQuery(string(body))
		assert.NoError(t, err)
		mu.Lock()
		last = mapiRequest{r.Method, r.URL.Path, r.URL.RawQuery, r.Header.Get("Content-Type"), form}
		mu.Unlock()
		h(w, r)
	}))
	t.Cleanup(gw.Close)
	p.Gateway, p.HTTP = gw.URL+"/gateway.do", NoRedirectClient(0)
	return &calls, func() mapiRequest { mu.Lock(); defer mu.Unlock(); return last }
}

// xmlAnswer is a handler that answers body as the gateway does.
func xmlAnswer(status int, body []byte) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/xml")
		w.WriteHeader(status)
		_, _ = w.Write(body)
	}
}

// fieldsOf reads a JSON object into its members, as the root's API
// endpoint hands them to Call.
func fieldsOf(t testing.TB, js string) map[string]json.RawMessage {
	t.Helper()
	var m map[string]json.RawMessage
	require.NoError(t, json.Unmarshal([]byte(js), &m))
	return m
}

// The shop's calls of the vectors: the form that reaches the gateway is
// the vector's, byte for byte once decoded (bytes in the charset), with
// the vector's sign; _input_charset is in the URL too; the answer comes
// back as JSON.
func TestLegacyAPIVectors(t *testing.T) {
	v := testvec.LoadLegacy(t)
	answerOf := map[string]string{"single_trade_query": "single_trade_query_utf8", "close_trade": "close_trade_success",
		"refund_fastpay_by_platform_nopwd": "refund_nopwd_success"}
	n := 0
	for _, c := range v.Cases {
		if c.Kind != "api" {
			continue
		}
		n++
		t.Run(c.Name, func(t *testing.T) {
			p := vectorPartner(t, v, c)
			xml, want := legacyAnswer(t, v, answerOf[c.Service])
			_, sent := testMapi(t, p, xmlAnswer(200, xml))
			var timed []string
			p.Timer = func(service string, _ time.Duration) { timed = append(timed, service) }
			got, err := p.Call(context.Background(), c.Service, c.ShopBody, fieldsOf(t, string(c.ShopBody)), c.SiteNotifyURL)
			require.NoError(t, err)
			assert.JSONEq(t, want, string(got))
			assert.Equal(t, []string{c.Service}, timed, "the Timer is told of each call, by service")

			r := sent()
			assert.Equal(t, http.MethodPost, r.method)
			assert.Equal(t, "/gateway.do", r.path)
			wantURL, err := url.Parse(c.PostURL)
			require.NoError(t, err)
			assert.Equal(t, wantURL.RawQuery, r.query)
			assert.Equal(t, c.ContentType, r.contentType)
			wantForm, err := url.ParseQuery(c.PostBody)
			require.NoError(t, err)
			assert.Equal(t, wantForm, r.form)
			assert.Equal(t, c.Sign, r.form.Get("sign"))
			flat := map[string]string{}
			for k := range r.form {
				flat[k] = r.form.Get(k)
			}
			assert.Equal(t, c.HexToSign, hex.EncodeToString(LegacyContent(flat)), "signed over the bytes in the charset")
		})
	}
	assert.Equal(t, 7, n)
}

// The gateway's answers: XML of either is_success is the shop's answer;
// anything else, and no answer, is a CallError of its kind, never an
// answer.
func TestLegacyCallAnswers(t *testing.T) {
	v := testvec.LoadLegacy(t)
	c := legacyCaseNamed(t, v, "md5_single_trade_query_utf8")
	okXML, okJSON := legacyAnswer(t, v, "single_trade_query_utf8")
	failXML, failJSON := legacyAnswer(t, v, "single_trade_query_not_exist")
	gbkXML, gbkJSON := legacyAnswer(t, v, "single_trade_query_gbk")
	elsewhere := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		t.Error("a redirect was followed")
		_, _ = w.Write(okXML)
	}))
	defer elsewhere.Close()
	release := make(chan struct{})
	defer close(release)
	for _, tc := range []struct {
		name    string
		handler http.HandlerFunc
		want    string // the JSON answer, or:
		kind    CallErrorKind
	}{
		{"success", xmlAnswer(200, okXML), okJSON, 0},
		{"is_success F", xmlAnswer(200, failXML), failJSON, 0},
		{"gbk", xmlAnswer(200, gbkXML), gbkJSON, 0},
		{"garbage", xmlAnswer(200, []byte("\x00\xff<<<>>>")), "", CallBadAnswer},
		{"json", xmlAnswer(200, []byte(`{"is_success":"T"}`)), "", CallBadAnswer},
		{"html", xmlAnswer(200, []byte(`<html><body><is_success>T</is_success></body></html>`)), "", CallBadAnswer},
		{"no is_success", xmlAnswer(200, []byte(`<alipay><error>ILLEGAL_SIGN</error></alipay>`)), "", CallBadAnswer},
		{"empty", xmlAnswer(200, nil), "", CallBadAnswer},
		{"http 500", xmlAnswer(500, okXML), "", CallBadAnswer},
		{"too large", xmlAnswer(200, []byte(strings.Repeat(" ", MaxResponseSize+1))), "", CallBadAnswer},
		{"redirect", func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, elsewhere.URL+"/gateway.do", http.StatusTemporaryRedirect)
		}, "", CallBadAnswer},
		{"hang", func(w http.ResponseWriter, r *http.Request) {
			select {
			case <-r.Context().Done():
			case <-release:
			}
		}, "", CallTimeout},
		{"hang in the body", func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(200)
			_, _ = w.Write(okXML[:40])
			w.(http.Flusher).Flush()
			select {
			case <-r.Context().Done():
			case <-release:
			}
		}, "", CallTimeout},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := vectorPartner(t, v, c)
			testMapi(t, p, tc.handler)
			p.HTTP = &http.Client{} // one that follows redirects: Call must not
			p.APITimeout = 200 * time.Millisecond
			got, err := p.Call(context.Background(), c.Service, nil, fieldsOf(t, string(c.ShopBody)), "")
			if tc.want != "" {
				require.NoError(t, err)
				assert.JSONEq(t, tc.want, string(got))
				return
			}
			requireCallError(t, err, tc.kind)
			assert.Nil(t, got)
		})
	}

	// A gateway that nobody listens on.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	closed := l.Addr().String()
	require.NoError(t, l.Close())
	p := vectorPartner(t, v, c)
	p.Gateway = "http://" + closed + "/gateway.do"
	_, err = p.Call(context.Background(), c.Service, nil, fieldsOf(t, string(c.ShopBody)), "")
	requireCallError(t, err, CallUnreachable)
}

// Methods are the three services; another is an error, not a call.
func TestLegacyMethods(t *testing.T) {
	p := &Legacy{}
	assert.Equal(t, []string{"single_trade_query", "close_trade", "refund_fastpay_by_platform_nopwd"}, p.Methods())
	p.Methods()[0] = "changed"
	assert.Equal(t, "single_trade_query", LegacyServices[0], "Methods returns a copy")
	_, err := p.Call(context.Background(), "create_direct_pay_by_user", nil, map[string]json.RawMessage{}, "")
	require.Error(t, err)
	var ce *ClaimError
	assert.NotErrorAs(t, err, &ce)
}

// The lookups take their two fields, strings by exact name, at least
// one, and nothing else: each refusal names the field, and nothing is
// sent.
func TestLegacyLookupClaimErrors(t *testing.T) {
	v := testvec.LoadLegacy(t)
	p := vectorPartner(t, v, legacyCaseNamed(t, v, "md5_single_trade_query_utf8"))
	xml, _ := legacyAnswer(t, v, "close_trade_success")
	calls, sent := testMapi(t, p, xmlAnswer(200, xml))
	for _, tc := range []struct{ service, body, field, says string }{
		{"single_trade_query", `{}`, "trade_no", "needs trade_no or out_trade_no"},
		{"single_trade_query", `{"trade_no":""}`, "trade_no", "needs trade_no or out_trade_no"},
		{"single_trade_query", `{"trade_no":2024}`, "trade_no", "must be a string"},
		{"single_trade_query", `{"trade_no":null}`, "trade_no", "must be a string"},
		{"single_trade_query", `{"out_trade_no":["L1"]}`, "out_trade_no", "must be a string"},
		{"single_trade_query", `{"out_trade_no":"L 1"}`, "out_trade_no", "letters, digits or _"},
		{"single_trade_query", `{"trade_no":"2024&x=1"}`, "trade_no", "letters, digits or _"},
		{"single_trade_query", `{"trade_no":"1","Trade_No":"2"}`, "Trade_No", "not a parameter of single_trade_query"},
		{"single_trade_query", `{"out_order_no":"L1"}`, "out_order_no", "it takes trade_no, out_trade_no"},
		{"single_trade_query", `{"trade_no":"1","service":"close_trade"}`, "service", "set by the sidecar"},
		{"single_trade_query", `{"trade_no":"1","partner":"2088000000000009"}`, "partner", "set by the sidecar"},
		{"single_trade_query", `{"trade_no":"1","sign":"x"}`, "sign", "set by the sidecar"},
		{"single_trade_query", `{"trade_no":"1","_input_charset":"gbk"}`, "_input_charset", "set by the sidecar"},
		{"close_trade", `{"out_trade_no":"L1"}`, "out_trade_no", "out_order_no"},
		{"close_trade", `{}`, "trade_no", "needs trade_no or out_order_no"},
		{"close_trade", `{"out_order_no":"L1","trade_role":"S"}`, "trade_role", "not a parameter of close_trade"},
	} {
		_, err := p.Call(context.Background(), tc.service, []byte(tc.body), fieldsOf(t, tc.body), "")
		var ce *ClaimError
		require.ErrorAs(t, err, &ce, tc.body)
		assert.Equal(t, tc.field, ce.Claim, tc.body)
		assert.Contains(t, ce.Error(), tc.says, tc.body)
	}
	assert.Zero(t, calls.Load(), "a refused body is never sent")

	// Both numbers may be given; the body alone (no fields) is read too.
	_, err := p.Call(context.Background(), "single_trade_query", []byte(`{"trade_no":"1","out_trade_no":"L1"}`), nil, "")
	require.NoError(t, err)
	assert.Equal(t, "1", sent().form.Get("trade_no"))
	assert.Equal(t, "L1", sent().form.Get("out_trade_no"))
	_, err = p.Call(context.Background(), "close_trade", []byte(`[1]`), nil, "")
	var ce *ClaimError
	require.ErrorAs(t, err, &ce)
	assert.Equal(t, "body", ce.Claim)
}
