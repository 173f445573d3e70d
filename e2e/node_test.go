package e2e

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// nodeRequest is a page-pay request for node/sign.js to sign.
type nodeRequest struct {
	ID          string `json:"id"`
	HTTP        string `json:"http"` // GET or POST
	OutTradeNo  string `json:"out_trade_no"`
	TotalAmount string `json:"total_amount"`
	Subject     string `json:"subject"`
	NotifyURL   string `json:"notify_url,omitempty"`
	ReturnURL   string `json:"return_url,omitempty"`
}

// nodeResult is what node/notify_server.js received.
type nodeResult struct {
	Kind   string            `json:"kind"` // notify or return
	V1     bool              `json:"v1"`   // checkNotifySign
	V2     bool              `json:"v2"`   // checkNotifySignV2
	OK     bool              `json:"ok"`
	Params map[string]string `json:"params"`
}

// TestNodeSDK checks the sandbox against Alipay's official Node.js SDK
// (alipay-sdk 4.14.0): it accepts the requests that the SDK's pageExecute
// signs, GET and POST, and the SDK accepts the notifications and returns
// that the sandbox signs.
func TestNodeSDK(t *testing.T) {
	needTool(t, "node")
	nodeDir := filepath.Join(repoRoot, "e2e", "node")
	ensureNodeModules(t, nodeDir)

	gateway := fmt.Sprintf("http://127.0.0.1:%d", freePort(t))
	startCaddy(t, "caddy-node", caddyGlobals+fmt.Sprintf(`
http://%s {
	bind 127.0.0.1
	alipay_sandbox {
		app_public_key %s
		alipay_private_key %s
		notify_retry 1s 1s 2s 2s
	}
}
`, strings.TrimPrefix(gateway, "http://"), keys.AppPublic, keys.AlipayPrivate), gateway+"/")

	shopPort := freePort(t)
	shop := fmt.Sprintf("http://127.0.0.1:%d", shopPort)
	env := []string{
		"APP_ID=" + appID,
		"APP_PRIVATE_KEY=" + keys.AppPrivate,
		"ALIPAY_PUBLIC_KEY=" + keys.AlipayPublic, // the sandbox's, as Alipay's
		"GATEWAY=" + gateway + "/gateway.do",
		fmt.Sprintf("PORT=%d", shopPort),
	}
	server := startProc(t, "node-notify-server", nodeDir, env, "node", "notify_server.js")
	waitHTTP(t, server, shop+"/results")

	suffix := randomHex(t, 6)
	const amount, subject = "12.34", "SDK 测试商品"
	reqs := []nodeRequest{
		{ID: "get", HTTP: "GET", OutTradeNo: "NODEGET" + suffix},
		{ID: "post", HTTP: "POST", OutTradeNo: "NODEPOST" + suffix},
		{ID: "browser", HTTP: "POST", OutTradeNo: "NODEBROWSER" + suffix},
		{ID: "notify", HTTP: "GET", OutTradeNo: "NODENOTIFY" + suffix, NotifyURL: shop + "/notify", ReturnURL: shop + "/return"},
	}
	for i := range reqs {
		reqs[i].TotalAmount, reqs[i].Subject = amount, subject
	}
	signed := nodeSign(t, nodeDir, env, reqs)

	// cashierOK checks that an answer of the gateway is a 302 to a cashier
	// that shows the order, and returns the cashier's path.
	cashierOK := func(t *testing.T, resp *http.Response, body string) string {
		t.Helper()
		require.Equal(t, http.StatusFound, resp.StatusCode, "the sandbox refused the SDK's request:\n%s", body)
		loc := resp.Header.Get("Location")
		require.True(t, strings.HasPrefix(loc, "/sandbox/cashier/"), loc)
		resp, page := httpGet(t, gateway+loc)
		require.Equal(t, http.StatusOK, resp.StatusCode)
		assert.Contains(t, page, `<span id="amount">`+amount+`</span>`)
		assert.Contains(t, page, `<p id="subject">`+subject+`</p>`)
		return loc
	}

	t.Run("GET", func(t *testing.T) {
		resp, body := httpGet(t, signed["get"].URL)
		cashierOK(t, resp, body)
	})

	t.Run("bad signature", func(t *testing.T) {
		// The same request with another amount: the sandbox does check.
		u, err := url.Parse(signed["get"].URL)
		require.NoError(t, err)
		q := u.Query()
		q.Set("biz_content", strings.Replace(q.Get("biz_content"), amount, "0.01", 1))
		u.RawQuery = q.Encode()
		resp, body := httpGet(t, u.String())
		assert.Equal(t, http.StatusBadRequest, resp.StatusCode)
		assert.Contains(t, body, `<b id="error-code">invalid-signature</b>`)
	})

	t.Run("POST", func(t *testing.T) {
		action, form := parseSDKForm(t, signed["post"].Form)
		resp, body := httpPostForm(t, action, form.Encode())
		cashierOK(t, resp, body)
	})

	t.Run("POST form in the browser", func(t *testing.T) {
		// The page a shop serves: the SDK's form, which submits itself.
		page := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			fmt.Fprintf(w, "<!doctype html><html><head><meta charset=\"utf-8\"></head><body>%s</body></html>", signed["browser"].Form)
		}))
		defer page.Close()
		tab := newTab(t)
		open(t, tab, page.URL)
		waitLocation(t, tab, gateway+"/sandbox/cashier/", 20*time.Second)
		assert.Equal(t, amount, textOf(t, tab, "amount"))
		assert.Equal(t, subject, textOf(t, tab, "subject"))
	})

	t.Run("notify", func(t *testing.T) {
		resp, body := httpGet(t, signed["notify"].URL)
		cashier := cashierOK(t, resp, body)
		resp, body = httpPostForm(t, gateway+cashier+"/pay", "")
		require.Equal(t, http.StatusFound, resp.StatusCode, body)
		back := resp.Header.Get("Location")
		require.True(t, strings.HasPrefix(back, shop+"/return?"), back)
		resp, body = httpGet(t, back)
		assert.Equal(t, http.StatusOK, resp.StatusCode, "the SDK verifies the return: %s", body)

		awaitNodeNotify(t, shop, server, "NODENOTIFY"+suffix, amount, subject)

		// Answered success at once: no repeat after the first retry wait.
		time.Sleep(1500 * time.Millisecond)
		var notifies, returns int
		for _, r := range nodeResults(t, shop) {
			switch r.Kind {
			case "notify":
				notifies++
			case "return":
				returns++
				assert.True(t, r.V1 && r.V2, "the SDK verifies the return: %+v", r)
			}
		}
		assert.Equal(t, 1, notifies, "one notification, answered success")
		assert.Equal(t, 1, returns)
	})
}

// ensureNodeModules runs npm ci in dir when its node_modules is missing.
func ensureNodeModules(t *testing.T, dir string) {
	t.Helper()
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "alipay-sdk", "package.json")); err == nil {
		return
	}
	needTool(t, "npm")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "npm", "ci", "--no-audit", "--no-fund")
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("npm ci in %s: %v\n%s", dir, err, out)
	}
}

// signedRequest is a request that node/sign.js signed: a URL (GET) or the
// SDK's HTML form (POST).
type signedRequest struct {
	ID   string `json:"id"`
	URL  string `json:"url"`
	Form string `json:"form"`
}

func nodeSign(t *testing.T, dir string, env []string, reqs []nodeRequest) map[string]signedRequest {
	t.Helper()
	arg, err := json.Marshal(reqs)
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), stepTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "node", "sign.js", string(arg))
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	require.NoError(t, err, "node sign.js")
	var signed []signedRequest
	require.NoError(t, json.Unmarshal(out, &signed), "%s", out)
	m := map[string]signedRequest{}
	for _, s := range signed {
		m[s.ID] = s
	}
	return m
}

var (
	sdkFormRE  = regexp.MustCompile(`<form action="([^"]*)" method="post"`)
	sdkInputRE = regexp.MustCompile(`<input type="hidden" name="([^"]*)" value="([^"]*)" />`)
)

// parseSDKForm reads the form that the SDK's pageExecute makes for POST:
// the common parameters in the action's query, the others (biz_content) as
// hidden inputs. The SDK escapes only " in values (as &quot;) and nothing
// in the action, so only that is undone, as a browser reads them.
func parseSDKForm(t *testing.T, form string) (string, url.Values) {
	t.Helper()
	m := sdkFormRE.FindStringSubmatch(form)
	require.NotNil(t, m, "no form in:\n%s", form)
	values := url.Values{}
	for _, in := range sdkInputRE.FindAllStringSubmatch(form, -1) {
		values.Add(in[1], strings.ReplaceAll(in[2], "&quot;", `"`))
	}
	require.NotEmpty(t, values.Get("biz_content"), "the SDK posts biz_content in the body:\n%s", form)
	return m[1], values
}

func nodeResults(t *testing.T, shop string) []nodeResult {
	t.Helper()
	resp, body := httpGet(t, shop+"/results")
	require.Equal(t, http.StatusOK, resp.StatusCode)
	var rs []nodeResult
	require.NoError(t, json.Unmarshal([]byte(body), &rs), body)
	return rs
}

func randomHex(t *testing.T, n int) string {
	t.Helper()
	b := make([]byte, n)
	_, err := rand.Read(b)
	require.NoError(t, err)
	return strings.ToUpper(hex.EncodeToString(b))
}

// nodeAppOrderJS makes an app-pay order string with the SDK's sdkExecute,
// as a shop's server does for its mobile app, with the current time.
// argv[1]: { out_trade_no, total_amount, subject, notify_url }.
const nodeAppOrderJS = `
const fs = require('node:fs');
const { AlipaySdk } = require('alipay-sdk');
const sdk = new AlipaySdk({
  appId: process.env.APP_ID,
  privateKey: fs.readFileSync(process.env.APP_PRIVATE_KEY, 'ascii'),
  alipayPublicKey: fs.readFileSync(process.env.ALIPAY_PUBLIC_KEY, 'ascii'),
  signType: 'RSA2',
});
const r = JSON.parse(process.argv[1]);
process.stdout.write(sdk.sdkExecute('alipay.trade.app.pay', {
  notifyUrl: r.notify_url,
  bizContent: { out_trade_no: r.out_trade_no, total_amount: r.total_amount, subject: r.subject, product_code: 'QUICK_MSECURITY_PAY' },
}));
`

var appPayFormRE = regexp.MustCompile(`action="(/sandbox/cashier/[^"]+/pay)"`)

// TestNodeSDKAppPay checks app pay end to end with Alipay's official
// Node.js SDK: the order string that its sdkExecute makes is accepted by
// the sandbox's app page as it is, the buyer pays on the cashier, and the
// notification reaches the shop's notify_url, where the SDK verifies it.
func TestNodeSDKAppPay(t *testing.T) {
	needTool(t, "node")
	nodeDir := filepath.Join(repoRoot, "e2e", "node")
	ensureNodeModules(t, nodeDir)

	port := freePort(t)
	gateway := fmt.Sprintf("http://127.0.0.1:%d", port)
	startCaddy(t, "caddy-node-app", caddyGlobals+sandboxSite(port, "notify_retry 1s 1s 2s 2s"), gateway+"/")

	shopPort := freePort(t)
	shop := fmt.Sprintf("http://127.0.0.1:%d", shopPort)
	env := []string{
		"APP_ID=" + appID,
		"APP_PRIVATE_KEY=" + keys.AppPrivate,     // the key the sandbox checks with keys.AppPublic
		"ALIPAY_PUBLIC_KEY=" + keys.AlipayPublic, // the sandbox's, as Alipay's
		fmt.Sprintf("PORT=%d", shopPort),
	}
	server := startProc(t, "node-app-notify-server", nodeDir, env, "node", "notify_server.js")
	waitHTTP(t, server, shop+"/results")

	const amount, subject = "6.66", "App 支付 测试"
	outTradeNo := "NODEAPP" + randomHex(t, 6)
	arg, err := json.Marshal(map[string]string{"out_trade_no": outTradeNo, "total_amount": amount, "subject": subject, "notify_url": shop + "/notify"})
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), stepTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "node", "-e", nodeAppOrderJS, string(arg))
	cmd.Dir = nodeDir // require resolves from here
	// The SDK writes the timestamp in the process's local zone: Beijing
	// time, as on a shop's server in China, rather than the host's.
	cmd.Env = append(os.Environ(), append(env, "TZ=Asia/Shanghai")...)
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	require.NoError(t, err, "node sdkExecute")
	orderString := string(out)
	require.Contains(t, orderString, "&sign=")

	resp, page := httpGet(t, gateway+"/sandbox/app?order_string="+url.QueryEscape(orderString))
	if resp.StatusCode == http.StatusFound || resp.StatusCode == http.StatusSeeOther {
		resp, page = httpGet(t, gateway+resp.Header.Get("Location"))
	}
	require.Equal(t, http.StatusOK, resp.StatusCode, "the sandbox refused the SDK's order string:\n%s", page)
	assert.NotContains(t, page, `id="error-code"`)
	assert.Contains(t, page, `<p id="subject">`+subject+`</p>`)
	assert.Contains(t, page, `<span id="amount">`+amount+`</span>`)
	m := appPayFormRE.FindStringSubmatch(page)
	require.NotNil(t, m, "no pay form on the cashier:\n%s", page)

	resp, body := httpPostForm(t, gateway+m[1], "")
	require.Less(t, resp.StatusCode, 400, "paying on the cashier: %s", body)

	notify := awaitNodeNotify(t, shop, server, outTradeNo, amount, subject)
	assert.True(t, notify.OK, "verified and for this app")
}

// awaitNodeNotify waits until the order's notification has reached
// node/notify_server.js and checks that both of the SDK's checks accepted
// a paid trade_status_sync with this amount and subject.
func awaitNodeNotify(t *testing.T, shop string, server *proc, outTradeNo, amount, subject string) nodeResult {
	t.Helper()
	var notify nodeResult
	deadline := time.Now().Add(15 * time.Second)
	for notify.Kind == "" {
		for _, r := range nodeResults(t, shop) {
			if r.Kind == "notify" && r.Params["out_trade_no"] == outTradeNo {
				notify = r
			}
		}
		if notify.Kind == "" {
			require.True(t, time.Now().Before(deadline), "no notification reached the Node server:\n%s", server.log())
			time.Sleep(100 * time.Millisecond)
		}
	}
	assert.True(t, notify.V1, "checkNotifySign accepts the sandbox's notification")
	assert.True(t, notify.V2, "checkNotifySignV2 accepts the sandbox's notification")
	assert.Equal(t, "TRADE_SUCCESS", notify.Params["trade_status"])
	assert.Equal(t, amount, notify.Params["total_amount"])
	assert.Equal(t, subject, notify.Params["subject"])
	assert.Equal(t, "trade_status_sync", notify.Params["notify_type"])
	return notify
}

// nodeEncryptedQueryJS queries orders with the SDK's exec, with content
// encryption (needEncrypt) and without, and prints each answer as exec
// returns it (decrypted by the SDK when encrypted). exec verifies an
// answer's signature only when asked to (validateSign), and is left at
// that default here: the SDK cuts the signed text out of the answer
// between the value's braces, and an encrypted answer's value is a JSON
// string, without braces, which Alipay signs with its two quotes (as the
// Java and PHP SDKs verify it); for {"..._response":"<base64>","sign":"…"}
// the SDK verifies :"<base64>","sign":"…"} instead, so asking it to verify
// would refuse every correctly signed encrypted answer. The sandbox's
// signature over the quoted string is checked by its own tests.
// argv[1]: [{ out_trade_no, encrypt }].
const nodeEncryptedQueryJS = `
const fs = require('node:fs');
const { AlipaySdk } = require('alipay-sdk');
const sdk = new AlipaySdk({
  appId: process.env.APP_ID,
  privateKey: fs.readFileSync(process.env.APP_PRIVATE_KEY, 'ascii'),
  alipayPublicKey: fs.readFileSync(process.env.ALIPAY_PUBLIC_KEY, 'ascii'),
  gateway: process.env.GATEWAY,
  encryptKey: process.env.ENCRYPT_KEY,
  signType: 'RSA2',
  camelcase: false,
});
(async () => {
  const out = [];
  for (const r of JSON.parse(process.argv[1])) {
    out.push(await sdk.exec('alipay.trade.query', { bizContent: { out_trade_no: r.out_trade_no }, needEncrypt: r.encrypt }));
  }
  process.stdout.write(JSON.stringify(out) + '\n');
})().catch((err) => { console.error(err); process.exit(1); });
`

// TestNodeSDKEncrypted checks the sandbox's content encryption (encrypt_key)
// against Alipay's official Node.js SDK: the query that its exec encrypts
// (needEncrypt, with the SDK's encryptKey) is accepted, and its answer
// decrypts with the same key to Alipay's answer for the order; the same
// query in plaintext is refused, as Alipay refuses it for an app with
// encryption on.
func TestNodeSDKEncrypted(t *testing.T) {
	needTool(t, "node")
	nodeDir := filepath.Join(repoRoot, "e2e", "node")
	ensureNodeModules(t, nodeDir)

	const encryptKey = "aYA0GP8JEW+D7/UFaskCWA==" // Alipay's AES vector key
	port := freePort(t)
	gateway := fmt.Sprintf("http://127.0.0.1:%d", port)
	startCaddy(t, "caddy-node-aes", caddyGlobals+sandboxSite(port, "encrypt_key "+encryptKey), gateway+"/")

	outTradeNo := "NODEAES" + randomHex(t, 6)
	arg, err := json.Marshal([]map[string]any{{"out_trade_no": outTradeNo, "encrypt": true}, {"out_trade_no": outTradeNo, "encrypt": false}})
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), stepTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "node", "-e", nodeEncryptedQueryJS, string(arg))
	cmd.Dir = nodeDir // require resolves from here
	// The SDK writes the timestamp in the process's local zone: Beijing
	// time, as on a shop's server in China.
	cmd.Env = append(os.Environ(), "TZ=Asia/Shanghai", "APP_ID="+appID, "APP_PRIVATE_KEY="+keys.AppPrivate,
		"ALIPAY_PUBLIC_KEY="+keys.AlipayPublic, "GATEWAY="+gateway+"/gateway.do", "ENCRYPT_KEY="+encryptKey)
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	require.NoError(t, err, "node exec")
	var answers []map[string]any
	require.NoError(t, json.Unmarshal(out, &answers), "%s", out)
	require.Len(t, answers, 2)

	// No trade has that number: Alipay's not-found answer, which came
	// encrypted and which the SDK decrypted with encryptKey.
	enc := answers[0]
	assert.Equal(t, "40004", enc["code"], "%v", enc)
	assert.Equal(t, "ACQ.TRADE_NOT_EXIST", enc["sub_code"], "%v", enc)
	assert.Equal(t, outTradeNo, enc["out_trade_no"], "%v", enc)

	plain := answers[1]
	assert.Equal(t, "40001", plain["code"], "%v", plain)
	assert.Equal(t, "isv.decryption-error-missing-encrypt-type", plain["sub_code"], "%v", plain)
}

// nodeV3JS pays an order by barcode and queries it with the SDK's curl,
// OpenAPI v3, then queries an order that does not exist, and prints the
// two answers' data and the error's code and status. curl verifies every
// answer below 400 (alipay-signature over alipay-timestamp, alipay-nonce
// and the raw body) and throws when it fails; with needEncrypt it also
// encrypts the body and decrypts the answer with encryptKey.
// argv[1]: { out_trade_no, encrypt }.
const nodeV3JS = `
const fs = require('node:fs');
const { AlipaySdk } = require('alipay-sdk');
const sdk = new AlipaySdk({
  appId: process.env.APP_ID,
  privateKey: fs.readFileSync(process.env.APP_PRIVATE_KEY, 'ascii'),
  alipayPublicKey: fs.readFileSync(process.env.ALIPAY_PUBLIC_KEY, 'ascii'),
  endpoint: process.env.ENDPOINT,
  encryptKey: process.env.ENCRYPT_KEY || undefined,
});
(async () => {
  const r = JSON.parse(process.argv[1]);
  const needEncrypt = r.encrypt;
  const pay = await sdk.curl('POST', '/v3/alipay/trade/pay', { needEncrypt, body: {
    out_trade_no: r.out_trade_no, total_amount: '6.60', subject: 'v3', scene: 'bar_code', auth_code: '280000000000000000' } });
  const query = await sdk.curl('POST', '/v3/alipay/trade/query', { needEncrypt, body: { out_trade_no: r.out_trade_no } });
  let missing = null;
  try {
    await sdk.curl('POST', '/v3/alipay/trade/query', { needEncrypt, body: { out_trade_no: r.out_trade_no + 'X' } });
  } catch (err) {
    missing = { code: err.code, status: err.responseHttpStatus };
  }
  process.stdout.write(JSON.stringify({ pay: pay.data, query: query.data, missing }) + '\n');
})().catch((err) => { console.error(err); process.exit(1); });
`

// TestNodeSDKV3 checks the sandbox's OpenAPI v3 against Alipay's official
// Node.js SDK's curl: its signed calls are accepted, and its own check of
// each answer's signature passes (curl throws otherwise), in plaintext
// and with content encryption (needEncrypt, against a sandbox with
// encrypt_key).
func TestNodeSDKV3(t *testing.T) {
	needTool(t, "node")
	nodeDir := filepath.Join(repoRoot, "e2e", "node")
	ensureNodeModules(t, nodeDir)

	const encryptKey = "aYA0GP8JEW+D7/UFaskCWA==" // Alipay's AES vector key
	for _, encrypt := range []bool{false, true} {
		t.Run(fmt.Sprintf("encrypt=%v", encrypt), func(t *testing.T) {
			port := freePort(t)
			origin := fmt.Sprintf("http://127.0.0.1:%d", port)
			var settings []string
			env := append(os.Environ(), "APP_ID="+appID, "APP_PRIVATE_KEY="+keys.AppPrivate,
				"ALIPAY_PUBLIC_KEY="+keys.AlipayPublic, "ENDPOINT="+origin)
			if encrypt {
				settings = append(settings, "encrypt_key "+encryptKey)
				env = append(env, "ENCRYPT_KEY="+encryptKey)
			}
			startCaddy(t, fmt.Sprintf("caddy-node-v3-%v", encrypt), caddyGlobals+sandboxSite(port, settings...), origin+"/")

			outTradeNo := "NODEV3" + randomHex(t, 6)
			arg, err := json.Marshal(map[string]any{"out_trade_no": outTradeNo, "encrypt": encrypt})
			require.NoError(t, err)
			ctx, cancel := context.WithTimeout(context.Background(), stepTimeout)
			defer cancel()
			cmd := exec.CommandContext(ctx, "node", "-e", nodeV3JS, string(arg))
			cmd.Dir = nodeDir // require resolves from here
			cmd.Env = env
			cmd.Stderr = os.Stderr
			out, err := cmd.Output()
			require.NoError(t, err, "node curl")
			var got struct {
				Pay, Query map[string]any
				Missing    map[string]any
			}
			require.NoError(t, json.Unmarshal(out, &got), "%s", out)

			assert.Equal(t, outTradeNo, got.Pay["out_trade_no"], "%v", got.Pay)
			assert.Equal(t, "6.60", got.Pay["buyer_pay_amount"], "%v", got.Pay)
			assert.NotContains(t, got.Pay, "code", "v3 answers carry no code on success")
			assert.Equal(t, outTradeNo, got.Query["out_trade_no"], "%v", got.Query)
			assert.Equal(t, "TRADE_SUCCESS", got.Query["trade_status"], "%v", got.Query)
			assert.Equal(t, "6.60", got.Query["total_amount"], "%v", got.Query)
			assert.Equal(t, got.Pay["trade_no"], got.Query["trade_no"])
			assert.Equal(t, map[string]any{"code": "ACQ.TRADE_NOT_EXIST", "status": float64(404)}, got.Missing)
		})
	}
}
