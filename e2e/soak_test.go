package e2e

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
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
