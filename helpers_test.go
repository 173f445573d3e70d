package alipay

// The unit tests' helpers, shared by this package's tests. The harness of
// the integration tests (a real Caddy) is in caddy_test.go.

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/caddy-alipay/caddy-alipay/internal/protocol"
	"github.com/caddy-alipay/caddy-alipay/internal/testvec"
	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

// The ids and the secret of testdata/vectors.json.
const (
	testAppID    = testvec.AppID
	testSellerID = testvec.SellerID
	testSecret   = testvec.Secret
)

// tokenNow is a time at which the vectors' tokens are valid.
var tokenNow = time.Unix(1716182055, 0)

// newTestHandler returns a provisioned and validated handler with the
// vectors' keys; edit changes the config first.
func newTestHandler(t testing.TB, edit func(*Handler)) *Handler {
	t.Helper()
	h, err := provisionHandler(t, edit)
	require.NoError(t, err)
	return h
}

func provisionHandler(t testing.TB, edit func(*Handler)) (*Handler, error) {
	t.Helper()
	h := &Handler{
		AppID:           testAppID,
		AppPrivateKey:   testvec.Key("app_private_key_pkcs1.pem"),
		AlipayPublicKey: testvec.Key("alipay_public_key.pem"),
		Secret:          testSecret,
	}
	if edit != nil {
		edit(h)
	}
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	t.Cleanup(cancel)
	if err := h.Provision(ctx); err != nil {
		return nil, err
	}
	return h, h.Validate()
}

// fixClock sets the package clock to t for the test.
func fixClock(t testing.TB, at time.Time) {
	t.Helper()
	old := now
	now = func() time.Time { return at }
	t.Cleanup(func() { now = old })
}

// payToken is what a shop signs.
func payToken(t testing.TB, claims map[string]any) string {
	t.Helper()
	k, err := protocol.NewTokenKey(testSecret)
	require.NoError(t, err)
	if _, ok := claims["exp"]; !ok {
		claims["exp"] = now().Add(10 * time.Minute).Unix()
	}
	tok, err := k.Sign(claims)
	require.NoError(t, err)
	return tok
}

// upstream is a fake next handler that remembers what reached it. It
// answers a notification (a POST with a token) success, as a shop
// acknowledges one, and anything else "upstream says hi".
type upstream struct {
	calls  int
	req    *http.Request
	body   string
	status int    // 0: write nothing
	err    error  // returned instead of answering
	answer string // instead of the answer above
}

func (u *upstream) ServeHTTP(w http.ResponseWriter, r *http.Request) error {
	u.calls++
	u.req = r
	b, _ := io.ReadAll(r.Body)
	u.body = string(b)
	if u.err != nil {
		return u.err
	}
	if u.status != 0 {
		w.Header().Set("X-Upstream", "1")
		w.WriteHeader(u.status)
		answer := u.answer
		if answer == "" {
			answer = "upstream says hi"
			if r.Method == http.MethodPost && r.Header.Get(TokenHeader) != "" {
				answer = "success"
			}
		}
		_, _ = io.WriteString(w, answer)
	}
	return nil
}

// serve runs h for r; a sidecar as on a site whose host matcher admits
// r's host name.
func serve(t testing.TB, h caddyhttp.MiddlewareHandler, next caddyhttp.Handler, r *http.Request) *httptest.ResponseRecorder {
	t.Helper()
	if sidecar, ok := h.(*Handler); ok {
		r = onSite(sidecar, r, r.Host)
	}
	w := httptest.NewRecorder()
	require.NoError(t, h.ServeHTTP(w, r, next))
	return w
}

// onSite puts into r's context a Caddy server whose one route matches
// hosts (none: any host) and runs h, as Caddy does for a site block.
func onSite(h *Handler, r *http.Request, hosts ...string) *http.Request {
	route := caddyhttp.Route{Handlers: []caddyhttp.MiddlewareHandler{h}}
	if len(hosts) > 0 {
		mh := caddyhttp.MatchHost(hosts)
		route.MatcherSets = caddyhttp.MatcherSets{{&mh}}
	}
	srv := &caddyhttp.Server{Routes: caddyhttp.RouteList{route}}
	ctx := context.WithValue(r.Context(), caddyhttp.ServerCtxKey, srv)
	return r.WithContext(context.WithValue(ctx, caddy.ReplacerCtxKey, caddy.NewReplacer()))
}

func notifyRequest(body string) *http.Request {
	r := httptest.NewRequest("POST", "http://shop.example.com/alipay/notify", strings.NewReader(body))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded; charset=utf-8")
	return r
}

// observe makes h log into the returned recorder.
func observe(h *Handler) *observer.ObservedLogs {
	core, logs := observer.New(zapcore.DebugLevel)
	h.logger = zap.New(core)
	return logs
}

// lastEvent is the fields of the last event line in logs.
func lastEvent(t *testing.T, logs *observer.ObservedLogs) map[string]any {
	t.Helper()
	all := logs.All()
	require.NotEmpty(t, all)
	return all[len(all)-1].ContextMap()
}

// outcomeOf is an event line's outcome.
func outcomeOf(fields map[string]any) outcome {
	s, _ := fields["outcome"].(string)
	return outcome(s)
}

// requestTo is a request whose path is set as Go's server hands it to
// handlers (decoded once), whatever characters it holds.
func requestTo(method, path, query, body string) *http.Request {
	r := httptest.NewRequest(method, "http://shop.example.com/", strings.NewReader(body))
	r.URL.Path, r.URL.RawQuery = path, query
	if body != "" {
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	return r
}

// certPath is the path of a certificate in testdata/certs.
func certPath(name string) string { return filepath.Join("testdata", "certs", name) }

// certMode puts h in certificate mode, with the certificates of
// testdata/certs in place of alipay_public_key.
func certMode(h *Handler) {
	h.AlipayPublicKey = ""
	h.AppCert = certPath("appCertPublicKey_2021000000000001.crt")
	h.AlipayCert = certPath("alipayCertPublicKey_RSA2.crt")
	h.AlipayRootCert = certPath("alipayRootCert.crt")
}
