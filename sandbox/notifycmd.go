package sandbox

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/caddy-alipay/caddy-alipay/internal/protocol"
	"github.com/caddyserver/caddy/v2"
	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	"github.com/spf13/cobra"
)

// The alipay-sandbox-notify command: a notification on demand, as
// payment platforms' CLIs trigger webhooks. It asks a running sandbox
// (POST /sandbox/notify, trigger.go) to send one, then reads the trade's
// page until an attempt is accepted or --wait is over. It lives in this
// package, so that only builds with the sandbox have it.

func init() {
	caddycmd.RegisterCommand(caddycmd.Command{
		Name: "alipay-sandbox-notify",
		Usage: "--sandbox <url> --notify-url <url> --kind paid|closed|refunded [--protocol openapi|legacy] [--app-id <id>] " +
			"[--out-trade-no <no>] [--amount <yuan>] [--subject <text>] [--seller-id <id>] [--seller-email <email>] " +
			"[--sign-type <type>] [--charset utf-8|gbk] [--wait <duration>]",
		Short: "Has a running alipay_sandbox send one notification to a shop",
		Long: `
Asks a running alipay_sandbox to send one Alipay notification to a shop's
notify URL, signed as Alipay signs it, for a trade that the sandbox makes
as if a buyer had got that far. The sandbox keeps the trade like any
other: its trade pages (/sandbox/trades) show it with every attempt, it
retries on its notify_retry schedule until the answer is success, and its
notify_verify confirms the notify_id of a legacy notification.

The command prints each attempt (its time, the HTTP status, the answer's
first bytes) and the result. It exits 0 once an answer is success; 1 when
nothing was sent (a flag, or the sandbox refused or could not be
reached); 2 when the notification went out but no answer was success
within --wait (the sandbox keeps retrying on its schedule).

--sandbox
    The sandbox's site, such as http://127.0.0.1:8081 (its /gateway.do
    may be given too). Required.

--notify-url
    Where the notification goes: the sidecar's notify endpoint, such as
    http://127.0.0.1:8080/alipay/notify. It must be on this machine, or
    on one of the sandbox's callback_hosts. Required.

--kind
    paid: the payment's notification, TRADE_SUCCESS (legacy
    TRADE_FINISHED), as after the cashier's Pay.
    closed: the TRADE_CLOSED notification of a trade whose time to pay
    ran out unpaid.
    refunded: the notification of a refund in full, as after the trade
    page's Refund in full (OpenAPI: trade_status_sync with refund_fee,
    gmt_refund and out_biz_no; legacy: batch_refund_notify). A trade of
    --out-trade-no that the sandbox paid before is refunded; otherwise a
    new one is paid first, and the shop gets its payment's notification
    before the refund's. Required.

--protocol
    openapi (default) or legacy (the sandbox needs partner and md5_key).

--app-id
    OpenAPI: the app's APPID, which the sidecar checks. Required with
    openapi.

--out-trade-no
    The shop's order number. Default: a fresh one, printed.

--amount
    The trade's amount in yuan, as Alipay writes it (12.00), which a
    shop checks against its order. Default: 0.01.

--subject
    The trade's subject. Default: "sandbox notification".

--seller-id, --seller-email
    Legacy: the seller that the sidecar's config names (default: the
    sandbox's partner). OpenAPI notifications carry the sandbox's own
    seller_id, 2088000000000001.

--sign-type
    As the sidecar is set up: OpenAPI RSA2 (default) or RSA; legacy MD5
    (default) or RSA.

--charset
    Legacy: the sidecar's input_charset, utf-8 (default) or gbk.

--wait
    How long to wait for an answer of success. Default: 15s.
`,
		CobraFunc: func(cmd *cobra.Command) {
			fs := cmd.Flags()
			fs.String("sandbox", "", "The running sandbox's site (http://127.0.0.1:8081)")
			fs.String("notify-url", "", "The shop's notify URL: the sidecar's notify endpoint")
			fs.String("kind", "", "paid, closed or refunded")
			fs.String("protocol", "openapi", "openapi or legacy")
			fs.String("app-id", "", "OpenAPI: the app's APPID (required with openapi)")
			fs.String("out-trade-no", "", "The order number (default: a fresh one)")
			fs.String("amount", "0.01", "The amount in yuan, such as 12.00")
			fs.String("subject", "", "The trade's subject (default: sandbox notification)")
			fs.String("seller-id", "", "Legacy: the seller_id of the sidecar's config")
			fs.String("seller-email", "", "Legacy: the seller_email of the sidecar's config")
			fs.String("sign-type", "", "OpenAPI RSA2 or RSA; legacy MD5 or RSA")
			fs.String("charset", "", "Legacy: utf-8 or gbk")
			fs.String("wait", "15s", "How long to wait for an answer of success")
			cmd.RunE = caddycmd.WrapCommandFuncForCobra(cmdNotify)
		},
	})
}

// The command's exit statuses besides 0 (an answer was success).
const (
	exitNotSent     = 1 // a flag, or the sandbox refused or could not be reached
	exitNotAccepted = 2 // sent, but no answer was success within --wait
)

// notifyOptions are the command's flags, and what tests change.
type notifyOptions struct {
	sandbox, notifyURL, kind, protocol, appID, outTradeNo, amount, subject string
	sellerID, sellerEmail, signType, charset                               string
	wait                                                                   time.Duration
	poll                                                                   time.Duration // between reads of the trade's page
	client                                                                 *http.Client
}

// cmdNotify is the command's CommandFunc: runNotify with the flags, its
// output on stdout, until an interrupt.
func cmdNotify(fl caddycmd.Flags) (int, error) {
	wait, err := caddy.ParseDuration(fl.String("wait"))
	if err != nil {
		return exitNotSent, fmt.Errorf("--wait %q: %w", fl.String("wait"), err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	return runNotify(ctx, os.Stdout, notifyOptions{
		sandbox: fl.String("sandbox"), notifyURL: fl.String("notify-url"), kind: fl.String("kind"),
		protocol: fl.String("protocol"), appID: fl.String("app-id"), outTradeNo: fl.String("out-trade-no"),
		amount: fl.String("amount"), subject: fl.String("subject"), sellerID: fl.String("seller-id"),
		sellerEmail: fl.String("seller-email"), signType: fl.String("sign-type"), charset: fl.String("charset"),
		wait: wait,
	})
}

// runNotify asks the sandbox for the notification, prints its attempts
// to out as the trade's page lists them, and returns the exit status: 0
// once an attempt is accepted.
func runNotify(ctx context.Context, out io.Writer, o notifyOptions) (int, error) {
	base, err := o.check()
	if err != nil {
		return exitNotSent, err
	}
	if o.poll == 0 {
		o.poll = 200 * time.Millisecond
	}
	if o.client == nil {
		// Long enough for a refund of a new trade, which waits for its
		// payment's first attempt (firstAttemptWait).
		o.client = protocol.NoRedirectClient(firstAttemptWait + 10*time.Second)
	}
	deadline := time.Now().Add(o.wait)
	ans, err := o.ask(ctx, out, base)
	if err != nil {
		return exitNotSent, err
	}
	fresh := ""
	if o.outTradeNo == "" {
		fresh = " (a fresh one)"
	}
	fmt.Fprintf(out, "out_trade_no %s%s, trade_no %s, amount %s: %s (%s, --kind %s)\n",
		ans.OutTradeNo, fresh, ans.TradeNo, ans.Amount, ans.Status, ans.Protocol, ans.Kind)
	w := &attemptWriter{out: out, legacy: ans.Protocol == "legacy"}
	if ans.PaymentNotification != "" {
		fmt.Fprintf(out, "notification (payment, id %s) went first:\n", ans.PaymentNotification)
		if d, err := o.tradeDoc(ctx, base, ans); err == nil {
			if n := noteOf(d, ans.PaymentNotification); n != nil {
				(&attemptWriter{out: out, legacy: w.legacy}).print(*n)
			}
		}
	}
	fmt.Fprintf(out, "notification (%s, id %s): %s to %s", ans.About, ans.Notification, ans.NotifyType, ans.URL)
	if ans.NotifyID != "" {
		fmt.Fprintf(out, ", notify_id %s", ans.NotifyID)
	}
	fmt.Fprintln(out)
	page := base + ans.Trade
	var last *noteDoc
	for {
		d, err := o.tradeDoc(ctx, base, ans)
		if err == nil {
			if n := noteOf(d, ans.Notification); n != nil {
				last = n
				if w.print(*n) || n.Delivered {
					fmt.Fprintf(out, "result: accepted, the shop answered success (see %s)\n", page)
					return 0, nil
				}
				if n.GivenUp {
					fmt.Fprintf(out, "result: not accepted; the sandbox gave up, its notify_retry schedule is over (see %s)\n", page)
					return exitNotAccepted, errors.New("the notification was not accepted")
				}
				if next := noteNextAttempt(*n); w.seen > 0 && !next.IsZero() && next.After(deadline) {
					break // nothing more comes within --wait
				}
			}
		}
		remaining := time.Until(deadline)
		if remaining <= 0 || notifyCmdSleep(ctx, min(o.poll, remaining)) != nil {
			break
		}
	}
	msg := fmt.Sprintf("result: not accepted within %s", o.wait)
	if ctx.Err() != nil {
		msg = "result: interrupted before an answer of success"
	}
	schedule := strings.Join(ans.NotifyRetry, " ")
	if last != nil && last.NextAttempt != nil {
		fmt.Fprintf(out, "%s; the sandbox keeps retrying on its notify_retry schedule (%s): next attempt at %s (see %s)\n",
			msg, schedule, *last.NextAttempt, page)
	} else {
		fmt.Fprintf(out, "%s; the sandbox keeps retrying on its notify_retry schedule (%s) until an answer is success (see %s)\n",
			msg, schedule, page)
	}
	return exitNotAccepted, errors.New("the notification was not accepted")
}

// check checks the options as the sandbox would, with the flags' names,
// before anything is sent, and returns the sandbox's base URL.
func (o *notifyOptions) check() (string, error) {
	if o.sandbox == "" {
		return "", errors.New("--sandbox is required: the running sandbox's site, such as http://127.0.0.1:8081")
	}
	base, err := notifyCmdBase(o.sandbox)
	if err != nil {
		return "", fmt.Errorf("--sandbox %q: %w", o.sandbox, err)
	}
	if o.notifyURL == "" {
		return "", errors.New("--notify-url is required: the shop's notify URL, the sidecar's notify endpoint such as http://127.0.0.1:8080/alipay/notify")
	}
	if u, err := url.Parse(o.notifyURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil {
		return "", fmt.Errorf("--notify-url %q: not an absolute http(s) URL", o.notifyURL)
	}
	switch o.kind {
	case kindPaid, kindClosed, kindRefunded:
	case "":
		return "", errors.New("--kind is required: paid, closed or refunded")
	default:
		return "", fmt.Errorf("--kind %q: want paid, closed or refunded", o.kind)
	}
	if o.outTradeNo != "" && !protocol.ValidOutTradeNo(o.outTradeNo) {
		return "", fmt.Errorf("--out-trade-no %q: must be 1 to 64 letters, digits or _", o.outTradeNo)
	}
	if _, err := protocol.ParseAmount(o.amount); err != nil {
		return "", fmt.Errorf("--amount %q: %w", o.amount, err)
	}
	if reason := checkSubject(o.subject); reason != "" {
		return "", fmt.Errorf("--subject %s", reason)
	}
	if o.sellerID != "" && !protocol.ValidAlipayID(o.sellerID) {
		return "", fmt.Errorf("--seller-id %q: not an Alipay seller id (2088 and 12 digits)", o.sellerID)
	}
	if o.sellerEmail != "" && !protocol.ValidEmail(o.sellerEmail) {
		return "", fmt.Errorf("--seller-email %q: not an email address", o.sellerEmail)
	}
	switch o.protocol {
	case "openapi", "":
		switch {
		case o.appID == "":
			return "", errors.New("--app-id is required with --protocol openapi: the sidecar's app_id, which it checks in every notification")
		case !triggerAppIDRE.MatchString(o.appID):
			return "", fmt.Errorf("--app-id %q: not an Alipay APPID (digits)", o.appID)
		case o.sellerEmail != "":
			return "", errors.New("--seller-email is for --protocol legacy")
		case o.sellerID != "" && o.sellerID != sandboxSellerID:
			return "", fmt.Errorf("--seller-id %s: the sandbox's OpenAPI notifications carry its own seller_id, %s", o.sellerID, sandboxSellerID)
		case o.signType != "" && o.signType != protocol.SignTypeRSA2 && o.signType != protocol.SignTypeRSA:
			return "", fmt.Errorf("--sign-type %q: want RSA2 or RSA with --protocol openapi", o.signType)
		case o.charset != "" && !strings.EqualFold(o.charset, "utf-8"):
			return "", errors.New("--charset is for --protocol legacy: OpenAPI notifications are utf-8")
		}
	case "legacy":
		switch {
		case o.appID != "":
			return "", errors.New("--app-id is for --protocol openapi: legacy notifications name the sandbox's partner")
		case o.sellerID != "" && o.sellerEmail != "":
			return "", errors.New("give --seller-id or --seller-email, as the sidecar's config does, not both")
		case o.signType != "" && o.signType != protocol.SignTypeMD5 && o.signType != protocol.SignTypeRSA:
			return "", fmt.Errorf("--sign-type %q: want MD5 or RSA with --protocol legacy", o.signType)
		case o.charset != "" && !strings.EqualFold(o.charset, "utf-8") && !strings.EqualFold(o.charset, "gbk"):
			return "", fmt.Errorf("--charset %q: want utf-8 or gbk", o.charset)
		}
	default:
		return "", fmt.Errorf("--protocol %q: want openapi or legacy", o.protocol)
	}
	if o.wait <= 0 {
		return "", fmt.Errorf("--wait %s: must be positive", o.wait)
	}
	return base, nil
}

// notifyCmdBase is the sandbox's site from --sandbox: an absolute http(s)
// URL, without a trailing / or /gateway.do.
func notifyCmdBase(raw string) (string, error) {
	u, err := url.Parse(raw)
	switch {
	case err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "":
		return "", errors.New("not an absolute http(s) URL, such as http://127.0.0.1:8081")
	case u.User != nil || u.RawQuery != "" || u.Fragment != "":
		return "", errors.New("the sandbox's site has no user, query or fragment")
	}
	u.Path = strings.TrimSuffix(strings.TrimSuffix(u.Path, "/"), "/gateway.do")
	u.RawPath = ""
	return strings.TrimSuffix(u.String(), "/"), nil
}

// ask POSTs the request to the sandbox and returns its answer; a refusal
// is printed to out.
func (o *notifyOptions) ask(ctx context.Context, out io.Writer, base string) (triggerAnswer, error) {
	var ans triggerAnswer
	body, _ := json.Marshal(triggerRequest{Kind: o.kind, Protocol: o.protocol, NotifyURL: o.notifyURL,
		OutTradeNo: o.outTradeNo, Amount: o.amount, Subject: o.subject, AppID: o.appID, SellerID: o.sellerID,
		SellerEmail: o.sellerEmail, SignType: o.signType, Charset: strings.ToLower(o.charset)})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+notifyPath, bytes.NewReader(body))
	if err != nil {
		return ans, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	resp, err := o.client.Do(req)
	if err != nil {
		return ans, fmt.Errorf("asking the sandbox at %s: %w", base, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return ans, fmt.Errorf("reading the sandbox's answer: %w", err)
	}
	if resp.StatusCode != http.StatusCreated {
		var refusal struct{ Error, Code string }
		if json.Unmarshal(b, &refusal) != nil || refusal.Error == "" {
			return ans, fmt.Errorf("the sandbox at %s answered %s, not a notification's answer: it may be no alipay_sandbox, or of a build without this command", base, resp.Status)
		}
		fmt.Fprintf(out, "the sandbox refused: HTTP %d %s: %s\n", resp.StatusCode, refusal.Code, refusal.Error)
		return ans, fmt.Errorf("the sandbox refused the notification: %s", refusal.Code)
	}
	if err := json.Unmarshal(b, &ans); err != nil || ans.Notification == "" {
		return ans, fmt.Errorf("the sandbox's answer is not a notification's: %s", shortenAnswer(string(b), 200))
	}
	return ans, nil
}

// tradeDoc reads the trade of ans from its page's JSON.
func (o *notifyOptions) tradeDoc(ctx context.Context, base string, ans triggerAnswer) (tradeDoc, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+ans.Trade, nil)
	if err != nil {
		return tradeDoc{}, err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := o.client.Do(req)
	if err != nil {
		return tradeDoc{}, err
	}
	defer resp.Body.Close()
	var doc tradePageDoc
	if err := json.NewDecoder(io.LimitReader(resp.Body, 8<<20)).Decode(&doc); err != nil {
		return tradeDoc{}, fmt.Errorf("reading the trade's page: %w", err)
	}
	for _, d := range doc.Trades {
		if d.TradeNo == ans.TradeNo {
			return d, nil
		}
	}
	return tradeDoc{}, fmt.Errorf("the sandbox no longer has trade %s (max_trades)", ans.TradeNo)
}

// noteOf is d's notification of id, or nil.
func noteOf(d tradeDoc, id string) *noteDoc {
	for i := range d.Notifications {
		if d.Notifications[i].ID == id {
			return &d.Notifications[i]
		}
	}
	return nil
}

// noteNextAttempt is when n's next attempt is due, or zero.
func noteNextAttempt(n noteDoc) time.Time {
	if n.NextAttempt == nil {
		return time.Time{}
	}
	t, _ := time.Parse(time.RFC3339, *n.NextAttempt)
	return t
}

// An attemptWriter prints a notification's attempts, each once.
type attemptWriter struct {
	out    io.Writer
	legacy bool // each attempt has a notify_id of its own
	seen   int  // attempts printed, of attempts_total
}

// print prints n's attempts not printed before, and reports whether one
// of them was accepted.
func (w *attemptWriter) print(n noteDoc) (accepted bool) {
	first := n.AttemptsTotal - len(n.Attempts) + 1 // the number of n.Attempts[0]
	for i, a := range n.Attempts {
		number := first + i
		if number <= w.seen {
			continue
		}
		w.seen = number
		line := fmt.Sprintf("attempt %d  %s  ", number, a.At)
		if a.Status == nil {
			line += "no answer: " + a.Error
		} else {
			line += fmt.Sprintf("HTTP %d  %d ms  %q", *a.Status, a.DurationMS, shortenAnswer(a.Answer, 60))
		}
		if a.Accepted {
			line += "  accepted"
		} else {
			line += "  not accepted"
		}
		if a.Resend {
			line += "  (send again)"
		}
		if w.legacy && a.NotifyID != "" {
			line += "  notify_id " + a.NotifyID
		}
		fmt.Fprintln(w.out, line)
		accepted = accepted || a.Accepted
	}
	return accepted
}

// shortenAnswer is s cut to at most n bytes, on a character boundary, with …
// when cut.
func shortenAnswer(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}

// notifyCmdSleep waits d, or until ctx ends.
func notifyCmdSleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
