package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"text/tabwriter"
	"time"
)

// The soak's reckoning: what the shop answered, what Caddy logged, and
// the table and the invariants.

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
