package alipay

import (
	"errors"
	"fmt"

	"github.com/caddy-alipay/caddy-alipay/internal/caddyconf"
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
//	    notify_timeout     <duration>
//	    notify_ack         success | status
//	    barcode_poll       <duration>
//	    barcode_wait       <duration>
//	    encrypt_key        <base64 AES key>
//	    api_version        v2 | v3
//	}
//
// or, for the legacy protocol (即时到账), partner in place of app_id:
//
//	alipay [<matcher>] {
//	    partner            <2088...>
//	    md5_key            <file or inline key>
//	    sign_type          MD5 | RSA
//	    input_charset      utf-8 | gbk
//	    seller_id          <2088...>
//	    seller_email       <email>
//	    gateway            production | <URL>
//	    notify_verify      [on|off]
//	    app_private_key, alipay_public_key (sign_type RSA), secret, prefix,
//	    notify_url, return_url, forward_notify, forward_return,
//	    notify_timeout, notify_ack: as above
//	}
//
// Each subdirective may appear once; all but api_methods,
// query_on_return and notify_verify take exactly one argument.
func (h *Handler) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	return caddyconf.UnmarshalBlock(d, h.stringSettings(), map[string]func([]string) error{
		"api_methods": func(args []string) error {
			if len(args) == 0 {
				return errors.New("api_methods takes one or more method names")
			}
			h.APIMethods = args
			return nil
		},
		"query_on_return": func(args []string) (err error) {
			h.QueryOnReturn, err = onOff("query_on_return", args)
			return err
		},
		"notify_timeout": positiveDuration("notify_timeout", &h.NotifyTimeout),
		"barcode_poll":   positiveDuration("barcode_poll", &h.BarcodePoll),
		"barcode_wait":   positiveDuration("barcode_wait", &h.BarcodeWait),
		"notify_verify": func(args []string) error {
			on, err := onOff("notify_verify", args)
			h.NotifyVerify = &on
			return err
		},
	})
}

// Interface guards.
var (
	_ caddyfile.Unmarshaler = (*Handler)(nil)
)

// positiveDuration reads a setting of one positive duration into dst.
func positiveDuration(name string, dst *caddy.Duration) func([]string) error {
	return func(args []string) error {
		if len(args) != 1 {
			return errors.New(name + " takes one duration")
		}
		d, err := caddy.ParseDuration(args[0])
		if err != nil || d <= 0 {
			return fmt.Errorf("%s: %q is not a positive duration", name, args[0])
		}
		*dst = caddy.Duration(d)
		return nil
	}
}

// onOff reads a switch: no argument or on is true, off is false.
func onOff(name string, args []string) (bool, error) {
	switch {
	case len(args) == 0, len(args) == 1 && args[0] == "on":
		return true, nil
	case len(args) == 1 && args[0] == "off":
		return false, nil
	}
	return false, errors.New(name + " takes on or off")
}
