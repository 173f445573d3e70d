// Package snippets tests the shop-side code samples in this folder (PHP,
// Python, Node.js, Go) against the real handler: the pay tokens they make
// must start a payment, and the X-Alipay-Token that the handler makes must
// verify, while forged, stale or misdirected tokens must not.
//
// The scripts run through the drivers in drivers/, one process per
// command. A missing interpreter skips its language, or fails the test
// when the environment variable CI is set.
package snippets

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/json"
	"errors"
	"hash"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	alipay "github.com/caddy-alipay/caddy-alipay"
	"github.com/caddy-alipay/caddy-alipay/docs/snippets/go/shoptoken"
	"github.com/caddy-alipay/caddy-alipay/internal/protocol"
	"github.com/caddyserver/caddy/v2"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const (
	appID       = "2021000000000001"
	secret      = "0123456789abcdef0123456789abcdef-snippets"
	otherSecret = "fedcba9876543210fedcba9876543210-snippets"
	payPrefix   = "/alipay/pay?token="
)

// The files that go verbatim into docs/shop.md.
var snippetFiles = []string{
	"pay_token.php", "verify_token.php",
	"pay_token.py", "verify_token.py", "verify_token_pyjwt.py",
	"pay_token.js", "verify_token.js",
	"go/shoptoken/shoptoken.go",
	"api_call.php", "api_call.py", "api_call.js", "go/shoptoken/api.go",
}

// order is a pay order as the shop writes it into the token.
type order struct {
	OutTradeNo  string `json:"out_trade_no"`
	TotalAmount string `json:"total_amount"`
	Subject     string `json:"subject"`
	Product     string `json:"product,omitempty"`
}

// An impl is one language's snippets.
type impl struct {
	name  string
	makes bool // has pay-token snippets, not only verification

	// ready skips the test (fails it under CI) if the interpreter is missing.
	ready func(t *testing.T)
	// make runs op "make" (a token valid for ttl seconds) or "url" (the pay link).
	make func(t *testing.T, op string, o order, ttl int) string
	// verify returns the claims as JSON, or the snippet's refusal.
	verify func(t *testing.T, token, secret, appID string) ([]byte, error)
}

func impls() []impl {
	return []impl{
		scriptImpl("php", phpBin, "drivers/driver.php", true),
		scriptImpl("python", pythonBin, "drivers/driver.py", true),
		scriptImpl("python-pyjwt", pyjwtBin, "drivers/driver_pyjwt.py", false),
		scriptImpl("node", nodeBin, "drivers/driver.js", true),
		{
			name:  "go",
			makes: true,
			ready: func(*testing.T) {},
			make: func(t *testing.T, op string, o order, ttl int) string {
				so := shoptoken.Order{OutTradeNo: o.OutTradeNo, TotalAmount: o.TotalAmount, Subject: o.Subject, Product: o.Product}
				if op == "url" {
					return shoptoken.PayURL(so, secret)
				}
				return shoptoken.MakePayToken(so, secret, time.Duration(ttl)*time.Second)
			},
			verify: func(t *testing.T, token, secret, appID string) ([]byte, error) {
				c, err := shoptoken.VerifyAlipayToken(token, secret, appID)
				if err != nil {
					return nil, err
				}
				return json.Marshal(c)
			},
		},
	}
}

// each runs f for every impl (only those with pay snippets if makers).
func each(t *testing.T, makers bool, f func(t *testing.T, im impl)) {
	for _, im := range impls() {
		if makers && !im.makes {
			continue
		}
		t.Run(im.name, func(t *testing.T) {
			im.ready(t)
			f(t, im)
		})
	}
}

// Interpreters, looked up once.
var (
	phpBin    = sync.OnceValue(func() string { return lookPath("php") })
	nodeBin   = sync.OnceValue(func() string { return lookPath("/usr/bin/node", "node") })
	pythonBin = sync.OnceValue(func() string { return lookPath("/usr/bin/python3", "python3") })
	// pyjwtBin is a Python that has PyJWT (Debian: python3-jwt).
	pyjwtBin = sync.OnceValue(func() string {
		for _, p := range []string{"/usr/bin/python3", "python3"} {
			if path, err := exec.LookPath(p); err == nil && exec.Command(path, "-c", "import jwt").Run() == nil {
				return path
			}
		}
		return ""
	})
)

func lookPath(candidates ...string) string {
	for _, c := range candidates {
		if path, err := exec.LookPath(c); err == nil {
			return path
		}
	}
	return ""
}

// missing skips, or fails under CI.
func missing(t *testing.T, format string, args ...any) {
	t.Helper()
	if os.Getenv("CI") != "" {
		t.Fatalf(format, args...)
	}
	t.Skipf(format, args...)
}

// refusedExit is the drivers' exit status for a token that the snippet
// refused with its documented error; any other failure is a crash.
const refusedExit = 3

func scriptImpl(name string, bin func() string, driver string, makes bool) impl {
	run := func(t *testing.T, cmd map[string]any) (string, error) {
		t.Helper()
		in, err := json.Marshal(cmd)
		require.NoError(t, err)
		c := exec.Command(bin(), driver)
		c.Stdin = bytes.NewReader(in)
		c.Env = append(os.Environ(), "PYTHONDONTWRITEBYTECODE=1") // no __pycache__ in the tree
		var stdout, stderr bytes.Buffer
		c.Stdout, c.Stderr = &stdout, &stderr
		err = c.Run()
		var exit *exec.ExitError
		if errors.As(err, &exit) && exit.ExitCode() == refusedExit {
			return "", errors.New(strings.TrimSpace(stderr.String()))
		}
		require.NoError(t, err, "%s %s crashed on %s\nstdout: %s\nstderr: %s", bin(), driver, in, stdout.String(), stderr.String())
		require.Empty(t, stderr.String(), "%s wrote to stderr", driver)
		return stdout.String(), nil
	}
	return impl{
		name:  name,
		makes: makes,
		ready: func(t *testing.T) {
			if bin() == "" {
				missing(t, "%s: interpreter not found", name)
			}
		},
		make: func(t *testing.T, op string, o order, ttl int) string {
			out, err := run(t, map[string]any{"op": op, "order": o, "secret": secret, "ttl": ttl})
			require.NoError(t, err)
			return out
		},
		verify: func(t *testing.T, token, secret, appID string) ([]byte, error) {
			out, err := run(t, map[string]any{"op": "verify", "token": token, "secret": secret, "app_id": appID})
			return []byte(out), err
		},
	}
}

// newHandler is the real handler, provisioned with the repository's test keys.
func newHandler(t *testing.T) *alipay.Handler {
	t.Helper()
	h := &alipay.Handler{
		AppID:           appID,
		AppPrivateKey:   "../../testdata/keys/app_private_key_pkcs1.pem",
		AlipayPublicKey: "../../testdata/keys/alipay_public_key.pem",
		Secret:          secret,
		NotifyURL:       "https://shop.example.com/alipay/notify",
		ReturnURL:       "https://shop.example.com/alipay/return",
	}
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	t.Cleanup(cancel)
	require.NoError(t, h.Provision(ctx))
	require.NoError(t, h.Validate())
	return h
}

// upstream stands for the shop behind the handler. It answers as the
// README tells a shop to: a notification with the body success, which
// the handler takes for the shop's acknowledgement.
type upstream struct {
	calls int
	req   *http.Request
}

func (u *upstream) ServeHTTP(w http.ResponseWriter, r *http.Request) error {
	u.calls++
	u.req = r
	_, _ = io.Copy(io.Discard, r.Body) // as reverse_proxy does
	w.WriteHeader(http.StatusOK)
	_, _ = io.WriteString(w, "success")
	return nil
}

func tokenKey(t *testing.T, s string) *protocol.TokenKey {
	t.Helper()
	k, err := protocol.NewTokenKey(s)
	require.NoError(t, err)
	return k
}

func pay(t *testing.T, h *alipay.Handler, link string) *httptest.ResponseRecorder {
	t.Helper()
	w := httptest.NewRecorder()
	next := &upstream{}
	require.NoError(t, h.ServeHTTP(w, httptest.NewRequest("GET", "http://shop.example.com"+link, nil), next))
	assert.Zero(t, next.calls, "the pay endpoint never reaches the shop")
	return w
}

func TestPayTokenAcceptedByHandler(t *testing.T) {
	h := newHandler(t)
	orders := []struct {
		order
		method, productCode string
	}{
		{order{"T20240520_0001", "88.80", "VIP+会员 月卡", ""}, "alipay.trade.page.pay", "FAST_INSTANT_TRADE_PAY"},
		{order{"T20240520_0002", "0.01", "测试商品 <b>\"x\"\\ \u2028", "wap"}, "alipay.trade.wap.pay", "QUICK_WAP_WAY"},
		{order{"T20240520_0003", "100000000", "Max", "page"}, "alipay.trade.page.pay", "FAST_INSTANT_TRADE_PAY"},
	}
	each(t, true, func(t *testing.T, im impl) {
		for _, o := range orders {
			t.Run(o.OutTradeNo, func(t *testing.T) {
				link := im.make(t, "url", o.order, 0)
				require.True(t, strings.HasPrefix(link, payPrefix), "link %q", link)

				// The claims as the handler reads them: amount kept as a string, exp in 5 minutes.
				claims, err := tokenKey(t, secret).Parse(strings.TrimPrefix(link, payPrefix), time.Now())
				require.NoError(t, err)
				assert.JSONEq(t, `"`+o.TotalAmount+`"`, string(claims["total_amount"]))
				var exp int64
				require.NoError(t, json.Unmarshal(claims["exp"], &exp))
				assert.InDelta(t, time.Now().Add(5*time.Minute).Unix(), exp, 5)

				w := pay(t, h, link)
				require.Equal(t, http.StatusFound, w.Code, w.Body.String())
				loc, err := url.Parse(w.Header().Get("Location"))
				require.NoError(t, err)
				assert.Equal(t, "openapi.alipay.com", loc.Host)
				q := loc.Query()
				assert.Equal(t, o.method, q.Get("method"))
				assert.Equal(t, appID, q.Get("app_id"))
				assert.NotEmpty(t, q.Get("sign"))
				var biz map[string]string
				require.NoError(t, json.Unmarshal([]byte(q.Get("biz_content")), &biz), q.Get("biz_content"))
				assert.Equal(t, map[string]string{
					"out_trade_no": o.OutTradeNo,
					"total_amount": o.TotalAmount,
					"subject":      o.Subject,
					"product_code": o.productCode,
				}, biz)
			})
		}
		t.Run("ttl", func(t *testing.T) {
			tok := im.make(t, "make", orders[0].order, 600)
			claims, err := tokenKey(t, secret).Parse(tok, time.Now())
			require.NoError(t, err)
			var exp int64
			require.NoError(t, json.Unmarshal(claims["exp"], &exp))
			assert.InDelta(t, time.Now().Add(10*time.Minute).Unix(), exp, 5)
			assert.Equal(t, http.StatusFound, pay(t, h, payPrefix+tok).Code)
		})
		t.Run("expired", func(t *testing.T) {
			w := pay(t, h, payPrefix+im.make(t, "make", orders[0].order, -10))
			assert.Equal(t, http.StatusForbidden, w.Code)
			assert.Contains(t, w.Body.String(), "expired")
		})
		t.Run("other secret", func(t *testing.T) {
			tok := im.make(t, "make", orders[0].order, 300)
			_, err := tokenKey(t, otherSecret).Parse(tok, time.Now())
			assert.ErrorIs(t, err, protocol.ErrTokenInvalid)
		})
	})
}

// callbackClaims are an X-Alipay-Token's claims as the handler writes them.
func callbackClaims(now time.Time, event string) alipay.CallbackClaims {
	return alipay.CallbackClaims{
		Issuer:    alipay.TokenIssuer,
		Audience:  appID,
		IssuedAt:  now.Unix(),
		ExpiresAt: now.Add(5 * time.Minute).Unix(),
		ID:        "2024052001222131502046880500000001",
		Event:     event,
		Params: map[string]string{
			"app_id":       appID,
			"out_trade_no": "T20240520_0001",
			"trade_no":     "2024052022001446880500000001",
			"trade_status": "TRADE_SUCCESS",
			"total_amount": "88.80",
			"subject":      "VIP+会员 月卡 & <b>/\"\\",
			"gmt_payment":  "2024-05-20 13:14:35",
		},
	}
}

func sign(t *testing.T, key string, claims any) string {
	t.Helper()
	tok, err := tokenKey(t, key).Sign(claims)
	require.NoError(t, err)
	return tok
}

func TestVerifyCallbackToken(t *testing.T) {
	now := time.Now()
	cases := map[string]alipay.CallbackClaims{
		"notify": callbackClaims(now, "notify"),
		"return": callbackClaims(now, "return"),
		// Expired 30 s ago: within the 60 s of leeway.
		"within leeway": callbackClaims(now.Add(-5*time.Minute-30*time.Second), "notify"),
	}
	each(t, false, func(t *testing.T, im impl) {
		for name, want := range cases {
			t.Run(name, func(t *testing.T) {
				out, err := im.verify(t, sign(t, secret, &want), secret, appID)
				require.NoError(t, err)
				var got alipay.CallbackClaims
				require.NoError(t, json.Unmarshal(out, &got), string(out))
				assert.Equal(t, want, got)
			})
		}
	})
}

func b64(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }

// handMade is a token with any header, MACed with mac (none: no signature).
func handMade(t *testing.T, header string, claims any, mac func() hash.Hash, key string) string {
	t.Helper()
	body, err := json.Marshal(claims)
	require.NoError(t, err)
	input := b64(header) + "." + b64(string(body))
	if mac == nil {
		return input + "."
	}
	m := hmac.New(mac, []byte(key))
	m.Write([]byte(input))
	return input + "." + base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// refusals are tokens that every snippet must refuse.
func refusals(t *testing.T) map[string]string {
	now := time.Now()
	good := callbackClaims(now, "notify")
	valid := sign(t, secret, &good)
	parts := strings.Split(valid, ".")
	with := func(edit func(c *alipay.CallbackClaims)) string {
		c := callbackClaims(now, "notify")
		edit(&c)
		return sign(t, secret, &c)
	}
	tampered := good
	tampered.Params = map[string]string{"out_trade_no": "T20240520_0001", "total_amount": "0.01", "trade_status": "TRADE_SUCCESS"}
	tamperedBody, err := json.Marshal(&tampered)
	require.NoError(t, err)
	noExp := map[string]any{"iss": alipay.TokenIssuer, "aud": appID, "iat": now.Unix(), "jti": "x", "event": "notify", "params": good.Params}
	lastChar := parts[2][len(parts[2])-1:]
	flipped := map[string]string{"A": "Q", "Q": "g", "g": "w", "w": "A"}[lastChar]
	if flipped == "" {
		flipped = "A" // the last character of a 32-byte MAC's base64url is one of AQgw
	}

	const hs256 = `{"alg":"HS256","typ":"JWT"}`
	return map[string]string{
		"wrong secret":          sign(t, otherSecret, &good),
		"tampered payload":      parts[0] + "." + b64(string(tamperedBody)) + "." + parts[2],
		"tampered signature":    parts[0] + "." + parts[1] + "." + parts[2][:len(parts[2])-1] + flipped,
		"no signature":          parts[0] + "." + parts[1] + ".",
		"expired beyond leeway": with(func(c *alipay.CallbackClaims) { c.IssuedAt -= 420; c.ExpiresAt = now.Unix() - 120 }),
		"no exp":                handMade(t, hs256, noExp, sha256.New, secret),
		"wrong aud":             with(func(c *alipay.CallbackClaims) { c.Audience = "2021000000000002" }),
		"no aud":                with(func(c *alipay.CallbackClaims) { c.Audience = "" }),
		"wrong iss":             with(func(c *alipay.CallbackClaims) { c.Issuer = "someone-else" }),
		"no iss":                with(func(c *alipay.CallbackClaims) { c.Issuer = "" }),
		"alg none, no MAC":      handMade(t, `{"alg":"none","typ":"JWT"}`, &good, nil, ""),
		"alg none, HS256 MAC":   handMade(t, `{"alg":"none","typ":"JWT"}`, &good, sha256.New, secret),
		"alg HS512, HS512 MAC":  handMade(t, `{"alg":"HS512","typ":"JWT"}`, &good, sha512.New, secret),
		"alg HS512, HS256 MAC":  handMade(t, `{"alg":"HS512","typ":"JWT"}`, &good, sha256.New, secret),
		"no alg, HS256 MAC":     handMade(t, `{"typ":"JWT"}`, &good, sha256.New, secret),
		"two segments":          parts[0] + "." + parts[1],
		"four segments":         valid + "." + parts[2],
		"empty":                 "",
	}
}

func TestVerifyRefusals(t *testing.T) {
	tokens := refusals(t)
	each(t, false, func(t *testing.T, im impl) {
		for name, tok := range tokens {
			t.Run(name, func(t *testing.T) {
				out, err := im.verify(t, tok, secret, appID)
				require.Error(t, err, "accepted, with claims %s", out)
				t.Logf("refused: %v", err)
			})
		}
	})
}

// TestVerifyRealHeader runs signed Alipay callbacks from the repository's
// vectors through the handler and verifies the X-Alipay-Token that it
// forwards to the shop.
func TestVerifyRealHeader(t *testing.T) {
	data, err := os.ReadFile("../../testdata/vectors.json")
	require.NoError(t, err)
	var vec struct {
		Notify struct {
			Cases []struct {
				Name        string            `json:"name"`
				Params      map[string]string `json:"params"`
				PostBody    string            `json:"post_body"`
				ContentType string            `json:"content_type"`
			} `json:"cases"`
		} `json:"notify"`
		Return struct {
			RedirectURL string `json:"redirect_url"`
		} `json:"return_url"`
	}
	require.NoError(t, json.Unmarshal(data, &vec))
	require.NotEmpty(t, vec.Notify.Cases)
	h := newHandler(t)

	type forwarded struct {
		name, event, jti, token string
		params                  map[string]string
	}
	var tokens []forwarded
	for _, c := range vec.Notify.Cases {
		r := httptest.NewRequest("POST", "http://shop.example.com/alipay/notify", strings.NewReader(c.PostBody))
		r.Header.Set("Content-Type", c.ContentType)
		next := &upstream{}
		w := httptest.NewRecorder()
		require.NoError(t, h.ServeHTTP(w, r, next))
		require.Equal(t, "success", w.Body.String(), c.Name)
		require.Equal(t, 1, next.calls)
		tokens = append(tokens, forwarded{c.Name, "notify", c.Params["notify_id"], next.req.Header.Get(alipay.TokenHeader), nil})
	}
	ret, err := url.Parse(vec.Return.RedirectURL)
	require.NoError(t, err)
	next := &upstream{}
	require.NoError(t, h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "http://shop.example.com/alipay/return?"+ret.RawQuery, nil), next))
	require.Equal(t, 1, next.calls, "the return vector was not accepted")
	tokens = append(tokens, forwarded{"return", "return", "", next.req.Header.Get(alipay.TokenHeader), nil})

	// What the handler put in each token, read with its own parser.
	for i := range tokens {
		claims, err := tokenKey(t, secret).Parse(tokens[i].token, time.Now())
		require.NoError(t, err)
		require.NoError(t, json.Unmarshal(claims["params"], &tokens[i].params))
		require.NotEmpty(t, tokens[i].params["total_amount"])
	}

	each(t, false, func(t *testing.T, im impl) {
		for _, f := range tokens {
			t.Run(f.name, func(t *testing.T) {
				out, err := im.verify(t, f.token, secret, appID)
				require.NoError(t, err)
				var got alipay.CallbackClaims
				require.NoError(t, json.Unmarshal(out, &got), string(out))
				assert.Equal(t, alipay.TokenIssuer, got.Issuer)
				assert.Equal(t, appID, got.Audience)
				assert.Equal(t, f.event, got.Event)
				if f.jti != "" {
					assert.Equal(t, f.jti, got.ID)
				} else {
					assert.Len(t, got.ID, 32)
				}
				assert.Equal(t, got.IssuedAt+300, got.ExpiresAt)
				assert.Equal(t, f.params, got.Params)

				_, err = im.verify(t, f.token, otherSecret, appID)
				assert.Error(t, err, "verified with another secret")
				_, err = im.verify(t, f.token, secret, "2021000000000002")
				assert.Error(t, err, "verified for another app")
			})
		}
	})
}

// TestPHPLint checks the PHP snippets' syntax.
func TestPHPLint(t *testing.T) {
	php := phpBin()
	if php == "" {
		missing(t, "php: interpreter not found")
	}
	for _, f := range []string{"pay_token.php", "verify_token.php", "drivers/driver.php", "api_call.php", "drivers/api_driver.php"} {
		out, err := exec.Command(php, "-l", f).CombinedOutput()
		assert.NoError(t, err, "php -l %s: %s", f, out)
	}
}

// TestDocsHaveSnippets checks that docs/shop.md shows each snippet as it
// is tested here.
func TestDocsHaveSnippets(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join("..", "shop.md"))
	require.NoError(t, err, "docs/shop.md must show each of docs/snippets/{%s} verbatim", strings.Join(snippetFiles, ","))
	for _, f := range snippetFiles {
		snippet, err := os.ReadFile(filepath.FromSlash(f))
		require.NoError(t, err)
		if !strings.Contains(string(doc), strings.TrimSpace(string(snippet))) {
			t.Errorf("docs/shop.md lacks docs/snippets/%s: paste the file verbatim (the test compares strings.TrimSpace of it)", f)
		}
	}
}

// The demo shops carry copies of the token snippets' functions, so that
// each stays a standalone example; this keeps the copies from drifting.
// pay_url is left out of the shops: they choose the token's lifetime.
func TestShopsCopySnippets(t *testing.T) {
	topLevel := regexp.MustCompile(`(?m)^(def|function) `)
	for shopFile, snippets := range map[string][]string{
		"../../examples/php-shop/alipay_token.php":        {"pay_token.php", "verify_token.php"},
		"../../examples/python-shop/shop.py":              {"pay_token.py", "verify_token.py"},
		"../../examples/django-shop/shop/alipay_token.py": {"pay_token.py", "verify_token.py"},
	} {
		shop, err := os.ReadFile(shopFile)
		require.NoError(t, err)
		for _, name := range snippets {
			snippet, err := os.ReadFile(name)
			require.NoError(t, err)
			starts := topLevel.FindAllIndex(snippet, -1)
			require.NotEmpty(t, starts, name)
			for k, st := range starts {
				end := len(snippet)
				if k+1 < len(starts) {
					end = starts[k+1][0]
				}
				fn := strings.TrimSpace(string(snippet[st[0]:end]))
				if strings.HasPrefix(fn, "def pay_url") || strings.HasPrefix(fn, "function pay_url") {
					continue
				}
				assert.Contains(t, string(shop), fn, "%s no longer carries this function of %s as it is", shopFile, name)
			}
		}
	}
}
