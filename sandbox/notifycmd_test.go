package sandbox

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddy-alipay/caddy-alipay/internal/protocol"
	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	"github.com/spf13/cobra"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The alipay-sandbox-notify command, run as a function against a
// sandbox served over HTTP on loopback: its output and exit status when
// the shop answers success, when it does not, and when the sandbox or a
// flag refuses; and its registration with Caddy's command line.

// sandboxServer serves sb on loopback, as a site for its address.
func sandboxServer(t *testing.T, sb *Handler) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		_ = sb.ServeHTTP(rw, onSite(sb, r, r.Host), upstream{})
	}))
	t.Cleanup(srv.Close)
	return srv
}

// runCmd runs the command with o, polling fast, and returns its exit
// status, error and output.
func runCmd(t *testing.T, o notifyOptions) (int, error, string) {
	t.Helper()
	if o.poll == 0 {
		o.poll = 5 * time.Millisecond
	}
	if o.wait == 0 {
		o.wait = 10 * time.Second
	}
	if o.amount == "" {
		o.amount = "0.01"
	}
	var out bytes.Buffer
	status, err := runNotify(context.Background(), &out, o)
	return status, err, out.String()
}

// An attempt's line: its number, time, status, duration and answer.
const attemptLine = `attempt %d  \d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+08:00  HTTP %d  \d+ ms  %s  %s`

// The shop answers success: exit 0, with the fresh out_trade_no, the
// notification, its one attempt and the result.
func TestNotifyCmdAccepted(t *testing.T) {
	w := newWorld(t, nil)
	srv := sandboxServer(t, w.sandbox)
	status, err, out := runCmd(t, notifyOptions{sandbox: srv.URL + "/gateway.do", notifyURL: w.site.URL + "/alipay/notify",
		kind: "paid", protocol: "openapi", appID: testAppID, amount: "12.00"})
	require.NoError(t, err, out)
	assert.Equal(t, 0, status)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	require.Len(t, lines, 4, out)
	m := regexp.MustCompile(`^out_trade_no (sandbox_\d{14}_[0-9a-f]{8}) \(a fresh one\), trade_no \d{28}, amount 12\.00: TRADE_SUCCESS \(openapi, --kind paid\)$`).FindStringSubmatch(lines[0])
	require.NotNil(t, m, lines[0])
	no := m[1]
	d := tradeJSON(t, w.sandbox, no)[0]
	n := d.Notifications[0]
	assert.Equal(t, "notification (payment, id "+n.ID+"): trade_status_sync to "+w.site.URL+"/alipay/notify, notify_id "+n.NotifyID, lines[1])
	assert.Regexp(t, "^"+fmt.Sprintf(attemptLine, 1, 200, `"success"`, "accepted")+"$", lines[2])
	assert.Equal(t, "result: accepted, the shop answered success (see "+srv.URL+"/sandbox/trades/"+no+")", lines[3])
	assertStrings(t, map[string]string{"out_trade_no": no, "total_amount": "12.00", "app_id": testAppID}, lastNotified(t, w.shop))
}

// The shop answers fail, and the sandbox's next attempt is an hour away:
// the command says so and exits 2 at once, well before --wait, since
// nothing more comes within it.
func TestNotifyCmdNotAccepted(t *testing.T) {
	w := newWorld(t, withRetry(time.Hour))
	w.shop.setStatus(http.StatusInternalServerError)
	srv := sandboxServer(t, w.sandbox)
	start := time.Now()
	status, err, out := runCmd(t, notifyOptions{sandbox: srv.URL, notifyURL: w.site.URL + "/alipay/notify",
		kind: "closed", appID: testAppID, outTradeNo: "CMD2", wait: time.Minute})
	assert.Less(t, time.Since(start), 30*time.Second, "no wait for an attempt an hour away")
	assert.Equal(t, exitNotAccepted, status)
	require.EqualError(t, err, "the notification was not accepted")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	require.Len(t, lines, 4, out)
	assert.Regexp(t, `^notification \(close, id \d+\): trade_status_sync to `, lines[1])
	assert.Regexp(t, `^out_trade_no CMD2, trade_no \d{28}, amount 0\.01: TRADE_CLOSED \(openapi, --kind closed\)$`, lines[0])
	assert.Regexp(t, "^"+fmt.Sprintf(attemptLine, 1, 500, `"fail"`, "not accepted")+"$", lines[2])
	d := tradeJSON(t, w.sandbox, "CMD2")[0]
	require.NotNil(t, d.NextAttempt)
	assert.Equal(t, "result: not accepted within 1m0s; the sandbox keeps retrying on its notify_retry schedule (1h0m0s): next attempt at "+
		*d.NextAttempt+" (see "+srv.URL+"/sandbox/trades/CMD2)", lines[3])
}

// A legacy refund: the payment's notification first, then the batch's,
// each attempt with its own notify_id, which notify_verify confirms.
func TestNotifyCmdLegacyRefund(t *testing.T) {
	w := newLegacyWorld(t, nil)
	w.merchant(t, protocol.SignTypeMD5, "gbk", legacyKeys{}, nil)
	status, err, out := runCmd(t, notifyOptions{sandbox: w.gateway.URL, notifyURL: w.site.URL + "/alipay/notify",
		kind: "refunded", protocol: "legacy", charset: "gbk", outTradeNo: "CMD3", amount: "8.80", subject: "龙井"})
	require.NoError(t, err, out)
	assert.Equal(t, 0, status)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	require.Len(t, lines, 6, out)
	d := legacyTradeDoc(t, w, "CMD3")
	assert.Regexp(t, `^out_trade_no CMD3, trade_no \d{28}, amount 8\.80: TRADE_CLOSED \(legacy, --kind refunded\)$`, lines[0])
	assert.Equal(t, "notification (payment, id "+d.Notifications[0].ID+") went first:", lines[1])
	assert.Regexp(t, "^"+fmt.Sprintf(attemptLine, 1, 200, `"success"`, "accepted")+"  notify_id [0-9a-f]{32}$", lines[2])
	assert.Equal(t, "notification (batch_refund, id "+d.Notifications[1].ID+"): batch_refund_notify to "+w.site.URL+"/alipay/notify", lines[3])
	assert.Regexp(t, "^"+fmt.Sprintf(attemptLine, 1, 200, `"success"`, "accepted")+"  notify_id [0-9a-f]{32}$", lines[4])
	id := lines[4][strings.LastIndex(lines[4], " ")+1:]
	assert.Equal(t, "true", w.notifyVerify(t, w.vec.Partner, id))
	n := w.shop.notified()
	require.Len(t, n, 2, w.shop.refused)
	assert.Equal(t, "TRADE_FINISHED", n[0]["trade_status"])
	assert.Equal(t, "batch_refund_notify", n[1]["notify_type"])
}

// The sandbox refuses: the command prints its answer and exits 1;
// nothing is sent.
func TestNotifyCmdSandboxRefuses(t *testing.T) {
	w := newWorld(t, nil)
	srv := sandboxServer(t, w.sandbox)
	status, err, out := runCmd(t, notifyOptions{sandbox: srv.URL, notifyURL: "http://shop.example.com/alipay/notify",
		kind: "paid", appID: testAppID})
	assert.Equal(t, exitNotSent, status)
	require.EqualError(t, err, "the sandbox refused the notification: invalid-parameter")
	assert.Equal(t, "the sandbox refused: HTTP 400 invalid-parameter: notify_url names shop.example.com, which is not on this machine: "+
		"the sandbox sends notifications and buyers only to loopback hosts and to those of callback_hosts\n", out)

	status, err, out = runCmd(t, notifyOptions{sandbox: srv.URL, notifyURL: w.site.URL + "/alipay/notify", kind: "paid", protocol: "legacy"})
	assert.Equal(t, exitNotSent, status)
	require.EqualError(t, err, "the sandbox refused the notification: PROTOCOL_NOT_CONFIGURED")
	assert.Contains(t, out, "the sandbox refused: HTTP 409 PROTOCOL_NOT_CONFIGURED: this sandbox has no legacy gateway")

	// Not a sandbox at all.
	other := httptest.NewServer(http.NotFoundHandler())
	t.Cleanup(other.Close)
	status, err, _ = runCmd(t, notifyOptions{sandbox: other.URL, notifyURL: w.site.URL + "/alipay/notify", kind: "paid", appID: testAppID})
	assert.Equal(t, exitNotSent, status)
	assert.ErrorContains(t, err, "answered 404 Not Found, not a notification's answer: it may be no alipay_sandbox, or of a build without this command")
	assert.Empty(t, tradeListJSON(t, w.sandbox).Trades)
	w.shop.noArrival(t, 50*time.Millisecond, "nothing was sent")
}

// Each flag is checked before anything is sent, and the error names it.
func TestNotifyCmdFlags(t *testing.T) {
	var asked atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { asked.Add(1) }))
	t.Cleanup(srv.Close)
	good := notifyOptions{sandbox: srv.URL, notifyURL: "http://127.0.0.1:8080/alipay/notify", kind: "paid", protocol: "openapi", appID: testAppID}
	for _, c := range []struct {
		edit func(*notifyOptions)
		err  string
	}{
		{func(o *notifyOptions) { o.sandbox = "" }, "--sandbox is required"},
		{func(o *notifyOptions) { o.sandbox = "127.0.0.1:8081" }, `--sandbox "127.0.0.1:8081": not an absolute http(s) URL`},
		{func(o *notifyOptions) { o.sandbox = srv.URL + "/?x=1" }, "no user, query or fragment"},
		{func(o *notifyOptions) { o.notifyURL = "" }, "--notify-url is required"},
		{func(o *notifyOptions) { o.notifyURL = "/alipay/notify" }, `--notify-url "/alipay/notify": not an absolute http(s) URL`},
		{func(o *notifyOptions) { o.kind = "" }, "--kind is required: paid, closed or refunded"},
		{func(o *notifyOptions) { o.kind = "shipped" }, `--kind "shipped": want paid, closed or refunded`},
		{func(o *notifyOptions) { o.amount = "12.345" }, `--amount "12.345": must be yuan with at most 2 decimals, like 88.80`},
		{func(o *notifyOptions) { o.amount = "0" }, `--amount "0": must be from 0.01 to 100000000`},
		{func(o *notifyOptions) { o.outTradeNo = "a b" }, `--out-trade-no "a b": must be 1 to 64 letters, digits or _`},
		{func(o *notifyOptions) { o.appID = "" }, "--app-id is required with --protocol openapi"},
		{func(o *notifyOptions) { o.appID = "x1" }, `--app-id "x1": not an Alipay APPID (digits)`},
		{func(o *notifyOptions) { o.sellerID = "2088000000000777" }, "its own seller_id, 2088000000000001"},
		{func(o *notifyOptions) { o.sellerID = "42" }, `--seller-id "42": not an Alipay seller id`},
		{func(o *notifyOptions) { o.signType = "MD5" }, `--sign-type "MD5": want RSA2 or RSA with --protocol openapi`},
		{func(o *notifyOptions) { o.charset = "gbk" }, "--charset is for --protocol legacy"},
		{func(o *notifyOptions) { o.protocol = "v3" }, `--protocol "v3": want openapi or legacy`},
		{func(o *notifyOptions) { o.protocol = "legacy" }, "--app-id is for --protocol openapi"},
		{func(o *notifyOptions) { o.protocol, o.appID, o.charset = "legacy", "", "big5" }, `--charset "big5": want utf-8 or gbk`},
		{func(o *notifyOptions) { o.protocol, o.appID, o.signType = "legacy", "", "RSA2" }, `--sign-type "RSA2": want MD5 or RSA`},
		{func(o *notifyOptions) { o.subject = "a=b" }, "--subject must not contain / = &"},
		{func(o *notifyOptions) { o.wait = -time.Second }, "--wait -1s: must be positive"},
	} {
		o := good
		c.edit(&o)
		if o.amount == "" {
			o.amount = "0.01"
		}
		var out bytes.Buffer
		status, err := runNotify(context.Background(), &out, o)
		assert.Equal(t, exitNotSent, status, c.err)
		assert.ErrorContains(t, err, c.err)
		assert.Empty(t, out.String())
	}
	assert.Zero(t, asked.Load(), "nothing was sent")
}

// The command as Caddy's command line has it: its name, usage, flags
// and their defaults, and --wait read by CommandFunc.
func TestNotifyCmdRegistered(t *testing.T) {
	c, ok := caddycmd.Commands()["alipay-sandbox-notify"]
	require.True(t, ok)
	assert.Equal(t, "alipay-sandbox-notify", c.Name)
	assert.False(t, strings.HasPrefix(c.Usage, "caddy"), c.Usage)
	assert.NotContains(t, c.Short, "\n")
	assert.False(t, strings.HasSuffix(c.Short, "."), c.Short)
	assert.Contains(t, c.Long, "--notify-url")
	cmd := &cobra.Command{Use: c.Name}
	c.CobraFunc(cmd)
	require.NotNil(t, cmd.RunE)
	for flag, def := range map[string]string{"sandbox": "", "notify-url": "", "kind": "", "protocol": "openapi", "app-id": "",
		"out-trade-no": "", "amount": "0.01", "subject": "", "seller-id": "", "seller-email": "", "sign-type": "", "charset": "", "wait": "15s"} {
		f := cmd.Flags().Lookup(flag)
		require.NotNil(t, f, flag)
		assert.Equal(t, def, f.DefValue, flag)
		assert.Contains(t, c.Usage, "--"+flag, "the usage names --%s", flag)
	}
	require.NoError(t, cmd.ParseFlags([]string{"--wait", "soon"}))
	status, err := cmdNotify(caddycmd.Flags{FlagSet: cmd.Flags()})
	assert.Equal(t, exitNotSent, status)
	assert.ErrorContains(t, err, `--wait "soon"`)
}
