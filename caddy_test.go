package alipay

// The integration harness: a real Caddy, loaded from a real Caddyfile,
// with the handler in front of a test shop on loopback. caddytest runs
// one Caddy per test binary (its admin API on localhost:2999), so the
// integration tests (TestCaddy*) live in any test file of the package,
// beside the code they exercise; each loads its own config into that
// Caddy, and none runs in parallel.
//
// Ports: TestMain picks free loopback ports once, for the test Caddy's
// http_port and https_port and for the sandbox's site; the tests name
// them by caddyPort, caddyAddr, caddyURL and sandboxURL, never by number;
// only caddytest's admin port is fixed.
//
// Deliveries: a test's shop must see only that test's requests. Every
// request but one kind comes from the test itself and is answered
// before the test goes on; the exception is the sandbox's notifier,
// which POSTs a paid trade's notification to caddyURL in the background
// and again on its retry schedule, and whatever config is loaded then
// takes it: a delivery still due when its test ended would reach the
// next test's sidecar, shop, counters and logs. So every test sandbox
// (sandboxSite) retries on a short schedule, and the test that loads
// one waits, as it ends, until the sandbox has nothing left to send
// (awaitSandboxIdle: no trade with a next_attempt): each delivery has
// then been accepted or given up, before the next test loads its
// config, whether or not the sandbox's trades outlive that config.
// The trades' out_trade_no are unique in the process (orderNo), so that
// a test run again (-count) never meets its last run's trades either.

import (
	"bufio"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/caddy-alipay/caddy-alipay/internal/testvec"
	"github.com/caddyserver/caddy/v2/caddytest"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"
)

const adminURL = "http://localhost:2999"

// The test Caddy's ports, picked in TestMain.
var (
	caddyPort  string // http_port: the sidecar's site listens on it
	httpsPort  string // https_port: nothing listens on it
	caddyAddr  string // localhost:<caddyPort>
	caddyURL   string // http://localhost:<caddyPort>
	sandboxURL string // http://127.0.0.1:<port>, the sandbox's site
)

func TestMain(m *testing.M) {
	// Caddy's storage and autosave go to a throwaway place, not ~/.
	tmp, err := os.MkdirTemp("", "caddy-alipay-test")
	if err != nil {
		panic(err)
	}
	os.Setenv("XDG_DATA_HOME", filepath.Join(tmp, "data"))
	os.Setenv("XDG_CONFIG_HOME", filepath.Join(tmp, "config"))
	ports := freePorts(3)
	caddyPort, httpsPort = ports[0], ports[1]
	caddyAddr = "localhost:" + caddyPort
	caddyURL = "http://" + caddyAddr
	sandboxURL = "http://127.0.0.1:" + ports[2]
	// caddytest loads configs with a client of its own on the default
	// transport, so the default transport is where loads learn to retry.
	http.DefaultTransport = &retryUnanswered{base: http.DefaultTransport}
	code := m.Run()
	os.RemoveAll(tmp)
	os.Exit(code)
}

// freePorts picks n distinct ports that are free on loopback now: each
// is listened on, noted and closed.
func freePorts(n int) []string {
	var ports []string
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			panic(err)
		}
		defer l.Close() // all open until all are picked: distinct
		ports = append(ports, strconv.Itoa(l.Addr().(*net.TCPAddr).Port))
	}
	return ports
}

// globalOptions start every test Caddyfile: caddytest's admin address,
// the picked ports, a quick shutdown, metrics on, then more.
func globalOptions(more string) string {
	return `{
	admin localhost:2999
	http_port ` + caddyPort + `
	https_port ` + httpsPort + `
	grace_period 1ns
	metrics` + more + `
}
`
}

// shop is a test upstream that checks X-Alipay-Token as a shop would, with
// nothing but HMAC-SHA256, and records what it received.
type shop struct {
	mu       sync.Mutex
	status   int
	aud      string // the token's audience: the app id, or the partner
	requests []shopRequest
}

type shopRequest struct {
	path, query, body string
	token             string // X-Alipay-Token
	claims            map[string]any
	tokenErr          string
	alipayHeaders     []string // in the header and the trailer
	trailer           http.Header
}

func (s *shop) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	rec := shopRequest{path: r.URL.Path, query: r.URL.RawQuery, body: string(body), trailer: r.Trailer}
	for _, hdr := range []http.Header{r.Header, r.Trailer} {
		for name := range hdr {
			if strings.HasPrefix(strings.ToLower(strings.NewReplacer("_", "-", ".", "-").Replace(name)), "x-alipay-") {
				rec.alipayHeaders = append(rec.alipayHeaders, name)
			}
		}
	}
	if tok := r.Header.Get("X-Alipay-Token"); tok != "" {
		rec.token = tok
		var err error
		s.mu.Lock()
		aud := s.aud
		s.mu.Unlock()
		rec.claims, err = checkToken(tok, testSecret, aud)
		if err != nil {
			rec.tokenErr = err.Error()
		}
	}
	s.mu.Lock()
	s.requests = append(s.requests, rec)
	status := s.status
	s.mu.Unlock()
	w.WriteHeader(status)
	if rec.claims["event"] == "notify" {
		// A notification acknowledged, as a shop does once it is saved.
		fmt.Fprint(w, "success")
		return
	}
	fmt.Fprintf(w, "shop saw %s", r.URL.Path)
}

// checkToken is what docs/shop.md tells a shop to do: pin the algorithm,
// verify the HMAC in constant time, then iss, aud and exp.
func checkToken(tok, secret, aud string) (map[string]any, error) {
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		return nil, fmt.Errorf("not a JWT")
	}
	header, _ := base64.RawURLEncoding.DecodeString(parts[0])
	if string(header) != `{"alg":"HS256","typ":"JWT"}` {
		return nil, fmt.Errorf("header %s", header)
	}
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(parts[0] + "." + parts[1]))
	sig, _ := base64.RawURLEncoding.DecodeString(parts[2])
	if !hmac.Equal(sig, m.Sum(nil)) {
		return nil, fmt.Errorf("bad signature")
	}
	payload, _ := base64.RawURLEncoding.DecodeString(parts[1])
	var claims map[string]any
	if err := json.Unmarshal(payload, &claims); err != nil {
		return nil, err
	}
	if claims["iss"] != "caddy-alipay" || claims["aud"] != aud || claims["exp"].(float64) < float64(time.Now().Unix()) {
		return nil, fmt.Errorf("claims %v", claims)
	}
	return claims, nil
}

func (s *shop) take() []shopRequest {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.requests
	s.requests = nil
	return r
}

func (s *shop) setStatus(code int) {
	s.mu.Lock()
	s.status = code
	s.mu.Unlock()
}

// startShop starts a test shop on loopback; upstream proxies to it.
func startShop(t *testing.T) (s *shop, upstream string) {
	s = &shop{status: 200, aud: testAppID}
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	return s, "reverse_proxy " + strings.TrimPrefix(srv.URL, "http://")
}

// standardSettings are the settings of the usual test sidecar: the
// vectors' keys (the private one in PKCS#8, base64), a gateway that
// nobody answers, the vectors' seller, and the shop's own notify view on
// /shop/notify.
func standardSettings() string {
	return `
		app_private_key ` + testvec.Key("app_private_key_pkcs8.b64") + `
		alipay_public_key ` + testvec.Key("alipay_public_key.pem") + `
		gateway http://127.0.0.1:9/gateway.do
		seller_id ` + testSellerID + `
		forward_notify /shop/notify`
}

// loadSidecar loads the usual test site, caddyURL: the sidecar (app_id
// and secret set, then settings), then upstream (a reverse_proxy to a
// shop, or nothing), then the other sites. No `order` option: the
// directive must place itself.
func loadSidecar(t *testing.T, settings, upstream, sites string) *caddytest.Tester {
	return loadCaddyfile(t, "", `
	`+caddyURL+` {
		alipay {
			app_id `+testAppID+`
			secret {env.TEST_ALIPAY_SECRET}`+settings+`
		}
		`+upstream+`
	}
	`+sites)
}

// loadCaddyfile loads a whole Caddyfile into the test Caddy: the global
// options and more of them (options), then sites.
// {env.TEST_ALIPAY_SECRET} is the test secret.
func loadCaddyfile(t *testing.T, options, sites string) *caddytest.Tester {
	t.Setenv("TEST_ALIPAY_SECRET", testSecret)
	tester := caddytest.NewTester(t)
	tester.Client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	tester.Client.Transport = &retryUnanswered{base: tester.Client.Transport}
	tester.InitServer(globalOptions(options)+sites, "caddyfile")
	return tester
}

// postLoad POSTs a Caddyfile to the admin endpoint's /load and returns
// the answer. Every /load that gets past the adapter makes Caddy replace
// its admin server, even a load that then fails, and the old server is
// shut down in the background: its listener (beside the new one, with
// SO_REUSEPORT) and its keep-alive connections can still take the next
// request and drop it unanswered (EOF or a reset). Such a request never
// reached a handler, and loading the same body again is harmless anyway,
// so a load that got no answer at all is sent again.
func postLoad(t *testing.T, caddyfile string) *http.Response {
	t.Helper()
	var err error
	for try := 1; try <= 10; try++ {
		var resp *http.Response
		if resp, err = http.Post(adminURL+"/load", "text/caddyfile", strings.NewReader(caddyfile)); err == nil {
			return resp
		}
		t.Logf("/load, try %d, got no answer (the old admin server going away): %v", try, err)
		time.Sleep(10 * time.Millisecond)
	}
	require.NoError(t, err)
	return nil
}

// retryUnanswered sends a request again when it got no answer at all:
// when a test loads a config, Caddy replaces its servers and shuts the old
// ones down in the background, so for a moment a new connection can be
// taken by an old listener and dropped unanswered (EOF, a reset). Such a
// request never reached a handler, so sending it again changes nothing
// but the outcome. An answer, even a broken one, is never retried.
type retryUnanswered struct {
	base http.RoundTripper
}

func (rt *retryUnanswered) RoundTrip(req *http.Request) (*http.Response, error) {
	for try := 1; ; try++ {
		resp, err := rt.base.RoundTrip(req)
		if err == nil || try == 5 || !unanswered(err) || (req.Body != nil && req.GetBody == nil) {
			return resp, err
		}
		if req.GetBody != nil {
			body, gerr := req.GetBody()
			if gerr != nil {
				return nil, err
			}
			req = req.Clone(req.Context())
			req.Body = body
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// unanswered reports whether err says the connection ended before any
// answer: EOF, a reset, or a refused connection.
func unanswered(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.ECONNREFUSED)
}

// sidecarKeys are the settings of the vectors' keys, app_id and secret
// included.
func sidecarKeys() string {
	return `
			app_id ` + testAppID + `
			secret {env.TEST_ALIPAY_SECRET}
			app_private_key ` + testvec.Key("app_private_key_pkcs1.pem") + `
			alipay_public_key ` + testvec.Key("alipay_public_key.pem")
}

// sandboxSite is the site of a local alipay_sandbox, on sandboxURL, with
// the vectors' keys, a short retry schedule (notify_retry 100ms 100ms:
// a notification that nobody accepts is given up within the test), and
// then settings, which must not set notify_retry. The test waits, as it
// ends, until the sandbox has nothing left to send (see the top of this
// file).
func sandboxSite(t *testing.T, settings string) string {
	t.Cleanup(func() { awaitSandboxIdle(t) })
	return sandboxURL + ` {
		bind 127.0.0.1
		alipay_sandbox {
			app_public_key ` + testvec.Key("app_public_key.pem") + `
			alipay_private_key ` + testvec.Key("alipay_private_key_pkcs1.pem") + `
			notify_retry 100ms 100ms
			` + settings + `
		}
	}`
}

// awaitSandboxIdle waits until the sandbox on sandboxURL has nothing left
// to send: no trade in its trade list (its JSON) has a next_attempt, so
// each notification has been accepted or given up.
func awaitSandboxIdle(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		req, err := http.NewRequest("GET", sandboxURL+"/sandbox/trades", nil)
		require.NoError(t, err)
		req.Header.Set("Accept", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Errorf("the sandbox's trades: %v", err)
			return
		}
		var list struct {
			Trades []struct {
				OutTradeNo  string  `json:"out_trade_no"`
				NextAttempt *string `json:"next_attempt"`
			} `json:"trades"`
		}
		err = json.NewDecoder(resp.Body).Decode(&list)
		resp.Body.Close()
		if err != nil {
			t.Errorf("the sandbox's trades (%s): %v", resp.Status, err)
			return
		}
		var pending []string
		for _, tr := range list.Trades {
			if tr.NextAttempt != nil {
				pending = append(pending, tr.OutTradeNo)
			}
		}
		if len(pending) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("the sandbox still has notifications to send, which the next test would see: %v", pending)
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// orderNo is base made unique in the process, for the out_trade_no of a
// trade in the sandbox.
func orderNo(base string) string {
	return fmt.Sprintf("%s_%d", base, orderSeq.Add(1))
}

var orderSeq atomic.Int64

// cashierFormRE finds the actions of the sandbox cashier's forms.
var cashierFormRE = regexp.MustCompile(`action="(/sandbox/cashier/[0-9a-f]+/(pay|cancel))"`)

// payAtCashier opens the sandbox's cashier at path (where the gateway
// sent the browser) and presses Pay; the answer must have status: 302
// back to return_url, or 200 when the request had none.
func payAtCashier(t *testing.T, tester *caddytest.Tester, path string, status int) *http.Response {
	t.Helper()
	_, page := getStatus(t, tester, sandboxURL+path, 200)
	m := cashierFormRE.FindStringSubmatch(page)
	require.NotNil(t, m, page)
	req, err := http.NewRequest("POST", sandboxURL+m[1], nil)
	require.NoError(t, err)
	return tester.AssertResponseCode(req, status)
}

// getStatus GETs target, checks the status and returns the body.
func getStatus(t *testing.T, tester *caddytest.Tester, target string, status int) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest("GET", target, nil)
	require.NoError(t, err)
	resp := tester.AssertResponseCode(req, status)
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	resp.Body.Close()
	return resp, string(body)
}

// rawRequest writes a request by hand to the test Caddy and reads the
// answer.
func rawRequest(t *testing.T, request string) (*http.Response, string) {
	t.Helper()
	conn, err := net.Dial("tcp", caddyAddr)
	require.NoError(t, err)
	defer conn.Close()
	require.NoError(t, conn.SetDeadline(time.Now().Add(10*time.Second)))
	_, err = io.WriteString(conn, strings.ReplaceAll(request, "\n", "\r\n"))
	require.NoError(t, err)
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	require.NoError(t, err)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, string(body)
}

// chunked is a body in chunked transfer coding, ending with trailers.
func chunked(body, trailers string) string {
	return fmt.Sprintf("%x\n%s\n0\n%s\n", len(body), body, trailers)
}

// brokenShop answers every request with a status line and part of the
// body it announced, then resets the connection.
func brokenShop(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			conn, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer conn.Close()
				br := bufio.NewReader(conn)
				req, err := http.ReadRequest(br)
				if err != nil {
					return
				}
				_, _ = io.Copy(io.Discard, req.Body)
				_, _ = io.WriteString(conn, "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 100\r\n\r\npartial")
				_ = conn.(*net.TCPConn).SetLinger(0) // close with a reset
			}()
		}
	}()
	return l.Addr().String()
}

// eventCount is the process's counter of event and outcome: the test
// Caddy runs in this process.
func eventCount(event string, o outcome) float64 {
	return testutil.ToFloat64(eventsTotal.WithLabelValues(event, string(o)))
}

// pick returns the named fields of v.
func pick(v map[string]any, keys ...string) map[string]any {
	out := map[string]any{}
	for _, k := range keys {
		out[k] = v[k]
	}
	return out
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}
