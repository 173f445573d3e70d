package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// The run's shared state, set up once by TestMain.
var (
	runDir   string // temporary directory of this run, removed at the end
	repoRoot string // the checkout: ..
	caddyBin string // the Caddy with the module
	keys     testKeys
	secret   string // shared by the sidecar and the shops
)

const (
	appID        = "2021000000000001"
	caddyVersion = "v2.11.9"
	// stepTimeout bounds each browser action and HTTP exchange.
	stepTimeout = 30 * time.Second
	// startTimeout bounds the start of a process (until it answers).
	startTimeout = 30 * time.Second
)

// testKeys are the PEM files made for this run: the app's key pair (the
// sidecar signs with the private half, the sandbox checks with the public
// one) and the key pair that plays Alipay's (the sandbox signs callbacks,
// the sidecar and the Node SDK check them).
type testKeys struct {
	AppPrivate, AppPublic, AlipayPrivate, AlipayPublic string // file paths
}

func TestMain(m *testing.M) {
	os.Exit(runTests(m))
}

func runTests(m *testing.M) int {
	var err error
	if runDir, err = os.MkdirTemp("", "caddy-alipay-e2e-"); err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	defer os.RemoveAll(runDir)
	defer stopAllProcs()
	defer closeBrowser()
	if repoRoot, err = filepath.Abs(".."); err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	if err := setUp(); err != nil {
		fmt.Fprintln(os.Stderr, "e2e: setting up:", err)
		return 1
	}
	return m.Run()
}

func setUp() error {
	if err := os.MkdirAll(filepath.Join(runDir, "logs"), 0o755); err != nil {
		return err
	}
	var err error
	if caddyBin, err = caddyBinary(); err != nil {
		return err
	}
	if keys, err = makeKeys(filepath.Join(runDir, "keys")); err != nil {
		return err
	}
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return err
	}
	secret = base64.StdEncoding.EncodeToString(b)
	return nil
}

// caddyBinary is $CADDY_BIN, or a Caddy that xcaddy builds with the
// sidecar and the sandbox from this checkout, as CI does.
func caddyBinary() (string, error) {
	if bin := os.Getenv("CADDY_BIN"); bin != "" {
		abs, err := filepath.Abs(bin)
		if err != nil {
			return "", err
		}
		if _, err := os.Stat(abs); err != nil {
			return "", fmt.Errorf("CADDY_BIN: %w", err)
		}
		return abs, nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	xcaddy := filepath.Join(runDir, "xcaddy")
	out := filepath.Join(runDir, "caddy")
	start := time.Now()
	build := exec.CommandContext(ctx, "go", "build", "-o", xcaddy, "github.com/caddyserver/xcaddy/cmd/xcaddy")
	build.Dir = filepath.Join(repoRoot, "tools", "xcaddy")
	if b, err := build.CombinedOutput(); err != nil {
		return "", fmt.Errorf("building xcaddy: %v\n%s", err, b)
	}
	build = exec.CommandContext(ctx, xcaddy, "build", caddyVersion,
		"--with", "github.com/caddy-alipay/caddy-alipay@v0.0.0="+repoRoot,
		"--with", "github.com/caddy-alipay/caddy-alipay/sandbox@v0.0.0", "--output", out)
	build.Dir = runDir
	// A proxy that answers 403 rather than 404 for the module path
	// .../sandbox stops Go from finding it in the module that holds it;
	// an empty file proxy after it answers 404.
	noProxy := filepath.Join(runDir, "noproxy")
	if err := os.MkdirAll(noProxy, 0o755); err != nil {
		return "", err
	}
	proxy, err := exec.Command("go", "env", "GOPROXY").Output()
	if err != nil {
		return "", err
	}
	build.Env = append(os.Environ(), "GOPROXY="+strings.TrimSuffix(strings.TrimSpace(string(proxy)), ",direct")+"|file://"+noProxy)
	if b, err := build.CombinedOutput(); err != nil {
		return "", fmt.Errorf("xcaddy build: %v\n%s", err, b)
	}
	fmt.Fprintf(os.Stderr, "e2e: built Caddy %s with the module in %s (set CADDY_BIN to skip)\n",
		caddyVersion, time.Since(start).Round(time.Second))
	return out, nil
}

// makeKeys writes two fresh 2048-bit RSA key pairs: the private keys as
// PKCS#1 PEM, the public ones as PKIX PEM.
func makeKeys(dir string) (testKeys, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return testKeys{}, err
	}
	k := testKeys{
		AppPrivate: filepath.Join(dir, "app_private_key.pem"), AppPublic: filepath.Join(dir, "app_public_key.pem"),
		AlipayPrivate: filepath.Join(dir, "alipay_private_key.pem"), AlipayPublic: filepath.Join(dir, "alipay_public_key.pem"),
	}
	for _, pair := range [][2]string{{k.AppPrivate, k.AppPublic}, {k.AlipayPrivate, k.AlipayPublic}} {
		key, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			return k, err
		}
		pub, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
		if err != nil {
			return k, err
		}
		if err := os.WriteFile(pair[0], pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)}), 0o600); err != nil {
			return k, err
		}
		if err := os.WriteFile(pair[1], pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub}), 0o644); err != nil {
			return k, err
		}
	}
	return k, nil
}

// needTool returns the path of a program that a test needs. Without it the
// test fails under CI (CI installs everything) and is skipped elsewhere.
func needTool(t *testing.T, name string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err == nil {
		return path
	}
	if os.Getenv("CI") != "" {
		t.Fatalf("%s is required under CI: %v", name, err)
	}
	t.Skipf("%s not found (%v): skipped; CI installs it", name, err)
	return ""
}

// freePort is a loopback port that nothing listens on now. The kernel picks
// it from the ephemeral range, which has none of the ports that Chromium
// refuses to load (ERR_UNSAFE_PORT).
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// A proc is a process that a test started, in a process group of its own,
// with its output in a log file.
type proc struct {
	name    string
	cmd     *exec.Cmd
	logPath string
	done    chan struct{} // closed when it has exited
	err     error         // its exit, once done is closed
	once    sync.Once
}

var (
	procsMu sync.Mutex
	procs   = map[*proc]bool{}
	procSeq int
)

// startProc starts a program with extra environment variables; the test's
// cleanup stops it, and shows the end of its log if the test failed.
func startProc(t *testing.T, name, dir string, env []string, argv ...string) *proc {
	t.Helper()
	return startProcFor(t, t, name, dir, env, argv...)
}

// startProcFor is startProc with the cleanup on owner, a test that may
// outlive t (a parent of t).
func startProcFor(t, owner *testing.T, name, dir string, env []string, argv ...string) *proc {
	t.Helper()
	procsMu.Lock()
	procSeq++
	logPath := filepath.Join(runDir, "logs", fmt.Sprintf("%02d-%s.log", procSeq, name))
	procsMu.Unlock()
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer logFile.Close()
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	// Its own process group, so that stopping it stops its children too;
	// killed if this test process dies.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", name, err)
	}
	p := &proc{name: name, cmd: cmd, logPath: logPath, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	procsMu.Lock()
	procs[p] = true
	procsMu.Unlock()
	owner.Cleanup(func() {
		p.stop()
		if owner.Failed() {
			owner.Logf("--- end of the log of %s (%s):\n%s", name, logPath, tail(logPath, 40))
		}
	})
	return p
}

// stop ends the process group: SIGTERM, then SIGKILL after 5 s. Bounded.
func (p *proc) stop() {
	p.once.Do(func() {
		pgid := p.cmd.Process.Pid
		_ = syscall.Kill(-pgid, syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(5 * time.Second):
			_ = syscall.Kill(-pgid, syscall.SIGKILL)
			select {
			case <-p.done:
			case <-time.After(5 * time.Second):
			}
		}
		// Whatever of the group outlived its leader.
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
		procsMu.Lock()
		delete(procs, p)
		procsMu.Unlock()
	})
}

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

func (p *proc) log() string {
	b, _ := os.ReadFile(p.logPath)
	return string(b)
}

func stopAllProcs() {
	procsMu.Lock()
	var all []*proc
	for p := range procs {
		all = append(all, p)
	}
	procsMu.Unlock()
	for _, p := range all {
		p.stop()
	}
}

func tail(path string, lines int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	l := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(l) > lines {
		l = l[len(l)-lines:]
	}
	return strings.Join(l, "\n")
}

// waitHTTP waits until url answers anything at all over HTTP; it fails the
// test if p exits first or startTimeout passes.
func waitHTTP(t *testing.T, p *proc, url string) {
	t.Helper()
	if err := waitHTTPErr(p, url); err != nil {
		t.Fatal(err)
	}
}

func waitHTTPErr(p *proc, url string) error {
	client := &http.Client{Timeout: 2 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	deadline := time.Now().Add(startTimeout)
	for {
		resp, err := client.Get(url)
		if err == nil {
			resp.Body.Close()
			return nil
		}
		if p.exited() {
			return fmt.Errorf("%s exited before answering %s (%v):\n%s", p.name, url, p.err, tail(p.logPath, 40))
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s does not answer %s after %s: %v\n%s", p.name, url, startTimeout, err, tail(p.logPath, 40))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// startCaddy runs Caddy with a Caddyfile and waits until it answers on
// each of the urls.
func startCaddy(t *testing.T, name, caddyfile string, urls ...string) *proc {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, "Caddyfile")
	if err := os.WriteFile(path, []byte(caddyfile), 0o644); err != nil {
		t.Fatal(err)
	}
	p := startProc(t, name, dir, []string{
		"XDG_DATA_HOME=" + filepath.Join(dir, "data"),
		"XDG_CONFIG_HOME=" + filepath.Join(dir, "config"),
		"HOME=" + dir,
		"E2E_ALIPAY_SECRET=" + secret,
	}, caddyBin, "run", "--config", path, "--adapter", "caddyfile")
	for _, u := range urls {
		waitHTTP(t, p, u)
	}
	return p
}

// caddyGlobals are the global options of every Caddyfile here.
const caddyGlobals = `{
	admin off
	persist_config off
	auto_https off
	grace_period 1s
}
`

// sidecarSite is a Caddyfile site on 127.0.0.1:port with the OpenAPI
// sidecar, signing with this run's app key for the sandbox at gateway, in
// front of upstream (host:port). Each extra line goes into the alipay
// block.
func sidecarSite(port int, gateway, upstream string, extra ...string) string {
	return fmt.Sprintf(`
http://127.0.0.1:%d {
	bind 127.0.0.1
	alipay {
		app_id %s
		app_private_key %s
		alipay_public_key %s
		secret {env.E2E_ALIPAY_SECRET}
		gateway %s/gateway.do
%s	}
	reverse_proxy %s
}
`, port, appID, keys.AppPrivate, keys.AlipayPublic, gateway, blockLines(extra), upstream)
}

// sandboxSite is a Caddyfile site on 127.0.0.1:port with alipay_sandbox
// and this run's keys. Each extra line goes into its block.
func sandboxSite(port int, extra ...string) string {
	return fmt.Sprintf(`
http://127.0.0.1:%d {
	bind 127.0.0.1
	alipay_sandbox {
		app_public_key %s
		alipay_private_key %s
%s	}
}
`, port, keys.AppPublic, keys.AlipayPrivate, blockLines(extra))
}

func blockLines(lines []string) string {
	var b strings.Builder
	for _, l := range lines {
		b.WriteString("\t\t" + l + "\n")
	}
	return b.String()
}

// httpClient does not follow redirects: the tests look at each one.
var httpClient = &http.Client{
	Timeout:       stepTimeout,
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
}

// httpDo sends a request and returns the answer with its body read.
func httpDo(t *testing.T, req *http.Request) (*http.Response, string) {
	t.Helper()
	resp, err := httpClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil && !errors.Is(err, io.EOF) {
		t.Fatalf("%s %s: reading the body: %v", req.Method, req.URL, err)
	}
	return resp, string(b)
}

func httpGet(t *testing.T, url string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	return httpDo(t, req)
}

func httpPostForm(t *testing.T, url, form string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewBufferString(form))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return httpDo(t, req)
}
