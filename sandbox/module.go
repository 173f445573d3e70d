// Package sandbox is alipay_sandbox, a local Alipay for one machine: the
// gateway, the cashier, the notifier and the OpenAPI answers that Alipay
// gives a merchant, for the demo, for tests and for trying a shop
// offline. A production build leaves it out; import it to add the
// http.handlers.alipay_sandbox module.
package sandbox

import (
	"crypto/rsa"
	"errors"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/caddy-alipay/caddy-alipay/internal/caddyconf"
	"github.com/caddy-alipay/caddy-alipay/internal/protocol"
	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"
)

func init() {
	caddy.RegisterModule(Handler{})
}

// Handler is a local stand-in for Alipay's gateway, for the demo, for
// tests and for trying an integration offline. It serves the gateway at
// `/gateway.do`, a cashier under `/sandbox/cashier/`, the app SDK's page
// at `/sandbox/app`, OpenAPI v3 under `/v3/`, the QR codes of
// face-to-face payments under `/sandbox/qr/`, and, for the developer,
// the trades it keeps and what it did for each (refunds, every
// notification and its attempts, returns, OpenAPI calls) at
// `/sandbox/trades`, as HTML or JSON, and a notification on demand at
// `/sandbox/notify` (the alipay-sandbox-notify command's). It checks merchant
// signatures with the app's public key, and signs notifications and
// returns with its own "Alipay" private key, as Alipay does. With
// partner and md5_key it also plays the legacy gateway (即时到账:
// create_direct_pay_by_user, single_trade_query, close_trade and the
// batch refunds, with the seller's password page under /sandbox/refund/)
// at the same /gateway.do.
//
// Trades live in memory, for one machine. They outlive a reload, with
// their pending notification retries, as long as the sandbox keeps its
// identity as Alipay (its keys, partner and md5_key, encrypt_key,
// certificates directory); a sandbox with another identity starts afresh.
//
// Its string settings and callback_hosts accept {env.*} and {file.*}
// placeholders, resolved once when the config loads.
type Handler struct {
	// The app's public key, which checks the merchant's request
	// signatures: a file path, or the key inline (PEM or bare base64).
	// With partner it also checks legacy requests of sign_type RSA
	// (SHA1withRSA; 1024-bit keys are accepted). Required, unless partner
	// is set: with partner and md5_key alone, neither this key nor
	// alipay_private_key, the sandbox plays only the legacy gateway.
	AppPublicKey string `json:"app_public_key,omitempty"`

	// The private key that plays Alipay's: it signs notifications and
	// returns. Its public half is the sidecar's alipay_public_key. With
	// partner it also signs the callbacks of legacy requests of sign_type
	// RSA. Required with app_public_key.
	AlipayPrivateKey string `json:"alipay_private_key,omitempty"`

	// The legacy protocol (即时到账): the partner id, 2088 and 12 digits,
	// that create_direct_pay_by_user requests must name. With it the
	// sandbox also plays the legacy gateway at /gateway.do, and answers
	// service=notify_verify. Default: none, no legacy gateway.
	Partner string `json:"partner,omitempty"`

	// Legacy: the partner's MD5 key, 32 letters and digits, inline or a
	// file that holds it. It checks legacy requests of sign_type MD5 and
	// signs their notifications and returns. Required with partner.
	MD5Key string `json:"md5_key,omitempty"`

	// Content encryption (接口内容加密): the app's AES key, the base64 of
	// 16 bytes as Alipay's console shows it. With it every OpenAPI call
	// must carry encrypt_type=AES and biz_content encrypted with it, and
	// every answer is encrypted; page, WAP and app pay requests stay
	// plaintext. Needs app_public_key and alipay_private_key. Default:
	// off.
	EncryptKey string `json:"encrypt_key,omitempty"`

	// The waits between notification attempts until the shop answers
	// success. Default: Alipay's schedule, 4m 10m 10m 1h 2h 6h 15h (eight
	// notifications in all).
	NotifyRetry []caddy.Duration `json:"notify_retry,omitempty"`

	// Certificate mode (公钥证书模式): a directory where the sandbox issues,
	// on first start (and again if its keys change), alipayRootCert.crt,
	// alipayCertPublicKey_RSA2.crt and appCertPublicKey.crt for the
	// sidecar's alipay_root_cert, alipay_cert and app_cert. Requests must
	// then carry their serial numbers, and responses carry
	// alipay_cert_sn. Needs app_public_key and alipay_private_key.
	// Default: off.
	Certificates string `json:"certificates,omitempty"`

	// Host names, besides loopback ones (localhost, 127.0.0.0/8, ::1),
	// that a request's notify_url, return_url and quit_url may name. The
	// sandbox sends notifications, and buyers, only there. Default: none.
	CallbackHosts []string `json:"callback_hosts,omitempty"`

	// The most trades kept in memory; beyond it the oldest is dropped.
	// Each keeps its latest 50 notification attempts and 50 other events
	// for /sandbox/trades, which says how many were dropped. A reload
	// applies a new value to the trades kept. Default: 5000.
	MaxTrades int `json:"max_trades,omitempty"`

	certs     *certs                       // certificate mode, or nil
	verifiers map[string]protocol.Verifier // by sign_type: checks merchant requests
	signers   map[string]protocol.Signer   // by sign_type: signs as Alipay
	// openAPI: the OpenAPI keys are set, so the OpenAPI gateway is
	// played; without them only the legacy one is.
	openAPI bool
	// contentKey: encrypt_key, or nil when content encryption is off
	contentKey *protocol.ContentKey
	legacy     *legacyGateway // with partner, or nil
	retry      []time.Duration
	// trades is the store of the sandbox's identity (key), shared with
	// the sandboxes of the same identity and across reloads (pool.go).
	trades *tradeStore
	key    storeKey
	// callbackHosts: CallbackHosts, lower case, IPv6 without brackets
	callbackHosts map[string]bool
	client        *http.Client
	logger        *zap.Logger
	site          *site // where the sandbox sits, learnt on its first request
	// v3Nonces: the nonces of recent OpenAPI v3 requests (v3.go)
	v3Nonces *v3Nonces
}

// site is what the sandbox learns, on its first request, of its site:
// whether it has host names, so that every request's Host is one that
// the operator configured.
type site struct {
	once      sync.Once
	hostBound bool
}

// alipayRetrySchedule is the waits between notifications in Alipay's
// domestic documentation.
var alipayRetrySchedule = []time.Duration{4 * time.Minute, 10 * time.Minute, 10 * time.Minute,
	time.Hour, 2 * time.Hour, 6 * time.Hour, 15 * time.Hour}

// The sandbox's fixed identity, as it appears in callbacks and API
// answers.
const (
	sandboxSellerID    = "2088000000000001"
	sandboxSellerEmail = "seller@sandbox.example"
	sandboxBuyerID     = "2088102177846880"
	sandboxBuyerLogon  = "buy***@sandbox.example"
	// The legacy protocol's notifications name the buyer by a full
	// address.
	sandboxBuyerEmail = "buyer@sandbox.example"
)

// CaddyModule returns the Caddy module information.
func (Handler) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.alipay_sandbox",
		New: func() caddy.Module { return new(Handler) },
	}
}

// Provision resolves the placeholders, parses the keys and takes the
// trade store of the sandbox's identity: the one that a sandbox of the
// same identity holds (the config a reload replaces), or a new one.
func (h *Handler) Provision(ctx caddy.Context) error {
	h.logger = ctx.Logger()
	h.site = &site{}
	h.v3Nonces = &v3Nonces{}
	// With partner and md5_key alone the sandbox plays only the legacy
	// gateway, and needs no RSA key. Which settings are given is read
	// before placeholders: one that resolves to nothing is an error.
	openAPI := h.Partner == "" || h.AppPublicKey != "" || h.AlipayPrivateKey != ""
	partnerGiven, md5KeyGiven, encryptKeyGiven := h.Partner != "", h.MD5Key != "", h.EncryptKey != ""
	h.resolvePlaceholders()
	h.verifiers = map[string]protocol.Verifier{}
	h.signers = map[string]protocol.Signer{}
	var appKey *rsa.PublicKey
	var alipayKey *rsa.PrivateKey
	if openAPI {
		var err error
		if appKey, alipayKey, err = h.provisionKeys(); err != nil {
			return err
		}
		h.openAPI = true
	}
	if err := h.provisionLegacy(partnerGiven, md5KeyGiven); err != nil {
		return err
	}
	if encryptKeyGiven {
		if err := h.provisionContentKey(); err != nil {
			return err
		}
	}
	if h.Certificates != "" {
		if !h.openAPI {
			return caddyconf.SettingError("certificates", errors.New("OpenAPI's certificate mode needs app_public_key and alipay_private_key"))
		}
		var err error
		if h.certs, err = provisionCerts(h.Certificates, appKey, alipayKey); err != nil {
			return caddyconf.SettingError("certificates", err)
		}
	}
	h.retry = alipayRetrySchedule
	if len(h.NotifyRetry) > 0 {
		h.retry = make([]time.Duration, len(h.NotifyRetry))
		for i, d := range h.NotifyRetry {
			if d <= 0 {
				return caddyconf.SettingError("notify_retry", fmt.Errorf("%v: durations must be positive", time.Duration(d)))
			}
			h.retry[i] = time.Duration(d)
		}
	}
	if h.MaxTrades < 0 {
		return caddyconf.SettingError("max_trades", fmt.Errorf("%d: must be positive", h.MaxTrades))
	}
	if h.MaxTrades == 0 {
		h.MaxTrades = defaultMaxTrades
	}
	h.callbackHosts = map[string]bool{}
	for _, host := range h.CallbackHosts {
		host = hostKey(strings.Trim(host, "[]"))
		if !protocol.ValidHostName(host) && net.ParseIP(host) == nil {
			return caddyconf.SettingError("callback_hosts", fmt.Errorf("%q is not a host name or IP address (no scheme, no port)", host))
		}
		h.callbackHosts[host] = true
	}
	// Alipay does not follow redirects from notify_url.
	h.client = protocol.NoRedirectClient(15 * time.Second)
	key, err := h.identity(appKey, alipayKey)
	if err != nil {
		return err
	}
	// Last, so that a failed Provision holds no store.
	return h.takeStore(key)
}

// resolvePlaceholders replaces the {env.*} and {file.*} placeholders of
// every string setting and of each of callback_hosts, once, in place.
func (h *Handler) resolvePlaceholders() {
	settings := h.stringSettings()
	h.CallbackHosts = slices.Clone(h.CallbackHosts) // the caller's slice stays as it was
	for i := range h.CallbackHosts {
		settings = append(settings, caddyconf.StringSetting{Name: "callback_hosts", Field: &h.CallbackHosts[i]})
	}
	caddyconf.ResolvePlaceholders(settings)
}

// provisionKeys parses the OpenAPI keys and makes the verifiers and
// signers of each RSA sign type.
func (h *Handler) provisionKeys() (*rsa.PublicKey, *rsa.PrivateKey, error) {
	material, err := protocol.KeyMaterial(h.AppPublicKey)
	if err != nil {
		return nil, nil, caddyconf.SettingError("app_public_key", err)
	}
	appKey, err := protocol.ParsePublicKey(material)
	if err != nil {
		return nil, nil, caddyconf.SettingError("app_public_key", err)
	}
	if material, err = protocol.KeyMaterial(h.AlipayPrivateKey); err != nil {
		return nil, nil, caddyconf.SettingError("alipay_private_key", err)
	}
	alipayKey, err := protocol.ParsePrivateKey(material)
	if err != nil {
		return nil, nil, caddyconf.SettingError("alipay_private_key", err)
	}
	if alipayKey.PublicKey.Equal(appKey) {
		return nil, nil, caddyconf.SettingError("alipay_private_key", errors.New("is the app's own key; the sandbox plays Alipay with a key of its own"))
	}
	for _, st := range []string{protocol.SignTypeRSA2, protocol.SignTypeRSA} {
		if h.verifiers[st], err = protocol.NewRSAVerifier(appKey, st); err != nil {
			return nil, nil, err
		}
		if h.signers[st], err = protocol.NewRSASigner(alipayKey, st); err != nil {
			return nil, nil, err
		}
	}
	return appKey, alipayKey, nil
}

// provisionContentKey reads encrypt_key, once resolved. Its errors never
// echo the key.
func (h *Handler) provisionContentKey() error {
	if !h.openAPI {
		return caddyconf.SettingError("encrypt_key", errors.New("OpenAPI's content encryption needs app_public_key and alipay_private_key"))
	}
	if h.EncryptKey == "" {
		return caddyconf.SettingError("encrypt_key", errors.New("empty (an unset environment variable or a missing {file.*}?)"))
	}
	k, err := protocol.NewContentKey(h.EncryptKey)
	if err != nil {
		return caddyconf.SettingError("encrypt_key", err)
	}
	h.contentKey = k
	return nil
}

// loopbackHost reports whether a request's Host (with or without a port)
// names this machine: localhost, a name under .localhost, 127.0.0.0/8 or
// ::1.
func loopbackHost(hostport string) bool {
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	}
	host = strings.ToLower(strings.TrimSuffix(strings.Trim(host, "[]"), "."))
	return protocol.IsLoopback(host) || strings.HasSuffix(host, ".localhost")
}

// now is the clock; tests replace it.
var now = time.Now

// ServeHTTP implements caddyhttp.MiddlewareHandler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	h.site.once.Do(func() {
		if srv, _ := r.Context().Value(caddyhttp.ServerCtxKey).(*caddyhttp.Server); srv != nil {
			found, bound, _ := caddyconf.Locate(srv.Routes, h)
			h.site.hostBound = found && bound
		}
	})
	if !h.site.hostBound && !loopbackHost(r.Host) {
		// A page of another site could otherwise drive the sandbox from
		// the developer's browser through DNS rebinding: its name
		// resolving to 127.0.0.1, its Host its own.
		renderPage(w, http.StatusMisdirectedRequest, errorPageTemplate, &gatewayError{"HOST_NOT_ALLOWED",
			"this sandbox answers only loopback host names (localhost, 127.0.0.1, [::1]); to serve another, give its site block that host name"})
		return nil
	}
	switch {
	case r.URL.Path == "/gateway.do":
		h.serveGateway(w, r)
		return nil
	case strings.HasPrefix(r.URL.Path, v3Prefix):
		h.serveV3(w, r)
		return nil
	case strings.HasPrefix(r.URL.Path, cashierPrefix):
		h.serveCashier(w, r)
		return nil
	case r.URL.Path == appPath:
		h.serveApp(w, r)
		return nil
	case strings.HasPrefix(r.URL.Path, qrPrefix):
		h.serveScan(w, r)
		return nil
	case isTradesPath(r.URL.Path):
		h.serveTrades(w, r)
		return nil
	case r.URL.Path == notifyPath:
		h.serveTrigger(w, r)
		return nil
	case h.legacy != nil && strings.HasPrefix(r.URL.Path, refundPagePrefix):
		h.serveRefundPage(w, r)
		return nil
	}
	return next.ServeHTTP(w, r)
}

// Interface guards.
var (
	_ caddy.Provisioner           = (*Handler)(nil)
	_ caddy.CleanerUpper          = (*Handler)(nil)
	_ caddyhttp.MiddlewareHandler = (*Handler)(nil)
)
