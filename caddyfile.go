package alipay

import (
	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

func init() {
	httpcaddyfile.RegisterHandlerDirective("alipay", parseCaddyfile)
	// Before try_files, so that a PHP site's blanket rewrite to index.php
	// cannot hide {prefix}/pay, /notify and /return, and before every
	// auth and proxy directive, so that Alipay reaches /notify and every
	// request is stripped of X-Alipay-* headers first.
	httpcaddyfile.RegisterDirectiveOrder("alipay", httpcaddyfile.Before, "try_files")

	httpcaddyfile.RegisterHandlerDirective("alipay_sandbox", parseSandboxCaddyfile)
	// It answers requests itself, like respond.
	httpcaddyfile.RegisterDirectiveOrder("alipay_sandbox", httpcaddyfile.Before, "respond")
}

func parseCaddyfile(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
	var m Handler
	err := m.UnmarshalCaddyfile(h.Dispenser)
	return &m, err
}

// UnmarshalCaddyfile sets up the handler from Caddyfile tokens. Syntax:
//
//	alipay [<matcher>] {
//	    app_id             <app id>
//	    app_private_key    <file or inline key>
//	    alipay_public_key  <file or inline key>
//	    secret             <shared secret, at least 32 bytes>
//	    sign_type          RSA2 | RSA
//	    gateway            production | sandbox | <URL>
//	    prefix             /alipay
//	    notify_url         <absolute URL>
//	    return_url         <absolute URL>
//	    seller_id          <2088...>
//	    forward_notify     <path>
//	    forward_return     <path>
//	    api_methods        <method...>
//	    query_on_return    [on|off]
//	    app_cert           <file or inline PEM>
//	    alipay_cert        <file or inline PEM>
//	    alipay_root_cert   <file or inline PEM>
//	}
//
// Each subdirective may appear once; all but api_methods and
// query_on_return take exactly one argument.
func (h *Handler) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // the directive name
	if d.NextArg() {
		return d.ArgErr()
	}
	settings := map[string]*string{
		"app_id":            &h.AppID,
		"app_private_key":   &h.AppPrivateKey,
		"alipay_public_key": &h.AlipayPublicKey,
		"secret":            &h.Secret,
		"sign_type":         &h.SignType,
		"gateway":           &h.Gateway,
		"prefix":            &h.Prefix,
		"notify_url":        &h.NotifyURL,
		"return_url":        &h.ReturnURL,
		"seller_id":         &h.SellerID,
		"forward_notify":    &h.ForwardNotify,
		"forward_return":    &h.ForwardReturn,
		"app_cert":          &h.AppCert,
		"alipay_cert":       &h.AlipayCert,
		"alipay_root_cert":  &h.AlipayRootCert,
	}
	seen := make(map[string]bool)
	for d.NextBlock(0) {
		name := d.Val()
		if seen[name] {
			return d.Errf("subdirective %q given more than once", name)
		}
		seen[name] = true
		switch name {
		case "api_methods":
			h.APIMethods = d.RemainingArgs()
			if len(h.APIMethods) == 0 {
				return d.Errf("api_methods takes one or more method names")
			}
			continue
		case "query_on_return":
			args := d.RemainingArgs()
			switch {
			case len(args) == 0, len(args) == 1 && args[0] == "on":
				h.QueryOnReturn = true
			case len(args) == 1 && args[0] == "off":
				h.QueryOnReturn = false
			default:
				return d.Errf("query_on_return takes on or off")
			}
			continue
		}
		dst, ok := settings[name]
		if !ok {
			return d.Errf("unrecognized subdirective %q", name)
		}
		if !d.NextArg() {
			return d.Errf("%s: %v", name, d.ArgErr())
		}
		*dst = d.Val()
		if d.NextArg() {
			return d.Errf("%s takes exactly one argument", name)
		}
	}
	return nil
}

func parseSandboxCaddyfile(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
	var s Sandbox
	err := s.UnmarshalCaddyfile(h.Dispenser)
	return &s, err
}

// UnmarshalCaddyfile sets up the sandbox from Caddyfile tokens. Syntax:
//
//	alipay_sandbox [<matcher>] {
//	    app_public_key      <file or inline key>
//	    alipay_private_key  <file or inline key>
//	    notify_retry        <durations...>
//	    certificates        <directory>
//	}
func (s *Sandbox) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // the directive name
	if d.NextArg() {
		return d.ArgErr()
	}
	seen := make(map[string]bool)
	for d.NextBlock(0) {
		name := d.Val()
		if seen[name] {
			return d.Errf("subdirective %q given more than once", name)
		}
		seen[name] = true
		args := d.RemainingArgs()
		switch name {
		case "app_public_key", "alipay_private_key", "certificates":
			if len(args) != 1 {
				return d.Errf("%s takes exactly one argument", name)
			}
			*map[string]*string{"app_public_key": &s.AppPublicKey, "alipay_private_key": &s.AlipayPrivateKey,
				"certificates": &s.Certificates}[name] = args[0]
		case "notify_retry":
			if len(args) == 0 {
				return d.Errf("notify_retry takes one or more durations")
			}
			for _, a := range args {
				dur, err := caddy.ParseDuration(a)
				if err != nil {
					return d.Errf("notify_retry: %v", err)
				}
				s.NotifyRetry = append(s.NotifyRetry, caddy.Duration(dur))
			}
		default:
			return d.Errf("unrecognized subdirective %q", name)
		}
	}
	return nil
}

// Interface guards.
var (
	_ caddyfile.Unmarshaler = (*Handler)(nil)
	_ caddyfile.Unmarshaler = (*Sandbox)(nil)
)
