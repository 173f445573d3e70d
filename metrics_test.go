package alipay

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/caddy-alipay/caddy-alipay/internal/testvec"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// /metrics on the admin endpoint shows the handler's counters, by event
// and outcome.
func TestCaddyMetrics(t *testing.T) {
	_, upstream := startShop(t)
	tester := loadSidecar(t, standardSettings(), upstream, "")
	tester.AssertGetResponse(caddyURL+"/alipay/pay?token=x", 403, "invalid payment token: not a JWT (three base64url parts joined by dots)\n")
	req, err := http.NewRequest("POST", caddyURL+"/alipay/notify", strings.NewReader(testvec.Load(t).Notify.Cases[0].PostBody))
	require.NoError(t, err)
	tester.AssertResponse(req, 200, "success")

	resp, err := http.Get(adminURL + "/metrics")
	require.NoError(t, err)
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	assert.Contains(t, string(body), `caddy_alipay_events_total{event="notify",outcome="ok"}`)
	assert.Contains(t, string(body), `caddy_alipay_events_total{event="pay",outcome="forbidden"}`)
}

// Alipay hanging up is not the shop's failure: the notification counts
// under an outcome of its own, aborted.
func TestNotifyClientGone(t *testing.T) {
	h := newTestHandler(t, nil)
	ctx, cancel := context.WithCancel(context.Background())
	next := caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		cancel()
		return caddyhttp.Error(499, context.Canceled)
	})
	r := notifyRequest(testvec.Load(t).Notify.Cases[0].PostBody).WithContext(ctx)
	var got outcome
	h.metrics = &eventMetrics{counters: map[eventOutcome]prometheus.Counter{}}
	for _, o := range allOutcomes {
		c := prometheus.NewCounter(prometheus.CounterOpts{Name: "c_" + string(o)})
		h.metrics.counters[eventOutcome{eventNotify, o}] = c
	}
	w := serve(t, h, next, r)
	assert.Equal(t, http.StatusBadGateway, w.Code)
	for o, c := range h.metrics.counters {
		if testutil.ToFloat64(c) == 1 {
			got = o.outcome
		}
	}
	assert.Equal(t, outcomeAborted, got)
}
