package e2e

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The retry story's size and pace.
const (
	retryPurchases = 300
	retryBuyers    = 6
	// retryMaxFaults is how many of one trade's notification attempts the
	// faulty link may fail on purpose; with the restart on top, that stays
	// within the sandbox's nine attempts (notify_retry below), which is
	// what Alipay's own eight retries over 25 hours give a shop.
	retryMaxFaults = 4
	retrySchedule  = "200ms 500ms 1s 1s 2s 2s 3s 3s"
	retryDowntime  = 1500 * time.Millisecond
)

// TestRetryStory shows that Alipay's retries are the delivery guarantee:
// a few hundred purchases through the sandbox, paid at its cashier, while
// the link between Caddy and the Python shop fails at random (a 500 before
// the shop sees the notification, a reset, a hang past notify_timeout, a
// 500 after the shop has saved it, and a 200 page that is not the shop's,
// as from a misrouted request) and the shop restarts once. At the end
// every paid trade is in the shop's database exactly once, and the sandbox
// has nothing left to send.
func TestRetryStory(t *testing.T) {
	if testing.Short() {
		t.Skip("retry story: about fifteen seconds; skipped with -short")
	}
	needTool(t, "python3")
	e := newShopEnv(t, shopKindNamed(t, "python"))
	e.startShop(t)

	link := newFaultyLink(t, e.shopURL)
	t.Cleanup(link.srv.Close)
	e.caddy = startCaddy(t, "caddy-retry", caddyGlobals+
		sidecarSite(e.sitePort, e.gateway, strings.TrimPrefix(link.srv.URL, "http://"), "notify_timeout 1s")+
		sandboxSite(e.gatewayPort, "notify_retry "+retrySchedule, "max_trades 1000"),
		e.site+"/", e.gateway+"/")

	// The buyers; the shop restarts once half of them have paid. A buyer
	// does not order while the shop is down (shopUp), but notifications
	// keep coming.
	started := time.Now()
	var (
		shopUp  sync.RWMutex
		paid    atomic.Int64
		half    = make(chan struct{})
		errsMu  sync.Mutex
		errs    []error
		orders  = make(chan int)
		buyers  sync.WaitGroup
		ordered sync.Map // out_trade_no -> amount
	)
	for range retryBuyers {
		buyers.Add(1)
		go func() {
			defer buyers.Done()
			for i := range orders {
				product := []string{"tea", "mug"}[i%2]
				no, err := buyOnce(e, product, &shopUp)
				if err != nil {
					errsMu.Lock()
					errs = append(errs, fmt.Errorf("purchase %d (%s): %w", i, product, err))
					errsMu.Unlock()
					continue
				}
				ordered.Store(no, map[string]string{"tea": teaAmount, "mug": mugAmount}[product])
				if paid.Add(1) == retryPurchases/2 {
					close(half)
				}
			}
		}()
	}
	go func() {
		for i := range retryPurchases {
			orders <- i
		}
		close(orders)
	}()
	select {
	case <-half:
	case <-time.After(2 * time.Minute):
		t.Fatal("half the purchases did not happen within 2 minutes")
	}
	shopUp.Lock()
	e.shop.stop()
	time.Sleep(retryDowntime)
	e.startShop(t)
	shopUp.Unlock()
	buyers.Wait()
	require.Empty(t, errs, "every purchase reaches the cashier and is paid there")
	purchased := time.Since(started)

	// The sandbox sends until each notification is accepted.
	var trades []sandboxTrade
	deadline := time.Now().Add(time.Minute)
	for {
		list := sandboxTradeList(t, e.gateway)
		require.Zero(t, list.Dropped, "the sandbox kept every trade")
		trades = list.Trades
		pending := 0
		for _, tr := range trades {
			if tr.NextAttempt != nil || !tr.Delivered {
				pending++
			}
		}
		if pending == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the sandbox still has %d of %d trades to deliver a minute after the last purchase", pending, len(trades))
		}
		time.Sleep(250 * time.Millisecond)
	}
	delivered := time.Since(started)

	// The sandbox: one paid trade per purchase, each delivered, none given up.
	attempts := map[int]int{} // attempts per trade -> trades
	total := 0
	require.Len(t, trades, retryPurchases, "one sandbox trade per purchase")
	for _, tr := range trades {
		want, ok := ordered.Load(tr.OutTradeNo)
		require.True(t, ok, "the sandbox has a trade that no buyer made: %s", tr.OutTradeNo)
		assert.Equal(t, want, tr.Amount, tr.OutTradeNo)
		assert.Equal(t, "TRADE_SUCCESS", tr.Status, tr.OutTradeNo)
		assert.False(t, tr.GivenUp, tr.OutTradeNo)
		attempts[tr.AttemptsTotal]++
		total += tr.AttemptsTotal
	}

	// The shop's database: every purchase paid, by exactly one notification.
	rows := shopLedger(t, e.db)
	require.Len(t, rows, retryPurchases, "one order per purchase in the shop's database")
	calls, paidRows := 0, 0
	for _, r := range rows {
		_, ok := ordered.Load(r.OutTradeNo)
		require.True(t, ok, "the shop has an order that no buyer made: %s", r.OutTradeNo)
		assert.Equal(t, "paid", r.Status, r.OutTradeNo)
		assert.Equal(t, 1, r.Paying, "%s: paid by exactly one notification", r.OutTradeNo)
		assert.Equal(t, 1, r.Notifications, "%s: one notification row (jti) however often it came", r.OutTradeNo)
		calls += r.NotifyCalls
		if r.Status == "paid" && r.Paying == 1 {
			paidRows++
		}
	}

	// The link saw each of the sandbox's attempts, and every one failed
	// but the last, which the shop acknowledged (the body success).
	for _, tr := range trades {
		out := link.outcomesOf(tr.OutTradeNo)
		if len(out) != tr.AttemptsTotal || slices.Index(out, linkOK) != len(out)-1 {
			t.Errorf("%s: the sandbox made %d attempts, the link saw %q; the sandbox's record: %+v",
				tr.OutTradeNo, tr.AttemptsTotal, out, sandboxTradePage(t, e.gateway, tr.OutTradeNo))
		}
	}

	// The faults happened: each kind, and the restart.
	c := link.counts()
	failed := 0
	for _, kind := range faultKinds {
		assert.Positive(t, c[kind], "the link failed with %q at least once", kind)
		failed += c[kind]
	}
	assert.Positive(t, c[linkShopDown], "notifications came while the shop was down")
	assert.Zero(t, c[linkShopNoAck], "the shop acknowledges what it accepts: the body success")
	assert.GreaterOrEqual(t, calls, retryPurchases+c[faultAfterSave], "the shop saw the repeats of what it had saved")

	var dist []string
	for n := 1; n <= 9; n++ {
		if attempts[n] > 0 {
			dist = append(dist, fmt.Sprintf("%d×%d", attempts[n], n))
		}
	}
	fmt.Printf("retry| TestRetryStory figures:\n")
	fmt.Printf("retry| %d purchases by %d buyers in %.1f s; every trade delivered %.1f s after the first purchase\n",
		retryPurchases, retryBuyers, purchased.Seconds(), delivered.Seconds())
	fmt.Printf("retry| notification attempts: %d (%.2f per trade); trades×attempts: %s\n",
		total, float64(total)/retryPurchases, strings.Join(dist, " "))
	var kinds []string
	for _, kind := range faultKinds {
		kinds = append(kinds, fmt.Sprintf("%s %d", kind, c[kind]))
	}
	fmt.Printf("retry| failed on purpose: %d (%s)\n", failed, strings.Join(kinds, ", "))
	fmt.Printf("retry| shop restarted once: %d attempts found it down; %d answered after notify_timeout, %d answered an error, %d a 2xx without acknowledging\n",
		c[linkShopDown], c[linkShopLate], c[linkShopFailed], c[linkShopNoAck])
	fmt.Printf("retry| shop's database: %d orders, %d paid by one notification each; %d notify requests reached the shop\n",
		len(rows), paidRows, calls)
}

// buyOnce orders a product at the shop, follows its pay link through the
// sidecar to the sandbox's cashier and pays there, as a browser would,
// without following the return (the buyer has closed the tab). It returns
// the order number.
func buyOnce(e *shopEnv, product string, shopUp *sync.RWMutex) (string, error) {
	shopUp.RLock()
	defer shopUp.RUnlock()
	resp, body, err := fetch(http.MethodPost, e.site+"/orders", "product="+product)
	if err != nil {
		return "", err
	}
	no, ok := strings.CutPrefix(resp.Header.Get("Location"), "/orders/")
	if resp.StatusCode != http.StatusSeeOther || !ok {
		return "", fmt.Errorf("POST /orders: %s, Location %q: %s", resp.Status, resp.Header.Get("Location"), body)
	}
	if _, body, err = fetch(http.MethodGet, e.site+"/orders/"+no, ""); err != nil {
		return "", err
	}
	m := payLinkRE.FindStringSubmatch(body)
	if m == nil {
		return "", fmt.Errorf("no pay link on the order page of %s", no)
	}
	next := e.site + html.UnescapeString(m[1])
	for _, want := range []string{e.gateway + "/gateway.do?", "/sandbox/cashier/"} {
		resp, body, err := fetch(http.MethodGet, next, "")
		if err != nil {
			return "", err
		}
		loc := resp.Header.Get("Location")
		if resp.StatusCode != http.StatusFound || !strings.HasPrefix(loc, want) {
			return "", fmt.Errorf("GET %s: %s, Location %q, not %s...: %s", next, resp.Status, loc, want, body)
		}
		next = loc
	}
	resp, body, err = fetch(http.MethodPost, e.gateway+next+"/pay", "")
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusFound || !strings.HasPrefix(resp.Header.Get("Location"), e.site+"/alipay/return?") {
		return "", fmt.Errorf("Pay: %s, Location %q: %s", resp.Status, resp.Header.Get("Location"), body)
	}
	return no, nil
}

// fetch sends one request with httpClient (no redirects followed) and
// reads its answer. A goroutine's t.Fatal would not stop the test, so it
// returns the error.
func fetch(method, u, form string) (*http.Response, string, error) {
	req, err := http.NewRequest(method, u, strings.NewReader(form))
	if err != nil {
		return nil, "", err
	}
	if method == http.MethodPost {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		return nil, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return resp, string(b), err
}

// ledgerRow is an order in the Python shop's database, with the
// notifications it recorded for it.
type ledgerRow struct {
	OutTradeNo    string `json:"out_trade_no"`
	Status        string `json:"status"`
	NotifyCalls   int    `json:"notify_calls"`  // notify requests with a valid token
	Notifications int    `json:"notifications"` // rows, one per jti
	Paying        int    `json:"paying"`        // rows whose outcome was "paid"
}

// shopLedger reads the shop's sqlite database itself, not a page of the
// shop, with Python's sqlite3.
func shopLedger(t *testing.T, db string) []ledgerRow {
	t.Helper()
	const script = `
import json, sqlite3, sys
c = sqlite3.connect(sys.argv[1])
rows = c.execute("""SELECT o.out_trade_no, o.status, o.notify_calls,
  (SELECT COUNT(*) FROM notifications n WHERE n.out_trade_no = o.out_trade_no),
  (SELECT COUNT(*) FROM notifications n WHERE n.out_trade_no = o.out_trade_no AND n.outcome = 'paid')
  FROM orders o""").fetchall()
keys = ["out_trade_no", "status", "notify_calls", "notifications", "paying"]
print(json.dumps([dict(zip(keys, r)) for r in rows]))
`
	out, err := exec.Command("python3", "-c", script, db).Output()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		t.Fatalf("reading the shop's database: %v\n%s", err, ee.Stderr)
	}
	require.NoError(t, err)
	var rows []ledgerRow
	require.NoError(t, json.Unmarshal(out, &rows), "%q", out)
	return rows
}

// The ways the faulty link fails a notification on purpose.
const (
	fault500       = "500 before the shop"
	faultReset     = "reset"
	faultHang      = "hang past notify_timeout"
	faultAfterSave = "500 after the shop saved it"
	// A 200 that acknowledges nothing, in place of the shop: what a
	// catch-all site answers a misrouted notification.
	faultPage = "200 page, not the shop's"
)

var faultKinds = []string{fault500, faultReset, faultHang, faultAfterSave, faultPage}

// What else can become of a notification on the link.
const (
	linkOK         = "shop acknowledged"
	linkShopDown   = "shop down"
	linkShopLate   = "shop answered after Caddy gave up"
	linkShopFailed = "shop answered an error"
	linkShopNoAck  = "shop answered 2xx without acknowledging"
)

// faultyLink stands between Caddy and the shop. Everything but
// notifications goes through; a notification fails at random, in one of
// the faultKinds, at most retryMaxFaults times for one trade. It records
// what became of each notification, trade by trade.
type faultyLink struct {
	srv   *httptest.Server
	proxy *httputil.ReverseProxy

	mu       sync.Mutex
	rng      *rand.Rand
	outcomes map[string][]string // out_trade_no -> what became of each notification, in order
}

// outcomeKey carries, in a forwarded request's context, where the proxy's
// error handler writes what went wrong.
type outcomeKey struct{}

func newFaultyLink(t *testing.T, shop string) *faultyLink {
	target, err := url.Parse(shop)
	require.NoError(t, err)
	seed := uint64(time.Now().UnixNano())
	t.Logf("faulty link: seed %d", seed)
	l := &faultyLink{rng: rand.New(rand.NewPCG(seed, seed>>1)), outcomes: map[string][]string{}}
	l.proxy = httputil.NewSingleHostReverseProxy(target)
	l.proxy.ErrorHandler = func(w http.ResponseWriter, r *http.Request, err error) {
		if out, ok := r.Context().Value(outcomeKey{}).(*string); ok {
			*out = linkShopDown
			if r.Context().Err() != nil {
				*out = linkShopLate
			}
		}
		w.WriteHeader(http.StatusBadGateway)
	}
	l.srv = httptest.NewServer(http.HandlerFunc(l.serve))
	return l
}

func (l *faultyLink) serve(w http.ResponseWriter, r *http.Request) {
	no, jti := "", ""
	if r.URL.Path == "/alipay/notify" {
		no, jti = notifiedTrade(r.Header.Get("X-Alipay-Token"))
	}
	if no == "" {
		l.proxy.ServeHTTP(w, r)
		return
	}
	kind := ""
	l.mu.Lock()
	faulted := 0
	for _, o := range l.outcomes[no] {
		if slices.Contains(faultKinds, o) {
			faulted++
		}
	}
	if faulted < retryMaxFaults && l.rng.IntN(2) == 0 {
		kind = faultKinds[l.rng.IntN(len(faultKinds))]
	}
	// The sandbox sends a trade's attempts one after another, so their
	// order of arrival is theirs.
	n := len(l.outcomes[no])
	l.outcomes[no] = append(l.outcomes[no], "in flight")
	l.mu.Unlock()

	var out string
	forward := func(w http.ResponseWriter) *statusWriter {
		sw := &statusWriter{ResponseWriter: w}
		l.proxy.ServeHTTP(sw, r.WithContext(context.WithValue(r.Context(), outcomeKey{}, &out)))
		return sw
	}
	switch kind {
	case fault500:
		http.Error(w, "the link failed on purpose", http.StatusInternalServerError)
		out = kind
	case faultReset:
		if conn, _, err := http.NewResponseController(w).Hijack(); err == nil {
			conn.Close()
		}
		out = kind
	case faultHang:
		out = kind
		// Read first, as a shop does before it hangs on its database:
		// net/http notices a closed connection only once the body is read.
		_, _ = io.Copy(io.Discard, r.Body)
		select {
		case <-r.Context().Done(): // Caddy gave up (notify_timeout) and cancelled the request
		case <-time.After(3 * time.Second):
			out = kind + ", and Caddy did not cancel the request"
		}
		w.WriteHeader(http.StatusOK)
	case faultAfterSave:
		rec := httptest.NewRecorder()
		if forward(rec).status == http.StatusBadGateway { // the shop was down or late: out says which
			w.WriteHeader(http.StatusBadGateway)
			break
		}
		http.Error(w, "the shop answered "+rec.Result().Status+"; the link lost it", http.StatusInternalServerError)
		out = kind
	case faultPage:
		// Read first, as a site does; then a page of its own.
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_, _ = io.WriteString(w, "<!doctype html><title>Welcome</title><p>It works!</p>\n")
		out = kind
	default:
		sw := forward(w)
		switch {
		case out != "": // the proxy's error handler: down or late
		case r.Context().Err() != nil:
			out = linkShopLate
		case sw.status/100 != 2:
			out = linkShopFailed
		case !acknowledges(sw.status, w.Header(), sw.body, jti):
			out = linkShopNoAck
		default:
			out = linkOK
		}
	}
	l.mu.Lock()
	l.outcomes[no][n] = out
	l.mu.Unlock()
}

// statusWriter remembers the status of the answer and the start of its
// body.
type statusWriter struct {
	http.ResponseWriter
	status int
	body   []byte // the first maxAckBody bytes
}

// maxAckBody is as much of an answer as an acknowledgement needs.
const maxAckBody = 256

func (w *statusWriter) WriteHeader(status int) {
	w.status = status
	w.ResponseWriter.WriteHeader(status)
}

func (w *statusWriter) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	w.body = append(w.body, p[:min(len(p), max(maxAckBody+1-len(w.body), 0))]...)
	return w.ResponseWriter.Write(p)
}

// acknowledges tells whether a shop's answer acknowledges the
// notification whose jti (notify_id) is jti, as the sidecar's default
// notify_ack success reads it: a 2xx whose body is success (surrounding
// whitespace and a UTF-8 BOM aside), or that carries X-Alipay-Ack with
// the jti.
func acknowledges(status int, h http.Header, body []byte, jti string) bool {
	if status < 200 || status > 299 {
		return false
	}
	if ack := h.Values("X-Alipay-Ack"); len(ack) == 1 && strings.TrimSpace(ack[0]) == jti && jti != "" {
		return true
	}
	trimmed := strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(string(body)), "\uFEFF"))
	return len(body) <= maxAckBody && trimmed == "success"
}

// notifiedTrade is the out_trade_no and the jti that a notify token names;
// the link only routes on them, the shop verifies the token.
func notifiedTrade(token string) (outTradeNo, jti string) {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return "", ""
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return "", ""
	}
	var c struct {
		Jti    string `json:"jti"`
		Params struct {
			OutTradeNo string `json:"out_trade_no"`
		} `json:"params"`
	}
	if json.Unmarshal(payload, &c) != nil {
		return "", ""
	}
	return c.Params.OutTradeNo, c.Jti
}

// outcomesOf is what became of each notification of trade no.
func (l *faultyLink) outcomesOf(no string) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.outcomes[no])
}

// counts is how many notifications of all trades had each outcome.
func (l *faultyLink) counts() map[string]int {
	l.mu.Lock()
	defer l.mu.Unlock()
	c := map[string]int{}
	for _, list := range l.outcomes {
		for _, o := range list {
			c[o]++
		}
	}
	return c
}
