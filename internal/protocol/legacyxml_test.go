package protocol

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/caddy-alipay/caddy-alipay/internal/testvec"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/text/encoding/simplifiedchinese"
)

// The answer samples (utf-8, GBK, gb2312, none declared) read as the
// JSON that make_vectors_services.py wrote for each.
func TestLegacyXMLAnswerVectors(t *testing.T) {
	v := testvec.LoadLegacy(t)
	encodings := map[string]bool{}
	for _, a := range v.Answers {
		t.Run(a.Name, func(t *testing.T) {
			got, err := LegacyXMLToJSON(testvec.Read(t, strings.Split(a.File, "/")...))
			require.NoError(t, err)
			assert.JSONEq(t, string(a.JSON), string(got))
			encodings[strings.ToLower(a.Encoding)] = true
		})
	}
	assert.Equal(t, map[string]bool{"utf-8": true, "gbk": true, "gb2312": true, "": true}, encodings)
}

// The shape: elements as members in document order, text as strings,
// <request>'s params by name, repeated siblings as a list, whitespace
// between elements dropped, entities and CDATA read, attributes and
// comments left out.
func TestLegacyXMLShape(t *testing.T) {
	for _, tc := range []struct{ xml, want string }{
		{`<alipay><is_success>F</is_success><error>TRADE_NOT_EXIST</error></alipay>`,
			`{"is_success":"F","error":"TRADE_NOT_EXIST"}`},
		{"<?xml version=\"1.0\"?>\n<alipay>\n  <is_success>T</is_success>\n</alipay>\n", `{"is_success":"T"}`},
		{`<alipay><is_success>T</is_success><request><param name="service">single_trade_query</param><param name="x&amp;y">a&lt;b</param></request></alipay>`,
			`{"is_success":"T","request":{"service":"single_trade_query","x&y":"a<b"}}`},
		{`<alipay><is_success>T</is_success><response><trade><n>1</n></trade><trade><n>2</n></trade><x/><trade><n>3</n></trade></response></alipay>`,
			`{"is_success":"T","response":{"trade":[{"n":"1"},{"n":"2"},{"n":"3"}],"x":""}}`},
		{`<alipay a="1"><!-- c --><is_success>T</is_success><body><![CDATA[<b> & "q"]]></body><e> sp </e></alipay>`,
			`{"is_success":"T","body":"<b> & \"q\"","e":" sp "}`},
		{`<alipay><is_success>T</is_success><request><param>no name</param></request></alipay>`,
			`{"is_success":"T","request":{"param":"no name"}}`},
		{`<alipay><is_success>T</is_success><response><param name="p">not in request</param></response></alipay>`,
			`{"is_success":"T","response":{"param":"not in request"}}`},
		{`<alipay><is_success>T</is_success><s>` + "\u2028\x09\"\\" + `</s></alipay>`,
			`{"is_success":"T","s":"` + "\u2028\\t\\\"\\\\" + `"}`},
	} {
		got, err := LegacyXMLToJSON([]byte(tc.xml))
		require.NoError(t, err, tc.xml)
		assert.Equal(t, tc.want, string(got), tc.xml)
	}
}

// Encodings: the declaration's is honoured (GBK bytes read as GBK, and
// 堃, which GB2312 lacks, under a gb2312 label too); one that is not
// Alipay's is refused.
func TestLegacyXMLEncodings(t *testing.T) {
	gbk, err := simplifiedchinese.GBK.NewEncoder().String(`<alipay><is_success>T</is_success><s>會員價（王堃）</s></alipay>`)
	require.NoError(t, err)
	for _, label := range []string{"GBK", "gbk", "gb2312", "GB2312", "GB18030"} {
		got, err := LegacyXMLToJSON([]byte(`<?xml version="1.0" encoding="` + label + `"?>` + gbk))
		require.NoError(t, err, label)
		assert.Equal(t, `{"is_success":"T","s":"會員價（王堃）"}`, string(got), label)
	}
	got, err := LegacyXMLToJSON([]byte(`<?xml version="1.0" encoding="UTF-8"?><alipay><is_success>T</is_success><s>會員價</s></alipay>`))
	require.NoError(t, err)
	assert.Equal(t, `{"is_success":"T","s":"會員價"}`, string(got))
	_, err = LegacyXMLToJSON([]byte(`<?xml version="1.0" encoding="ISO-8859-1"?><alipay><is_success>T</is_success></alipay>`))
	assert.ErrorContains(t, err, "unsupported encoding")
	_, err = LegacyXMLToJSON([]byte(gbk)) // GBK bytes, no declaration: not UTF-8
	assert.Error(t, err)
}

// What is not an answer of Alipay's is an error.
func TestLegacyXMLRefused(t *testing.T) {
	for _, tc := range []struct{ xml, says string }{
		{``, "no root element"},
		{`   `, "no root element"},
		{`{"is_success":"T"}`, "text outside the root element"},
		{`<html><body>is_success T</body></html>`, "not <alipay>"},
		{`<alipay><error>ILLEGAL_SIGN</error></alipay>`, "one <is_success>"},
		{`<alipay><is_success>T</is_success><is_success>T</is_success></alipay>`, "one <is_success>"},
		{`<alipay><is_success><x>T</x></is_success></alipay>`, "one <is_success>"},
		{`<alipay><is_success>true</is_success></alipay>`, "not T or F"},
		{`<alipay><is_success> T </is_success></alipay>`, "not T or F"},
		{`<alipay><is_success>T</is_success>`, "not well-formed"},
		{`<alipay><is_success>T</alipay>`, "not well-formed"},
		{`<alipay><is_success>T</is_success></alipay><alipay/>`, "more than one root"},
		{`<alipay><is_success>T</is_success></alipay>trailing`, "text outside"},
		{`<alipay><is_success>T</is_success><r>text<e>1</e></r></alipay>`, "both text and elements"},
		{`<alipay><is_success>T</is_success><s>&nbsp;</s></alipay>`, "not well-formed"},
		{"<alipay><is_success>T</is_success><s>\xff</s></alipay>", "not well-formed"},
	} {
		_, err := LegacyXMLToJSON([]byte(tc.xml))
		assert.ErrorContains(t, err, tc.says, tc.xml)
	}
}

// Nesting: 32 elements deep is read, 33 refused, and a million deep is
// refused at once, without reading the rest.
func TestLegacyXMLDepth(t *testing.T) {
	nested := func(depth int) []byte {
		inner := strings.Repeat("<e>", depth-2) + "x" + strings.Repeat("</e>", depth-2)
		return []byte("<alipay><is_success>T</is_success><r>" + inner + "</r></alipay>")
	}
	got, err := LegacyXMLToJSON(nested(maxXMLDepth))
	require.NoError(t, err)
	assert.True(t, json.Valid(got))
	_, err = LegacyXMLToJSON(nested(maxXMLDepth + 1))
	assert.ErrorContains(t, err, "nested deeper than 32")
	start := time.Now()
	_, err = LegacyXMLToJSON([]byte("<alipay>" + strings.Repeat("<e>", 1<<20)))
	assert.ErrorContains(t, err, "nested deeper than 32")
	assert.Less(t, time.Since(start), 2*time.Second)
}

// FuzzLegacyXML feeds arbitrary bytes to the answer reader: no panic, and
// every answer it accepts is a JSON object whose is_success is T or F.
func FuzzLegacyXML(f *testing.F) {
	v := testvec.LoadLegacy(f)
	for _, a := range v.Answers {
		f.Add(testvec.Read(f, strings.Split(a.File, "/")...))
	}
	for _, s := range []string{
		``, `<alipay/>`, `<alipay><is_success>T</is_success></alipay>`,
		`<alipay><is_success>F</is_success><error>X</error><error>Y</error></alipay>`,
		`<alipay><is_success>T</is_success><request><param name="">v</param><param name="a">1</param><param name="a">2</param></request></alipay>`,
		`<?xml version="1.0" encoding="gbk"?><alipay><is_success>T</is_success><s>` + "\xb2\xe2" + `</s></alipay>`,
		`<?xml version="1.0" encoding="gb18030"?><alipay><is_success>T</is_success><s>` + "\x81\x30\x81\x30" + `</s></alipay>`,
		`<a:alipay xmlns:a="x"><a:is_success>T</a:is_success></a:alipay>`,
		`<!DOCTYPE alipay [<!ENTITY e "x">]><alipay><is_success>T</is_success><s>&e;</s></alipay>`,
		"<alipay>" + strings.Repeat("<e>", 40) + "</alipay>",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		got, err := LegacyXMLToJSON(data)
		if err != nil {
			if got != nil {
				t.Fatalf("an error with an answer: %v", err)
			}
			return
		}
		var obj map[string]json.RawMessage
		if !json.Valid(got) || json.Unmarshal(got, &obj) != nil || obj == nil {
			t.Fatalf("not a JSON object: %q from %q", got, data)
		}
		if s := string(obj["is_success"]); s != `"T"` && s != `"F"` {
			t.Fatalf("is_success %s from %q", s, data)
		}
	})
}
