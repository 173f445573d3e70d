package alipay

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/caddy-alipay/caddy-alipay/internal/protocol"
	"github.com/caddy-alipay/caddy-alipay/internal/protocol/protocoltest"
	"github.com/caddy-alipay/caddy-alipay/internal/testvec"
	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestNotifyAccepted(t *testing.T) {
	fixClock(t, tokenNow)
	vec := testvec.Load(t)
	h := newTestHandler(t, func(h *Handler) { h.ForwardNotify = "/index.php/pay/notify"; h.SellerID = testSellerID })
	for _, c := range vec.Notify.Cases {
		t.Run(c.Name, func(t *testing.T) {
			next := &upstream{status: 200}
			r := notifyRequest(c.PostBody)
			r.Header.Set("X-Alipay-Token", "forged")
			r.Header["X_alipay_token"] = []string{"forged"}
			w := serve(t, h, next, r)
			assert.Equal(t, http.StatusOK, w.Code)
			assert.Equal(t, "success", w.Body.String())
			assert.Equal(t, "text/plain; charset=utf-8", w.Header().Get("Content-Type"))
			assert.Empty(t, w.Header().Get("X-Upstream"), "the upstream's headers stay with Caddy")

			require.Equal(t, 1, next.calls)
			assert.Equal(t, "POST", next.req.Method)
			assert.Equal(t, "/index.php/pay/notify", next.req.URL.Path)
			assert.Equal(t, c.PostBody, next.body, "the original body travels on")
			assert.Equal(t, int64(len(c.PostBody)), next.req.ContentLength)
			assert.Len(t, next.req.Header.Values(TokenHeader), 1)
			assert.NotContains(t, next.req.Header, "X_alipay_token")

			claims, err := h.tokens.Parse(next.req.Header.Get(TokenHeader), tokenNow)
			require.NoError(t, err)
			var params map[string]string
			require.NoError(t, json.Unmarshal(claims["params"], &params))
			assert.Equal(t, c.Params["subject"], params["subject"])
			assert.Equal(t, c.Params["total_amount"], params["total_amount"])
			assert.NotContains(t, params, "sign")
			assert.JSONEq(t, `"`+c.Params["notify_id"]+`"`, string(claims["jti"]))
			assert.JSONEq(t, `"notify"`, string(claims["event"]))
		})
	}
}

func TestNotifyFailures(t *testing.T) {
	vec := testvec.Load(t)
	body := vec.Notify.Cases[0].PostBody
	cases := map[string]struct {
		edit   func(*Handler)
		req    *http.Request
		next   *upstream
		status int
		calls  int
	}{
		"upstream 500":         {nil, notifyRequest(body), &upstream{status: 500}, 502, 1},
		"upstream 302":         {nil, notifyRequest(body), &upstream{status: 302}, 502, 1},
		"upstream unreachable": {nil, notifyRequest(body), &upstream{err: caddyhttp.Error(502, errors.New("dial tcp: refused"))}, 502, 1},
		"no upstream answer":   {nil, notifyRequest(body), &upstream{}, 502, 1},
		"tampered":             {nil, notifyRequest(strings.Replace(body, "88.88", "0.01", 1)), &upstream{status: 200}, 400, 0},
		"other app":            {func(h *Handler) { h.AppID = "2021000000000002" }, notifyRequest(body), &upstream{status: 200}, 400, 0},
		"other seller":         {func(h *Handler) { h.SellerID = "2088000000000002" }, notifyRequest(body), &upstream{status: 200}, 400, 0},
		"GET":                  {nil, httptest.NewRequest("GET", "http://shop.example.com/alipay/notify?"+body, nil), &upstream{status: 200}, 405, 0},
		"too large":            {nil, notifyRequest(body + "&pad=" + strings.Repeat("x", protocol.MaxCallbackSize)), &upstream{status: 200}, 413, 0},
		"empty":                {nil, notifyRequest(""), &upstream{status: 200}, 400, 0},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			h := newTestHandler(t, c.edit)
			w := serve(t, h, c.next, c.req)
			assert.Equal(t, c.status, w.Code)
			assert.Equal(t, "fail", w.Body.String())
			assert.Equal(t, c.calls, c.next.calls)
		})
	}
	// A body without Content-Length (chunked) is bounded too.
	h := newTestHandler(t, nil)
	r := notifyRequest(body + "&pad=" + strings.Repeat("x", protocol.MaxCallbackSize))
	r.ContentLength = -1
	w := serve(t, h, &upstream{status: 200}, r)
	assert.Equal(t, http.StatusRequestEntityTooLarge, w.Code)
}

func TestReturn(t *testing.T) {
	fixClock(t, tokenNow)
	vec := testvec.Load(t)
	u, err := url.Parse(vec.Return.RedirectURL)
	require.NoError(t, err)
	h := newTestHandler(t, func(h *Handler) { h.ForwardReturn = "/orders/return" })
	next := &upstream{status: 200}
	r := httptest.NewRequest("GET", "http://shop.example.com/alipay/return?"+u.RawQuery, nil)
	r.Header.Set("x-alipay-token", "forged")
	w := serve(t, h, next, r)
	assert.Equal(t, 200, w.Code)
	assert.Equal(t, "upstream says hi", w.Body.String(), "the upstream's answer goes to the browser")
	assert.Equal(t, "1", w.Header().Get("X-Upstream"))
	require.Equal(t, 1, next.calls)
	assert.Equal(t, "/orders/return", next.req.URL.Path)
	assert.Equal(t, u.RawQuery, next.req.URL.RawQuery)
	claims, err := h.tokens.Parse(next.req.Header.Get(TokenHeader), tokenNow)
	require.NoError(t, err)
	assert.JSONEq(t, `"return"`, string(claims["event"]))
	var jti string
	require.NoError(t, json.Unmarshal(claims["jti"], &jti))
	assert.Len(t, jti, 32)

	// Refused: a short page, the upstream sees nothing.
	next = &upstream{status: 200}
	bad := strings.Replace(u.RawQuery, "total_amount=88.88", "total_amount=8.88", 1)
	w = serve(t, h, next, httptest.NewRequest("GET", "http://shop.example.com/alipay/return?"+bad, nil))
	assert.Equal(t, 400, w.Code)
	assert.Contains(t, w.Body.String(), "could not be confirmed")
	assert.Equal(t, "text/html; charset=utf-8", w.Header().Get("Content-Type"))
	assert.Zero(t, next.calls)

	w = serve(t, h, next, httptest.NewRequest("POST", "http://shop.example.com/alipay/return?"+u.RawQuery, nil))
	assert.Equal(t, 405, w.Code)
	assert.Zero(t, next.calls)
}

func TestRefusalOutcome(t *testing.T) {
	_, malformed := protocol.ParseForm("a=%zz")
	for _, c := range []struct {
		err     error
		status  int
		outcome outcome
	}{
		{malformed, 400, outcomeInvalid},
		{protocol.ErrBadSignature, 400, outcomeRefused},
		{fmt.Errorf("%w: app_id is not this app's", protocol.ErrNotOurs), 400, outcomeRefused},
		{fmt.Errorf("%w: notify_verify answered \"false\"", protocol.ErrNotConfirmed), 400, outcomeRefused},
		{fmt.Errorf("%w: no answer", protocol.ErrNoConfirmation), 502, outcomeUnconfirmed},
	} {
		status, outcome := refusal(c.err)
		assert.Equal(t, c.status, status, c.err.Error())
		assert.Equal(t, c.outcome, outcome, c.err.Error())
	}
}

// What Alipay hears for each answer of the upstream: success only when
// the shop acknowledged the notification after it was offered all of it
// (a 2xx whose body is success, or that carries X-Alipay-Ack with the
// token's jti; notify_ack status takes any 2xx); otherwise fail, with the
// outcome that says why; and an answer within notify_timeout whatever
// the shop does.
func TestNotifyAcknowledgement(t *testing.T) {
	body := testvec.Load(t).Notify.Cases[0].PostBody
	form, err := url.ParseQuery(body)
	require.NoError(t, err)
	jti := form.Get("notify_id")
	require.NotEmpty(t, jti)
	answer := func(status int, ack, text string) caddyhttp.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) error {
			_, _ = io.ReadAll(r.Body)
			if ack != "" {
				w.Header().Set(AckHeader, ack)
			}
			w.WriteHeader(status)
			_, _ = io.WriteString(w, text)
			return nil
		}
	}
	for _, c := range []struct {
		name       string
		ackSetting string
		next       caddyhttp.HandlerFunc
		status     int     // 200 with success; any other with fail
		outcome    outcome // the log line's; "": not checked
		reason     string  // in the log line's reason; "": not checked
	}{
		// Each way a shop fails.
		{"200 success after reading it all", "", func(w http.ResponseWriter, r *http.Request) error {
			_, _ = io.ReadAll(r.Body)
			_, _ = io.WriteString(w, "success")
			return nil
		}, 200, outcomeOK, ""},
		{"200 success after reading part", "", func(w http.ResponseWriter, r *http.Request) error {
			_, _ = r.Body.Read(make([]byte, 10))
			_, _ = io.WriteString(w, "success")
			return nil
		}, 502, outcomeUpstreamFailed, ""},
		{"200 success without reading (respond)", "", func(w http.ResponseWriter, r *http.Request) error {
			_, _ = io.WriteString(w, "success")
			return nil
		}, 502, outcomeUpstreamFailed, ""},
		{"200 with nothing (a misrouted site)", "", func(w http.ResponseWriter, r *http.Request) error {
			_, _ = io.ReadAll(r.Body)
			w.WriteHeader(200)
			return nil
		}, 502, outcomeUnacknowledged, ""},
		{"500", "", func(w http.ResponseWriter, r *http.Request) error {
			_, _ = io.ReadAll(r.Body)
			w.WriteHeader(500)
			return nil
		}, 502, outcomeUpstreamFailed, ""},
		{"redirect", "", func(w http.ResponseWriter, r *http.Request) error {
			_, _ = io.ReadAll(r.Body)
			http.Redirect(w, r, "/login", http.StatusFound)
			return nil
		}, 502, outcomeUpstreamFailed, ""},
		{"refused", "", func(w http.ResponseWriter, r *http.Request) error {
			return caddyhttp.Error(502, errors.New("dial tcp 127.0.0.1:8000: connect: connection refused"))
		}, 502, outcomeUpstreamFailed, ""},
		{"reset in the middle", "", func(w http.ResponseWriter, r *http.Request) error {
			_, _ = io.ReadAll(r.Body)
			w.WriteHeader(200)
			_, _ = io.WriteString(w, "par")
			panic(http.ErrAbortHandler)
		}, 502, outcomeUpstreamFailed, ""},
		{"hangs", "", func(w http.ResponseWriter, r *http.Request) error {
			_, _ = io.ReadAll(r.Body)
			<-r.Context().Done() // as reverse_proxy, cancelled with the request
			return caddyhttp.Error(502, r.Context().Err())
		}, 504, outcomeUpstreamFailed, "notify_timeout"},

		// What counts as an acknowledgement.
		{"success", "", answer(200, "", "success"), 200, outcomeOK, ""},
		{"success and a newline", "", answer(200, "", "success\n"), 200, outcomeOK, ""},
		{"success with spaces and a BOM (a PHP file saved so)", "", answer(200, "", "\uFEFF  success \r\n"), 200, outcomeOK, ""},
		{"204 and X-Alipay-Ack", "", answer(204, jti, ""), 200, outcomeOK, ""},
		{"201 page and X-Alipay-Ack", "", answer(201, jti, "<html>saved</html>"), 200, outcomeOK, ""},
		{"an empty 200", "", answer(200, "", ""), 502, outcomeUnacknowledged, "its body is not success"},
		{"the seeds' fail, as a 200", "", answer(200, "", "fail"), 502, outcomeUnacknowledged, "its body is not success"},
		{"SUCCESS in capitals", "", answer(200, "", "SUCCESS"), 502, outcomeUnacknowledged, "its body is not success"},
		{"a page that says success", "", answer(200, "", "<html><p>success</p></html>"), 502, outcomeUnacknowledged, "its body is not success"},
		{"success after a long page", "", answer(200, "", strings.Repeat(" ", 300)+"success"), 502, outcomeUnacknowledged, "its body is not success"},
		{"an SPA fallback page", "", answer(200, "", "<!doctype html><div id=app></div>"), 502, outcomeUnacknowledged, "X-Alipay-Ack"},
		{"X-Alipay-Ack of another notification", "", answer(200, "other-notify-id", "success"), 502, outcomeUnacknowledged, "not this notification's jti"},
		{"a 500 that says success", "", answer(500, jti, "success"), 502, "", ""},
		{"status: an empty 200", notifyAckStatus, answer(200, "", ""), 200, outcomeOK, ""},
		{"status: a catch-all page", notifyAckStatus, answer(200, "", "<html>"), 200, outcomeOK, ""},
		{"status: a 500", notifyAckStatus, answer(500, "", "success"), 502, "", ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			h := newTestHandler(t, func(h *Handler) {
				h.NotifyTimeout = caddy.Duration(100 * time.Millisecond)
				h.NotifyAck = c.ackSetting
			})
			logs := observe(h)
			start := time.Now()
			w := serve(t, h, c.next, notifyRequest(body))
			assert.Equal(t, c.status, w.Code)
			want := "fail"
			if c.status == 200 {
				want = "success"
			}
			assert.Equal(t, want, w.Body.String())
			ev := lastEvent(t, logs)
			if c.outcome != "" {
				assert.Equal(t, c.outcome, outcomeOf(ev))
			}
			if c.reason != "" {
				assert.Contains(t, ev["reason"], c.reason)
			}
			assert.Less(t, time.Since(start), 5*time.Second)
		})
	}
}

// Empty parameters appended to a signed callback verify (the string to
// sign may leave empty values out) but are not Alipay's: they stay out
// of the token.
func TestUnsignedParamsLeftOut(t *testing.T) {
	fixClock(t, tokenNow)
	h := newTestHandler(t, nil)
	for _, c := range testvec.Load(t).Notify.Cases {
		next := &upstream{status: 200}
		w := serve(t, h, next, notifyRequest(c.PostBody+"&anything=&trade_status_override="))
		if c.SignedWithType {
			// The string with sign_type in it keeps empty values: no form
			// that Alipay signs leaves the extra keys out.
			assert.Equal(t, 400, w.Code, c.Name)
			assert.Zero(t, next.calls)
			continue
		}
		require.Equal(t, "success", w.Body.String(), c.Name)
		claims, err := h.tokens.Parse(next.req.Header.Get(TokenHeader), tokenNow)
		require.NoError(t, err)
		var params map[string]string
		require.NoError(t, json.Unmarshal(claims["params"], &params))
		assert.NotContains(t, params, "anything", c.Name)
		assert.NotContains(t, params, "trade_status_override", c.Name)
		want := maps.Clone(c.Params)
		delete(want, "sign")
		delete(want, "sign_type")
		assert.Equal(t, want, params, c.Name)
	}
}

// A refused callback's fields are logged as unverified, never under the
// names of a verified one's.
func TestRefusedFieldsLoggedAsUnverified(t *testing.T) {
	h := newTestHandler(t, nil)
	logs := observe(h)
	forged := strings.Replace(testvec.Load(t).Notify.Cases[0].PostBody, "total_amount=88.88", "total_amount=0.01", 1)
	w := serve(t, h, &upstream{status: 200}, notifyRequest(forged))
	require.Equal(t, 400, w.Code)
	ev := lastEvent(t, logs)
	assert.Equal(t, outcomeRefused, outcomeOf(ev))
	for _, k := range []string{"out_trade_no", "trade_no", "trade_status", "total_amount"} {
		assert.NotContains(t, ev, k)
		assert.NotEmpty(t, ev["unverified_"+k], k)
	}
	assert.Equal(t, "0.01", ev["unverified_total_amount"])

	w = serve(t, h, &upstream{status: 200}, notifyRequest(testvec.Load(t).Notify.Cases[0].PostBody))
	require.Equal(t, 200, w.Code)
	ev = lastEvent(t, logs)
	assert.Equal(t, "88.88", ev["total_amount"])
	assert.NotContains(t, ev, "unverified_total_amount")
}

// A token past 8 KiB, which common servers refuse as a header, is
// logged; a real notification's is far below.
func TestLargeTokenLogged(t *testing.T) {
	h := newTestHandler(t, nil)
	logs := observe(h)
	c := testvec.Load(t).Notify.Cases[0]
	w := serve(t, h, &upstream{status: 200}, notifyRequest(c.PostBody))
	require.Equal(t, "success", w.Body.String())
	assert.Zero(t, logs.FilterMessageSnippet("larger than 8 KiB").Len())

	params := maps.Clone(c.Params)
	params["body"] = strings.Repeat("长", 3000) // 9 KB of UTF-8, as the token carries it
	w = serve(t, h, &upstream{status: 200}, notifyRequest(protocoltest.SignedCallback(t, params)))
	require.Equal(t, "success", w.Body.String())
	warned := logs.FilterMessageSnippet("larger than 8 KiB").All()
	require.Len(t, warned, 1)
	assert.Greater(t, warned[0].ContextMap()["token_bytes"], int64(8<<10))
	assert.Equal(t, "notify", warned[0].ContextMap()["event"])
}

// notify and return through a real Caddy: the vectors' notifications
// reach the shop's notify view with a token that it accepts, and a
// forged X-Alipay-Token never does; a refused notification, a wrong
// method or a large body reach nothing; a shop that fails is a fail for
// Alipay; a verified return reaches the shop, a forged one does not.
func TestCaddyNotifyReturn(t *testing.T) {
	s, upstream := startShop(t)
	tester := loadSidecar(t, standardSettings(), upstream, "")
	vec := testvec.Load(t)

	t.Run("notify", func(t *testing.T) {
		for _, c := range vec.Notify.Cases {
			req, err := http.NewRequest("POST", caddyURL+"/alipay/notify", strings.NewReader(c.PostBody))
			require.NoError(t, err)
			req.Header.Set("Content-Type", c.ContentType)
			req.Header.Set("X-Alipay-Token", "forged")
			tester.AssertResponse(req, 200, "success")
			got := s.take()
			require.Len(t, got, 1, c.Name)
			assert.Equal(t, "/shop/notify", got[0].path)
			assert.Equal(t, c.PostBody, got[0].body)
			require.Empty(t, got[0].tokenErr)
			assert.Equal(t, c.Params["notify_id"], got[0].claims["jti"])
			assert.Equal(t, c.Params["subject"], got[0].claims["params"].(map[string]any)["subject"])
		}
	})

	t.Run("notify refused", func(t *testing.T) {
		body := strings.Replace(vec.Notify.Cases[0].PostBody, "total_amount=88.88", "total_amount=0.01", 1)
		req, _ := http.NewRequest("POST", caddyURL+"/alipay/notify", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		tester.AssertResponse(req, 400, "fail")
		req, _ = http.NewRequest("POST", caddyURL+"/alipay/notify", strings.NewReader(strings.Repeat("a=b&", 20000)))
		tester.AssertResponse(req, 413, "fail")
		tester.AssertGetResponse(caddyURL+"/alipay/notify", 405, "fail")
		assert.Empty(t, s.take())
	})

	t.Run("notify upstream fails", func(t *testing.T) {
		s.setStatus(500)
		defer s.setStatus(200)
		req, _ := http.NewRequest("POST", caddyURL+"/alipay/notify", strings.NewReader(vec.Notify.Cases[0].PostBody))
		resp, _ := tester.AssertResponse(req, 502, "fail")
		assert.Equal(t, "text/plain; charset=utf-8", resp.Header.Get("Content-Type"))
		assert.Len(t, s.take(), 1)
	})

	t.Run("return", func(t *testing.T) {
		u, err := url.Parse(vec.Return.RedirectURL)
		require.NoError(t, err)
		tester.AssertGetResponse(caddyURL+"/alipay/return?"+u.RawQuery, 200, "shop saw /alipay/return")
		got := s.take()
		require.Len(t, got, 1)
		assert.Equal(t, u.RawQuery, got[0].query)
		require.Empty(t, got[0].tokenErr)
		assert.Equal(t, "return", got[0].claims["event"])

		bad := strings.Replace(u.RawQuery, "out_trade_no=", "out_trade_no=X", 1)
		_, body := getStatus(t, tester, caddyURL+"/alipay/return?"+bad, 400)
		assert.Contains(t, body, "could not be confirmed")
		assert.Empty(t, s.take())
	})
}

// Without an upstream that answers 2xx, Alipay hears fail with a 5xx, so
// it will send the notification again.
func TestCaddyNotifyWithoutShop(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	dead := l.Addr().String()
	l.Close()
	for name, upstream := range map[string]string{
		"shop down":   "reverse_proxy " + dead,
		"no upstream": "", // a site that never answers success on its own
	} {
		t.Run(name, func(t *testing.T) {
			tester := loadSidecar(t, `
				app_private_key `+testvec.Key("app_private_key_pkcs1.pem")+`
				alipay_public_key `+testvec.Key("alipay_public_key.b64"), upstream, "")
			req, _ := http.NewRequest("POST", caddyURL+"/alipay/notify", strings.NewReader(testvec.Load(t).Notify.Cases[0].PostBody))
			tester.AssertResponse(req, 502, "fail")
		})
	}
}

// A shop that resets in the middle of its answer: Alipay hears 502 fail
// and the log says upstream_failed, for the notify; the browser's return
// is aborted, and logged the same.
func TestCaddyShopBreaksOff(t *testing.T) {
	tester := loadSidecar(t, `
		app_private_key `+testvec.Key("app_private_key_pkcs1.pem")+`
		alipay_public_key `+testvec.Key("alipay_public_key.pem"), "reverse_proxy "+brokenShop(t), "")
	vec := testvec.Load(t)
	before := eventCount(eventNotify, outcomeUpstreamFailed)
	req, _ := http.NewRequest("POST", caddyURL+"/alipay/notify", strings.NewReader(vec.Notify.Cases[0].PostBody))
	tester.AssertResponse(req, 502, "fail")
	assert.Equal(t, before+1, eventCount(eventNotify, outcomeUpstreamFailed))

	before = eventCount(eventReturn, outcomeUpstreamFailed)
	u := must(url.Parse(vec.Return.RedirectURL))
	resp, err := tester.Client.Get(caddyURL + "/alipay/return?" + u.RawQuery)
	if err == nil {
		_, err = io.ReadAll(resp.Body)
		resp.Body.Close()
	}
	assert.Error(t, err, "the browser sees a broken answer, not a whole page")
	assert.Equal(t, before+1, eventCount(eventReturn, outcomeUpstreamFailed))
}

// Through a real Caddy: a shop that hangs gets its request cancelled at
// notify_timeout and Alipay hears 504 fail; a body that dribbles in is cut
// off at the same bound (Caddy's own read timeout is per read, a minute).
func TestCaddyNotifyTimeout(t *testing.T) {
	cancelled := make(chan struct{}, 1)
	hang := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.ReadAll(r.Body)
		select {
		case <-r.Context().Done():
			cancelled <- struct{}{}
		case <-time.After(10 * time.Second):
		}
	}))
	defer hang.Close()
	tester := loadSidecar(t, `
		app_private_key `+testvec.Key("app_private_key_pkcs1.pem")+`
		alipay_public_key `+testvec.Key("alipay_public_key.pem")+`
		notify_timeout 300ms`, "reverse_proxy "+strings.TrimPrefix(hang.URL, "http://"), "")
	body := testvec.Load(t).Notify.Cases[0].PostBody
	start := time.Now()
	req, _ := http.NewRequest("POST", caddyURL+"/alipay/notify", strings.NewReader(body))
	tester.AssertResponse(req, http.StatusGatewayTimeout, "fail")
	assert.Less(t, time.Since(start), 3*time.Second)
	select {
	case <-cancelled:
	case <-time.After(5 * time.Second):
		t.Fatal("the request to the shop was not cancelled")
	}

	conn, err := net.Dial("tcp", caddyAddr)
	require.NoError(t, err)
	defer conn.Close()
	fmt.Fprintf(conn, "POST /alipay/notify HTTP/1.1\r\nHost: %s\r\nContent-Length: %d\r\n\r\n%s", caddyAddr, len(body), body[:10])
	start = time.Now()
	require.NoError(t, conn.SetDeadline(time.Now().Add(10*time.Second)))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err == nil {
		assert.Equal(t, http.StatusRequestTimeout, resp.StatusCode)
		resp.Body.Close()
	}
	assert.Less(t, time.Since(start), 5*time.Second, "cut off at notify_timeout, not at Caddy's minute")
}
