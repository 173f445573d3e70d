package alipay

// The holes that an attack from outside found, each closed: look-alike
// endpoint paths, trailers, the Host of a pay request, a matcher on the
// handler, an upstream that breaks off, unsigned parameters and the
// bearer scheme.

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/caddy-alipay/caddy-alipay/internal/protocol/protocoltest"
	"github.com/caddy-alipay/caddy-alipay/internal/testvec"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Every look-alike spelling of an endpoint is that endpoint: a forged
// callback on it is refused and the shop never sees it.
func TestLookAlikePaths(t *testing.T) {
	h := newTestHandler(t, nil)
	vec := testvec.Load(t)
	forged := strings.Replace(vec.Notify.Cases[0].PostBody, "total_amount=88.88", "total_amount=0.01", 1)
	for _, p := range lookAlikes {
		next := &upstream{status: 200}
		w := serve(t, h, next, requestTo("POST", p, "", forged))
		assert.Equal(t, 400, w.Code, "%q", p)
		assert.Equal(t, "fail", w.Body.String(), "%q", p)
		assert.Zero(t, next.calls, "%q reached the shop", p)

		if !strings.Contains(p, "notify") {
			continue
		}
		ret := strings.Replace(p, "notify", "return", 1)
		w = serve(t, h, next, requestTo("GET", ret, "out_trade_no=X&total_amount=0.01&app_id="+testAppID+"&sign=AAAA", ""))
		assert.Equal(t, 400, w.Code, "%q", ret)
		assert.Contains(t, w.Body.String(), "could not be confirmed", "%q", ret)
		assert.Zero(t, next.calls, "%q reached the shop", ret)

		pay := strings.Replace(p, "notify", "pay", 1)
		w = serve(t, h, next, requestTo("GET", pay, "token=forged", ""))
		assert.Equal(t, 403, w.Code, "%q", pay)
	}
	// A real notification on a look-alike path is served as one.
	next := &upstream{status: 200}
	w := serve(t, h, next, requestTo("POST", "/alipay/notify/", "", vec.Notify.Cases[0].PostBody))
	assert.Equal(t, "success", w.Body.String())
	require.Equal(t, 1, next.calls)
	assert.NotEmpty(t, next.req.Header.Get(TokenHeader))
}

// trailingBody fills in the request's trailers when it reaches its end,
// as net/http does for a chunked body.
type trailingBody struct {
	io.Reader
	r        *http.Request
	trailers http.Header
}

func (b *trailingBody) Read(p []byte) (int, error) {
	n, err := b.Reader.Read(p)
	if err == io.EOF {
		maps.Copy(b.r.Trailer, b.trailers)
	}
	return n, err
}

func (b *trailingBody) Close() error { return nil }

func chunkedRequest(method, target, body string, trailers http.Header) *http.Request {
	r := httptest.NewRequest(method, target, nil)
	r.ContentLength = -1
	r.TransferEncoding = []string{"chunked"}
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	r.Trailer = http.Header{}
	for k := range trailers {
		r.Trailer[k] = nil // declared in the Trailer header
	}
	r.Body = &trailingBody{Reader: strings.NewReader(body), r: r, trailers: trailers}
	return r
}

// Trailers arrive at the end of the body, after the handler stripped the
// headers: they are stripped then.
func TestTrailersStrippedWhenTheyArrive(t *testing.T) {
	h := newTestHandler(t, nil)
	forged := http.Header{"X-Alipay-Token": {"forged"}, "X_alipay_params": {"forged"}, "X-Checksum": {"kept"}}
	var seen http.Header
	next := caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		_, _ = io.ReadAll(r.Body)
		seen = r.Trailer.Clone()
		_, _ = io.WriteString(w, "success")
		return nil
	})
	serve(t, h, next, chunkedRequest("POST", "http://shop.example.com/upload", "x=1", forged))
	assert.Equal(t, http.Header{"X-Checksum": {"kept"}}, seen)

	// A verified notification goes on with none at all.
	body := testvec.Load(t).Notify.Cases[0].PostBody
	seen = http.Header{"unset": nil}
	w := serve(t, h, next, chunkedRequest("POST", "http://shop.example.com/alipay/notify", body, forged))
	assert.Equal(t, "success", w.Body.String())
	assert.Nil(t, seen)
}

// The merchant key signs callback URLs only on a host that the operator
// configured.
func TestPayHost(t *testing.T) {
	tok := payToken(t, map[string]any{"out_trade_no": "H1", "total_amount": "1.00", "subject": "s"})
	pay := func(h *Handler, host string, hosts []string, local string) *httptest.ResponseRecorder {
		r := httptest.NewRequest("GET", "http://shop.example.com/alipay/pay?token="+tok, nil)
		r.Host = host
		r = onSite(h, r, hosts...)
		if local != "" {
			addr, err := net.ResolveTCPAddr("tcp", local)
			require.NoError(t, err)
			r = r.WithContext(context.WithValue(r.Context(), http.LocalAddrContextKey, addr))
		}
		w := httptest.NewRecorder()
		require.NoError(t, h.ServeHTTP(w, r, &upstream{}))
		return w
	}
	notifyURL := func(w *httptest.ResponseRecorder) string {
		t.Helper()
		require.Equal(t, 302, w.Code, w.Body.String())
		loc, err := http.NewRequest("GET", w.Header().Get("Location"), nil)
		require.NoError(t, err)
		return loc.URL.Query().Get("notify_url")
	}

	// A site that answers any host name (no host matcher).
	h := newTestHandler(t, nil)
	logs := observe(h)
	w := pay(h, "attacker.example", nil, "")
	assert.Equal(t, http.StatusMisdirectedRequest, w.Code)
	assert.NotContains(t, w.Body.String(), "attacker")
	assert.Contains(t, lastEvent(t, logs)["reason"], "notify_url and return_url are needed")
	assert.Empty(t, w.Header().Get("Location"))

	// ... takes payments with the URLs configured.
	h = newTestHandler(t, func(h *Handler) {
		h.NotifyURL, h.ReturnURL = "https://shop.example.com/alipay/notify", "https://shop.example.com/alipay/return"
	})
	assert.Equal(t, "https://shop.example.com/alipay/notify", notifyURL(pay(h, "attacker.example", nil, "")))
	// Only the one not configured is refused.
	h = newTestHandler(t, func(h *Handler) { h.NotifyURL = "https://shop.example.com/alipay/notify" })
	assert.Equal(t, http.StatusMisdirectedRequest, pay(h, "attacker.example", nil, "").Code)

	// A site bound to its host names.
	for _, c := range []struct{ host, local, want string }{
		{"Shop.Example.com", "", "http://shop.example.com/alipay/notify"},
		{"shop.example.com:8080", "127.0.0.1:8080", "http://shop.example.com:8080/alipay/notify"},
		{"[::1]:8080", "[::1]:8080", "http://[::1]:8080/alipay/notify"},
		{"127.0.0.1", "", "http://127.0.0.1/alipay/notify"},
	} {
		h = newTestHandler(t, nil)
		assert.Equal(t, c.want, notifyURL(pay(h, c.host, []string{"shop.example.com", "::1", "127.0.0.1"}, c.local)), c.host)
	}
	for _, c := range []struct {
		host, local string
		status      int
	}{
		{"shop.example.com:6666", "127.0.0.1:8080", http.StatusMisdirectedRequest}, // a port nobody listens on here
		{"", "", http.StatusBadRequest},
		{"shop.example.com:", "", http.StatusBadRequest},
		{"shop.example.com:0", "", http.StatusBadRequest},
		{"shop.example.com:99999", "", http.StatusBadRequest},
		{"shop_example.com", "", http.StatusBadRequest},
		{"shop.example.com/x", "", http.StatusBadRequest},
		{"shop.example.com@evil", "", http.StatusBadRequest},
		{"[::1", "", http.StatusBadRequest},
	} {
		h = newTestHandler(t, nil)
		assert.Equal(t, c.status, pay(h, c.host, []string{"shop.example.com"}, c.local).Code, "%q", c.host)
	}
}

// A matcher on alipay scopes its endpoints, never the stripping; an
// endpoint's path outside the matcher is refused rather than passed on.
func TestMatcherScopesEndpointsOnly(t *testing.T) {
	h := newTestHandler(t, func(h *Handler) {
		h.Prefix = "/shop/alipay"
		h.MatcherSetsRaw = caddyhttp.RawMatcherSets{{"path": json.RawMessage(`["/shop/*"]`)}}
	})
	forged := func(r *http.Request) *http.Request {
		r.Header.Set("X-Alipay-Token", "forged")
		r.Header["X_Alipay_Token"] = []string{"forged"}
		return r
	}
	next := &upstream{status: 200}
	serve(t, h, next, forged(httptest.NewRequest("GET", "http://shop.example.com/blog", nil)))
	require.Equal(t, 1, next.calls)
	assert.Empty(t, next.req.Header.Get("X-Alipay-Token"))
	assert.NotContains(t, next.req.Header, "X_Alipay_Token")

	next = &upstream{status: 200}
	body := testvec.Load(t).Notify.Cases[0].PostBody
	w := serve(t, h, next, forged(requestTo("POST", "/shop/alipay/notify", "", body)))
	assert.Equal(t, "success", w.Body.String(), "matched: served")
	w = serve(t, h, next, forged(requestTo("POST", "/SHOP/ALIPAY/notify", "", body)))
	assert.Equal(t, "success", w.Body.String(), "matched: Caddy's path matcher ignores case too")
	w = serve(t, h, next, forged(requestTo("POST", "/index.php/shop/alipay/notify", "", body)))
	assert.Equal(t, 404, w.Code, "not matched: refused, not passed on")
	assert.Equal(t, 2, next.calls)
}

// A shop that sends a status and part of a body, then resets: Alipay
// hears fail, and the log says why.
func TestUpstreamBreaksOff(t *testing.T) {
	breakOff := caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		w.WriteHeader(200)
		_, _ = io.WriteString(w, "partial")
		panic(http.ErrAbortHandler) // as reverse_proxy does
	})
	h := newTestHandler(t, nil)
	logs := observe(h)
	vec := testvec.Load(t)
	w := serve(t, h, breakOff, notifyRequest(vec.Notify.Cases[0].PostBody))
	assert.Equal(t, http.StatusBadGateway, w.Code)
	assert.Equal(t, "fail", w.Body.String())
	assert.Equal(t, outcomeUpstreamFailed, lastEvent(t, logs)["outcome"])

	// A return: the browser's connection is aborted as reverse_proxy would,
	// and the log says what happened.
	fixClock(t, tokenNow)
	u := strings.SplitN(vec.Return.RedirectURL, "?", 2)[1]
	assert.PanicsWithValue(t, http.ErrAbortHandler, func() {
		_ = h.ServeHTTP(httptest.NewRecorder(), onSite(h, httptest.NewRequest("GET", "http://shop.example.com/alipay/return?"+u, nil), "shop.example.com"), breakOff)
	})
	assert.Equal(t, outcomeUpstreamFailed, lastEvent(t, logs)["outcome"])

	// The shop down, or answering 5xx, on a return.
	down := &upstream{err: caddyhttp.Error(502, errors.New("dial tcp: connection refused"))}
	r := httptest.NewRequest("GET", "http://shop.example.com/alipay/return?"+u, nil)
	assert.Error(t, h.ServeHTTP(httptest.NewRecorder(), onSite(h, r, "shop.example.com"), down))
	ev := lastEvent(t, logs)
	assert.Equal(t, outcomeUpstreamFailed, ev["outcome"])
	assert.Contains(t, ev["reason"], "connection refused")
	w = serve(t, h, &upstream{status: 503}, httptest.NewRequest("GET", "http://shop.example.com/alipay/return?"+u, nil))
	assert.Equal(t, 503, w.Code)
	assert.Equal(t, outcomeUpstreamFailed, lastEvent(t, logs)["outcome"])
	assert.EqualValues(t, 503, lastEvent(t, logs)["upstream_status"])
	w = serve(t, h, &upstream{status: 200}, httptest.NewRequest("GET", "http://shop.example.com/alipay/return?"+u, nil))
	assert.Equal(t, outcomeOK, lastEvent(t, logs)["outcome"])
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

// The Authorization scheme's name is case-insensitive.
func TestAPIBearerScheme(t *testing.T) {
	h, g := newAPIWorld(t, nil)
	g.setAnswer(func(method string, biz map[string]any) string { return protocoltest.SignedBody(t, method, queryValue) })
	tok := bearer(t, time.Minute)
	for header, status := range map[string]int{
		"Bearer " + tok:         200,
		"bearer " + tok:         200,
		"BEARER  " + tok:        200,
		"Basic " + tok:          401,
		"Bearer":                401,
		"Bearer ":               401,
		tok:                     401,
		"Bearer" + tok:          401,
		"Bearer x " + tok:       401,
		"Token " + tok:          401,
		"  bearer " + tok + " ": 200,
	} {
		r := apiRequest("POST", "/alipay/api/alipay.trade.query", "", `{"out_trade_no":"A1"}`)
		r.Header.Set("Authorization", header)
		assert.Equal(t, status, serve(t, h, &upstream{}, r).Code, "%q", header)
	}
}

// The shop's own callback views, on the forward paths, take nothing but
// the handler's forward: a forged notification straight to one, in any
// spelling, is refused and the shop never sees it.
func TestForwardPathsGuarded(t *testing.T) {
	h := newTestHandler(t, func(h *Handler) { h.ForwardNotify, h.ForwardReturn = "/cb/notify/", "/cb/return.php" })
	vec := testvec.Load(t)
	forged := strings.Replace(vec.Notify.Cases[0].PostBody, "trade_no=", "trade_no=FAKE", 1)
	for _, p := range []string{"/cb/notify/", "/cb/notify", "/CB/NOTIFY//", "/cb/./notify", "/cb/notify;x", "/cb/not\u0131fy",
		"/cb/\uff4eotify", "/index.php/cb/notify", "/cb/notify.php", "/cb%2Fnotify", "/cb/return.php", "/cb/return", "/cb/RETURN.PHP/x"} {
		for _, method := range []string{"POST", "GET"} {
			next := &upstream{status: 200}
			w := serve(t, h, next, requestTo(method, p, "trade_no=FAKE", forged))
			assert.Equal(t, 404, w.Code, "%s %q", method, p)
			assert.Zero(t, next.calls, "%s %q reached the shop", method, p)
		}
	}
	// The handler's own forward gets there.
	next := &upstream{status: 200}
	w := serve(t, h, next, notifyRequest(vec.Notify.Cases[0].PostBody))
	assert.Equal(t, "success", w.Body.String())
	require.Equal(t, 1, next.calls)
	assert.Equal(t, "/cb/notify/", next.req.URL.Path)
	// Other paths of the shop's still pass.
	next = &upstream{status: 200}
	serve(t, h, next, requestTo("GET", "/cb/orders", "", ""))
	assert.Equal(t, 1, next.calls)

	// A forward path that is another endpoint's is refused at load.
	for _, c := range []struct{ notify, ret string }{{"/alipay/return", ""}, {"", "/alipay/notify"}, {"/alipay/pay", ""}, {"/ALIPAY/api/x", ""}, {"/", ""}, {"//./", ""}} {
		_, err := provisionHandler(t, func(h *Handler) { h.ForwardNotify, h.ForwardReturn = c.notify, c.ret })
		assert.Error(t, err, "%+v", c)
	}
	_, err := provisionHandler(t, func(h *Handler) { h.ForwardNotify, h.ForwardReturn = "/alipay/notify", "/alipay/return" })
	assert.NoError(t, err, "the endpoints' own paths are the default")
}

// Unicode look-alikes of every endpoint are the endpoint, for notify,
// return, pay and the API.
func TestUnicodeLookAlikes(t *testing.T) {
	h := newTestHandler(t, nil)
	forged := strings.Replace(testvec.Load(t).Notify.Cases[0].PostBody, "total_amount=88.88", "total_amount=0.01", 1)
	for _, p := range unicodeLookAlikes {
		next := &upstream{status: 200}
		w := serve(t, h, next, requestTo("POST", p, "", forged))
		assert.Equal(t, 400, w.Code, "%q", p)
		assert.Equal(t, "fail", w.Body.String(), "%q", p)
		assert.Zero(t, next.calls, "%q reached the shop", p)
	}
	for _, c := range []struct {
		path   string
		status int
	}{
		{"/al\u0131pay/return", 400}, {"/alipay/\uff52eturn", 400}, {"/AL\u0130PAY/RETURN", 400},
		{"/al\u0131pay/pay", 403}, {"/alipay/\uff50ay", 403}, {"/alipay/\uff30\uff21\uff39", 403},
		{"/al\u0131pay/api/alipay.trade.query", 401}, {"/alipay/ap\u0131/alipay.trade.query", 401},
		{"/alipay/api/al\u0131pay.trade.query", 401}, {"/alipay/api/\uff41lipay.trade.query", 401},
	} {
		method := "GET"
		if strings.Contains(c.path, "api") || strings.Contains(strings.ToLower(c.path), "ap\u0131") {
			method = "POST"
		}
		next := &upstream{status: 200}
		w := serve(t, h, next, requestTo(method, c.path, "token=forged&out_trade_no=X&sign=AAAA", `{}`))
		assert.Equal(t, c.status, w.Code, "%q", c.path)
		assert.Zero(t, next.calls, "%q reached the shop", c.path)
	}
}

// X-Original-URL and X-Rewrite-URL route some shops (IIS's URL Rewrite,
// PHP frameworks that read them): a request whose header names an
// endpoint is one for that endpoint.
func TestRewriteHeaders(t *testing.T) {
	h := newTestHandler(t, nil)
	vec := testvec.Load(t)
	forged := strings.Replace(vec.Notify.Cases[0].PostBody, "total_amount=88.88", "total_amount=0.01", 1)
	for _, name := range []string{"X-Original-URL", "X-Rewrite-URL", "x-original-url"} {
		for _, v := range []string{"/alipay/notify", "/ALIPAY/NOTIFY?x=1", "/alipay/not%C4%B1fy", "/index.php/alipay/notify.php",
			"http://shop.example.com/alipay/notify", "/alipay/%6Eotify#x"} {
			next := &upstream{status: 200}
			r := requestTo("POST", "/index.php", "", forged)
			r.Header.Set(name, v)
			w := serve(t, h, next, r)
			assert.Equal(t, 400, w.Code, "%s: %q", name, v)
			assert.Zero(t, next.calls, "%s: %q reached the shop", name, v)
		}
	}
	// A second value, after one that names nothing, counts too.
	r := requestTo("POST", "/index.php", "", forged)
	r.Header["X-Original-Url"] = []string{"/blog", "/alipay/notify"}
	next := &upstream{status: 200}
	assert.Equal(t, 400, serve(t, h, next, r).Code)
	assert.Zero(t, next.calls)

	// A genuine notification so addressed is served, and goes on for the
	// endpoint's path, without the header.
	r = requestTo("POST", "/index.php", "", vec.Notify.Cases[0].PostBody)
	r.Header.Set("X-Original-URL", "/alipay/notify")
	r.Header.Set("X-Rewrite-URL", "/somewhere/else")
	w := serve(t, h, next, r)
	assert.Equal(t, "success", w.Body.String())
	require.Equal(t, 1, next.calls)
	assert.Equal(t, "/alipay/notify", next.req.URL.Path)
	assert.Empty(t, next.req.Header.Values("X-Original-URL"))
	assert.Empty(t, next.req.Header.Values("X-Rewrite-URL"))

	// Naming a forward path is refused like the path itself.
	hf := newTestHandler(t, func(h *Handler) { h.ForwardNotify = "/cb/notify" })
	r = requestTo("POST", "/", "", forged)
	r.Header.Set("X-Rewrite-URL", "/cb/NOTIFY")
	next = &upstream{status: 200}
	assert.Equal(t, 404, serve(t, hf, next, r).Code)
	assert.Zero(t, next.calls)

	// Naming anything else passes on, header and all.
	r = requestTo("GET", "/", "", "")
	r.Header.Set("X-Original-URL", "/products/42")
	next = &upstream{status: 200}
	serve(t, h, next, r)
	require.Equal(t, 1, next.calls)
	assert.Equal(t, "/products/42", next.req.Header.Get("X-Original-URL"))
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

// A refused callback's fields are logged as unverified, never under the
// names of a verified one's.
func TestRefusedFieldsLoggedAsUnverified(t *testing.T) {
	h := newTestHandler(t, nil)
	logs := observe(h)
	forged := strings.Replace(testvec.Load(t).Notify.Cases[0].PostBody, "total_amount=88.88", "total_amount=0.01", 1)
	w := serve(t, h, &upstream{status: 200}, notifyRequest(forged))
	require.Equal(t, 400, w.Code)
	ev := lastEvent(t, logs)
	assert.Equal(t, outcomeRefused, ev["outcome"])
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
