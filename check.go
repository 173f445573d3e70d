package alipay

import (
	"cmp"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/caddy-alipay/caddy-alipay/internal/protocol"
	"github.com/caddyserver/caddy/v2"
	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	"github.com/spf13/cobra"
	"go.uber.org/zap"
)

// caddy alipay-check: what an operator asks first of a payment sidecar,
// "are my keys right?", answered from the config before a buyer finds
// out. It loads the config as caddy validate does, provisions each alipay
// handler in it and reports what the handler will do and every problem
// it can see; --ping asks Alipay itself.

func init() {
	caddycmd.RegisterCommand(caddycmd.Command{
		Name:  "alipay-check",
		Usage: "[--config <path>] [--adapter <name>] [--ping]",
		Short: "Checks the alipay handlers of a config: keys, certificates, URLs and the gateway",
		Long: `
Loads the config as 'caddy validate' does and, for each alipay handler in
it, prints the protocol, the ids, the gateway, the notify and return URLs
that it signs, and what its keys and certificates are (sizes, serial
numbers, expiry, whether app_cert certifies the app's key). Every problem
it sees is one line that names the setting and says what to do: a key in
the wrong slot or too short, a secret too short, a certificate expired or
self-signed, a notify_url on a host that the site does not serve, a
gateway that this machine cannot reach, and the config's own errors.

--ping makes one harmless signed call, a query of an order that does not
exist, and reads Alipay's answer: "trade not found" means that the keys
work; a refused signature names the key that is wrong.

It never prints a key or the secret. The exit status is 0 only when there
is no problem.`,
		CobraFunc: func(cmd *cobra.Command) {
			cmd.Flags().StringP("config", "c", "", "Configuration file")
			cmd.Flags().StringP("adapter", "a", "", "Name of config adapter")
			cmd.Flags().Bool("ping", false, "Make one signed query to Alipay to test the keys")
			cmd.RunE = caddycmd.WrapCommandFuncForCobra(cmdCheck)
		},
	})
}

func cmdCheck(fl caddycmd.Flags) (int, error) {
	configFile := fl.String("config")
	if configFile == "" {
		if _, err := os.Stat("Caddyfile"); err != nil {
			return caddy.ExitCodeFailedStartup, errors.New("no config to check: give --config, or run where the Caddyfile is")
		}
		configFile = "Caddyfile"
	}
	input, _, _, err := caddycmd.LoadConfig(configFile, fl.String("adapter"))
	if err != nil {
		return caddy.ExitCodeFailedStartup, err
	}
	problems, err := checkConfig(context.Background(), caddy.RemoveMetaFields(input), fl.Bool("ping"), os.Stdout)
	if err != nil {
		return caddy.ExitCodeFailedStartup, err
	}
	if problems > 0 {
		return caddy.ExitCodeFailedStartup, fmt.Errorf("%d problem(s) found", problems)
	}
	return caddy.ExitCodeSuccess, nil
}

// checkReachTimeout bounds the check that the gateway can be reached, and
// the ping.
const checkReachTimeout = 10 * time.Second

// checkConfig reports on each alipay handler of the JSON config to out,
// and returns how many problems it found.
func checkConfig(ctx context.Context, config []byte, ping bool, out io.Writer) (int, error) {
	placed, err := findHandlers(config)
	if err != nil {
		return 0, err
	}
	if len(placed) == 0 {
		fmt.Fprintln(out, "problem: the config has no alipay handler")
		return 1, nil
	}
	problems := 0
	provisioned := true
	for i, p := range placed {
		if i > 0 {
			fmt.Fprintln(out)
		}
		r := checkHandler(ctx, p, ping)
		r.print(out)
		problems += len(r.problems)
		provisioned = provisioned && r.provisioned
	}
	if provisioned {
		// The rest of the config, as caddy validate checks it: the
		// handlers above are fine, but a site could still fail to load.
		var cfg *caddy.Config
		if err := caddy.StrictUnmarshalJSON(config, &cfg); err != nil {
			return problems, fmt.Errorf("decoding config: %v", err)
		}
		if err := caddy.Validate(cfg); err != nil {
			fmt.Fprintf(out, "\nproblem: the config does not load: %v\n", err)
			problems++
		}
	}
	if problems == 0 {
		fmt.Fprintln(out, "\nno problems found")
	}
	return problems, nil
}

// A placedHandler is an alipay handler's JSON and where it sits: its
// server and the host names that every request reaching it matched
// (none when the site answers any host).
type placedHandler struct {
	server string
	listen []string
	hosts  []string
	raw    json.RawMessage
}

// findHandlers finds each alipay handler in the HTTP app's routes and
// their subroutes, in order.
func findHandlers(config []byte) ([]placedHandler, error) {
	var cfg struct {
		Apps struct {
			HTTP struct {
				Servers map[string]struct {
					Listen []string          `json:"listen"`
					Routes []json.RawMessage `json:"routes"`
				} `json:"servers"`
			} `json:"http"`
		} `json:"apps"`
	}
	if err := json.Unmarshal(config, &cfg); err != nil {
		return nil, fmt.Errorf("decoding config: %w", err)
	}
	var found []placedHandler
	names := make([]string, 0, len(cfg.Apps.HTTP.Servers))
	for name := range cfg.Apps.HTTP.Servers {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		srv := cfg.Apps.HTTP.Servers[name]
		if err := walkRoutes(srv.Routes, nil, func(raw json.RawMessage, hosts []string) {
			found = append(found, placedHandler{server: name, listen: srv.Listen, hosts: hosts, raw: raw})
		}); err != nil {
			return nil, err
		}
	}
	return found, nil
}

// walkRoutes calls found for each alipay handler in routes, with the
// host names of the innermost route on the way whose every matcher set
// has a host matcher (hosts, the outer ones', otherwise).
func walkRoutes(routes []json.RawMessage, hosts []string, found func(json.RawMessage, []string)) error {
	for _, raw := range routes {
		var rt struct {
			Match  []map[string]json.RawMessage `json:"match"`
			Handle []json.RawMessage            `json:"handle"`
		}
		if err := json.Unmarshal(raw, &rt); err != nil {
			return fmt.Errorf("decoding a route: %w", err)
		}
		here := hosts
		if len(rt.Match) > 0 {
			var all []string
			for _, set := range rt.Match {
				var names []string
				if json.Unmarshal(set["host"], &names) != nil || len(names) == 0 {
					all = nil
					break
				}
				all = append(all, names...)
			}
			if all != nil {
				here = all
			}
		}
		for _, hd := range rt.Handle {
			var h struct {
				Handler string            `json:"handler"`
				Routes  []json.RawMessage `json:"routes"`
			}
			if err := json.Unmarshal(hd, &h); err != nil {
				return fmt.Errorf("decoding a handler: %w", err)
			}
			switch h.Handler {
			case "alipay":
				found(hd, here)
			case "subroute":
				if err := walkRoutes(h.Routes, here, found); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// A checkReport is what alipay-check says of one handler.
type checkReport struct {
	title       string
	facts       [][2]string // setting or subject, and what it is
	problems    []string
	provisioned bool
}

func (r *checkReport) fact(name, format string, args ...any) {
	r.facts = append(r.facts, [2]string{name, fmt.Sprintf(format, args...)})
}

func (r *checkReport) problem(format string, args ...any) {
	r.problems = append(r.problems, fmt.Sprintf(format, args...))
}

func (r *checkReport) print(out io.Writer) {
	fmt.Fprintln(out, r.title)
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	for _, f := range r.facts {
		fmt.Fprintf(tw, "  %s\t%s\n", f[0], f[1])
	}
	_ = tw.Flush()
	for _, p := range r.problems {
		fmt.Fprintln(out, "  problem: "+p)
	}
}

// checkHandler provisions the handler p as Caddy would and reports on it.
func checkHandler(ctx context.Context, p placedHandler, ping bool) *checkReport {
	r := &checkReport{title: "alipay in server " + p.server}
	if len(p.hosts) > 0 {
		r.title += " for " + strings.Join(p.hosts, ", ")
	} else {
		r.title += " for any host"
	}
	if len(p.listen) > 0 {
		r.title += " (listening on " + strings.Join(p.listen, ", ") + ")"
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(p.raw, &fields); err != nil {
		r.problem("the handler's JSON: %v", err)
		return r
	}
	delete(fields, "handler")
	stripped, _ := json.Marshal(fields)
	h := new(Handler)
	if err := caddy.StrictUnmarshalJSON(stripped, h); err != nil {
		r.problem("the handler's JSON: %v", err)
		return r
	}
	cctx, cancel := caddy.NewContext(caddy.Context{Context: ctx})
	defer cancel()
	err := h.provision(cctx, zap.NewNop())
	if err == nil {
		err = h.Validate()
	}
	r.provisioned = err == nil
	for _, e := range joined(err) {
		r.problem("%v", e)
	}
	for _, w := range h.warnings {
		r.problem("%s: %s", w.Setting, w.Message)
	}
	h.reportSettings(r, p.hosts, p.listen)
	if h.protocol == nil {
		// The protocol's settings stop at their first error; the gateway
		// is checked last there, so it is checked here too.
		if g := h.Gateway; g != "" && g != "production" && g != "sandbox" && !slices.ContainsFunc(r.problems, func(p string) bool { return strings.HasPrefix(p, "gateway: ") }) {
			if err := protocol.CheckGateway(g); err != nil {
				r.problem("gateway: %v", err)
			}
		}
		return r
	}
	if err := reachGateway(ctx, h.gatewayURL()); err != nil {
		r.problem("gateway: %s cannot be reached from here (%v): check DNS, the firewall and any outbound proxy (HTTPS_PROXY)", h.gatewayURL(), err)
		return r
	}
	if !ping {
		return r
	}
	if !r.provisioned || len(r.problems) > 0 {
		r.fact("ping", "not made: mend the problems first")
		return r
	}
	verdict, problem := h.ping(ctx)
	r.fact("ping", "%s", verdict)
	if problem != "" {
		r.problem("%s", problem)
	}
	return r
}

// joined is the errors that err joins, or err alone.
func joined(err error) []error {
	if err == nil {
		return nil
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}

// reportSettings adds the handler's settings to r: the protocol and ids,
// the gateway, the callback URLs, keys and certificates; and the
// problems with its callback URLs for a site served on hosts.
func (h *Handler) reportSettings(r *checkReport, hosts, listen []string) {
	legacy := h.Partner != ""
	switch {
	case legacy:
		r.fact("protocol", "legacy 即时到账, sign_type %s, input_charset %s", cmp.Or(h.SignType, protocol.SignTypeMD5), cmp.Or(h.InputCharset, "utf-8"))
		r.fact("partner", "%s", h.Partner)
	default:
		r.fact("protocol", "OpenAPI %s, sign_type %s", cmp.Or(h.APIVersion, "v2"), cmp.Or(h.SignType, protocol.SignTypeRSA2))
		r.fact("app_id", "%s", cmp.Or(h.AppID, "(not set)"))
	}
	if h.SellerID != "" {
		r.fact("seller_id", "%s", h.SellerID)
	}
	if h.protocol != nil {
		r.fact("gateway", "%s", h.gatewayURL())
	} else {
		r.fact("gateway", "%s", cmp.Or(h.Gateway, "production"))
	}
	r.fact("prefix", "%s", h.Prefix)
	for _, u := range []struct{ setting, value, path string }{{"notify_url", h.NotifyURL, h.notifyPath}, {"return_url", h.ReturnURL, h.returnPath}} {
		if u.value != "" {
			r.fact(u.setting, "%s", u.value)
			h.checkCallbackHost(r, u.setting, u.value, u.path, hosts)
			continue
		}
		if len(hosts) == 0 {
			r.fact(u.setting, "not set")
			r.problem("%s: not set, and this site answers any host name, so pay links are refused (421): set notify_url and return_url, or give the site its host name", u.setting)
			continue
		}
		var per []string
		for _, host := range hosts {
			per = append(per, "http(s)://"+withPort(host, listen)+u.path)
		}
		r.fact(u.setting, "from each pay request's host: %s", strings.Join(per, ", "))
	}
	if h.Secret != "" {
		r.fact("secret", "%d bytes", len(h.Secret))
	}
	if legacy && cmp.Or(h.SignType, protocol.SignTypeMD5) == protocol.SignTypeMD5 {
		if h.MD5Key != "" {
			r.fact("md5_key", "set")
		}
		return
	}
	var appKey *rsa.PublicKey
	if k := readPrivateKey(h.AppPrivateKey); k != nil {
		appKey = &k.PublicKey
		r.fact("app_private_key", "RSA %d bits", k.N.BitLen())
	}
	if k := readPublicKey(h.AlipayPublicKey); k != nil {
		r.fact("alipay_public_key", "RSA %d bits", k.N.BitLen())
	}
	for _, c := range []struct{ setting, value string }{{"app_cert", h.AppCert}, {"alipay_cert", h.AlipayCert}} {
		material, err := protocol.KeyMaterial(c.value)
		if c.value == "" || err != nil {
			continue
		}
		cert, err := protocol.ParseCertificate(material)
		if err != nil {
			continue
		}
		sn, _ := protocol.CertSN(cert)
		line := fmt.Sprintf("SN %s, valid %s to %s", sn, cert.NotBefore.UTC().Format(time.DateOnly), cert.NotAfter.UTC().Format(time.DateOnly))
		if k, ok := cert.PublicKey.(*rsa.PublicKey); ok {
			line += fmt.Sprintf(", RSA %d bits", k.N.BitLen())
			if c.setting == "app_cert" && appKey != nil {
				if k.Equal(appKey) {
					line += ", certifies app_private_key's key"
				} else {
					line += ", does NOT certify app_private_key's key"
				}
			}
		}
		r.fact(c.setting, "%s", line)
	}
	if material, err := protocol.KeyMaterial(h.AlipayRootCert); h.AlipayRootCert != "" && err == nil {
		if sn, err := protocol.RootCertSN(material); err == nil {
			r.fact("alipay_root_cert", "SN %s", sn)
		}
	}
	if h.EncryptKey != "" {
		r.fact("encrypt_key", "set")
	}
}

// withPort is host with the port of the server's listen addresses, when
// they have one port and it is not HTTP's or HTTPS's default, as a pay
// request's Host carries it.
func withPort(host string, listen []string) string {
	ports := map[uint]bool{}
	for _, l := range listen {
		if na, err := caddy.ParseNetworkAddress(l); err == nil {
			ports[na.StartPort] = true
		}
	}
	if len(ports) != 1 {
		return host
	}
	for p := range ports {
		if p != 80 && p != 443 && p != 0 {
			return net.JoinHostPort(host, strconv.FormatUint(uint64(p), 10))
		}
	}
	return host
}

// checkCallbackHost adds a problem when a configured callback URL names a
// host that the site does not serve, or a path that is not the handler's
// own endpoint: Alipay would send the callback where no sidecar
// verifies it.
func (h *Handler) checkCallbackHost(r *checkReport, setting, raw, path string, hosts []string) {
	u, err := url.Parse(raw)
	if err != nil {
		return
	}
	if len(hosts) > 0 && !slices.ContainsFunc(hosts, func(pattern string) bool { return hostMatches(pattern, u.Hostname()) }) {
		r.problem("%s: %s is not a host that this site serves (%s): Alipay's callbacks would go elsewhere; use one of them", setting, u.Hostname(), strings.Join(hosts, ", "))
	}
	if u.Path != path {
		r.problem("%s: the path %s is not this handler's %s: Alipay would send the callback past the sidecar, unverified; use %s", setting, u.Path, path, path)
	}
}

// hostMatches reports whether host matches pattern as Caddy's host
// matcher does: exactly, case-insensitively, or by a leading "*." for
// one label.
func hostMatches(pattern, host string) bool {
	pattern, host = strings.ToLower(pattern), strings.ToLower(host)
	if rest, ok := strings.CutPrefix(pattern, "*."); ok {
		label, domain, found := strings.Cut(host, ".")
		return found && label != "" && domain == rest
	}
	return pattern == host
}

func readPrivateKey(value string) *rsa.PrivateKey {
	material, err := protocol.KeyMaterial(value)
	if value == "" || err != nil {
		return nil
	}
	k, _ := protocol.ParsePrivateKey(material)
	return k
}

func readPublicKey(value string) *rsa.PublicKey {
	material, err := protocol.KeyMaterial(value)
	if value == "" || err != nil {
		return nil
	}
	k, _ := protocol.ParsePublicKey(material)
	return k
}

// gatewayURL is the gateway that the provisioned handler calls.
func (h *Handler) gatewayURL() string {
	if l, ok := h.protocol.(*protocol.Legacy); ok {
		return l.Gateway
	}
	return h.client.API.Gateway
}

// reachGateway makes one GET of gateway, which answers whatever it
// answers: any HTTP answer means the machine can reach it (DNS, routes,
// TLS). Nothing is signed or sent.
func reachGateway(ctx context.Context, gateway string) error {
	ctx, cancel := context.WithTimeout(ctx, checkReachTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, gateway, nil)
	if err != nil {
		return err
	}
	res, err := protocol.NoRedirectClient(0).Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			return ue.Err
		}
		return err
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(res.Body, 64<<10))
	return res.Body.Close()
}

// ping queries an order that does not exist and reads Alipay's answer as
// a verdict on the keys: what to say of it, and the problem, if any, one
// line naming the setting at fault.
func (h *Handler) ping(ctx context.Context) (verdict, problem string) {
	ctx, cancel := context.WithTimeout(ctx, checkReachTimeout)
	defer cancel()
	var b [8]byte
	_, _ = rand.Read(b[:])
	outTradeNo := "alipay_check_" + hex.EncodeToString(b[:])
	if l, ok := h.protocol.(*protocol.Legacy); ok {
		return h.pingLegacy(ctx, l, outTradeNo)
	}
	biz, _ := json.Marshal(map[string]string{"out_trade_no": outTradeNo})
	resp, err := h.client.Call(ctx, "alipay.trade.query", biz)
	var ce *protocol.CallError
	switch {
	case err == nil:
		var answer map[string]any
		_ = json.Unmarshal(resp.Raw, &answer)
		code, sub := fmt.Sprint(answer["code"]), fmt.Sprint(answer["sub_code"])
		if code == "10000" || sub == "ACQ.TRADE_NOT_EXIST" {
			return "the keys work: Alipay took the signed query of a trade that does not exist (" + cmp.Or(sub, code) + "), and its answer verified with " + h.alipayKeySetting(), ""
		}
		return "Alipay answered " + code + " " + sub, "app_id: Alipay answered the query " + code + " " + sub + ": " + fmt.Sprint(answer["sub_msg"])
	case errors.As(err, &ce) && ce.Kind == protocol.CallRefused:
		return "refused: " + ce.Fields["sub_code"], refusalProblem(h, ce.Fields)
	case errors.As(err, &ce) && ce.Kind == protocol.CallBadAnswer:
		return "the answer did not verify", h.alipayKeySetting() + ": " + ce.Msg + ": it is not the key of this app at this gateway (a sandbox key against production, or the reverse?); copy 支付宝公钥 (or the certificates) for this app_id"
	default:
		return "no answer", "gateway: " + err.Error()
	}
}

// alipayKeySetting is the setting that holds Alipay's key.
func (h *Handler) alipayKeySetting() string {
	if h.AlipayCert != "" {
		return "alipay_cert"
	}
	return "alipay_public_key"
}

// refusalProblem says which setting an unsigned refusal of the ping
// points at.
func refusalProblem(h *Handler, f map[string]string) string {
	sub := f["sub_code"]
	said := strings.TrimSpace(f["code"] + " " + sub + ": " + cmp.Or(f["sub_msg"], f["msg"]))
	switch {
	case strings.Contains(sub, "invalid-signature"), strings.Contains(sub, "invalid_signature"):
		return "app_private_key: Alipay refused the request's signature (" + said + "): the app public key uploaded for app_id " + h.AppID + " is not the public half of app_private_key, or sign_type differs from the app's"
	case strings.Contains(sub, "invalid-app-id"), strings.Contains(sub, "app-not-exist"):
		return "app_id: Alipay does not know " + h.AppID + " here (" + said + "): a sandbox app against production, or the reverse? (gateway)"
	case strings.Contains(sub, "timestamp"):
		return "app_private_key: Alipay refused the request's time (" + said + "): set this machine's clock right (NTP)"
	case strings.Contains(sub, "decryption"), strings.Contains(sub, "encrypt"):
		return "encrypt_key: Alipay could not decrypt the request (" + said + "): copy the AES key of this app from the console"
	case strings.Contains(sub, "cert"):
		return "app_cert: Alipay refused the certificates' serial numbers (" + said + "): download the app's and Alipay's current certificates"
	}
	return "app_id: Alipay refused the query (" + said + ")"
}

// pingLegacy is ping for a legacy partner: single_trade_query of an
// order that does not exist.
func (h *Handler) pingLegacy(ctx context.Context, l *protocol.Legacy, outTradeNo string) (verdict, problem string) {
	body, _ := json.Marshal(map[string]string{"out_trade_no": outTradeNo})
	fields := map[string]json.RawMessage{"out_trade_no": json.RawMessage(`"` + outTradeNo + `"`)}
	answer, err := l.Call(ctx, "single_trade_query", body, fields, "")
	if err != nil {
		return "no answer", "gateway: " + err.Error()
	}
	var a struct {
		IsSuccess string `json:"is_success"`
		Error     string `json:"error"`
	}
	_ = json.Unmarshal(answer, &a)
	key := "md5_key"
	if cmp.Or(h.SignType, protocol.SignTypeMD5) != protocol.SignTypeMD5 {
		key = "app_private_key"
	}
	switch {
	case a.Error == "TRADE_NOT_EXIST" || a.IsSuccess == "T":
		return "the keys work: Alipay took the signed query of a trade that does not exist (" + cmp.Or(a.Error, "T") + ")", ""
	case strings.HasPrefix(a.Error, "ILLEGAL_SIGN"):
		return "refused: " + a.Error, key + ": Alipay refused the request's signature (" + a.Error + "): it is not the key of partner " + h.Partner
	case strings.HasPrefix(a.Error, "ILLEGAL_PARTNER"):
		return "refused: " + a.Error, "partner: Alipay does not know " + h.Partner + " (" + a.Error + ")"
	}
	return "refused: " + a.Error, "partner: Alipay refused the query (" + cmp.Or(a.Error, "no error code") + ")"
}
