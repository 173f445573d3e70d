package alipay

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Both modules are written as Caddy's module-doc scanner reads them, so
// that caddyserver.com's JSON docs show every field: registered as
// caddy.RegisterModule(T{}) or new(T), a literal module ID, a type doc
// that starts with the type's name, and each JSON field with a comment
// block of its own above it (a comment shared by several fields, or
// written after one, is not read). Each package's JSON example shows
// every field.
func TestModuleDocs(t *testing.T) {
	for _, m := range []struct{ dir, example string }{{".", "README.md"}, {"sandbox", "docs/sandbox.md"}} {
		t.Run(m.dir, func(t *testing.T) {
			fset := token.NewFileSet()
			pkgs, err := parser.ParseDir(fset, m.dir, func(fi os.FileInfo) bool { return !strings.HasSuffix(fi.Name(), "_test.go") }, parser.ParseComments)
			require.NoError(t, err)
			var files []*ast.File
			for _, p := range pkgs {
				for _, f := range p.Files {
					files = append(files, f)
				}
			}
			registered := registeredTypes(t, files)
			require.NotEmpty(t, registered)
			example, err := os.ReadFile(filepath.Clean(m.example))
			require.NoError(t, err)
			for _, f := range files {
				for _, decl := range f.Decls {
					fn, ok := decl.(*ast.FuncDecl)
					if !ok || fn.Name.Name != "CaddyModule" || fn.Recv == nil {
						continue
					}
					typeName := receiverName(fn)
					assert.True(t, registered[typeName], "%s has a CaddyModule method and is registered in its package", typeName)
					assert.Regexp(t, `ID:\s+"[a-z_.]+"`, source(t, fset, fn), "%s's module ID is a string literal", typeName)
					checkStructDocs(t, files, typeName, string(example))
				}
			}
		})
	}
}

// registeredTypes are the types that an init function registers, each
// as caddy.RegisterModule(T{}) or caddy.RegisterModule(new(T)).
func registeredTypes(t *testing.T, files []*ast.File) map[string]bool {
	out := map[string]bool{}
	for _, f := range files {
		ast.Inspect(f, func(n ast.Node) bool {
			call, ok := n.(*ast.CallExpr)
			if !ok {
				return true
			}
			sel, ok := call.Fun.(*ast.SelectorExpr)
			if !ok || sel.Sel.Name != "RegisterModule" || len(call.Args) != 1 {
				return true
			}
			switch a := call.Args[0].(type) {
			case *ast.CompositeLit:
				out[a.Type.(*ast.Ident).Name] = true
			case *ast.CallExpr:
				if id, ok := a.Fun.(*ast.Ident); ok && id.Name == "new" {
					out[a.Args[0].(*ast.Ident).Name] = true
				}
			default:
				t.Errorf("RegisterModule(%T): the doc scanner reads T{} and new(T) only", a)
			}
			return true
		})
	}
	return out
}

func receiverName(fn *ast.FuncDecl) string {
	switch r := fn.Recv.List[0].Type.(type) {
	case *ast.Ident:
		return r.Name
	case *ast.StarExpr:
		return r.X.(*ast.Ident).Name
	}
	return ""
}

func source(t *testing.T, fset *token.FileSet, n ast.Node) string {
	b, err := os.ReadFile(fset.File(n.Pos()).Name())
	require.NoError(t, err)
	return string(b[fset.Position(n.Pos()).Offset:fset.Position(n.End()).Offset])
}

var jsonKeyRE = regexp.MustCompile(`"([a-z_0-9]+)":`)

// checkStructDocs checks the type doc and each JSON field's comment of
// the struct typeName, and that example names each JSON field.
func checkStructDocs(t *testing.T, files []*ast.File, typeName, example string) {
	shown := map[string]bool{}
	for _, m := range jsonKeyRE.FindAllStringSubmatch(example, -1) {
		shown[m[1]] = true
	}
	for _, f := range files {
		for _, decl := range f.Decls {
			gd, ok := decl.(*ast.GenDecl)
			if !ok || gd.Tok != token.TYPE {
				continue
			}
			for _, spec := range gd.Specs {
				ts := spec.(*ast.TypeSpec)
				st, ok := ts.Type.(*ast.StructType)
				if !ok || ts.Name.Name != typeName {
					continue
				}
				doc := gd.Doc.Text()
				assert.True(t, strings.HasPrefix(doc, typeName+" "), "the type doc starts with %s", typeName)
				for _, field := range st.Fields.List {
					if field.Tag == nil {
						continue
					}
					name, _, _ := strings.Cut(reflect.StructTag(strings.Trim(field.Tag.Value, "`")).Get("json"), ",")
					if name == "" || name == "-" {
						continue
					}
					assert.Len(t, field.Names, 1, "%s: one field per declaration", name)
					assert.NotEmpty(t, strings.TrimSpace(field.Doc.Text()), "%s: a comment block above the field", name)
					assert.Nil(t, field.Comment, "%s: no comment after the field (the scanner does not read it)", name)
					assert.True(t, shown[name], "%s: the JSON example shows it", name)
				}
				return
			}
		}
	}
	t.Errorf("no struct %s", typeName)
}
