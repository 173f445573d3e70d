package sandbox

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddy-alipay/caddy-alipay/internal/protocol"
	"github.com/caddy-alipay/caddy-alipay/internal/protocol/protocoltest"
	"github.com/caddy-alipay/caddy-alipay/internal/testvec"
	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/stretchr/testify/require"
)

// The tests play the merchant with the protocol package itself: the app's
// key signs pay requests and API calls, Alipay's public key verifies what
// the sandbox sends. The sidecar plays no part here.

// testAppID is the vectors' app, for which the tests sign.
const testAppID = testvec.AppID

// newTestSandbox provisions a sandbox with the vectors' keys; edit, if
// not nil, changes the config first. The sandbox lets go of its trade
// store when the test ends, which stops its retry loops; until then
// another sandbox of the same identity in the test shares its trades.
func newTestSandbox(t testing.TB, edit func(*Handler)) *Handler {
	t.Helper()
	s := &Handler{AppPublicKey: testvec.Key("app_public_key.pem"), AlipayPrivateKey: testvec.Key("alipay_private_key_pkcs1.pem")}
	if edit != nil {
		edit(s)
	}
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	t.Cleanup(cancel)
	require.NoError(t, s.Provision(ctx))
	t.Cleanup(func() { require.NoError(t, s.Cleanup()) })
	return s
}

// withRetry sets notify_retry.
func withRetry(waits ...time.Duration) func(*Handler) {
	return func(s *Handler) {
		for _, d := range waits {
			s.NotifyRetry = append(s.NotifyRetry, caddy.Duration(d))
		}
	}
}

// merchantAPI is the app as it speaks to the sandbox, with signType.
func merchantAPI(t testing.TB, signType string) *protocol.OpenAPI {
	return &protocol.OpenAPI{AppID: testAppID, Gateway: "http://sandbox.test/gateway.do",
		Signer:   protocoltest.Signer(t, "app_private_key_pkcs1.pem", signType),
		Verifier: protocoltest.Verifier(t, "alipay_public_key.pem", signType)}
}

// upstream is the next handler after the sandbox: it answers 404.
type upstream struct{}

func (upstream) ServeHTTP(w http.ResponseWriter, _ *http.Request) error {
	w.WriteHeader(http.StatusNotFound)
	return nil
}

// serve runs h for r as on a site whose host matcher admits r's host
// name, as Caddy does for a site block.
func serve(t testing.TB, h caddyhttp.MiddlewareHandler, r *http.Request) *httptest.ResponseRecorder {
	t.Helper()
	w := httptest.NewRecorder()
	require.NoError(t, h.ServeHTTP(w, onSite(h, r, r.Host), upstream{}))
	return w
}

// onSite puts into r's context a Caddy server whose one route matches
// hosts (none: any host) and runs h.
func onSite(h caddyhttp.MiddlewareHandler, r *http.Request, hosts ...string) *http.Request {
	route := caddyhttp.Route{Handlers: []caddyhttp.MiddlewareHandler{h}}
	if len(hosts) > 0 {
		mh := caddyhttp.MatchHost(hosts)
		route.MatcherSets = caddyhttp.MatcherSets{{&mh}}
	}
	srv := &caddyhttp.Server{Routes: caddyhttp.RouteList{route}}
	return r.WithContext(context.WithValue(r.Context(), caddyhttp.ServerCtxKey, srv))
}

// merchantShop is the shop's site on loopback: it verifies each
// notification as its merchant does (for the legacy protocol,
// notify_verify included), keeps what verified, and answers as it is
// told.
type merchantShop struct {
	mu       sync.Mutex
	merchant protocol.Protocol
	// batchVerify, if set, verifies a batch_refund_notify in its place
	// (legacyWorld.merchant sets it): it carries no seller, which the
	// protocol package's check of a trade notification requires.
	batchVerify func(ctx context.Context, body []byte) (map[string]string, error)
	status      int
	// statusFor, if set, answers in status's place, by the verified
	// parameters.
	statusFor    func(map[string]string) int
	notify       []map[string]string // the verified notifications' parameters
	contentTypes []string            // of every notification that came
	refused      []string            // why notifications did not verify
	arrived      chan struct{}
}

func (s *merchantShop) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/alipay/notify" {
		http.NotFound(w, r)
		return
	}
	body, _ := io.ReadAll(r.Body)
	s.mu.Lock()
	m, batchVerify := s.merchant, s.batchVerify
	s.mu.Unlock()
	var params map[string]string
	var err error
	if q, _ := url.ParseQuery(string(body)); batchVerify != nil && q.Get("notify_type") == "batch_refund_notify" {
		params, err = batchVerify(r.Context(), body)
	} else {
		var cb *protocol.Callback
		if cb, err = m.ParseCallback(string(body)); err == nil {
			err = m.VerifyCallback(r.Context(), cb, protocol.EventNotify)
		}
		if err == nil {
			params = cb.Params()
		}
	}
	s.mu.Lock()
	status := s.status
	s.contentTypes = append(s.contentTypes, r.Header.Get("Content-Type"))
	if err != nil {
		s.refused = append(s.refused, err.Error())
		status = http.StatusBadRequest
	} else {
		s.notify = append(s.notify, params)
		if s.statusFor != nil {
			status = s.statusFor(params)
		}
	}
	s.mu.Unlock()
	w.WriteHeader(status)
	if status == http.StatusOK {
		_, _ = io.WriteString(w, "success")
	} else {
		_, _ = io.WriteString(w, "fail")
	}
	s.arrived <- struct{}{}
}

func (s *merchantShop) setStatus(code int) {
	s.mu.Lock()
	s.status = code
	s.mu.Unlock()
}

func (s *merchantShop) setStatusFor(f func(map[string]string) int) {
	s.mu.Lock()
	s.statusFor = f
	s.mu.Unlock()
}

// notified is a copy of the verified notifications' parameters so far.
func (s *merchantShop) notified() []map[string]string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.notify)
}

// noArrival checks that no notification comes within d.
func (s *merchantShop) noArrival(t *testing.T, d time.Duration, why string) {
	t.Helper()
	select {
	case <-s.arrived:
		t.Fatal("a notification came: " + why)
	case <-time.After(d):
	}
}

func (s *merchantShop) waitNotify(t *testing.T) {
	t.Helper()
	select {
	case <-s.arrived:
	case <-time.After(10 * time.Second):
		t.Fatal("no notification reached the shop")
	}
}

// world is the sandbox and a merchant whose shop's site runs on
// loopback, so that the sandbox can post notifications to it.
type world struct {
	sandbox *Handler
	api     *protocol.OpenAPI
	shop    *merchantShop
	site    *httptest.Server
}

func newWorld(t *testing.T, edit func(*Handler)) *world {
	return worldOf(t, newTestSandbox(t, edit))
}

// worldOf is the world around a sandbox already provisioned.
func worldOf(t *testing.T, sb *Handler) *world {
	api := merchantAPI(t, protocol.SignTypeRSA2)
	w := &world{sandbox: sb, api: api,
		shop: &merchantShop{merchant: api, status: http.StatusOK, arrived: make(chan struct{}, 16)}}
	w.site = httptest.NewServer(w.shop)
	t.Cleanup(w.site.Close)
	return w
}

// order is a pay token's claims, checked as the OpenAPI protocol does.
func order(t testing.TB, claims map[string]any) *protocol.Order {
	t.Helper()
	raw := map[string]json.RawMessage{}
	for k, v := range claims {
		b, err := json.Marshal(v)
		require.NoError(t, err)
		raw[k] = b
	}
	o, err := (&protocol.OpenAPI{}).ParseOrder(raw)
	require.NoError(t, err)
	return o
}

// payURL is the gateway URL that api signs for claims, with these
// callback URLs.
func payURL(t testing.TB, api *protocol.OpenAPI, notifyURL, returnURL string, claims map[string]any) string {
	t.Helper()
	u, err := api.PayURL(order(t, claims), notifyURL, returnURL, time.Now())
	require.NoError(t, err)
	return u
}

// startPay opens the merchant's order at the sandbox's gateway.
func (w *world) startPay(t *testing.T, claims map[string]any) *httptest.ResponseRecorder {
	t.Helper()
	return w.gateway(t, "GET", payURL(t, w.api, w.site.URL+"/alipay/notify", w.site.URL+"/alipay/return", claims), "")
}

func (w *world) gateway(t *testing.T, method, target, body string) *httptest.ResponseRecorder {
	t.Helper()
	r := httptest.NewRequest(method, target, strings.NewReader(body))
	if body != "" {
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	return serve(t, w.sandbox, r)
}

var cashierFormRE = regexp.MustCompile(`action="(/sandbox/cashier/[0-9a-f]+/(pay|cancel))"`)

// cashier opens the cashier page the gateway redirected to and returns
// its page and the actions of its forms.
func (w *world) cashier(t *testing.T, gw *httptest.ResponseRecorder) (string, map[string]string) {
	t.Helper()
	require.Equal(t, http.StatusFound, gw.Code, gw.Body.String())
	page := serve(t, w.sandbox, httptest.NewRequest("GET", "http://sandbox.test"+gw.Header().Get("Location"), nil))
	require.Equal(t, 200, page.Code)
	forms := map[string]string{}
	for _, m := range cashierFormRE.FindAllStringSubmatch(page.Body.String(), -1) {
		forms[m[2]] = m[1]
	}
	return page.Body.String(), forms
}

// openTestOrder opens an order at the sandbox and returns its cashier's
// Pay form action.
func (w *world) openTestOrder(t *testing.T, outTradeNo, amount, subject string) string {
	t.Helper()
	_, forms := w.cashier(t, w.startPay(t, map[string]any{"out_trade_no": outTradeNo, "total_amount": amount, "subject": subject}))
	require.Contains(t, forms, "pay")
	return forms["pay"]
}

// postCashier presses a cashier's button.
func (w *world) postCashier(t *testing.T, action string) *httptest.ResponseRecorder {
	t.Helper()
	return serve(t, w.sandbox, httptest.NewRequest("POST", "http://sandbox.test"+action, nil))
}

func read(t testing.TB, path string) []byte {
	t.Helper()
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	return data
}

// clockShift moves the package clock ahead of the real one. The
// notifier's goroutines read the clock, so it is set once, before any
// test runs, and moved atomically.
var clockShift atomic.Int64

func init() {
	now = func() time.Time { return time.Now().Add(time.Duration(clockShift.Load())) }
}

// advanceClock moves the package clock d ahead for the rest of the test.
func advanceClock(t *testing.T, d time.Duration) {
	clockShift.Add(int64(d))
	t.Cleanup(func() { clockShift.Add(-int64(d)) })
}
