package alipay

import (
	"errors"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"

	"github.com/caddy-alipay/caddy-alipay/internal/caddyconf"
	"github.com/caddy-alipay/caddy-alipay/internal/protocol"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

// site is what the handler learns, on the first request, of where it sits
// in its server's routes: whether every request that reaches it has passed
// a host matcher (the site's own host names), and whether a route with
// another matcher stands between the server and the handler (so that
// requests that the route does not match reach the shop unstripped).
type site struct {
	once sync.Once
	// hostBound: a request's Host is one that the operator configured,
	// since the request matched a host matcher on the way here.
	hostBound bool
}

// check finds h in the routes of the request's server, once.
func (s *site) check(r *http.Request, h *Handler) {
	s.once.Do(func() {
		srv, _ := r.Context().Value(caddyhttp.ServerCtxKey).(*caddyhttp.Server)
		if srv == nil {
			return
		}
		found, bound, scoped := caddyconf.Locate(srv.Routes, h)
		s.hostBound = found && bound
		if scoped {
			h.logger.Warn("alipay runs inside a route with a matcher: requests that the route does not match reach the upstream with any X-Alipay-* headers the client sent; put alipay at the top of the site block and give the matcher to alipay itself")
		}
	})
}

// Why a callback URL cannot be built from the request.
var (
	errHostNotConfigured = errors.New("notify_url and return_url are needed: this site answers any host name, and the merchant key must not sign callback URLs on a host that a client chose")
	errBadHost           = errors.New("the request's Host is empty or malformed")
	errHostPort          = errors.New("notify_url and return_url are needed: the request's Host names a port that Caddy does not listen on here (a port-mapping proxy in front?)")
)

// callbackURL is the configured URL or, when there is none, the one for
// path on the site's own host: only a host that a host matcher admitted,
// and only the port that the request came in on.
func (h *Handler) callbackURL(r *http.Request, configured, path string) (string, error) {
	if configured != "" {
		return configured, nil
	}
	if !h.site.hostBound {
		return "", errHostNotConfigured
	}
	host, port, err := splitRequestHost(r.Host)
	if err != nil {
		return "", err
	}
	if port != "" {
		if local, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr); ok {
			if _, lport, err := net.SplitHostPort(local.String()); err == nil && lport != port {
				return "", errHostPort
			}
		}
		host = net.JoinHostPort(host, port)
	} else if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + host + path, nil
}

// splitRequestHost splits a Host header into a lower-case host name (or
// IP address) and a port, refusing anything else.
func splitRequestHost(hostport string) (host, port string, err error) {
	host = hostport
	if i := strings.LastIndexByte(hostport, ':'); i >= 0 && !strings.HasSuffix(hostport, "]") {
		host, port = hostport[:i], hostport[i+1:]
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 || port[0] == '0' {
			return "", "", errBadHost
		}
	}
	if strings.HasPrefix(host, "[") && strings.HasSuffix(host, "]") {
		ip := net.ParseIP(host[1 : len(host)-1])
		if ip == nil || ip.To4() != nil {
			return "", "", errBadHost
		}
		return ip.String(), port, nil
	}
	host = strings.ToLower(host)
	if !protocol.ValidHostName(host) {
		return "", "", errBadHost
	}
	return host, port, nil
}
