package alipay

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/caddy-alipay/caddy-alipay/internal/testvec"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// lookAlikes are spellings of /alipay/notify that some web framework or
// server routes to the same view, as Go's server hands them over
// (r.URL.Path: decoded once).
var lookAlikes = []string{
	"/alipay/notify",
	"/alipay/notify/",
	"/alipay/notify//",
	"/ALIPAY/notify",
	"/Alipay/NOTIFY",
	"//alipay/notify",
	"/alipay//notify",
	"/alipay/./notify",
	"/alipay/x/../notify",
	"/x/../alipay/notify",
	"/../alipay/notify",
	"/alipay/notify/.",
	"/alipay/notify;x",
	"/alipay;jsessionid=1/notify",
	"/alipay/notify;",
	"/alipay/notify.",
	"/alipay/notify..",
	"/alipay/notify. . ",
	"/alipay/notify ",
	"/alipay/ notify",
	"/alipay/notify\t",
	"/alipay/notify\n",
	"/alipay/notify\x00",
	"/alipay/notify\x00.html",
	"/alipay/notify\u00a0",
	"/alipay/notify\u200b",
	`\alipay\notify`,
	`/alipay\notify`,
	"/alipay/%6Eotify",     // decoded twice
	"/alipay%2Fnotify",     // an escaped slash, decoded again
	"/alipay/%25256Eotify", // thrice
	"/alipay/%2e/notify",   // an escaped dot segment
	"/alipay/notify%2F",    // escaped trailing slash
	"/alipay/notify%00",    // escaped NUL
	"/alipay/notify%20",    // escaped space
	"/alipay/notify.json",  // Rails' format suffix
	"/alipay/notify.php",   // the shop's old script
	"/alipay/notify.php/x", // and its PATH_INFO
	"/index.php/alipay/notify",
	"/INDEX.PHP/alipay/notify/",
	"/shop/app.php/alipay/notify",
}

// unicodeLookAlikes are spellings of /alipay/notify that are the same
// after NFKC and full case folding with both Turkish i's read as i: what
// Java's equalsIgnoreCase, Python's and JavaScript's upper(), and
// Windows' best-fit mapping of fullwidth letters take for it.
var unicodeLookAlikes = []string{
	"/alipay/not\u0131fy", // ı, dotless: 'notıfy'.upper() == 'NOTIFY'
	"/alipay/not\u0130fy", // İ, dotted: Java's toLowerCase('İ') is 'i'
	"/al\u0131pay/notify", // in the prefix
	"/\u0130\u0130/../al\u0130pay/not\u0131fy",
	"/alipay/\uff4eotify",                          // fullwidth ｎ
	"/alipay/\uff2e\uff2f\uff34\uff29\uff26\uff39", // fullwidth ＮＯＴＩＦＹ
	"/\uff41lipay/notify",                          // fullwidth ａ in the prefix
	"/alipay\uff0fnotify",                          // fullwidth solidus
	"/alipay\uff3cnotify",                          // fullwidth reverse solidus
	"/alipay/notify\uff0ejson",                     // fullwidth full stop
	"/alipay/\uff0e/notify",                        // a fullwidth dot segment
	"/alipay/x/\uff0e\uff0e/notify",                // and two
	"/alipay/notify\uff1bx",                        // fullwidth semicolon: NFKC gives ;
	"/ALIPAY/NOT\u0130FY",
	"/alipay/\u1d3a\u1d3c\u1d40\u1d35\u1da0\u02b8", // modifier letters ᴺᴼᵀᴵᶠʸ: NFKC gives NOTIFy
	"/alipay/\u24dd\u24de\u24e3\u24d8\u24d5\u24e8", // circled ⓝⓞⓣⓘⓕⓨ
	"/alipay/\U0001d427\U0001d428\U0001d42d\U0001d422\U0001d41f\U0001d432", // mathematical bold
	"/alipay/not%C4%B1fy",     // ı as the client escaped it, decoded again
	"/alipay/not%C4%B0fy",     // İ
	"/al%C4%B1pay/notify",     // in the prefix
	"/alipay/not%EF%BD%89fy",  // fullwidth ｉ, escaped
	"/alipay/not%25C4%25B1fy", // and escaped twice
	"/alipay/notify\u200b",    // a zero-width space after it
}

func TestRouterLookAlikes(t *testing.T) {
	rt := newRouter("/alipay")
	for _, p := range append(append([]string{}, lookAlikes...), unicodeLookAlikes...) {
		ep, _ := rt.match(p)
		assert.Equal(t, endpointNotify, ep, "%q", p)
	}
	// The long s (ſ) and the Kelvin sign (K) fold to s and k.
	rt = newRouter("/sk")
	for _, p := range []string{"/\u017fk/notify", "/s\u212a/notify", "/\u017f\u212a/NOT\u0130FY"} {
		ep, _ := rt.match(p)
		assert.Equal(t, endpointNotify, ep, "%q", p)
	}
	// Other letters stay themselves.
	for _, p := range []string{"/alipay/notіfy" /* Cyrillic і */, "/alipay/n\u00f6tify", "/alipay/not\u00ecfy", "/alipay/notfy"} {
		ep, _ := newRouter("/alipay").match(p)
		assert.Equal(t, notAnEndpoint, ep, "%q", p)
	}
}

// A forward path is guarded in every spelling that the endpoints are.
func TestRouterForwardPaths(t *testing.T) {
	rt := newRouter("/alipay", "/cb/notify/", "/payment/notify_url.php")
	for _, p := range []string{
		"/cb/notify", "/cb/notify/", "/CB//Notify", "/cb/./notify", "/cb/notify;x", "/cb/notify.", "/cb/notify.json",
		"/cb/not\u0131fy", "/cb/\uff4eotify", "/cb%2Fnotify", "/index.php/cb/notify", "/x/../cb/notify",
		"/payment/notify_url.php", "/payment/notify_url", "/PAYMENT/NOTIFY_URL.PHP", "/payment/notify_url.php/x",
		"/payment/notify_url.php%00", "/app.php/payment/notify_url.php",
	} {
		ep, _ := rt.match(p)
		assert.Equal(t, endpointForward, ep, "%q", p)
	}
	for _, p := range []string{"/cb", "/cb/notify/extra", "/cb/notifyx", "/payment/notify", "/payment", "/notify_url.php", "/"} {
		ep, _ := rt.match(p)
		assert.Equal(t, notAnEndpoint, ep, "%q", p)
	}
	// The endpoints themselves come first.
	ep, _ := newRouter("/alipay", "/alipay/notify").match("/alipay/notify")
	assert.Equal(t, endpointNotify, ep)
}

func TestRouter(t *testing.T) {
	rt := newRouter("/pay/ali")
	for _, c := range []struct {
		path   string
		ep     endpoint
		method string
	}{
		{"/pay/ali/pay", endpointPay, ""},
		{"/pay/ali/return", endpointReturn, ""},
		{"/PAY/Ali/Return/", endpointReturn, ""},
		{"/pay/ali/notify", endpointNotify, ""},
		{"/pay/ali/api/alipay.trade.query", endpointAPI, "alipay.trade.query"},
		{"/pay/ali/API/alipay.trade.query;x.", endpointAPI, "alipay.trade.query"},
		{"/pay/ali/api/", endpointAPI, ""},
		{"/pay/ali/api/a/b", endpointAPI, ""},
		{"/pay/ali//api//alipay.trade.refund/", endpointAPI, "alipay.trade.refund"},

		{"/", notAnEndpoint, ""},
		{"", notAnEndpoint, ""},
		{"/pay/ali", notAnEndpoint, ""},
		{"/pay/ali/", notAnEndpoint, ""},
		{"/pay/ali/orders", notAnEndpoint, ""},
		{"/pay/ali/notify/extra", notAnEndpoint, ""},
		{"/pay/ali/notifyx", notAnEndpoint, ""},
		{"/pay/notify", notAnEndpoint, ""},
		{"/alipay/notify", notAnEndpoint, ""},
		{"/pay/ali/../notify", notAnEndpoint, ""},
		{"/pay/alix/notify", notAnEndpoint, ""},
		{"/products/42", notAnEndpoint, ""},
		{"/index.php", notAnEndpoint, ""},
		{"/50%off/notify", notAnEndpoint, ""},
		{"/x/y/z/a/b/c/d/e/f/g/h/i/j/k/l/m/n/o/p/q/r", notAnEndpoint, ""},
		// Any depth: an endpoint below many segments, a script name deep
		// down.
		{strings.Repeat("/x", 40) + strings.Repeat("/..", 40) + "/pay/ali/notify", endpointNotify, ""},
		{strings.Repeat("/x", 40) + "/index.php/pay/ali/notify", endpointNotify, ""},
		{strings.Repeat("/x", 40) + "/pay/ali/notify", notAnEndpoint, ""},
		{"/x/y/z/a/b/c/d/e/f/g/h/i/j/k/l/m/n/o/p/q/r/../../../../../../../../../../../../../../../../../../../../../../pay/ali/notify", endpointNotify, ""},
	} {
		ep, method := rt.match(c.path)
		assert.Equal(t, c.ep, ep, "%q", c.path)
		assert.Equal(t, c.method, method, "%q", c.path)
	}
}

func TestRouterAllocations(t *testing.T) {
	rt := newRouter("/alipay")
	for _, p := range []string{"/products/42", "/alipay/notify", "/ALIPAY//notify;x.", "/index.php/alipay/pay", "/a/b/c/d/e/f/g/h/i/j/k/l/m/n/o/p"} {
		assert.Zero(t, testing.AllocsPerRun(100, func() { rt.match(p) }), p)
	}
}

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

// Look-alike spellings of the endpoints, over real HTTP through Caddy:
// a forged callback on any of them is refused, and the shop sees none.
func TestCaddyLookAlikePaths(t *testing.T) {
	s, upstream := startShop(t)
	tester := loadSidecar(t, standardSettings(), upstream, "")
	forged := strings.Replace(testvec.Load(t).Notify.Cases[0].PostBody, "total_amount=88.88", "total_amount=0.01", 1)
	for _, p := range append(append([]string{}, lookAlikes...), unicodeLookAlikes...) {
		if !strings.HasPrefix(p, "/") {
			p = "/" + p
		}
		target := caddyURL + (&url.URL{Path: p}).EscapedPath()
		req, err := http.NewRequest("POST", target, strings.NewReader(forged))
		require.NoError(t, err)
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		resp := tester.AssertResponseCode(req, 400)
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		assert.Equal(t, "fail", string(body), p)
		if strings.Contains(p, "notify") {
			ret := caddyURL + (&url.URL{Path: strings.Replace(p, "notify", "return", 1)}).EscapedPath()
			getStatus(t, tester, ret+"?out_trade_no=X&total_amount=0.01&sign=AAAA", 400)
		}
		assert.Empty(t, s.take(), "%q reached the shop", p)
	}
	// The shop's own notify view (forward_notify /shop/notify) takes only
	// the sidecar's forward; X-Original-URL naming an endpoint is that
	// endpoint.
	for _, p := range []string{"/shop/notify", "/Shop/Not%C4%B1fy", "/index.php/shop/notify/"} {
		req, err := http.NewRequest("POST", caddyURL+p, strings.NewReader(forged))
		require.NoError(t, err)
		tester.AssertResponseCode(req, 404)
		assert.Empty(t, s.take(), "%q reached the shop", p)
	}
	req, err := http.NewRequest("POST", caddyURL+"/index.php", strings.NewReader(forged))
	require.NoError(t, err)
	req.Header.Set("X-Original-URL", "/alipay/not%C4%B1fy")
	tester.AssertResponse(req, 400, "fail")
	assert.Empty(t, s.take())
	// Spellings that Go's client would not send as they are.
	for _, raw := range []string{"/alipay/./notify", "//alipay/notify", "/alipay/%2E/notify", "/ALIPAY/NOTIFY%3Bx", "/alipay/notify%252F"} {
		conn, err := net.Dial("tcp", caddyAddr)
		require.NoError(t, err)
		fmt.Fprintf(conn, "POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s", raw, caddyAddr, len(forged), forged)
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		require.NoError(t, err, raw)
		body, _ := io.ReadAll(resp.Body)
		conn.Close()
		assert.Equal(t, 400, resp.StatusCode, raw)
		assert.Equal(t, "fail", string(body), raw)
		assert.Empty(t, s.take(), "%q reached the shop", raw)
	}
}
