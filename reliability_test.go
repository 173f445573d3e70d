package alipay

// The notify promise under a failing shop: Alipay hears success only for a
// 2xx that came after the whole notification was offered, and gets an
// answer within notify_timeout whatever the shop does.

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/caddy-alipay/caddy-alipay/internal/testvec"
	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Each way a shop fails has its answer.
func TestNotifyShopFailures(t *testing.T) {
	body := testvec.Load(t).Notify.Cases[0].PostBody
	for name, c := range map[string]struct {
		next    caddyhttp.HandlerFunc
		status  int
		outcome string
	}{
		"200 success after reading it all": {func(w http.ResponseWriter, r *http.Request) error {
			_, _ = io.ReadAll(r.Body)
			_, _ = io.WriteString(w, "success")
			return nil
		}, 200, outcomeOK},
		"200 success after reading part": {func(w http.ResponseWriter, r *http.Request) error {
			_, _ = r.Body.Read(make([]byte, 10))
			_, _ = io.WriteString(w, "success")
			return nil
		}, 502, outcomeUpstreamFailed},
		"200 success without reading (respond)": {func(w http.ResponseWriter, r *http.Request) error {
			_, _ = io.WriteString(w, "success")
			return nil
		}, 502, outcomeUpstreamFailed},
		"200 with nothing (a misrouted site)": {func(w http.ResponseWriter, r *http.Request) error {
			_, _ = io.ReadAll(r.Body)
			w.WriteHeader(200)
			return nil
		}, 502, outcomeUnacknowledged},
		"500": {func(w http.ResponseWriter, r *http.Request) error {
			_, _ = io.ReadAll(r.Body)
			w.WriteHeader(500)
			return nil
		}, 502, outcomeUpstreamFailed},
		"redirect": {func(w http.ResponseWriter, r *http.Request) error {
			_, _ = io.ReadAll(r.Body)
			http.Redirect(w, r, "/login", http.StatusFound)
			return nil
		}, 502, outcomeUpstreamFailed},
		"refused": {func(w http.ResponseWriter, r *http.Request) error {
			return caddyhttp.Error(502, errors.New("dial tcp 127.0.0.1:8000: connect: connection refused"))
		}, 502, outcomeUpstreamFailed},
		"reset in the middle": {func(w http.ResponseWriter, r *http.Request) error {
			_, _ = io.ReadAll(r.Body)
			w.WriteHeader(200)
			_, _ = io.WriteString(w, "par")
			panic(http.ErrAbortHandler)
		}, 502, outcomeUpstreamFailed},
		"hangs": {func(w http.ResponseWriter, r *http.Request) error {
			_, _ = io.ReadAll(r.Body)
			<-r.Context().Done() // as reverse_proxy, cancelled with the request
			return caddyhttp.Error(502, r.Context().Err())
		}, 504, outcomeUpstreamFailed},
	} {
		t.Run(name, func(t *testing.T) {
			h := newTestHandler(t, func(h *Handler) { h.NotifyTimeout = caddy.Duration(100 * time.Millisecond) })
			logs := observe(h)
			start := time.Now()
			w := serve(t, h, c.next, notifyRequest(body))
			assert.Equal(t, c.status, w.Code)
			want := "fail"
			if c.status == 200 {
				want = "success"
			}
			assert.Equal(t, want, w.Body.String())
			assert.Equal(t, c.outcome, lastEvent(t, logs)["outcome"])
			assert.Less(t, time.Since(start), 5*time.Second)
			if name == "hangs" {
				assert.Contains(t, lastEvent(t, logs)["reason"], "notify_timeout")
			}
		})
	}
}

// Alipay hears success only when the shop acknowledges the notification:
// a 2xx whose body is success, or that carries X-Alipay-Ack with the
// token's jti; notify_ack status takes any 2xx.
func TestNotifyAcknowledgement(t *testing.T) {
	body := testvec.Load(t).Notify.Cases[0].PostBody
	form, err := url.ParseQuery(body)
	require.NoError(t, err)
	jti := form.Get("notify_id")
	require.NotEmpty(t, jti)
	answer := func(status int, ack, text string) caddyhttp.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) error {
			_, _ = io.ReadAll(r.Body)
			if ack != "" {
				w.Header().Set(AckHeader, ack)
			}
			w.WriteHeader(status)
			_, _ = io.WriteString(w, text)
			return nil
		}
	}
	for _, c := range []struct {
		name          string
		ackSetting    string
		next          caddyhttp.HandlerFunc
		success       bool
		reasonMissing string
	}{
		{"success", "", answer(200, "", "success"), true, ""},
		{"success and a newline", "", answer(200, "", "success\n"), true, ""},
		{"success with spaces and a BOM (a PHP file saved so)", "", answer(200, "", "\uFEFF  success \r\n"), true, ""},
		{"204 and X-Alipay-Ack", "", answer(204, jti, ""), true, ""},
		{"201 page and X-Alipay-Ack", "", answer(201, jti, "<html>saved</html>"), true, ""},
		{"an empty 200", "", answer(200, "", ""), false, "its body is not success"},
		{"the seeds' fail, as a 200", "", answer(200, "", "fail"), false, "its body is not success"},
		{"SUCCESS in capitals", "", answer(200, "", "SUCCESS"), false, "its body is not success"},
		{"a page that says success", "", answer(200, "", "<html><p>success</p></html>"), false, "its body is not success"},
		{"success after a long page", "", answer(200, "", strings.Repeat(" ", 300)+"success"), false, "its body is not success"},
		{"an SPA fallback page", "", answer(200, "", "<!doctype html><div id=app></div>"), false, "X-Alipay-Ack"},
		{"X-Alipay-Ack of another notification", "", answer(200, "other-notify-id", "success"), false, "not this notification's jti"},
		{"a 500 that says success", "", answer(500, jti, "success"), false, ""},
		{"status: an empty 200", notifyAckStatus, answer(200, "", ""), true, ""},
		{"status: a catch-all page", notifyAckStatus, answer(200, "", "<html>"), true, ""},
		{"status: a 500", notifyAckStatus, answer(500, "", "success"), false, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			h := newTestHandler(t, func(h *Handler) { h.NotifyAck = c.ackSetting })
			logs := observe(h)
			w := serve(t, h, c.next, notifyRequest(body))
			ev := lastEvent(t, logs)
			if c.success {
				assert.Equal(t, 200, w.Code)
				assert.Equal(t, "success", w.Body.String())
				assert.Equal(t, outcomeOK, ev["outcome"])
				return
			}
			assert.Equal(t, 502, w.Code)
			assert.Equal(t, "fail", w.Body.String())
			if c.reasonMissing != "" {
				assert.Equal(t, outcomeUnacknowledged, ev["outcome"])
				assert.Contains(t, ev["reason"], c.reasonMissing)
			}
		})
	}
}

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
	assert.Equal(t, outcomeInvalid, lastEvent(t, logs)["outcome"])
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

func TestNotifyTimeoutSetting(t *testing.T) {
	var h Handler
	require.NoError(t, h.UnmarshalCaddyfile(caddyfile.NewTestDispenser("alipay {\n notify_timeout 2s\n}")))
	assert.Equal(t, caddy.Duration(2*time.Second), h.NotifyTimeout)
	for _, bad := range []string{"alipay {\n notify_timeout\n}", "alipay {\n notify_timeout soon\n}", "alipay {\n notify_timeout 0s\n}", "alipay {\n notify_timeout 1s 2s\n}"} {
		var h Handler
		assert.Error(t, h.UnmarshalCaddyfile(caddyfile.NewTestDispenser(bad)), bad)
	}
	assert.Equal(t, defaultNotifyTimeout, newTestHandler(t, nil).notifyTimeout())
	_, err := provisionHandler(t, func(h *Handler) { h.NotifyTimeout = caddy.Duration(-time.Second) })
	assert.ErrorContains(t, err, "notify_timeout: ")
}
