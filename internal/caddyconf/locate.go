package caddyconf

import "github.com/caddyserver/caddy/v2/modules/caddyhttp"

// Locate finds h among a server's routes and the subroutes of their
// handlers. hostBound reports whether each matcher set of some route on
// the way to h has a host matcher, so that every request reaching h has
// a Host that the operator configured; scoped, whether some route on the
// way has another matcher, so that requests it does not match never
// reach h.
func Locate(routes caddyhttp.RouteList, h caddyhttp.MiddlewareHandler) (found, hostBound, scoped bool) {
	return locate(routes, h, false, false)
}

func locate(routes caddyhttp.RouteList, h caddyhttp.MiddlewareHandler, bound, scoped bool) (found, isBound, isScoped bool) {
	for _, rt := range routes {
		b, s := bound, scoped
		if len(rt.MatcherSets) > 0 {
			allHost := true
			for _, set := range rt.MatcherSets {
				hasHost := false
				for _, m := range set {
					if _, ok := m.(*caddyhttp.MatchHost); ok {
						hasHost = true
					} else {
						s = true
					}
				}
				allHost = allHost && hasHost
			}
			b = b || allHost
		}
		for _, hd := range rt.Handlers {
			if hd == h {
				return true, b, s
			}
			if sr, ok := hd.(*caddyhttp.Subroute); ok {
				if f, fb, fs := locate(sr.Routes, h, b, s); f {
					return f, fb, fs
				}
			}
		}
	}
	return false, false, false
}
