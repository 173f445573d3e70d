package alipay

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

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

func TestPrefix(t *testing.T) {
	h := newTestHandler(t, func(h *Handler) { h.Prefix = "/pay/ali/" })
	tok := payToken(t, map[string]any{"out_trade_no": "A1", "total_amount": "1", "subject": "s"})
	next := &upstream{status: 200}
	w := serve(t, h, next, httptest.NewRequest("GET", "http://shop.example.com/pay/ali/pay?token="+tok, nil))
	assert.Equal(t, 302, w.Code)
	loc, err := url.Parse(w.Header().Get("Location"))
	require.NoError(t, err)
	assert.Equal(t, "http://shop.example.com/pay/ali/notify", loc.Query().Get("notify_url"))
	w = serve(t, h, next, httptest.NewRequest("GET", "http://shop.example.com/alipay/pay?token="+tok, nil))
	assert.Equal(t, 200, w.Code, "the default prefix is not served")
	assert.Equal(t, 1, next.calls)
}

// A site that answers any host name: the merchant key signs no callback
// URL on a host that a client chose.
func TestCaddyCatchAllSite(t *testing.T) {
	s, upstream := startShop(t)
	tester := loadCaddyfile(t, "", `
	http://:`+caddyPort+` {
		alipay {`+sidecarKeys()+`
			gateway http://127.0.0.1:9/gateway.do
		}
		`+upstream+`
	}`)
	tok := payToken(t, map[string]any{"out_trade_no": "C1", "total_amount": "1.00", "subject": "s"})
	before := eventCount(eventPay, outcomeInvalid)
	for _, host := range []string{"attacker.example", caddyAddr, "127.0.0.1:" + caddyPort} {
		req, err := http.NewRequest("GET", "http://127.0.0.1:"+caddyPort+"/alipay/pay?token="+tok, nil)
		require.NoError(t, err)
		req.Host = host
		resp := tester.AssertResponseCode(req, http.StatusMisdirectedRequest)
		assert.Empty(t, resp.Header.Get("Location"))
		resp.Body.Close()
	}
	assert.Equal(t, before+3, eventCount(eventPay, outcomeInvalid))
	assert.Empty(t, s.take())

	// With notify_url and return_url it takes payments on any host.
	tester = loadCaddyfile(t, "", `
	http://:`+caddyPort+` {
		alipay {`+sidecarKeys()+`
			gateway http://127.0.0.1:9/gateway.do
			notify_url https://shop.example.com/alipay/notify
			return_url https://shop.example.com/alipay/return
		}
		`+upstream+`
	}`)
	req, err := http.NewRequest("GET", "http://127.0.0.1:"+caddyPort+"/alipay/pay?token="+tok, nil)
	require.NoError(t, err)
	req.Host = "attacker.example"
	resp := tester.AssertResponseCode(req, 302)
	loc := must(url.Parse(resp.Header.Get("Location")))
	assert.Equal(t, "https://shop.example.com/alipay/notify", loc.Query().Get("notify_url"))
	assert.Equal(t, "https://shop.example.com/alipay/return", loc.Query().Get("return_url"))
}
