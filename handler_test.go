package alipay

import (
	"encoding/json"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/caddy-alipay/caddy-alipay/internal/testvec"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Strip, then verify, then stamp: every spelling that PHP or CGI would
// read as HTTP_X_ALIPAY_* is gone on every path the handler sees.
func TestStripAlipayHeaders(t *testing.T) {
	h := newTestHandler(t, nil)
	next := &upstream{status: 204}
	r := httptest.NewRequest("GET", "http://shop.example.com/products?x=1", nil)
	names := []string{"X-Alipay-Token", "X_Alipay_Token", "X.Alipay.Token", "x-alipay-params", "X-ALIPAY-EVENT", "X_ALIPAY-Whatever"}
	// Every other character that a header name may hold: CGI gateways
	// (lighttpd's, Apache 2.2's) turn each into _.
	for _, sep := range "~!#$%&'*+^`|" {
		names = append(names, "X"+string(sep)+"Alipay"+string(sep)+"Token")
	}
	for _, name := range names {
		r.Header[name] = []string{"forged"}
	}
	r.Header.Set("X-Alipayish", "kept")
	r.Header.Set("X-Request-Id", "kept")
	w := serve(t, h, next, r)
	assert.Equal(t, 204, w.Code)
	require.Equal(t, 1, next.calls)
	assert.Equal(t, http.Header{"X-Alipayish": {"kept"}, "X-Request-Id": {"kept"}}, next.req.Header)
	assert.Equal(t, "/products", next.req.URL.Path)
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

// Trailers reach reverse_proxy's upstream too, so the forged spellings go
// from them as well: from those there when the handler runs, and from
// those that arrive at the end of a chunked body, after the handler
// stripped the headers. A verified notification goes on with none at all.
func TestStripAlipayTrailers(t *testing.T) {
	h := newTestHandler(t, nil)
	var (
		calls int
		seen  http.Header // the trailers once the body was read
	)
	next := caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		calls++
		_, _ = io.ReadAll(r.Body)
		seen = r.Trailer.Clone()
		_, _ = io.WriteString(w, "success")
		return nil
	})
	there := httptest.NewRequest("POST", "http://shop.example.com/upload", strings.NewReader("x"))
	there.Trailer = http.Header{"X-Alipay-Token": {"forged"}, "X_alipay_event": {"forged"}, "X-Checksum": {"kept"}}
	arriving := http.Header{"X-Alipay-Token": {"forged"}, "X_alipay_params": {"forged"}, "X-Checksum": {"kept"}}
	body := testvec.Load(t).Notify.Cases[0].PostBody
	for _, c := range []struct {
		name   string
		r      *http.Request
		want   http.Header
		answer string // "": not checked
	}{
		{"there from the start", there, http.Header{"X-Checksum": {"kept"}}, ""},
		{"arriving at the end", chunkedRequest("POST", "http://shop.example.com/upload", "x=1", arriving), http.Header{"X-Checksum": {"kept"}}, ""},
		{"a verified notification", chunkedRequest("POST", "http://shop.example.com/alipay/notify", body, arriving), nil, "success"},
	} {
		calls, seen = 0, http.Header{"unset": nil}
		w := serve(t, h, next, c.r)
		require.Equal(t, 1, calls, c.name)
		assert.Equal(t, c.want, seen, c.name)
		if c.answer != "" {
			assert.Equal(t, c.answer, w.Body.String(), c.name)
		}
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

// Forged X-Alipay-* headers, in the spellings that CGI and PHP read as
// HTTP_X_ALIPAY_*, never reach the shop through a real Caddy.
func TestCaddyForgedHeaders(t *testing.T) {
	s, upstream := startShop(t)
	tester := loadSidecar(t, standardSettings(), upstream, "")
	req, _ := http.NewRequest("GET", caddyURL+"/anything", nil)
	req.Header.Set("X-Alipay-Token", "forged")
	req.Header["X_Alipay_Token"] = []string{"forged"}
	req.Header["X.Alipay.Token"] = []string{"forged"}
	tester.AssertResponse(req, 200, "shop saw /anything")
	got := s.take()
	require.Len(t, got, 1)
	assert.Empty(t, got[0].alipayHeaders)
}

// A chunked request's trailers, declared or not, never bring a forged
// X-Alipay-* to the shop: not on a path of the shop's, not next to a
// verified notification's token.
func TestCaddyTrailers(t *testing.T) {
	s, upstream := startShop(t)
	loadSidecar(t, standardSettings(), upstream, "")
	const forgedTrailers = "X-Alipay-Token: forged\nX-Alipay-Event: forged\nX-Checksum: kept\n"
	resp, _ := rawRequest(t, "POST /upload HTTP/1.1\nHost: "+caddyAddr+"\nTransfer-Encoding: chunked\n"+
		"Trailer: X-Alipay-Token, X-Alipay-Event, X-Checksum\nConnection: close\n\n"+chunked("abc", forgedTrailers))
	assert.Equal(t, 200, resp.StatusCode)
	got := s.take()
	require.Len(t, got, 1)
	assert.Equal(t, "abc", got[0].body)
	assert.Empty(t, got[0].alipayHeaders)
	assert.Equal(t, "kept", got[0].trailer.Get("X-Checksum"), "trailers do reach the shop: the test could fail")

	// Not declared: net/http keeps them to itself.
	rawRequest(t, "POST /upload HTTP/1.1\nHost: "+caddyAddr+"\nTransfer-Encoding: chunked\nConnection: close\n\n"+chunked("abc", forgedTrailers))
	got = s.take()
	require.Len(t, got, 1)
	assert.Empty(t, got[0].alipayHeaders)

	body := testvec.Load(t).Notify.Cases[0].PostBody
	resp, answer := rawRequest(t, "POST /alipay/notify HTTP/1.1\nHost: "+caddyAddr+"\nContent-Type: application/x-www-form-urlencoded\n"+
		"Transfer-Encoding: chunked\nTrailer: X-Alipay-Token, X-Checksum\nConnection: close\n\n"+chunked(body, forgedTrailers))
	assert.Equal(t, 200, resp.StatusCode)
	assert.Equal(t, "success", answer)
	got = s.take()
	require.Len(t, got, 1)
	assert.Empty(t, got[0].tokenErr)
	assert.Equal(t, []string{"X-Alipay-Token"}, got[0].alipayHeaders, "the handler's own token only")
	assert.Empty(t, got[0].trailer)
}

// alipay with a matcher: the endpoints follow the matcher, the stripping
// of X-Alipay-* does not.
func TestCaddyMatcherOnHandler(t *testing.T) {
	s, upstream := startShop(t)
	tester := loadCaddyfile(t, "", `
	`+caddyURL+` {
		@shop path /shop/*
		alipay @shop {`+sidecarKeys()+`
			prefix /shop/alipay
		}
		`+upstream+`
	}`)
	req, _ := http.NewRequest("GET", caddyURL+"/blog", nil)
	req.Header.Set("X-Alipay-Token", "forged")
	tester.AssertResponse(req, 200, "shop saw /blog")
	got := s.take()
	require.Len(t, got, 1)
	assert.Empty(t, got[0].alipayHeaders)

	body := testvec.Load(t).Notify.Cases[0].PostBody
	req, _ = http.NewRequest("POST", caddyURL+"/shop/alipay/notify", strings.NewReader(body))
	tester.AssertResponse(req, 200, "success")
	require.Len(t, s.take(), 1)
	req, _ = http.NewRequest("POST", caddyURL+"/index.php/shop/alipay/notify", strings.NewReader(body))
	tester.AssertResponseCode(req, 404)
	assert.Empty(t, s.take(), "an endpoint's look-alike outside the matcher is refused, not passed on")
}

// reverse_proxy logs the headers it sends upstream at Debug, the
// handler's token included; the filter on the default logger that
// docs/security.md gives keeps it out.
func TestCaddyTokenInProxyLogs(t *testing.T) {
	body := testvec.Load(t).Notify.Cases[0].PostBody
	for _, c := range []struct {
		name, filter string
		leaks        bool
	}{
		{"debug, no filter", "format json", true},
		{"debug, the security guide's filter", "format filter {\n\t\t\t\trequest>headers>X-Alipay-Token delete\n\t\t\t}", false},
	} {
		t.Run(c.name, func(t *testing.T) {
			logFile := filepath.Join(t.TempDir(), "caddy.log")
			s, upstream := startShop(t)
			tester := loadCaddyfile(t, `
		log default {
			output file `+logFile+`
			level DEBUG
			`+c.filter+`
		}`, `
	`+caddyURL+` {
		alipay {`+sidecarKeys()+`
		}
		`+upstream+`
	}`)
			req, _ := http.NewRequest("POST", caddyURL+"/alipay/notify", strings.NewReader(body))
			tester.AssertResponse(req, 200, "success")
			got := s.take()
			require.Len(t, got, 1)
			token := got[0].token
			require.NotEmpty(t, token)
			require.Eventually(t, func() bool {
				logs, _ := os.ReadFile(logFile)
				return strings.Contains(string(logs), `"msg":"upstream roundtrip"`) && strings.Contains(string(logs), `"msg":"notify"`)
			}, 5*time.Second, 10*time.Millisecond, "reverse_proxy and the handler log at Debug")
			logs, err := os.ReadFile(logFile)
			require.NoError(t, err)
			assert.Equal(t, c.leaks, strings.Contains(string(logs), token), "the token in the log")
			for _, line := range strings.Split(string(logs), "\n") {
				if strings.Contains(line, `"logger":"http.handlers.alipay"`) {
					assert.NotContains(t, line, token, "the handler's own lines never carry it")
				}
			}
		})
	}
}
