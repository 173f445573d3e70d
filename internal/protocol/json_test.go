package protocol

import (
	"encoding/json"
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Whatever the bytes, appendJSONString writes JSON that decodes back to the
// same text (invalid UTF-8 as U+FFFD, as encoding/json would).
func TestAppendJSONString(t *testing.T) {
	for _, in := range []string{"", "plain", `q"b\s`, "新\n\r\t\x00\x1f", "<&>", "bad \xff\xfe end", "\xe4\xb8", "ok\u2028"} {
		var got string
		out := appendJSONString(nil, in)
		assert.True(t, utf8.Valid(out), "PHP's json_decode refuses invalid UTF-8: %q", out)
		require.NoError(t, json.Unmarshal(out, &got), "%q", in)
		want, _ := json.Marshal(in)
		var wantStr string
		require.NoError(t, json.Unmarshal(want, &wantStr))
		assert.Equal(t, wantStr, got, "%q", in)
	}
}

func FuzzAppendJSONString(f *testing.F) {
	f.Add("a\"\\\x00\xff新")
	f.Fuzz(func(t *testing.T, in string) {
		var got string
		out := appendJSONString(nil, in)
		if !utf8.Valid(out) {
			t.Fatalf("%q: output not UTF-8: %q", in, out)
		}
		if err := json.Unmarshal(out, &got); err != nil {
			t.Fatalf("%q: %v", in, err)
		}
		want, _ := json.Marshal(in)
		var wantStr string
		_ = json.Unmarshal(want, &wantStr)
		if got != wantStr {
			t.Fatalf("%q: got %q want %q", in, got, wantStr)
		}
	})
}
