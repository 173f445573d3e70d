package snippets

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	alipay "github.com/caddy-alipay/caddy-alipay"
	"github.com/caddy-alipay/caddy-alipay/docs/snippets/go/shoptoken"
	"github.com/caddy-alipay/caddy-alipay/sandbox"
	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// apiCall is one language's alipay_api: the answer, or the snippet's error.
type apiCall func(t *testing.T, method string, biz map[string]any, secret, base string) (map[string]any, error)

// An apiImpl is one language's API snippet; ready skips the test (fails it
// under CI) if the interpreter is missing.
type apiImpl struct {
	name  string
	ready func(t *testing.T)
	call  apiCall
}

func apiImpls() []apiImpl {
	script := func(name string, bin func() string, driver string) (func(t *testing.T), apiCall) {
		ready := func(t *testing.T) {
			if bin() == "" {
				missing(t, "%s: interpreter not found", name)
			}
		}
		return ready, func(t *testing.T, method string, biz map[string]any, secret, base string) (map[string]any, error) {
			t.Helper()
			in, err := json.Marshal(map[string]any{"method": method, "biz": biz, "secret": secret, "base": base})
			require.NoError(t, err)
			c := exec.Command(bin(), driver)
			c.Stdin = bytes.NewReader(in)
			// No __pycache__ in the tree; loopback never through a proxy (urllib honours http_proxy).
			c.Env = append(os.Environ(), "PYTHONDONTWRITEBYTECODE=1", "no_proxy=127.0.0.1,localhost", "NO_PROXY=127.0.0.1,localhost")
			var stdout, stderr bytes.Buffer
			c.Stdout, c.Stderr = &stdout, &stderr
			err = c.Run()
			var exit *exec.ExitError
			if errors.As(err, &exit) && exit.ExitCode() == refusedExit {
				return nil, errors.New(strings.TrimSpace(stderr.String()))
			}
			require.NoError(t, err, "%s %s crashed on %s\nstdout: %s\nstderr: %s", bin(), driver, in, stdout.String(), stderr.String())
			require.Empty(t, stderr.String(), "%s wrote to stderr", driver)
			var out map[string]any
			require.NoError(t, json.Unmarshal(stdout.Bytes(), &out), stdout.String())
			return out, nil
		}
	}
	var out []apiImpl
	for _, s := range []struct {
		name   string
		bin    func() string
		driver string
	}{
		{"php", phpBin, "drivers/api_driver.php"},
		{"python", pythonBin, "drivers/api_driver.py"},
		{"node", nodeBin, "drivers/api_driver.js"},
	} {
		ready, call := script(s.name, s.bin, s.driver)
		out = append(out, apiImpl{s.name, ready, call})
	}
	return append(out, apiImpl{"go", func(*testing.T) {}, func(t *testing.T, method string, biz map[string]any, secret, base string) (map[string]any, error) {
		return shoptoken.AlipayAPI(method, biz, secret, base)
	}})
}

// apiWorld is the real sidecar on loopback, with alipay_sandbox as its
// gateway and a shop behind it that takes the notifications.
type apiWorld struct {
	site, gateway *httptest.Server
	notified      chan string // the paths of requests that reached the shop
}

func newAPIWorld(t *testing.T, appPrivateKey string) *apiWorld {
	t.Helper()
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	t.Cleanup(cancel)

	sb := &sandbox.Handler{AppPublicKey: "../../testdata/keys/app_public_key.pem", AlipayPrivateKey: "../../testdata/keys/alipay_private_key_pkcs1.pem"}
	require.NoError(t, sb.Provision(ctx))
	t.Cleanup(func() { _ = sb.Cleanup() })
	notFound := caddyhttp.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) error {
		w.WriteHeader(http.StatusNotFound)
		return nil
	})
	w := &apiWorld{notified: make(chan string, 16)}
	w.gateway = httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) { _ = sb.ServeHTTP(rw, r, notFound) }))
	t.Cleanup(w.gateway.Close)

	h := &alipay.Handler{}
	// The shop reads what it is sent and acknowledges a notification with
	// the body success, as the README tells a shop to.
	shop := caddyhttp.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) error {
		_, _ = io.Copy(io.Discard, r.Body)
		rw.WriteHeader(http.StatusOK)
		if r.URL.Path == "/alipay/notify" {
			_, _ = io.WriteString(rw, "success")
		}
		w.notified <- r.URL.Path
		return nil
	})
	w.site = httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) { _ = h.ServeHTTP(rw, r, shop) }))
	t.Cleanup(w.site.Close)
	*h = alipay.Handler{
		AppID:           appID,
		AppPrivateKey:   appPrivateKey,
		AlipayPublicKey: "../../testdata/keys/alipay_public_key.pem",
		Secret:          secret,
		Gateway:         w.gateway.URL + "/gateway.do",
		NotifyURL:       w.site.URL + "/alipay/notify",
		ReturnURL:       w.site.URL + "/alipay/return",
	}
	require.NoError(t, h.Provision(ctx))
	require.NoError(t, h.Validate())
	return w
}

var payFormRE = regexp.MustCompile(`action="(/sandbox/cashier/[0-9a-f]+/pay)"`)

// pay opens the order through the sidecar's pay link, pays it at the
// sandbox's cashier and waits for the return and the notification to reach the shop.
func (w *apiWorld) pay(t *testing.T, o shoptoken.Order) {
	t.Helper()
	// pay link -> 302 to the sandbox's gateway -> 302 to its cashier
	resp, err := http.Get(w.site.URL + shoptoken.PayURL(o, secret))
	require.NoError(t, err)
	page, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode, string(page))
	m := payFormRE.FindSubmatch(page)
	require.NotNil(t, m, "no Pay form in the cashier:\n%s", page)

	// Pay -> 302 to the sidecar's return -> the shop
	resp, err = http.Post(w.gateway.URL+string(m[1]), "application/x-www-form-urlencoded", nil)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	got := map[string]bool{}
	for len(got) < 2 {
		select {
		case p := <-w.notified:
			got[p] = true
		case <-time.After(10 * time.Second):
			t.Fatalf("the shop got only %v", got)
		}
	}
	require.Equal(t, map[string]bool{"/alipay/return": true, "/alipay/notify": true}, got)
}

// TestAPISnippets calls the sandbox's OpenAPI through the real sidecar with
// each language's alipay_api: query a paid trade, refund part of it, retry
// the refund, and fail with a wrong secret, a refund without out_request_no,
// and an app key that the gateway does not know (an error_response).
func TestAPISnippets(t *testing.T) {
	w := newAPIWorld(t, "../../testdata/keys/app_private_key_pkcs1.pem")
	// A sidecar that signs with another key than the app's: the sandbox refuses its calls.
	other, err := rsa.GenerateKey(rand.Reader, 2048)
	require.NoError(t, err)
	wrongKey := newAPIWorld(t, string(pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(other)})))
	for _, im := range apiImpls() {
		t.Run(im.name, func(t *testing.T) {
			im.ready(t)
			no := "API_" + im.name
			w.pay(t, shoptoken.Order{OutTradeNo: no, TotalAmount: "9.90", Subject: "API 测试 " + im.name})

			q, err := im.call(t, "alipay.trade.query", map[string]any{"out_trade_no": no}, secret, w.site.URL)
			require.NoError(t, err)
			assertFields(t, map[string]any{"code": "10000", "out_trade_no": no, "trade_status": "TRADE_SUCCESS", "total_amount": "9.90"}, q)

			refund := map[string]any{"out_trade_no": no, "refund_amount": "1.00", "out_request_no": "R-" + im.name}
			r, err := im.call(t, "alipay.trade.refund", refund, secret, w.site.URL)
			require.NoError(t, err)
			assertFields(t, map[string]any{"code": "10000", "fund_change": "Y", "refund_fee": "1.00"}, r)
			r, err = im.call(t, "alipay.trade.refund", refund, secret, w.site.URL)
			require.NoError(t, err)
			assertFields(t, map[string]any{"code": "10000", "fund_change": "N", "refund_fee": "1.00"}, r)

			_, err = im.call(t, "alipay.trade.query", map[string]any{"out_trade_no": no}, otherSecret, w.site.URL)
			require.Error(t, err, "a wrong secret was accepted")
			assert.Contains(t, err.Error(), "alipay api 401: invalid bearer token: the signature does not verify")

			// The sidecar's 400, passed on.
			_, err = im.call(t, "alipay.trade.refund", map[string]any{"out_trade_no": no, "refund_amount": "1.00"}, secret, w.site.URL)
			require.Error(t, err, "a refund without out_request_no was accepted")
			assert.Contains(t, err.Error(), "alipay api 400: out_request_no: required")

			// The gateway's unsigned error_response: its code and msg, passed on.
			_, err = im.call(t, "alipay.trade.query", map[string]any{"out_trade_no": no}, secret, wrongKey.site.URL)
			require.Error(t, err, "an unsigned error_response was accepted")
			assert.Contains(t, err.Error(), "alipay api 502: the gateway refused the call (error_response) (40002 Invalid Arguments)")
		})
	}
}

func assertFields(t *testing.T, want, got map[string]any) {
	t.Helper()
	for k, v := range want {
		assert.Equal(t, v, got[k], k)
	}
}
