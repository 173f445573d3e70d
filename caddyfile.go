package alipay

import (
	"errors"

	"github.com/caddy-alipay/caddy-alipay/internal/caddyconf"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

func init() {
	httpcaddyfile.RegisterDirective("alipay", parseCaddyfile)
	// Before try_files, so that a PHP site's blanket rewrite to index.php
	// cannot hide {prefix}/pay, /notify and /return, and before every
	// auth and proxy directive, so that Alipay reaches /notify and every
	// request is stripped of X-Alipay-* headers first.
	httpcaddyfile.RegisterDirectiveOrder("alipay", httpcaddyfile.Before, "try_files")
}

// parseCaddyfile sets up the alipay directive. Its matcher, if any, goes
// into the handler rather than onto its route, so that it limits the
// endpoints and never the stripping of X-Alipay-* headers: a route with a
// matcher would pass every other request on untouched.
func parseCaddyfile(h httpcaddyfile.Helper) ([]httpcaddyfile.ConfigValue, error) {
	if !h.Next() {
		return nil, h.ArgErr()
	}
	matcherSet, err := h.ExtractMatcherSet()
	if err != nil {
		return nil, err
	}
	var m Handler
	if err := m.UnmarshalCaddyfile(h.Dispenser); err != nil {
		return nil, err
	}
	if matcherSet != nil {
		m.MatcherSetsRaw = caddyhttp.RawMatcherSets{matcherSet}
	}
	return h.NewRoute(nil, &m), nil
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
	return caddyconf.UnmarshalBlock(d, map[string]*string{
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
	}, map[string]func([]string) error{
		"api_methods": func(args []string) error {
			if len(args) == 0 {
				return errors.New("api_methods takes one or more method names")
			}
			h.APIMethods = args
			return nil
		},
		"query_on_return": func(args []string) error {
			switch {
			case len(args) == 0, len(args) == 1 && args[0] == "on":
				h.QueryOnReturn = true
			case len(args) == 1 && args[0] == "off":
				h.QueryOnReturn = false
			default:
				return errors.New("query_on_return takes on or off")
			}
			return nil
		},
	})
}

// Interface guards.
var (
	_ caddyfile.Unmarshaler = (*Handler)(nil)
)
