package rebound_test

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestDocComments enforces the house rule that every exported name carries a
// doc comment, so that go doc and pkg.go.dev never show a bare identifier.
// It parses every non-test .go file of this module (build constraints are
// ignored, so every platform's file is read) and reports file:line and name
// of each violation.
//
// Skipped: _test.go files; the directories e2e/ and bench/ and any other
// directory holding its own go.mod (separate modules); testdata/, and
// directories whose names start with "." or "_" (the go tool ignores them).
// Package main is checked like any other package; its names are normally
// unexported, so it rarely has anything to report.
//
// A name needs a comment when it is exported and it is:
//
//   - a top-level func: its doc comment;
//   - a method whose receiver's base type is exported: its doc comment
//     (methods of unexported types are not in the documentation);
//   - a type: the spec's doc, or the declaration's doc when the type is
//     declared alone (type T ..., not inside type ( ... ));
//   - a const or var: likewise the spec's doc or the lone declaration's doc.
//     In a group ( ... ) each exported spec needs its own doc or trailing line
//     comment, except in an enumeration: a const group with a doc comment in
//     which some spec uses iota, where the group doc covers every spec;
//   - a named field of an exported struct type, or a method of an exported
//     interface type: a doc comment above the entry or a trailing line
//     comment on it. Several names in one entry (A, B int) share it. Embedded
//     fields and embedded interfaces are exempt: their own types carry the
//     documentation.
func TestDocComments(t *testing.T) {
	fset := token.NewFileSet()
	var missing []string
	files := 0
	report := func(pos token.Pos, what string) {
		missing = append(missing, fset.Position(pos).String()+": "+what)
	}
	err := filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if path == "." {
				return nil
			}
			name := d.Name()
			if name == "e2e" || name == "bench" || name == "testdata" ||
				strings.HasPrefix(name, ".") || strings.HasPrefix(name, "_") {
				return filepath.SkipDir
			}
			if _, err := os.Stat(filepath.Join(path, "go.mod")); err == nil {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, parser.ParseComments|parser.SkipObjectResolution)
		if err != nil {
			return err
		}
		files++
		checkFileDocs(f, report)
		return nil
	})
	if err != nil {
		t.Fatalf("walking the module: %v", err)
	}
	if files < 10 { // run from elsewhere than the module root, the check would pass vacuously
		t.Fatalf("checked only %d files; is the working directory the module root?", files)
	}
	if len(missing) > 0 {
		t.Errorf("%d exported names lack a doc comment:\n%s", len(missing), strings.Join(missing, "\n"))
	}
}

// checkFileDocs reports every exported name in f that breaks the rules
// listed on TestDocComments.
func checkFileDocs(f *ast.File, report func(token.Pos, string)) {
	for _, decl := range f.Decls {
		switch d := decl.(type) {
		case *ast.FuncDecl:
			if !d.Name.IsExported() || d.Doc != nil {
				continue
			}
			if d.Recv == nil {
				report(d.Name.Pos(), "func "+d.Name.Name)
				continue
			}
			if recv := receiverBase(d.Recv.List[0].Type); recv != "" && ast.IsExported(recv) {
				report(d.Name.Pos(), "method "+recv+"."+d.Name.Name)
			}
		case *ast.GenDecl:
			checkGenDecl(d, report)
		}
	}
}

// checkGenDecl applies the type, const and var rules to one declaration.
func checkGenDecl(d *ast.GenDecl, report func(token.Pos, string)) {
	grouped := d.Lparen.IsValid()
	enum := d.Tok == token.CONST && grouped && d.Doc != nil && usesIota(d)
	for _, spec := range d.Specs {
		switch s := spec.(type) {
		case *ast.TypeSpec:
			if !s.Name.IsExported() {
				continue
			}
			if s.Doc == nil && (grouped || d.Doc == nil) {
				report(s.Name.Pos(), "type "+s.Name.Name)
			}
			checkMembers(s, report)
		case *ast.ValueSpec:
			documented := s.Doc != nil || s.Comment != nil || enum || (!grouped && d.Doc != nil)
			if documented {
				continue
			}
			for _, n := range s.Names {
				if n.IsExported() {
					report(n.Pos(), d.Tok.String()+" "+n.Name)
				}
			}
		}
	}
}

// checkMembers reports undocumented named fields of an exported struct and
// methods of an exported interface.
func checkMembers(s *ast.TypeSpec, report func(token.Pos, string)) {
	var list *ast.FieldList
	kind := "field"
	switch t := s.Type.(type) {
	case *ast.StructType:
		list = t.Fields
	case *ast.InterfaceType:
		list = t.Methods
		kind = "interface method"
	default:
		return
	}
	for _, fld := range list.List {
		if fld.Doc != nil || fld.Comment != nil {
			continue
		}
		for _, n := range fld.Names {
			if n.IsExported() {
				report(n.Pos(), kind+" "+s.Name.Name+"."+n.Name)
			}
		}
	}
}

// receiverBase returns the name of a method receiver's base type, seeing
// through pointers and type parameters: T, *T, T[P] and *T[P, Q] all give T.
func receiverBase(x ast.Expr) string {
	for {
		switch t := x.(type) {
		case *ast.StarExpr:
			x = t.X
		case *ast.ParenExpr:
			x = t.X
		case *ast.IndexExpr:
			x = t.X
		case *ast.IndexListExpr:
			x = t.X
		case *ast.Ident:
			return t.Name
		default:
			return ""
		}
	}
}

// usesIota reports whether any value in the const group d mentions iota,
// which marks it as an enumeration.
func usesIota(d *ast.GenDecl) bool {
	found := false
	for _, spec := range d.Specs {
		ast.Inspect(spec, func(n ast.Node) bool {
			if id, ok := n.(*ast.Ident); ok && id.Name == "iota" {
				found = true
			}
			return !found
		})
	}
	return found
}

// TestDocCommentsRules pins the checker itself: each rule flags what it
// should and accepts what it should, so a broken checker cannot make
// TestDocComments pass silently.
func TestDocCommentsRules(t *testing.T) {
	const src = `package p

func F() {}
func f() {}

// G is documented.
func G() {}

type T struct {
	A int
	B, C string // shared trailing comment
	// D is documented.
	D int
	e int
	io.Reader
}

func (T) M()  {}
func (*T) m() {}
func (u) M()  {}

type I interface {
	N()
	// O is documented.
	O()
	fmt.Stringer
}

// G2 is a generic type.
type G2[K comparable, V any] struct{}

func (G2[K, V]) M() {}

// Alone is documented by its declaration.
const Alone = 1

// Group doc, not an enumeration.
var (
	V1 = 1
	V2 = 2 // documented
	v3 = 3
)

// Enum is documented by its group doc.
const (
	E0 = iota
	E1
)

const (
	X0 = iota
)

type (
	// Inner is documented.
	Inner int
	Bare  int
)
`
	want := []string{
		"func F",
		"type T",
		"field T.A",
		"method T.M",
		"type I",
		"interface method I.N",
		"method G2.M",
		"var V1",
		"const X0",
		"type Bare",
	}
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, "p.go", src, parser.ParseComments|parser.SkipObjectResolution)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	checkFileDocs(f, func(_ token.Pos, what string) { got = append(got, what) })
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("flagged:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
