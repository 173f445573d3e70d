// Package alipay is a Caddy HTTP handler that takes Alipay payments for
// the site behind it: it signs the page-pay redirect from an order that
// the shop signed, verifies Alipay's return and notify callbacks, and hands
// each verified result to the shop as an HS256 JWT in X-Alipay-Token. The
// shop never holds the RSA private key.
package alipay

import (
	"crypto/rsa"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"
)

func init() {
	caddy.RegisterModule(Handler{})
}

// Gateways that the gateway setting names.
const (
	GatewayProduction = "https://openapi.alipay.com/gateway.do"
	GatewaySandbox    = "https://openapi-sandbox.dl.alipaydev.com/gateway.do"
)

// Handler is the alipay sidecar. It serves {prefix}/pay, {prefix}/notify
// and {prefix}/return, passes every other request on, and removes every
// client-sent X-Alipay-* header from all requests it sees.
//
// Settings that hold keys or secrets accept {env.*} and {file.*}
// placeholders, resolved once when the config loads.
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

	// Certificate mode (公钥证书模式): the app's certificate
	// (appCertPublicKey_<app_id>.crt), Alipay's
	// (alipayCertPublicKey_RSA2.crt) and Alipay's root
	// (alipayRootCert.crt), each a file path or inline PEM. All three or
	// none; with them, alipay_public_key is not used: Alipay's key comes
	// from alipay_cert, and every request carries app_cert_sn and
	// alipay_root_cert_sn.
	AppCert        string `json:"app_cert,omitempty"`
	AlipayCert     string `json:"alipay_cert,omitempty"`
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

	// Limits the endpoints to the requests that these matcher sets match
	// (the Caddyfile's "alipay <matcher>" puts its matcher here, not on
	// the handler's route). Every request is still stripped of X-Alipay-*
	// headers, and a request for an endpoint's path that the matchers do
	// not match is refused with 404, never passed on. Default: all.
	MatcherSetsRaw caddyhttp.RawMatcherSets `json:"match,omitempty" caddy:"namespace=http.matchers"`

	matchers   caddyhttp.MatcherSets
	router     router
	site       *site
	signer     Signer
	verifier   Verifier
	tokens     *TokenKey
	gatewayURL string
	notifyPath string
	returnPath string
	apiClient  *http.Client
	apiTimeout time.Duration
	logger     *zap.Logger
	metrics    *eventMetrics

	// Certificate mode: the serial numbers that requests carry, and the
	// one Alipay's responses must name. Empty otherwise.
	appCertSN, rootCertSN, alipayCertSN string

	// The keys' public halves, kept between Provision and Validate.
	appPublic    *rsa.PublicKey
	alipayPublic *rsa.PublicKey
}

// CaddyModule returns the Caddy module information.
func (Handler) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.alipay",
		New: func() caddy.Module { return new(Handler) },
	}
}

// configError names the setting that is wrong, as it is spelled in both
// the Caddyfile and JSON.
func configError(setting string, err error) error {
	return fmt.Errorf("%s: %w", setting, err)
}

// Provision resolves placeholders, applies defaults and parses the keys,
// once for the life of the config.
func (h *Handler) Provision(ctx caddy.Context) error {
	h.logger = ctx.Logger()
	repl := caddy.NewReplacer()
	for _, f := range []*string{&h.AppID, &h.AppPrivateKey, &h.AlipayPublicKey, &h.Secret,
		&h.SignType, &h.Gateway, &h.Prefix, &h.NotifyURL, &h.ReturnURL, &h.SellerID,
		&h.ForwardNotify, &h.ForwardReturn, &h.AppCert, &h.AlipayCert, &h.AlipayRootCert} {
		*f = strings.TrimSpace(repl.ReplaceKnown(*f, ""))
	}
	if h.SignType == "" {
		h.SignType = SignTypeRSA2
	}
	if h.Prefix == "" {
		h.Prefix = "/alipay"
	}
	h.Prefix = strings.TrimRight(h.Prefix, "/")
	h.router = newRouter(h.Prefix)
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
	if len(h.APIMethods) == 0 {
		h.APIMethods = DefaultAPIMethods
	}
	h.apiTimeout = defaultAPITimeout
	// No redirects: the gateway answers, or the call failed.
	h.apiClient = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

	switch h.Gateway {
	case "", "production":
		h.gatewayURL = GatewayProduction
	case "sandbox":
		h.gatewayURL = GatewaySandbox
	default:
		h.gatewayURL = h.Gateway
	}

	if h.SignType != SignTypeRSA2 && h.SignType != SignTypeRSA {
		return configError("sign_type", fmt.Errorf("%q: want RSA2 or RSA", h.SignType))
	}
	var err error
	if h.tokens, err = NewTokenKey(h.Secret); err != nil {
		if h.Secret == "" {
			return configError("secret", errors.New("required (an unset environment variable?)"))
		}
		return configError("secret", err)
	}

	material, err := keyMaterial(h.AppPrivateKey)
	if err != nil {
		return configError("app_private_key", err)
	}
	appKey, err := ParsePrivateKey(material)
	if err != nil {
		return configError("app_private_key", err)
	}
	if h.signer, err = NewRSASigner(appKey, h.SignType); err != nil {
		return configError("sign_type", err)
	}
	h.appPublic = &appKey.PublicKey

	if h.AppCert != "" || h.AlipayCert != "" || h.AlipayRootCert != "" {
		if err := h.provisionCerts(); err != nil {
			return err
		}
	} else {
		material, err = keyMaterial(h.AlipayPublicKey)
		if err != nil {
			return configError("alipay_public_key", err)
		}
		if h.alipayPublic, err = ParsePublicKey(material); err != nil {
			return configError("alipay_public_key", err)
		}
	}
	if h.verifier, err = NewRSAVerifier(h.alipayPublic, h.SignType); err != nil {
		return configError("sign_type", err)
	}

	if h.metrics, err = newEventMetrics(ctx.GetMetricsRegistry()); err != nil {
		return err
	}
	return nil
}

// provisionCerts reads the three certificates of certificate mode: the
// serial numbers, and Alipay's public key from alipay_cert.
func (h *Handler) provisionCerts() error {
	if h.AlipayPublicKey != "" {
		return configError("alipay_public_key", errors.New("not used in certificate mode: Alipay's key comes from alipay_cert; remove one"))
	}
	certs := map[string]*x509.Certificate{}
	for _, c := range []struct{ setting, value string }{{"app_cert", h.AppCert}, {"alipay_cert", h.AlipayCert}} {
		if c.value == "" {
			return configError(c.setting, errors.New("required in certificate mode (app_cert, alipay_cert and alipay_root_cert go together)"))
		}
		material, err := keyMaterial(c.value)
		if err != nil {
			return configError(c.setting, err)
		}
		cert, err := ParseCertificate(material)
		if err != nil {
			return configError(c.setting, err)
		}
		certs[c.setting] = cert
	}
	if h.AlipayRootCert == "" {
		return configError("alipay_root_cert", errors.New("required in certificate mode (app_cert, alipay_cert and alipay_root_cert go together)"))
	}
	material, err := keyMaterial(h.AlipayRootCert)
	if err != nil {
		return configError("alipay_root_cert", err)
	}
	if h.rootCertSN, err = RootCertSN(material); err != nil {
		return configError("alipay_root_cert", err)
	}
	if h.appCertSN, err = CertSN(certs["app_cert"]); err != nil {
		return configError("app_cert", err)
	}
	if h.alipayCertSN, err = CertSN(certs["alipay_cert"]); err != nil {
		return configError("alipay_cert", err)
	}
	appKey, ok := certs["app_cert"].PublicKey.(*rsa.PublicKey)
	if !ok || !appKey.Equal(h.appPublic) {
		return configError("app_cert", errors.New("does not certify the public key of app_private_key"))
	}
	if h.alipayPublic, ok = certs["alipay_cert"].PublicKey.(*rsa.PublicKey); !ok {
		return configError("alipay_cert", errors.New("does not hold an RSA key"))
	}
	return nil
}

var (
	appIDRE     = regexp.MustCompile(`^[0-9]{1,32}$`)
	sellerIDRE  = regexp.MustCompile(`^2088[0-9]{12}$`)
	apiMethodRE = regexp.MustCompile(`^alipay(\.[a-z0-9_]+)+$`)
	prefixRE    = regexp.MustCompile(`^(/[A-Za-z0-9_~-]+)+$`)
)

// Validate checks the provisioned settings; each error names its setting.
func (h *Handler) Validate() error {
	if h.AppID == "" {
		return configError("app_id", errors.New("required"))
	}
	if !appIDRE.MatchString(h.AppID) {
		return configError("app_id", fmt.Errorf("%q is not an Alipay APPID (digits)", h.AppID))
	}
	for _, k := range []struct {
		setting string
		key     *rsa.PublicKey
	}{{"app_private_key", h.appPublic}, {"alipay_public_key", h.alipayPublic}} {
		bits := k.key.N.BitLen()
		switch {
		case bits >= 2048:
		case bits >= 1024 && h.SignType == SignTypeRSA:
			h.logger.Warn("legacy 1024-bit RSA key: move the app to RSA2 with a 2048-bit key",
				zap.String("setting", k.setting))
		default:
			return configError(k.setting, fmt.Errorf("a %d-bit key is too short: 2048 bits at least (1024 only with sign_type RSA)", bits))
		}
	}
	if h.alipayPublic.Equal(h.appPublic) {
		if h.alipayCertSN != "" {
			return configError("alipay_cert", errors.New("certifies the app's own key, not Alipay's"))
		}
		return configError("alipay_public_key", errors.New("this is the app's own public key; use the Alipay public key that the open platform shows for the app"))
	}
	if err := checkGateway(h.gatewayURL); err != nil {
		return configError("gateway", err)
	}
	if !prefixRE.MatchString(h.Prefix) || len(h.router.prefix) > maxPrefixSegments {
		return configError("prefix", fmt.Errorf("%q must be a path like /alipay: at most %d segments of letters, digits, -, _ and ~", h.Prefix, maxPrefixSegments))
	}
	for _, u := range []struct{ setting, value string }{{"notify_url", h.NotifyURL}, {"return_url", h.ReturnURL}} {
		if u.value == "" {
			continue
		}
		if err := checkCallbackURL(u.value); err != nil {
			return configError(u.setting, err)
		}
	}
	if h.SellerID != "" && !sellerIDRE.MatchString(h.SellerID) {
		return configError("seller_id", fmt.Errorf("%q is not an Alipay seller id (2088 and 12 digits)", h.SellerID))
	}
	for _, m := range h.APIMethods {
		if !apiMethodRE.MatchString(m) {
			return configError("api_methods", fmt.Errorf("%q is not an OpenAPI method name like alipay.trade.query", m))
		}
	}
	for _, p := range []struct{ setting, value string }{{"forward_notify", h.ForwardNotify}, {"forward_return", h.ForwardReturn}} {
		if p.value != "" && (!strings.HasPrefix(p.value, "/") || strings.ContainsAny(p.value, "?#")) {
			return configError(p.setting, fmt.Errorf("%q must be a path starting with / and without a query", p.value))
		}
	}
	return nil
}

// checkGateway accepts https URLs, and http ones on loopback only.
func checkGateway(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("%q: %w", raw, err)
	}
	if u.Host == "" || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return fmt.Errorf("%q must be production, sandbox or an absolute URL without a query", raw)
	}
	switch u.Scheme {
	case "https":
		return nil
	case "http":
		if isLoopback(u.Hostname()) {
			return nil
		}
		return fmt.Errorf("%q: plain http is allowed only for a loopback host (a local alipay_sandbox)", raw)
	}
	return fmt.Errorf("%q: scheme must be https", raw)
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// checkCallbackURL accepts absolute http(s) URLs without a query: Alipay
// would not sign extra query parameters.
func checkCallbackURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("%q: %w", raw, err)
	}
	if (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return fmt.Errorf("%q must be an absolute http(s) URL", raw)
	}
	if u.RawQuery != "" || u.ForceQuery || u.Fragment != "" {
		return fmt.Errorf("%q must have no query or fragment: Alipay does not sign extra parameters", raw)
	}
	return nil
}

// Interface guards.
var (
	_ caddy.Provisioner           = (*Handler)(nil)
	_ caddy.Validator             = (*Handler)(nil)
	_ caddyhttp.MiddlewareHandler = (*Handler)(nil)
)
