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
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// The "Alipay" of the soak: it signs and sends notifications and records
// what each answer was.

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
