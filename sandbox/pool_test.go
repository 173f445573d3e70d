package sandbox

import (
	"context"
	"encoding/json"
	"maps"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddy-alipay/caddy-alipay/internal/protocol"
	"github.com/caddy-alipay/caddy-alipay/internal/testvec"
	"github.com/caddyserver/caddy/v2"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The trade store across reloads (pool.go), played as Caddy plays a
// reload: each config is a caddy.Context of its own that loads the
// module; the new config is provisioned first, then the old one's
// context is cancelled, which cleans its modules up.

// configJSON is a sandbox's JSON config: the vectors' keys, and settings.
func configJSON(t *testing.T, settings map[string]any) json.RawMessage {
	t.Helper()
	cfg := map[string]any{"app_public_key": testvec.Key("app_public_key.pem"), "alipay_private_key": testvec.Key("alipay_private_key_pkcs1.pem")}
	maps.Copy(cfg, settings)
	raw, err := json.Marshal(cfg)
	require.NoError(t, err)
	return raw
}

// loadConfig loads a config holding one sandbox, from its JSON; stop
// ends the config, as a reload ends the old one (the test's end does it
// too, once).
func loadConfig(t *testing.T, raw json.RawMessage) (h *Handler, stop func()) {
	t.Helper()
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	mod, err := ctx.LoadModuleByID("http.handlers.alipay_sandbox", raw)
	require.NoError(t, err)
	stop = sync.OnceFunc(cancel)
	t.Cleanup(stop)
	return mod.(*Handler), stop
}

// fireRetry does what the timers of the trade's retry loops do when
// their waits are over, without the waits: it moves the package clock
// past the next attempt of each of the trade's notifications and wakes
// their loops.
func fireRetry(t *testing.T, sb *Handler, no string) {
	t.Helper()
	d := tradeJSON(t, sb, no)[0]
	require.NotNil(t, d.NextAttempt)
	var latest time.Time
	for _, n := range d.Notifications {
		if n.NextAttempt != nil && parseRFC3339(t, *n.NextAttempt).After(latest) {
			latest = parseRFC3339(t, *n.NextAttempt)
		}
	}
	advanceClock(t, latest.Sub(now())+time.Second)
	for _, n := range sb.trades.snapshot(sb.trades.byCashierID(d.ID)).notices {
		select {
		case n.wake <- struct{}{}:
		default: // a wake-up is pending already
		}
	}
}

// A reload of an unchanged sandbox keeps its trades and their pending
// retries, a refund's notification's as well as the payment's: the old
// config's cleanup stops neither, and the retries go out after it,
// recorded where the new config's pages see them.
func TestReloadKeepsTradesAndRetries(t *testing.T) {
	raw := configJSON(t, map[string]any{"notify_retry": []string{"1h", "1h"}})
	a, stopA := loadConfig(t, raw)
	w := worldOf(t, a)
	w.shop.setStatus(http.StatusInternalServerError)
	require.Equal(t, http.StatusFound, w.postCashier(t, w.openTestOrder(t, "RL1", "9.90", "reload")).Code)
	w.shop.waitNotify(t)
	waitTrade(t, a, "RL1", waiting(1))
	r := apiCall(t, a, "alipay.trade.refund", map[string]any{"out_trade_no": "RL1", "refund_amount": "1.00", "out_request_no": "RF1"})
	require.Equal(t, "10000", r["code"])
	w.shop.waitNotify(t)
	waitTrade(t, a, "RL1", waiting(2))

	b, _ := loadConfig(t, raw) // the new config, before the old one ends
	require.Same(t, a.trades, b.trades, "the same identity: the same store")
	stopA()
	require.NoError(t, a.Cleanup(), "cleaning up again does nothing")
	assert.Same(t, b, b.trades.current(), "the retries read the new config's sandbox")

	w.sandbox = b
	d := waitTrade(t, b, "RL1", waiting(2))
	assert.False(t, d.GivenUp)
	require.Len(t, d.Notifications, 2)
	for _, n := range d.Notifications {
		assert.NotNil(t, n.NextAttempt, "both pending: "+n.About)
	}
	q := apiCall(t, b, "alipay.trade.query", map[string]any{"out_trade_no": "RL1"})
	assertAPIFields(t, map[string]any{"code": "10000", "trade_status": "TRADE_SUCCESS", "total_amount": "9.90"}, q)

	w.shop.setStatus(http.StatusOK)
	fireRetry(t, b, "RL1")
	w.shop.waitNotify(t)
	w.shop.waitNotify(t)
	d = waitTrade(t, b, "RL1", delivered)
	require.Len(t, d.Attempts, 4)
	for _, n := range d.Notifications {
		require.Len(t, n.Attempts, 2, n.About)
		assert.True(t, n.Attempts[1].Accepted)
		assert.False(t, n.Attempts[1].Resend, "the retry loop's own attempt")
		assert.Equal(t, n.Attempts[0].NotifyID, n.Attempts[1].NotifyID)
	}
	assert.Equal(t, "refund", d.Notifications[1].About)
	notes := w.shop.notified()
	assert.Len(t, notes, 4, "all verified with Alipay's key")
	require.Len(t, notes, 4)
	assert.ElementsMatch(t, []string{"", "1.00"}, []string{notes[2]["refund_fee"], notes[3]["refund_fee"]},
		"after the reload, the payment's and the refund's")
	assert.Contains(t, tradePage(t, b, "RL1"), "Delivered 已送达")
}

// After a reload that changes notify_retry and max_trades, but not the
// sandbox's identity, the new values apply: max_trades to the trades
// kept at once, notify_retry to the waits after the one under way. A
// reload whose new config fails (its sandbox cleaned up at once) leaves
// the old one's settings in force.
func TestReloadAppliesNewSettings(t *testing.T) {
	a, stopA := loadConfig(t, configJSON(t, map[string]any{"notify_retry": []string{"1h"}, "max_trades": 3}))
	w := worldOf(t, a)
	w.shop.setStatus(http.StatusServiceUnavailable)
	w.openTestOrder(t, "RS1", "1.00", "oldest")
	w.openTestOrder(t, "RS2", "1.00", "unpaid")
	w.postCashier(t, w.openTestOrder(t, "RS3", "1.00", "paid"))
	w.shop.waitNotify(t)
	waitTrade(t, a, "RS3", waiting(1))

	// A reload that fails: its sandbox is cleaned up, the old one stays.
	failed, stopFailed := loadConfig(t, configJSON(t, map[string]any{"max_trades": 1000}))
	assert.Equal(t, 1000, tradeListJSON(t, failed).MaxTrades)
	stopFailed()
	assert.Same(t, a, a.trades.current())
	assert.Equal(t, 3, tradeListJSON(t, a).MaxTrades)

	b, _ := loadConfig(t, configJSON(t, map[string]any{"notify_retry": []string{"1h", "1ms", "1ms"}, "max_trades": 2}))
	stopA()
	list := tradeListJSON(t, b)
	assert.Equal(t, 2, list.MaxTrades)
	assert.Equal(t, 2, list.Kept)
	assert.EqualValues(t, 1, list.Dropped, "the oldest, at once")
	assert.Equal(t, http.StatusNotFound, tradesGet(t, b, "/sandbox/trades/RS1", true).Code)

	// The wait under way ends; the next ones are the new schedule's, and
	// it is the new schedule that ends: 1 + 3 attempts, where the old
	// config's would have stopped at 2.
	fireRetry(t, b, "RS3")
	for range 3 {
		w.shop.waitNotify(t)
	}
	d := waitTrade(t, b, "RS3", func(d tradeDoc) bool { return d.GivenUp })
	assert.Equal(t, 4, d.AttemptsTotal)
	assert.Nil(t, d.NextAttempt)
	assert.Contains(t, tradePage(t, b, "RS3"), "none of the 4 attempts on the schedule")
}

// A sandbox with another identity as Alipay (another key, partner and
// md5_key, certificates directory) has a store of its own, and starts
// empty; other settings do not make another sandbox.
func TestStoreByIdentity(t *testing.T) {
	a, _ := loadConfig(t, configJSON(t, nil))
	w := worldOf(t, a)
	w.openTestOrder(t, "ID1", "1.00", "a's")
	v := testvec.LoadLegacy(t)
	_, otherAppKey := testvec.NewKeyFiles(t, 2048)
	for name, settings := range map[string]map[string]any{
		"another app key":      {"app_public_key": otherAppKey},
		"another Alipay key":   {"alipay_private_key": testvec.Path("legacy", "alipay_rsa1024_private.pem")},
		"partner and md5_key":  {"partner": v.Partner, "md5_key": v.MD5Key},
		"certificates":         {"certificates": t.TempDir()},
		"legacy gateway alone": {"app_public_key": "", "alipay_private_key": "", "partner": v.Partner, "md5_key": v.MD5Key},
	} {
		t.Run(name, func(t *testing.T) {
			other, _ := loadConfig(t, configJSON(t, settings))
			assert.NotSame(t, a.trades, other.trades)
			assert.Equal(t, tradeListDoc{MaxTrades: defaultMaxTrades, Trades: []tradeSummary{}}, tradeListJSON(t, other))
		})
	}

	// Other settings make no other store, nor the same identity given
	// another way.
	same, _ := loadConfig(t, configJSON(t, map[string]any{"notify_retry": []string{"1s"}, "max_trades": 10, "callback_hosts": []string{"shop.test"}}))
	assert.Same(t, a.trades, same.trades)
	legacy, _ := loadConfig(t, configJSON(t, map[string]any{"partner": v.Partner, "md5_key": v.MD5Key}))
	t.Setenv("TEST_SANDBOX_PARTNER", v.Partner)
	alike, _ := loadConfig(t, configJSON(t, map[string]any{"partner": "{env.TEST_SANDBOX_PARTNER}", "md5_key": testvec.Path("legacy", "md5_key.txt")}))
	assert.Same(t, legacy.trades, alike.trades, "md5_key from a file, partner from the environment")
	assert.Len(t, tradeJSON(t, a, "ID1"), 1)
}

// When the last sandbox of a store lets go of it, its retry loops stop:
// Cleanup returns once they have, and the shop sees no attempt after it.
func TestLastCleanupStopsTheRetries(t *testing.T) {
	var attempts atomic.Int32
	shop := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		attempts.Add(1)
		http.Error(w, "fail", http.StatusInternalServerError)
	}))
	defer shop.Close()
	a, stopA := loadConfig(t, configJSON(t, map[string]any{"notify_retry": slices.Repeat([]string{"2ms"}, 200)}))
	w := &world{sandbox: a, api: merchantAPI(t, protocol.SignTypeRSA2)}
	_, forms := w.cashier(t, w.gateway(t, "GET", payURL(t, w.api, shop.URL+"/notify", shop.URL+"/return",
		map[string]any{"out_trade_no": "ST1", "total_amount": "1.00", "subject": "stop"}), ""))
	require.Equal(t, http.StatusFound, w.postCashier(t, forms["pay"]).Code)
	require.Eventually(t, func() bool { return attempts.Load() >= 3 }, 10*time.Second, time.Millisecond, "the retries go out")

	stopA()
	n := attempts.Load()
	var key any
	stores.Range(func(k, v any) bool {
		if v == a.trades {
			key = k
		}
		return true
	})
	assert.Nil(t, key, "the store left the pool")
	time.Sleep(20 * time.Millisecond) // ten waits of the schedule
	assert.Equal(t, n, attempts.Load(), "no attempt after the last cleanup")
	d := tradeJSON(t, a, "ST1")[0]
	assert.Nil(t, d.NextAttempt)
	assert.False(t, d.GivenUp)
	assert.Contains(t, tradePage(t, a, "ST1"), "Stopped: the sandbox stopped before the notification was accepted.")
	require.NoError(t, a.Cleanup(), "cleaning up again does nothing")
	require.NoError(t, (&Handler{}).Cleanup(), "nor does cleaning up what was never provisioned")
}
