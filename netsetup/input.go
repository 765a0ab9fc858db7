package netsetup

import (
	"errors"
	"fmt"
)

// ErrInvalid is matched (errors.Is) by every refusal of a value the caller gave: a name, an
// address, a port, a hostname or alias, a guest that does not exist. The value itself is the
// thing to change, which lets the command line exit with its usage status and the hook say
// which setting is wrong; nothing was changed when such an error comes back.
var ErrInvalid = errors.New("invalid value")

type inputError struct{ error }

func (e inputError) Unwrap() error        { return e.error }
func (e inputError) Is(target error) bool { return target == ErrInvalid }

// invalidf is fmt.Errorf for refused input.
func invalidf(format string, a ...any) error { return inputError{fmt.Errorf(format, a...)} }

// Invalid marks err as refused input (ErrInvalid), for packages above netsetup that check
// values against a bridge's records.
func Invalid(err error) error { return inputError{err} }
