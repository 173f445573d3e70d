package alipay

import (
	"io"
	"net/http"
	"time"

	"github.com/caddy-alipay/caddy-alipay/internal/protocol"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"
)

// TokenHeader is the request header that carries a verified callback to
// the upstream.
const TokenHeader = "X-Alipay-Token"

// AckHeader is the response header by which the upstream may acknowledge
// a notification, with the token's jti as its value, instead of
// answering the body success.
const AckHeader = "X-Alipay-Ack"

// TokenIssuer is the iss claim of every X-Alipay-Token.
const TokenIssuer = protocol.TokenIssuer

// CallbackClaims are the claims of an X-Alipay-Token, for Go upstreams to
// decode into: iss, aud (the app id, or the legacy partner id), iat, exp,
// jti (the notify_id; a random id for a return), event ("notify" or
// "return"), protocol ("legacy", or absent), trade_status (with
// query_on_return) and params (the callback's signed fields, as UTF-8).
type CallbackClaims = protocol.CallbackClaims

// now is the clock; tests replace it.
var now = time.Now

// ServeHTTP implements caddyhttp.MiddlewareHandler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	// Strip first, on every request: the upstream must only ever see a
	// token that this handler made.
	stripAlipayHeaders(r.Header)
	stripAlipayTrailers(r)
	h.site.check(r, h)
	ep, method := h.route(r)
	if ep == notAnEndpoint {
		return next.ServeHTTP(w, r)
	}
	if ep == endpointForward {
		// Only the handler's own forward of a verified callback may reach
		// the shop's callback view.
		h.logger.Warn("refused: the path is the one that verified callbacks are forwarded to (forward_notify, forward_return); only the sidecar's own forward may reach it",
			zap.String("path", r.URL.Path))
		http.Error(w, "not found", http.StatusNotFound)
		return nil
	}
	if h.matchers != nil {
		matched, err := h.matchers.AnyMatchWithError(r)
		if err != nil {
			return caddyhttp.Error(http.StatusInternalServerError, err)
		}
		if !matched {
			// Passing it on would let a forged callback reach the shop
			// on a path that the shop may route to its Alipay view.
			h.logger.Warn("refused: the path is one of the endpoints, but the alipay matcher does not match the request",
				zap.String("path", r.URL.Path))
			http.Error(w, "not found", http.StatusNotFound)
			return nil
		}
	}
	switch ep {
	case endpointPay:
		return h.servePay(w, r)
	case endpointNotify:
		return h.serveNotify(w, r, next)
	case endpointReturn:
		return h.serveReturn(w, r, next)
	case endpointRefund:
		return h.serveRefund(w, r)
	default:
		return h.serveAPI(w, r, method)
	}
}

// route tells which endpoint r is for: its path's, or else the one that
// an X-Original-URL or X-Rewrite-URL header names, since a shop behind
// IIS's URL Rewrite or a PHP framework that reads them routes by that
// header. A request served for a header's path is treated as one for
// that path, and the headers never travel on with a callback.
func (h *Handler) route(r *http.Request) (endpoint, string) {
	if ep, method := h.router.match(r.URL.Path); ep != notAnEndpoint {
		return ep, method
	}
	for _, name := range rewriteHeaders {
		for _, v := range r.Header.Values(name) {
			p := headerPath(v)
			if ep, method := h.router.match(p); ep != notAnEndpoint {
				r.URL.Path, r.URL.RawPath = p, ""
				return ep, method
			}
		}
	}
	return notAnEndpoint, ""
}

// stripAlipayHeaders deletes every header that a CGI or PHP upstream would
// read as X-Alipay-*: the name compared case-insensitively, with any
// character but a letter or digit standing for - (CGI gateways such as
// lighttpd's and Apache 2.2's turn each into _). It allocates nothing.
func stripAlipayHeaders(hdr http.Header) {
	for name := range hdr {
		if isAlipayHeader(name) {
			delete(hdr, name)
		}
	}
}

// stripAlipayTrailers strips a request's X-Alipay-* trailers. net/http
// fills in the values of the trailers that a chunked request declared only
// when its body is read to the end, which happens after this handler ran,
// while reverse_proxy sends the body on (and then forwards those
// trailers); so they are stripped again at the end of the body. Trailers
// that a request did not declare land in net/http's own copy of the
// request, which neither handlers nor reverse_proxy read.
func stripAlipayTrailers(r *http.Request) {
	if r.Trailer == nil {
		return
	}
	stripAlipayHeaders(r.Trailer)
	if r.Body != nil && r.Body != http.NoBody {
		r.Body = &trailerStripper{ReadCloser: r.Body, trailer: r.Trailer}
	}
}

// trailerStripper strips X-Alipay-* trailers once the body has been read
// to its end (or failed), when net/http has filled them in.
type trailerStripper struct {
	io.ReadCloser
	trailer http.Header
}

func (t *trailerStripper) Read(p []byte) (int, error) {
	n, err := t.ReadCloser.Read(p)
	if err != nil {
		stripAlipayHeaders(t.trailer)
	}
	return n, err
}

func isAlipayHeader(name string) bool {
	const prefix = "x-alipay-"
	if len(name) < len(prefix) {
		return false
	}
	for i := 0; i < len(prefix); i++ {
		c := name[i]
		switch {
		case c >= 'A' && c <= 'Z':
			c += 'a' - 'A'
		case !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9'):
			c = '-'
		}
		if c != prefix[i] {
			return false
		}
	}
	return true
}
