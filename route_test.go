package alipay

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
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
