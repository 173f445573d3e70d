package sandbox

import (
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"slices"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// storeFiles are the trade store's own files: only they take its lock.
var storeFiles = []string{"trades.go", "schedule.go"}

// The store owns its lock: no file of the package but the store's own
// (tests included) names the mutex of a store, reached as ts, trades or
// store (h.trades.mu, ts.mu); the others ask the store's methods.
func TestOnlyTheStoreLocksItsMutex(t *testing.T) {
	files, err := filepath.Glob("*.go")
	require.NoError(t, err)
	fset := token.NewFileSet()
	declared := ""
	for _, name := range files {
		f, err := parser.ParseFile(fset, name, nil, 0)
		require.NoError(t, err)
		ast.Inspect(f, func(n ast.Node) bool {
			switch n := n.(type) {
			case *ast.TypeSpec:
				if n.Name.Name == "tradeStore" {
					declared = name
				}
			case *ast.SelectorExpr:
				if n.Sel.Name == "mu" && slices.Contains([]string{"ts", "trades", "store"}, lastName(n.X)) && !slices.Contains(storeFiles, name) {
					t.Errorf("%s: the store's mutex, outside its own files %v: give the store a method", fset.Position(n.Pos()), storeFiles)
				}
			}
			return true
		})
	}
	assert.Equal(t, storeFiles[0], declared, "the store is declared in its first file")
}

// lastName is the last name of x: ts for ts, trades for h.trades.
func lastName(x ast.Expr) string {
	switch x := x.(type) {
	case *ast.Ident:
		return x.Name
	case *ast.SelectorExpr:
		return x.Sel.Name
	}
	return ""
}
