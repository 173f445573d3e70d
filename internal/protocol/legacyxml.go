package protocol

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"strings"

	"golang.org/x/text/encoding/simplifiedchinese"
)

// The legacy gateway's answers: XML with an <alipay> root, its first
// child <is_success> (T or F), then <error> (a failure's code) or, for a
// service that answers with data, <request> (the call's parameters, each
// a <param name="…">), <response>, <sign> and <sign_type>. The shop gets
// them as JSON, in the shape that it reads OpenAPI's answers in.

// maxXMLDepth bounds the nesting of an answer: Alipay's are 4 deep
// (alipay, response, trade, a field). Deeper nesting is refused, so that
// an answer costs work in proportion to its size.
const maxXMLDepth = 32

// An xmlNode is one element of an answer.
type xmlNode struct {
	name     string // the element's name, or a <request>'s <param>'s name attribute
	text     []byte // its character data, as UTF-8
	children []*xmlNode
	request  bool // a <request>, whose <param name=…> are named by the attribute
}

// LegacyXMLToJSON reads an answer of the legacy gateway, in the charset
// that its XML declaration names (utf-8 without one; gbk, gb2312 and
// gb18030 too), and returns it as a JSON object (UTF-8): each element a
// member named by the element, whose value is its text as a string or,
// for an element with elements in it, an object of them; elements of one
// name among siblings a list, in their order; <request>'s <param
// name="…"> members named by their attribute. The root, which must be
// <alipay> with an <is_success> of T or F, is the object itself;
// attributes, comments and processing instructions are left out.
func LegacyXMLToJSON(data []byte) ([]byte, error) {
	root, err := parseXMLTree(data)
	if err != nil {
		return nil, err
	}
	if root.name != "alipay" {
		return nil, fmt.Errorf("the root element is <%s>, not <alipay>", root.name)
	}
	var success []*xmlNode
	for _, c := range root.children {
		if c.name == "is_success" {
			success = append(success, c)
		}
	}
	if len(success) != 1 || len(success[0].children) != 0 {
		return nil, errors.New("<alipay> must have one <is_success>")
	}
	if s := string(success[0].text); s != "T" && s != "F" {
		return nil, fmt.Errorf("<is_success> is %q, not T or F", truncate(s, 16))
	}
	return appendXMLObject(nil, root.children)
}

// parseXMLTree reads data into its root element, strictly: well-formed,
// one root, no text outside it, at most maxXMLDepth deep.
func parseXMLTree(data []byte) (*xmlNode, error) {
	dec := xml.NewDecoder(bytes.NewReader(data))
	dec.Strict = true
	dec.CharsetReader = xmlCharsetReader
	var root *xmlNode
	var stack []*xmlNode
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("not well-formed xml: %v", err)
		}
		switch t := tok.(type) {
		case xml.StartElement:
			if root != nil && len(stack) == 0 {
				return nil, errors.New("more than one root element")
			}
			if len(stack) == maxXMLDepth {
				return nil, fmt.Errorf("nested deeper than %d elements", maxXMLDepth)
			}
			n := &xmlNode{name: t.Name.Local}
			if len(stack) == 0 {
				root = n
			} else {
				parent := stack[len(stack)-1]
				if parent.request && n.name == "param" {
					for _, a := range t.Attr {
						if a.Name.Space == "" && a.Name.Local == "name" {
							n.name = a.Value
						}
					}
				} else if n.name == "request" {
					n.request = true
				}
				parent.children = append(parent.children, n)
			}
			stack = append(stack, n)
		case xml.EndElement:
			stack = stack[:len(stack)-1]
		case xml.CharData:
			if len(stack) == 0 {
				if len(bytes.TrimSpace(t)) > 0 {
					return nil, errors.New("text outside the root element")
				}
				continue
			}
			top := stack[len(stack)-1]
			top.text = append(top.text, t...)
		}
	}
	if root == nil {
		return nil, errors.New("no root element")
	}
	return root, nil
}

// xmlCharsetReader decodes the charsets that Alipay answers in, besides
// UTF-8, which encoding/xml reads itself. gb2312 is read as GBK, of which
// it is a part.
func xmlCharsetReader(charset string, r io.Reader) (io.Reader, error) {
	switch strings.ToLower(charset) {
	case "utf8":
		return r, nil
	case "gbk", "gb2312", "cp936":
		return simplifiedchinese.GBK.NewDecoder().Reader(r), nil
	case "gb18030":
		return simplifiedchinese.GB18030.NewDecoder().Reader(r), nil
	}
	return nil, fmt.Errorf("unsupported encoding %q", truncate(charset, 32))
}

// appendXMLObject appends the elements nodes as a JSON object: a member
// for each name in the order the name first appears, its value a list
// when the name appears more than once.
func appendXMLObject(b []byte, nodes []*xmlNode) ([]byte, error) {
	var order []string
	groups := make(map[string][]*xmlNode, len(nodes))
	for _, n := range nodes {
		if _, ok := groups[n.name]; !ok {
			order = append(order, n.name)
		}
		groups[n.name] = append(groups[n.name], n)
	}
	b = append(b, '{')
	for i, name := range order {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendJSONString(b, name)
		b = append(b, ':')
		group := groups[name]
		var err error
		if len(group) == 1 {
			if b, err = appendXMLValue(b, group[0]); err != nil {
				return nil, err
			}
			continue
		}
		b = append(b, '[')
		for j, n := range group {
			if j > 0 {
				b = append(b, ',')
			}
			if b, err = appendXMLValue(b, n); err != nil {
				return nil, err
			}
		}
		b = append(b, ']')
	}
	return append(b, '}'), nil
}

// appendXMLValue appends one element's value: its text, or the object of
// the elements in it. Text beside elements (other than the whitespace of
// indentation) is not Alipay's shape, and is refused rather than lost.
func appendXMLValue(b []byte, n *xmlNode) ([]byte, error) {
	if len(n.children) == 0 {
		return appendJSONString(b, string(n.text)), nil
	}
	if len(bytes.TrimSpace(n.text)) > 0 {
		return nil, fmt.Errorf("<%s> has both text and elements", truncate(n.name, 32))
	}
	return appendXMLObject(b, n.children)
}

// truncate shortens s, text from an answer that an error quotes, to at
// most n bytes.
func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}
