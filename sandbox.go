package alipay

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"
)

func init() {
	caddy.RegisterModule(Sandbox{})
}

// Sandbox is alipay_sandbox, a local stand-in for Alipay's gateway, for the
// demo, for tests and for trying an integration offline. It serves the
// gateway at /gateway.do and a cashier under /sandbox/, checks merchant
// signatures with the app's public key, and signs notifications and
// returns with its own "Alipay" private key, as Alipay does. Trades live in
// memory, for one machine.
type Sandbox struct {
	// The app's public key, which checks the merchant's request
	// signatures: a file path, or the key inline (PEM or bare base64).
	// Required.
	AppPublicKey string `json:"app_public_key,omitempty"`

	// The private key that plays Alipay's: it signs notifications and
	// returns. Its public half is the sidecar's alipay_public_key.
	// Required.
	AlipayPrivateKey string `json:"alipay_private_key,omitempty"`

	// The waits between notification attempts until the shop answers
	// success. Default: Alipay's schedule, 4m 10m 10m 1h 2h 6h 15h (eight
	// notifications in all).
	NotifyRetry []caddy.Duration `json:"notify_retry,omitempty"`

	// Certificate mode (公钥证书模式): a directory where the sandbox issues,
	// on first start, alipayRootCert.crt, alipayCertPublicKey_RSA2.crt
	// and appCertPublicKey.crt for the sidecar's alipay_root_cert,
	// alipay_cert and app_cert. Requests must then carry their serial
	// numbers, and responses carry alipay_cert_sn. Default: off.
	Certificates string `json:"certificates,omitempty"`

	// Host names, besides loopback ones (localhost, 127.0.0.0/8, ::1),
	// that a request's notify_url, return_url and quit_url may name. The
	// sandbox sends notifications, and buyers, only there. Default: none.
	CallbackHosts []string `json:"callback_hosts,omitempty"`

	// The most trades kept in memory; beyond it the oldest is dropped.
	// Default: 5000.
	MaxTrades int `json:"max_trades,omitempty"`

	certs     *sandboxCerts       // certificate mode, or nil
	verifiers map[string]Verifier // by sign_type: checks merchant requests
	signers   map[string]Signer   // by sign_type: signs as Alipay
	retry     []time.Duration
	trades    *tradeStore
	// callbackHosts: CallbackHosts, lower case, IPv6 without brackets
	callbackHosts map[string]bool
	client        *http.Client
	ctx           context.Context
	logger        *zap.Logger
}

// alipayRetrySchedule is the waits between notifications in Alipay's
// domestic documentation.
var alipayRetrySchedule = []time.Duration{4 * time.Minute, 10 * time.Minute, 10 * time.Minute,
	time.Hour, 2 * time.Hour, 6 * time.Hour, 15 * time.Hour}

// The sandbox's fixed identity, as it appears in callbacks.
const (
	sandboxSellerID    = "2088000000000001"
	sandboxSellerEmail = "seller@sandbox.example"
	sandboxBuyerID     = "2088102177846880"
	sandboxBuyerLogon  = "buy***@sandbox.example"
)

// CaddyModule returns the Caddy module information.
func (Sandbox) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.alipay_sandbox",
		New: func() caddy.Module { return new(Sandbox) },
	}
}

// Provision parses the keys and starts an empty trade store.
func (s *Sandbox) Provision(ctx caddy.Context) error {
	s.logger = ctx.Logger()
	s.ctx = ctx
	repl := caddy.NewReplacer()
	material, err := keyMaterial(repl.ReplaceKnown(s.AppPublicKey, ""))
	if err != nil {
		return configError("app_public_key", err)
	}
	appKey, err := ParsePublicKey(material)
	if err != nil {
		return configError("app_public_key", err)
	}
	if material, err = keyMaterial(repl.ReplaceKnown(s.AlipayPrivateKey, "")); err != nil {
		return configError("alipay_private_key", err)
	}
	alipayKey, err := ParsePrivateKey(material)
	if err != nil {
		return configError("alipay_private_key", err)
	}
	if alipayKey.PublicKey.Equal(appKey) {
		return configError("alipay_private_key", errors.New("is the app's own key; the sandbox plays Alipay with a key of its own"))
	}
	s.verifiers = map[string]Verifier{}
	s.signers = map[string]Signer{}
	for _, st := range []string{SignTypeRSA2, SignTypeRSA} {
		if s.verifiers[st], err = NewRSAVerifier(appKey, st); err != nil {
			return err
		}
		if s.signers[st], err = NewRSASigner(alipayKey, st); err != nil {
			return err
		}
	}
	if dir := repl.ReplaceKnown(s.Certificates, ""); dir != "" {
		if s.certs, err = provisionSandboxCerts(dir, appKey, alipayKey); err != nil {
			return configError("certificates", err)
		}
	}
	s.retry = alipayRetrySchedule
	if len(s.NotifyRetry) > 0 {
		s.retry = make([]time.Duration, len(s.NotifyRetry))
		for i, d := range s.NotifyRetry {
			if d <= 0 {
				return configError("notify_retry", fmt.Errorf("%v: durations must be positive", time.Duration(d)))
			}
			s.retry[i] = time.Duration(d)
		}
	}
	if s.MaxTrades < 0 {
		return configError("max_trades", fmt.Errorf("%d: must be positive", s.MaxTrades))
	}
	if s.MaxTrades == 0 {
		s.MaxTrades = defaultMaxTrades
	}
	s.callbackHosts = map[string]bool{}
	for _, host := range s.CallbackHosts {
		host = hostKey(strings.Trim(strings.TrimSpace(repl.ReplaceKnown(host, "")), "[]"))
		if !validHostName(host) && net.ParseIP(host) == nil {
			return configError("callback_hosts", fmt.Errorf("%q is not a host name or IP address (no scheme, no port)", host))
		}
		s.callbackHosts[host] = true
	}
	s.trades = newTradeStore(s.MaxTrades)
	s.client = &http.Client{
		Timeout: 15 * time.Second,
		// Alipay does not follow redirects from notify_url.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	return nil
}

// ServeHTTP implements caddyhttp.MiddlewareHandler.
func (s *Sandbox) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	switch {
	case r.URL.Path == "/gateway.do":
		s.serveGateway(w, r)
		return nil
	case strings.HasPrefix(r.URL.Path, cashierPrefix):
		s.serveCashier(w, r)
		return nil
	}
	return next.ServeHTTP(w, r)
}

const cashierPrefix = "/sandbox/cashier/"

// gatewayError is what Alipay's gateway shows the buyer instead of the
// cashier: a code and a reason.
type gatewayError struct {
	code, reason string
}

func (e *gatewayError) Error() string { return e.code + ": " + e.reason }

// serveGateway takes a page-pay or WAP-pay request, GET or POST, as the
// SDKs send it, and opens the cashier for it. Any other method is an
// OpenAPI call, answered in JSON by serveAPI (sandbox_api.go).
func (s *Sandbox) serveGateway(w http.ResponseWriter, r *http.Request) {
	params, err := gatewayParams(w, r)
	if isAPIRequest(r, params) {
		s.serveAPI(w, params, err)
		return
	}
	if err == nil {
		var t *trade
		if t, err = s.openTrade(params); err == nil {
			s.logger.Info("sandbox: trade opened", zap.String("out_trade_no", t.outTradeNo), zap.String("trade_no", t.tradeNo))
			http.Redirect(w, r, cashierPrefix+t.id, http.StatusFound)
			return
		}
	}
	var ge *gatewayError
	if !errors.As(err, &ge) {
		ge = &gatewayError{"invalid-parameter", err.Error()}
	}
	s.logger.Warn("sandbox: request refused", zap.String("code", ge.code), zap.String("reason", ge.reason))
	renderPage(w, http.StatusBadRequest, errorPageTemplate, ge)
}

// gatewayParams collects the request's parameters from the query and, for
// a POST, the form body (the SDKs put the common ones in the action URL and
// biz_content in the body). A parameter given twice is refused.
func gatewayParams(w http.ResponseWriter, r *http.Request) (map[string]string, error) {
	if r.Method != http.MethodGet && r.Method != http.MethodPost {
		return nil, &gatewayError{"invalid-method", "use GET or POST"}
	}
	params := map[string]string{}
	add := func(values url.Values) error {
		for k, v := range values {
			if _, dup := params[k]; dup || len(v) != 1 {
				return &gatewayError{"invalid-parameter", "parameter " + k + " given more than once"}
			}
			params[k] = v[0]
		}
		return nil
	}
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return nil, &gatewayError{"invalid-parameter", "malformed query"}
	}
	if err := add(q); err != nil {
		return nil, err
	}
	if r.Method == http.MethodPost {
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxCallbackSize))
		if err != nil {
			return nil, &gatewayError{"invalid-parameter", "request body too large"}
		}
		f, err := url.ParseQuery(string(body))
		if err != nil {
			return nil, &gatewayError{"invalid-parameter", "malformed form body"}
		}
		if err := add(f); err != nil {
			return nil, err
		}
	}
	return params, nil
}

// sandboxMethods are the methods that open a cashier, with the return's
// method and the product code each requires.
var sandboxMethods = map[string]struct{ productCode string }{
	"alipay.trade.page.pay": {"FAST_INSTANT_TRADE_PAY"},
	"alipay.trade.wap.pay":  {"QUICK_WAP_WAY"},
}

// openTrade checks a pay request as Alipay's gateway does and returns its
// trade, new or (for the same order again) the existing one.
func (s *Sandbox) openTrade(p map[string]string) (*trade, error) {
	if err := s.checkRequest(p); err != nil {
		return nil, err
	}
	m, ok := sandboxMethods[p["method"]]
	if !ok {
		return nil, &gatewayError{"invalid-method", "the sandbox cashier serves alipay.trade.page.pay and alipay.trade.wap.pay"}
	}
	if _, err := time.ParseInLocation(time.DateTime, p["timestamp"], chinaTime); err != nil {
		return nil, &gatewayError{"invalid-timestamp", "timestamp must be yyyy-MM-dd HH:mm:ss"}
	}
	var biz map[string]any
	dec := json.NewDecoder(strings.NewReader(p["biz_content"]))
	dec.UseNumber()
	if err := dec.Decode(&biz); err != nil || biz == nil {
		return nil, &gatewayError{"invalid-parameter", "biz_content is not a JSON object"}
	}
	str := func(k string) string { s, _ := biz[k].(string); return s }
	switch {
	case !outTradeNoRE.MatchString(str("out_trade_no")):
		return nil, &gatewayError{"ACQ.INVALID_PARAMETER", "out_trade_no"}
	case str("subject") == "":
		return nil, &gatewayError{"ACQ.INVALID_PARAMETER", "subject"}
	case str("product_code") != m.productCode:
		return nil, &gatewayError{"ACQ.INVALID_PARAMETER", "product_code must be " + m.productCode + " for " + p["method"]}
	}
	amount := str("total_amount")
	if n, ok := biz["total_amount"].(json.Number); ok {
		amount = n.String()
	}
	if _, err := amountClaim(json.RawMessage(`"` + amount + `"`)); err != nil {
		return nil, &gatewayError{"ACQ.INVALID_PARAMETER", "total_amount"}
	}
	for _, u := range []struct{ name, value string }{{"notify_url", p["notify_url"]}, {"return_url", p["return_url"]}, {"quit_url", str("quit_url")}} {
		if ge := s.checkCallbackURL(u.name, u.value); ge != nil {
			return nil, ge
		}
	}
	return s.trades.open(&trade{
		appID: p["app_id"], method: p["method"], signType: p["sign_type"],
		outTradeNo: str("out_trade_no"), totalAmount: amount, subject: str("subject"), body: str("body"),
		passback: str("passback_params"), quitURL: str("quit_url"),
		notifyURL: p["notify_url"], returnURL: p["return_url"],
	})
}

// checkCallbackURL refuses a URL that the sandbox would send a
// notification or a buyer to, unless it is absolute and on this machine
// or on one of callback_hosts.
func (s *Sandbox) checkCallbackURL(name, raw string) *gatewayError {
	if raw == "" {
		return nil
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil {
		return &gatewayError{"invalid-parameter", name + " is not an absolute http(s) URL"}
	}
	host := hostKey(u.Hostname())
	if !isLoopback(host) && !s.callbackHosts[host] {
		return &gatewayError{"invalid-parameter", name + " names " + host + ", which is not on this machine: the sandbox sends notifications and buyers only to loopback hosts and to those of callback_hosts"}
	}
	return nil
}

// hostKey is a host name in lower case, or an IP address in its
// canonical form, for comparing.
func hostKey(host string) string {
	if ip := net.ParseIP(host); ip != nil {
		return ip.String()
	}
	return strings.ToLower(host)
}

// checkRequest makes the checks common to every gateway request, pay or
// OpenAPI: the required parameters, utf-8, the sign type, the signature.
func (s *Sandbox) checkRequest(p map[string]string) *gatewayError {
	for _, k := range []string{"app_id", "method", "charset", "sign_type", "timestamp", "version", "biz_content", "sign"} {
		if p[k] == "" {
			return &gatewayError{"missing-parameter", "missing " + k}
		}
	}
	if !strings.EqualFold(p["charset"], "utf-8") {
		return &gatewayError{"invalid-charset", "the sandbox speaks utf-8 only"}
	}
	v, ok := s.verifiers[p["sign_type"]]
	if !ok {
		return &gatewayError{"invalid-signature-type", "sign_type must be RSA2 or RSA"}
	}
	if s.certs != nil {
		if ge := s.certs.check(p); ge != nil {
			return ge
		}
	}
	if !verifyRequest(v, p) {
		return &gatewayError{"invalid-signature", "验签出错: the signature does not verify with app_public_key; check the string to sign and that the app private key matches the app public key"}
	}
	return nil
}

// verifyRequest checks a merchant's request signature. The SDKs disagree on
// empty values (Java, PHP and Go leave them out, Node keeps them), so both
// strings are tried; each is one that the merchant's key signed.
func verifyRequest(v Verifier, p map[string]string) bool {
	return v.Verify(requestContent(p, false), p["sign"]) == nil ||
		v.Verify(requestContent(p, true), p["sign"]) == nil
}

// serveCashier shows a trade's cashier page and takes its Pay and Cancel
// forms.
func (s *Sandbox) serveCashier(w http.ResponseWriter, r *http.Request) {
	id, action, _ := strings.Cut(strings.TrimPrefix(r.URL.Path, cashierPrefix), "/")
	t := s.trades.byID(id)
	if t == nil {
		renderPage(w, http.StatusNotFound, errorPageTemplate, &gatewayError{"TRADE_NOT_EXIST", "no such cashier"})
		return
	}
	switch {
	case action == "" && (r.Method == http.MethodGet || r.Method == http.MethodHead):
		v := s.trades.view(t)
		if v.Status == "TRADE_CLOSED" && !v.Paid {
			renderPage(w, http.StatusConflict, errorPageTemplate, errTradeClosed)
			return
		}
		renderPage(w, http.StatusOK, cashierTemplate, v)
	case action == "pay" && r.Method == http.MethodPost:
		s.pay(w, r, t)
	case action == "cancel" && r.Method == http.MethodPost:
		target := t.quitURL
		if target == "" {
			target = originOf(t.returnURL) + "/"
		}
		s.logger.Info("sandbox: buyer cancelled", zap.String("out_trade_no", t.outTradeNo))
		http.Redirect(w, r, target, http.StatusFound)
	default:
		w.Header().Set("Allow", "GET, POST")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
	}
}

func originOf(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return ""
	}
	return u.Scheme + "://" + u.Host
}

// pay completes the trade: the notification goes out (and again, until
// the shop says success), the buyer goes back to return_url.
func (s *Sandbox) pay(w http.ResponseWriter, r *http.Request, t *trade) {
	if ge := s.trades.markPaid(t, now()); ge != nil {
		renderPage(w, http.StatusConflict, errorPageTemplate, ge)
		return
	}
	s.logger.Info("sandbox: trade paid", zap.String("out_trade_no", t.outTradeNo), zap.String("trade_no", t.tradeNo))
	if t.notifyURL != "" {
		go s.deliver(t)
	}
	if t.returnURL == "" {
		renderPage(w, http.StatusOK, cashierTemplate, s.trades.view(t))
		return
	}
	q, err := s.returnQuery(t)
	if err != nil {
		http.Error(w, "signing the return failed", http.StatusInternalServerError)
		return
	}
	sep := "?"
	if strings.Contains(t.returnURL, "?") {
		sep = "&"
	}
	http.Redirect(w, r, t.returnURL+sep+q, http.StatusFound)
}

// deliver POSTs the trade's notification until the answer is exactly
// success: at once, then after each wait of the retry schedule. It ends
// with the config that started it.
func (s *Sandbox) deliver(t *trade) {
	waits := append([]time.Duration{0}, s.retry...)
	for i, wait := range waits {
		if wait > 0 {
			timer := time.NewTimer(wait)
			select {
			case <-s.ctx.Done():
				timer.Stop()
				return
			case <-timer.C:
			}
		}
		err := s.notifyOnce(t)
		if err == nil {
			s.logger.Info("sandbox: notification accepted", zap.String("out_trade_no", t.outTradeNo), zap.Int("attempt", i+1))
			return
		}
		s.logger.Warn("sandbox: notification not accepted", zap.String("out_trade_no", t.outTradeNo),
			zap.Int("attempt", i+1), zap.Error(err))
	}
}

func (s *Sandbox) notifyOnce(t *trade) error {
	form, err := s.notification(t, now())
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(s.ctx, http.MethodPost, t.notifyURL, strings.NewReader(form))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded; charset=utf-8")
	resp, err := s.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
	if strings.TrimSpace(string(body)) != "success" {
		return fmt.Errorf("answer %d %q", resp.StatusCode, body)
	}
	return nil
}

// notification is the form body of a trade_status_sync notification, with
// the fields Alipay sends, signed as Alipay signs it: sign_type and empty
// values left out of the string. It tells of the payment: a retry sent
// after a refund or a close still says TRADE_SUCCESS, as Alipay's does.
func (s *Sandbox) notification(t *trade, at time.Time) (string, error) {
	s.trades.mu.Lock()
	p := map[string]string{
		"notify_time": Timestamp(at), "notify_type": "trade_status_sync", "notify_id": t.notifyID,
		"app_id": t.appID, "auth_app_id": t.appID, "charset": "utf-8", "version": "1.0",
		"trade_no": t.tradeNo, "out_trade_no": t.outTradeNo,
		"buyer_id": sandboxBuyerID, "buyer_logon_id": sandboxBuyerLogon,
		"seller_id": sandboxSellerID, "seller_email": sandboxSellerEmail,
		"trade_status": "TRADE_SUCCESS", "total_amount": t.totalAmount, "receipt_amount": t.totalAmount,
		"invoice_amount": t.totalAmount, "buyer_pay_amount": t.totalAmount, "point_amount": "0.00",
		"subject": t.subject, "body": t.body, "passback_params": t.passback,
		"gmt_create": Timestamp(t.created), "gmt_payment": Timestamp(t.paid),
		"fund_bill_list": `[{"amount":"` + t.totalAmount + `","fundChannel":"ALIPAYACCOUNT"}]`,
	}
	signType := t.signType
	s.trades.mu.Unlock()
	return s.signCallback(p, signType)
}

// returnQuery is the query Alipay's return carries: no trade_status.
func (s *Sandbox) returnQuery(t *trade) (string, error) {
	s.trades.mu.Lock()
	p := map[string]string{
		"charset": "utf-8", "out_trade_no": t.outTradeNo, "method": t.method + ".return",
		"total_amount": t.totalAmount, "trade_no": t.tradeNo, "auth_app_id": t.appID, "version": "1.0",
		"app_id": t.appID, "seller_id": sandboxSellerID, "timestamp": Timestamp(now()),
	}
	signType := t.signType
	s.trades.mu.Unlock()
	return s.signCallback(p, signType)
}

// signCallback signs p as Alipay signs callbacks (V1) and form-encodes it.
func (s *Sandbox) signCallback(p map[string]string, signType string) (string, error) {
	signer := s.signers[signType]
	sign, err := signer.Sign(RequestContent(p))
	if err != nil {
		return "", err
	}
	v := url.Values{}
	for k, val := range p {
		if val != "" {
			v.Set(k, val)
		}
	}
	v.Set("sign_type", signType)
	v.Set("sign", sign)
	return v.Encode(), nil
}

// A trade is one order at the sandbox.
type trade struct {
	id                                      string // the cashier's unguessable id
	appID, method, signType                 string
	outTradeNo, totalAmount, subject, body  string
	passback, quitURL, notifyURL, returnURL string
	tradeNo, notifyID, status               string
	created, paid                           time.Time

	// OpenAPI state (sandbox_api.go): the refunds by out_request_no and
	// their total in cents. alipay.trade.close makes an unpaid trade
	// TRADE_CLOSED; a trade refunded in full is TRADE_CLOSED too.
	refunds  map[string]*sandboxRefund
	refunded int64
}

// tradeView is what the cashier page shows.
type tradeView struct {
	ID, OutTradeNo, TradeNo, Subject, Amount, Status string
	Paid                                             bool
}

// defaultMaxTrades is how many trades the sandbox keeps by default.
const defaultMaxTrades = 5000

// tradeStore holds the trades in memory, at most max of them. Its lock
// guards every trade's mutable fields too.
type tradeStore struct {
	mu      sync.Mutex
	max     int
	order   []*trade          // oldest first
	byKey   map[string]*trade // app_id + out_trade_no
	byCash  map[string]*trade // cashier id
	byNo    map[string]*trade // trade_no
	counter int64
	dropped int64 // trades dropped to stay within max
}

func newTradeStore(max int) *tradeStore {
	return &tradeStore{max: max, byKey: map[string]*trade{}, byCash: map[string]*trade{}, byNo: map[string]*trade{}}
}

// errTradeClosed refuses the cashier of a trade that alipay.trade.close
// closed.
var errTradeClosed = &gatewayError{"ACQ.TRADE_HAS_CLOSE", "交易已关闭: this trade was closed and can no longer be paid"}

// open stores t, or returns the trade already opened for the same order.
// Alipay refuses an order number reused for another amount or subject,
// and one already paid.
func (ts *tradeStore) open(t *trade) (*trade, error) {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	key := t.appID + "\x00" + t.outTradeNo
	if old := ts.byKey[key]; old != nil {
		switch {
		case old.status == "TRADE_CLOSED" && old.paid.IsZero():
			return nil, errTradeClosed
		case old.status != "WAIT_BUYER_PAY":
			return nil, &gatewayError{"ACQ.TRADE_HAS_SUCCESS", "交易已支付: this order is already paid"}
		case old.totalAmount != t.totalAmount || old.subject != t.subject:
			return nil, &gatewayError{"ACQ.CONTEXT_INCONSISTENT", "交易信息被篡改: this order number was opened with another amount or subject"}
		case old.notifyURL != t.notifyURL || old.returnURL != t.returnURL || old.quitURL != t.quitURL:
			// Where the payment's notification goes is fixed when the
			// trade opens.
			return nil, &gatewayError{"ACQ.CONTEXT_INCONSISTENT", "交易信息被篡改: this order number was opened with another notify_url, return_url or quit_url"}
		}
		old.signType, old.method = t.signType, t.method
		return old, nil
	}
	if len(ts.order) >= ts.max {
		ts.drop(ts.order[0])
	}
	ts.counter++
	created := now()
	t.id = randomID()
	// 28 digits, as Alipay's: the date, 22001, then 15 digits unique here.
	t.tradeNo = fmt.Sprintf("%s22001%015d", created.In(chinaTime).Format("20060102"), created.UnixMilli()%1e9*1e6+ts.counter%1e6)
	t.notifyID = randomID()
	t.status = "WAIT_BUYER_PAY"
	t.created = created
	ts.byKey[key] = t
	ts.byCash[t.id] = t
	ts.byNo[t.tradeNo] = t
	ts.order = append(ts.order, t)
	return t, nil
}

// drop forgets the oldest trade t. A notification of it that is still
// being retried goes on.
func (ts *tradeStore) drop(t *trade) {
	delete(ts.byKey, t.appID+"\x00"+t.outTradeNo)
	delete(ts.byCash, t.id)
	delete(ts.byNo, t.tradeNo)
	ts.order[0] = nil
	ts.order = ts.order[1:]
	ts.dropped++
}

func (ts *tradeStore) byID(id string) *trade {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	return ts.byCash[id]
}

// markPaid moves t from WAIT_BUYER_PAY to TRADE_SUCCESS, once; a paid or
// closed trade is refused.
func (ts *tradeStore) markPaid(t *trade, at time.Time) *gatewayError {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	switch {
	case !t.paid.IsZero():
		return &gatewayError{"ACQ.TRADE_HAS_SUCCESS", "this trade is already paid"}
	case t.status != "WAIT_BUYER_PAY":
		return errTradeClosed
	}
	t.status = "TRADE_SUCCESS"
	t.paid = at
	return nil
}

func (ts *tradeStore) view(t *trade) tradeView {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	return tradeView{ID: t.id, OutTradeNo: t.outTradeNo, TradeNo: t.tradeNo, Subject: t.subject,
		Amount: t.totalAmount, Status: t.status, Paid: !t.paid.IsZero()}
}

// Interface guards.
var (
	_ caddy.Provisioner           = (*Sandbox)(nil)
	_ caddyhttp.MiddlewareHandler = (*Sandbox)(nil)
)
