// Package sandbox is alipay_sandbox, a local Alipay for one machine: the
// gateway, the cashier, the notifier and the OpenAPI answers that Alipay
// gives a merchant, for the demo, for tests and for trying a shop
// offline. A production build leaves it out; import it to add the
// http.handlers.alipay_sandbox module.
package sandbox

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/caddy-alipay/caddy-alipay/internal/caddyconf"
	"github.com/caddy-alipay/caddy-alipay/internal/protocol"
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

	certs     *sandboxCerts                // certificate mode, or nil
	verifiers map[string]protocol.Verifier // by sign_type: checks merchant requests
	signers   map[string]protocol.Signer   // by sign_type: signs as Alipay
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
	material, err := protocol.KeyMaterial(repl.ReplaceKnown(s.AppPublicKey, ""))
	if err != nil {
		return caddyconf.SettingError("app_public_key", err)
	}
	appKey, err := protocol.ParsePublicKey(material)
	if err != nil {
		return caddyconf.SettingError("app_public_key", err)
	}
	if material, err = protocol.KeyMaterial(repl.ReplaceKnown(s.AlipayPrivateKey, "")); err != nil {
		return caddyconf.SettingError("alipay_private_key", err)
	}
	alipayKey, err := protocol.ParsePrivateKey(material)
	if err != nil {
		return caddyconf.SettingError("alipay_private_key", err)
	}
	if alipayKey.PublicKey.Equal(appKey) {
		return caddyconf.SettingError("alipay_private_key", errors.New("is the app's own key; the sandbox plays Alipay with a key of its own"))
	}
	s.verifiers = map[string]protocol.Verifier{}
	s.signers = map[string]protocol.Signer{}
	for _, st := range []string{protocol.SignTypeRSA2, protocol.SignTypeRSA} {
		if s.verifiers[st], err = protocol.NewRSAVerifier(appKey, st); err != nil {
			return err
		}
		if s.signers[st], err = protocol.NewRSASigner(alipayKey, st); err != nil {
			return err
		}
	}
	if dir := repl.ReplaceKnown(s.Certificates, ""); dir != "" {
		if s.certs, err = provisionSandboxCerts(dir, appKey, alipayKey); err != nil {
			return caddyconf.SettingError("certificates", err)
		}
	}
	s.retry = alipayRetrySchedule
	if len(s.NotifyRetry) > 0 {
		s.retry = make([]time.Duration, len(s.NotifyRetry))
		for i, d := range s.NotifyRetry {
			if d <= 0 {
				return caddyconf.SettingError("notify_retry", fmt.Errorf("%v: durations must be positive", time.Duration(d)))
			}
			s.retry[i] = time.Duration(d)
		}
	}
	if s.MaxTrades < 0 {
		return caddyconf.SettingError("max_trades", fmt.Errorf("%d: must be positive", s.MaxTrades))
	}
	if s.MaxTrades == 0 {
		s.MaxTrades = defaultMaxTrades
	}
	s.callbackHosts = map[string]bool{}
	for _, host := range s.CallbackHosts {
		host = hostKey(strings.Trim(strings.TrimSpace(repl.ReplaceKnown(host, "")), "[]"))
		if !protocol.ValidHostName(host) && net.ParseIP(host) == nil {
			return caddyconf.SettingError("callback_hosts", fmt.Errorf("%q is not a host name or IP address (no scheme, no port)", host))
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

// now is the clock; tests replace it.
var now = time.Now

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

// Interface guards.
var (
	_ caddy.Provisioner           = (*Sandbox)(nil)
	_ caddyhttp.MiddlewareHandler = (*Sandbox)(nil)
)
