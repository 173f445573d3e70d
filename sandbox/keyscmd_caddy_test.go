package sandbox_test

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	_ "github.com/caddy-alipay/caddy-alipay"
	"github.com/caddy-alipay/caddy-alipay/sandbox"
	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The lines that alipay-sandbox-keys prints are real: assembled into a
// Caddyfile as their comments say, they adapt and pass caddy.Validate
// with both modules (the sidecar's root package and the sandbox), which
// provisions every handler and so reads every file they name.

// keysPrinted are the parts of what the command printed.
type keysPrinted struct {
	sandbox, sidecar, legacySidecar string   // whole blocks
	certSandbox, certSidecar        []string // certificate mode's lines for each
	aes                             []string // AES's line, for both
}

// parseKeysPrinted splits the command's output into its paragraphs, each
// told by its leading comment, and takes the lines of each.
func parseKeysPrinted(t *testing.T, out string) keysPrinted {
	t.Helper()
	var p keysPrinted
	for _, para := range strings.Split(strings.TrimSpace(out), "\n\n") {
		lines := strings.Split(para, "\n")
		title := lines[0]
		// parts are the runs of lines between comments.
		var parts [][]string
		for _, l := range lines {
			if strings.HasPrefix(l, "#") {
				if len(parts) == 0 || len(parts[len(parts)-1]) > 0 {
					parts = append(parts, nil)
				}
				continue
			}
			parts[len(parts)-1] = append(parts[len(parts)-1], l)
		}
		switch {
		case strings.HasPrefix(title, "# Written into"):
		case strings.HasPrefix(title, "# The local sandbox"):
			p.sandbox = strings.Join(parts[0], "\n")
		case strings.HasPrefix(title, "# The sidecar"):
			p.sidecar = strings.Join(parts[0], "\n")
		case strings.HasPrefix(title, "# Certificate mode"):
			require.Len(t, parts, 2, para)
			p.certSandbox, p.certSidecar = parts[0], parts[1]
		case strings.HasPrefix(title, "# The legacy partner"):
			p.legacySidecar = strings.Join(parts[0], "\n")
		case strings.HasPrefix(title, "# AES"):
			p.aes = parts[0]
		default:
			t.Fatalf("unexpected paragraph:\n%s", para)
		}
	}
	require.NotEmpty(t, p.sandbox)
	require.NotEmpty(t, p.sidecar)
	require.NotEmpty(t, p.legacySidecar)
	require.Len(t, p.certSandbox, 1)
	require.Len(t, p.certSidecar, 3)
	require.Len(t, p.aes, 1)
	return p
}

// insertLines puts lines after the line of block that opens directive.
func insertLines(t *testing.T, block, directive string, lines []string) string {
	t.Helper()
	open := directive + " {"
	var out []string
	found := false
	for _, l := range strings.Split(block, "\n") {
		out = append(out, l)
		if strings.TrimSpace(l) == open {
			out = append(out, lines...)
			found = true
		}
	}
	require.True(t, found, "no %q in\n%s", open, block)
	return strings.Join(out, "\n")
}

// replaceLine puts lines in place of the line of block that sets
// setting.
func replaceLine(t *testing.T, block, setting string, lines []string) string {
	t.Helper()
	var out []string
	found := false
	for _, l := range strings.Split(block, "\n") {
		if strings.HasPrefix(strings.TrimSpace(l), setting+" ") {
			out = append(out, lines...)
			found = true
			continue
		}
		out = append(out, l)
	}
	require.True(t, found, "no %s in\n%s", setting, block)
	return strings.Join(out, "\n")
}

// keysShopCaddyfile is a Caddyfile with the sandbox's site block (if any) and
// a shop site with the sidecar's block at its top.
func keysShopCaddyfile(sandboxBlock, sidecarBlock string) string {
	return "{\n\tadmin off\n}\n\n" + sandboxBlock + "\n\nhttp://127.0.0.1:8082 {\n" + sidecarBlock + "\n\trespond \"shop\"\n}\n"
}

// validateCaddyfile adapts a Caddyfile and validates it as `caddy validate` does.
func validateCaddyfile(t *testing.T, caddyfile string) error {
	t.Helper()
	cfgJSON, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(caddyfile), nil)
	require.NoError(t, err, caddyfile)
	var cfg caddy.Config
	require.NoError(t, json.Unmarshal(cfgJSON, &cfg))
	return caddy.Validate(&cfg)
}

// runKeysCommand writes the keys into dir and parses what was printed.
func runKeysCommand(t *testing.T, dir string) keysPrinted {
	t.Helper()
	t.Setenv("XDG_DATA_HOME", t.TempDir())
	t.Setenv("XDG_CONFIG_HOME", t.TempDir())
	var out bytes.Buffer
	require.NoError(t, sandbox.WriteKeys(dir, "127.0.0.1:8081", false, &out))
	return parseKeysPrinted(t, out.String())
}

// keysCertFiles reads the certificates that the command issued.
func keysCertFiles(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	files := map[string][]byte{}
	for _, name := range []string{"appCertPublicKey.crt", "alipayCertPublicKey_RSA2.crt", "alipayRootCert.crt"} {
		data, err := os.ReadFile(filepath.Join(dir, "certs", name))
		require.NoError(t, err)
		files[name] = data
	}
	return files
}

// Each way of using the printed lines validates: the OpenAPI app, in
// certificate mode (with a sidecar that loads the certificates before any
// sandbox has started), the legacy partner, AES, and certificate mode
// with AES. A sandbox provisioned with the certificates directory keeps
// the command's certificates byte for byte.
func TestKeysCommandCaddyfile(t *testing.T) {
	for _, name := range []string{"keys", "my keys"} {
		t.Run(name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), name)
			p := runKeysCommand(t, dir)
			issued := keysCertFiles(t, dir)

			certSandbox := insertLines(t, p.sandbox, "alipay_sandbox", p.certSandbox)
			certSidecar := replaceLine(t, p.sidecar, "alipay_public_key", p.certSidecar)
			// The sidecar alone, before any sandbox has run.
			require.NoError(t, validateCaddyfile(t, keysShopCaddyfile("", certSidecar)))

			for _, c := range []struct{ name, sandbox, sidecar string }{
				{"openapi", p.sandbox, p.sidecar},
				{"certificates", certSandbox, certSidecar},
				{"legacy", p.sandbox, p.legacySidecar},
				{"aes", insertLines(t, p.sandbox, "alipay_sandbox", p.aes), insertLines(t, p.sidecar, "alipay", p.aes)},
				{"certificates and aes", insertLines(t, certSandbox, "alipay_sandbox", p.aes), insertLines(t, certSidecar, "alipay", p.aes)},
			} {
				assert.NoError(t, validateCaddyfile(t, keysShopCaddyfile(c.sandbox, c.sidecar)), c.name)
			}
			assert.Equal(t, issued, keysCertFiles(t, dir), "the sandbox re-issued the certificates")
		})
	}
}

// caddy.Validate does provision both handlers from the printed lines: a
// sidecar whose secret file is missing fails, and so does a sandbox
// given Alipay's public key as the app's.
func TestKeysCommandCaddyfileValidates(t *testing.T) {
	dir := t.TempDir()
	p := runKeysCommand(t, dir)
	noSecret := strings.ReplaceAll(p.sidecar, "{file."+filepath.Join(dir, "secret")+"}", "{file."+filepath.Join(dir, "missing")+"}")
	require.NotEqual(t, p.sidecar, noSecret)
	assert.ErrorContains(t, validateCaddyfile(t, keysShopCaddyfile(p.sandbox, noSecret)), "secret")

	sameKeys := strings.ReplaceAll(p.sandbox, filepath.Join(dir, "app_public_key.pem"), filepath.Join(dir, "alipay_public_key.pem"))
	require.NotEqual(t, p.sandbox, sameKeys)
	assert.ErrorContains(t, validateCaddyfile(t, keysShopCaddyfile(sameKeys, p.sidecar)), "alipay_private_key")
}
