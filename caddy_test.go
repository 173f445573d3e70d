package alipay

// Integration tests: a real Caddy, loaded from a real Caddyfile, with the
// handler in front of a test shop on loopback. caddytest runs one Caddy
// per test binary, so every such test lives in this file and none runs in
// parallel.

import (
	"bufio"
	"context"
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
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/caddy-alipay/caddy-alipay/internal/protocol"
	"github.com/caddy-alipay/caddy-alipay/internal/protocol/protocoltest"
	"github.com/caddy-alipay/caddy-alipay/internal/testvec"
	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddytest"

	"github.com/caddy-alipay/caddy-alipay/sandbox"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const adminURL = "http://localhost:2999"

// globalOptions start every test Caddyfile: caddytest's admin address,
// unprivileged ports, a quick shutdown, metrics on.
const globalOptions = `{
	admin localhost:2999
	http_port 9080
	https_port 9443
	grace_period 1ns
	metrics
}
`

func TestMain(m *testing.M) {
	// Caddy's storage and autosave go to a throwaway place, not ~/.
	tmp, err := os.MkdirTemp("", "caddy-alipay-test")
	if err != nil {
		panic(err)
	}
	os.Setenv("XDG_DATA_HOME", filepath.Join(tmp, "data"))
	os.Setenv("XDG_CONFIG_HOME", filepath.Join(tmp, "config"))
	// caddytest loads configs with a client of its own on the default
	// transport, so the default transport is where loads learn to retry.
	http.DefaultTransport = &retryUnanswered{base: http.DefaultTransport}
	code := m.Run()
	os.RemoveAll(tmp)
	os.Exit(code)
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

// checkToken is what the README tells a shop to do.
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

// startCaddy loads a Caddyfile with the handler in front of a test shop.
// No `order` option: the directive must place itself.
func startCaddy(t *testing.T) (*caddytest.Tester, *shop) {
	s, upstream := startShop(t)
	tester := loadCaddy(t, `
		app_private_key `+testvec.Key("app_private_key_pkcs8.b64")+`
		alipay_public_key `+testvec.Key("alipay_public_key.pem")+`
		gateway http://127.0.0.1:9/gateway.do
		seller_id `+testSellerID+`
		forward_notify /shop/notify`, upstream, "")
	return tester, s
}

// startShop starts a test shop on loopback; upstream proxies to it.
func startShop(t *testing.T) (s *shop, upstream string) {
	s = &shop{status: 200, aud: testAppID}
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	return s, "reverse_proxy " + strings.TrimPrefix(srv.URL, "http://")
}

// loadCaddy loads a Caddyfile whose site http://localhost:9080 has the
// sidecar (app_id and secret set, then settings) followed by after, and
// then the other sites. No `order` option: the directive places itself.
func loadCaddy(t *testing.T, settings, after, sites string) *caddytest.Tester {
	return initCaddy(t, `
	http://localhost:9080 {
		alipay {
			app_id `+testAppID+`
			secret {env.TEST_ALIPAY_SECRET}`+settings+`
		}
		`+after+`
	}
	`+sites)
}

// initCaddy loads sites, after the global options, into the test Caddy.
// {env.TEST_ALIPAY_SECRET} is the test secret.
func initCaddy(t *testing.T, sites string) *caddytest.Tester {
	return initCaddyWith(t, "", sites)
}

// initCaddyWith is initCaddy with more global options.
func initCaddyWith(t *testing.T, options, sites string) *caddytest.Tester {
	t.Setenv("TEST_ALIPAY_SECRET", testSecret)
	tester := caddytest.NewTester(t)
	tester.Client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	tester.Client.Transport = &retryUnanswered{base: tester.Client.Transport}
	tester.InitServer(strings.TrimSuffix(strings.TrimSpace(globalOptions), "}")+options+"\n}\n"+sites, "caddyfile")
	return tester
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

// sidecarKeys are the settings of the vectors' keys.
func sidecarKeys(t *testing.T) string {
	return `
			app_id ` + testAppID + `
			secret {env.TEST_ALIPAY_SECRET}
			app_private_key ` + testvec.Key("app_private_key_pkcs1.pem") + `
			alipay_public_key ` + testvec.Key("alipay_public_key.pem")
}

// sandboxSite is the site of a local alipay_sandbox, on 127.0.0.1:9081,
// with the vectors' keys and then settings.
func sandboxSite(t *testing.T, settings string) string {
	return `http://127.0.0.1:9081 {
		bind 127.0.0.1
		alipay_sandbox {
			app_public_key ` + testvec.Key("app_public_key.pem") + `
			alipay_private_key ` + testvec.Key("alipay_private_key_pkcs1.pem") + `
			` + settings + `
		}
	}`
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

func TestCaddyPayNotifyReturn(t *testing.T) {
	tester, s := startCaddy(t)
	vec := testvec.Load(t)

	t.Run("pay", func(t *testing.T) {
		tok := payToken(t, map[string]any{"out_trade_no": "T1", "total_amount": "9.90", "subject": "Caddy 测试"})
		resp, _ := getStatus(t, tester, "http://localhost:9080/alipay/pay?token="+tok, 302)
		loc, err := url.Parse(resp.Header.Get("Location"))
		require.NoError(t, err)
		assert.Equal(t, "127.0.0.1:9", loc.Host)
		params := map[string]string{}
		for k, v := range loc.Query() {
			params[k] = v[0]
		}
		assert.Equal(t, "http://localhost:9080/alipay/notify", params["notify_url"])
		v := protocoltest.Verifier(t, "app_public_key.pem", protocol.SignTypeRSA2)
		assert.NoError(t, v.Verify(protocol.RequestContent(params), params["sign"]), "the gateway accepts the signature")
		assert.Equal(t, "no-store", resp.Header.Get("Cache-Control"))

		tester.AssertGetResponse("http://localhost:9080/alipay/pay?token=x", 403, "invalid payment token\n")
		bad := payToken(t, map[string]any{"out_trade_no": "T1", "total_amount": "0", "subject": "s"})
		_, body := getStatus(t, tester, "http://localhost:9080/alipay/pay?token="+bad, 400)
		assert.Contains(t, body, "total_amount")
		assert.Empty(t, s.take(), "the shop sees nothing of pay")
	})

	t.Run("notify", func(t *testing.T) {
		for _, c := range vec.Notify.Cases {
			req, err := http.NewRequest("POST", "http://localhost:9080/alipay/notify", strings.NewReader(c.PostBody))
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
		req, _ := http.NewRequest("POST", "http://localhost:9080/alipay/notify", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		tester.AssertResponse(req, 400, "fail")
		req, _ = http.NewRequest("POST", "http://localhost:9080/alipay/notify", strings.NewReader(strings.Repeat("a=b&", 20000)))
		tester.AssertResponse(req, 413, "fail")
		tester.AssertGetResponse("http://localhost:9080/alipay/notify", 405, "fail")
		assert.Empty(t, s.take())
	})

	t.Run("notify upstream fails", func(t *testing.T) {
		s.setStatus(500)
		defer s.setStatus(200)
		req, _ := http.NewRequest("POST", "http://localhost:9080/alipay/notify", strings.NewReader(vec.Notify.Cases[0].PostBody))
		resp, _ := tester.AssertResponse(req, 502, "fail")
		assert.Equal(t, "text/plain; charset=utf-8", resp.Header.Get("Content-Type"))
		assert.Len(t, s.take(), 1)
	})

	t.Run("return", func(t *testing.T) {
		u, err := url.Parse(vec.Return.RedirectURL)
		require.NoError(t, err)
		tester.AssertGetResponse("http://localhost:9080/alipay/return?"+u.RawQuery, 200, "shop saw /alipay/return")
		got := s.take()
		require.Len(t, got, 1)
		assert.Equal(t, u.RawQuery, got[0].query)
		require.Empty(t, got[0].tokenErr)
		assert.Equal(t, "return", got[0].claims["event"])

		bad := strings.Replace(u.RawQuery, "out_trade_no=", "out_trade_no=X", 1)
		_, body := getStatus(t, tester, "http://localhost:9080/alipay/return?"+bad, 400)
		assert.Contains(t, body, "could not be confirmed")
		assert.Empty(t, s.take())
	})

	t.Run("forged headers never reach the shop", func(t *testing.T) {
		req, _ := http.NewRequest("GET", "http://localhost:9080/anything", nil)
		req.Header.Set("X-Alipay-Token", "forged")
		req.Header["X_Alipay_Token"] = []string{"forged"}
		req.Header["X.Alipay.Token"] = []string{"forged"}
		tester.AssertResponse(req, 200, "shop saw /anything")
		got := s.take()
		require.Len(t, got, 1)
		assert.Empty(t, got[0].alipayHeaders)
	})

	t.Run("metrics", func(t *testing.T) {
		resp, err := http.Get(adminURL + "/metrics")
		require.NoError(t, err)
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		assert.Contains(t, string(body), `caddy_alipay_events_total{event="notify",outcome="ok"}`)
		assert.Contains(t, string(body), `caddy_alipay_events_total{event="pay",outcome="forbidden"}`)
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
			tester := loadCaddy(t, `
				app_private_key `+testvec.Key("app_private_key_pkcs1.pem")+`
				alipay_public_key `+testvec.Key("alipay_public_key.b64"), upstream, "")
			req, _ := http.NewRequest("POST", "http://localhost:9080/alipay/notify", strings.NewReader(testvec.Load(t).Notify.Cases[0].PostBody))
			tester.AssertResponse(req, 502, "fail")
		})
	}
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

// A config mistake stops the load with an error that names the setting.
func TestCaddyConfigErrors(t *testing.T) {
	startCaddy(t) // a running Caddy to load into
	site := func(block string) string {
		return fmt.Sprintf(globalOptions+`
		http://localhost:9080 {
			alipay {
				%s
			}
			respond "unreachable"
		}`, block)
	}
	good := map[string]string{
		"app_id":            testAppID,
		"app_private_key":   testvec.Key("app_private_key_pkcs1.pem"),
		"alipay_public_key": testvec.Key("alipay_public_key.pem"),
		"secret":            testSecret,
	}
	block := func(edit map[string]string) string {
		var b strings.Builder
		for _, k := range []string{"app_id", "app_private_key", "alipay_public_key", "secret", "gateway", "sign_type", "app_key"} {
			v, ok := edit[k]
			if !ok {
				v = good[k]
			}
			if v != "" {
				fmt.Fprintf(&b, "%s %s\n", k, v)
			}
		}
		return b.String()
	}
	for name, c := range map[string]struct {
		edit map[string]string
		want string
	}{
		"missing key file":     {map[string]string{"app_private_key": "/nonexistent/app.pem"}, "app_private_key"},
		"public as private":    {map[string]string{"app_private_key": testvec.Key("app_public_key.pem")}, "app_private_key"},
		"app's own key":        {map[string]string{"alipay_public_key": testvec.Key("app_public_key.pem")}, "alipay_public_key"},
		"short secret":         {map[string]string{"secret": "short"}, "secret"},
		"unset env secret":     {map[string]string{"secret": "{env.TEST_ALIPAY_NOT_SET}"}, "secret"},
		"http gateway":         {map[string]string{"gateway": "http://openapi.alipay.com/gateway.do"}, "gateway"},
		"unknown subdirective": {map[string]string{"app_key": "x"}, `unrecognized subdirective \"app_key\"`},
		"sign_type":            {map[string]string{"sign_type": "SM2"}, "sign_type"},
	} {
		t.Run(name, func(t *testing.T) {
			resp := postLoad(t, site(block(c.edit)))
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			assert.Equal(t, 400, resp.StatusCode, string(body))
			assert.Contains(t, string(body), c.want)
			assert.NotContains(t, string(body), testSecret)
		})
	}
}

// Caddyfile.example adapts to the JSON in testdata and, given keys,
// validates as `caddy validate` would.
func TestCaddyfileExample(t *testing.T) {
	example, err := os.ReadFile("Caddyfile.example")
	require.NoError(t, err)
	want, err := os.ReadFile(filepath.Join("testdata", "caddyfile_adapt", "example.json"))
	require.NoError(t, err)
	require.True(t, caddytest.CompareAdapt(t, "Caddyfile.example", string(example), "caddyfile", strings.TrimSpace(string(want))),
		"Caddyfile.example no longer adapts to testdata/caddyfile_adapt/example.json")

	t.Setenv("ALIPAY_APP_PRIVATE_KEY", string(testvec.ReadKey(t, "app_private_key_pkcs1.b64")))
	t.Setenv("ALIPAY_PUBLIC_KEY", testvec.Key("alipay_public_key.pem"))
	t.Setenv("ALIPAY_SECRET", testSecret)
	cfgJSON, _, err := caddyconfig.GetAdapter("caddyfile").Adapt(example, nil)
	require.NoError(t, err)
	var cfg caddy.Config
	require.NoError(t, json.Unmarshal(cfgJSON, &cfg))
	require.NoError(t, caddy.Validate(&cfg))

	t.Setenv("ALIPAY_SECRET", "")
	require.NoError(t, json.Unmarshal(cfgJSON, &cfg))
	assert.ErrorContains(t, caddy.Validate(&cfg), "secret")
}

// The sidecar and the sandbox in one Caddy, as in the demo: a buyer's
// whole payment, and the notification reaching the shop through the
// sidecar, over real HTTP.
func TestCaddySandbox(t *testing.T) {
	s, upstream := startShop(t)
	tester := loadCaddy(t, `
		app_private_key `+testvec.Key("app_private_key_pkcs1.pem")+`
		alipay_public_key `+testvec.Key("alipay_public_key.pem")+`
		gateway http://127.0.0.1:9081/gateway.do
		query_on_return on`, upstream, sandboxSite(t, "notify_retry 100ms 100ms"))

	tok := payToken(t, map[string]any{"out_trade_no": "SBX1", "total_amount": "66.60", "subject": "沙箱商品"})
	resp, _ := getStatus(t, tester, "http://localhost:9080/alipay/pay?token="+tok, 302)
	resp, _ = getStatus(t, tester, resp.Header.Get("Location"), 302)
	cashier := "http://127.0.0.1:9081" + resp.Header.Get("Location")
	_, page := getStatus(t, tester, cashier, 200)
	assert.Contains(t, page, `<span id="amount">66.60</span>`)
	m := cashierFormRE.FindStringSubmatch(page)
	require.NotNil(t, m)
	req, _ := http.NewRequest("POST", "http://127.0.0.1:9081"+m[1], nil)
	resp = tester.AssertResponseCode(req, 302)
	back := resp.Header.Get("Location")
	require.True(t, strings.HasPrefix(back, "http://localhost:9080/alipay/return?"), back)
	tester.AssertGetResponse(back, 200, "shop saw /alipay/return")
	s.mu.Lock()
	returns := 0
	for _, r := range s.requests {
		if r.path == "/alipay/return" {
			returns++
			assert.Equal(t, "TRADE_SUCCESS", r.claims["trade_status"], "query_on_return asked the sandbox")
		}
	}
	s.mu.Unlock()
	assert.Equal(t, 1, returns)

	require.Eventually(t, func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		for _, r := range s.requests {
			if r.path == "/alipay/notify" && r.tokenErr == "" && r.claims["params"].(map[string]any)["trade_status"] == "TRADE_SUCCESS" {
				return true
			}
		}
		return false
	}, 10*time.Second, 20*time.Millisecond, "the verified notification reaches the shop")
	got := s.take()
	var notifies int
	for _, r := range got {
		if r.path == "/alipay/notify" {
			notifies++
			assert.Equal(t, "66.60", r.claims["params"].(map[string]any)["total_amount"])
		}
	}
	assert.Equal(t, 1, notifies, "answered success at once: no retry")

	// The shop's API, through the sidecar, against the sandbox's state.
	api := func(method, body string) (int, map[string]any) {
		t.Helper()
		req, err := http.NewRequest("POST", "http://localhost:9080/alipay/api/"+method, strings.NewReader(body))
		require.NoError(t, err)
		req.Header.Set("Authorization", "Bearer "+bearer(t, 5*time.Minute))
		resp, err := tester.Client.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		var v map[string]any
		require.NoError(t, json.NewDecoder(resp.Body).Decode(&v))
		return resp.StatusCode, v
	}
	code, v := api("alipay.trade.query", `{"out_trade_no":"SBX1"}`)
	require.Equal(t, 200, code, v)
	assert.Equal(t, "TRADE_SUCCESS", v["trade_status"])
	assert.Equal(t, "66.60", v["total_amount"])

	_, v = api("alipay.trade.refund", `{"out_trade_no":"SBX1","refund_amount":"10.00","out_request_no":"R1"}`)
	assert.Equal(t, map[string]any{"code": "10000", "fund_change": "Y", "refund_fee": "10.00"}, pick(v, "code", "fund_change", "refund_fee"))
	_, v = api("alipay.trade.refund", `{"out_trade_no":"SBX1","refund_amount":"10.00","out_request_no":"R1"}`)
	assert.Equal(t, map[string]any{"code": "10000", "fund_change": "N", "refund_fee": "10.00"}, pick(v, "code", "fund_change", "refund_fee"), "a retry refunds once")
	_, v = api("alipay.trade.refund", `{"out_trade_no":"SBX1","refund_amount":"56.61","out_request_no":"R2"}`)
	assert.Equal(t, "40004", v["code"], "more than is left")
	_, v = api("alipay.trade.refund", `{"out_trade_no":"SBX1","refund_amount":"56.60","out_request_no":"R2"}`)
	assert.Equal(t, map[string]any{"code": "10000", "fund_change": "Y", "refund_fee": "66.60"}, pick(v, "code", "fund_change", "refund_fee"))
	_, v = api("alipay.trade.fastpay.refund.query", `{"out_trade_no":"SBX1","out_request_no":"R1"}`)
	assert.Equal(t, "10.00", v["refund_amount"])
	_, v = api("alipay.trade.query", `{"out_trade_no":"SBX1"}`)
	assert.Equal(t, "TRADE_CLOSED", v["trade_status"], "refunded in full")

	// Close a trade that was opened but never paid.
	tok = payToken(t, map[string]any{"out_trade_no": "SBX2", "total_amount": "1.00", "subject": "unpaid"})
	resp, _ = getStatus(t, tester, "http://localhost:9080/alipay/pay?token="+tok, 302)
	getStatus(t, tester, resp.Header.Get("Location"), 302)
	_, v = api("alipay.trade.close", `{"out_trade_no":"SBX2"}`)
	assert.Equal(t, "10000", v["code"])
	_, v = api("alipay.trade.query", `{"out_trade_no":"SBX2"}`)
	assert.Equal(t, "TRADE_CLOSED", v["trade_status"])

	code, v = api("alipay.trade.refund", `{"out_trade_no":"SBX1","refund_amount":"1.00"}`)
	assert.Equal(t, 400, code, "a refund without out_request_no never leaves Caddy")
	assert.Contains(t, v["error"], "out_request_no")
}

// cashierFormRE finds the actions of the sandbox cashier's forms.
var cashierFormRE = regexp.MustCompile(`action="(/sandbox/cashier/[0-9a-f]+/(pay|cancel))"`)

// pick returns the named fields of v.
func pick(v map[string]any, keys ...string) map[string]any {
	out := map[string]any{}
	for _, k := range keys {
		out[k] = v[k]
	}
	return out
}

// Certificate mode through a real Caddy: the sidecar uses the
// certificates that the sandbox issued (here issued first, since Caddy
// provisions its servers in no fixed order).
func TestCaddyCertificateMode(t *testing.T) {
	dir := t.TempDir()
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	defer cancel()
	issuer := &sandbox.Sandbox{AppPublicKey: testvec.Key("app_public_key.pem"),
		AlipayPrivateKey: testvec.Key("alipay_private_key_pkcs1.pem"), Certificates: dir}
	require.NoError(t, issuer.Provision(ctx))
	// Through the environment: caddytest rewrites any "/name.crt" in a
	// Caddyfile to a file of its own.
	t.Setenv("TEST_APP_CERT", filepath.Join(dir, "appCertPublicKey.crt"))
	t.Setenv("TEST_ALIPAY_CERT", filepath.Join(dir, "alipayCertPublicKey_RSA2.crt"))
	t.Setenv("TEST_ALIPAY_ROOT_CERT", filepath.Join(dir, "alipayRootCert.crt"))
	_, upstream := startShop(t)
	tester := loadCaddy(t, `
		app_private_key `+testvec.Key("app_private_key_pkcs1.pem")+`
		app_cert {env.TEST_APP_CERT}
		alipay_cert {env.TEST_ALIPAY_CERT}
		alipay_root_cert {env.TEST_ALIPAY_ROOT_CERT}
		gateway http://127.0.0.1:9081/gateway.do`, upstream, sandboxSite(t, "certificates "+dir))

	tok := payToken(t, map[string]any{"out_trade_no": "CERT1", "total_amount": "3.00", "subject": "证书模式"})
	resp, _ := getStatus(t, tester, "http://localhost:9080/alipay/pay?token="+tok, 302)
	assert.NotEmpty(t, must(url.Parse(resp.Header.Get("Location"))).Query().Get("app_cert_sn"))
	resp, _ = getStatus(t, tester, resp.Header.Get("Location"), 302)
	_, page := getStatus(t, tester, "http://127.0.0.1:9081"+resp.Header.Get("Location"), 200)
	m := cashierFormRE.FindStringSubmatch(page)
	require.NotNil(t, m)
	req, _ := http.NewRequest("POST", "http://127.0.0.1:9081"+m[1], nil)
	back := tester.AssertResponseCode(req, 302).Header.Get("Location")
	tester.AssertGetResponse(back, 200, "shop saw /alipay/return")

	req, _ = http.NewRequest("POST", "http://localhost:9080/alipay/api/alipay.trade.query", strings.NewReader(`{"out_trade_no":"CERT1"}`))
	req.Header.Set("Authorization", "Bearer "+bearer(t, time.Minute))
	resp = tester.AssertResponseCode(req, 200)
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	resp.Body.Close()
	assert.Contains(t, string(body), `"trade_status":"TRADE_SUCCESS"`)
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// eventCount is the process's counter of event and outcome: the test
// Caddy runs in this process.
func eventCount(event, outcome string) float64 {
	return testutil.ToFloat64(eventsTotal.WithLabelValues(event, outcome))
}

// Look-alike spellings of the endpoints, over real HTTP through Caddy:
// a forged callback on any of them is refused, and the shop sees none.
func TestCaddyLookAlikePaths(t *testing.T) {
	tester, s := startCaddy(t)
	forged := strings.Replace(testvec.Load(t).Notify.Cases[0].PostBody, "total_amount=88.88", "total_amount=0.01", 1)
	for _, p := range append(append([]string{}, lookAlikes...), unicodeLookAlikes...) {
		if !strings.HasPrefix(p, "/") {
			p = "/" + p
		}
		target := "http://localhost:9080" + (&url.URL{Path: p}).EscapedPath()
		req, err := http.NewRequest("POST", target, strings.NewReader(forged))
		require.NoError(t, err)
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		resp := tester.AssertResponseCode(req, 400)
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		assert.Equal(t, "fail", string(body), p)
		if strings.Contains(p, "notify") {
			ret := "http://localhost:9080" + (&url.URL{Path: strings.Replace(p, "notify", "return", 1)}).EscapedPath()
			getStatus(t, tester, ret+"?out_trade_no=X&total_amount=0.01&sign=AAAA", 400)
		}
		assert.Empty(t, s.take(), "%q reached the shop", p)
	}
	// The shop's own notify view (forward_notify /shop/notify) takes only
	// the sidecar's forward; X-Original-URL naming an endpoint is that
	// endpoint.
	for _, p := range []string{"/shop/notify", "/Shop/Not%C4%B1fy", "/index.php/shop/notify/"} {
		req, err := http.NewRequest("POST", "http://localhost:9080"+p, strings.NewReader(forged))
		require.NoError(t, err)
		tester.AssertResponseCode(req, 404)
		assert.Empty(t, s.take(), "%q reached the shop", p)
	}
	req, err := http.NewRequest("POST", "http://localhost:9080/index.php", strings.NewReader(forged))
	require.NoError(t, err)
	req.Header.Set("X-Original-URL", "/alipay/not%C4%B1fy")
	tester.AssertResponse(req, 400, "fail")
	assert.Empty(t, s.take())
	// Spellings that Go's client would not send as they are.
	for _, raw := range []string{"/alipay/./notify", "//alipay/notify", "/alipay/%2E/notify", "/ALIPAY/NOTIFY%3Bx", "/alipay/notify%252F"} {
		conn, err := net.Dial("tcp", "localhost:9080")
		require.NoError(t, err)
		fmt.Fprintf(conn, "POST %s HTTP/1.1\r\nHost: localhost:9080\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s", raw, len(forged), forged)
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		require.NoError(t, err, raw)
		body, _ := io.ReadAll(resp.Body)
		conn.Close()
		assert.Equal(t, 400, resp.StatusCode, raw)
		assert.Equal(t, "fail", string(body), raw)
		assert.Empty(t, s.take(), "%q reached the shop", raw)
	}
}

// rawRequest writes a request by hand to the test Caddy and reads the
// answer.
func rawRequest(t *testing.T, request string) (*http.Response, string) {
	t.Helper()
	conn, err := net.Dial("tcp", "localhost:9080")
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

// A chunked request's trailers, declared or not, never bring a forged
// X-Alipay-* to the shop: not on a path of the shop's, not next to a
// verified notification's token.
func TestCaddyTrailers(t *testing.T) {
	_, s := startCaddy(t)
	const forgedTrailers = "X-Alipay-Token: forged\nX-Alipay-Event: forged\nX-Checksum: kept\n"
	resp, _ := rawRequest(t, "POST /upload HTTP/1.1\nHost: localhost:9080\nTransfer-Encoding: chunked\n"+
		"Trailer: X-Alipay-Token, X-Alipay-Event, X-Checksum\nConnection: close\n\n"+chunked("abc", forgedTrailers))
	assert.Equal(t, 200, resp.StatusCode)
	got := s.take()
	require.Len(t, got, 1)
	assert.Equal(t, "abc", got[0].body)
	assert.Empty(t, got[0].alipayHeaders)
	assert.Equal(t, "kept", got[0].trailer.Get("X-Checksum"), "trailers do reach the shop: the test could fail")

	// Not declared: net/http keeps them to itself.
	rawRequest(t, "POST /upload HTTP/1.1\nHost: localhost:9080\nTransfer-Encoding: chunked\nConnection: close\n\n"+chunked("abc", forgedTrailers))
	got = s.take()
	require.Len(t, got, 1)
	assert.Empty(t, got[0].alipayHeaders)

	body := testvec.Load(t).Notify.Cases[0].PostBody
	resp, answer := rawRequest(t, "POST /alipay/notify HTTP/1.1\nHost: localhost:9080\nContent-Type: application/x-www-form-urlencoded\n"+
		"Transfer-Encoding: chunked\nTrailer: X-Alipay-Token, X-Checksum\nConnection: close\n\n"+chunked(body, forgedTrailers))
	assert.Equal(t, 200, resp.StatusCode)
	assert.Equal(t, "success", answer)
	got = s.take()
	require.Len(t, got, 1)
	assert.Empty(t, got[0].tokenErr)
	assert.Equal(t, []string{"X-Alipay-Token"}, got[0].alipayHeaders, "the handler's own token only")
	assert.Empty(t, got[0].trailer)
}

// A site that answers any host name: the merchant key signs no callback
// URL on a host that a client chose.
func TestCaddyCatchAllSite(t *testing.T) {
	s, upstream := startShop(t)
	tester := initCaddy(t, `
	http://:9080 {
		alipay {`+sidecarKeys(t)+`
			gateway http://127.0.0.1:9/gateway.do
		}
		`+upstream+`
	}`)
	tok := payToken(t, map[string]any{"out_trade_no": "C1", "total_amount": "1.00", "subject": "s"})
	before := eventCount(eventPay, outcomeInvalid)
	for _, host := range []string{"attacker.example", "localhost:9080", "127.0.0.1:9080"} {
		req, err := http.NewRequest("GET", "http://127.0.0.1:9080/alipay/pay?token="+tok, nil)
		require.NoError(t, err)
		req.Host = host
		resp := tester.AssertResponseCode(req, http.StatusMisdirectedRequest)
		assert.Empty(t, resp.Header.Get("Location"))
		resp.Body.Close()
	}
	assert.Equal(t, before+3, eventCount(eventPay, outcomeInvalid))
	assert.Empty(t, s.take())

	// With notify_url and return_url it takes payments on any host.
	tester = initCaddy(t, `
	http://:9080 {
		alipay {`+sidecarKeys(t)+`
			gateway http://127.0.0.1:9/gateway.do
			notify_url https://shop.example.com/alipay/notify
			return_url https://shop.example.com/alipay/return
		}
		`+upstream+`
	}`)
	req, err := http.NewRequest("GET", "http://127.0.0.1:9080/alipay/pay?token="+tok, nil)
	require.NoError(t, err)
	req.Host = "attacker.example"
	resp := tester.AssertResponseCode(req, 302)
	loc := must(url.Parse(resp.Header.Get("Location")))
	assert.Equal(t, "https://shop.example.com/alipay/notify", loc.Query().Get("notify_url"))
	assert.Equal(t, "https://shop.example.com/alipay/return", loc.Query().Get("return_url"))
}

// alipay with a matcher: the endpoints follow the matcher, the stripping
// of X-Alipay-* does not.
func TestCaddyMatcherOnHandler(t *testing.T) {
	s, upstream := startShop(t)
	tester := initCaddy(t, `
	http://localhost:9080 {
		@shop path /shop/*
		alipay @shop {`+sidecarKeys(t)+`
			prefix /shop/alipay
		}
		`+upstream+`
	}`)
	req, _ := http.NewRequest("GET", "http://localhost:9080/blog", nil)
	req.Header.Set("X-Alipay-Token", "forged")
	tester.AssertResponse(req, 200, "shop saw /blog")
	got := s.take()
	require.Len(t, got, 1)
	assert.Empty(t, got[0].alipayHeaders)

	body := testvec.Load(t).Notify.Cases[0].PostBody
	req, _ = http.NewRequest("POST", "http://localhost:9080/shop/alipay/notify", strings.NewReader(body))
	tester.AssertResponse(req, 200, "success")
	require.Len(t, s.take(), 1)
	req, _ = http.NewRequest("POST", "http://localhost:9080/index.php/shop/alipay/notify", strings.NewReader(body))
	tester.AssertResponseCode(req, 404)
	assert.Empty(t, s.take(), "an endpoint's look-alike outside the matcher is refused, not passed on")
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

// A shop that resets in the middle of its answer: Alipay hears 502 fail
// and the log says upstream_failed, for the notify; the browser's return
// is aborted, and logged the same.
func TestCaddyShopBreaksOff(t *testing.T) {
	tester := loadCaddy(t, `
		app_private_key `+testvec.Key("app_private_key_pkcs1.pem")+`
		alipay_public_key `+testvec.Key("alipay_public_key.pem"), "reverse_proxy "+brokenShop(t), "")
	vec := testvec.Load(t)
	before := eventCount(eventNotify, outcomeUpstreamFailed)
	req, _ := http.NewRequest("POST", "http://localhost:9080/alipay/notify", strings.NewReader(vec.Notify.Cases[0].PostBody))
	tester.AssertResponse(req, 502, "fail")
	assert.Equal(t, before+1, eventCount(eventNotify, outcomeUpstreamFailed))

	before = eventCount(eventReturn, outcomeUpstreamFailed)
	u := must(url.Parse(vec.Return.RedirectURL))
	resp, err := tester.Client.Get("http://localhost:9080/alipay/return?" + u.RawQuery)
	if err == nil {
		_, err = io.ReadAll(resp.Body)
		resp.Body.Close()
	}
	assert.Error(t, err, "the browser sees a broken answer, not a whole page")
	assert.Equal(t, before+1, eventCount(eventReturn, outcomeUpstreamFailed))
}

// reverse_proxy logs the headers it sends upstream at Debug, the
// handler's token included; the README's log filter keeps it out.
func TestCaddyTokenInProxyLogs(t *testing.T) {
	body := testvec.Load(t).Notify.Cases[0].PostBody
	for _, c := range []struct {
		name, filter string
		leaks        bool
	}{
		{"debug, no filter", "format json", true},
		{"debug, the README's filter", "format filter {\n\t\t\t\trequest>headers>X-Alipay-Token delete\n\t\t\t}", false},
	} {
		t.Run(c.name, func(t *testing.T) {
			logFile := filepath.Join(t.TempDir(), "caddy.log")
			s, upstream := startShop(t)
			tester := initCaddyWith(t, `
		log default {
			output file `+logFile+`
			level DEBUG
			`+c.filter+`
		}`, `
	http://localhost:9080 {
		alipay {`+sidecarKeys(t)+`
		}
		`+upstream+`
	}`)
			req, _ := http.NewRequest("POST", "http://localhost:9080/alipay/notify", strings.NewReader(body))
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

// The legacy protocol through a real Caddy: a GBK and a UTF-8 partner, the
// pay redirect, notifications with each answer of notify_verify (and a
// gateway that never answers), a return, and the config mistakes.
func TestCaddyLegacy(t *testing.T) {
	mapi := &fakeMapi{answer: "true"}
	gw := httptest.NewServer(mapi)
	defer gw.Close()
	silent, err := net.Listen("tcp", "127.0.0.1:0") // accepts, never answers
	require.NoError(t, err)
	defer silent.Close()
	v := testvec.LoadLegacy(t)
	t.Setenv("TEST_MD5_KEY", v.MD5Key)
	legacySite := func(charset, gateway, upstream string) string {
		return `
	http://localhost:9080 {
		alipay {
			partner ` + v.Partner + `
			md5_key {env.TEST_MD5_KEY}
			input_charset ` + charset + `
			secret {env.TEST_ALIPAY_SECRET}
			gateway ` + gateway + `
			forward_notify /shop/notify
		}
		` + upstream + `
	}`
	}
	for _, c := range []struct{ charset, notify, ret string }{
		{"gbk", "md5_notify_gbk_trade_finished", "md5_return_gbk"},
		{"utf-8", "md5_notify_utf8_trade_success", "md5_return_utf8"},
	} {
		t.Run(c.charset, func(t *testing.T) {
			s, upstream := startShop(t)
			s.aud = v.Partner
			tester := initCaddy(t, legacySite(c.charset, gw.URL+"/gateway.do", upstream))

			tok := payToken(t, map[string]any{"out_trade_no": "LC1", "total_amount": "9.9", "subject": "西湖龙井"})
			resp, _ := getStatus(t, tester, "http://localhost:9080/alipay/pay?token="+tok, 302)
			loc := must(url.Parse(resp.Header.Get("Location")))
			assert.Equal(t, "create_direct_pay_by_user", loc.Query().Get("service"))
			assert.Equal(t, c.charset, loc.Query().Get("_input_charset"))
			assert.Equal(t, "9.90", loc.Query().Get("total_fee"))
			assert.Equal(t, "http://localhost:9080/alipay/notify", loc.Query().Get("notify_url"))

			_, nc := legacyCase(t, c.notify)
			for _, a := range []struct {
				answer, body string
				status       int
				reached      bool
			}{{"true", "success", 200, true}, {"false", "fail", 400, false}, {"invalid", "fail", 400, false}} {
				mapi.set(a.answer)
				req, _ := http.NewRequest("POST", "http://localhost:9080/alipay/notify", strings.NewReader(nc.PostBody))
				req.Header.Set("Content-Type", nc.ContentType)
				tester.AssertResponse(req, a.status, a.body)
				got := s.take()
				if !a.reached {
					assert.Empty(t, got, a.answer)
					continue
				}
				require.Len(t, got, 1)
				assert.Equal(t, "/shop/notify", got[0].path)
				assert.Equal(t, nc.PostBody, got[0].body)
				assert.Equal(t, "legacy", got[0].claims["protocol"])
				assert.Equal(t, v.Partner, got[0].claims["aud"])
				assert.Equal(t, nc.Params["subject"], got[0].claims["params"].(map[string]any)["subject"], "UTF-8 in the token")
				assert.Equal(t, nc.Params["total_fee"], got[0].claims["params"].(map[string]any)["total_fee"])
			}

			_, rc := legacyCase(t, c.ret)
			mapi.set("true")
			tester.AssertGetResponse("http://localhost:9080/alipay/return?"+rc.Query, 200, "shop saw /alipay/return")
			got := s.take()
			require.Len(t, got, 1)
			assert.Equal(t, "return", got[0].claims["event"])
		})
	}

	t.Run("notify_verify never answers", func(t *testing.T) {
		s, upstream := startShop(t)
		tester := initCaddy(t, legacySite("utf-8", "http://"+silent.Addr().String()+"/gateway.do", upstream))
		tester.Client.Timeout = 3 * protocol.NotifyVerifyTimeout
		_, nc := legacyCase(t, "md5_notify_utf8_trade_success")
		before := eventCount(eventNotify, outcomeUnconfirmed)
		start := time.Now()
		req, _ := http.NewRequest("POST", "http://localhost:9080/alipay/notify", strings.NewReader(nc.PostBody))
		tester.AssertResponse(req, 502, "fail")
		assert.InDelta(t, protocol.NotifyVerifyTimeout.Seconds(), time.Since(start).Seconds(), 2)
		assert.Equal(t, before+1, eventCount(eventNotify, outcomeUnconfirmed))
		assert.Empty(t, s.take())
	})

	t.Run("config mistakes", func(t *testing.T) {
		startCaddy(t) // a running Caddy to load into
		for _, c := range []struct{ settings, want string }{
			{"partner 2088000000000001\n md5_key {env.TEST_MD5_KEY}\n app_id 2021000000000001", "app_id"},
			{"partner 2088000000000001\n md5_key {env.TEST_MD5_KEY}\n query_on_return", "query_on_return"},
			{"partner 2088000000000001\n md5_key {env.TEST_MD5_KEY}\n api_methods alipay.trade.query", "api_methods"},
			{"partner 2088000000000001\n md5_key {env.TEST_MD5_KEY}\n alipay_root_cert " + testvec.Cert("alipayRootCert.crt"), "alipay_root_cert"},
			{"partner 2088000000000001\n md5_key {env.TEST_MD5_KEY}\n sign_type RSA", "md5_key"},
			{"partner 2088000000000001\n md5_key 0123456789abcdef0123456789abcde", "md5_key"},
			{"partner 2088000000000001\n md5_key {env.TEST_MD5_KEY}\n input_charset big5", "input_charset"},
			{"partner 2088000000000001", "md5_key"},
			{"partner 123\n md5_key {env.TEST_MD5_KEY}", "partner"},
			{"app_id 2021000000000001\n md5_key {env.TEST_MD5_KEY}", "md5_key"},
		} {
			resp := postLoad(t, strings.TrimSuffix(strings.TrimSpace(globalOptions), "}")+"\n}\n"+`
	http://localhost:9080 {
		alipay {
			secret {env.TEST_ALIPAY_SECRET}
			`+c.settings+`
		}
	}`)
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			assert.Equal(t, 400, resp.StatusCode, string(body))
			assert.Contains(t, string(body), c.want+": ", c.settings)
			assert.NotContains(t, string(body), v.MD5Key)
		}
	})
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
	tester := loadCaddy(t, `
		app_private_key `+testvec.Key("app_private_key_pkcs1.pem")+`
		alipay_public_key `+testvec.Key("alipay_public_key.pem")+`
		notify_timeout 300ms`, "reverse_proxy "+strings.TrimPrefix(hang.URL, "http://"), "")
	body := testvec.Load(t).Notify.Cases[0].PostBody
	start := time.Now()
	req, _ := http.NewRequest("POST", "http://localhost:9080/alipay/notify", strings.NewReader(body))
	tester.AssertResponse(req, http.StatusGatewayTimeout, "fail")
	assert.Less(t, time.Since(start), 3*time.Second)
	select {
	case <-cancelled:
	case <-time.After(5 * time.Second):
		t.Fatal("the request to the shop was not cancelled")
	}

	conn, err := net.Dial("tcp", "localhost:9080")
	require.NoError(t, err)
	defer conn.Close()
	fmt.Fprintf(conn, "POST /alipay/notify HTTP/1.1\r\nHost: localhost:9080\r\nContent-Length: %d\r\n\r\n%s", len(body), body[:10])
	start = time.Now()
	require.NoError(t, conn.SetDeadline(time.Now().Add(10*time.Second)))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err == nil {
		assert.Equal(t, http.StatusRequestTimeout, resp.StatusCode)
		resp.Body.Close()
	}
	assert.Less(t, time.Since(start), 5*time.Second, "cut off at notify_timeout, not at Caddy's minute")
}
