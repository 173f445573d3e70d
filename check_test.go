package alipay

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/caddy-alipay/caddy-alipay/internal/protocol"
	"github.com/caddy-alipay/caddy-alipay/internal/testvec"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	"github.com/spf13/pflag"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// runCheck adapts a Caddyfile and runs alipay-check's checks on it: the
// report and the number of problems. The report never holds a key, the
// secret or the MD5 key.
func runCheck(t *testing.T, caddyfile string, ping bool) (string, int) {
	t.Helper()
	t.Setenv("TEST_ALIPAY_SECRET", testSecret)
	t.Setenv("XDG_DATA_HOME", t.TempDir())
	t.Setenv("XDG_CONFIG_HOME", t.TempDir())
	config, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(caddyfile), nil)
	require.NoError(t, err)
	var out bytes.Buffer
	problems, err := checkConfig(context.Background(), config, ping, &out)
	require.NoError(t, err)
	report := out.String()
	assert.NotContains(t, report, testSecret[:16], "the secret")
	assert.NotContains(t, report, "MII", "key material")
	assert.NotContains(t, report, testvec.LoadLegacy(t).MD5Key, "the MD5 key")
	return report, problems
}

// problemLines are the report's problem lines, without their prefix.
func problemLines(report string) []string {
	var out []string
	for _, l := range strings.Split(report, "\n") {
		if p, ok := strings.CutPrefix(strings.TrimSpace(l), "problem: "); ok {
			out = append(out, p)
		}
	}
	return out
}

// checkSite is a site for shop.example.com with the sidecar's usual
// keys, a gateway that answers (an httptest server), then settings.
func checkSite(t *testing.T, settings string) string {
	if !strings.Contains(settings, "\n\t\tgateway ") {
		settings = "\n\t\tgateway " + answeringGateway(t).URL + "/gateway.do" + settings
	}
	return `{
	admin off
}
http://shop.example.com {
	alipay {
		app_id ` + testAppID + `
		secret {env.TEST_ALIPAY_SECRET}` + settings + `
	}
	respond "shop"
}
`
}

// answeringGateway is a gateway that answers anything with 200, for the
// check that it can be reached.
func answeringGateway(t *testing.T) *httptest.Server {
	t.Helper()
	gw := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok")) }))
	t.Cleanup(gw.Close)
	return gw
}

func TestCheckHealthy(t *testing.T) {
	report, problems := runCheck(t, checkSite(t, `
		app_private_key `+testvec.Key("app_private_key_pkcs1.pem")+`
		alipay_public_key `+testvec.Key("alipay_public_key.pem")), false)
	assert.Zero(t, problems, report)
	for _, want := range []string{"alipay in server srv0 for shop.example.com", "OpenAPI v2, sign_type RSA2", "app_id", testAppID,
		"http(s)://shop.example.com/alipay/notify", "http(s)://shop.example.com/alipay/return",
		"app_private_key    RSA 2048 bits", "alipay_public_key  RSA 2048 bits", "no problems found"} {
		assert.Contains(t, report, want)
	}
}

// Each problem is one line that names its setting; the provisioning's
// errors come all at once, not the first alone.
func TestCheckProblems(t *testing.T) {
	short1024, _ := testvec.NewKeyFiles(t, 1024)
	keys := "\n\t\tapp_private_key " + testvec.Key("app_private_key_pkcs1.pem") + "\n\t\talipay_public_key " + testvec.Key("alipay_public_key.pem")
	for name, c := range map[string]struct {
		caddyfile string
		want      []string // the start of each problem line, in order
	}{
		"own key in the alipay slot": {checkSite(t, "\n\t\tapp_private_key "+testvec.Key("app_private_key_pkcs1.pem")+"\n\t\talipay_public_key "+testvec.Key("app_public_key.pem")),
			[]string{"alipay_public_key: this is the app's own public key"}},
		"key too short": {checkSite(t, "\n\t\tapp_private_key "+short1024+"\n\t\talipay_public_key "+testvec.Key("alipay_public_key.pem")),
			[]string{"app_private_key: a 1024-bit key is too short"}},
		"secret too short and a wrong key": {strings.Replace(checkSite(t, "\n\t\tapp_private_key "+testvec.Key("app_private_key_pkcs1.pem")+"\n\t\talipay_public_key "+testvec.Key("app_public_key.pem")),
			"{env.TEST_ALIPAY_SECRET}", "short-secret", 1),
			[]string{"secret: shorter than 32 bytes", "alipay_public_key: this is the app's own public key"}},
		"notify_url on another host": {checkSite(t, keys+"\n\t\tnotify_url https://other.example.com/alipay/notify\n\t\treturn_url https://shop.example.com/alipay/return"),
			[]string{"notify_url: other.example.com is not a host that this site serves (shop.example.com)"}},
		"notify_url past the sidecar": {checkSite(t, keys+"\n\t\tnotify_url https://shop.example.com/notify.php\n\t\treturn_url https://shop.example.com/alipay/return"),
			[]string{"notify_url: the path /notify.php is not this handler's /alipay/notify"}},
		"any host, no notify_url": {strings.Replace(checkSite(t, keys), "http://shop.example.com {", ":8080 {", 1),
			[]string{"notify_url: not set, and this site answers any host name", "return_url: not set, and this site answers any host name"}},
		"a gateway ending in ? behind a key error": {checkSite(t, "\n\t\tgateway https://openapi.alipay.com/gateway.do?\n\t\tapp_private_key "+testvec.Key("app_private_key_pkcs1.pem")+"\n\t\talipay_public_key "+testvec.Key("app_public_key.pem")),
			[]string{"alipay_public_key: this is the app's own public key", `gateway: "https://openapi.alipay.com/gateway.do?" ends in "?"`}},
		"gateway unreachable": {checkSite(t, keys+"\n\t\tgateway http://127.0.0.1:"+closedPort(t)+"/gateway.do"),
			[]string{"gateway: http://127.0.0.1:"}},
		"app_cert of another key": {checkSite(t, "\n\t\tapp_private_key "+short2048(t)+"\n\t\tapp_cert "+certPath("appCertPublicKey_2021000000000001.crt")+
			"\n\t\talipay_cert "+certPath("alipayCertPublicKey_RSA2.crt")+"\n\t\talipay_root_cert "+certPath("alipayRootCert.crt")),
			[]string{"app_cert: does not certify the public key of app_private_key"}},
	} {
		t.Run(name, func(t *testing.T) {
			report, problems := runCheck(t, c.caddyfile, false)
			lines := problemLines(report)
			require.Len(t, lines, len(c.want), report)
			assert.Equal(t, len(c.want), problems)
			for i, w := range c.want {
				assert.True(t, strings.HasPrefix(lines[i], w), "problem %q should start with %q", lines[i], w)
			}
		})
	}
}

// A certificate that has expired, or that Alipay did not issue, is a
// problem though the handler starts; the facts show each certificate.
func TestCheckCertificates(t *testing.T) {
	certs := "\n\t\tapp_private_key " + testvec.Key("app_private_key_pkcs1.pem") +
		"\n\t\tapp_cert " + certPath("appCertPublicKey_2021000000000001.crt") +
		"\n\t\talipay_cert " + certPath("alipayCertPublicKey_RSA2.crt") +
		"\n\t\talipay_root_cert " + certPath("alipayRootCert.crt")
	report, problems := runCheck(t, checkSite(t, certs), false)
	require.Zero(t, problems, report)
	assert.Regexp(t, `app_cert +SN [0-9a-f]{32}, valid \d{4}-\d\d-\d\d to \d{4}-\d\d-\d\d, RSA 2048 bits, certifies app_private_key's key`, report)
	assert.Regexp(t, `alipay_cert +SN [0-9a-f]{32}, valid`, report)
	assert.Regexp(t, `alipay_root_cert +SN [0-9a-f_]+`, report)

	fixClock(t, time.Date(2099, 1, 1, 0, 0, 0, 0, time.UTC))
	report, _ = runCheck(t, checkSite(t, certs), false)
	lines := problemLines(report)
	require.Len(t, lines, 2, report)
	assert.Contains(t, lines[0], "app_cert: the certificate expired on")
	assert.Contains(t, lines[1], "alipay_cert: the certificate expired on")

	fixClock(t, time.Now())
	selfSigned := selfSignedCert(t, testvec.Key("app_private_key_pkcs1.pem"))
	report, _ = runCheck(t, checkSite(t, strings.Replace(certs, certPath("appCertPublicKey_2021000000000001.crt"), selfSigned, 1)), false)
	assert.Equal(t, []string{"app_cert: the certificate is self-signed, and Alipay issues its certificates from its own CA: is this the file that Alipay's open platform gave?"},
		problemLines(report))
}

// --ping against the sandbox: the keys work; a key that the sandbox does
// not have for the app is named; so is an Alipay key that is not the
// sandbox's.
func TestCaddyCheckPing(t *testing.T) {
	loadCaddyfile(t, "", sandboxSite(t, ""))
	site := func(settings string) string {
		return `{
	admin off
}
http://shop.example.com {
	alipay {
		app_id ` + testAppID + `
		secret {env.TEST_ALIPAY_SECRET}
		gateway ` + sandboxURL + `/gateway.do` + settings + `
	}
}
`
	}
	report, problems := runCheck(t, site("\n\t\tapp_private_key "+testvec.Key("app_private_key_pkcs1.pem")+"\n\t\talipay_public_key "+testvec.Key("alipay_public_key.pem")), true)
	assert.Zero(t, problems, report)
	assert.Contains(t, report, "the keys work: Alipay took the signed query of a trade that does not exist (ACQ.TRADE_NOT_EXIST)")

	other, _ := testvec.NewKeyFiles(t, 2048)
	report, problems = runCheck(t, site("\n\t\tapp_private_key "+other+"\n\t\talipay_public_key "+testvec.Key("alipay_public_key.pem")), true)
	assert.Equal(t, 1, problems, report)
	lines := problemLines(report)
	require.Len(t, lines, 1, report)
	assert.True(t, strings.HasPrefix(lines[0], "app_private_key: Alipay refused the request's signature (40002 isv.invalid-signature"), lines[0])

	_, otherPublic := testvec.NewKeyFiles(t, 2048)
	report, problems = runCheck(t, site("\n\t\tapp_private_key "+testvec.Key("app_private_key_pkcs1.pem")+"\n\t\talipay_public_key "+otherPublic), true)
	assert.Equal(t, 1, problems, report)
	lines = problemLines(report)
	require.Len(t, lines, 1, report)
	assert.True(t, strings.HasPrefix(lines[0], "alipay_public_key: the gateway's answer is not signed by Alipay"), lines[0])

	// OpenAPI v3: the same verdicts, from a REST call signed in headers.
	report, problems = runCheck(t, site("\n\t\tapi_version v3\n\t\tapp_private_key "+testvec.Key("app_private_key_pkcs1.pem")+"\n\t\talipay_public_key "+testvec.Key("alipay_public_key.pem")), true)
	assert.Zero(t, problems, report)
	assert.Contains(t, report, "OpenAPI v3")
	assert.Contains(t, report, "the keys work")
	report, _ = runCheck(t, site("\n\t\tapi_version v3\n\t\tapp_private_key "+other+"\n\t\talipay_public_key "+testvec.Key("alipay_public_key.pem")), true)
	lines = problemLines(report)
	require.Len(t, lines, 1, report)
	assert.True(t, strings.HasPrefix(lines[0], "app_private_key: Alipay refused the request's signature"), lines[0])

	// No ping while the settings have problems.
	report, _ = runCheck(t, site("\n\t\tapp_private_key "+testvec.Key("app_private_key_pkcs1.pem")+"\n\t\talipay_public_key "+testvec.Key("app_public_key.pem")), true)
	assert.NotContains(t, report, "the keys work")
}

// --ping of a legacy partner: single_trade_query of an order that does
// not exist; a wrong MD5 key is named.
func TestCaddyCheckPingLegacy(t *testing.T) {
	v := testvec.LoadLegacy(t)
	t.Setenv("TEST_MD5_KEY", v.MD5Key)
	loadCaddyfile(t, "", sandboxSite(t, "partner "+v.Partner+"\n\t\t\tmd5_key {env.TEST_MD5_KEY}"))
	site := func(md5Key string) string {
		return `{
	admin off
}
http://shop.example.com {
	alipay {
		partner ` + v.Partner + `
		md5_key ` + md5Key + `
		secret {env.TEST_ALIPAY_SECRET}
		gateway ` + sandboxURL + `/gateway.do
	}
}
`
	}
	report, problems := runCheck(t, site("{env.TEST_MD5_KEY}"), true)
	assert.Zero(t, problems, report)
	assert.Contains(t, report, "legacy 即时到账, sign_type MD5")
	assert.Contains(t, report, "the keys work: Alipay took the signed query of a trade that does not exist (TRADE_NOT_EXIST)")

	report, _ = runCheck(t, strings.Replace(site("{env.TEST_MD5_KEY}"), "partner "+v.Partner, "partner 2088000000000009", 1), true)
	lines := problemLines(report)
	require.Len(t, lines, 1, report)
	assert.True(t, strings.HasPrefix(lines[0], "partner: Alipay does not know 2088000000000009 (ILLEGAL_PARTNER)"), lines[0])

	report, problems = runCheck(t, site(strings.Repeat("k", 32)), true)
	assert.Equal(t, 1, problems, report)
	lines = problemLines(report)
	require.Len(t, lines, 1, report)
	assert.True(t, strings.HasPrefix(lines[0], "md5_key: Alipay refused the request's signature (ILLEGAL_SIGN)"), lines[0])
}

// The callback URLs built from a pay request carry the server's port
// when it is not HTTP's or HTTPS's own; a configured one must be on a
// host the site serves, as Caddy's host matcher matches it.
func TestCheckCallbackURLs(t *testing.T) {
	site := strings.Replace(checkSite(t, "\n\t\tapp_private_key "+testvec.Key("app_private_key_pkcs1.pem")+"\n\t\talipay_public_key "+testvec.Key("alipay_public_key.pem")),
		"http://shop.example.com {", "http://shop.example.com:8443, http://*.shop.example.com:8443 {", 1)
	report, problems := runCheck(t, site, false)
	assert.Zero(t, problems, report)
	assert.Contains(t, report, "http(s)://shop.example.com:8443/alipay/notify, http(s)://*.shop.example.com:8443/alipay/notify")

	for host, want := range map[string]bool{"shop.example.com": true, "SHOP.example.com": true, "cn.shop.example.com": true,
		"a.b.shop.example.com": false, "shop.example.com.evil.test": false, "evilshop.example.com": false} {
		assert.Equal(t, want, slices.ContainsFunc([]string{"shop.example.com", "*.shop.example.com"}, func(p string) bool { return hostMatches(p, host) }), host)
	}
}

// A refusal of the ping names the setting that its code points at.
func TestCheckRefusalProblem(t *testing.T) {
	h := &Handler{AppID: testAppID}
	for sub, want := range map[string]string{
		"isv.invalid-signature":                      "app_private_key: Alipay refused the request's signature",
		"invalid-signature":                          "app_private_key: Alipay refused the request's signature",
		"isv.invalid-app-id":                         "app_id: Alipay does not know " + testAppID,
		"invalid-timestamp":                          "app_private_key: Alipay refused the request's time",
		"isv.decryption-error-not-valid-encrypt-key": "encrypt_key: Alipay could not decrypt the request",
		"isv.app-cert-sn-not-match":                  "app_cert: Alipay refused the certificates' serial numbers",
		"isv.something-else":                         "app_id: Alipay refused the query (40002 isv.something-else: why)",
	} {
		got := refusalProblem(h, map[string]string{"code": "40002", "sub_code": sub, "sub_msg": "why"})
		assert.True(t, strings.HasPrefix(got, want), "%s: %s", sub, got)
	}
}

// The command: its exit status says whether there was a problem.
func TestCheckCommand(t *testing.T) {
	t.Setenv("TEST_ALIPAY_SECRET", testSecret)
	t.Setenv("XDG_DATA_HOME", t.TempDir())
	t.Setenv("XDG_CONFIG_HOME", t.TempDir())
	dir := t.TempDir()
	run := func(caddyfile string) (int, error) {
		path := filepath.Join(dir, "Caddyfile")
		require.NoError(t, os.WriteFile(path, []byte(caddyfile), 0o600))
		fs := pflag.NewFlagSet("alipay-check", pflag.ContinueOnError)
		fs.String("config", path, "")
		fs.String("adapter", "", "")
		fs.Bool("ping", false, "")
		return cmdCheck(caddycmd.Flags{FlagSet: fs})
	}
	keys := "\n\t\tapp_private_key " + testvec.Key("app_private_key_pkcs1.pem") + "\n\t\talipay_public_key " + testvec.Key("alipay_public_key.pem")
	code, err := run(checkSite(t, keys))
	assert.NoError(t, err)
	assert.Equal(t, 0, code)
	code, err = run(checkSite(t, keys+"\n\t\tnotify_url https://other.example.com/alipay/notify"))
	assert.ErrorContains(t, err, "problem")
	assert.NotEqual(t, 0, code)
}

// closedPort is a loopback port that nothing listens on.
func closedPort(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	_, port, _ := net.SplitHostPort(l.Addr().String())
	require.NoError(t, l.Close())
	return port
}

// short2048 is a fresh 2048-bit key file: not the key of the vectors'
// app certificate.
func short2048(t *testing.T) string {
	priv, _ := testvec.NewKeyFiles(t, 2048)
	return priv
}

// selfSignedCert writes a self-signed certificate of the key in keyFile.
func selfSignedCert(t *testing.T, keyFile string) string {
	material, err := protocol.KeyMaterial(keyFile)
	require.NoError(t, err)
	key, err := protocol.ParsePrivateKey(material)
	require.NoError(t, err)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: "self"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(365 * 24 * time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	path := filepath.Join(t.TempDir(), "self.crt")
	require.NoError(t, os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600))
	return path
}
