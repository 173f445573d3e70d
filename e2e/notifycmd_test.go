package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestNotifyCmd: the built Caddy's alipay-sandbox-notify, as a shop
// developer runs it, against the example shops behind the sidecar, with
// the sandbox beside them (startShopEnv: notify_retry 1s 1s 2s 2s). For
// the Python and PHP shops (OpenAPI) and the Django shop (legacy, a GBK
// partner signing with MD5, notify_verify asked by the sidecar):
//
//   - accepted: an order that the shop made, its amount: exit 0, the
//     shop's answer success printed, and the order paid once;
//   - refused by the sidecar (OpenAPI: another app_id; legacy: another
//     seller_id): exit 2, the sidecar's 400 fail printed, the sandbox
//     still retrying, and the shop never reached;
//   - a wrong amount, and an order the shop never made: the shops
//     acknowledge both (a retry would not change them: they record them
//     for someone to look at), so the command exits 0, and the order
//     stays unpaid, or there is none;
//   - OpenAPI: refunded, of the order paid above: the refund's
//     notification alone, and the order refunded.
func TestNotifyCmd(t *testing.T) {
	for _, name := range []string{"python", "php", "django-legacy"} {
		kind := shopKindNamed(t, name)
		t.Run(name, func(t *testing.T) {
			needTool(t, kind.tool)
			switch name {
			case "php":
				needPHPSQLite(t)
			case "django-legacy":
				needDjango(t)
			}
			e := startShopEnv(t, kind)

			// Accepted: the shop's own order, of its amount.
			no := e.newShopOrder(t, "mug")
			r := e.notifyCmd(t, "--kind", "paid", "--out-trade-no", no, "--amount", mugAmount)
			require.Equal(t, 0, r.code, r)
			assert.Regexp(t, attemptRE(1, 200, `"success"`, "accepted"), r.stdout)
			assert.Contains(t, r.stdout, "result: accepted, the shop answered success (see "+e.gateway+"/sandbox/trades/"+no+")")
			assert.Regexp(t, `(?m)^out_trade_no `+no+`, trade_no \d{28}, amount `+regexp.QuoteMeta(mugAmount)+`: TRADE_(SUCCESS|FINISHED) \((openapi|legacy), --kind paid\)$`, r.stdout)
			o := e.waitPaid(t, no, 10*time.Second)
			assert.Equal(t, 1, o.Notifications)
			assert.Equal(t, 1, o.NotifyCalls)
			_, page := httpGet(t, e.site+"/orders/"+no)
			assert.Contains(t, page, `<strong id="status">paid</strong>`, "the shop's page shows the order paid")

			// Refused by the sidecar: not this app's, or not this seller's.
			refused := e.newShopOrder(t, "mug")
			other := []string{"--app-id", "2021000000000002"}
			if kind.legacy {
				other = []string{"--seller-id", "2088000000000002"}
			}
			r = e.notifyCmd(t, append([]string{"--kind", "paid", "--out-trade-no", refused, "--amount", mugAmount, "--wait", "3s"}, other...)...)
			require.Equal(t, 2, r.code, r)
			assert.Regexp(t, attemptRE(1, 400, `"fail"`, "not accepted"), r.stdout)
			assert.Contains(t, r.stdout, "result: not accepted within 3s; the sandbox keeps retrying on its notify_retry schedule (1s 1s 2s 2s)")
			assert.Contains(t, r.stderr, "the notification was not accepted")
			o = e.order(t, refused)
			assert.Equal(t, "unpaid", o.Status)
			assert.Equal(t, 0, o.NotifyCalls, "the sidecar refused it: the shop never saw it")

			// A wrong amount: acknowledged, and the order stays unpaid.
			wrong := e.newShopOrder(t, "mug")
			r = e.notifyCmd(t, "--kind", "paid", "--out-trade-no", wrong, "--amount", "0.01")
			require.Equal(t, 0, r.code, r)
			assert.Regexp(t, attemptRE(1, 200, `"success"`, "accepted"), r.stdout)
			o = e.order(t, wrong)
			assert.Equal(t, "unpaid", o.Status, "the shop checks the amount")
			assert.Equal(t, 0, o.Notifications)
			assert.Equal(t, 1, o.NotifyCalls, "it came, once")

			// An order that the shop never made: acknowledged, and no order.
			r = e.notifyCmd(t, "--kind", "paid")
			require.Equal(t, 0, r.code, r)
			m := regexp.MustCompile(`(?m)^out_trade_no (sandbox_\d{14}_[0-9a-f]{8}) \(a fresh one\)`).FindStringSubmatch(r.stdout)
			require.NotNil(t, m, r.stdout)
			resp, _ := httpGet(t, e.site+"/orders/"+m[1]+".json")
			assert.Equal(t, http.StatusNotFound, resp.StatusCode)

			if kind.legacy {
				// Each attempt's notify_id, which the sidecar had confirmed.
				assert.Regexp(t, `  notify_id [0-9a-f]{32}\n`, r.stdout)
				return
			}
			// Refunded, the order paid above: the refund's notification
			// alone.
			r = e.notifyCmd(t, "--kind", "refunded", "--out-trade-no", no, "--amount", mugAmount)
			require.Equal(t, 0, r.code, r)
			assert.NotContains(t, r.stdout, "went first", "the sandbox had the payment")
			assert.Contains(t, r.stdout, ": TRADE_CLOSED (openapi, --kind refunded)")
			assert.Regexp(t, `(?m)^notification \(refund, id \d+\): trade_status_sync to `+regexp.QuoteMeta(e.site)+`/alipay/notify, notify_id [0-9a-f]{32}$`, r.stdout)
			o = e.waitOrder(t, no, "refunded", 10*time.Second, func(o order) bool { return o.Status == "refunded" })
			require.NotNil(t, o.RefundFee)
			assert.Equal(t, mugAmount, *o.RefundFee)
			assert.Equal(t, 1, o.RefundNotifications)
			assert.Equal(t, 1, o.Notifications, "still paid once")
			assert.Equal(t, 2, o.NotifyCalls)
		})
	}
}

// A cmdResult is how a run of the command ended.
type cmdResult struct {
	code           int
	stdout, stderr string
}

func (r cmdResult) String() string {
	return fmt.Sprintf("exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
}

// notifyCmd runs caddy alipay-sandbox-notify for e's sandbox and shop:
// with the app's id (OpenAPI), or as the GBK partner (legacy); later
// flags win over these.
func (e *shopEnv) notifyCmd(t *testing.T, args ...string) cmdResult {
	t.Helper()
	argv := []string{"alipay-sandbox-notify", "--sandbox", e.gateway, "--notify-url", e.site + "/alipay/notify"}
	if e.kind.legacy {
		argv = append(argv, "--protocol", "legacy", "--charset", "gbk")
	} else {
		argv = append(argv, "--app-id", appID)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*stepTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, caddyBin, append(argv, args...)...)
	dir := t.TempDir()
	cmd.Env = append(cmd.Environ(), "HOME="+dir, "XDG_DATA_HOME="+filepath.Join(dir, "data"), "XDG_CONFIG_HOME="+filepath.Join(dir, "config"))
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	r := cmdResult{stdout: stdout.String(), stderr: stderr.String()}
	var exit *exec.ExitError
	switch {
	case errors.As(err, &exit):
		r.code = exit.ExitCode()
	case err != nil:
		t.Fatalf("running %v: %v\n%s", cmd.Args, err, r)
	}
	t.Logf("caddy %s\n%s", strings.Join(append(argv, args...), " "), r)
	return r
}

// attemptRE matches the command's line for an attempt.
func attemptRE(number, status int, answer, verdict string) string {
	return fmt.Sprintf(`(?m)^attempt %d  \d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+08:00  HTTP %d  \d+ ms  %s  %s`, number, status, answer, verdict)
}

var csrfRE = regexp.MustCompile(`name="csrfmiddlewaretoken" value="([^"]+)"`)

// newShopOrder orders a product over plain HTTP and returns the order
// number; for the Django shop with the CSRF token of its product page,
// as its form sends it.
func (e *shopEnv) newShopOrder(t *testing.T, product string) string {
	t.Helper()
	if !e.kind.legacy {
		return e.newOrder(t, product)
	}
	jar, err := cookiejar.New(nil)
	require.NoError(t, err)
	client := &http.Client{Timeout: stepTimeout, Jar: jar, CheckRedirect: httpClient.CheckRedirect}
	resp, err := client.Get(e.site + "/")
	require.NoError(t, err)
	var page bytes.Buffer
	_, err = page.ReadFrom(resp.Body)
	resp.Body.Close()
	require.NoError(t, err)
	m := csrfRE.FindStringSubmatch(page.String())
	require.NotNil(t, m, "no CSRF token on the product page:\n%s", page.String())
	resp, err = client.PostForm(e.site+"/orders", url.Values{"product": {product}, "csrfmiddlewaretoken": {m[1]}})
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusSeeOther, resp.StatusCode)
	no, ok := strings.CutPrefix(resp.Header.Get("Location"), "/orders/")
	require.True(t, ok, "POST /orders redirects to %q", resp.Header.Get("Location"))
	return no
}
