package snippets

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"unicode"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// docFiles are the documentation that links and Caddyfile blocks are
// checked in: README.md and every Markdown file under docs/.
func docFiles(t *testing.T) []string {
	t.Helper()
	files := []string{filepath.Join("..", "..", "README.md")}
	more, err := filepath.Glob(filepath.Join("..", "*.md"))
	require.NoError(t, err)
	require.NotEmpty(t, more)
	return append(files, more...)
}

var (
	fenceRE = regexp.MustCompile("(?ms)^```([a-z]*)\n(.*?)^```")
	linkRE  = regexp.MustCompile(`\]\(([^)\s]+)\)`)
	headRE  = regexp.MustCompile(`(?m)^#{1,6} (.+)$`)
)

// withoutCode is a Markdown text with its fenced code blocks blanked.
func withoutCode(md string) string {
	return fenceRE.ReplaceAllStringFunc(md, func(block string) string { return strings.Repeat("\n", strings.Count(block, "\n")) })
}

// anchor is the id GitHub gives a heading: lower case, punctuation
// dropped but - and _, spaces as -.
func anchor(heading string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(heading) {
		switch {
		case r == ' ':
			b.WriteByte('-')
		case r == '-' || r == '_' || unicode.IsLetter(r) || unicode.IsDigit(r):
			b.WriteRune(r)
		}
	}
	return b.String()
}

// anchors are the ids of a Markdown file's headings.
func anchors(t *testing.T, file string) map[string]bool {
	t.Helper()
	md, err := os.ReadFile(file)
	require.NoError(t, err)
	ids := map[string]bool{}
	for _, m := range headRE.FindAllStringSubmatch(withoutCode(string(md)), -1) {
		ids[anchor(m[1])] = true
	}
	return ids
}

// Every relative link in the documentation names a file that exists and,
// with a #fragment, a heading of that file.
func TestDocLinks(t *testing.T) {
	checked := 0
	for _, file := range docFiles(t) {
		md, err := os.ReadFile(file)
		require.NoError(t, err)
		for _, m := range linkRE.FindAllStringSubmatch(withoutCode(string(md)), -1) {
			link := m[1]
			if strings.Contains(link, "://") || strings.HasPrefix(link, "mailto:") {
				continue
			}
			checked++
			path, frag, _ := strings.Cut(link, "#")
			target := file
			if path != "" {
				target = filepath.Join(filepath.Dir(file), filepath.FromSlash(path))
				if _, err := os.Stat(target); err != nil {
					t.Errorf("%s: link %q: no such file", file, link)
					continue
				}
			}
			if frag != "" {
				if !strings.HasSuffix(target, ".md") {
					t.Errorf("%s: link %q: a fragment of a file that is not Markdown", file, link)
				} else if !anchors(t, target)[frag] {
					t.Errorf("%s: link %q: %s has no heading #%s", file, link, target, frag)
				}
			}
		}
	}
	assert.Greater(t, checked, 20, "the links were found")
}

// Every Caddyfile block in the documentation is formatted as `caddy fmt`
// writes it, so that one copied into a Caddyfile draws no "not formatted"
// warning.
func TestDocCaddyfilesFormatted(t *testing.T) {
	checked := 0
	for _, file := range docFiles(t) {
		md, err := os.ReadFile(file)
		require.NoError(t, err)
		for _, m := range fenceRE.FindAllStringSubmatch(string(md), -1) {
			if m[1] != "caddyfile" {
				continue
			}
			checked++
			block := []byte(m[2])
			if formatted := caddyfile.Format(block); !bytes.Equal(formatted, block) {
				t.Errorf("%s: a Caddyfile block is not formatted as caddy fmt writes it; caddy fmt gives:\n%s", file, formatted)
			}
		}
	}
	assert.Greater(t, checked, 5, "the Caddyfile blocks were found")
}
