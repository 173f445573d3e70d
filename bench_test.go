package alipay

// Benchmarks of the handler's three paths, each reported next to the cost
// of the raw crypto it contains, so that the handler's own overhead shows
// as a ratio (x_raw) whatever the machine:
//
//	go test -run '^$' -bench . -benchmem
//
// Targets: pay at most 1.1x the RSA sign inside it; notify at
// most 1.5x the RSA verify and form parse inside it; a request that only
// passes through under 1 µs with no allocation of the handler's own.

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddy-alipay/caddy-alipay/internal/protocol"
	"github.com/caddy-alipay/caddy-alipay/internal/testvec"
	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// benchHandler logs at Info into io.Discard: the encoding cost of the
// per-event log line is counted, the disk is not.
func benchHandler(b *testing.B) *Handler {
	h := newTestHandler(b, nil)
	h.logger = zap.New(zapcore.NewCore(zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig()), zapcore.AddSync(io.Discard), zap.InfoLevel))
	return h
}

// discardWriter is a reusable ResponseWriter, so the benchmark measures
// the handler rather than httptest.
type discardWriter struct {
	header http.Header
	status int
}

func (d *discardWriter) Header() http.Header         { return d.header }
func (d *discardWriter) WriteHeader(s int)           { d.status = s }
func (d *discardWriter) Write(p []byte) (int, error) { return len(p), nil }
func (d *discardWriter) reset() {
	clear(d.header)
	d.status = 0
}

// okHandler is a shop that reads the request, as reverse_proxy does, and
// answers 200, with success to a notification.
type okHandler struct{}

func (okHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) error {
	if r.Body != nil {
		_, _ = io.Copy(io.Discard, r.Body)
	}
	w.WriteHeader(http.StatusOK)
	if r.Header.Get(TokenHeader) != "" {
		_, _ = io.WriteString(w, "success")
	}
	return nil
}

// benchAgainstRaw runs op under the benchmark's timer and, after each
// run, raw with the timer stopped, timed by hand, and reports op's time
// over raw's (x_raw). Interleaved, the two see the same machine: a busy
// moment on a shared CI runner slows both alike, where two separate
// timings would each catch a different moment.
func benchAgainstRaw(b *testing.B, op, raw func()) {
	b.ReportAllocs()
	var rawTime time.Duration
	for b.Loop() {
		op()
		b.StopTimer()
		start := time.Now()
		raw()
		rawTime += time.Since(start)
		b.StartTimer()
	}
	b.ReportMetric(float64(b.Elapsed())/float64(rawTime), "x_raw")
}

func BenchmarkPay(b *testing.B) {
	h := benchHandler(b)
	fixClock(b, time.Now())
	tok := payToken(b, map[string]any{"out_trade_no": "20240520131415000001", "total_amount": "88.88", "subject": "测试订单 Test", "body": "a+b c"})
	r := onSite(h, httptest.NewRequest("GET", "http://shop.example.com/alipay/pay?token="+tok, nil), "shop.example.com")
	w := &discardWriter{header: make(http.Header)}

	// The raw operation: one RSA2 signature over a string of the same size.
	content := protocol.RequestContent(h.client.API.RequestParams("alipay.trade.page.pay",
		[]byte(`{"out_trade_no":"20240520131415000001","total_amount":"88.88","subject":"测试订单 Test","product_code":"FAST_INSTANT_TRADE_PAY","body":"a+b c"}`), time.Now()))
	benchAgainstRaw(b, func() {
		w.reset()
		r.Form, r.PostForm = nil, nil
		_ = h.ServeHTTP(w, r, okHandler{})
		if w.status != http.StatusFound {
			b.Fatalf("status %d", w.status)
		}
	}, func() { _, _ = h.client.API.Signer.Sign(content) })
}

func BenchmarkNotify(b *testing.B) {
	h := benchHandler(b)
	body := []byte(testvec.Load(b).Notify.Cases[0].PostBody)
	r := httptest.NewRequest("POST", "http://shop.example.com/alipay/notify", nil)
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded; charset=utf-8")
	w := &discardWriter{header: make(http.Header)}

	// The raw operations: the form parse and one RSA2 verification.
	benchAgainstRaw(b, func() {
		w.reset()
		r.Body = io.NopCloser(bytes.NewReader(body))
		r.ContentLength = int64(len(body))
		_ = h.ServeHTTP(w, r, okHandler{})
		if w.status != http.StatusOK {
			b.Fatalf("status %d", w.status)
		}
	}, func() {
		cb, _ := h.protocol.ParseCallback(string(body))
		_ = h.protocol.VerifyCallback(context.Background(), cb, protocol.EventNotify)
	})
}

// BenchmarkPassthrough is a request for the shop, not for the handler:
// what every page view pays for the handler being there, forged-header
// stripping included.
func BenchmarkPassthrough(b *testing.B) {
	h := benchHandler(b)
	r := httptest.NewRequest("GET", "http://shop.example.com/products/42?ref=home", nil)
	for _, k := range []string{"Accept", "Accept-Language", "Cookie", "User-Agent", "Referer", "X-Forwarded-For"} {
		r.Header.Set(k, strings.Repeat("v", 20))
	}
	forged := []string{"forged"}
	w := &discardWriter{header: make(http.Header)}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		r.Header["X_Alipay_Token"] = forged
		_ = h.ServeHTTP(w, r, okHandler{})
	}
	if _, ok := r.Header["X_Alipay_Token"]; ok {
		b.Fatal("forged header not stripped")
	}
}

// BenchmarkNotifyInFlight holds 1000 notifications at once in a shop that
// does not answer yet, and reports what each costs in memory while it
// waits (heap and goroutine stacks, the handler's and the test server's
// share of a request), then lets them all through.
func BenchmarkNotifyInFlight(b *testing.B) {
	const inFlight = 1000
	h := benchHandler(b)
	h.NotifyTimeout = caddy.Duration(time.Minute)
	body := []byte(testvec.Load(b).Notify.Cases[0].PostBody)
	var perNotification float64
	for b.Loop() {
		release := make(chan struct{})
		var arrived, done sync.WaitGroup
		arrived.Add(inFlight)
		done.Add(inFlight)
		shop := caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
			_, _ = io.Copy(io.Discard, r.Body)
			arrived.Done()
			<-release
			_, _ = io.WriteString(w, "success")
			return nil
		})
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		for range inFlight {
			go func() {
				defer done.Done()
				r := httptest.NewRequest("POST", "http://shop.example.com/alipay/notify", bytes.NewReader(body))
				w := &discardWriter{header: make(http.Header)}
				_ = h.ServeHTTP(w, r, shop)
				if w.status != http.StatusOK {
					b.Errorf("status %d", w.status)
				}
			}()
		}
		arrived.Wait()
		runtime.GC()
		runtime.ReadMemStats(&after)
		perNotification = float64(after.HeapInuse+after.StackInuse-before.HeapInuse-before.StackInuse) / inFlight
		close(release)
		done.Wait()
	}
	b.ReportMetric(perNotification, "B/in-flight")
}
