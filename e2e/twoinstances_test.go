package e2e

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httputil"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestTwoInstances runs two Caddys with the same sidecar configuration
// behind one load balancer that alternates between them, in front of one
// shop: pay links and notifications work on either, since the sidecar
// keeps no state between requests (everything it needs is in the pay
// token, the callback's signature and the shared secret).
func TestTwoInstances(t *testing.T) {
	lbPort, gatewayPort := freePort(t), freePort(t)
	lb := fmt.Sprintf("http://127.0.0.1:%d", lbPort)
	gateway := fmt.Sprintf("http://127.0.0.1:%d", gatewayPort)

	// The shop: it counts the verified tokens it gets, by event, and
	// acknowledges each notification with the body success.
	var mu sync.Mutex
	seen := map[string][]string{} // event: out_trade_no
	shop := &http.Server{Addr: fmt.Sprintf("127.0.0.1:%d", freePort(t)), Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		claims, err := soakVerifyToken(r.Header.Get("X-Alipay-Token"), secret, appID, time.Now())
		if err != nil {
			http.Error(w, err.Error(), http.StatusForbidden)
			return
		}
		mu.Lock()
		seen[claims.Event] = append(seen[claims.Event], claims.Params["out_trade_no"])
		mu.Unlock()
		w.WriteHeader(http.StatusOK)
		if claims.Event == "notify" {
			_, _ = io.WriteString(w, "success")
		}
	})}
	go func() { _ = shop.ListenAndServe() }()
	t.Cleanup(func() { _ = shop.Close() })

	// The two instances: one Caddyfile but for the port. notify_url and
	// return_url name the load balancer, as they would name the public
	// site.
	var backends []*url.URL
	for i := range 2 {
		port := freePort(t)
		site := fmt.Sprintf("http://127.0.0.1:%d", port)
		startCaddy(t, fmt.Sprintf("caddy-instance-%d", i+1), caddyGlobals+sidecarSite(port, gateway, shop.Addr,
			"notify_url "+lb+"/alipay/notify", "return_url "+lb+"/alipay/return"), site+"/")
		backends = append(backends, must(url.Parse(site)))
	}
	startCaddy(t, "caddy-gateway", caddyGlobals+sandboxSite(gatewayPort, "notify_retry 1s 1s 2s"), gateway+"/")

	// The load balancer: round robin, and it counts what each instance
	// served.
	var next atomic.Int64
	served := make([]map[string]*atomic.Int64, 2)
	for i := range served {
		served[i] = map[string]*atomic.Int64{"pay": {}, "notify": {}, "return": {}}
	}
	proxy := &httputil.ReverseProxy{Rewrite: func(pr *httputil.ProxyRequest) {
		i := int(next.Add(1) % 2)
		if c := served[i][strings.TrimPrefix(pr.In.URL.Path, "/alipay/")]; c != nil {
			c.Add(1)
		}
		pr.SetURL(backends[i])
		pr.Out.Host = pr.In.Host
	}}
	lbSrv := &http.Server{Addr: fmt.Sprintf("127.0.0.1:%d", lbPort), Handler: proxy}
	go func() { _ = lbSrv.ListenAndServe() }()
	t.Cleanup(func() { _ = lbSrv.Close() })
	waitHTTPErrNoProc(t, lb+"/")

	cashierRE := regexp.MustCompile(`action="(/sandbox/cashier/[0-9a-f]+/pay)"`)
	const orders = 6
	for i := range orders {
		no := fmt.Sprintf("TWO%d%d", time.Now().UnixNano()%1e9, i)
		tok := payToken(t, map[string]any{"out_trade_no": no, "total_amount": "1.00", "subject": "two instances",
			"exp": time.Now().Add(10 * time.Minute).Unix()})
		resp, _ := httpGet(t, lb+"/alipay/pay?token="+tok)
		if resp.StatusCode != http.StatusFound {
			t.Fatalf("pay %s: %s", no, resp.Status)
		}
		resp, body := httpGet(t, resp.Header.Get("Location"))
		if resp.StatusCode != http.StatusFound {
			t.Fatalf("the gateway refused the pay request of %s: %s %s", no, resp.Status, body)
		}
		_, page := httpGet(t, gateway+resp.Header.Get("Location"))
		m := cashierRE.FindStringSubmatch(page)
		if m == nil {
			t.Fatalf("no cashier for %s: %s", no, page)
		}
		resp, _ = httpPostForm(t, gateway+m[1], "")
		back := resp.Header.Get("Location")
		if !strings.HasPrefix(back, lb+"/alipay/return?") {
			t.Fatalf("Pay sent the buyer to %q", back)
		}
		if resp, body := httpGet(t, back); resp.StatusCode != http.StatusOK {
			t.Fatalf("the return of %s: %s %s", no, resp.Status, body)
		}
	}
	deadline := time.Now().Add(stepTimeout)
	for {
		mu.Lock()
		n := len(seen["notify"])
		mu.Unlock()
		if n >= orders {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d notifications reached the shop", n, orders)
		}
		time.Sleep(50 * time.Millisecond)
	}
	// Acknowledged at once: the sandbox sends no repeat (its first retry
	// would come after 1 s).
	time.Sleep(1500 * time.Millisecond)
	mu.Lock()
	defer mu.Unlock()
	if len(seen["notify"]) != orders {
		t.Errorf("notifications: %d, want %d (one each: the shop acknowledged every one)", len(seen["notify"]), orders)
	}
	if len(seen["return"]) != orders {
		t.Errorf("returns: %d, want %d", len(seen["return"]), orders)
	}
	for i, c := range served {
		t.Logf("instance %d served %d pay, %d notify, %d return", i+1, c["pay"].Load(), c["notify"].Load(), c["return"].Load())
		for _, ev := range []string{"pay", "notify", "return"} {
			if c[ev].Load() == 0 {
				t.Errorf("instance %d served no %s", i+1, ev)
			}
		}
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// waitHTTPErrNoProc waits until url answers anything over HTTP.
func waitHTTPErrNoProc(t *testing.T, url string) {
	t.Helper()
	deadline := time.Now().Add(startTimeout)
	for {
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s does not answer: %v", url, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
