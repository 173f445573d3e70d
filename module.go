// Package alipay is a Caddy HTTP handler that takes Alipay payments for
// the site behind it: it signs the page-pay redirect from an order that
// the shop signed, verifies Alipay's return and notify callbacks, and hands
// each verified result to the shop as an HS256 JWT in X-Alipay-Token. The
// shop never holds the RSA private key.
//
// This package is the Caddy module; Alipay's protocols, the keys and the
// token are in internal/protocol.
package alipay

import (
	"cmp"
	"errors"
	"fmt"
	"regexp"
	"strings"
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

// Handler is the alipay sidecar: it takes Alipay payments for the site
// behind it, which never holds Alipay's keys. It signs the pay redirect
// from an order that the shop signed, verifies Alipay's return and notify
// callbacks and hands each to the shop as an HS256 token, and makes the
// shop's calls to Alipay's API.
//
// It serves `{prefix}/pay`, `{prefix}/notify`, `{prefix}/return` and
// `{prefix}/api/<method>`, passes every other request on, and removes
// every client-sent `X-Alipay-*` header and trailer from all requests it
// sees.
//
// Every string setting accepts {env.*} and {file.*} placeholders,
// resolved once when the config loads, so that keys and the secret need
// not be written into the config.
type Handler struct {
	// The app's APPID at Alipay (digits). Required.
	AppID string `json:"app_id,omitempty"`

	// The app's RSA private key: a file path, or the key inline as PEM
	// (PKCS#1 or PKCS#8) or as the bare base64 that Alipay's key tool
	// writes. Required. At least 2048 bits (1024 with sign_type RSA).
	AppPrivateKey string `json:"app_private_key,omitempty"`

	// Alipay's public key as the open platform console shows it (not the
	// app's own public key): a file path, or inline PEM (PKIX or PKCS#1)
	// or bare base64. Required, unless the app uses certificate mode.
	AlipayPublicKey string `json:"alipay_public_key,omitempty"`

	// Certificate mode (公钥证书模式): the app's certificate,
	// appCertPublicKey_<app_id>.crt, a file path or inline PEM. It goes
	// with alipay_cert and alipay_root_cert, all three or none; with
	// them, alipay_public_key is not used, and every request carries
	// app_cert_sn and alipay_root_cert_sn.
	AppCert string `json:"app_cert,omitempty"`

	// Certificate mode: Alipay's certificate,
	// alipayCertPublicKey_RSA2.crt, a file path or inline PEM. Alipay's
	// key comes from it.
	AlipayCert string `json:"alipay_cert,omitempty"`

	// Certificate mode: Alipay's root certificate, alipayRootCert.crt, a
	// file path or inline PEM.
	AlipayRootCert string `json:"alipay_root_cert,omitempty"`

	// The secret shared with the upstream shop: it signs pay tokens with
	// it and checks X-Alipay-Token with it. At least 32 bytes. Required.
	Secret string `json:"secret,omitempty"`

	// The app's sign type at Alipay: RSA2 (SHA-256, default) or RSA
	// (SHA-1, old apps). Requests are signed, and callbacks verified,
	// with it whatever a callback's own sign_type field says.
	SignType string `json:"sign_type,omitempty"`

	// The gateway: production (default), sandbox (Alipay's sandbox), or
	// a URL. A plain http:// URL is accepted only for a loopback host,
	// such as a local alipay_sandbox.
	Gateway string `json:"gateway,omitempty"`

	// The path prefix of the endpoints. Default: /alipay.
	Prefix string `json:"prefix,omitempty"`

	// The absolute URL (no query) that Alipay posts notifications to.
	// Default: {scheme}://{host}{prefix}/notify of the pay request.
	NotifyURL string `json:"notify_url,omitempty"`

	// The absolute URL (no query) that Alipay returns the buyer to.
	// Default: {scheme}://{host}{prefix}/return of the pay request.
	ReturnURL string `json:"return_url,omitempty"`

	// When set, a callback's seller_id must equal it (2088 and 12 digits).
	SellerID string `json:"seller_id,omitempty"`

	// The path that the upstream receives verified notifications on.
	// Default: the request's own path.
	ForwardNotify string `json:"forward_notify,omitempty"`

	// The path that the upstream receives verified returns on.
	// Default: the request's own path.
	ForwardReturn string `json:"forward_return,omitempty"`

	// The OpenAPI methods that POST {prefix}/api/<method> serves. Default:
	// alipay.trade.query, alipay.trade.refund,
	// alipay.trade.fastpay.refund.query and alipay.trade.close.
	APIMethods []string `json:"api_methods,omitempty"`

	// Before a verified return goes to the upstream, ask
	// alipay.trade.query for its trade and add the answer to the token as
	// a top-level trade_status claim (returns carry none). Default: off.
	QueryOnReturn bool `json:"query_on_return,omitempty"`

	// The legacy protocol (即时到账, create_direct_pay_by_user) of a partner
	// that joined Alipay before OpenAPI: its partner id (2088 and 12
	// digits) selects it, in place of app_id. app_cert, alipay_cert,
	// alipay_root_cert, api_methods and query_on_return are then refused.
	Partner string `json:"partner,omitempty"`

	// Legacy: the partner's 32-character MD5 key, inline or a file that
	// holds it, for sign_type MD5 (the default there). With sign_type
	// RSA (SHA1withRSA) app_private_key and alipay_public_key sign
	// instead.
	MD5Key string `json:"md5_key,omitempty"`

	// Legacy: the partner's charset, utf-8 (default) or gbk: requests are
	// signed and callbacks read in it, whatever else a request says.
	InputCharset string `json:"input_charset,omitempty"`

	// Legacy: the seller's email, in place of seller_id (which defaults to
	// the partner): requests carry it, and callbacks must.
	SellerEmail string `json:"seller_email,omitempty"`

	// Legacy: ask Alipay (notify_verify) about every notification, and
	// every return that carries a notify_id, before it goes to the shop.
	// Default: true.
	NotifyVerify *bool `json:"notify_verify,omitempty"`

	// How long a notification waits for the upstream's answer, and for its
	// own body to arrive, before Alipay hears fail (504, or 408 for the
	// body) and the request to the upstream is cancelled. Default: 5s.
	NotifyTimeout caddy.Duration `json:"notify_timeout,omitempty"`

	// What makes Alipay hear success for a notification: success (the
	// default), the shop's 2xx answer acknowledges it, with the body
	// success (what a shop answers Alipay itself) or the header
	// X-Alipay-Ack: <the token's jti>; status, any 2xx, for a shop that
	// cannot change its answer (a misrouted 2xx, such as a catch-all
	// page, then loses the notification).
	NotifyAck string `json:"notify_ack,omitempty"`

	// The app's AES content-encryption key (接口内容加密), the base64 of
	// 16 bytes as Alipay's console shows it, for an app that has it
	// switched on: every API call and precreate then goes encrypted.
	// Like the other secrets, best given as {env.*} or {file.*}.
	EncryptKey string `json:"encrypt_key,omitempty"`

	// The version of Alipay's OpenAPI that the API's calls (and precreate
	// and the barcode flow's) use: v2 (default), or v3, REST calls signed
	// in headers. The shop's endpoints and answers are the same in both.
	APIVersion string `json:"api_version,omitempty"`

	// Barcode pay (POST {prefix}/api/alipay.trade.pay): how often the
	// trade is queried while the buyer confirms it on the phone. Default:
	// 5s, Alipay's guidance.
	BarcodePoll caddy.Duration `json:"barcode_poll,omitempty"`

	// Barcode pay: how long the trade is queried at most before it is
	// cancelled. Default: 60s, Alipay's guidance.
	BarcodeWait caddy.Duration `json:"barcode_wait,omitempty"`

	// Limits the endpoints to the requests that these matcher sets match
	// (the Caddyfile's "alipay <matcher>" puts its matcher here, not on
	// the handler's route). Every request is still stripped of X-Alipay-*
	// headers, and a request for an endpoint's path that the matchers do
	// not match is refused with 404, never passed on. Default: all.
	MatcherSetsRaw caddyhttp.RawMatcherSets `json:"match,omitempty" caddy:"namespace=http.matchers"`

	matchers   caddyhttp.MatcherSets
	router     router
	site       *site
	protocol   protocol.Protocol
	client     *protocol.Client // the OpenAPI gateway, for query_on_return
	api        protocol.API     // the shop's API
	queries    *returnQueries   // query_on_return's calls
	tokens     *protocol.TokenKey
	notifyPath string
	returnPath string
	logger     *zap.Logger
	metrics    *eventMetrics
	warnings   []protocol.Warning // settings that work but should change
}

// CaddyModule returns the Caddy module information.
func (Handler) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.alipay",
		New: func() caddy.Module { return new(Handler) },
	}
}

// stringSettings are the handler's string settings, by the name that the
// Caddyfile and JSON share: the Caddyfile parser reads each as one
// argument, and Provision resolves the placeholders in each.
func (h *Handler) stringSettings() []caddyconf.StringSetting {
	return []caddyconf.StringSetting{
		{Name: "app_id", Field: &h.AppID},
		{Name: "app_private_key", Field: &h.AppPrivateKey},
		{Name: "alipay_public_key", Field: &h.AlipayPublicKey},
		{Name: "app_cert", Field: &h.AppCert},
		{Name: "alipay_cert", Field: &h.AlipayCert},
		{Name: "alipay_root_cert", Field: &h.AlipayRootCert},
		{Name: "secret", Field: &h.Secret},
		{Name: "sign_type", Field: &h.SignType},
		{Name: "gateway", Field: &h.Gateway},
		{Name: "prefix", Field: &h.Prefix},
		{Name: "notify_url", Field: &h.NotifyURL},
		{Name: "return_url", Field: &h.ReturnURL},
		{Name: "seller_id", Field: &h.SellerID},
		{Name: "forward_notify", Field: &h.ForwardNotify},
		{Name: "forward_return", Field: &h.ForwardReturn},
		{Name: "partner", Field: &h.Partner},
		{Name: "md5_key", Field: &h.MD5Key},
		{Name: "input_charset", Field: &h.InputCharset},
		{Name: "seller_email", Field: &h.SellerEmail},
		{Name: "notify_ack", Field: &h.NotifyAck},
		{Name: "encrypt_key", Field: &h.EncryptKey},
		{Name: "api_version", Field: &h.APIVersion},
	}
}

// configError names the setting that is wrong.
var configError = caddyconf.SettingError

// defaultAPITimeout bounds one gateway call, connection to last byte.
const defaultAPITimeout = 15 * time.Second

// defaultNotifyTimeout is notify_timeout's default: a shop answers a
// notification in well under a second, and Alipay's retries carry one
// that timed out.
const defaultNotifyTimeout = 5 * time.Second

// The values of notify_ack.
const (
	notifyAckSuccess = "success"
	notifyAckStatus  = "status"
)

// notifyTimeout is notify_timeout, or its default.
func (h *Handler) notifyTimeout() time.Duration {
	if h.NotifyTimeout > 0 {
		return time.Duration(h.NotifyTimeout)
	}
	return defaultNotifyTimeout
}

// Provision resolves placeholders, applies defaults and parses the keys,
// once for the life of the config.
func (h *Handler) Provision(ctx caddy.Context) error {
	return h.provision(ctx, ctx.Logger())
}

// provision is Provision with its logger: alipay-check provisions the
// handlers of a config that Caddy does not run, and reports what the log
// would say. The secret and the protocol's settings are checked apart,
// so that one error does not hide the other.
func (h *Handler) provision(ctx caddy.Context, logger *zap.Logger) error {
	h.logger = logger
	caddyconf.ResolvePlaceholders(h.stringSettings())
	if h.Prefix == "" {
		h.Prefix = "/alipay"
	}
	h.Prefix = strings.TrimRight(h.Prefix, "/")
	h.router = newRouter(h.Prefix, h.ForwardNotify, h.ForwardReturn)
	h.site = &site{}
	if h.MatcherSetsRaw != nil {
		mods, err := ctx.LoadModule(h, "MatcherSetsRaw")
		if err != nil {
			return configError("match", err)
		}
		if err := h.matchers.FromInterface(mods); err != nil {
			return configError("match", err)
		}
	}
	h.notifyPath = h.Prefix + "/notify"
	h.returnPath = h.Prefix + "/return"

	var err error
	if h.metrics, err = newEventMetrics(ctx.GetMetricsRegistry()); err != nil {
		return err
	}
	var secretErr error
	if h.tokens, err = protocol.NewTokenKey(h.Secret); err != nil {
		secretErr = configError("secret", fmt.Errorf("%w: make one with openssl rand -base64 32, and give the shop the same", err))
		if h.Secret == "" {
			secretErr = configError("secret", errors.New("required (an unset environment variable?)"))
		}
	}
	if h.Partner != "" {
		err = h.provisionLegacy()
	} else {
		err = h.provisionOpenAPI()
	}
	return errors.Join(secretErr, err)
}

// warn logs the protocol's warnings about settings that work but should
// change, and keeps them for alipay-check.
func (h *Handler) warn(warnings []protocol.Warning) {
	for _, w := range warnings {
		h.logger.Warn(w.Message, zap.String("setting", w.Setting))
	}
	h.warnings = append(h.warnings, warnings...)
}

// provisionOpenAPI sets up the OpenAPI protocol: the app's key, Alipay's
// key or certificates, the gateway and its client.
func (h *Handler) provisionOpenAPI() error {
	for _, s := range []struct{ setting, value string }{{"md5_key", h.MD5Key}, {"input_charset", h.InputCharset}, {"seller_email", h.SellerEmail}} {
		if s.value != "" {
			return configError(s.setting, errors.New("only for the legacy protocol, which partner selects"))
		}
	}
	if h.NotifyVerify != nil {
		return configError("notify_verify", errors.New("only for the legacy protocol, which partner selects"))
	}
	if len(h.APIMethods) == 0 {
		h.APIMethods = protocol.DefaultOpenAPIMethods
	}
	api, warnings, err := protocol.NewOpenAPI(protocol.OpenAPIConfig{
		AppID: h.AppID, SellerID: h.SellerID, SignType: h.SignType, Gateway: h.Gateway,
		AppPrivateKey: h.AppPrivateKey, AlipayPublicKey: h.AlipayPublicKey,
		AppCert: h.AppCert, AlipayCert: h.AlipayCert, AlipayRootCert: h.AlipayRootCert,
		EncryptKey: h.EncryptKey, APIVersion: h.APIVersion, Now: now(),
	})
	if err != nil {
		return err
	}
	h.warn(warnings)
	h.protocol = api
	h.queries = newReturnQueries()
	h.client = &protocol.Client{
		API:     api,
		Timeout: defaultAPITimeout,
		Now:     func() time.Time { return now() },
		HTTP:    protocol.NoRedirectClient(0),
		Timer:   h.metrics.gatewayTook,
	}
	h.api = &protocol.OpenAPICalls{Client: h.client, List: h.APIMethods, Barcode: &protocol.Barcode{
		Client: h.client, Poll: time.Duration(h.BarcodePoll), Wait: time.Duration(h.BarcodeWait)}}
	return nil
}

// provisionLegacy sets up the legacy protocol of partner: its key, its
// charset and seller, the gateway and notify_verify.
func (h *Handler) provisionLegacy() error {
	for _, s := range []struct {
		setting string
		set     bool
	}{{"app_id", h.AppID != ""}, {"app_cert", h.AppCert != ""}, {"alipay_cert", h.AlipayCert != ""},
		{"alipay_root_cert", h.AlipayRootCert != ""}, {"api_methods", len(h.APIMethods) > 0}, {"query_on_return", h.QueryOnReturn},
		{"barcode_poll", h.BarcodePoll != 0}, {"barcode_wait", h.BarcodeWait != 0}, {"encrypt_key", h.EncryptKey != ""},
		{"api_version", h.APIVersion != ""}} {
		if s.set {
			return configError(s.setting, errors.New("not for the legacy protocol (partner): it is OpenAPI's; remove one"))
		}
	}
	legacy, warnings, err := protocol.NewLegacy(protocol.LegacyConfig{
		Partner: h.Partner, SignType: h.SignType, MD5Key: h.MD5Key, InputCharset: h.InputCharset,
		SellerID: h.SellerID, SellerEmail: h.SellerEmail, Gateway: h.Gateway,
		AppPrivateKey: h.AppPrivateKey, AlipayPublicKey: h.AlipayPublicKey,
		NotifyVerify: h.NotifyVerify == nil || *h.NotifyVerify,
	})
	if err != nil {
		return err
	}
	h.warn(warnings)
	legacy.HTTP = protocol.NoRedirectClient(0)
	legacy.Now = func() time.Time { return now() }
	legacy.Timer = h.metrics.gatewayTook
	h.protocol, h.api = legacy, legacy
	return nil
}

var (
	apiMethodRE = regexp.MustCompile(`^alipay(\.[a-z0-9_]+)+$`)
	prefixRE    = regexp.MustCompile(`^(/[A-Za-z0-9_~-]+)+$`)
)

// Validate checks the settings that provisioning did not; each error
// names its setting.
func (h *Handler) Validate() error {
	for _, d := range []struct {
		setting string
		v       caddy.Duration
	}{{"notify_timeout", h.NotifyTimeout}, {"barcode_poll", h.BarcodePoll}, {"barcode_wait", h.BarcodeWait}} {
		if d.v < 0 {
			return configError(d.setting, fmt.Errorf("%v: must be positive", time.Duration(d.v)))
		}
	}
	if poll, wait := cmp.Or(time.Duration(h.BarcodePoll), protocol.DefaultBarcodePoll), cmp.Or(time.Duration(h.BarcodeWait), protocol.DefaultBarcodeWait); poll > wait {
		return configError("barcode_poll", fmt.Errorf("%v is longer than barcode_wait (%v): the trade would never be queried", poll, wait))
	}
	if h.NotifyAck != "" && h.NotifyAck != notifyAckSuccess && h.NotifyAck != notifyAckStatus {
		return configError("notify_ack", fmt.Errorf("%q: want success or status", h.NotifyAck))
	}
	if !prefixRE.MatchString(h.Prefix) || len(h.router.prefix) > maxPrefixSegments {
		return configError("prefix", fmt.Errorf("%q must be a path like /alipay: at most %d segments of letters, digits, -, _ and ~", h.Prefix, maxPrefixSegments))
	}
	for _, u := range []struct{ setting, value string }{{"notify_url", h.NotifyURL}, {"return_url", h.ReturnURL}} {
		if u.value == "" {
			continue
		}
		if err := protocol.CheckCallbackURL(u.value); err != nil {
			return configError(u.setting, err)
		}
	}
	for _, m := range h.APIMethods {
		if !apiMethodRE.MatchString(m) {
			return configError("api_methods", fmt.Errorf("%q is not an OpenAPI method name like alipay.trade.query", m))
		}
	}
	endpoints := newRouter(h.Prefix)
	for _, p := range []struct {
		setting, value string
		own            endpoint
	}{{"forward_notify", h.ForwardNotify, endpointNotify}, {"forward_return", h.ForwardReturn, endpointReturn}} {
		if p.value == "" {
			continue
		}
		if !strings.HasPrefix(p.value, "/") || strings.ContainsAny(p.value, "?#") || len(pathSegments(p.value)) == 0 {
			return configError(p.setting, fmt.Errorf("%q must be a path below / without a query", p.value))
		}
		// Requests for the path are refused, so it must not be the path
		// of another endpoint.
		if ep, _ := endpoints.match(p.value); ep != notAnEndpoint && ep != p.own {
			return configError(p.setting, fmt.Errorf("%q is the path of another of the handler's endpoints under %s", p.value, h.Prefix))
		}
	}
	return nil
}

// Interface guards.
var (
	_ caddy.Provisioner           = (*Handler)(nil)
	_ caddy.Validator             = (*Handler)(nil)
	_ caddyhttp.MiddlewareHandler = (*Handler)(nil)
)
