package alipay

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/caddy-alipay/caddy-alipay/internal/testvec"
	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// slowBody sends its bytes one a tick.
type slowBody struct {
	data []byte
	tick time.Duration
}

func (b *slowBody) Read(p []byte) (int, error) {
	if len(b.data) == 0 {
		return 0, io.EOF
	}
	time.Sleep(b.tick)
	p[0], b.data = b.data[0], b.data[1:]
	return 1, nil
}

// A notification whose body dribbles in is cut off at notify_timeout,
// through a real server (the deadline is the connection's).
func TestNotifySlowBody(t *testing.T) {
	h := newTestHandler(t, func(h *Handler) { h.NotifyTimeout = caddy.Duration(300 * time.Millisecond) })
	logs := observe(h)
	next := &upstream{status: 200}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = h.ServeHTTP(w, onSite(h, r, "127.0.0.1"), next)
	}))
	defer srv.Close()
	body := testvec.Load(t).Notify.Cases[0].PostBody
	req, err := http.NewRequest("POST", srv.URL+"/alipay/notify", &slowBody{data: []byte(body), tick: 10 * time.Millisecond})
	require.NoError(t, err)
	req.ContentLength = int64(len(body))
	start := time.Now()
	resp, err := http.DefaultClient.Do(req)
	if err == nil {
		resp.Body.Close()
		assert.Equal(t, http.StatusRequestTimeout, resp.StatusCode)
	}
	assert.Less(t, time.Since(start), 3*time.Second, "cut off, not read for %v", time.Duration(len(body))*10*time.Millisecond)
	require.Eventually(t, func() bool { return logs.Len() > 0 }, time.Second, 10*time.Millisecond)
	assert.Equal(t, outcomeInvalid, outcomeOf(lastEvent(t, logs)))
	assert.Contains(t, lastEvent(t, logs)["reason"], "notify_timeout")
	assert.Zero(t, next.calls)
}

// Where the connection has no read deadline (a ResponseWriter that
// cannot set one), a body that came too late is still refused, once it
// has been read.
func TestNotifySlowBodyWithoutDeadline(t *testing.T) {
	h := newTestHandler(t, func(h *Handler) { h.NotifyTimeout = caddy.Duration(50 * time.Millisecond) })
	next := &upstream{status: 200}
	body := testvec.Load(t).Notify.Cases[0].PostBody
	r := httptest.NewRequest("POST", "http://127.0.0.1/alipay/notify", &slowBody{data: []byte(body[:20]), tick: 10 * time.Millisecond})
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded; charset=utf-8")
	w := httptest.NewRecorder() // no SetReadDeadline
	require.NoError(t, h.ServeHTTP(w, onSite(h, r, "127.0.0.1"), next))
	assert.Equal(t, http.StatusRequestTimeout, w.Code)
	assert.Zero(t, next.calls)
}

// A shop that sends a status and part of a body, then resets: Alipay
// hears fail, and the log says why.
func TestUpstreamBreaksOff(t *testing.T) {
	breakOff := caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		w.WriteHeader(200)
		_, _ = io.WriteString(w, "partial")
		panic(http.ErrAbortHandler) // as reverse_proxy does
	})
	h := newTestHandler(t, nil)
	logs := observe(h)
	vec := testvec.Load(t)
	w := serve(t, h, breakOff, notifyRequest(vec.Notify.Cases[0].PostBody))
	assert.Equal(t, http.StatusBadGateway, w.Code)
	assert.Equal(t, "fail", w.Body.String())
	assert.Equal(t, outcomeUpstreamFailed, outcomeOf(lastEvent(t, logs)))

	// A return: the browser's connection is aborted as reverse_proxy would,
	// and the log says what happened.
	fixClock(t, tokenNow)
	u := strings.SplitN(vec.Return.RedirectURL, "?", 2)[1]
	assert.PanicsWithValue(t, http.ErrAbortHandler, func() {
		_ = h.ServeHTTP(httptest.NewRecorder(), onSite(h, httptest.NewRequest("GET", "http://shop.example.com/alipay/return?"+u, nil), "shop.example.com"), breakOff)
	})
	assert.Equal(t, outcomeUpstreamFailed, outcomeOf(lastEvent(t, logs)))

	// The shop down, or answering 5xx, on a return.
	down := &upstream{err: caddyhttp.Error(502, errors.New("dial tcp: connection refused"))}
	r := httptest.NewRequest("GET", "http://shop.example.com/alipay/return?"+u, nil)
	assert.Error(t, h.ServeHTTP(httptest.NewRecorder(), onSite(h, r, "shop.example.com"), down))
	ev := lastEvent(t, logs)
	assert.Equal(t, outcomeUpstreamFailed, outcomeOf(ev))
	assert.Contains(t, ev["reason"], "connection refused")
	w = serve(t, h, &upstream{status: 503}, httptest.NewRequest("GET", "http://shop.example.com/alipay/return?"+u, nil))
	assert.Equal(t, 503, w.Code)
	assert.Equal(t, outcomeUpstreamFailed, outcomeOf(lastEvent(t, logs)))
	assert.EqualValues(t, 503, lastEvent(t, logs)["upstream_status"])
	w = serve(t, h, &upstream{status: 200}, httptest.NewRequest("GET", "http://shop.example.com/alipay/return?"+u, nil))
	assert.Equal(t, outcomeOK, outcomeOf(lastEvent(t, logs)))
}
