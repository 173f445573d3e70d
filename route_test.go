package alipay

import (
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

func TestRouterLookAlikes(t *testing.T) {
	rt := newRouter("/alipay")
	for _, p := range lookAlikes {
		ep, _ := rt.match(p)
		assert.Equal(t, endpointNotify, ep, "%q", p)
	}
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
		{"/x/y/z/a/b/c/d/e/f/g/h/i/j/k/l/m/n/o/p/q/r/../../../../../../../../../../../../../../../../../../../../../../pay/ali/notify", endpointNotify, ""},
	} {
		ep, method := rt.match(c.path)
		assert.Equal(t, c.ep, ep, "%q", c.path)
		assert.Equal(t, c.method, method, "%q", c.path)
	}
}

func TestRouterAllocations(t *testing.T) {
	rt := newRouter("/alipay")
	for _, p := range []string{"/products/42", "/alipay/notify", "/ALIPAY//notify;x.", "/index.php/alipay/pay"} {
		assert.Zero(t, testing.AllocsPerRun(100, func() { rt.match(p) }), p)
	}
}
