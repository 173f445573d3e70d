package e2e

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
)

// One headless Chromium serves the whole run; each test gets a tab of its
// own, in a browser context of its own (no shared cookies or cache).
var browser struct {
	once        sync.Once
	ctx         context.Context // the browser's root context
	cancel      context.CancelFunc
	allocCancel context.CancelFunc
	profile     string
	err         error
}

const (
	viewportW, viewportH = 1000, 700
	// tabTimeout bounds everything one test does in its tab.
	tabTimeout = 4 * time.Minute
)

// chromiumPath is $CHROMIUM_BIN (a path, or a name on $PATH) or Debian's
// /usr/bin/chromium.
func chromiumPath() string {
	if p := os.Getenv("CHROMIUM_BIN"); p != "" {
		if abs, err := exec.LookPath(p); err == nil {
			return abs
		}
		return p
	}
	return "/usr/bin/chromium"
}

func startBrowser() {
	browser.profile = filepath.Join(runDir, "chromium-profile")
	log, err := os.Create(filepath.Join(runDir, "logs", "chromium.log"))
	if err != nil {
		browser.err = err
		return
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromiumPath()),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(browser.profile),
		chromedp.WindowSize(viewportW, viewportH),
		chromedp.CombinedOutput(log),
		// As chromedp does on Linux (killed with this process), in a process
		// group of its own.
		chromedp.ModifyCmdFunc(func(cmd *exec.Cmd) {
			cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
		}),
	)
	allocCtx, allocCancel := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(allocCtx)
	started := make(chan error, 1)
	go func() { started <- chromedp.Do(ctx) }() // starts the browser, bound to ctx
	select {
	case err = <-started:
	case <-time.After(60 * time.Second):
		err = fmt.Errorf("%s did not start in 60 s", chromiumPath())
	}
	browser.ctx, browser.cancel, browser.allocCancel = ctx, cancel, allocCancel
	if err != nil {
		browser.err = fmt.Errorf("starting %s: %w\n%s", chromiumPath(), err, tail(log.Name(), 20))
	}
}

// closeBrowser stops Chromium and every process of its profile.
func closeBrowser() {
	if browser.cancel == nil {
		return
	}
	done := make(chan struct{})
	go func() {
		browser.cancel()
		browser.allocCancel()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(15 * time.Second):
	}
	killProfileProcesses(browser.profile)
}

// killProfileProcesses kills what is left of a Chromium that ran with the
// profile: each of its processes has --user-data-dir=<profile> on its
// command line.
func killProfileProcesses(profile string) {
	if profile == "" {
		return
	}
	for pass := 0; pass < 3; pass++ {
		entries, _ := os.ReadDir("/proc")
		found := false
		for _, e := range entries {
			pid, err := strconv.Atoi(e.Name())
			if err != nil || pid == os.Getpid() {
				continue
			}
			cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
			if err == nil && strings.Contains(string(cmdline), "--user-data-dir="+profile+"\x00") {
				_ = syscall.Kill(pid, syscall.SIGKILL)
				found = true
			}
		}
		if !found {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// newTab opens a tab for the test, 1000x700, bound to tabTimeout.
func newTab(t *testing.T) context.Context {
	t.Helper()
	if _, err := exec.LookPath(chromiumPath()); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("Chromium is required under CI: %v", err)
		}
		t.Skipf("no Chromium (%v): skipped; apt-get install chromium, or set CHROMIUM_BIN", err)
	}
	browser.once.Do(startBrowser)
	if browser.err != nil {
		t.Fatal(browser.err)
	}
	limited, cancelLimit := context.WithTimeout(browser.ctx, tabTimeout)
	tab, cancelTab := chromedp.NewContext(limited, chromedp.WithNewBrowserContext())
	t.Cleanup(func() {
		cancelTab()
		cancelLimit()
	})
	if err := chromedp.Do(tab); err != nil { // opens the tab, bound to tab
		t.Fatalf("opening a tab: %v", err)
	}
	browserDo(t, tab, "set the viewport", chromedp.EmulateViewport(viewportW, viewportH))
	return tab
}

// browserDo runs actions in the tab within stepTimeout.
func browserDo(t *testing.T, tab context.Context, what string, actions ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	ctx, cancel := context.WithTimeout(tab, stepTimeout)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// browserGet runs an action that returns a value, within stepTimeout.
func browserGet[T any](t *testing.T, tab context.Context, what string, action chromedp.Action[T]) T {
	t.Helper()
	ctx, cancel := context.WithTimeout(tab, stepTimeout)
	defer cancel()
	v, err := chromedp.Run(ctx, action)
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	return v
}

// open navigates to url and returns the document's response.
func open(t *testing.T, tab context.Context, url string) *network.Response {
	t.Helper()
	return browserGet(t, tab, "open "+url, chromedp.NavigateResponse(url))
}

// clickAndLoad clicks the element with the id and waits until the page
// that it leads to has loaded; it returns that page's response.
func clickAndLoad(t *testing.T, tab context.Context, id string) *network.Response {
	t.Helper()
	resp, err := clickAndLoadErr(tab, id)
	if err != nil {
		t.Fatalf("click #%s and wait for the next page: %v", id, err)
	}
	return resp
}

// clickAndLoadErr is clickAndLoad for a page that may fail to load.
func clickAndLoadErr(tab context.Context, id string) (*network.Response, error) {
	ctx, cancel := context.WithTimeout(tab, stepTimeout)
	defer cancel()
	return chromedp.RunResponse(ctx, chromedp.Click(chromedp.ID(id)))
}

func location(t *testing.T, tab context.Context) string {
	t.Helper()
	return browserGet(t, tab, "read the location", chromedp.Location())
}

// textOf is the trimmed text of the element with the id.
func textOf(t *testing.T, tab context.Context, id string) string {
	t.Helper()
	return strings.TrimSpace(browserGet(t, tab, "read #"+id, chromedp.TextContent(chromedp.ID(id))))
}

// bodyText is the text of the page.
func bodyText(t *testing.T, tab context.Context) string {
	t.Helper()
	return browserGet(t, tab, "read the page", chromedp.Evaluate[string](`document.body ? document.body.innerText : ""`))
}

// hasElement says whether the page has an element with the id, at once.
func hasElement(t *testing.T, tab context.Context, id string) bool {
	t.Helper()
	return browserGet(t, tab, "look for #"+id, chromedp.Evaluate[bool](`document.getElementById(`+strconv.Quote(id)+`) !== null`))
}

// waitText waits until the element with the id has the text, through page
// loads (the order page refreshes itself), within timeout.
func waitText(t *testing.T, tab context.Context, id, want string, timeout time.Duration) {
	t.Helper()
	js := `(() => { const e = document.getElementById(` + strconv.Quote(id) + `); return e ? e.textContent.trim() : "<no #` + id + `>"; })()`
	deadline := time.Now().Add(timeout)
	var got string
	var err error
	for {
		ctx, cancel := context.WithTimeout(tab, 3*time.Second)
		got, err = chromedp.Run(ctx, chromedp.Evaluate[string](js))
		cancel()
		if err == nil && got == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("#%s is %q (err %v), want %q after %s", id, got, err, want, timeout)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// screenshot takes the viewport as a PNG: into docs/screenshots (for the
// README) when UPDATE_SCREENSHOTS is set, into the test's temporary
// directory otherwise, so that a plain run leaves the checkout clean.
func screenshot(t *testing.T, tab context.Context, name string) {
	t.Helper()
	png := browserGet(t, tab, "screenshot "+name, chromedp.CaptureScreenshot())
	if !bytes.HasPrefix(png, []byte("\x89PNG")) || len(png) < 4<<10 {
		t.Fatalf("screenshot %s: not a real picture (%d bytes)", name, len(png))
	}
	dir := t.TempDir()
	if os.Getenv("UPDATE_SCREENSHOTS") != "" {
		dir = filepath.Join(repoRoot, "docs", "screenshots")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name), png, 0o644); err != nil {
		t.Fatal(err)
	}
}

// waitLocation waits until the browser is on a URL with the prefix, through
// redirects and pages that submit themselves, within timeout.
func waitLocation(t *testing.T, tab context.Context, prefix string, timeout time.Duration) string {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var loc string
	var err error
	for {
		ctx, cancel := context.WithTimeout(tab, 3*time.Second)
		loc, err = chromedp.Run(ctx, chromedp.Evaluate[string](`document.readyState === "complete" ? location.href : ""`))
		cancel()
		if err == nil && strings.HasPrefix(loc, prefix) {
			return loc
		}
		if time.Now().After(deadline) {
			t.Fatalf("the browser is on %q (err %v), not %s..., after %s", loc, err, prefix, timeout)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
