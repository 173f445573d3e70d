package sandbox

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode"

	"github.com/caddy-alipay/caddy-alipay/internal/protocol"
	"github.com/caddyserver/caddy/v2"
	"github.com/spf13/cobra"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// WriteKeys is writeKeys for the external tests (keyscmd_caddy_test.go),
// which adapt and validate the printed lines with both modules.
var WriteKeys = writeKeys

// keysFileModes are the files that alipay-sandbox-keys writes, relative
// to its directory, with their modes.
var keysFileModes = map[string]os.FileMode{
	keysAppPrivateKeyFile:                       0o600,
	keysAppPublicKeyFile:                        0o644,
	keysAlipayPrivateKeyFile:                    0o600,
	keysAlipayPublicKeyFile:                     0o644,
	keysSecretFile:                              0o600,
	keysMD5KeyFile:                              0o600,
	keysEncryptKeyFile:                          0o600,
	filepath.Join(keysCertsDir, appCertFile):    0o644,
	filepath.Join(keysCertsDir, alipayCertFile): 0o644,
	filepath.Join(keysCertsDir, rootCertFile):   0o644,
}

// readKeysDir reads every file that the command writes in dir.
func readKeysDir(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	files := map[string][]byte{}
	for name := range keysFileModes {
		files[name] = read(t, filepath.Join(dir, name))
	}
	return files
}

// runKeysCommand writes the keys into dir, which is created, and returns what
// the command printed.
func runKeysCommand(t *testing.T, dir string, force bool) string {
	t.Helper()
	var out bytes.Buffer
	require.NoError(t, writeKeys(dir, keysDefaultAddress, force, &out))
	return out.String()
}

// The directory is created 0700 and every file is there with its mode:
// private material 0600, public 0644, whatever the umask.
func TestKeysCommandWritesFiles(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "new", "keys")
	runKeysCommand(t, dir, false)
	info, err := os.Stat(dir)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o700), info.Mode().Perm())
	for name, mode := range keysFileModes {
		info, err := os.Stat(filepath.Join(dir, name))
		require.NoError(t, err, name)
		assert.Equal(t, mode, info.Mode().Perm(), name)
	}
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	assert.Len(t, entries, 8, "seven files and certs/, no temporary file left")
}

// Without --force nothing is written when any file exists, and the error
// names it; --force replaces every file, with its mode, also over a file
// of a wider mode.
func TestKeysCommandOverwrite(t *testing.T) {
	dir := t.TempDir()
	runKeysCommand(t, dir, false)
	before := readKeysDir(t, dir)

	var out bytes.Buffer
	err := writeKeys(dir, keysDefaultAddress, false, &out)
	require.Error(t, err)
	assert.Contains(t, err.Error(), filepath.Join(dir, keysAppPrivateKeyFile))
	assert.Contains(t, err.Error(), "--force")
	assert.Empty(t, out.String())
	assert.Equal(t, before, readKeysDir(t, dir))

	// One file there, and only that one: it is named, nothing is written.
	other := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(other, keysSecretFile), []byte("mine"), 0o644))
	err = writeKeys(other, keysDefaultAddress, false, &out)
	require.Error(t, err)
	assert.Contains(t, err.Error(), filepath.Join(other, keysSecretFile)+", which exists")
	entries, err := os.ReadDir(other)
	require.NoError(t, err)
	assert.Len(t, entries, 1)
	assert.Equal(t, []byte("mine"), read(t, filepath.Join(other, keysSecretFile)))

	require.NoError(t, os.Chmod(filepath.Join(dir, keysAppPrivateKeyFile), 0o644))
	runKeysCommand(t, dir, true)
	after := readKeysDir(t, dir)
	for name, mode := range keysFileModes {
		assert.NotEqual(t, before[name], after[name], "%s was not replaced", name)
		info, err := os.Stat(filepath.Join(dir, name))
		require.NoError(t, err)
		assert.Equal(t, mode, info.Mode().Perm(), name)
	}
	runKeysCommand(t, other, true)
	assert.NotEqual(t, []byte("mine"), read(t, filepath.Join(other, keysSecretFile)))
}

// The command takes exactly one argument, and a loopback host:port.
func TestKeysCommandArguments(t *testing.T) {
	for _, args := range [][]string{{}, {"a", "b"}} {
		cmd := &cobra.Command{Use: keysCommand.Name, SilenceUsage: true, SilenceErrors: true}
		keysCommand.CobraFunc(cmd)
		cmd.SetArgs(args)
		err := cmd.Execute()
		require.Error(t, err, args)
		assert.Contains(t, err.Error(), "takes one argument, the directory")
		assert.Contains(t, err.Error(), keysUsage)
	}

	// The flags reach writeKeys.
	dir := t.TempDir()
	var out bytes.Buffer
	keysOut = &out
	t.Cleanup(func() { keysOut = os.Stdout })
	cmd := &cobra.Command{Use: keysCommand.Name, SilenceUsage: true, SilenceErrors: true}
	keysCommand.CobraFunc(cmd)
	cmd.SetArgs([]string{"--sandbox-address", "localhost:9000", dir})
	require.NoError(t, cmd.Execute())
	assert.Contains(t, out.String(), "http://localhost:9000 {")
	assert.Contains(t, out.String(), "gateway http://localhost:9000/gateway.do")
	cmd = &cobra.Command{Use: keysCommand.Name, SilenceUsage: true, SilenceErrors: true}
	keysCommand.CobraFunc(cmd)
	cmd.SetArgs([]string{dir})
	assert.ErrorContains(t, cmd.Execute(), "--force")
	cmd = &cobra.Command{Use: keysCommand.Name, SilenceUsage: true, SilenceErrors: true}
	keysCommand.CobraFunc(cmd)
	cmd.SetArgs([]string{"--force", dir})
	assert.NoError(t, cmd.Execute())

	for _, addr := range []string{"", "127.0.0.1", "[::1]", "example.com:8081", "192.0.2.1:8081", "127.0.0.1:x", "127.0.0.1:0", "127.0.0.1:8081/x"} {
		fresh := filepath.Join(t.TempDir(), "keys")
		err := writeKeys(fresh, addr, false, &out)
		require.Error(t, err, addr)
		assert.Contains(t, err.Error(), "--sandbox-address")
		assert.NoDirExists(t, fresh, "nothing written for %q", addr)
	}
	for _, addr := range []string{"127.0.0.1:8081", "localhost:8081", "[::1]:8081"} {
		assert.True(t, keysLoopbackAddress(addr), addr)
	}

	bad := filepath.Join(t.TempDir(), "a{b}")
	assert.ErrorContains(t, writeKeys(bad, keysDefaultAddress, false, &out), "cannot hold")
	assert.NoDirExists(t, bad)
}

// The keys pair up as the sandbox and the sidecar need them, and the
// secrets have the forms the two read.
func TestKeysCommandMaterial(t *testing.T) {
	dir := t.TempDir()
	runKeysCommand(t, dir, false)
	files := readKeysDir(t, dir)

	appKey, err := protocol.ParsePrivateKey(files[keysAppPrivateKeyFile])
	require.NoError(t, err)
	appPub, err := protocol.ParsePublicKey(files[keysAppPublicKeyFile])
	require.NoError(t, err)
	alipayKey, err := protocol.ParsePrivateKey(files[keysAlipayPrivateKeyFile])
	require.NoError(t, err)
	alipayPub, err := protocol.ParsePublicKey(files[keysAlipayPublicKeyFile])
	require.NoError(t, err)
	assert.True(t, appPub.Equal(&appKey.PublicKey), "app_public_key.pem is app_private_key.pem's")
	assert.True(t, alipayPub.Equal(&alipayKey.PublicKey), "alipay_public_key.pem is alipay_private_key.pem's")
	assert.False(t, appPub.Equal(alipayPub), "the two pairs differ")
	assert.Equal(t, 2048, appKey.N.BitLen())
	assert.Equal(t, 2048, alipayKey.N.BitLen())

	secret := string(files[keysSecretFile])
	assert.GreaterOrEqual(t, len(secret), protocol.MinSecretLen)
	assert.Equal(t, strings.TrimSpace(secret), secret)
	assert.False(t, strings.ContainsFunc(secret, func(r rune) bool { return !unicode.IsPrint(r) || unicode.IsSpace(r) }))
	_, err = protocol.NewTokenKey(secret)
	assert.NoError(t, err)

	raw, err := base64.StdEncoding.DecodeString(string(files[keysEncryptKeyFile]))
	require.NoError(t, err)
	assert.Len(t, raw, 16)
	_, err = protocol.NewContentKey(string(files[keysEncryptKeyFile]))
	assert.NoError(t, err)

	assert.Len(t, files[keysMD5KeyFile], 32)
	_, err = protocol.NewMD5Key(string(files[keysMD5KeyFile]))
	assert.NoError(t, err)

	// Two runs make different material.
	other := t.TempDir()
	runKeysCommand(t, other, false)
	for name, data := range readKeysDir(t, other) {
		assert.NotEqual(t, files[name], data, name)
	}
}

// What the command prints names the secret files and never holds their
// contents, nor any piece of a private key.
func TestKeysCommandPrintsNoSecret(t *testing.T) {
	dir := t.TempDir()
	out := runKeysCommand(t, dir, false)
	files := readKeysDir(t, dir)
	for _, name := range []string{keysAppPrivateKeyFile, keysAlipayPrivateKeyFile, keysSecretFile, keysMD5KeyFile, keysEncryptKeyFile} {
		data := files[name]
		assert.NotContains(t, out, strings.TrimSpace(string(data)), name)
		if block, _ := pem.Decode(data); block != nil {
			for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
				if !strings.HasPrefix(line, "-----") {
					assert.NotContains(t, out, line, "a line of %s", name)
				}
			}
			assert.NotContains(t, out, base64.StdEncoding.EncodeToString(block.Bytes), name)
		}
	}
	assert.Contains(t, out, "secret {file."+filepath.Join(dir, keysSecretFile)+"}")
	assert.Contains(t, out, "encrypt_key {file."+filepath.Join(dir, keysEncryptKeyFile)+"}")
	assert.Contains(t, out, "app_private_key "+filepath.Join(dir, keysAppPrivateKeyFile))
	assert.Contains(t, out, "alipay_private_key "+filepath.Join(dir, keysAlipayPrivateKeyFile))
	assert.Contains(t, out, "md5_key "+filepath.Join(dir, keysMD5KeyFile))
}

// A sandbox started with certificates <dir>/certs finds the command's
// certificates current: it keeps them, byte for byte, and their serial
// numbers are those it requires.
func TestKeysCommandCertificatesKept(t *testing.T) {
	dir := t.TempDir()
	runKeysCommand(t, dir, false)
	before := readKeysDir(t, dir)

	s := &Handler{
		AppPublicKey:     filepath.Join(dir, keysAppPublicKeyFile),
		AlipayPrivateKey: filepath.Join(dir, keysAlipayPrivateKeyFile),
		Partner:          keysPartner,
		MD5Key:           filepath.Join(dir, keysMD5KeyFile),
		EncryptKey:       "{file." + filepath.Join(dir, keysEncryptKeyFile) + "}",
		Certificates:     filepath.Join(dir, keysCertsDir),
	}
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	t.Cleanup(cancel)
	require.NoError(t, s.Provision(ctx))
	t.Cleanup(func() { require.NoError(t, s.Cleanup()) })
	assert.Equal(t, before, readKeysDir(t, dir))

	appPub, err := protocol.ParsePublicKey(before[keysAppPublicKeyFile])
	require.NoError(t, err)
	alipayKey, err := protocol.ParsePrivateKey(before[keysAlipayPrivateKeyFile])
	require.NoError(t, err)
	loaded, err := loadCerts(filepath.Join(dir, keysCertsDir), appPub, &alipayKey.PublicKey)
	require.NoError(t, err)
	assert.Equal(t, *loaded, *s.certs)
}

// A path with a space is printed quoted, as one Caddyfile token.
func TestKeysCommandQuotesPaths(t *testing.T) {
	assert.Equal(t, "/a/b", keysCaddyfileToken("/a/b"))
	assert.Equal(t, `"/my keys/secret"`, keysCaddyfileToken("/my keys/secret"))
	assert.Equal(t, `"{file./my keys/secret}"`, keysCaddyfileToken("{file./my keys/secret}"))
}
