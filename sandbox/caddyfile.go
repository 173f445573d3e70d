package sandbox

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/caddy-alipay/caddy-alipay/internal/caddyconf"
	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

func init() {
	httpcaddyfile.RegisterHandlerDirective("alipay_sandbox", parseCaddyfile)
	// It answers requests itself, like respond.
	httpcaddyfile.RegisterDirectiveOrder("alipay_sandbox", httpcaddyfile.Before, "respond")
}

func parseCaddyfile(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
	var s Handler
	err := s.UnmarshalCaddyfile(h.Dispenser)
	return &s, err
}

// UnmarshalCaddyfile sets up the sandbox from Caddyfile tokens. With
// partner and md5_key, app_public_key and alipay_private_key are
// optional: without them only the legacy gateway is played; with them
// legacy requests may also be signed with sign_type RSA. Syntax:
//
//	alipay_sandbox [<matcher>] {
//	    app_public_key      <file or inline key>
//	    alipay_private_key  <file or inline key>
//	    partner             <2088 and 12 digits>   # also the legacy gateway (即时到账)
//	    md5_key             <file or the key>      # legacy: required with partner
//	    notify_retry        <durations...>
//	    encrypt_key         <base64 of 16 bytes>   # AES content encryption of API calls
//	    certificates        <directory>
//	    callback_hosts      <host...>
//	    max_trades          <n>
//	}
func (h *Handler) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	return caddyconf.UnmarshalBlock(d, h.stringSettings(), map[string]func([]string) error{
		"notify_retry": func(args []string) error {
			if len(args) == 0 {
				return errors.New("notify_retry takes one or more durations")
			}
			for _, a := range args {
				dur, err := caddy.ParseDuration(a)
				if err != nil {
					return fmt.Errorf("notify_retry: %v", err)
				}
				h.NotifyRetry = append(h.NotifyRetry, caddy.Duration(dur))
			}
			return nil
		},
		"callback_hosts": func(args []string) error {
			if len(args) == 0 {
				return errors.New("callback_hosts takes one or more host names")
			}
			h.CallbackHosts = args
			return nil
		},
		"max_trades": func(args []string) error {
			n, err := strconv.Atoi(strings.Join(args, " "))
			if len(args) != 1 || err != nil || n < 1 {
				return errors.New("max_trades takes one positive number")
			}
			h.MaxTrades = n
			return nil
		},
	})
}

// stringSettings are the sandbox's string settings, by the name that the
// Caddyfile and JSON share: the Caddyfile parser reads each as one
// argument, and Provision resolves the placeholders in each.
func (h *Handler) stringSettings() []caddyconf.StringSetting {
	return []caddyconf.StringSetting{
		{Name: "app_public_key", Field: &h.AppPublicKey},
		{Name: "alipay_private_key", Field: &h.AlipayPrivateKey},
		{Name: "partner", Field: &h.Partner},
		{Name: "md5_key", Field: &h.MD5Key},
		{Name: "encrypt_key", Field: &h.EncryptKey},
		{Name: "certificates", Field: &h.Certificates},
	}
}

// Interface guards.
var _ caddyfile.Unmarshaler = (*Handler)(nil)
