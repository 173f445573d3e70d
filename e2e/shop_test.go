package e2e

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"html"
	"net/http"
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

// A shopKind is one of the demo shops of ../examples, and the protocol
// its sidecar speaks.
type shopKind struct {
	name        string
	tool        string                  // the program that runs it
	argv        func(port int) []string // its command line, from the repository root
	screenshots bool                    // the buy test saves docs/screenshots/*.png
	// legacy: the sidecar and the sandbox speak the legacy 即时到账
	// protocol, as a GBK partner signing with MD5.
	legacy bool
}

var shopKinds = []shopKind{
	{name: "python", tool: "python3", screenshots: true, argv: func(int) []string {
		return []string{"python3", "examples/python-shop/shop.py"}
	}},
	{name: "php", tool: "php", argv: func(port int) []string {
		return []string{"php", "-S", fmt.Sprintf("127.0.0.1:%d", port), "examples/php-shop/index.php"}
	}},
	// Debian's python3-django is for /usr/bin/python3.
	{name: "django-legacy", tool: "/usr/bin/python3", legacy: true, argv: func(int) []string {
		return []string{"/usr/bin/python3", "examples/django-shop/serve.py"}
	}},
}

// The legacy partner of the django-legacy run, and its MD5 key (made for
// the run by TestMain's secret: any 32 letters and digits).
const legacyPartner = "2088000000000001"

func legacyMD5Key() string {
	return fmt.Sprintf("%x", sha256.Sum256([]byte(secret)))[:32]
}

// The shops' products (examples/README.md).
const (
	teaSubject = "西湖龙井 Longjing tea, 250 g"
	teaAmount  = "88.80"
	mugSubject = "Coffee mug"
	mugAmount  = "9.90"
)

// A shopEnv is a shop behind a Caddy that runs the alipay sidecar in front
// of it (site) and the alipay_sandbox gateway (gateway).
type shopEnv struct {
	kind                            shopKind
	owner                           *testing.T // the test that owns the processes
	shopPort, sitePort, gatewayPort int
	db                              string // the shop's sqlite file, kept across restarts
	shop, caddy                     *proc
	site, gateway                   string // http://127.0.0.1:<port>
	shopURL                         string // the shop itself: Caddy's upstream
}

func TestShops(t *testing.T) {
	for _, kind := range shopKinds {
		t.Run(kind.name, func(t *testing.T) {
			needTool(t, kind.tool)
			switch kind.name {
			case "php":
				needPHPSQLite(t)
			case "django-legacy":
				needDjango(t)
			}
			e := startShopEnv(t, kind)
			// fault stops and restarts the shop: it runs last.
			t.Run("buy", e.testBuy)
			t.Run("cancel", e.testCancel)
			if !kind.legacy { // these order over plain HTTP, which the Django shop's CSRF check refuses
				t.Run("tampered", e.testTampered)
				t.Run("expired", e.testExpired)
			}
			t.Run("fault", e.testFault)
		})
	}
}

// needPHPSQLite checks that php has PDO sqlite (Debian's php-sqlite3).
func needPHPSQLite(t *testing.T) {
	t.Helper()
	out, err := exec.Command("php", "-m").Output()
	if err == nil && strings.Contains(string(out), "pdo_sqlite") {
		return
	}
	if os.Getenv("CI") != "" {
		t.Fatalf("php has no pdo_sqlite (apt-get install php-sqlite3): %v", err)
	}
	t.Skipf("php has no pdo_sqlite (apt-get install php-sqlite3): skipped")
}

// needDjango checks that /usr/bin/python3 has Django (Debian's
// python3-django).
func needDjango(t *testing.T) {
	t.Helper()
	if err := exec.Command("/usr/bin/python3", "-c", "import django").Run(); err == nil {
		return
	}
	if os.Getenv("CI") != "" {
		t.Fatal("/usr/bin/python3 has no Django (apt-get install python3-django)")
	}
	t.Skip("/usr/bin/python3 has no Django (apt-get install python3-django): skipped")
}

// shopKindNamed is the shop kind of that name.
func shopKindNamed(t *testing.T, name string) shopKind {
	t.Helper()
	for _, k := range shopKinds {
		if k.name == name {
			return k
		}
	}
	t.Fatalf("no shop kind %q", name)
	return shopKind{}
}

// newShopEnv picks the ports and the database of a shop environment, for
// t; nothing is started yet.
func newShopEnv(t *testing.T, kind shopKind) *shopEnv {
	e := &shopEnv{kind: kind, owner: t, shopPort: freePort(t), sitePort: freePort(t), gatewayPort: freePort(t)}
	e.db = filepath.Join(t.TempDir(), "shop.db")
	e.site = fmt.Sprintf("http://127.0.0.1:%d", e.sitePort)
	e.gateway = fmt.Sprintf("http://127.0.0.1:%d", e.gatewayPort)
	e.shopURL = fmt.Sprintf("http://127.0.0.1:%d", e.shopPort)
	return e
}

func startShopEnv(t *testing.T, kind shopKind) *shopEnv {
	e := newShopEnv(t, kind)
	e.startShop(t)
	if kind.legacy {
		caddyfile := caddyGlobals + fmt.Sprintf(`
# The shop, behind the sidecar: a GBK partner signing with MD5.
http://127.0.0.1:%d {
	bind 127.0.0.1
	alipay {
		partner %s
		md5_key %s
		input_charset gbk
		secret {env.E2E_ALIPAY_SECRET}
		gateway %s/gateway.do
	}
	reverse_proxy 127.0.0.1:%d
}

# The local Alipay, the legacy gateway only.
http://127.0.0.1:%d {
	bind 127.0.0.1
	alipay_sandbox {
		partner %s
		md5_key %s
		notify_retry 1s 1s 2s 2s
	}
}
`, e.sitePort, legacyPartner, legacyMD5Key(), e.gateway, e.shopPort, e.gatewayPort, legacyPartner, legacyMD5Key())
		e.caddy = startCaddy(t, "caddy-"+kind.name, caddyfile, e.site+"/", e.gateway+"/")
		return e
	}
	// The shop behind the sidecar, and the local Alipay.
	caddyfile := caddyGlobals + sidecarSite(e.sitePort, e.gateway, fmt.Sprintf("127.0.0.1:%d", e.shopPort)) +
		sandboxSite(e.gatewayPort, "notify_retry 1s 1s 2s 2s")
	e.caddy = startCaddy(t, "caddy-"+kind.name, caddyfile, e.site+"/", e.gateway+"/")
	return e
}

// startShop starts the shop on its port and database and waits until it
// answers. It tries again if the port is not free yet (a restart).
func (e *shopEnv) startShop(t *testing.T) {
	t.Helper()
	aud := appID
	if e.kind.legacy {
		aud = legacyPartner
	}
	env := []string{
		fmt.Sprintf("SHOP_PORT=%d", e.shopPort),
		"SHOP_SECRET=" + secret,
		"ALIPAY_APP_ID=" + aud, // the token's aud: the app id, or the partner
		"SHOP_DB=" + e.db,
		"SHOP_SIDECAR_URL=" + e.site,
		"SHOP_PAY_TTL=600",
		"PYTHONDONTWRITEBYTECODE=1",
	}
	var err error
	for attempt := 1; attempt <= 5; attempt++ {
		e.shop = startProcFor(t, e.owner, "shop-"+e.kind.name, repoRoot, env, e.kind.argv(e.shopPort)...)
		if err = waitHTTPErr(e.shop, e.shopURL+"/"); err == nil {
			return
		}
		e.shop.stop()
		time.Sleep(300 * time.Millisecond)
	}
	t.Fatalf("the %s shop does not start: %v", e.kind.name, err)
}

// order is the shop's record of an order (GET /orders/<no>.json).
type order struct {
	OutTradeNo    string  `json:"out_trade_no"`
	TotalAmount   string  `json:"total_amount"`
	Status        string  `json:"status"`
	Notifications int     `json:"notifications"` // the paying ones
	NotifyCalls   int     `json:"notify_calls"`
	PaidAt        *string `json:"paid_at"`
	RefundFee     *string `json:"refund_fee"`
	// The notifications that followed a refund (OpenAPI's refund_fee and
	// out_biz_no, the legacy batch_refund_notify), and when the first came.
	RefundNotifications int     `json:"refund_notifications"`
	RefundNotifiedAt    *string `json:"refund_notified_at"`
	// The Django shop's legacy refund batch, once it has sent one.
	RefundBatchNo *string `json:"refund_batch_no"`
}

func (e *shopEnv) order(t *testing.T, no string) order {
	t.Helper()
	resp, body := httpGet(t, e.site+"/orders/"+no+".json")
	require.Equal(t, http.StatusOK, resp.StatusCode, body)
	var o order
	require.NoError(t, json.Unmarshal([]byte(body), &o), body)
	return o
}

// waitPaid polls the order until it is paid.
func (e *shopEnv) waitPaid(t *testing.T, no string, timeout time.Duration) order {
	t.Helper()
	return e.waitOrder(t, no, "paid", timeout, func(o order) bool { return o.Status == "paid" })
}

// waitOrder polls the order until ok says it is as wanted.
func (e *shopEnv) waitOrder(t *testing.T, no, what string, timeout time.Duration, ok func(order) bool) order {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		o := e.order(t, no)
		if ok(o) {
			return o
		}
		if time.Now().After(deadline) {
			t.Fatalf("order %s: not %s after %s: %+v\nCaddy's log:\n%s", no, what, timeout, o, tail(e.caddy.logPath, 30))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// newOrder orders a product over plain HTTP and returns the order number.
func (e *shopEnv) newOrder(t *testing.T, product string) string {
	t.Helper()
	resp, body := httpPostForm(t, e.site+"/orders", "product="+product)
	require.Equal(t, http.StatusSeeOther, resp.StatusCode, body)
	no, ok := strings.CutPrefix(resp.Header.Get("Location"), "/orders/")
	require.True(t, ok, "POST /orders redirects to %q", resp.Header.Get("Location"))
	return no
}

var payLinkRE = regexp.MustCompile(`id="pay" href="([^"]+)"`)

// payLink is the order page's pay link (/alipay/pay?token=...).
func (e *shopEnv) payLink(t *testing.T, no string) string {
	t.Helper()
	resp, body := httpGet(t, e.site+"/orders/"+no)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	m := payLinkRE.FindStringSubmatch(body)
	require.NotNil(t, m, "no pay link on the order page:\n%s", body)
	return html.UnescapeString(m[1])
}

var orderURLRE = regexp.MustCompile(`^/orders/([A-Za-z0-9_]{1,64})$`)

// orderFromLocation is the order number of the order page the browser is on.
func (e *shopEnv) orderFromLocation(t *testing.T, loc string) string {
	t.Helper()
	path, ok := strings.CutPrefix(loc, e.site)
	m := orderURLRE.FindStringSubmatch(path)
	require.True(t, ok && m != nil, "the browser is on %s, not an order page of %s", loc, e.site)
	return m[1]
}

// toCashier takes the browser from the product list to the sandbox's
// cashier for a new order of the product; it returns the order number.
func (e *shopEnv) toCashier(t *testing.T, tab context.Context, product, subject, amount string, shots bool) string {
	t.Helper()
	resp := open(t, tab, e.site+"/")
	require.EqualValues(t, http.StatusOK, resp.Status)
	if shots {
		screenshot(t, tab, "shop.png")
	}
	resp = clickAndLoad(t, tab, "buy-"+product)
	require.EqualValues(t, http.StatusOK, resp.Status)
	no := e.orderFromLocation(t, location(t, tab))
	require.Equal(t, "unpaid", textOf(t, tab, "status"))

	resp = clickAndLoad(t, tab, "pay")
	require.EqualValues(t, http.StatusOK, resp.Status)
	loc := location(t, tab)
	require.True(t, strings.HasPrefix(loc, e.gateway+"/sandbox/cashier/"), "pay link led to %s, not the sandbox cashier", loc)
	assert.Equal(t, subject, textOf(t, tab, "subject"))
	assert.Equal(t, amount, textOf(t, tab, "amount"))
	assert.Equal(t, "WAIT_BUYER_PAY", textOf(t, tab, "status"))
	return no
}

// testBuy: product list, buy, pay link, cashier, Pay, back to the order
// page, which turns paid once the notification is in.
func (e *shopEnv) testBuy(t *testing.T) {
	tab := newTab(t)
	no := e.toCashier(t, tab, "tea", teaSubject, teaAmount, e.kind.screenshots)
	if e.kind.screenshots {
		screenshot(t, tab, "cashier.png")
	}

	resp := clickAndLoad(t, tab, "pay")
	assert.EqualValues(t, http.StatusOK, resp.Status)
	assert.Equal(t, e.site+"/orders/"+no, location(t, tab), "Pay brings the buyer back to the order page")
	waitText(t, tab, "status", "paid", 20*time.Second)
	if e.kind.screenshots {
		screenshot(t, tab, "paid.png")
	}
	assert.False(t, hasElement(t, tab, "pay"), "a paid order has no pay link")

	o := e.order(t, no)
	assert.Equal(t, "paid", o.Status)
	assert.Equal(t, teaAmount, o.TotalAmount)
	assert.Equal(t, 1, o.Notifications)
	assert.Equal(t, 1, o.NotifyCalls)
	assert.NotNil(t, o.PaidAt)

	// The shop acknowledged at once (the body success), so the sandbox
	// sends no repeat (its first retry would come after 1 s).
	time.Sleep(2500 * time.Millisecond)
	o = e.order(t, no)
	assert.Equal(t, 1, o.Notifications, "still paid once")
	assert.Equal(t, 1, o.NotifyCalls, "no repeat of an accepted notification")
	assert.NotContains(t, e.caddy.log(), `"outcome":"unacknowledged"`,
		"the shop's answer to a notification is an acknowledgement (the body success)")

	// The shop's refund button, through the sidecar's API against the
	// sandbox's record of this payment: alipay.trade.refund (OpenAPI), whose
	// answer says refunded; refund_fastpay_by_platform_nopwd (legacy), whose
	// is_success T says only that the batch was accepted: the order waits
	// for the batch_refund_notify, its page refreshing itself.
	clickAndLoad(t, tab, "refund")
	if e.kind.legacy {
		if st := textOf(t, tab, "status"); st != "refunded" { // the notification may be in already
			assert.Equal(t, "paid", st, "accepted is not refunded")
			assert.True(t, hasElement(t, tab, "refund-requested"), "the page says the refund is requested")
			assert.False(t, hasElement(t, tab, "refund"), "no second refund button meanwhile")
		}
	}
	waitText(t, tab, "status", "refunded", 20*time.Second)
	assert.Equal(t, "¥"+teaAmount, textOf(t, tab, "refund-fee"))
	assert.False(t, hasElement(t, tab, "refund"), "a refunded order has no refund button")

	// The notification that Alipay sends after a refund reaches the shop
	// through the sidecar: recorded, acknowledged, and no payment.
	o = e.waitOrder(t, no, "told of its refund", 20*time.Second, func(o order) bool { return o.RefundNotifications > 0 })
	assert.Equal(t, "refunded", o.Status)
	require.NotNil(t, o.RefundFee)
	assert.Equal(t, teaAmount, *o.RefundFee)
	assert.NotNil(t, o.RefundNotifiedAt)
	if e.kind.legacy {
		// One batch per order and day: today's date in China, and the order number's digits.
		require.NotNil(t, o.RefundBatchNo)
		assert.Equal(t, time.Now().In(time.FixedZone("CST", 8*3600)).Format("20060102")+no[1:], *o.RefundBatchNo)
	}
	time.Sleep(2500 * time.Millisecond) // the first retry would come after 1 s
	o = e.order(t, no)
	assert.Equal(t, "refunded", o.Status, "still refunded")
	assert.Equal(t, 1, o.Notifications, "still paid once: the refund's notification is no payment")
	assert.Equal(t, 1, o.RefundNotifications, "the shop acknowledged the refund's notification: no repeat")
	assert.Equal(t, 2, o.NotifyCalls, "the payment's notification and the refund's, once each")
	assert.NotContains(t, e.caddy.log(), `"outcome":"unacknowledged"`)
}

// testCancel: Cancel at the cashier brings the buyer back to the shop, and
// the order stays unpaid.
func (e *shopEnv) testCancel(t *testing.T) {
	tab := newTab(t)
	no := e.toCashier(t, tab, "mug", mugSubject, mugAmount, false)

	resp := clickAndLoad(t, tab, "cancel")
	assert.EqualValues(t, http.StatusOK, resp.Status)
	assert.Equal(t, e.site+"/", location(t, tab), "Cancel goes back to the shop's site")
	assert.True(t, hasElement(t, tab, "buy-mug"), "the product list")

	time.Sleep(1500 * time.Millisecond) // nothing arrives later either
	o := e.order(t, no)
	assert.Equal(t, "unpaid", o.Status)
	assert.Equal(t, 0, o.Notifications)
	assert.Equal(t, 0, o.NotifyCalls)
	assert.Nil(t, o.PaidAt)
	open(t, tab, e.site+"/orders/"+no)
	assert.Equal(t, "unpaid", textOf(t, tab, "status"))
	assert.True(t, hasElement(t, tab, "pay"), "an unpaid order keeps its pay link")
}

// testTampered: a pay request whose amount the buyer changed on its way to
// the gateway gets the sandbox's error page, not a cashier.
func (e *shopEnv) testTampered(t *testing.T) {
	no := e.newOrder(t, "mug")
	req, err := http.NewRequest(http.MethodGet, e.site+e.payLink(t, no), nil)
	require.NoError(t, err)
	req.Header.Set("Accept", "application/json")
	resp, body := httpDo(t, req)
	require.Equal(t, http.StatusOK, resp.StatusCode, body)
	var pay struct{ URL string }
	require.NoError(t, json.Unmarshal([]byte(body), &pay), body)
	require.True(t, strings.HasPrefix(pay.URL, e.gateway+"/gateway.do?"), pay.URL)

	u, err := url.Parse(pay.URL)
	require.NoError(t, err)
	q := u.Query()
	biz := q.Get("biz_content")
	want := `"total_amount":"` + mugAmount + `"`
	require.Contains(t, biz, want)
	q.Set("biz_content", strings.Replace(biz, want, `"total_amount":"0.01"`, 1))
	u.RawQuery = q.Encode()

	tab := newTab(t)
	page := open(t, tab, u.String())
	assert.EqualValues(t, http.StatusBadRequest, page.Status)
	assert.Equal(t, "invalid-signature", textOf(t, tab, "error-code"))
	assert.False(t, hasElement(t, tab, "pay"), "no Pay button")
	assert.True(t, strings.HasPrefix(location(t, tab), e.gateway+"/gateway.do?"), "no cashier")

	// The same request untouched opens the cashier: only the change failed.
	open(t, tab, pay.URL)
	assert.True(t, strings.HasPrefix(location(t, tab), e.gateway+"/sandbox/cashier/"), location(t, tab))
	assert.Equal(t, mugAmount, textOf(t, tab, "amount"))

	o := e.order(t, no)
	assert.Equal(t, "unpaid", o.Status)
	assert.Equal(t, 0, o.Notifications)
}

// testExpired: a pay link past its exp is refused by the sidecar with 403.
func (e *shopEnv) testExpired(t *testing.T) {
	no := e.newOrder(t, "tea")
	claims := map[string]any{"out_trade_no": no, "total_amount": teaAmount, "subject": teaSubject, "product": "page"}

	tab := newTab(t)
	claims["exp"] = time.Now().Add(-time.Minute).Unix()
	resp := open(t, tab, e.site+"/alipay/pay?token="+payToken(t, claims))
	assert.EqualValues(t, http.StatusForbidden, resp.Status)
	assert.Contains(t, bodyText(t, tab), "this payment link has expired")
	assert.True(t, strings.HasPrefix(location(t, tab), e.site+"/alipay/pay?"), "not sent to the gateway")

	// The same claims with exp ahead: the cashier, so only exp was wrong.
	claims["exp"] = time.Now().Add(5 * time.Minute).Unix()
	open(t, tab, e.site+"/alipay/pay?token="+payToken(t, claims))
	assert.True(t, strings.HasPrefix(location(t, tab), e.gateway+"/sandbox/cashier/"), location(t, tab))
	assert.Equal(t, teaAmount, textOf(t, tab, "amount"))

	o := e.order(t, no)
	assert.Equal(t, "unpaid", o.Status)
	assert.Equal(t, 0, o.Notifications)
}

// testFault: the shop is down when the buyer pays. The buyer's return
// fails, the first notification too; the shop comes back (same port, same
// database) and the sandbox's next try pays the order, once.
func (e *shopEnv) testFault(t *testing.T) {
	tab := newTab(t)
	no := e.toCashier(t, tab, "mug", mugSubject, mugAmount, false)

	e.shop.stop()
	// Chromium shows its own error page for Caddy's empty 502.
	resp, err := clickAndLoadErr(tab, "pay")
	if err != nil {
		assert.ErrorContains(t, err, "ERR_HTTP_RESPONSE_CODE_FAILURE", "the return fails while the shop is down")
	} else {
		assert.GreaterOrEqual(t, resp.Status, int64(500), "the return fails while the shop is down")
	}
	e.startShop(t)

	o := e.waitPaid(t, no, 20*time.Second)
	assert.Equal(t, 1, o.Notifications)
	assert.Equal(t, 1, o.NotifyCalls, "the tries while the shop was down never reached it")
	assert.Contains(t, e.caddy.log(), "sandbox: notification not accepted", "a notification failed first")

	time.Sleep(2500 * time.Millisecond)
	o = e.order(t, no)
	assert.Equal(t, 1, o.Notifications, "still paid once")
	assert.Equal(t, 1, o.NotifyCalls, "no more tries after success")

	open(t, tab, e.site+"/orders/"+no)
	assert.Equal(t, "paid", textOf(t, tab, "status"))
}

// payToken signs claims as a shop does: an HS256 JWT with the secret.
func payToken(t *testing.T, claims map[string]any) string {
	t.Helper()
	body, err := json.Marshal(claims)
	require.NoError(t, err)
	b64 := base64.RawURLEncoding.EncodeToString
	s := b64([]byte(`{"alg":"HS256","typ":"JWT"}`)) + "." + b64(body)
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(s))
	return s + "." + b64(mac.Sum(nil))
}
