package e2e

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"text/tabwriter"
	"time"
)

// TestSoak measures the notify promise while things go wrong: Caddy
// answers Alipay "success" only for a notification that the shop
// acknowledged, with a 2xx whose body is success or that carries
// X-Alipay-Ack with the token's jti. "Alipay" sends signed notifications
// at a steady rate through a real Caddy to a shop in this process while
// the test reloads Caddy, breaks the shop in every way a shop breaks
// (a 2xx that acknowledges nothing included), and restarts Caddy. See
// README.md.
func TestSoak(t *testing.T) {
	if testing.Short() {
		t.Skip("soak test: about a minute; skipped with -short")
	}
	started := time.Now()
	alipayKey := soakLoadKey(t, filepath.Join(repoRoot, "testdata", "keys", "alipay_private_key_pkcs1.pem"))
	soakCheckSigner(t, alipayKey)

	shopPort, sitePort, adminPort := freePort(t), freePort(t), freePort(t)
	site := fmt.Sprintf("http://127.0.0.1:%d", sitePort)
	admin := fmt.Sprintf("http://127.0.0.1:%d", adminPort)
	cfg := soakCaddyfile(adminPort, sitePort, shopPort, "")
	cfgForward := soakCaddyfile(adminPort, sitePort, shopPort, "\t\tforward_notify /shop/notify\n")

	al := &soakAlipay{key: alipayKey, url: site + "/alipay/notify", run: soakRunID(t),
		limit: make(chan struct{}, 2000), params: map[string]soakSent{}}
	al.client = &http.Client{
		Timeout: soakClientTimeout,
		// One connection per notification, as a notifier that cannot
		// count on keep-alive to a merchant does; no proxy.
		Transport: &http.Transport{DisableKeepAlives: true, Proxy: nil,
			DialContext: (&net.Dialer{Timeout: 5 * time.Second}).DialContext},
	}
	shop := newSoakShop(fmt.Sprintf("127.0.0.1:%d", shopPort), secret, al.lookup)
	if err := shop.up(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(shop.close)

	caddy := startCaddy(t, "soak-caddy", cfg, site+"/soak-health")
	caddys := []*proc{caddy} // whose logs say each notification's outcome

	// "Alipay" sends from here on; every step below is bounded.
	ctx, stop := context.WithCancel(context.Background())
	var senders sync.WaitGroup
	defer func() { stop(); al.drain(t, &senders) }()
	al.begin("steady", soakSuccess)
	for i := range soakSenders {
		senders.Add(1)
		go func() { defer senders.Done(); al.sendLoop(ctx, i) }()
	}

	var loads []time.Duration
	load := func(c string) {
		t.Helper()
		d, err := soakLoad(admin, c)
		if err != nil {
			t.Errorf("POST /load: %v", err)
		}
		loads = append(loads, d)
	}

	time.Sleep(5 * time.Second)
	rssStart, sentStart := soakRSS(t, caddy), al.seq.Load()

	al.begin("reload same config x4", soakSuccess)
	for range 4 {
		load(cfg)
		time.Sleep(time.Second)
	}
	load(cfgForward)
	al.begin("reload: forward_notify", soakSuccess)
	time.Sleep(3 * time.Second)
	load(cfg)
	al.begin("reload: back", soakSuccess)
	time.Sleep(3 * time.Second)

	// Early, so that the hanging notifications last until they end (the
	// client's timeout today, the sidecar's own one day) before the shop
	// goes down or Caddy restarts.
	shop.setMode(soakHang)
	al.begin("shop hangs", soakFailed|soakNoAnswer)
	time.Sleep(4 * time.Second)
	shop.setMode(soakOK)
	al.begin("steady", soakSuccess)
	time.Sleep(3 * time.Second)

	shop.setMode(soakFail)
	al.begin("shop 500", soakFailed)
	time.Sleep(3 * time.Second)
	shop.setMode(soakOK)
	al.begin("steady", soakSuccess)
	time.Sleep(2 * time.Second)

	// A 2xx that is not the shop's acknowledgement (an empty 200, a
	// catch-all page, the old "ok"): Alipay must hear fail, and retry.
	shop.setMode(soakUnacked)
	al.begin("shop 2xx, no ack", soakFailed)
	time.Sleep(3 * time.Second)
	shop.setMode(soakOK)
	al.begin("steady", soakSuccess)
	time.Sleep(2 * time.Second)

	shop.setMode(soakSlow)
	al.begin("shop slow 1-2.5s", soakSuccess)
	time.Sleep(4 * time.Second)
	// A reload while notifications are held by a slow shop (after the
	// slow phase's own are done). Allowed to cut them; Caddy 2.11 does
	// not: after grace_period it stops waiting for the old server but
	// leaves its connections open.
	al.begin("shop slow, reload", soakSuccess|soakFailed|soakNoAnswer)
	time.Sleep(3 * time.Second)
	load(cfg)
	time.Sleep(2 * time.Second)
	shop.setMode(soakOK)
	al.begin("steady", soakSuccess)
	time.Sleep(3 * time.Second)

	shop.setMode(soakReset)
	al.begin("shop resets", soakFailed|soakNoAnswer)
	time.Sleep(3 * time.Second)
	shop.setMode(soakOK)
	al.begin("steady", soakSuccess)
	time.Sleep(2 * time.Second)

	shop.down()
	al.begin("shop down", soakFailed)
	time.Sleep(4 * time.Second)
	if err := shop.up(); err != nil {
		t.Fatal(err)
	}
	al.begin("shop back", soakSuccess)
	time.Sleep(3 * time.Second)

	// Memory: thousands of notifications later (every fault but the
	// restart), Caddy's resident set has grown by a small constant at most.
	rssEnd, sentEnd := soakRSS(t, caddy), al.seq.Load()

	// Caddy is stopped gracefully (SIGTERM) with notifications held by a
	// hanging shop, and started again on the same ports.
	shop.setMode(soakHang)
	al.begin("shop hangs, then", soakFailed|soakNoAnswer)
	time.Sleep(2 * time.Second)
	al.begin("caddy restart", soakAny)
	t0 := time.Now()
	caddy.stop()
	stopped := time.Since(t0)
	shop.setMode(soakOK)
	caddy = startCaddy(t, "soak-caddy-2", cfg, site+"/soak-health")
	caddys = append(caddys, caddy)
	restarted := time.Since(t0)
	al.begin("after restart", soakSuccess)
	time.Sleep(5 * time.Second)

	stop()
	al.finish()
	al.drain(t, &senders)
	shop.close()
	ledger, problems := shop.snapshot()
	logged := soakOutcomes(t, caddys...)

	table, verdicts := al.report(ledger, logged)
	t.Logf("soak figures (%d notifications, %s):\n%s", len(al.results), time.Since(started).Round(time.Second), table)
	// On stdout too, each line marked, for CI's log.
	fmt.Printf("soak| TestSoak figures:\nsoak| %s\n", strings.ReplaceAll(strings.TrimRight(table, "\n"), "\n", "\nsoak| "))
	t.Logf("POST /load took %s; Caddy stopped in %s, answered again %s after SIGTERM",
		soakDurations(loads), stopped.Round(time.Millisecond), restarted.Round(time.Millisecond))
	for _, v := range verdicts {
		t.Log(v)
	}
	memory := fmt.Sprintf("Caddy's resident memory: %d MiB after the first steady phase, %d MiB %d notifications later (%+d KiB)",
		rssStart>>10, rssEnd>>10, sentEnd-sentStart, rssEnd-rssStart)
	t.Log(memory)
	fmt.Println("soak| " + memory)
	if rssEnd-rssStart > soakMaxGrowthKiB {
		t.Errorf("Caddy's memory grew by %d KiB over %d notifications, more than %d KiB", rssEnd-rssStart, sentEnd-sentStart, soakMaxGrowthKiB)
	}
	for _, p := range soakFirst(problems, 10) {
		t.Error(p)
	}
	if len(problems) > 10 {
		t.Errorf("... %d such problems of the shop in all", len(problems))
	}
	al.check(t, ledger, logged)
	t.Logf("TestSoak took %s", time.Since(started).Round(100*time.Millisecond))
}

const (
	// soakMaxGrowthKiB bounds the growth of Caddy's resident memory over
	// the run: far below what thousands of notifications kept would take.
	soakMaxGrowthKiB  = 32 << 10
	soakSenders       = 4
	soakRate          = 60 // notifications a second, from all senders
	soakClientTimeout = 15 * time.Second
	// soakGuard is the end of each phase in which its rule does not hold
	// yet: a notification sent just before the shop changes may arrive
	// after.
	soakGuard = 500 * time.Millisecond
	// soakForgedEvery: one notification in this many is forged.
	soakForgedEvery = 40
	// soakFirstAfterRestart: how many of the first notifications after the
	// restart must each be success.
	soakFirstAfterRestart = 20
)

// The classes of Alipay's reading of an answer, and sets of them.
type soakClass uint8

const (
	soakSuccess  soakClass = 1 << iota // 200, body exactly "success"
	soakFailed                         // body "fail", any status
	soakNoAnswer                       // refused, reset, timeout, cut answer
	soakOther                          // anything else
	soakAny      = soakSuccess | soakFailed | soakNoAnswer | soakOther
)

func (c soakClass) String() string {
	var s []string
	for _, n := range []struct {
		c soakClass
		n string
	}{{soakSuccess, "success"}, {soakFailed, "fail"}, {soakNoAnswer, "no answer"}, {soakOther, "other"}} {
		if c&n.c != 0 {
			s = append(s, n.n)
		}
	}
	return strings.Join(s, "|")
}

// A soakPhase is a stretch of the run. A notification belongs to the
// phase it was sent in; those sent before end-soakGuard, and received by
// the shop (if at all) before the phase ended, must get one of allowed.
type soakPhase struct {
	name       string
	allowed    soakClass
	start, end time.Time
}

// A soakResult is one notification and what Alipay made of the answer.
type soakResult struct {
	seq     int64
	id      string // notify_id
	forged  bool
	phase   int
	sent    time.Time
	elapsed time.Duration
	class   soakClass
	status  int
	body    string // the answer's first bytes, for the log
	err     string // why no answer: refused, reset, timeout, eof, error
}

// soakAlipay plays Alipay: it signs, sends and classifies notifications,
// and keeps the phases.
type soakAlipay struct {
	key    *rsa.PrivateKey
	url    string
	run    string // this run's notify_id prefix
	client *http.Client
	seq    atomic.Int64
	skips  atomic.Int64 // ticks with too many notifications in flight
	phase  atomic.Int32
	sendWG sync.WaitGroup
	limit  chan struct{} // bounds the notifications in flight

	mu      sync.Mutex
	phases  []*soakPhase
	results []soakResult
	params  map[string]soakSent // by notify_id
}

type soakSent struct {
	params map[string]string // what the token's params must be
	forged bool
}

func soakRunID(t *testing.T) string {
	n, err := rand.Int(rand.Reader, big.NewInt(1e12))
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("2026%012d", n)
}

// begin ends the current phase and starts the next.
func (a *soakAlipay) begin(name string, allowed soakClass) {
	a.mu.Lock()
	defer a.mu.Unlock()
	now := time.Now()
	if n := len(a.phases); n > 0 {
		a.phases[n-1].end = now
	}
	a.phases = append(a.phases, &soakPhase{name: name, allowed: allowed, start: now})
	a.phase.Store(int32(len(a.phases) - 1))
}

// finish ends the last phase.
func (a *soakAlipay) finish() {
	a.mu.Lock()
	defer a.mu.Unlock()
	if n := len(a.phases); n > 0 && a.phases[n-1].end.IsZero() {
		a.phases[n-1].end = time.Now()
	}
}

func (a *soakAlipay) lookup(id string) (map[string]string, bool, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	s, ok := a.params[id]
	return s.params, s.forged, ok
}

// sendLoop sends soakRate/soakSenders notifications a second, each in
// its own goroutine, so that a slow or hanging answer does not slow the
// rate, until ctx ends.
func (a *soakAlipay) sendLoop(ctx context.Context, i int) {
	period := time.Second * soakSenders / soakRate
	// Spread the senders over the period.
	select {
	case <-time.After(period * time.Duration(i) / soakSenders):
	case <-ctx.Done():
		return
	}
	tick := time.NewTicker(period)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		select {
		case a.limit <- struct{}{}:
		default:
			a.skips.Add(1) // too many in flight: should not happen, see check
			continue
		}
		a.sendWG.Add(1)
		go func() {
			defer func() { <-a.limit; a.sendWG.Done() }()
			a.send(a.seq.Add(1))
		}()
	}
}

// drain waits, bounded, for the senders and every notification in flight.
func (a *soakAlipay) drain(t *testing.T, senders *sync.WaitGroup) {
	done := make(chan struct{})
	go func() { senders.Wait(); a.sendWG.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(soakClientTimeout + 10*time.Second):
		t.Errorf("notifications still in flight %s after the end", soakClientTimeout+10*time.Second)
	}
}

// send signs one notification, posts it and records the answer.
func (a *soakAlipay) send(seq int64) {
	sent := time.Now()
	forged := seq%soakForgedEvery == 0
	p := soakNotification(a.run, seq, sent)
	sign, err := soakSign(a.key, p)
	if err != nil {
		panic(err) // the key was checked before
	}
	want := map[string]string{}
	form := url.Values{}
	for k, v := range p {
		form.Set(k, v)
		if v != "" {
			want[k] = v // empty values are not signed and never reach the token
		}
	}
	if forged {
		form.Set("total_amount", "0.01") // after signing: the signature no longer holds
	}
	form.Set("sign_type", "RSA2")
	form.Set("sign", sign)
	id := p["notify_id"]
	a.mu.Lock()
	a.params[id] = soakSent{params: want, forged: forged}
	a.mu.Unlock()

	r := soakResult{seq: seq, id: id, forged: forged, phase: int(a.phase.Load()), sent: sent}
	req, _ := http.NewRequest(http.MethodPost, a.url, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded; charset=utf-8")
	req.Header.Set("User-Agent", "Mozilla/4.0")
	resp, err := a.client.Do(req)
	var body []byte
	if err == nil {
		body, err = io.ReadAll(io.LimitReader(resp.Body, 4096))
		resp.Body.Close()
		r.status = resp.StatusCode
	}
	r.elapsed = time.Since(sent)
	r.body = string(body)
	switch {
	case err != nil:
		r.class, r.err = soakNoAnswer, soakErrClass(err)
		r.body = err.Error()
	case r.status == http.StatusOK && r.body == "success":
		r.class = soakSuccess
	case r.body == "fail":
		r.class = soakFailed
	default:
		r.class = soakOther
	}
	a.mu.Lock()
	a.results = append(a.results, r)
	a.mu.Unlock()
}

// soakNotification is a trade_status_sync notification with the fields
// that Alipay sends, a fresh notify_id and out_trade_no.
func soakNotification(run string, seq int64, now time.Time) map[string]string {
	amount := fmt.Sprintf("%d.%02d", 1+seq%500, seq%100)
	ts := now.Format("2006-01-02 15:04:05")
	p := map[string]string{
		"notify_time":      ts,
		"notify_type":      "trade_status_sync",
		"notify_id":        fmt.Sprintf("%s%010d", run, seq),
		"app_id":           appID,
		"auth_app_id":      appID,
		"charset":          "utf-8",
		"version":          "1.0",
		"trade_no":         fmt.Sprintf("%s22001446880%08d", now.Format("20060102"), seq),
		"out_trade_no":     soakOutTradeNo(run, seq),
		"trade_status":     "TRADE_SUCCESS",
		"total_amount":     amount,
		"receipt_amount":   amount,
		"invoice_amount":   amount,
		"buyer_pay_amount": amount,
		"point_amount":     "0.00",
		"seller_id":        "2088000000000001",
		"seller_email":     "seller@example.com",
		"buyer_id":         "2088102177846880",
		"buyer_logon_id":   "tes***@example.com",
		"subject":          fmt.Sprintf("VIP+会员 月卡 #%d", seq),
		"gmt_create":       now.Add(-30 * time.Second).Format("2006-01-02 15:04:05"),
		"gmt_payment":      ts,
		"fund_bill_list":   fmt.Sprintf(`[{"amount":"%s","fundChannel":"ALIPAYACCOUNT"}]`, amount),
	}
	if seq%3 == 0 {
		p["passback_params"] = "" // an empty value: sent, not signed
	}
	return p
}

// soakOutTradeNo is the out_trade_no of notification seq of the run.
func soakOutTradeNo(run string, seq int64) string {
	return fmt.Sprintf("SOAK%s%08d", run[len(run)-6:], seq)
}

// soakSignString is the string Alipay signs: every field but sign and
// sign_type, empty values left out, sorted by key, k=v joined with &, raw.
func soakSignString(p map[string]string) string {
	keys := make([]string, 0, len(p))
	for k, v := range p {
		if k != "sign" && k != "sign_type" && v != "" {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	var b strings.Builder
	for i, k := range keys {
		if i > 0 {
			b.WriteByte('&')
		}
		b.WriteString(k + "=" + p[k])
	}
	return b.String()
}

// soakSign is RSA2: PKCS#1 v1.5 over SHA-256, standard base64.
func soakSign(key *rsa.PrivateKey, p map[string]string) (string, error) {
	h := sha256.Sum256([]byte(soakSignString(p)))
	sig, err := rsa.SignPKCS1v15(rand.Reader, key, crypto.SHA256, h[:])
	return base64.StdEncoding.EncodeToString(sig), err
}

func soakLoadKey(t *testing.T, path string) *rsa.PrivateKey {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(b)
	if block == nil {
		t.Fatalf("%s: no PEM", path)
	}
	key, err := x509.ParsePKCS1PrivateKey(block.Bytes)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return key
}

// soakCheckSigner signs testdata/vectors.json's first notify case and
// expects its string to sign and its sign.
func soakCheckSigner(t *testing.T, key *rsa.PrivateKey) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot, "testdata", "vectors.json"))
	if err != nil {
		t.Fatal(err)
	}
	var v struct {
		Notify struct {
			Cases []struct {
				Name         string            `json:"name"`
				Params       map[string]string `json:"params"`
				StringToSign string            `json:"string_to_sign"`
				Sign         string            `json:"sign"`
			} `json:"cases"`
		} `json:"notify"`
	}
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("vectors.json: %v", err)
	}
	if len(v.Notify.Cases) == 0 {
		t.Fatal("vectors.json: no notify cases")
	}
	c := v.Notify.Cases[0]
	if got := soakSignString(c.Params); got != c.StringToSign {
		t.Fatalf("signer, vector %s: string to sign\n got %s\nwant %s", c.Name, got, c.StringToSign)
	}
	if got, err := soakSign(key, c.Params); err != nil || got != c.Sign {
		t.Fatalf("signer, vector %s: sign %s (%v), want %s", c.Name, got, err, c.Sign)
	}
}

func soakCaddyfile(adminPort, sitePort, shopPort int, extra string) string {
	keysDir := filepath.Join(repoRoot, "testdata", "keys")
	return fmt.Sprintf(`{
	admin 127.0.0.1:%d
	persist_config off
	auto_https off
	grace_period 1s
}

http://127.0.0.1:%d {
	alipay {
		app_id %s
		app_private_key %s
		alipay_public_key %s
		secret {env.E2E_ALIPAY_SECRET}
		gateway http://127.0.0.1:9/gateway.do
%s	}
	reverse_proxy 127.0.0.1:%d
}
`, adminPort, sitePort, appID,
		strconv.Quote(filepath.Join(keysDir, "app_private_key_pkcs1.pem")),
		strconv.Quote(filepath.Join(keysDir, "alipay_public_key.pem")),
		extra, shopPort)
}

// soakLoad replaces Caddy's config through the admin API.
func soakLoad(admin, caddyfile string) (time.Duration, error) {
	start := time.Now()
	req, err := http.NewRequest(http.MethodPost, admin+"/load", strings.NewReader(caddyfile))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "text/caddyfile")
	resp, err := (&http.Client{Timeout: 15 * time.Second}).Do(req)
	if err != nil {
		return time.Since(start), err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode != http.StatusOK {
		return time.Since(start), fmt.Errorf("%s: %s", resp.Status, b)
	}
	return time.Since(start), nil
}

// soakShopAnswers tells whether the shop answered the notification 2xx
// at least once, whether it acknowledged it at least once, and what its
// last answer was.
func soakShopAnswers(entries []soakEntry) (any2xx, anyAck bool, last soakEntry) {
	for _, e := range entries {
		if e.Status >= 200 && e.Status <= 299 {
			any2xx = true
			anyAck = anyAck || e.Acked
		}
	}
	if len(entries) > 0 {
		last = entries[len(entries)-1]
	}
	return any2xx, anyAck, last
}

// soakUnacked2xx tells whether the shop's last answer was a complete 2xx
// that did not acknowledge the notification.
func soakUnacked2xx(entries []soakEntry) bool {
	_, _, last := soakShopAnswers(entries)
	return last.Status >= 200 && last.Status <= 299 && !last.Acked
}

// A soakLogged is the line that Caddy logged for a notification.
type soakLogged struct {
	Outcome        string `json:"outcome"`
	UpstreamStatus int    `json:"upstream_status"`
}

// soakOutcomes reads Caddy's logs (JSON, one line an entry) for the
// notify events, by out_trade_no; forged ones name it only as
// unverified_out_trade_no and are left out.
func soakOutcomes(t *testing.T, caddys ...*proc) map[string][]soakLogged {
	t.Helper()
	out := map[string][]soakLogged{}
	for _, p := range caddys {
		for _, line := range strings.Split(p.log(), "\n") {
			if !strings.Contains(line, `"event":"notify"`) {
				continue
			}
			var l struct {
				soakLogged
				Event      string `json:"event"`
				OutTradeNo string `json:"out_trade_no"`
			}
			if json.Unmarshal([]byte(line), &l) != nil || l.Event != "notify" || l.OutTradeNo == "" {
				continue
			}
			out[l.OutTradeNo] = append(out[l.OutTradeNo], l.soakLogged)
		}
	}
	return out
}

// report is the table of figures per phase and lines about the whole run.
func (a *soakAlipay) report(ledger map[string][]soakEntry, logged map[string][]soakLogged) (string, []string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	type row struct {
		sent, success, fail, noAnswer, other, shop2xx, shopAck, forged int
		lat                                                            []time.Duration
		noAnswers                                                      map[string]int
		failStatus                                                     map[int]int
	}
	rows := make([]row, len(a.phases))
	var total row
	for _, r := range a.results {
		ro := &rows[r.phase]
		for _, x := range []*row{ro, &total} {
			if r.forged {
				x.forged++
				continue
			}
			x.sent++
			x.lat = append(x.lat, r.elapsed)
			switch r.class {
			case soakSuccess:
				x.success++
			case soakFailed:
				x.fail++
				if x.failStatus == nil {
					x.failStatus = map[int]int{}
				}
				x.failStatus[r.status]++
			case soakNoAnswer:
				x.noAnswer++
				if x.noAnswers == nil {
					x.noAnswers = map[string]int{}
				}
				x.noAnswers[r.err]++
			default:
				x.other++
			}
			any2xx, anyAck, _ := soakShopAnswers(ledger[r.id])
			if any2xx {
				x.shop2xx++
			}
			if anyAck {
				x.shopAck++
			}
		}
	}
	var b strings.Builder
	w := tabwriter.NewWriter(&b, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(w, "phase\tsecs\tsent\tsuccess\tfail\tno answer\tother\tshop 2xx\tshop ack\tforged\tp50 ms\tmax ms\texpected\t")
	line := func(name string, secs float64, x row, expected string) {
		slices.Sort(x.lat)
		p50, maxLat := time.Duration(0), time.Duration(0)
		if n := len(x.lat); n > 0 {
			p50, maxLat = x.lat[n/2], x.lat[n-1]
		}
		fmt.Fprintf(w, "%s\t%.1f\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%s\t\n", name, secs, x.sent, x.success, x.fail,
			x.noAnswer, x.other, x.shop2xx, x.shopAck, x.forged, p50.Milliseconds(), maxLat.Milliseconds(), expected)
	}
	var lines []string
	for i, ph := range a.phases {
		line(ph.name, ph.end.Sub(ph.start).Seconds(), rows[i], ph.allowed.String())
		if len(rows[i].noAnswers) > 0 || len(rows[i].failStatus) > 0 {
			lines = append(lines, fmt.Sprintf("%s: fail by status %v, no answer by cause %v", ph.name, rows[i].failStatus, rows[i].noAnswers))
		}
	}
	line("TOTAL", a.phases[len(a.phases)-1].end.Sub(a.phases[0].start).Seconds(), total, "")
	_ = w.Flush()
	var lies, forgedOK int
	for _, r := range a.results {
		if _, acked, _ := soakShopAnswers(ledger[r.id]); r.class == soakSuccess && (r.forged || !acked) {
			lies++
		}
		if r.forged && len(ledger[r.id]) == 0 && r.class == soakFailed && r.status == http.StatusBadRequest {
			forgedOK++
		}
	}
	fmt.Fprintf(&b, "success without the shop's acknowledgement: %d (must be 0); forged answered 400 fail, unseen by the shop: %d of %d\n",
		lies, forgedOK, total.forged)

	var twice, ackedNotTold, unacked, unackedFail, unackedLogged int
	for _, r := range a.results {
		if r.forged {
			continue
		}
		if len(ledger[r.id]) > 1 {
			twice++
		}
		if _, acked, _ := soakShopAnswers(ledger[r.id]); acked && r.class != soakSuccess {
			ackedNotTold++
		}
		if soakUnacked2xx(ledger[r.id]) {
			unacked++
			if r.class == soakFailed {
				unackedFail++
			}
		}
		for _, l := range logged[soakOutTradeNo(a.run, r.seq)] {
			if l.Outcome == "unacknowledged" {
				unackedLogged++
			}
		}
	}
	fmt.Fprintf(&b, "shop answered 2xx without acknowledging: %d; Alipay heard fail for %d; Caddy logged unacknowledged: %d\n",
		unacked, unackedFail, unackedLogged)
	lines = append(lines,
		fmt.Sprintf("shop acknowledged but Alipay did not hear success: %d (Alipay retries them; a shop dedupes by jti)", ackedNotTold),
		fmt.Sprintf("notifications the shop received more than once from one send: %d", twice),
		fmt.Sprintf("notifications not sent because %d were in flight: %d", cap(a.limit), a.skipped()))
	return b.String(), lines
}

func (a *soakAlipay) skipped() int64 { return a.skips.Load() }

// check fails the test on any broken promise.
func (a *soakAlipay) check(t *testing.T, ledger map[string][]soakEntry, logged map[string][]soakLogged) {
	t.Helper()
	a.mu.Lock()
	defer a.mu.Unlock()
	results := slices.Clone(a.results)
	slices.SortFunc(results, func(x, y soakResult) int { return x.sent.Compare(y.sent) })
	var errs []string
	fail := func(format string, args ...any) { errs = append(errs, fmt.Sprintf(format, args...)) }
	afterRestart := -1
	for i, ph := range a.phases {
		if ph.name == "after restart" {
			afterRestart = i
		}
	}
	firstAfterRestart := 0
	for _, r := range results {
		ph := a.phases[r.phase]
		core := r.sent.Before(ph.end.Add(-soakGuard))
		for _, e := range ledger[r.id] {
			if !e.Received.Before(ph.end) {
				core = false
			}
		}
		desc := fmt.Sprintf("notification %d (%s, phase %q, +%s): %s %q %s", r.seq, r.id, ph.name,
			r.sent.Sub(ph.start).Round(time.Millisecond), r.class, soakShort(r.body), soakLedgerText(ledger[r.id]))
		_, acked, last := soakShopAnswers(ledger[r.id])
		if r.forged {
			ok400 := r.class == soakFailed && r.status == http.StatusBadRequest
			switch {
			case r.class == soakSuccess:
				fail("FORGED NOTIFICATION ANSWERED SUCCESS: %s", desc)
			case len(ledger[r.id]) > 0:
				fail("forged, reached the shop: %s", desc)
			case ph.allowed != soakAny && !ok400 && (core || r.class != soakNoAnswer):
				fail("forged, not answered 400 fail: %s (status %d)", desc, r.status)
			}
			continue
		}
		// The key invariant: success only for what the shop acknowledged.
		if r.class == soakSuccess && !acked {
			fail("SUCCESS WITHOUT THE SHOP'S ACKNOWLEDGEMENT: %s", desc)
		} else if r.class == soakSuccess && !last.Acked {
			fail("SUCCESS, BUT THE SHOP'S LAST ANSWER WAS NOT AN ACKNOWLEDGEMENT: %s", desc)
		}
		if r.class == soakFailed && r.status < 500 {
			fail("a genuine notification got fail with status %d (not 5xx): %s", r.status, desc)
		}
		if r.class == soakOther && ph.allowed != soakAny {
			fail("an answer that is neither success nor fail: %s (status %d)", desc, r.status)
		}
		if core && r.class&ph.allowed == 0 {
			fail("expected %s: %s", ph.allowed, desc)
		}
		// Caddy's log names a 2xx without an acknowledgement as such, and
		// only that.
		var unackedLog *soakLogged
		for _, l := range logged[soakOutTradeNo(a.run, r.seq)] {
			if l.Outcome == "unacknowledged" {
				unackedLog = &l
			}
		}
		switch {
		case soakUnacked2xx(ledger[r.id]) && r.class == soakFailed && unackedLog == nil:
			fail("the shop's 2xx acknowledged nothing, but Caddy's log has no outcome unacknowledged for it: %s %v", desc, logged[soakOutTradeNo(a.run, r.seq)])
		case unackedLog != nil && !soakUnacked2xx(ledger[r.id]):
			fail("Caddy logged outcome unacknowledged, but the shop's last answer was no 2xx without an acknowledgement: %s", desc)
		case unackedLog != nil && unackedLog.UpstreamStatus != last.Status:
			fail("Caddy logged outcome unacknowledged with upstream_status %d, the shop answered %d: %s", unackedLog.UpstreamStatus, last.Status, desc)
		}
		if r.phase == afterRestart && firstAfterRestart < soakFirstAfterRestart {
			firstAfterRestart++
			if r.class != soakSuccess {
				fail("not success right after the restart (#%d after Caddy answered again): %s", firstAfterRestart, desc)
			}
		}
		if ph.name == "reload: forward_notify" && core {
			for _, e := range ledger[r.id] {
				if e.Path != "/shop/notify" {
					fail("forward_notify /shop/notify is loaded, but the shop got it on %s: %s", e.Path, desc)
				}
			}
		}
	}
	if afterRestart >= 0 && firstAfterRestart < soakFirstAfterRestart {
		fail("only %d notifications after the restart", firstAfterRestart)
	}
	if a.skipped() > 0 {
		fail("%d notifications were not sent: too many in flight", a.skipped())
	}
	for _, e := range soakFirst(errs, 25) {
		t.Error(e)
	}
	if len(errs) > 25 {
		t.Errorf("... and %d more", len(errs)-25)
	}
}

func soakLedgerText(entries []soakEntry) string {
	if len(entries) == 0 {
		return "[shop: nothing]"
	}
	var s []string
	for _, e := range entries {
		s = append(s, fmt.Sprintf("%d %s at %s", e.Status, e.Kind, e.At.Format("15:04:05.000")))
	}
	return "[shop: " + strings.Join(s, "; ") + "]"
}

func soakShort(s string) string {
	if len(s) > 120 {
		return s[:120] + "..."
	}
	return s
}

func soakFirst(s []string, n int) []string {
	return s[:min(n, len(s))]
}

func soakDurations(ds []time.Duration) string {
	var s []string
	for _, d := range ds {
		s = append(s, d.Round(time.Millisecond).String())
	}
	return strings.Join(s, ", ")
}

// soakRSS is the resident memory of p's process, in KiB.
func soakRSS(t *testing.T, p *proc) int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.cmd.Process.Pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return kb
		}
	}
	t.Fatal("no VmRSS")
	return 0
}
