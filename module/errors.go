package module

import "fmt"

// Error is a refusal the module sends as an error reply: Code is the reply's
// first word (ERR, READONLY, ...), Message says what to fix.
type Error struct {
	Code    string
	Message string
}

func (e *Error) Error() string { return e.Code + " " + e.Message }

func errorf(format string, args ...any) *Error {
	return &Error{Code: "ERR", Message: fmt.Sprintf(format, args...)}
}
