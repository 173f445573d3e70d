package sandbox

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"unicode"

	"github.com/caddy-alipay/caddy-alipay/internal/protocol"
	"github.com/caddyserver/caddy/v2"
	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	"github.com/spf13/cobra"
)

// The alipay-sandbox-keys command writes what a local sandbox and a
// sidecar need to talk to each other, and prints the Caddyfile lines that
// use it. It lives in this package so that it ships only in the builds
// that have the sandbox.

func init() {
	caddycmd.RegisterCommand(keysCommand)
}

// keysCommand is the command as registered; tests run its CobraFunc.
var keysCommand = caddycmd.Command{
	Name:  "alipay-sandbox-keys",
	Usage: keysUsage,
	Short: "Writes the keys, secrets and certificates for a local alipay_sandbox and the alipay sidecar",
	Long: `
Writes into <dir> (created 0700 if missing) everything that a local
alipay_sandbox and an alipay sidecar need to talk to each other, then
prints the Caddyfile lines that use those files:

  app_private_key.pem, app_public_key.pem
      the app's RSA-2048 key pair: the sidecar signs with the private
      key, the sandbox checks with the public one
  alipay_private_key.pem, alipay_public_key.pem
      the key pair that plays Alipay's: the sandbox signs with the
      private key, the sidecar checks with the public one
  secret
      the secret that the sidecar and the shop share (64 characters)
  md5_key
      a legacy partner's MD5 key (32 characters)
  encrypt_key
      an AES content-encryption key (base64 of 16 bytes)
  certs/appCertPublicKey.crt, certs/alipayCertPublicKey_RSA2.crt,
  certs/alipayRootCert.crt
      certificate mode's files, issued as the sandbox issues them, so
      that a sandbox with "certificates <dir>/certs" uses them as they
      are and a sidecar can load them before the sandbox first starts

Private keys and secrets are written 0600, public keys and certificates
0644. The printed lines name the files by absolute path, and never hold
a key or a secret.

--force
    Replace the files if they exist. Without it nothing is written when
    any of them exists. A running Caddy keeps the old keys until it
    reloads its config.

--sandbox-address
    The sandbox's host:port in the printed lines, on loopback (the
    sidecar takes a plain-http gateway only there). Default 127.0.0.1:8081.
`,
	CobraFunc: func(cmd *cobra.Command) {
		cmd.DisableFlagsInUseLine = true // Usage lists them
		cmd.Flags().Bool("force", false, "Replace the files if they exist")
		cmd.Flags().String("sandbox-address", keysDefaultAddress, "The sandbox's host:port in the printed Caddyfile lines")
		cmd.Args = func(_ *cobra.Command, args []string) error { return checkKeysArgs(args) }
		cmd.RunE = caddycmd.WrapCommandFuncForCobra(cmdSandboxKeys)
	},
}

// keysUsage is the command's arguments, as its help and its usage error
// show them.
const keysUsage = "[--force] [--sandbox-address <host:port>] <dir>"

// keysDefaultAddress is where the demo's sandbox listens.
const keysDefaultAddress = "127.0.0.1:8081"

// The identities in the printed lines: those the demo uses (demo/run.sh).
// The sandbox accepts any app_id; the partner is also the seller id that
// the sandbox's callbacks carry.
const (
	keysAppID   = "2021000000000001"
	keysPartner = "2088000000000001"
)

// The files the command writes, relative to its directory. The names
// are demo/run.sh's, so that the command can make the demo's .demo/.
const (
	keysAppPrivateKeyFile    = "app_private_key.pem"
	keysAppPublicKeyFile     = "app_public_key.pem"
	keysAlipayPrivateKeyFile = "alipay_private_key.pem"
	keysAlipayPublicKeyFile  = "alipay_public_key.pem"
	keysSecretFile           = "secret"
	keysMD5KeyFile           = "md5_key"
	keysEncryptKeyFile       = "encrypt_key"
	keysCertsDir             = "certs"
)

// keysOut is where the command prints; tests replace it.
var keysOut io.Writer = os.Stdout

// checkKeysArgs wants exactly one argument, the directory.
func checkKeysArgs(args []string) error {
	if len(args) != 1 {
		return fmt.Errorf("takes one argument, the directory to write into (got %d): alipay-sandbox-keys %s", len(args), keysUsage)
	}
	return nil
}

// cmdSandboxKeys runs the command: the directory argument and the flags
// into writeKeys, which prints to standard output.
func cmdSandboxKeys(fl caddycmd.Flags) (int, error) {
	if err := checkKeysArgs(fl.Args()); err != nil {
		return caddy.ExitCodeFailedStartup, err
	}
	if err := writeKeys(fl.Arg(0), fl.String("sandbox-address"), fl.Bool("force"), keysOut); err != nil {
		return caddy.ExitCodeFailedStartup, err
	}
	return caddy.ExitCodeSuccess, nil
}

// keysFile is a file that writeKeys writes.
type keysFile struct {
	name string // relative to the directory
	data []byte
	mode os.FileMode
}

// writeKeys writes the keys, secrets and certificates into dir and prints
// to out the Caddyfile lines that use them, for a sandbox at
// sandboxAddress. Unless force is set it writes nothing when any of the
// files exists. Nothing secret is printed: the lines name files.
func writeKeys(dir, sandboxAddress string, force bool, out io.Writer) error {
	if !keysLoopbackAddress(sandboxAddress) {
		return fmt.Errorf("--sandbox-address %q: want a loopback host:port such as %s, since the sidecar takes a plain-http gateway only on loopback", sandboxAddress, keysDefaultAddress)
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return fmt.Errorf("directory %s: %w", dir, err)
	}
	// The printed lines name the files: a path that a Caddyfile token or
	// a {file.*} placeholder cannot hold would make them wrong.
	if strings.ContainsAny(abs, "{}\"\\") || strings.ContainsFunc(abs, unicode.IsControl) {
		return fmt.Errorf("directory %q: its path has a character ({, }, \", \\ or a control character) that the printed Caddyfile lines cannot hold", abs)
	}
	certNames := []string{appCertFile, alipayCertFile, rootCertFile}
	if !force {
		if err := refuseExistingKeys(abs, certNames); err != nil {
			return err
		}
	}

	appKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return fmt.Errorf("generating the app's key: %w", err)
	}
	alipayKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return fmt.Errorf("generating the sandbox's Alipay key: %w", err)
	}
	files := []keysFile{
		{keysSecretFile, []byte(base64.RawURLEncoding.EncodeToString(keysRandom(48))), 0o600},
		{keysMD5KeyFile, []byte(hex.EncodeToString(keysRandom(16))), 0o600},
		{keysEncryptKeyFile, []byte(base64.StdEncoding.EncodeToString(keysRandom(16))), 0o600},
	}
	for _, k := range []struct {
		private, public string
		key             *rsa.PrivateKey
	}{{keysAppPrivateKeyFile, keysAppPublicKeyFile, appKey}, {keysAlipayPrivateKeyFile, keysAlipayPublicKeyFile, alipayKey}} {
		private, public, err := encodeKeysPair(k.key)
		if err != nil {
			return err
		}
		files = append(files, keysFile{k.private, private, 0o600}, keysFile{k.public, public, 0o644})
	}

	if err := os.MkdirAll(abs, 0o700); err != nil {
		return fmt.Errorf("creating the directory: %w", err)
	}
	for _, f := range files {
		if err := writeKeysFile(filepath.Join(abs, f.name), f.data, f.mode); err != nil {
			return err
		}
	}
	if err := writeKeysCerts(filepath.Join(abs, keysCertsDir), certNames, appKey, alipayKey); err != nil {
		return err
	}
	return printKeysCaddyfile(out, abs, sandboxAddress)
}

// keysLoopbackAddress reports whether addr is a host:port that the sidecar
// takes in a plain-http gateway URL: a loopback host and a port.
func keysLoopbackAddress(addr string) bool {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return false
	}
	return protocol.CheckGateway("http://"+addr+"/gateway.do") == nil
}

// refuseExistingKeys fails, naming the first, if any of the files that
// writeKeys writes into dir exists.
func refuseExistingKeys(dir string, certNames []string) error {
	names := []string{keysAppPrivateKeyFile, keysAppPublicKeyFile, keysAlipayPrivateKeyFile, keysAlipayPublicKeyFile,
		keysSecretFile, keysMD5KeyFile, keysEncryptKeyFile}
	for _, c := range certNames {
		names = append(names, filepath.Join(keysCertsDir, c))
	}
	var existing []string
	for _, n := range names {
		p := filepath.Join(dir, n)
		_, err := os.Lstat(p)
		switch {
		case err == nil:
			existing = append(existing, p)
		case !errors.Is(err, fs.ErrNotExist):
			return fmt.Errorf("checking %s: %w", p, err)
		}
	}
	switch len(existing) {
	case 0:
		return nil
	case 1:
		return fmt.Errorf("refusing to overwrite %s, which exists: --force replaces it", existing[0])
	}
	return fmt.Errorf("refusing to overwrite %s and %d other files that exist: --force replaces them", existing[0], len(existing)-1)
}

// keysRandom returns n bytes from crypto/rand, whose Read never fails
// (it crashes the program instead).
func keysRandom(n int) []byte {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return b
}

// encodeKeysPair returns key as PKCS#8 PEM and its public half as PKIX
// PEM, the forms that `openssl genrsa` and `openssl rsa -pubout` write.
func encodeKeysPair(key *rsa.PrivateKey) (private, public []byte, err error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, fmt.Errorf("encoding a private key: %w", err)
	}
	pubDER, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		return nil, nil, fmt.Errorf("encoding a public key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER}), nil
}

// writeKeysFile writes data to name through a temporary file in the
// same directory, renamed into place: the file gets exactly mode (one
// that it replaces keeps none of its old mode), the data never sits in a
// file of a wider mode, and a symlink at name is replaced, not followed.
func writeKeysFile(name string, data []byte, mode os.FileMode) error {
	f, err := os.CreateTemp(filepath.Dir(name), "."+filepath.Base(name)+".*")
	if err != nil {
		return fmt.Errorf("writing %s: %w", name, err)
	}
	tmp := f.Name()
	defer os.Remove(tmp) // fails harmlessly once renamed
	if err := f.Chmod(mode); err != nil {
		f.Close()
		return fmt.Errorf("writing %s: %w", name, err)
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("writing %s: %w", name, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("writing %s: %w", name, err)
	}
	if err := os.Rename(tmp, name); err != nil {
		return fmt.Errorf("writing %s: %w", name, err)
	}
	return nil
}

// writeKeysCerts issues certificate mode's files into dir with the sandbox's
// own provisionCerts, which loads them back as a sandbox with these keys
// does on start. Files there already (with --force) are removed first, so
// that the certificates are new files: os.WriteFile, which issueCerts
// uses, would write through a symlink.
func writeKeysCerts(dir string, names []string, appKey, alipayKey *rsa.PrivateKey) error {
	for _, n := range names {
		if err := os.Remove(filepath.Join(dir, n)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("replacing %s: %w", filepath.Join(dir, n), err)
		}
	}
	if _, err := provisionCerts(dir, &appKey.PublicKey, alipayKey); err != nil {
		return fmt.Errorf("issuing the certificates into %s: %w", dir, err)
	}
	// Certificates are public; os.WriteFile's mode is subject to the umask.
	for _, n := range names {
		if err := os.Chmod(filepath.Join(dir, n), 0o644); err != nil {
			return fmt.Errorf("issuing the certificates: %w", err)
		}
	}
	return nil
}

// printKeysCaddyfile prints the Caddyfile lines that use the files in
// dir: the sandbox's site block, the sidecar's alipay block for the
// OpenAPI app, then, each under a comment of its own, the lines that
// switch to certificate mode, to the legacy partner and to AES. Secrets
// appear as {file.*} placeholders, so that they stay out of the adapted
// JSON and the admin API's /config/.
func printKeysCaddyfile(out io.Writer, dir, sandboxAddress string) error {
	path := func(name string) string { return keysCaddyfileToken(filepath.Join(dir, name)) }
	file := func(name string) string { return keysCaddyfileToken("{file." + filepath.Join(dir, name) + "}") }
	gateway := "http://" + sandboxAddress + "/gateway.do"
	_, err := fmt.Fprintf(out, `# Written into %[1]s (private files 0600). Caddyfile lines that use them:

# The local sandbox, playing Alipay to the OpenAPI app and to the legacy partner:
http://%[2]s {
	alipay_sandbox {
		app_public_key %[3]s
		alipay_private_key %[4]s
		partner %[5]s
		md5_key %[6]s
	}
}

# The sidecar, at the top of the shop's site block, for the OpenAPI app. The shop
# checks X-Alipay-Token with aud %[8]s and the same secret, in %[7]s
alipay {
	app_id %[8]s
	app_private_key %[9]s
	alipay_public_key %[10]s
	secret %[11]s
	gateway %[12]s
}

# Certificate mode (公钥证书模式): add to alipay_sandbox
		certificates %[13]s
# and, in alipay, put these in place of alipay_public_key:
	app_cert %[14]s
	alipay_cert %[15]s
	alipay_root_cert %[16]s

# The legacy partner (即时到账, MD5 signs): this alipay block in place of the
# one above. The shop's token then has aud %[5]s.
alipay {
	partner %[5]s
	md5_key %[6]s
	secret %[11]s
	gateway %[12]s
}

# AES content encryption (接口内容加密, OpenAPI only): add to alipay_sandbox and to alipay
	encrypt_key %[17]s
`, dir, sandboxAddress, path(keysAppPublicKeyFile), path(keysAlipayPrivateKeyFile), keysPartner, path(keysMD5KeyFile),
		path(keysSecretFile), keysAppID, path(keysAppPrivateKeyFile), path(keysAlipayPublicKeyFile), file(keysSecretFile), gateway,
		path(keysCertsDir), path(filepath.Join(keysCertsDir, appCertFile)), path(filepath.Join(keysCertsDir, alipayCertFile)),
		path(filepath.Join(keysCertsDir, rootCertFile)), file(keysEncryptKeyFile))
	return err
}

// keysCaddyfileToken quotes s when it holds white space, which would
// otherwise split it into several tokens. writeKeys refuses the
// characters that a quoted token would need escaped.
func keysCaddyfileToken(s string) string {
	if strings.ContainsFunc(s, unicode.IsSpace) {
		return `"` + s + `"`
	}
	return s
}
