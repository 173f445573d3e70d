package alipay

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/caddyserver/caddy/v2"
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

	httpcaddyfile.RegisterHandlerDirective("alipay_sandbox", parseSandboxCaddyfile)
	// It answers requests itself, like respond.
	httpcaddyfile.RegisterDirectiveOrder("alipay_sandbox", httpcaddyfile.Before, "respond")
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
	return unmarshalBlock(d, map[string]*string{
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

// unmarshalBlock parses a directive with no inline arguments and a block
// of subdirectives, each given at most once: those in one take exactly
// one argument, stored as it is; those in many get all their arguments.
// Anything else is an error, never ignored.
func unmarshalBlock(d *caddyfile.Dispenser, one map[string]*string, many map[string]func(args []string) error) error {
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
		if dst, ok := one[name]; ok {
			if len(args) != 1 {
				return d.Errf("%s takes exactly one argument", name)
			}
			*dst = args[0]
			continue
		}
		f, ok := many[name]
		if !ok {
			return d.Errf("unrecognized subdirective %q", name)
		}
		if err := f(args); err != nil {
			return d.Err(err.Error())
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
//	    callback_hosts      <host...>
//	    max_trades          <n>
//	}
func (s *Sandbox) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	return unmarshalBlock(d, map[string]*string{
		"app_public_key":     &s.AppPublicKey,
		"alipay_private_key": &s.AlipayPrivateKey,
		"certificates":       &s.Certificates,
	}, map[string]func([]string) error{
		"notify_retry": func(args []string) error {
			if len(args) == 0 {
				return errors.New("notify_retry takes one or more durations")
			}
			for _, a := range args {
				dur, err := caddy.ParseDuration(a)
				if err != nil {
					return fmt.Errorf("notify_retry: %v", err)
				}
				s.NotifyRetry = append(s.NotifyRetry, caddy.Duration(dur))
			}
			return nil
		},
		"callback_hosts": func(args []string) error {
			if len(args) == 0 {
				return errors.New("callback_hosts takes one or more host names")
			}
			s.CallbackHosts = args
			return nil
		},
		"max_trades": func(args []string) error {
			n, err := strconv.Atoi(strings.Join(args, " "))
			if len(args) != 1 || err != nil || n < 1 {
				return errors.New("max_trades takes one positive number")
			}
			s.MaxTrades = n
			return nil
		},
	})
}

// Interface guards.
var (
	_ caddyfile.Unmarshaler = (*Handler)(nil)
	_ caddyfile.Unmarshaler = (*Sandbox)(nil)
)
