package scripting

import (
	"fmt"

	"github.com/yuin/gopher-lua/ast"
)

// MaxNesting is how deeply a script may nest brackets, blocks and
// expressions: Lua 5.1's own limit of 200 syntax levels (LUAI_MAXCCALLS).
// gopher-lua's parser and compiler have none and recurse once per level:
// a 1 MiB script of nested parentheses held the server for seconds and
// took hundreds of MB.
const MaxNesting = 200

// checkNesting scans the source, without parsing it, for brackets and
// blocks nested deeper than MaxNesting, and for chains of the right
// associative operators .. and ^ longer than that (each is a level in Lua
// 5.1, and gopher-lua's parser takes seconds over a long one), so that such
// a script costs one linear pass and nothing else. Strings and comments are
// skipped.
func checkNesting(src string) error {
	depth, line := 0, 1
	pendingDo := 0 // while/for whose 'do' opens no level of its own
	chain := 0     // .. and ^ since the last token that ends a chain
	tooDeep := func() error {
		return fmt.Errorf("line %d: more than %d nested levels (Lua 5.1's limit)", line, MaxNesting)
	}
	open := func() error {
		chain = 0
		if depth++; depth > MaxNesting {
			return tooDeep()
		}
		return nil
	}
	for i := 0; i < len(src); {
		c := src[i]
		switch {
		case c == '\n':
			line++
			i++
		case c == '-' && i+1 < len(src) && src[i+1] == '-':
			i += 2
			if n := longBracket(src, i); n >= 0 {
				i = skipLong(src, i, n, &line)
			} else {
				for i < len(src) && src[i] != '\n' {
					i++
				}
			}
		case c == '"' || c == '\'':
			for i++; i < len(src) && src[i] != c && src[i] != '\n'; i++ {
				if src[i] == '\\' && i+1 < len(src) {
					if src[i+1] == '\n' {
						line++
					}
					i++
				}
			}
			i++
		case c == '[':
			if n := longBracket(src, i); n >= 0 {
				i = skipLong(src, i, n, &line)
				continue
			}
			if err := open(); err != nil {
				return err
			}
			i++
		case c == '(' || c == '{':
			if err := open(); err != nil {
				return err
			}
			i++
		case c == ')' || c == '}' || c == ']':
			depth--
			chain = 0
			i++
		case c == '.' && i+1 < len(src) && src[i+1] == '.':
			if i+2 < len(src) && src[i+2] == '.' { // ... is no operator
				i += 3
				continue
			}
			fallthrough
		case c == '^':
			if chain++; chain > MaxNesting {
				return tooDeep()
			}
			i++
			if c == '.' {
				i++
			}
		case c == ',' || c == ';' || c == '=' || c == '<' || c == '>' || c == '~':
			chain = 0
			i++
		case isAlpha(c) || c == '_':
			j := i
			for j < len(src) && (isAlnum(src[j]) || src[j] == '_') {
				j++
			}
			switch src[i:j] {
			case "and", "or", "not", "local", "return", "then", "else", "elseif", "in":
				chain = 0
			case "while", "for":
				pendingDo++
				if err := open(); err != nil {
					return err
				}
			case "do":
				if pendingDo > 0 {
					pendingDo--
				} else if err := open(); err != nil {
					return err
				}
			case "function", "if", "repeat":
				if err := open(); err != nil {
					return err
				}
			case "end", "until":
				depth--
			}
			i = j
		default:
			i++
		}
	}
	return nil
}

// longBracket returns the level of a long bracket [==[ starting at i, or -1.
func longBracket(src string, i int) int {
	if i >= len(src) || src[i] != '[' {
		return -1
	}
	j := i + 1
	for j < len(src) && src[j] == '=' {
		j++
	}
	if j < len(src) && src[j] == '[' {
		return j - i - 1
	}
	return -1
}

// skipLong returns the index past the long bracket of level n opened at i
// (or the end of the source), counting lines.
func skipLong(src string, i, n int, line *int) int {
	for i += n + 2; i < len(src); i++ {
		switch src[i] {
		case '\n':
			*line++
		case ']':
			j := i + 1
			for j < len(src) && src[j] == '=' {
				j++
			}
			if j-i-1 == n && j < len(src) && src[j] == ']' {
				return j + 1
			}
		}
	}
	return len(src)
}

// checkDepth refuses a syntax tree deeper than MaxNesting: long operator
// chains ('a' .. 'b' .. ...) and elseif chains nest without brackets, and
// the compiler recurses once per level. On its walk it also converts the
// bounds of numeric for loops (coerceForBounds).
func checkDepth(chunk []ast.Stmt) error {
	d := depthChecker{}
	d.stmts(chunk, 0)
	if d.line > 0 {
		return fmt.Errorf("line %d: more than %d nested levels (Lua 5.1's limit; long chains of operators or elseif count too)", d.line, MaxNesting)
	}
	return nil
}

type depthChecker struct {
	line int // where the limit was passed, 0 if not
}

func (d *depthChecker) deep(n int, line int) bool {
	if n > MaxNesting && d.line == 0 {
		d.line = line
	}
	return d.line != 0
}

func (d *depthChecker) stmts(list []ast.Stmt, n int) {
	for _, s := range list {
		if d.line != 0 {
			return
		}
		d.stmt(s, n)
	}
}

func (d *depthChecker) exprs(list []ast.Expr, n int) {
	for _, e := range list {
		if d.line != 0 {
			return
		}
		d.expr(e, n)
	}
}

func (d *depthChecker) stmt(s ast.Stmt, n int) {
	n++
	if d.deep(n, s.Line()) {
		return
	}
	switch s := s.(type) {
	case *ast.AssignStmt:
		d.exprs(s.Lhs, n)
		d.exprs(s.Rhs, n)
	case *ast.LocalAssignStmt:
		d.exprs(s.Exprs, n)
	case *ast.FuncCallStmt:
		d.expr(s.Expr, n)
	case *ast.DoBlockStmt:
		d.stmts(s.Stmts, n)
	case *ast.WhileStmt:
		d.expr(s.Condition, n)
		d.stmts(s.Stmts, n)
	case *ast.RepeatStmt:
		d.expr(s.Condition, n)
		d.stmts(s.Stmts, n)
	case *ast.IfStmt:
		d.expr(s.Condition, n)
		d.stmts(s.Then, n)
		d.stmts(s.Else, n)
	case *ast.NumberForStmt:
		coerceForBounds(s)
		d.expr(s.Init, n)
		d.expr(s.Limit, n)
		if s.Step != nil {
			d.expr(s.Step, n)
		}
		d.stmts(s.Stmts, n)
	case *ast.GenericForStmt:
		d.exprs(s.Exprs, n)
		d.stmts(s.Stmts, n)
	case *ast.FuncDefStmt:
		d.expr(s.Func, n)
	case *ast.ReturnStmt:
		d.exprs(s.Exprs, n)
	}
}

func (d *depthChecker) expr(e ast.Expr, n int) {
	n++
	if e == nil || d.deep(n, e.Line()) {
		return
	}
	switch e := e.(type) {
	case *ast.AttrGetExpr:
		d.expr(e.Object, n)
		d.expr(e.Key, n)
	case *ast.TableExpr:
		for _, f := range e.Fields {
			if f.Key != nil {
				d.expr(f.Key, n)
			}
			d.expr(f.Value, n)
		}
	case *ast.FuncCallExpr:
		if e.Func != nil {
			d.expr(e.Func, n)
		}
		if e.Receiver != nil {
			d.expr(e.Receiver, n)
		}
		d.exprs(e.Args, n)
	case *ast.LogicalOpExpr:
		d.expr(e.Lhs, n)
		d.expr(e.Rhs, n)
	case *ast.RelationalOpExpr:
		d.expr(e.Lhs, n)
		d.expr(e.Rhs, n)
	case *ast.StringConcatOpExpr:
		d.expr(e.Lhs, n)
		d.expr(e.Rhs, n)
	case *ast.ArithmeticOpExpr:
		d.expr(e.Lhs, n)
		d.expr(e.Rhs, n)
	case *ast.UnaryMinusOpExpr:
		d.expr(e.Expr, n)
	case *ast.UnaryNotOpExpr:
		d.expr(e.Expr, n)
	case *ast.UnaryLenOpExpr:
		d.expr(e.Expr, n)
	case *ast.FunctionExpr:
		d.stmts(e.Stmts, n)
	}
}

// coerceForBounds makes a numeric for loop convert numeric strings in its
// bounds, as Lua 5.1 does (gopher-lua refuses them): each bound that is not
// a number literal goes through a function found by a global name no
// script can shadow or write (see forBounds). A bound that does not
// convert fails as in Lua 5.1: "'for' limit must be a number".
func coerceForBounds(s *ast.NumberForStmt) {
	wrap := func(e ast.Expr, name string) ast.Expr {
		if _, literal := e.(*ast.NumberExpr); literal || e == nil {
			return e
		}
		fn := &ast.IdentExpr{Value: name}
		fn.SetLine(e.Line())
		call := &ast.FuncCallExpr{Func: fn, Args: []ast.Expr{e}}
		call.SetLine(e.Line())
		call.SetLastLine(e.LastLine())
		return call
	}
	s.Init, s.Limit, s.Step = wrap(s.Init, "(iungo for init)"), wrap(s.Limit, "(iungo for limit)"), wrap(s.Step, "(iungo for step)")
}
